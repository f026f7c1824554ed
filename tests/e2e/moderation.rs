//! Group roles and moderation, and the authorization matrix: what owners, admins and
//! members may do, and that non-members and removed members are refused and learn nothing.

use std::time::Duration;

use natter_e2e::{Server, User, await_ready};

fn refused(user: &User, args: &[&str], needle: &str) {
    let out = user.run(args);
    out.assert_code(1).assert_stderr_contains(needle);
}

#[test]
fn each_role_can_do_exactly_what_it_may_and_every_change_is_in_the_timeline() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let dave = server.register("dave");
    let erin = server.register("erin");
    alice.run_ok(["group", "create", "ops", "--members", "bob,carol,dave"]);
    let mut watch = carol.listen(&["ops", "@alice"]);
    await_ready(&mut watch, &alice, "carol");
    let mut dave_watch = dave.listen(&["ops", "@alice"]);
    await_ready(&mut dave_watch, &alice, "dave");
    alice.run_ok(["group", "promote", "ops", "bob"]);

    // A member manages nothing.
    for args in [
        &["group", "add", "ops", "erin"][..],
        &["group", "remove", "ops", "dave"],
        &["group", "promote", "ops", "dave"],
        &["group", "demote", "ops", "bob"],
        &["group", "rename", "ops", "ops2"],
        &["group", "topic", "ops", "mine"],
    ] {
        refused(&carol, args, "only the owner or an admin of ops");
    }
    refused(
        &carol,
        &["group", "transfer", "ops", "carol"],
        "only the owner of ops",
    );
    refused(
        &carol,
        &["group", "delete", "ops", "--yes"],
        "only the owner of ops",
    );

    // An admin manages members and settings, never the owner.
    bob.run_ok(["group", "add", "ops", "erin"]);
    bob.run_ok(["group", "remove", "ops", "dave"]);
    // dave stops receiving the group at once: a group message sent after his removal
    // never reaches him, though a direct message sent after it does.
    alice.send("ops", "not for dave");
    alice.send("@dave", "marker");
    let seen = dave_watch.expect_message(Duration::from_secs(20), |m| m.text == "marker");
    assert_eq!(seen.conversation, "@alice");
    assert!(
        !dave_watch.stdout().contains("not for dave"),
        "{}",
        dave_watch.stdout()
    );
    bob.run_ok(["group", "promote", "ops", "carol"]);
    bob.run_ok(["group", "demote", "ops", "carol"]);
    bob.run_ok(["group", "topic", "ops", "deploys", "and", "incidents"]);
    bob.run_ok(["group", "rename", "ops", "ops2"]);
    bob.run_ok(["group", "rename", "ops2", "ops"]);
    refused(
        &bob,
        &["group", "remove", "ops", "alice"],
        "owner of ops cannot be removed",
    );
    refused(
        &bob,
        &["group", "demote", "ops", "alice"],
        "owner of ops cannot be demoted",
    );
    refused(
        &bob,
        &["group", "transfer", "ops", "bob"],
        "only the owner of ops",
    );
    refused(
        &bob,
        &["group", "delete", "ops", "--yes"],
        "only the owner of ops",
    );
    refused(&alice, &["group", "leave", "ops"], "transfer");
    erin.run_ok(["group", "create", "dev"]);
    refused(
        &alice,
        &["group", "rename", "ops", "dev"],
        "a group named dev already exists",
    );

    let info = erin.run_ok(["group", "info", "ops", "--json"]).json_lines()[0].clone();
    assert_eq!(info["topic"], "deploys and incidents");
    let roles: Vec<(String, String)> = info["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [
        ("alice", "owner"),
        ("bob", "admin"),
        ("carol", "member"),
        ("erin", "member"),
    ];
    assert_eq!(roles, want.map(|(a, b)| (a.to_string(), b.to_string())));

    // The owner hands over and leaves; the new owner deletes.
    alice.run_ok(["group", "transfer", "ops", "bob"]);
    alice.run_ok(["group", "leave", "ops"]);
    refused(&alice, &["history", "ops"], "not a member of group ops");

    // The whole story is in the timeline, for members, live and in history.
    let kinds: Vec<String> = carol
        .history("ops", &["--limit", "500"])
        .into_iter()
        .map(|m| m.text)
        .collect();
    let want_texts = [
        "alice created the group",
        "alice added bob",
        "alice added carol",
        "alice added dave",
        "alice made bob an admin",
        "bob added erin",
        "bob removed dave",
        "not for dave",
        "bob made carol an admin",
        "bob made carol a member",
        "bob set the topic: deploys and incidents",
        "bob renamed ops to ops2",
        "bob renamed ops2 to ops",
        "alice made bob the owner",
        "alice left",
    ];
    assert_eq!(kinds, want_texts, "timeline");
    let raw = carol
        .run_ok(["history", "ops", "--json", "--limit", "500"])
        .json_lines();
    assert_eq!(raw[1]["event"]["kind"], "member_added");
    assert_eq!(raw[1]["event"]["user"], "bob");
    assert_eq!(raw[1]["sender"], "alice");
    // carol saw the same events live, in order.
    for text in &want_texts[4..] {
        watch.expect_message(Duration::from_secs(20), |m| {
            m.conversation == "ops" && m.text == *text
        });
    }

    bob.run_ok(["group", "delete", "ops", "--yes"]);
    refused(&carol, &["history", "ops"], "not a member of group ops");
    // The name is free again.
    carol.run_ok(["group", "create", "ops"]);
}

#[test]
fn non_members_and_removed_members_are_refused_everything_and_learn_nothing() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let mallory = server.register("mallory");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.send("ops", "secret plans");
    bob.send("ops", "ack");
    // A file in the group, which bob could download while he was a member.
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans.txt");
    std::fs::write(&plans, "secret file\n").unwrap();
    let sent = alice.run_ok([
        "send",
        "ops",
        "--file",
        plans.to_str().unwrap(),
        "--json",
        "plans attached",
    ]);
    let file_id = sent.json_lines()[0]["attachments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bob.run_ok([
        "download",
        &file_id,
        "-o",
        dir.path().join("bob.txt").to_str().unwrap(),
    ]);
    alice.run_ok(["group", "remove", "ops", "bob"]);
    alice.send("ops", "after bob left");

    for outsider in [&mallory, &bob] {
        // Every operation on the group is refused with the same answer as for a group
        // that does not exist, so nothing is learned about it.
        let ops: Vec<Vec<&str>> = vec![
            vec!["history", "GROUP"],
            vec!["send", "GROUP", "let me in"],
            vec!["typing", "GROUP"],
            vec!["read", "GROUP"],
            vec!["receipts", "GROUP", "1"],
            vec!["group", "info", "GROUP"],
            vec!["group", "add", "GROUP", "mallory"],
            vec!["group", "remove", "GROUP", "alice"],
            vec!["group", "promote", "GROUP", "alice"],
            vec!["group", "rename", "GROUP", "mine"],
            vec!["group", "topic", "GROUP", "mine"],
            vec!["group", "transfer", "GROUP", "mallory"],
            vec!["group", "delete", "GROUP", "--yes"],
            vec!["group", "leave", "GROUP"],
            vec!["mute", "GROUP"],
        ];
        for op in ops {
            let real: Vec<&str> = op
                .iter()
                .map(|a| if *a == "GROUP" { "ops" } else { a })
                .collect();
            let fake: Vec<&str> = op
                .iter()
                .map(|a| if *a == "GROUP" { "nosuch" } else { a })
                .collect();
            let a = outsider.run(&real);
            let b = outsider.run(&fake);
            a.assert_code(1);
            b.assert_code(1);
            assert_eq!(
                a.stderr.replace("ops", "G"),
                b.stderr.replace("nosuch", "G"),
                "{} learned something from `{}`",
                outsider.name,
                real.join(" ")
            );
            assert!(
                !a.stderr.contains("secret") && !a.stdout.contains("secret"),
                "{a}"
            );
        }
        // The group's file: the same answer as for an id that does not exist.
        let fake_id = "01936b3e-0000-7000-8000-000000000000";
        let out = dir.path().join("out.txt");
        let out = out.to_str().unwrap();
        let a = outsider.run(["download", &file_id, "-o", out]);
        let b = outsider.run(["download", fake_id, "-o", out]);
        a.assert_code(1);
        b.assert_code(1);
        assert_eq!(
            a.stderr.replace(&file_id, "ID"),
            b.stderr.replace(fake_id, "ID"),
            "{} learned that the file exists",
            outsider.name
        );
        assert!(!std::path::Path::new(out).exists(), "nothing was saved");
        let groups = outsider.run_ok(["group", "list", "--json"]);
        assert!(!groups.stdout.contains("\"ops\""), "{groups}");
        let convs = outsider.run_ok(["conversations", "--json"]);
        assert!(!convs.stdout.contains("\"ops\""), "{convs}");
    }
    // Nothing the outsiders tried reached the group.
    let texts: Vec<String> = alice
        .history("ops", &[])
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        texts,
        [
            "alice created the group",
            "alice added bob",
            "secret plans",
            "ack",
            "plans attached",
            "alice removed bob",
            "after bob left"
        ]
    );
}
