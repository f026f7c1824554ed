//! Groups: creation, real-time fan-out to members, management, and what non-members see.

use natter_e2e::{SOON, Server, await_ready};

#[test]
fn group_round_trip_reaches_every_member_in_real_time() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let prober = server.register("prober");

    alice.run_ok(["group", "create", "ops", "--members", "bob,carol"]);

    let mut bob_listen = bob.listen(&[]);
    await_ready(&mut bob_listen, &prober, "bob");
    let mut carol_listen = carol.listen(&[]);
    await_ready(&mut carol_listen, &prober, "carol");
    let mut alice_listen = alice.listen(&[]);
    await_ready(&mut alice_listen, &prober, "alice");

    // A script pipes a message in.
    let out = alice.run_stdin(["send", "ops"], "deploy done\n");
    out.assert_ok();
    let id = natter_e2e::message_id(&out);
    for (who, listen) in [
        ("bob", &mut bob_listen),
        ("carol", &mut carol_listen),
        ("alice", &mut alice_listen),
    ] {
        let m = listen.expect_message(SOON, |m| m.sender == "alice" && m.conversation == "ops");
        assert_eq!(m.text.trim_end(), "deploy done", "{who}");
        // seq 1-3 are the group's creation events ("alice added bob", ...).
        assert_eq!((m.id, m.seq), (id, 4), "{who}");
    }

    // `#ops` names the same group.
    let id2 = bob.send("#ops", "ack from bob");
    for listen in [&mut carol_listen, &mut alice_listen] {
        let m = listen.expect_message(SOON, |m| m.sender == "bob");
        assert_eq!(
            (m.conversation.as_str(), m.id, m.seq, m.text.as_str()),
            ("ops", id2, 5, "ack from bob")
        );
    }

    let history: Vec<_> = carol
        .history("ops", &[])
        .into_iter()
        .map(|m| (m.seq, m.sender, m.text.trim_end().to_owned()))
        .collect();
    assert_eq!(
        history,
        [
            (1, "alice".to_owned(), "alice created the group".to_owned()),
            (2, "alice".to_owned(), "alice added bob".to_owned()),
            (3, "alice".to_owned(), "alice added carol".to_owned()),
            (4, "alice".to_owned(), "deploy done".to_owned()),
            (5, "bob".to_owned(), "ack from bob".to_owned())
        ]
    );
}

#[test]
fn group_membership_is_managed_by_its_owner() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let dave = server.register("dave");

    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    let info = alice.run_ok(["group", "info", "ops", "--json"]);
    let members = member_names(&info.json_lines()[0]);
    assert_eq!(members, ["alice", "bob"], "{info}");

    // A plain member cannot add people; the owner can.
    let out = bob.run(["group", "add", "ops", "carol"]);
    out.assert_code(1);
    alice.run_ok(["group", "add", "ops", "carol", "dave"]);
    let info = bob.run_ok(["group", "info", "ops", "--json"]);
    assert_eq!(
        member_names(&info.json_lines()[0]),
        ["alice", "bob", "carol", "dave"],
        "{info}"
    );
    assert!(info.stdout.contains("owner"), "roles are shown\n{info}");

    // Everyone in it lists it; the owner removes dave, who then cannot post.
    let list = carol.run_ok(["group", "list", "--json"]);
    assert!(list.stdout.contains("\"ops\""), "{list}");
    alice.run_ok(["group", "remove", "ops", "dave"]);
    dave.run(["send", "ops", "still here?"])
        .assert_code(1)
        .assert_stderr_contains("not a member");
    let list = dave.run_ok(["group", "list", "--json"]);
    assert!(!list.stdout.contains("\"ops\""), "{list}");

    // A taken group name is refused.
    let out = bob.run(["group", "create", "OPS"]);
    out.assert_code(1).assert_stderr_contains("ops");
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("taken") || err.contains("already exists"),
        "{out}"
    );
}

#[test]
fn non_members_cannot_read_or_post_to_a_group() {
    let server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    let mallory = server.register("mallory");

    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.send("ops", "secret plan");

    let mut listen = mallory.listen(&[]);
    await_ready(&mut listen, &alice, "mallory");

    for args in [
        &["send", "ops", "let me in"][..],
        &["send", "#ops", "let me in"][..],
        &["history", "ops"][..],
        &["history", "ops", "--json"][..],
        &["group", "info", "ops"][..],
    ] {
        let out = mallory.run(args);
        out.assert_code(1)
            .assert_stderr_contains("not a member")
            .assert_stderr_contains("ops");
        assert!(
            !out.stdout.contains("secret plan") && !out.stderr.contains("secret plan"),
            "{out}"
        );
    }
    // A group that does not exist looks the same: a non-member learns nothing.
    mallory
        .run(["send", "nosuch", "hello"])
        .assert_code(1)
        .assert_stderr_contains("not a member");

    // While mallory listens, group traffic never reaches her; a DM sent after it does,
    // and it is the first non-probe message she sees.
    alice.send("ops", "more secrets");
    alice.send("@mallory", "marker");
    let m = listen.expect_message(SOON, |m| !m.text.starts_with("probe "));
    assert_eq!(
        (m.conversation.as_str(), m.text.as_str()),
        ("@alice", "marker")
    );
    assert!(!listen.stdout().contains("secret"), "{}", listen.stdout());

    // Nothing mallory tried was stored.
    let texts: Vec<_> = alice
        .history("ops", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        [
            "alice created the group",
            "alice added bob",
            "secret plan",
            "more secrets"
        ]
    );
}

/// Usernames of a `group info --json` object, in the order given.
fn member_names(info: &serde_json::Value) -> Vec<String> {
    info["members"]
        .as_array()
        .unwrap_or_else(|| panic!("group info has no members array: {info}"))
        .iter()
        .map(|m| {
            m["username"]
                .as_str()
                .or(m.as_str())
                .expect("member name")
                .to_owned()
        })
        .collect()
}
