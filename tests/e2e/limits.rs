//! Size limits give clear errors and store nothing.

use natter_e2e::Server;

#[test]
fn oversized_message_is_refused_clearly_and_nothing_is_stored() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");

    let out = alice.run_stdin(["send", "@bob"], "x".repeat(20480));
    out.assert_code(1)
        .assert_stderr_contains("message is 20480 bytes; the limit is 16384");
    assert!(
        out.stdout.trim().is_empty(),
        "no message id for a refused message\n{out}"
    );

    // Exactly at the limit is fine, and it is the conversation's first message.
    let at_limit = "y".repeat(16384);
    let out = alice.run_stdin(["send", "@bob"], at_limit.clone());
    out.assert_ok();
    let history = bob.history("@alice", &[]);
    assert_eq!(history.len(), 1);
    assert_eq!(
        history[0].seq, 1,
        "the refused message took no sequence number"
    );
    assert_eq!(history[0].text.len(), 16384, "never truncated");
    assert_eq!(history[0].text, at_limit);
}

#[test]
fn the_server_enforces_its_configured_limit() {
    // The client knows only the default limit; the server's own (smaller) one still holds.
    let server = Server::start_with(&[("NATTERD_MAX_MESSAGE_BYTES", "1000")]);
    let alice = server.register("alice");
    let bob = server.register("bob");
    let out = alice.run_stdin(["send", "@bob"], "z".repeat(2000));
    out.assert_code(1)
        .assert_stderr_contains("2000 bytes")
        .assert_stderr_contains("1000");
    alice.send("@bob", "small");
    let texts: Vec<String> = bob
        .history("@alice", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["small"]);
}

#[test]
fn empty_message_is_refused() {
    let server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    let out = alice.run_stdin(["send", "@bob"], "");
    assert_ne!(out.code(), Some(0), "{out}");
    out.assert_stderr_contains("empty");
}
