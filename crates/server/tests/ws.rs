//! The WebSocket gateway against a real in-process server, a real SQLite file and a real
//! WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_protocol::{AuthResponse, ClientFrame, ErrorCode, ServerFrame};
use natter_server::{Config, Server};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct TestServer {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: Some(dir.path().to_path_buf()),
            ..Config::default()
        };
        config.durability = natter_server::config::Durability::Normal;
        tweak(&mut config);
        let server = Server::new(config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        TestServer {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }

    async fn post(
        &self,
        token: Option<&str>,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn register(&self, name: &str) -> String {
        let (status, body) = self
            .post(
                None,
                "/auth/register",
                json!({"username": name, "password": "password123"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        serde_json::from_value::<AuthResponse>(body).unwrap().token
    }

    async fn direct(&self, token: &str, peer: &str) -> i64 {
        let (status, body) = self
            .post(Some(token), "/direct", json!({"username": peer}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_i64().unwrap()
    }

    async fn send(&self, token: &str, conv: i64, client_id: &str, text: &str) -> i64 {
        let (status, body) = self
            .post(
                Some(token),
                &format!("/conversations/{conv}/messages"),
                json!({"client_id": client_id, "text": text}),
            )
            .await;
        assert!(status == 201 || status == 200, "{status} {body}");
        body["message"]["id"].as_i64().unwrap()
    }

    async fn connect(&self, token: &str, after: Option<i64>) -> Ws {
        let mut url = format!("{}/api/v1/ws", self.base.replace("http://", "ws://"));
        if let Some(a) = after {
            url.push_str(&format!("?after={a}"));
        }
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The next server frame, skipping pings; panics after 10 s.
async fn next_frame(ws: &mut Ws) -> ServerFrame {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("socket ended")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

async fn expect_close(ws: &mut Ws) -> (CloseCode, String) {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("timed out waiting for close")
            .expect("socket ended without a close frame");
        match msg {
            Ok(Message::Close(Some(f))) => return (f.code, f.reason.to_string()),
            Ok(Message::Close(None)) => panic!("close without a code"),
            Ok(_) => continue,
            Err(e) => panic!("socket error before close: {e}"),
        }
    }
}

fn send_frame(conv: i64, client_id: &str, text: &str) -> Message {
    let f = ClientFrame::Send {
        conversation_id: conv,
        client_id: client_id.into(),
        text: text.into(),
        attachments: Vec::new(),
    };
    Message::Text(serde_json::to_string(&f).unwrap().into())
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed_then_goes_live() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    let bob = s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    let first = s.send(&alice, conv, "a1", "one").await;
    for i in 2..=5 {
        s.send(&alice, conv, &format!("a{i}"), &format!("msg {i}"))
            .await;
    }
    let mut ws = s.connect(&bob, Some(first)).await;
    let ServerFrame::Hello { user, cursor, .. } = next_frame(&mut ws).await else {
        panic!("no hello")
    };
    assert_eq!(user.username, "bob");
    assert_eq!(cursor, first + 4);
    let mut seqs = Vec::new();
    loop {
        match next_frame(&mut ws).await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Synced { cursor: c } => {
                assert_eq!(c, first + 4);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    s.send(&alice, conv, "a6", "live").await;
    let ServerFrame::Message { message } = next_frame(&mut ws).await else {
        panic!()
    };
    assert_eq!(
        (message.seq, message.text.as_str(), message.sender.as_str()),
        (6, "live", "alice")
    );
    s.shutdown().await;
}

#[tokio::test]
async fn resume_during_a_flood_has_no_gaps_or_duplicates() {
    // 300 sends as fast as one user can: past the default send rate, not the point here.
    let mut s = TestServer::start(|c| c.rate_limits = false).await;
    let alice = s.register("alice").await;
    let bob = s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    s.send(&alice, conv, "start", "start").await;
    let total = 300;
    let sender = {
        let (base, alice) = (s.base.clone(), alice.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..total {
                let r = http
                    .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&alice)
                    .json(&json!({"client_id": format!("f{i}"), "text": format!("flood {i}")}))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        })
    };
    // Connect mid-flood from the very beginning.
    let mut ws = s.connect(&bob, Some(0)).await;
    let mut seqs = Vec::new();
    while seqs.len() < total + 1 {
        match next_frame(&mut ws).await {
            ServerFrame::Message { message } => seqs.push(message.seq),
            ServerFrame::Hello { .. } | ServerFrame::Synced { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    sender.await.unwrap();
    let want: Vec<i64> = (1..=(total as i64 + 1)).collect();
    assert_eq!(seqs, want);
    s.shutdown().await;
}

#[tokio::test]
async fn sends_over_the_socket_are_acked_once_and_deduplicated() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    ws.send(send_frame(conv, "same", "hello")).await.unwrap();
    let mut first_id = None;
    // The ack and the live copy (alice is a member) may come in either order.
    for _ in 0..2 {
        match next_frame(&mut ws).await {
            ServerFrame::Ack { client_id, ack } => {
                assert_eq!(client_id, "same");
                assert!(!ack.duplicate);
                first_id = Some(ack.message.id);
            }
            ServerFrame::Message { message } => assert_eq!(message.text, "hello"),
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(send_frame(conv, "same", "hello")).await.unwrap();
    let ServerFrame::Ack { ack, .. } = next_frame(&mut ws).await else {
        panic!()
    };
    assert!(ack.duplicate);
    assert_eq!(Some(ack.message.id), first_id);
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_get_error_frames_and_the_socket_survives() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    for bad in [
        Message::Text("{".into()),
        Message::Text(r#"{"type":"explode"}"#.into()),
        Message::Text(r#"{"type":"send","conversation_id":"x"}"#.into()),
        Message::Binary(Bytes::from_static(&[0xff, 0x00, 0x13])),
    ] {
        ws.send(bad).await.unwrap();
        let ServerFrame::Error { code, message, .. } = next_frame(&mut ws).await else {
            panic!()
        };
        assert_eq!(code, ErrorCode::MalformedFrame);
        assert!(!message.is_empty());
    }
    ws.send(Message::Text(r#"{"type":"ping","nonce":7}"#.into()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut ws).await, ServerFrame::Pong { nonce: 7 });
    s.shutdown().await;
}

#[tokio::test]
async fn non_members_cannot_send_over_the_socket() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    s.register("bob").await;
    let carol = s.register("carol").await;
    let conv = s.direct(&alice, "bob").await;
    let mut ws = s.connect(&carol, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    ws.send(send_frame(conv, "x1", "let me in")).await.unwrap();
    let ServerFrame::Error {
        code, client_id, ..
    } = next_frame(&mut ws).await
    else {
        panic!()
    };
    assert_eq!(code, ErrorCode::NotMember);
    assert_eq!(client_id.as_deref(), Some("x1"));
    s.shutdown().await;
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    let huge = "x".repeat(natter_protocol::limits::DEFAULT_MAX_FRAME_BYTES + 10);
    ws.send(Message::Text(huge.into())).await.unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, CloseCode::Size);
    s.shutdown().await;
}

#[tokio::test]
async fn a_slow_consumer_is_disconnected_with_a_reason() {
    let mut s = TestServer::start(|c| {
        c.queue_capacity = 8;
        c.rate_limits = false;
    })
    .await;
    let alice = s.register("alice").await;
    let bob = s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    let mut slow = s.connect(&bob, None).await;
    // Bob stops reading. Alice (over REST, so her own socket cannot back up) sends more
    // than the kernel's socket buffers and bob's queue can hold.
    let sender = {
        let (base, alice) = (s.base.clone(), alice.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let text = "y".repeat(16_000);
            // 16 MB: more than loopback's socket buffers (a few MB each way) can absorb.
            for i in 0..1000 {
                let r = http
                    .post(format!("{base}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&alice)
                    .json(&json!({"client_id": format!("s{i}"), "text": text}))
                    .send()
                    .await;
                if r.is_err() {
                    break;
                }
            }
        })
    };
    // Reading now would make bob fast again: wait until everything is sent.
    sender.await.unwrap();
    let (code, reason) = expect_close(&mut slow).await;
    assert_eq!(code, CloseCode::from(4008));
    assert!(reason.contains("slow consumer"), "{reason}");
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_sends_every_socket_a_close_frame() {
    let mut s = TestServer::start(|_| {}).await;
    let alice = s.register("alice").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    let stop = s.stop.take().unwrap();
    stop.send(()).unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, CloseCode::Away);
    s.shutdown().await;
}

#[tokio::test]
async fn sends_over_the_limit_get_a_rate_limited_error_frame_and_the_socket_stays() {
    let mut s = TestServer::start(|c| {
        c.send_burst = 3;
        c.send_per_sec = 1;
    })
    .await;
    let alice = s.register("alice").await;
    s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    for i in 0..6 {
        ws.send(send_frame(conv, &format!("r{i}"), "hi"))
            .await
            .unwrap();
    }
    let (mut acks, mut limited) = (0, 0);
    while acks + limited < 6 {
        match next_frame(&mut ws).await {
            ServerFrame::Ack { .. } => acks += 1,
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                assert_eq!(code, ErrorCode::RateLimited);
                assert!(message.contains("try again in"), "{message}");
                assert!(client_id.is_some());
                limited += 1;
            }
            ServerFrame::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((acks, limited), (3, 3));
    ws.send(Message::Text(r#"{"type":"ping","nonce":1}"#.into()))
        .await
        .unwrap();
    loop {
        match next_frame(&mut ws).await {
            ServerFrame::Pong { nonce } => {
                assert_eq!(nonce, 1);
                break;
            }
            ServerFrame::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn pipelined_sends_keep_their_order_and_are_acked_in_order() {
    let mut s = TestServer::start(|c| c.rate_limits = false).await;
    let alice = s.register("alice").await;
    s.register("bob").await;
    let conv = s.direct(&alice, "bob").await;
    let mut ws = s.connect(&alice, None).await;
    assert!(matches!(
        next_frame(&mut ws).await,
        ServerFrame::Hello { .. }
    ));
    // Many sends written back to back without waiting for acks.
    let n = 200;
    for i in 0..n {
        ws.feed(send_frame(conv, &format!("p{i}"), &format!("msg {i}")))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let mut acked = Vec::new();
    while acked.len() < n {
        match next_frame(&mut ws).await {
            ServerFrame::Ack { client_id, ack } => acked.push((client_id, ack.message.seq)),
            ServerFrame::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<(String, i64)> = (0..n).map(|i| (format!("p{i}"), i as i64 + 1)).collect();
    assert_eq!(acked, want, "acks in send order with increasing seq");
    s.shutdown().await;
}
