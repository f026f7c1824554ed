//! Durable ack, idempotent send, crashes and the persisted outbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use natter_e2e::{SOON, Server, User, await_ready, message_id};

#[test]
fn retried_send_with_the_same_client_id_is_stored_once() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");

    let first = alice.run(["send", "@bob", "only once", "--client-id", "retry-1"]);
    first.assert_ok();
    let second = alice.run(["send", "@bob", "only once", "--client-id", "retry-1"]);
    second.assert_ok();
    assert_eq!(
        message_id(&first),
        message_id(&second),
        "the retry is answered with the original id"
    );

    // From another device too: the dedup key is (sender, client id), not the device.
    let phone = alice.device();
    let third = phone.run(["send", "@bob", "only once", "--client-id", "retry-1"]);
    third.assert_ok();
    assert_eq!(message_id(&third), message_id(&first));

    let history = bob.history("@alice", &[]);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].text.as_str(), history[0].client_id.as_str()),
        ("only once", "retry-1")
    );

    // Another client id is another message.
    let other = alice.run(["send", "@bob", "only once", "--client-id", "retry-2"]);
    other.assert_ok();
    assert_ne!(message_id(&other), message_id(&first));
    assert_eq!(bob.history("@alice", &[]).len(), 2);
}

#[test]
fn kill_9_during_500_sends_loses_and_duplicates_nothing_acknowledged() {
    const N: usize = 500;
    let server = Arc::new(Mutex::new(Server::start()));
    let (alice, bob) = {
        let s = server.lock().unwrap();
        (s.register("alice"), s.register("bob"))
    };
    let (acked_tx, acked_rx) = std::sync::mpsc::channel::<usize>();

    // The server dies (SIGKILL) after 125, 250 and 375 acknowledged sends, while the
    // sender keeps going, and each time comes back on the same data.
    let killer = {
        let server = Arc::clone(&server);
        std::thread::spawn(move || {
            for threshold in [N / 4, N / 2, 3 * N / 4] {
                while acked_rx.recv().expect("sender alive") < threshold {}
                let mut s = server.lock().unwrap();
                s.kill9();
                s.restart();
            }
        })
    };

    // One `natter send` after another, as a script would; a send that was not
    // acknowledged is retried with the same client id (so a lost ack never duplicates).
    let mut ids: HashMap<usize, i64> = HashMap::new();
    let mut failures = 0;
    let deadline = Instant::now() + Duration::from_secs(900);
    for i in 0..N {
        let client_id = format!("crash-{i}");
        let text = format!("msg {i:03}");
        loop {
            let out = alice.run([
                "send",
                "@bob",
                &text,
                "--client-id",
                &client_id,
                "--wait",
                "2s",
            ]);
            if out.code() == Some(0) {
                ids.insert(i, message_id(&out));
                // The killer may be done listening; that is fine.
                let _ = acked_tx.send(i + 1);
                break;
            }
            out.assert_code(1);
            failures += 1;
            assert!(
                Instant::now() < deadline && failures < 60,
                "sends keep failing\n{out}"
            );
        }
    }
    killer.join().expect("killer thread");

    let history = bob.history("@alice", &["--limit", "500"]);
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    let want: Vec<String> = (0..N).map(|i| format!("msg {i:03}")).collect();
    assert_eq!(
        texts, want,
        "every acknowledged message, in order, none twice"
    );
    for (i, m) in history.iter().enumerate() {
        assert_eq!(m.seq, i as i64 + 1, "seq has no gaps");
        assert_eq!(
            Some(&m.id),
            ids.get(&i),
            "the stored id is the one `send` printed"
        );
    }
    let starts = server
        .lock()
        .unwrap()
        .log()
        .matches("listening on http://")
        .count();
    assert_eq!(starts, 4, "the server was killed and restarted three times");
    eprintln!("{failures} send(s) exited 1 and were retried with the same client id");
}

#[test]
fn send_while_the_server_is_down_fails_clearly_after_its_wait() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.send("@bob", "before");
    server.kill9();

    let started = Instant::now();
    let out = alice.run(["send", "@bob", "lost cause", "--wait", "1s"]);
    out.assert_code(1).assert_stderr_contains("not sent");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "--wait bounds the retry"
    );

    server.restart();
    let texts: Vec<String> = bob
        .history("@alice", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        ["before"],
        "a send that exited 1 stored nothing and left nothing queued"
    );
    // And a later flush does not send it either.
    alice.run_ok(["outbox", "flush"]);
    let texts: Vec<String> = bob
        .history("@alice", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["before"]);
}

/// The entries of `natter outbox --json`.
fn outbox(user: &User) -> Vec<serde_json::Value> {
    user.run_ok(["outbox", "--json"]).json_lines()
}

#[test]
fn queued_message_survives_client_and_server_restarts_and_is_delivered_once_by_flush() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.send("@bob", "hello");
    server.kill9();

    let out = alice.run([
        "send",
        "@bob",
        "queued while down",
        "--queue",
        "--wait",
        "1s",
    ]);
    out.assert_ok();
    // The `natter` process that queued it has exited; the outbox is on disk.
    let queued = outbox(&alice);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(
        queued[0].to_string().contains("queued while down"),
        "{queued:?}"
    );

    server.restart();
    alice.run_ok(["outbox", "flush"]);
    assert!(
        outbox(&alice).is_empty(),
        "flushed messages leave the outbox"
    );
    alice.run_ok(["outbox", "flush"]);

    let texts: Vec<String> = bob
        .history("@alice", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        ["hello", "queued while down"],
        "delivered exactly once"
    );
}

#[test]
fn queued_messages_are_flushed_by_listen_once_and_in_order() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.send("ops", "before the outage");
    server.kill9();

    alice.run_ok(["send", "ops", "queued 1", "--queue", "--wait", "1s"]);
    alice
        .run_stdin(["send", "ops", "--queue", "--wait", "1s"], "queued 2")
        .assert_ok();
    assert_eq!(outbox(&alice).len(), 2);

    server.restart();
    // alice's listen flushes the outbox; bob's listen sees both, once, in order.
    let mut bob_listen = bob.listen(&[]);
    await_ready(&mut bob_listen, &carol, "bob");
    let _alice_listen = alice.listen(&[]);
    let first = bob_listen.expect_message(SOON, |m| m.text.starts_with("queued"));
    let second = bob_listen.expect_message(SOON, |m| m.text.starts_with("queued"));
    assert_eq!(
        (first.text.as_str(), second.text.as_str()),
        ("queued 1", "queued 2")
    );
    assert!(first.seq < second.seq);

    let deadline = Instant::now() + SOON;
    while !outbox(&alice).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the outbox never emptied: {:?}",
            outbox(&alice)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let texts: Vec<String> = bob
        .history("ops", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        [
            "alice created the group",
            "alice added bob",
            "before the outage",
            "queued 1",
            "queued 2"
        ]
    );
}

#[test]
fn sigterm_shuts_down_gracefully_and_keeps_the_data() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let id = alice.send("@bob", "kept");
    let status = server.sigterm();
    assert!(
        status.success(),
        "natterd exits 0 on SIGTERM, got {status}\n{}",
        server.log()
    );
    server.restart();
    let history = bob.history("@alice", &[]);
    assert_eq!(
        history
            .iter()
            .map(|m| (m.id, m.text.as_str()))
            .collect::<Vec<_>>(),
        [(id, "kept")]
    );
    // Sessions survive the restart too.
    alice.run_ok(["whoami"]);
}
