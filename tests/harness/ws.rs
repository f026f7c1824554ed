//! A raw WebSocket client for the wire-level tests (malformed frames, limits), and REST
//! login to get its token. Everything else goes through the real `natter`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Logs in over REST and returns the bearer token.
pub async fn login_token(base_url: &str, username: &str, password: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("POST /api/v1/auth/login");
    let status = resp.status();
    let body: Value = resp.json().await.expect("login answers JSON");
    assert!(status.is_success(), "login failed: {status} {body}");
    body["token"]
        .as_str()
        .expect("login answer has a token")
        .to_owned()
}

/// What reading the socket produced.
#[derive(Debug)]
pub enum Event {
    /// A text frame, parsed as JSON.
    Frame(Value),
    /// The server closed the connection (close code and reason, if any).
    Closed(Option<CloseFrame>),
    /// The stream ended or failed without a close frame.
    Gone(String),
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    /// Connects to `/api/v1/ws` with `Authorization: Bearer TOKEN` (and `?after=` if given).
    pub async fn connect(base_url: &str, token: &str, after: Option<i64>) -> Ws {
        Ws::try_connect(base_url, token, after)
            .await
            .expect("ws connect")
    }

    /// [`Ws::connect`], giving back a refused upgrade (`Error::Http` with the response)
    /// instead of panicking.
    pub async fn try_connect(
        base_url: &str,
        token: &str,
        after: Option<i64>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let ws_url = base_url.replacen("http", "ws", 1);
        let url = match after {
            Some(a) => format!("{ws_url}/api/v1/ws?after={a}"),
            None => format!("{ws_url}/api/v1/ws"),
        };
        let mut req = url.as_str().into_client_request().expect("valid ws url");
        req.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        let (stream, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("ws connect within 10 s")?;
        Ok(Ws { stream })
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.stream
            .send(Message::text(text.into()))
            .await
            .expect("send text frame");
    }

    pub async fn send_binary(&mut self, data: Vec<u8>) {
        self.stream
            .send(Message::Binary(Bytes::from(data)))
            .await
            .expect("send binary frame");
    }

    /// Sends a WebSocket-level ping (the server's WebSocket layer answers it).
    pub async fn ping(&mut self, payload: &'static [u8]) {
        self.stream
            .send(Message::Ping(Bytes::from_static(payload)))
            .await
            .expect("send ping");
    }

    /// The next WebSocket message of any kind, pings and pongs included; panics if the
    /// stream fails (a malformed frame from the server fails it) or ends.
    pub async fn next_raw(&mut self, timeout: Duration) -> Option<Message> {
        match tokio::time::timeout(timeout, self.stream.next()).await {
            Err(_) => None,
            Ok(Some(Ok(m))) => Some(m),
            Ok(other) => panic!("the WebSocket stream failed or ended: {other:?}"),
        }
    }

    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    /// The next text frame or close, skipping WebSocket-level pings and pongs.
    /// `None` if nothing arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let item = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(item) => item,
            };
            return Some(match item {
                None => Event::Gone("stream ended".into()),
                Some(Err(e)) => Event::Gone(e.to_string()),
                Some(Ok(Message::Text(t))) => match serde_json::from_str(t.as_str()) {
                    Ok(v) => Event::Frame(v),
                    Err(e) => panic!("server sent a text frame that is not JSON ({e}): {t}"),
                },
                Some(Ok(Message::Close(frame))) => Event::Closed(frame),
                Some(Ok(Message::Binary(b))) => {
                    panic!("server sent a binary frame ({} bytes)", b.len())
                }
                Some(Ok(_)) => continue,
            });
        }
    }

    /// Reads frames until one satisfies `pred`; panics on close or after `timeout`.
    pub async fn expect(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Event::Frame(v)) if pred(&v) => return v,
                Some(Event::Frame(v)) => seen.push(v),
                other => panic!("expected frame not received: {other:?}; frames before: {seen:?}"),
            }
        }
    }

    /// Reads until the server closes the connection; returns its close frame.
    pub async fn expect_close(&mut self, timeout: Duration) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(Event::Frame(_)) => {}
                Some(Event::Closed(frame)) => return frame,
                Some(Event::Gone(why)) => panic!("connection ended without a close frame: {why}"),
                None => panic!("server did not close the connection within {timeout:?}"),
            }
        }
    }
}

/// A REST client for one account, for tests that work below the CLI.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    pub token: String,
}

impl Api {
    /// Registers `username` over REST (`POST /api/v1/auth/register`) and keeps its token.
    pub async fn register(base_url: &str, username: &str, password: &str) -> Api {
        let http = reqwest::Client::new();
        let (status, body) = send(
            http.post(format!("{base_url}/api/v1/auth/register"))
                .json(&serde_json::json!({ "username": username, "password": password })),
        )
        .await;
        assert_eq!(status, 201, "register {username}: {body}");
        let token = body["token"].as_str().expect("token").to_owned();
        Api {
            http,
            base: base_url.to_owned(),
            token,
        }
    }

    /// Logs in over REST.
    pub async fn login(base_url: &str, username: &str, password: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base_url.to_owned(),
            token: login_token(base_url, username, password).await,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(
            self.http
                .get(format!("{}/api/v1{path}", self.base))
                .bearer_auth(&self.token),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        send(
            self.http
                .post(format!("{}/api/v1{path}", self.base))
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }

    /// Opens (or finds) the direct conversation with `username`; returns its id.
    pub async fn direct(&self, username: &str) -> i64 {
        let (status, body) = self
            .post("/direct", &serde_json::json!({ "username": username }))
            .await;
        assert_eq!(status, 200, "POST /direct: {body}");
        body["id"].as_i64().expect("conversation id")
    }

    /// Sends over REST; asserts the 201 and returns the stored message.
    pub async fn send(&self, conversation_id: i64, client_id: &str, text: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/conversations/{conversation_id}/messages"),
                &serde_json::json!({ "client_id": client_id, "text": text }),
            )
            .await;
        assert_eq!(status, 201, "send: {body}");
        body["message"].clone()
    }

    /// Texts of the latest messages of a conversation, ascending.
    pub async fn texts(&self, conversation_id: i64) -> Vec<String> {
        let (status, body) = self
            .get(&format!(
                "/conversations/{conversation_id}/messages?limit=500"
            ))
            .await;
        assert_eq!(status, 200, "history: {body}");
        body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["text"].as_str().expect("text").to_owned())
            .collect()
    }
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}
