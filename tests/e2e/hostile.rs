//! The hostile corpus (`crates/protocol/tests/corpus/hostile.rs`) through every human
//! output path of the real `natter`: nothing dangerous (ESC, C0 but newline and tab, DEL,
//! C1, bidi controls) reaches the terminal, every message is still shown, and `--json`
//! keeps the exact text. Also: invalid UTF-8 on stdin or argv and in a raw WebSocket
//! frame is refused cleanly, and a hostile server's error text is sanitized on stderr.

#[path = "../../crates/protocol/tests/corpus/hostile.rs"]
mod corpus;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use natter_e2e::ws::{Api, Event, Ws};
use natter_e2e::{Listener, Output, PASSWORD, SOON, Server};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// What a person sees: stdout and stderr of a human (non-`--json`) command.
#[track_caller]
fn assert_screen_safe(what: &str, out: &Output) {
    corpus::assert_terminal_safe(&format!("{what} (stdout)"), &out.stdout);
    corpus::assert_terminal_safe(&format!("{what} (stderr)"), &out.stderr);
    // The harness decodes lossily: a replacement character means `natter` wrote bytes
    // that are not UTF-8 (e.g. a raw 8-bit control byte).
    assert!(
        !out.stdout.contains('\u{fffd}') && !out.stderr.contains('\u{fffd}'),
        "{what}: output is not valid UTF-8\n{out}"
    );
}

/// Every line of human message output starts a message (`[time] ...`) or is an
/// indented continuation, so text after a newline cannot pose as another message.
#[track_caller]
fn assert_no_forged_lines(what: &str, stdout: &str) {
    for line in stdout.lines() {
        assert!(
            line.starts_with('[') || line.starts_with(' ') || line.starts_with("-- "),
            "{what}: a line that is neither a message nor a continuation: {line:?}"
        );
    }
}

/// Checks human message output: safe, every corpus message shown (by its `hNN: `
/// prefix), harmless and huge plain text whole.
#[track_caller]
fn assert_messages_shown(what: &str, stdout: &str, sent: &[String]) {
    corpus::assert_terminal_safe(what, stdout);
    assert_no_forged_lines(what, stdout);
    for text in sent {
        let prefix = &text[..text.find(": ").expect("hNN: prefix") + 2];
        assert!(
            stdout.contains(prefix),
            "{what}: message {prefix:?} is missing from the output"
        );
    }
    assert!(
        stdout.contains("ok: 日本語 ✓ 👍🏽 e\u{301} tab\tnew"),
        "{what}: benign text lost"
    );
    assert!(
        stdout.contains(&corpus::huge_plain_line()),
        "{what}: the huge plain line was not shown whole"
    );
}

/// Whether `text` is one of the corpus messages this file sends (`hNN: ...`, `gNN: ...`),
/// not a probe or a timeline event such as "alice created the group".
fn is_corpus(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() >= 5
        && (b[0] == b'h' || b[0] == b'g')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && &b[3..5] == b": "
}

/// Waits until `listener` prints a line containing `needle`.
fn saw_line(listener: &mut Listener, needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while let Some(line) = listener.next_line(deadline.saturating_duration_since(Instant::now())) {
        if line.contains(needle) {
            return true;
        }
    }
    false
}

#[test]
fn hostile_text_never_reaches_the_terminal_and_json_keeps_it_exact() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);

    // bob watches twice: as a person (human lines) and as a script (`--json`).
    let mut human = bob.spawn(["listen"]);
    let bob_script = bob.device();
    let mut script = bob_script.listen(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut human_ready, mut script_ready) = (false, false);
    for n in 1.. {
        alice.send("@bob", &format!("probe {n}"));
        human_ready = human_ready || saw_line(&mut human, "probe", Duration::from_millis(750));
        script_ready = script_ready
            || script
                .next_message(Duration::from_millis(750))
                .is_some_and(|m| m.text.starts_with("probe"));
        if human_ready && script_ready {
            break;
        }
        assert!(Instant::now() < deadline, "listeners never became ready");
    }

    // Every entry to @bob through stdin (argv cannot carry NUL); a few also to the group.
    let mut direct = Vec::new();
    for (i, (_, text)) in corpus::all().iter().enumerate() {
        let text = format!("h{i:02}: {text}");
        alice
            .run_stdin(["send", "@bob"], text.as_bytes())
            .assert_ok();
        direct.push(text);
    }
    let mut group = Vec::new();
    for (i, (name, text)) in corpus::HOSTILE.iter().enumerate() {
        if name.contains("osc 52") || name.contains("forged") || name.contains("bidi RLO") {
            let text = format!("g{i:02}: {text}");
            alice
                .run_stdin(["send", "ops"], text.as_bytes())
                .assert_ok();
            group.push(text);
        }
    }
    alice.send("@bob", "h-end");

    // `natter listen` (human).
    assert!(
        saw_line(&mut human, "h-end", SOON),
        "human listener never showed the last message\n{}",
        human.stdout()
    );
    human.interrupt(SOON);
    let shown = human.stdout();
    assert_messages_shown("natter listen", &shown, &direct);
    for text in &group {
        assert!(
            shown.contains(&format!("ops <alice> {}", &text[..5])),
            "{text:?} missing"
        );
    }
    corpus::assert_terminal_safe("natter listen (stderr)", &human.stderr());

    // `natter listen --json`: exact text.
    let mut got = Vec::new();
    while got.last().is_none_or(|t| t != "h-end") {
        let m = script
            .next_message(SOON)
            .expect("the JSON listener shows every message");
        got.push(m.text);
    }
    let want: Vec<&String> = direct.iter().chain(&group).collect();
    let got_corpus: Vec<&String> = got.iter().filter(|t| is_corpus(t)).collect();
    assert_eq!(got_corpus.len(), want.len());
    for text in &want {
        assert!(got_corpus.contains(text), "--json lost or changed {text:?}");
    }

    // `natter history` (human and --json), direct and group.
    let out = bob.run_ok(["history", "@alice", "-n", "500"]);
    assert_screen_safe("natter history @alice", &out);
    assert_messages_shown("natter history @alice", &out.stdout, &direct);
    let texts: Vec<String> = bob
        .history("@alice", &["-n", "500"])
        .into_iter()
        .map(|m| m.text)
        .filter(|t| is_corpus(t))
        .collect();
    assert_eq!(texts, direct, "history --json must keep the exact text");

    let out = bob.run_ok(["history", "ops"]);
    assert_screen_safe("natter history ops", &out);
    assert_no_forged_lines("natter history ops", &out.stdout);
    let texts: Vec<String> = bob
        .history("ops", &[])
        .into_iter()
        .map(|m| m.text)
        .filter(|t| is_corpus(t))
        .collect();
    assert_eq!(texts, group);

    // Lists: conversations, groups, whoami (names are validated, but check the screen).
    for args in [
        &["conversations"][..],
        &["group", "list"],
        &["group", "info", "ops"],
        &["whoami"],
    ] {
        let out = bob.run_ok(args);
        assert_screen_safe(&format!("natter {}", args.join(" ")), &out);
    }

    // The outbox shows a queued hostile message (server down): human safe, JSON exact.
    server.kill9();
    let queued = format!("q: {}", corpus::HOSTILE[7].1);
    alice
        .run_stdin(
            ["send", "--queue", "--wait", "200ms", "@bob"],
            queued.as_bytes(),
        )
        .assert_ok();
    let out = alice.run_ok(["outbox"]);
    assert_screen_safe("natter outbox", &out);
    assert!(
        out.stdout.contains("q: "),
        "outbox lists the message\n{out}"
    );
    let out = alice.run_ok(["outbox", "--json"]);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    assert_eq!(lines[0]["text"], queued.as_str());
}

#[test]
fn invalid_utf8_input_is_refused_with_a_clear_error() {
    let server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    for (name, bytes) in corpus::HOSTILE_BYTES {
        let out = alice.run_stdin(["send", "@bob"], *bytes);
        out.assert_code(1);
        out.assert_stderr_contains("not valid UTF-8");
        assert_screen_safe(name, &out);
        assert!(out.stdout.is_empty(), "{name}: {out}");

        // As an argument: a usage error naming the problem.
        let out = alice.run(["send".as_ref(), "@bob".as_ref(), OsStr::from_bytes(bytes)]);
        out.assert_code(2);
        out.assert_stderr_contains("UTF-8");
        assert_screen_safe(name, &out);
    }
    assert!(alice.history("@bob", &[]).is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_text_frame_that_is_not_utf8_is_refused_and_the_server_stays_up() {
    let server = Server::start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;

    for (name, bytes) in corpus::HOSTILE_BYTES {
        let ws_url = format!("{}/api/v1/ws", url.replacen("http", "ws", 1));
        let mut req = ws_url.into_client_request().unwrap();
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {}", bob.token).parse().unwrap(),
        );
        let (mut stream, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("connect");
        // A text frame (opcode 1) whose payload is not UTF-8: tungstenite's typed
        // `Message::Text` cannot hold it, so build the frame by hand.
        let mut payload =
            format!(r#"{{"type":"send","conversation_id":{conv},"client_id":"x","text":""#)
                .into_bytes();
        payload.extend_from_slice(bytes);
        payload.extend_from_slice(br#""}"#);
        let frame = Frame::message(payload, OpCode::Data(Data::Text), true);
        stream
            .send(WsMessage::Frame(frame))
            .await
            .expect("send raw frame");

        // The server closes with 1007 (the RFC's code for invalid UTF-8) within a moment,
        // and stores nothing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let outcome = loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Err(_) => panic!("{name}: no answer to a non-UTF-8 text frame within 10 s"),
                Ok(None) => panic!("{name}: connection ended without a close frame"),
                Ok(Some(Err(e))) => panic!("{name}: connection failed without a close frame: {e}"),
                Ok(Some(Ok(WsMessage::Close(frame)))) => {
                    let f = frame.unwrap_or_else(|| panic!("{name}: close without a code"));
                    assert_eq!(u16::from(f.code), 1007, "{name}: close code");
                    break "closed".to_string();
                }
                Ok(Some(Ok(_))) => {}
            }
        };
        eprintln!("{name}: {outcome}");
    }

    // The server is fine: a new socket gets its hello, and nothing was stored.
    let mut ws = Ws::connect(&url, &bob.token, None).await;
    match ws.next(Duration::from_secs(10)).await {
        Some(Event::Frame(f)) => assert_eq!(f["type"], "hello"),
        other => panic!("expected hello, got {other:?}"),
    }
    assert!(alice.texts(conv).await.is_empty());
}

/// A server that answers every request with `status` and a JSON error body whose
/// message is hostile. Stands in for a malicious or compromised server: the client must
/// not trust it to send clean text.
fn hostile_server(status: &'static str, message: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            // Read the request head and whatever body came with it; the answer is fixed.
            let mut buf = [0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let body = serde_json::json!({"code": "bad_request", "message": message}).to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_hostile_servers_error_text_is_sanitized_on_stderr() {
    let message =
        "login failed\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07\x1b]0;pwned\x07\u{9b}2J\u{202e}txt.exe";
    let url = hostile_server("400 Bad Request", message);
    let home = tempfile::tempdir().expect("temp NATTER_HOME");
    let mut cmd = std::process::Command::new(&natter_e2e::bins::bins().natter);
    cmd.args(["login", "alice", "--password-stdin"])
        .env("NATTER_SERVER", &url)
        .env("NATTER_HOME", home.path())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    let out = natter_e2e::process::run(
        cmd,
        Some(format!("{PASSWORD}\n").into_bytes()),
        Duration::from_secs(60),
    );
    out.assert_code(1);
    assert_screen_safe("natter login against a hostile server", &out);
    out.assert_stderr_contains("login failed");
}

#[test]
fn hostile_session_labels_are_shown_safely() {
    let server = Server::start();
    let bob = server.register("bob");
    let url = server.url();
    let labels: Vec<&str> = corpus::HOSTILE
        .iter()
        .filter(|(name, _)| {
            name.contains("osc 52") || name.contains("8-bit CSI") || name.contains("bidi RLO")
        })
        .map(|(_, text)| *text)
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut accepted = Vec::new();
    for label in &labels {
        let status = runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("{url}/api/v1/auth/login"))
                .json(
                    &serde_json::json!({"username": "bob", "password": PASSWORD, "device": label}),
                )
                .send()
                .await
                .expect("POST /auth/login")
                .status()
        });
        // Refusing such a label is fine; storing it is fine; only showing it raw is not.
        assert!(
            status == 200 || status == 400,
            "login with a hostile device label: {status}"
        );
        if status == 200 {
            accepted.push(*label);
        }
    }
    let out = bob.run_ok(["sessions"]);
    assert_screen_safe("natter sessions", &out);
    let out = bob.run_ok(["sessions", "--json"]);
    let devices: Vec<String> = out
        .json_lines()
        .iter()
        .filter_map(|s| s["device"].as_str().map(str::to_owned))
        .collect();
    for label in accepted {
        assert!(
            devices.iter().any(|d| d == label),
            "--json keeps the exact label {label:?}\n{out}"
        );
    }
}

/// Group topics are free text from the network: shown safely in `group info`, in the
/// timeline event that records them, and exactly in `--json`.
#[test]
fn hostile_group_topics_are_shown_safely() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    let topic = "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J\u{202e}evil\u{9b}31m topic";
    alice.run_ok(["group", "topic", "ops", topic]);
    let info = bob.run_ok(["group", "info", "ops"]);
    assert_screen_safe("group info", &info);
    assert!(
        info.stdout.contains("evil") && info.stdout.contains("topic"),
        "{info}"
    );
    let history = bob.run_ok(["history", "ops"]);
    assert_screen_safe("history with a topic event", &history);
    assert!(history.stdout.contains("set the topic"), "{history}");
    let json = bob.run_ok(["group", "info", "ops", "--json"]).json_lines();
    assert_eq!(json[0]["topic"], topic, "--json keeps the exact topic");
}
