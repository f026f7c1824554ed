//! The live layer with the real binaries: presence, typing, delivery and read receipts,
//! unread counts and read markers, and what a non-member must not learn.

use std::time::{Duration, Instant};

use natter_e2e::ws::{Api, Ws};
use natter_e2e::{Listener, PASSWORD, SOON, Server, User};
use serde_json::{Value, json};

/// The server's heartbeat in these tests, so the offline bound is short.
const HEARTBEAT_SECS: u64 = 2;
/// natterd's default presence grace period (announced offline this long after the last
/// connection closed).
const GRACE: Duration = Duration::from_secs(2);

fn start() -> Server {
    Server::start_with(&[("NATTERD_HEARTBEAT_SECS", "2")])
}

fn is(v: &Value, kind: &str) -> bool {
    v["type"] == kind
}

fn presence_of(v: &Value, user: &str, state: &str) -> bool {
    is(v, "presence") && v["user"] == user && v["state"] == state
}

/// `natter listen --json` that is connected (its "connected to" note is out).
fn listening(user: &User) -> Listener {
    let mut l = user.listen(&[]);
    l.expect_stderr(SOON, "connected to");
    l
}

#[test]
fn contacts_see_each_other_come_online_and_go_offline_after_kill_9() {
    let server = start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.send("@bob", "hi");

    let mut bob_l = listening(&bob);
    let mut alice_l = listening(&alice);
    bob_l.expect_json(SOON, |v| presence_of(v, "alice", "online"));
    bob.run_ok(["presence", "alice"])
        .assert_ok()
        .lines()
        .contains(&"alice is online")
        .then_some(())
        .expect("natter presence shows alice online");

    // Away by hand, from another device; then back.
    let phone = alice.device();
    phone.run_ok(["status", "away"]);
    bob_l.expect_json(SOON, |v| presence_of(v, "alice", "away"));
    phone.run_ok(["status", "online"]);
    bob_l.expect_json(SOON, |v| presence_of(v, "alice", "online"));

    // kill -9: no goodbye. The stated bound: two heartbeat intervals for a vanished
    // connection to be dropped, plus the grace period, plus one tick.
    alice_l.kill9();
    let killed = Instant::now();
    let offline = bob_l.expect_json(SOON, |v| presence_of(v, "alice", "offline"));
    let took = killed.elapsed();
    let bound = Duration::from_secs(2 * HEARTBEAT_SECS) + GRACE + Duration::from_millis(500);
    assert!(
        took <= bound,
        "offline after {took:?}; the bound is {bound:?}"
    );
    assert!(
        offline["last_seen"].as_str().is_some(),
        "offline carries last seen: {offline}"
    );
    let out = bob.run_ok(["presence", "alice", "--json"]);
    let shown = &out.json_lines()[0];
    assert_eq!(shown["state"], "offline", "{out}");
    assert!(shown["last_seen"].is_string(), "{out}");
    let human = bob.run_ok(["presence"]);
    assert!(
        human.stdout.contains("alice is offline (last seen "),
        "{human}"
    );
}

#[test]
fn typing_reaches_the_other_member_expires_and_ends_with_the_message() {
    let server = start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    let mut bob_l = listening(&bob);

    alice.run_ok(["typing", "ops"]);
    let started = bob_l.expect_json(SOON, |v| is(v, "typing"));
    let seen = Instant::now();
    assert_eq!(
        (
            &started["user"],
            &started["conversation"],
            &started["active"]
        ),
        (&json!("alice"), &json!("ops"), &json!(true))
    );
    // Nobody renews it: it expires by itself after about 6 s.
    let stopped = bob_l.expect_json(SOON, |v| is(v, "typing"));
    let after = seen.elapsed();
    assert_eq!(stopped["active"], false, "{stopped}");
    assert!(
        after >= Duration::from_secs(4) && after <= Duration::from_secs(9),
        "typing expired after {after:?}"
    );

    // Typing, then the message: the indicator ends before the message shows.
    alice.run_ok(["typing", "ops"]);
    bob_l.expect_json(SOON, |v| is(v, "typing") && v["active"] == true);
    alice.send("ops", "done typing");
    let lines = bob_l.json_until(SOON, |v| is(v, "message"));
    assert!(
        lines
            .iter()
            .any(|v| is(v, "typing") && v["user"] == "alice" && v["active"] == false),
        "the message ends the typing indicator: {lines:?}"
    );

    // `--stop` ends it at once, long before it would expire.
    alice.run_ok(["typing", "ops"]);
    bob_l.expect_json(SOON, |v| is(v, "typing") && v["active"] == true);
    let asked = Instant::now();
    alice.run_ok(["typing", "ops", "--stop"]);
    let next = bob_l.expect_json(SOON, |v| is(v, "typing") && v["user"] == "alice");
    assert_eq!(next["active"], false, "{next}");
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "stopped, not expired"
    );
}

#[test]
fn a_non_member_sees_no_presence_typing_or_receipts_of_a_group() {
    let server = start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let eve = server.register("eve");
    let carol = server.register("carol");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    // eve shares a conversation with carol only.
    carol.send("@eve", "hello eve");

    let mut eve_l = listening(&eve);
    let mut bob_l = listening(&bob);
    let mut alice_l = listening(&alice);
    bob_l.expect_json(SOON, |v| presence_of(v, "alice", "online"));

    bob.run_ok(["typing", "ops"]);
    alice_l.expect_json(SOON, |v| is(v, "typing") && v["user"] == "bob");
    alice.send("ops", "secret plans");
    alice_l.expect_json(SOON, |v| is(v, "receipt") && v["receipt"] == "delivered");
    bob.run_ok(["read", "ops"]);
    alice_l.expect_json(SOON, |v| is(v, "receipt") && v["receipt"] == "read");
    alice.run_ok(["status", "away"]);
    // Once bob has alice's change, eve would have had hers in the same batch.
    bob_l.expect_json(SOON, |v| presence_of(v, "alice", "away"));

    // A sentinel from carol: everything eve got before it is all she got.
    carol.send("@eve", "sentinel");
    let seen = eve_l.json_until(SOON, |v| is(v, "message") && v["text"] == "sentinel");
    for v in &seen {
        let leaked = (is(v, "presence") && v["user"] != "eve" && v["user"] != "carol")
            || is(v, "typing")
            || is(v, "receipt")
            || v["conversation"] == "ops";
        assert!(!leaked, "eve learned about the group: {v}\nall: {seen:?}");
    }

    // Asking does not help either.
    let out = eve.run(["presence", "alice", "bob", "--json"]);
    out.assert_code(1)
        .assert_stderr_contains("share a conversation");
    assert!(out.stdout.trim().is_empty(), "{out}");
    eve.run(["typing", "ops"])
        .assert_code(1)
        .assert_stderr_contains("not a member");
    eve.run(["receipts", "ops"])
        .assert_code(1)
        .assert_stderr_contains("not a member");
    eve.run(["read", "ops"]).assert_code(1);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = server.url();
        let eve_api = Api::login(&url, "eve", PASSWORD).await;
        let alice_api = Api::login(&url, "alice", PASSWORD).await;
        let (_, group) = alice_api.get("/groups/ops").await;
        let ops = group["id"].as_i64().unwrap();
        let (status, body) = eve_api
            .get(&format!("/conversations/{ops}/receipts?seq=1"))
            .await;
        assert_eq!(
            (status, &body["code"]),
            (403, &json!("not_member")),
            "{body}"
        );
        let (status, body) = eve_api.get(&format!("/conversations/{ops}/state")).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = eve_api.get("/presence?users=alice,bob").await;
        assert_eq!((status, body), (200, json!([])));
        // Frames from a non-member are refused and change nothing.
        let mut ws = Ws::connect(&url, &eve_api.token, None).await;
        ws.expect(SOON, |f| f["type"] == "hello").await;
        ws.send_json(&json!({"type": "typing", "conversation_id": ops}))
            .await;
        let err = ws.expect(SOON, |f| f["type"] == "error").await;
        assert_eq!(err["code"], "not_member");
        ws.send_json(&json!({"type": "read", "conversation_id": ops, "seq": 1}))
            .await;
        let err = ws.expect(SOON, |f| f["type"] == "error").await;
        assert_eq!(err["code"], "not_member");
    });
}

#[test]
fn delivered_then_read_receipts_reach_the_sender_with_group_counts() {
    let server = start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    alice.run_ok(["group", "create", "ops", "--members", "bob,carol"]);
    let mut alice_l = listening(&alice);
    let _bob_l = listening(&bob);
    let _carol_l = listening(&carol);

    let seq = {
        let out = alice.run_ok(["send", "ops", "hello team", "--json"]);
        out.json_lines()[0]["seq"].as_i64().unwrap()
    };
    let mut delivered = Vec::new();
    while delivered.len() < 2 {
        let r = alice_l.expect_json(SOON, |v| is(v, "receipt"));
        assert_eq!(r["receipt"], "delivered", "delivery comes first: {r}");
        assert_eq!(
            (r["message_seq"].as_i64(), r["of"].as_i64()),
            (Some(seq), Some(2))
        );
        delivered.push(r);
    }
    let counts: Vec<i64> = delivered
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2], "delivered to 1 of 2, then 2 of 2");
    let mut who: Vec<&str> = delivered
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    who.sort();
    assert_eq!(who, ["bob", "carol"]);

    bob.run_ok(["read", "ops"]);
    let read = alice_l.expect_json(SOON, |v| is(v, "receipt"));
    assert_eq!(
        (&read["receipt"], &read["user"], &read["count"], &read["of"]),
        (&json!("read"), &json!("bob"), &json!(1), &json!(2))
    );
    // By whom, on request.
    let out = alice.run_ok(["receipts", "ops", "--json"]);
    let r = &out.json_lines()[0];
    assert_eq!(r["delivered_to"], json!(["bob", "carol"]), "{out}");
    assert_eq!(r["read_by"], json!(["bob"]), "{out}");
    let human = alice.run_ok(["receipts", "ops"]);
    assert!(
        human
            .stdout
            .contains("delivered to 2 of 2 (bob, carol); read by 1 of 2 (bob)"),
        "{human}"
    );

    // carol turns read receipts off: her reading sends none, and she sees none.
    carol.run_ok(["settings", "--read-receipts", "off"]);
    carol.run_ok(["read", "ops"]);
    let second = alice.send("ops", "second");
    let _ = second;
    bob.run_ok(["read", "ops"]);
    let lines = alice_l.json_until(SOON, |v| is(v, "receipt") && v["receipt"] == "read");
    for v in &lines {
        assert!(
            !(is(v, "receipt") && v["receipt"] == "read" && v["user"] == "carol"),
            "carol's read receipt leaked: {lines:?}"
        );
    }
    assert_eq!(lines.last().unwrap()["user"], "bob");
    let out = alice.run_ok(["receipts", "ops", "--json"]);
    assert_eq!(out.json_lines()[0]["read_by"], json!(["bob"]), "{out}");
    // carol asks about her own message: bob read it, but she sees no readers.
    carol.send("ops", "from carol");
    bob.run_ok(["read", "ops"]);
    let out = carol.run_ok(["receipts", "ops", "--json"]);
    assert_eq!(out.json_lines()[0]["read_by"], json!([]), "{out}");
}

#[test]
fn unread_counts_agree_across_devices_and_survive_a_restart() {
    let mut server = start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let laptop = bob.device();
    for i in 1..=3 {
        alice.send("@bob", &format!("m{i}"));
    }
    let unread = |u: &User| -> i64 {
        let out = u.run_ok(["conversations", "--json"]);
        let lines = out.json_lines();
        let c = lines
            .iter()
            .find(|c| c["conversation"] == "@alice")
            .unwrap_or_else(|| panic!("no @alice in {out}"));
        c["unread"].as_i64().unwrap()
    };
    assert_eq!(unread(&bob), 3);
    assert_eq!(unread(&laptop), 3);
    let human = bob.run_ok(["conversations"]);
    assert!(human.stdout.contains("3 unread"), "{human}");

    let mut bob_l = listening(&bob);
    laptop.run_ok(["read", "@alice"]);
    let ev = bob_l.expect_json(SOON, |v| is(v, "unread"));
    assert_eq!(
        (&ev["conversation"], &ev["unread"]),
        (&json!("@alice"), &json!(0))
    );
    assert_eq!(unread(&bob), 0);

    alice.send("@bob", "m4");
    let ev = bob_l.expect_json(SOON, |v| is(v, "unread"));
    assert_eq!(ev["unread"], 1, "{ev}");
    alice.send("@bob", "m5");
    let ev = bob_l.expect_json(SOON, |v| is(v, "unread"));
    assert_eq!(ev["unread"], 2, "{ev}");
    // Own messages are never unread.
    bob.send("@alice", "reply");
    assert_eq!(unread(&laptop), 2);

    drop(bob_l);
    server.kill9();
    server.restart();
    assert_eq!(unread(&bob), 2, "the read marker is durable");
    assert_eq!(unread(&laptop), 2);
    laptop.run_ok(["read", "@alice"]);
    assert_eq!(unread(&bob), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_or_out_of_order_receipts_never_move_a_marker_back() {
    let server = start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;
    for i in 1..=5 {
        alice.send(conv, &format!("c{i}"), &format!("m{i}")).await;
    }
    let state = |api: &Api| {
        let api = api.clone();
        async move {
            let (status, body) = api.get(&format!("/conversations/{conv}/state")).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let read = |seq: i64| json!({ "seq": seq });

    let (status, body) = bob
        .post(&format!("/conversations/{conv}/read"), &read(4))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["read_seq"], &body["unread"]), (&json!(4), &json!(1)));
    // An older marker (a replayed or late request) changes nothing.
    let (_, body) = bob
        .post(&format!("/conversations/{conv}/read"), &read(2))
        .await;
    assert_eq!((&body["read_seq"], &body["unread"]), (&json!(4), &json!(1)));

    // Over the socket, out of order and repeated; a ping's pong says all were handled.
    let mut ws = Ws::connect(&url, &bob.token, None).await;
    ws.expect(SOON, |f| f["type"] == "hello").await;
    for (kind, seq) in [
        ("read", 3),
        ("delivered", 1),
        ("read", 5),
        ("read", 1),
        ("delivered", 2),
        ("read", 5),
    ] {
        ws.send_json(&json!({"type": kind, "conversation_id": conv, "seq": seq}))
            .await;
    }
    ws.send_json(&json!({"type": "ping", "nonce": 7})).await;
    ws.expect(SOON, |f| f["type"] == "pong").await;
    let s = state(&bob).await;
    assert_eq!(
        (&s["read_seq"], &s["unread"]),
        (&json!(5), &json!(0)),
        "{s}"
    );
    // Beyond the latest message is clamped to it, so a future message stays unread.
    ws.send_json(&json!({"type": "read", "conversation_id": conv, "seq": 99}))
        .await;
    ws.send_json(&json!({"type": "ping", "nonce": 8})).await;
    ws.expect(SOON, |f| f["type"] == "pong").await;
    alice.send(conv, "c6", "m6").await;
    let s = state(&bob).await;
    assert_eq!(
        (&s["read_seq"], &s["unread"]),
        (&json!(5), &json!(1)),
        "{s}"
    );

    // Delivery receipts replayed: alice's view counts bob once.
    let (_, r) = alice
        .get(&format!("/conversations/{conv}/receipts?seq=5"))
        .await;
    assert_eq!(r["delivered_to"], json!(["bob"]), "{r}");
    assert_eq!(r["read_by"], json!(["bob"]), "{r}");
    assert_eq!(r["of"], 1);
    let (status, r) = alice
        .get(&format!("/conversations/{conv}/receipts?seq=6"))
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["read_by"], json!([]), "{r}");
}
