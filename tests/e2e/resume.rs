//! A listener that was offline receives exactly what it missed, once.

use std::time::{Duration, Instant};

use natter_e2e::{SOON, Server};

#[test]
fn offline_listener_gets_exactly_what_it_missed_once() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");

    // bob's first listen stops after one message. carol probes until it has exited, so
    // bob's cursor is stored; every probe is a real message and counts.
    let mut first = bob.listen(&["--count", "1"]);
    let mut probes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let n = probes.len() + 1;
        carol.send("@bob", &format!("probe {n}"));
        probes.push(n);
        if let Some(m) = first.next_message(Duration::from_millis(750)) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "bob's listen never printed a message\n{}",
            first.stderr()
        );
    };
    assert!(
        first.wait(SOON).success(),
        "--count 1 exits 0 after one message"
    );
    let extra = first.remaining_lines(SOON);
    assert!(
        extra.iter().all(|l| natter_e2e::Msg::parse(l).is_none()),
        "--count 1 printed more: {extra:?}"
    );
    let seen_n: usize = seen
        .text
        .trim_start_matches("probe ")
        .parse()
        .expect("a probe");
    // Probes sent after the one bob saw are missed messages too.
    let mut want: Vec<(String, String)> = probes
        .iter()
        .filter(|&&n| n > seen_n)
        .map(|n| ("carol".to_owned(), format!("probe {n}")))
        .collect();

    // While bob is offline, alice sends five.
    for i in 1..=5 {
        let text = format!("missed {i}");
        alice.send("@bob", &text);
        want.push(("alice".to_owned(), text));
    }

    // bob comes back: exactly the missed messages, in order, nothing seen before.
    let mut second = bob.listen(&["--count", &want.len().to_string()]);
    let mut got = Vec::new();
    while got.len() < want.len() {
        match second.next_message(SOON) {
            Some(m) => got.push((m.sender, m.text)),
            None => panic!("resume stalled after {got:?}\n{}", second.stderr()),
        }
    }
    assert_eq!(got, want);
    assert!(second.wait(SOON).success());
    let extra = second.remaining_lines(SOON);
    assert!(
        extra.iter().all(|l| natter_e2e::Msg::parse(l).is_none()),
        "--count printed more: {extra:?}"
    );

    // And nothing more is pending: the next message bob sees is a new one.
    let mut third = bob.listen(&[]);
    alice.send("@bob", "fresh");
    let m = third.next_message(SOON).expect("bob sees the new message");
    assert_eq!(
        (m.sender.as_str(), m.text.as_str()),
        ("alice", "fresh"),
        "nothing was replayed twice"
    );
}

#[test]
fn interrupted_listener_resumes_after_the_last_message_it_showed() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");

    let mut listen = bob.listen(&[]);
    natter_e2e::await_ready(&mut listen, &carol, "bob");
    alice.send("@bob", "seen live");
    listen.expect_message(SOON, |m| m.text == "seen live");
    // Ctrl-C, as a person would.
    listen.interrupt(SOON);
    drop(listen);

    alice.send("@bob", "while away");
    let mut again = bob.listen(&[]);
    let m = again.expect_message(SOON, |m| m.sender == "alice");
    assert_eq!(
        m.text, "while away",
        "the message shown before Ctrl-C is not shown again"
    );
}

#[test]
fn listener_reconnects_by_itself_after_the_server_restarts() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");

    let mut listen = bob.listen(&[]);
    natter_e2e::await_ready(&mut listen, &carol, "bob");
    alice.send("@bob", "before the crash");
    listen.expect_message(SOON, |m| m.text == "before the crash");

    server.kill9();
    server.restart();
    // Sent while bob's listener may still be reconnecting: it arrives either way, once.
    alice.send("@bob", "after the restart");
    let m = listen.expect_message(Duration::from_secs(60), |m| m.sender == "alice");
    assert_eq!(
        m.text, "after the restart",
        "nothing replayed twice, nothing lost"
    );
    alice.send("@bob", "and live again");
    let m = listen.expect_message(SOON, |m| m.sender == "alice");
    assert_eq!(m.text, "and live again");
}

#[test]
fn listen_with_targets_shows_only_those_conversations() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.run_ok(["group", "create", "dev", "--members", "bob"]);

    // Give bob a stored cursor first, so the filtered listen below resumes from it.
    let mut first = bob.listen(&[]);
    natter_e2e::await_ready(&mut first, &carol, "bob");
    first.interrupt(SOON);
    drop(first);

    alice.send("@bob", "direct");
    alice.send("dev", "in dev");
    alice.send("ops", "in ops");
    let mut only_ops = bob.listen(&["#ops", "--count", "1"]);
    let m = only_ops.next_message(SOON).expect("the ops message");
    assert_eq!(
        (m.conversation.as_str(), m.text.as_str()),
        ("ops", "in ops")
    );
    assert!(only_ops.wait(SOON).success());
    let extra = only_ops.remaining_lines(SOON);
    assert!(
        extra.iter().all(|l| natter_e2e::Msg::parse(l).is_none()),
        "--count 1 printed more: {extra:?}"
    );
    assert!(!only_ops.stdout().contains("in dev") && !only_ops.stdout().contains("\"direct\""));
}
