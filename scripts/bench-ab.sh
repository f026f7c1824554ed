#!/usr/bin/env bash
# Back-to-back A/B of two natterd builds on the same machine: each round starts each build
# on a fresh copy of one database (1,000 accounts registered once, since argon2 is slow on
# purpose) and runs the chosen natter-bench workloads against it. Compare the builds by
# the ratios within one run: this machine is shared and noisy.
#
#   cp target/release/natterd /tmp/natterd-before     # build A, then change and rebuild
#   scripts/bench-ab.sh /tmp/natterd-before target/release/natterd
#
# Knobs (environment): ROUNDS (2), WORKLOADS ("w1 w2 w2r": w1/w2 = workloads 1 and 2
# closed loop, w1r/w2r = the same at a fixed rate, w1k = a room of 1,000 fed 100 msg/s), DURATION (8 s), DURABILITY (full),
# SERVER_CPU (1), DRIVER_CPU (0), PORT (27700). Results are printed and appended as JSON
# lines to target/bench-ab.jsonl (labels A and B).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ $# -eq 2 ]] || {
    echo "usage: $0 NATTERD_A NATTERD_B" >&2
    exit 2
}
BIN_A=$(realpath "$1")
BIN_B=$(realpath "$2")
ROUNDS=${ROUNDS:-2}
WORKLOADS=${WORKLOADS:-"w1 w2 w2r"}
DURATION=${DURATION:-8}
DURABILITY=${DURABILITY:-full}
SERVER_CPU=${SERVER_CPU:-1}
DRIVER_CPU=${DRIVER_CPU:-0}
PORT=${PORT:-27700}
OUT=$ROOT/target/bench-ab.jsonl

cd "$ROOT"
cargo build --release -p natter-bench
BENCH=$ROOT/target/release/natter-bench

WORK=$(mktemp -d /tmp/natter-ab.XXXXXX)
SERVER=""
cleanup() {
    [[ -z "$SERVER" ]] || kill "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start() { # binary data-dir
    NATTERD_DURABILITY=$DURABILITY NATTERD_RATE_LIMITS=false NATTERD_LOG=warn \
        NATTERD_MAX_CONNECTIONS_PER_USER=100000 \
        taskset -c "$SERVER_CPU" "$1" --listen "127.0.0.1:$PORT" --data-dir "$2" \
        >"$WORK/server.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && return 0
        kill -0 "$SERVER" 2>/dev/null || break
        sleep 0.05
    done
    echo "natterd did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
}
stop() {
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}

# One database with the accounts, made by build A (build B migrates its copy if newer).
start "$BIN_A" "$WORK/base"
"$BENCH" --proto natter --addr "127.0.0.1:$PORT" --state "$WORK/tokens.tsv" \
    register --users 1000 --register-concurrency 2
stop

for round in $(seq "$ROUNDS"); do
    for side in A B; do
        bin=$BIN_A
        [[ $side == B ]] && bin=$BIN_B
        rm -rf "$WORK/run"
        cp -r "$WORK/base" "$WORK/run"
        cp "$WORK/tokens.tsv" "$WORK/run.tsv"
        start "$bin" "$WORK/run"
        for w in $WORKLOADS; do
            case $w in
            w1) args=(fanout --mode closed) ;;
            w1r) args=(fanout --mode rate --rate 100) ;;
            w2) args=(rooms --mode closed) ;;
            w2r) args=(rooms --mode rate --rate 20) ;;
            w1k) args=(fanout --members 1000 --senders 1 --rate 100) ;;
            *)
                echo "unknown workload $w" >&2
                exit 2
                ;;
            esac
            echo "=== round $round, $side ($bin): ${args[*]}" >&2
            taskset -c "$DRIVER_CPU" "$BENCH" --proto natter --addr "127.0.0.1:$PORT" \
                --server-pid "$SERVER" --state "$WORK/run.tsv" --label "$side" --out "$OUT" \
                "${args[@]}" --duration "$DURATION" --warmup 2 |
                grep -E "latency ms|deliveries/CPU-s" || true
        done
        stop
    done
done
