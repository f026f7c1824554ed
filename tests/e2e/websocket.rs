//! The WebSocket gateway, at the wire: bad input gets error frames (never a crash), limits
//! close only the offending connection, and a slow consumer resumes without loss.
//! Setup goes over REST so these tests do not depend on the CLI.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use natter_e2e::ws::{Api, Event, Ws};
use natter_e2e::{PASSWORD, Server};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_an_error_frame_and_the_socket_keeps_working() {
    let server = Server::start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;
    alice.send(conv, "a-1", "hi").await;

    let mut ws = Ws::connect(&url, &bob.token, None).await;
    let hello = ws.expect(T, |f| f["type"] == "hello").await;
    assert_eq!(hello["user"]["username"], "bob");

    let garbage = [
        ("invalid JSON", Frame::Text("{not json".into())),
        (
            "unknown type",
            Frame::Text(json!({"type": "teleport", "to": "mars"}).to_string()),
        ),
        ("no type", Frame::Text(json!({"nonce": 1}).to_string())),
        (
            "send missing fields",
            Frame::Text(json!({"type": "send", "text": "x"}).to_string()),
        ),
        ("JSON that is not an object", Frame::Text("[1,2,3]".into())),
        (
            "binary garbage",
            Frame::Binary(vec![0xff, 0x00, 0xfe, 0x13, 0x37, 0x80]),
        ),
    ];
    for (i, (what, frame)) in garbage.into_iter().enumerate() {
        match frame {
            Frame::Text(t) => ws.send_text(t).await,
            Frame::Binary(b) => ws.send_binary(b).await,
        }
        let err = ws.expect(T, |f| f["type"] == "error").await;
        assert_eq!(err["code"], "malformed_frame", "{what}: {err}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {err}"
        );
        // Still alive: a ping gets its pong.
        let nonce = 1000 + i as u64;
        ws.send_json(&json!({"type": "ping", "nonce": nonce})).await;
        let pong = ws.expect(T, |f| f["type"] == "pong").await;
        assert_eq!(pong["nonce"], nonce, "{what}");
    }

    // A real send over the same socket still works, and reaches alice's history.
    ws.send_json(&json!({"type": "send", "conversation_id": conv, "client_id": "ws-1", "text": "still here"}))
        .await;
    let ack = ws.expect(T, |f| f["type"] == "ack").await;
    assert_eq!(ack["client_id"], "ws-1");
    assert_eq!(ack["duplicate"], false);
    assert_eq!(ack["message"]["text"], "still here");
    assert_eq!(ack["message"]["seq"], 2);
    assert_eq!(alice.texts(conv).await, ["hi", "still here"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_send_errors_carry_the_client_id_and_store_nothing() {
    let server = Server::start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let _bob = Api::register(&url, "bob", PASSWORD).await;
    let carol = Api::register(&url, "carol", PASSWORD).await;
    let conv = alice.direct("bob").await;
    alice.send(conv, "a-1", "hi").await;
    let (status, group) = alice
        .post("/groups", &json!({"name": "ops", "members": ["bob"]}))
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_i64().expect("group id");

    // carol is in neither conversation, and a conversation that does not exist looks the same.
    let mut ws = Ws::connect(&url, &carol.token, None).await;
    ws.expect(T, |f| f["type"] == "hello").await;
    for conv_id in [conv, group_id, 9999] {
        let cid = format!("intrude-{conv_id}");
        ws.send_json(&json!({"type": "send", "conversation_id": conv_id, "client_id": cid, "text": "let me in"}))
            .await;
        let err = ws.expect(T, |f| f["type"] == "error").await;
        assert_eq!(err["client_id"], cid.as_str(), "{err}");
        assert_eq!(err["code"], "not_member", "{err}");
    }

    // Over the message limit: refused with its own code, never truncated.
    let mut ws_alice = Ws::connect(&url, &alice.token, None).await;
    ws_alice.expect(T, |f| f["type"] == "hello").await;
    let big = "b".repeat(16385);
    ws_alice
        .send_json(
            &json!({"type": "send", "conversation_id": conv, "client_id": "big-1", "text": big}),
        )
        .await;
    let err = ws_alice.expect(T, |f| f["type"] == "error").await;
    assert_eq!(err["code"], "message_too_large", "{err}");
    assert_eq!(err["client_id"], "big-1", "{err}");

    assert_eq!(alice.texts(conv).await, ["hi"]);
    // Only the group's creation events are in it.
    assert_eq!(
        alice.texts(group_id).await,
        ["alice created the group", "alice added bob"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_only_that_connection() {
    let server = Server::start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let mut ws = Ws::connect(&url, &alice.token, None).await;
    ws.expect(T, |f| f["type"] == "hello").await;
    let mut other = Ws::connect(&url, &alice.token, None).await;
    other.expect(T, |f| f["type"] == "hello").await;

    // Over the 128 KiB frame limit.
    ws.send_text("x".repeat(256 * 1024)).await;
    let close = ws.expect_close(T).await;
    assert_eq!(
        close.map(|c| u16::from(c.code)),
        Some(1009),
        "close code 1009 (message too big)"
    );

    // The other connection is untouched, and new ones work.
    other.send_json(&json!({"type": "ping", "nonce": 6})).await;
    assert_eq!(other.expect(T, |f| f["type"] == "pong").await["nonce"], 6);
    let mut again = Ws::connect(&url, &alice.token, None).await;
    again.expect(T, |f| f["type"] == "hello").await;
    again.send_json(&json!({"type": "ping", "nonce": 7})).await;
    assert_eq!(again.expect(T, |f| f["type"] == "pong").await["nonce"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_without_a_valid_token_is_refused() {
    let server = Server::start();
    let url = server.url().replacen("http", "ws", 1);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("{url}/api/v1/ws"),
    )
    .expect("request");
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        "Bearer not-a-token".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        Err(e) => panic!("expected an HTTP 401 refusal, got {e}"),
        Ok(_) => panic!("a WebSocket with a bogus token was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_a_websocket_upgrade_gets_a_json_error() {
    let server = Server::start();
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let http = reqwest::Client::new();
    let get = |version: Option<&'static str>| {
        let mut req = http
            .get(format!("{url}/api/v1/ws"))
            .bearer_auth(&alice.token);
        if let Some(v) = version {
            req = req
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .header("sec-websocket-version", v);
        }
        req.send()
    };
    let plain = get(None).await.expect("GET");
    assert_eq!(plain.status(), 400);
    let body: Value = plain.json().await.expect("JSON error body");
    assert_eq!(body["code"], "bad_request", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );

    let old = get(Some("8")).await.expect("GET");
    assert_eq!(old.status(), 426);
    assert_eq!(old.headers()["sec-websocket-version"], "13");
}

/// The server frames its deliveries itself and tungstenite its pongs; both share one
/// buffered socket. Pongs sent while deliveries stream in must come back whole, in order,
/// with every delivery intact (a torn frame fails the client's parser).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_and_deliveries_share_the_socket_without_tearing_frames() {
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start();
    let (alice, conv, mut ws) = bob_connected(&server).await;

    // Idle: the pong alone goes out (nothing else would flush it).
    ws.ping(b"idle").await;
    match ws.next_raw(T).await {
        Some(Message::Pong(p)) => assert_eq!(&p[..], b"idle"),
        other => panic!("expected the pong, got {other:?}"),
    }

    // Busy: 200 deliveries in flight while pings go in between.
    let sender = tokio::spawn(async move {
        for i in 0..200 {
            alice.send(conv, &format!("p-{i}"), &format!("m{i}")).await;
        }
    });
    const PINGS: [&[u8]; 5] = [b"p0", b"p1", b"p2", b"p3", b"p4"];
    for p in PINGS {
        ws.ping(p).await;
    }
    let (mut pongs, mut texts) = (Vec::new(), Vec::new());
    while pongs.len() < PINGS.len() || texts.len() < 200 {
        match ws.next_raw(T).await {
            Some(Message::Pong(p)) => pongs.push(p.to_vec()),
            Some(Message::Text(t)) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("a whole JSON frame");
                if f["type"] == "message" {
                    texts.push(f["message"]["text"].as_str().unwrap().to_owned());
                }
            }
            Some(_) => {}
            None => panic!(
                "stalled with {} pongs and {} messages",
                pongs.len(),
                texts.len()
            ),
        }
    }
    sender.await.unwrap();
    assert_eq!(pongs, PINGS.map(<[u8]>::to_vec));
    assert_eq!(texts, (0..200).map(|i| format!("m{i}")).collect::<Vec<_>>());
}

/// A connection that stops reading while large deliveries are written straight to its
/// socket: the socket takes part of a frame and the rest is queued. Once the client reads
/// again, every frame arrives whole and in order, and so does the pong to a ping it sent
/// meanwhile. (That the rest of a frame goes out before anything else the connection's task
/// writes is checked in the hub's unit tests: here the window is too small to hit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_begun_on_a_full_socket_arrive_whole_and_in_order_with_a_pong() {
    use tokio_tungstenite::tungstenite::Message;
    const N: usize = 400;
    const SIZE: usize = 16_000;
    let server = Server::start_with(&[("NATTERD_SEND_BURST", "100000")]);
    let (alice, conv, mut ws) = bob_connected(&server).await;
    // bob reads nothing while ~6 MB are sent to him, more than loopback buffers take at
    // once here: the server's writes stop part-way through a frame.
    for i in 0..N {
        let text = format!("{i:05} {}", "f".repeat(SIZE - 6));
        alice.send(conv, &format!("full-{i}"), &text).await;
    }
    ws.ping(b"meanwhile").await;
    let (mut pong, mut got) = (false, 0);
    while !pong || got < N {
        match ws.next_raw(Duration::from_secs(30)).await {
            Some(Message::Pong(p)) => {
                assert_eq!(&p[..], b"meanwhile");
                pong = true;
            }
            Some(Message::Text(t)) => {
                let f: Value = serde_json::from_str(t.as_str()).expect("a whole JSON frame");
                if f["type"] == "message" {
                    let text = f["message"]["text"].as_str().unwrap();
                    assert_eq!(&text[..5], format!("{got:05}"), "in order, whole");
                    assert_eq!(text.len(), SIZE);
                    got += 1;
                }
            }
            Some(_) => {}
            None => panic!("stalled with the pong {pong} and {got} messages"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_exactly_the_missed_messages_then_live_ones() {
    // 700 messages as fast as one sender can: more than the default per-user send rate,
    // which is not what this test is about.
    let server = Server::start_with(&[("NATTERD_SEND_BURST", "100000")]);
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;
    let first = alice.send(conv, "r-0", "seen").await;
    let seen_id = first["id"].as_i64().unwrap();
    let mut missed = Vec::new();
    for i in 1..=700 {
        missed.push(
            alice
                .send(conv, &format!("r-{i}"), &format!("missed {i}"))
                .await["id"]
                .as_i64()
                .unwrap(),
        );
    }

    // More than one resume page (500), then synced, then live frames.
    let mut ws = Ws::connect(&url, &bob.token, Some(seen_id)).await;
    let hello = ws.expect(T, |f| f["type"] == "hello").await;
    assert_eq!(hello["cursor"].as_i64(), missed.last().copied());
    let mut got = Vec::new();
    let synced = loop {
        let f = ws
            .expect(T, |f| f["type"] == "message" || f["type"] == "synced")
            .await;
        if f["type"] == "synced" {
            break f;
        }
        got.push(f["message"]["id"].as_i64().unwrap());
    };
    assert_eq!(got, missed, "exactly the missed messages, in order");
    assert_eq!(synced["cursor"].as_i64(), missed.last().copied());
    let live = alice.send(conv, "r-live", "live").await;
    let f = ws.expect(T, |f| f["type"] == "message").await;
    assert_eq!(f["message"]["id"], live["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_and_resumes_without_loss() {
    // A tiny per-connection queue, and a reader that does not read while ~19 MB of
    // messages (more than loopback socket buffers hold) are sent to it.
    const N: usize = 1200;
    const SIZE: usize = 16_000;
    let server = Server::start_with(&[
        ("NATTERD_QUEUE_CAPACITY", "4"),
        ("NATTERD_SEND_BURST", "100000"),
    ]);
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;
    alice.send(conv, "start", "start").await;

    let mut ws = Ws::connect(&url, &bob.token, None).await;
    let hello = ws.expect(T, |f| f["type"] == "hello").await;
    let start_cursor = hello["cursor"].as_i64().expect("hello has a cursor");

    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (alice, next) = (alice.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= N {
                    break;
                }
                let text = format!("{i:05} {}", "s".repeat(SIZE - 6));
                alice.send(conv, &format!("flood-{i}"), &text).await;
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        res.expect("sender task");
    }

    // Now bob reads: whatever was buffered, then the close for a slow consumer.
    let mut got: Vec<(i64, String)> = Vec::new();
    let close = loop {
        match ws.next(Duration::from_secs(60)).await {
            Some(Event::Frame(f)) if f["type"] == "message" => got.push(id_and_prefix(&f)),
            Some(Event::Frame(_)) => {}
            Some(Event::Closed(frame)) => break frame,
            other => panic!(
                "expected a close for a slow consumer after {} messages, got {other:?}",
                got.len()
            ),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 4008, "{close:?}");
    assert!(close.reason.contains("slow consumer"), "{close:?}");
    assert!(got.len() < N, "the consumer was cut off before the end");

    // Resume from the last message it saw: the rest, in order, nothing twice.
    let after = got.last().map_or(start_cursor, |m| m.0);
    let mut ws = Ws::connect(&url, &bob.token, Some(after)).await;
    ws.expect(T, |f| f["type"] == "hello").await;
    let synced_cursor = loop {
        match ws.next(Duration::from_secs(60)).await {
            Some(Event::Frame(f)) if f["type"] == "message" => got.push(id_and_prefix(&f)),
            Some(Event::Frame(f)) if f["type"] == "synced" => break f["cursor"].as_i64(),
            Some(Event::Frame(_)) => {}
            other => panic!("resume ended early after {} messages: {other:?}", got.len()),
        }
    };
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "ids strictly increase: nothing twice, in order"
    );
    assert_eq!(got.len(), N, "every message arrived exactly once");
    assert_eq!(synced_cursor, got.last().map(|m| m.0));
    // Concurrent senders commit in any order, but each message arrived exactly once.
    let mut prefixes: Vec<String> = got.into_iter().map(|m| m.1).collect();
    prefixes.sort();
    assert_eq!(
        prefixes,
        (0..N).map(|i| format!("{i:05}")).collect::<Vec<_>>()
    );
}

/// A message frame's id and the first five characters of its text.
/// alice and bob with their direct conversation, and bob connected and greeted.
async fn bob_connected(server: &Server) -> (Api, i64, Ws) {
    let url = server.url();
    let alice = Api::register(&url, "alice", PASSWORD).await;
    let bob = Api::register(&url, "bob", PASSWORD).await;
    let conv = alice.direct("bob").await;
    let mut ws = Ws::connect(&url, &bob.token, None).await;
    ws.expect(T, |f| f["type"] == "hello").await;
    (alice, conv, ws)
}

fn id_and_prefix(f: &Value) -> (i64, String) {
    let text = f["message"]["text"].as_str().expect("text");
    (
        f["message"]["id"].as_i64().expect("id"),
        text.chars().take(5).collect(),
    )
}
