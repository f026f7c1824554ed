#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time, seeded with the hostile corpus.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, all targets)
# See fuzz/README.md. Exits non-zero on the first crash; its input is in
# fuzz/artifacts/TARGET/.
set -euo pipefail

cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-20}
shift || true
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    TARGETS=(client_frame server_frame sanitize_terminal sanitize_filename)
fi

# cargo-fuzz passes nightly-only flags (-Z...) to rustc; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. No sanitizer: the code under test forbids `unsafe`,
# and without ASan each target runs several times more inputs in the same time.
export RUSTC_BOOTSTRAP=1
FUZZ_FLAGS=(--sanitizer none)

# Seeds: the hostile corpus and sample frames (crates/protocol/examples/fuzz_seeds.rs).
cargo run --quiet --manifest-path ../Cargo.toml -p natter-protocol --example fuzz_seeds -- "$PWD/corpus"

cargo fuzz build "${FUZZ_FLAGS[@]}"
for target in "${TARGETS[@]}"; do
    echo "=== fuzz $target for ${SECONDS_PER_TARGET}s ==="
    log=$(mktemp)
    if ! cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        rm -f "$log"
        echo "fuzz target $target FAILED: the input is in fuzz/artifacts/$target/"
        exit 1
    fi
    # libFuzzer's progress lines are noise in a CI log: keep the totals.
    grep -E '^(Done |stat::(number_of_executed_units|peak_rss_mb|new_units_added))' "$log" || true
    rm -f "$log"
done
