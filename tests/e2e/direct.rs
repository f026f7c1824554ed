//! Direct conversations in real time, on every device.

use natter_e2e::{SOON, Server, await_ready};

#[test]
fn direct_message_round_trip_in_real_time_on_every_device() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let alice_phone = alice.device();

    let mut bob_listen = bob.listen(&[]);
    await_ready(&mut bob_listen, &carol, "bob");
    let mut phone_listen = alice_phone.listen(&[]);
    await_ready(&mut phone_listen, &carol, "alice");

    let id = alice.send("@bob", "hello bob");

    let got = bob_listen.expect_message(SOON, |m| m.sender == "alice");
    assert_eq!(got.text, "hello bob");
    assert_eq!(
        got.conversation, "@alice",
        "bob sees the conversation as @alice"
    );
    assert_eq!(
        got.id, id,
        "the id `natter send` printed is the stored message's id"
    );
    assert_eq!(got.seq, 1, "first message of a new direct conversation");
    assert!(!got.client_id.is_empty());
    assert!(
        got.sent_at.contains('T') && (got.sent_at.ends_with('Z') || got.sent_at.contains('+')),
        "RFC 3339: {}",
        got.sent_at
    );

    // alice's other device sees her own message, as the conversation with bob.
    let mine = phone_listen.expect_message(SOON, |m| m.sender == "alice");
    assert_eq!(mine.conversation, "@bob");
    assert_eq!(
        (mine.id, mine.seq, mine.text.as_str()),
        (id, 1, "hello bob")
    );
    assert_eq!(mine.conversation_id, got.conversation_id);

    // bob answers, from stdin this time; alice's phone gets it in order.
    let out = bob.run_stdin(["send", "@alice"], "hi alice\nsecond line\n");
    out.assert_ok();
    let reply = phone_listen.expect_message(SOON, |m| m.sender == "bob");
    assert_eq!(reply.text.trim_end(), "hi alice\nsecond line");
    assert_eq!(reply.seq, 2);
    assert_eq!(reply.conversation, "@bob");

    // Both see the same history.
    let a: Vec<_> = alice
        .history("@bob", &[])
        .into_iter()
        .map(|m| (m.id, m.seq, m.sender))
        .collect();
    let b: Vec<_> = bob
        .history("@alice", &[])
        .into_iter()
        .map(|m| (m.id, m.seq, m.sender))
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
}

#[test]
fn sending_to_an_unknown_user_is_a_clear_error() {
    let server = Server::start();
    let alice = server.register("alice");
    let out = alice.run(["send", "@nobody", "hello?"]);
    out.assert_code(1).assert_stderr_contains("nobody");
    let out = alice.run(["history", "@nobody"]);
    out.assert_code(1).assert_stderr_contains("nobody");
}

#[test]
fn human_output_strips_terminal_escapes_and_json_keeps_them() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let evil = "look \u{1b}]0;pwned\u{7}here \u{1b}[31mred\u{1b}[0m\tand\u{7} bell";
    alice.send("@bob", evil);
    let human = bob.run_ok(["history", "@alice"]);
    assert!(
        !human.stdout.contains('\u{1b}') && !human.stdout.contains('\u{7}'),
        "raw escapes reached the terminal\n{human:?}"
    );
    assert!(
        human.stdout.contains("look here red\tand bell"),
        "the visible text stays\n{human}"
    );
    let json = bob.history("@alice", &[]);
    assert_eq!(json[0].text, evil, "--json keeps the exact text");
}

#[test]
fn conversations_are_listed_latest_activity_first() {
    let server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    let _carol = server.register("carol");
    alice.send("@bob", "one");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.send("ops", "two");
    alice.send("@carol", "three");
    let out = alice.run_ok(["conversations", "--json"]);
    let names: Vec<String> = out.json_lines().iter().map(conversation_name).collect();
    assert_eq!(names, ["@carol", "ops", "@bob"], "{out}");
    // Human output names them too, in the same order.
    let human = alice.run_ok(["conversations"]).stdout;
    let pos = |s: &str| {
        human
            .find(s)
            .unwrap_or_else(|| panic!("{s} missing from\n{human}"))
    };
    assert!(
        pos("carol") < pos("ops") && pos("ops") < pos("bob"),
        "{human}"
    );
}

/// The target a `conversations --json` line names: `@peer` or the group name.
fn conversation_name(v: &serde_json::Value) -> String {
    for key in ["conversation", "target"] {
        if let Some(s) = v[key].as_str() {
            return s.to_owned();
        }
    }
    match (v["kind"].as_str(), v["peer"].as_str(), v["name"].as_str()) {
        (_, Some(peer), _) => format!("@{peer}"),
        (_, None, Some(name)) => name.to_owned(),
        _ => panic!("conversation line names no conversation: {v}"),
    }
}
