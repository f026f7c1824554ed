//! The connection actor: one task owns the WebSocket; [`Connection`] handles (cheap to
//! clone) talk to it over a channel, and everything it learns comes out as [`Event`]s.
//!
//! The actor connects with the session's bearer token, resumes from the cursor (`?after=`),
//! stores every message in the cache before it is emitted, and reconnects with jittered
//! exponential backoff (capped at 10 s) when the socket drops or stays silent for two
//! heartbeats. On every (re)connect it flushes the outbox.
//!
//! **Cursor commits.** With `auto_commit` (the default) the cursor advances as soon as a
//! message is stored and emitted. A consumer that must not lose what it has not yet
//! *handled* (the CLI's `listen --count N` exits mid-stream) turns `auto_commit` off and
//! calls [`Connection::commit`] after handling each message; on the next start the server
//! replays everything after the last commit. Within one run the actor never emits a
//! message id twice, whatever the server replays.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_protocol::{
    ClientFrame, ConversationId, ConversationInfo, ErrorCode, Message, MessageId, SendAck,
    ServerFrame,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{
    self, Message as WsMessage, client::IntoClientRequest, http::HeaderValue,
};

use crate::client::{Client, backoff};
use crate::error::Error;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// How many emitted ids the actor remembers above its floor before it compacts.
const EMITTED_WINDOW: usize = 10_000;

/// The state of the connection, as a status line would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    Connecting,
    /// Connected, greeted and (when resuming) receiving the replay.
    Online,
    /// Disconnected; the next attempt is in `retry_in`.
    Offline {
        retry_in: Duration,
        reason: String,
    },
    /// The actor stopped for good (e.g. the token was revoked); it will not retry.
    Error {
        code: Option<ErrorCode>,
        message: String,
    },
}

/// A stored message with the conversation it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// `@peer` for a direct conversation (the other member, seen from this user) or the
    /// group name.
    pub target: String,
    pub conversation: ConversationInfo,
    pub message: Message,
    /// True while the server replays what this client missed (before `Synced`).
    pub replayed: bool,
}

/// Everything the actor reports, in the order it happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    ConnectionState(ConnectionState),
    Message(MessageEvent),
    /// This user joined a conversation or its details changed.
    Conversation(ConversationInfo),
    /// This user is no longer a member; `target` is known when the conversation was cached.
    Removed {
        conversation_id: ConversationId,
        target: Option<String>,
    },
    /// The replay after a resume is complete; live messages follow.
    Synced {
        cursor: MessageId,
    },
    /// The server reported an error not tied to a pending send.
    ServerError {
        code: ErrorCode,
        message: String,
    },
    /// A queued outbox entry was acknowledged.
    OutboxSent {
        client_id: String,
        target: String,
        ack: SendAck,
    },
    /// A queued outbox entry was refused for good and dropped.
    OutboxFailed {
        client_id: String,
        target: String,
        error: String,
    },
}

/// How the actor behaves.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Advance the persisted cursor as soon as a message is emitted (see module docs).
    pub auto_commit: bool,
    /// Capacity of the event channel; a full channel slows reading from the socket.
    pub event_buffer: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            auto_commit: true,
            event_buffer: 256,
        }
    }
}

enum Command {
    Send {
        conversation_id: ConversationId,
        client_id: String,
        text: String,
        reply: oneshot::Sender<Result<SendAck, Error>>,
    },
    Flush,
    Shutdown,
}

/// Handle on the connection actor. Cheap to clone; the actor stops when every handle is
/// dropped, on [`Connection::shutdown`], or when the event receiver is dropped.
#[derive(Clone, Debug)]
pub struct Connection {
    cmd: mpsc::Sender<Command>,
    client: Client,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send { .. } => "Send",
            Command::Flush => "Flush",
            Command::Shutdown => "Shutdown",
        })
    }
}

impl Connection {
    /// Starts the actor on the current tokio runtime.
    pub fn spawn(client: Client, opts: ConnectOptions) -> (Connection, mpsc::Receiver<Event>) {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (tx, rx) = mpsc::channel(opts.event_buffer.max(1));
        let actor = Actor {
            client: client.clone(),
            opts,
            cmd_rx,
            tx,
            floor: 0,
            emitted: BTreeSet::new(),
            pending: HashMap::new(),
            flush_task: None,
            heartbeat: None,
        };
        tokio::spawn(actor.run());
        (
            Connection {
                cmd: cmd_tx,
                client,
            },
            rx,
        )
    }

    /// Sends a message over the socket and waits for the durable ack. Fails with
    /// [`Error::Unreachable`] when not connected; use [`Client::send_now`] or the outbox
    /// for sends that must survive a disconnect.
    pub async fn send(
        &self,
        conversation_id: ConversationId,
        client_id: String,
        text: String,
    ) -> Result<SendAck, Error> {
        let (reply, rx) = oneshot::channel();
        let gone = || Error::Unreachable {
            url: self.client.server().to_string(),
            source: None,
        };
        self.cmd
            .send(Command::Send {
                conversation_id,
                client_id,
                text,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Records that the consumer handled every message up to `id` (see module docs).
    pub fn commit(&self, id: MessageId) -> Result<(), Error> {
        self.client.commit_cursor(id)
    }

    /// Asks the actor to flush the outbox now (it also does on every connect).
    pub async fn flush_outbox(&self) {
        let _ = self.cmd.send(Command::Flush).await;
    }

    /// Closes the socket politely and stops the actor.
    pub async fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown).await;
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Why a connected session ended.
enum End {
    /// Stop for good: shutdown requested, or nobody listens any more.
    Stop,
    /// The token is no longer accepted, or another final condition.
    Fatal {
        code: Option<ErrorCode>,
        message: String,
    },
    /// Try again after a pause.
    Retry(String),
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Actor {
    client: Client,
    opts: ConnectOptions,
    cmd_rx: mpsc::Receiver<Command>,
    tx: mpsc::Sender<Event>,
    /// Every message id at or below this was emitted or committed before.
    floor: MessageId,
    /// Ids emitted in this run above `floor`.
    emitted: BTreeSet<MessageId>,
    /// Sends over the socket waiting for their ack, by client id.
    pending: HashMap<String, oneshot::Sender<Result<SendAck, Error>>>,
    flush_task: Option<JoinHandle<()>>,
    heartbeat: Option<Duration>,
}

impl Actor {
    async fn emit(&self, event: Event) -> bool {
        self.tx.send(event).await.is_ok()
    }

    async fn state(&self, s: ConnectionState) -> bool {
        self.emit(Event::ConnectionState(s)).await
    }

    /// The id to resume after: the persisted cursor or what this run already emitted.
    fn resume_point(&self) -> Result<Option<MessageId>, Error> {
        let stored = self.client.cursor()?;
        let mine = self
            .emitted
            .last()
            .copied()
            .or((self.floor > 0).then_some(self.floor));
        Ok(match (stored, mine) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }

    async fn run(mut self) {
        match self.client.cursor() {
            Ok(c) => self.floor = c.unwrap_or(0),
            Err(e) => {
                let _ = self
                    .state(ConnectionState::Error {
                        code: None,
                        message: e.to_string(),
                    })
                    .await;
                return;
            }
        }
        let mut attempt = 0u32;
        loop {
            if !self.state(ConnectionState::Connecting).await {
                return;
            }
            let end = match self.connect().await {
                Ok((ws, after)) => {
                    let (end, greeted) = self.session(ws, after).await;
                    if greeted {
                        attempt = 0;
                    }
                    end
                }
                Err(end) => end,
            };
            self.fail_pending();
            match end {
                End::Stop => return,
                End::Fatal { code, message } => {
                    tracing::warn!(%message, "connection stopped");
                    let _ = self.state(ConnectionState::Error { code, message }).await;
                    return;
                }
                End::Retry(reason) => {
                    let retry_in = backoff(attempt, BACKOFF_BASE, BACKOFF_CAP);
                    attempt = attempt.saturating_add(1);
                    tracing::info!(%reason, ?retry_in, "disconnected");
                    if !self
                        .state(ConnectionState::Offline { retry_in, reason })
                        .await
                    {
                        return;
                    }
                    if !self.pause(retry_in).await {
                        return;
                    }
                }
            }
        }
    }

    /// Waits before reconnecting while still answering commands. False means stop.
    async fn pause(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => return false,
                    Some(Command::Send { reply, .. }) => {
                        let _ = reply.send(Err(self.unreachable()));
                    }
                    Some(Command::Flush) => {}
                },
            }
        }
    }

    fn unreachable(&self) -> Error {
        Error::Unreachable {
            url: self.client.server().to_string(),
            source: None,
        }
    }

    fn fail_pending(&mut self) {
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(Error::Unreachable {
                url: self.client.server().to_string(),
                source: None,
            }));
        }
    }

    async fn connect(&mut self) -> Result<(Ws, Option<MessageId>), End> {
        let after = self.resume_point().map_err(|e| End::Fatal {
            code: None,
            message: e.to_string(),
        })?;
        let url = self.client.rest().ws_url(after);
        let mut req = url.as_str().into_client_request().map_err(|e| End::Fatal {
            code: None,
            message: format!("bad WebSocket URL {url}: {e}"),
        })?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.client.session().token))
            .map_err(|_| End::Fatal {
                code: Some(ErrorCode::Unauthorized),
                message: "the stored token is damaged: run 'natter login USER'".into(),
            })?;
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, bearer);
        tracing::debug!(%url, "connecting");
        let server = self.client.server().to_string();
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(req)).await {
            Err(_) => Err(End::Retry(format!(
                "cannot reach {server}: connection timed out"
            ))),
            Ok(Ok((ws, _resp))) => Ok((ws, after)),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                let body = resp.body().as_deref().unwrap_or_default();
                let parsed = serde_json::from_slice::<natter_protocol::ErrorBody>(body).ok();
                match status {
                    401 => Err(End::Fatal {
                        code: Some(ErrorCode::Unauthorized),
                        message:
                            "the server no longer accepts this session: run 'natter login USER'"
                                .into(),
                    }),
                    400..=499 if status != 429 && status != 408 => Err(End::Fatal {
                        code: parsed.as_ref().map(|b| b.code),
                        message: parsed.map(|b| b.message).unwrap_or_else(|| {
                            format!("{server} refused the WebSocket connection (HTTP {status})")
                        }),
                    }),
                    _ => Err(End::Retry(format!("{server} answered HTTP {status}"))),
                }
            }
            Ok(Err(tungstenite::Error::Io(e))) => {
                tracing::debug!(error = %e, "connect failed");
                Err(End::Retry(format!("cannot reach {server}")))
            }
            Ok(Err(e)) => Err(End::Retry(format!("cannot reach {server}: {e}"))),
        }
    }

    /// Runs one connected session. Returns why it ended and whether `hello` was received.
    async fn session(&mut self, ws: Ws, after: Option<MessageId>) -> (End, bool) {
        let (mut sink, mut stream) = ws.split();
        let mut greeted = false;
        let mut replaying = after.is_some();
        // Until hello, allow the connect timeout; then two heartbeats.
        let mut silence_limit = CONNECT_TIMEOUT;
        let mut last_heard = Instant::now();
        loop {
            let deadline = last_heard + silence_limit;
            tokio::select! {
                frame = tokio::time::timeout_at(deadline, stream.next()) => {
                    let frame = match frame {
                        Err(_) => {
                            let secs = silence_limit.as_secs();
                            return (End::Retry(format!("no word from the server for {secs}s")), greeted);
                        }
                        Ok(None) => return (End::Retry("the server closed the connection".into()), greeted),
                        Ok(Some(Err(e))) => return (End::Retry(format!("connection lost: {e}")), greeted),
                        Ok(Some(Ok(f))) => f,
                    };
                    last_heard = Instant::now();
                    let text = match frame {
                        WsMessage::Text(t) => t,
                        WsMessage::Close(close) => {
                            let reason = match close {
                                Some(c) if !c.reason.is_empty() => {
                                    format!("the server closed the connection ({}: {})", u16::from(c.code), c.reason)
                                }
                                Some(c) => format!("the server closed the connection ({})", u16::from(c.code)),
                                None => "the server closed the connection".into(),
                            };
                            return (End::Retry(reason), greeted);
                        }
                        // Pings are answered by tungstenite; they only prove liveness.
                        _ => continue,
                    };
                    let frame = match serde_json::from_str::<ServerFrame>(&text) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "undecodable frame from the server");
                            continue;
                        }
                    };
                    if !greeted {
                        let ServerFrame::Hello { user, cursor, heartbeat_secs } = frame else {
                            return (End::Retry("the server did not greet first".into()), false);
                        };
                        greeted = true;
                        tracing::debug!(user = %user.username, cursor, heartbeat_secs, "hello");
                        if heartbeat_secs > 0 {
                            let hb = Duration::from_secs(u64::from(heartbeat_secs));
                            self.heartbeat = Some(hb);
                            silence_limit = hb * 2;
                        } else {
                            silence_limit = Duration::from_secs(3600 * 24 * 365);
                        }
                        if after.is_none() {
                            // First connection ever: start from now.
                            if let Err(e) = self.client.commit_cursor(cursor) {
                                return (End::Fatal { code: None, message: e.to_string() }, true);
                            }
                            self.floor = self.floor.max(cursor);
                        }
                        if !self.state(ConnectionState::Online).await {
                            return (End::Stop, true);
                        }
                        self.start_flush();
                        continue;
                    }
                    match self.handle(frame, &mut replaying).await {
                        Ok(true) => {}
                        Ok(false) => return (End::Stop, true),
                        Err(end) => return (end, true),
                    }
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => {
                        let _ = sink.send(WsMessage::Close(None)).await;
                        return (End::Stop, greeted);
                    }
                    Some(Command::Flush) => self.start_flush(),
                    Some(Command::Send { conversation_id, client_id, text, reply }) => {
                        let frame = ClientFrame::Send { conversation_id, client_id: client_id.clone(), text };
                        let json = match serde_json::to_string(&frame) {
                            Ok(j) => j,
                            Err(e) => {
                                let _ = reply.send(Err(Error::Protocol(e.to_string())));
                                continue;
                            }
                        };
                        if let Err(e) = sink.send(WsMessage::text(json)).await {
                            let _ = reply.send(Err(self.unreachable()));
                            return (End::Retry(format!("connection lost: {e}")), greeted);
                        }
                        self.pending.insert(client_id, reply);
                    }
                },
            }
        }
    }

    /// Handles one frame after `hello`. `Ok(false)` means nobody listens any more.
    async fn handle(&mut self, frame: ServerFrame, replaying: &mut bool) -> Result<bool, End> {
        let cache_err = |e: Error| End::Fatal {
            code: None,
            message: e.to_string(),
        };
        match frame {
            ServerFrame::Message { message } => {
                // Persist first: a crash after this point loses nothing.
                self.client
                    .cache()
                    .put_message(&message)
                    .map_err(cache_err)?;
                let id = message.id;
                if id <= self.floor || self.emitted.contains(&id) {
                    tracing::debug!(id, "message already emitted; skipped");
                    return Ok(true);
                }
                let conversation = match self.client.conversation(message.conversation_id).await {
                    Ok(c) => c,
                    // Without its conversation the message cannot be shown; reconnecting
                    // replays it (the cursor has not moved).
                    Err(e) if e.is_retryable() => return Err(End::Retry(e.to_string())),
                    Err(e) => {
                        tracing::warn!(error = %e, id, "cannot load the message's conversation");
                        return Ok(true);
                    }
                };
                self.remember(id);
                if self.opts.auto_commit {
                    self.client.commit_cursor(id).map_err(cache_err)?;
                }
                let event = MessageEvent {
                    target: conversation.target(),
                    conversation,
                    message,
                    replayed: *replaying,
                };
                Ok(self.emit(Event::Message(event)).await)
            }
            ServerFrame::Synced { cursor } => {
                *replaying = false;
                if self.opts.auto_commit {
                    self.client.commit_cursor(cursor).map_err(cache_err)?;
                }
                Ok(self.emit(Event::Synced { cursor }).await)
            }
            ServerFrame::Conversation { conversation } => {
                self.client
                    .cache()
                    .put_conversation(&conversation)
                    .map_err(cache_err)?;
                Ok(self.emit(Event::Conversation(conversation)).await)
            }
            ServerFrame::Removed { conversation_id } => {
                let target = self
                    .client
                    .cache()
                    .conversation(conversation_id)
                    .ok()
                    .flatten()
                    .map(|c| c.target());
                self.client
                    .cache()
                    .forget_conversation(conversation_id)
                    .map_err(cache_err)?;
                Ok(self
                    .emit(Event::Removed {
                        conversation_id,
                        target,
                    })
                    .await)
            }
            ServerFrame::Ack { client_id, ack } => {
                self.client
                    .cache()
                    .put_message(&ack.message)
                    .map_err(cache_err)?;
                if let Some(reply) = self.pending.remove(&client_id) {
                    let _ = reply.send(Ok(ack));
                }
                Ok(true)
            }
            ServerFrame::Error {
                code,
                message,
                client_id,
            } => {
                if let Some(reply) = client_id.as_ref().and_then(|c| self.pending.remove(c)) {
                    let _ = reply.send(Err(Error::Api { code, message }));
                    return Ok(true);
                }
                Ok(self.emit(Event::ServerError { code, message }).await)
            }
            ServerFrame::Hello { .. } | ServerFrame::Pong { .. } => Ok(true),
            other => {
                tracing::debug!(?other, "unhandled frame");
                Ok(true)
            }
        }
    }

    fn remember(&mut self, id: MessageId) {
        self.emitted.insert(id);
        while self.emitted.len() > EMITTED_WINDOW {
            if let Some(lowest) = self.emitted.pop_first() {
                self.floor = self.floor.max(lowest);
            }
        }
    }

    /// Flushes the outbox in the background, unless a flush is already running.
    fn start_flush(&mut self) {
        if self.flush_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let client = self.client.clone();
        let tx = self.tx.clone();
        self.flush_task = Some(tokio::spawn(async move {
            if client.outbox().map(|o| o.is_empty()).unwrap_or(true) {
                return;
            }
            match client.flush().await {
                Ok(report) => {
                    for (entry, ack) in report.sent {
                        let ev = Event::OutboxSent {
                            client_id: entry.client_id,
                            target: entry.target,
                            ack,
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    for (entry, e) in report.failed {
                        let ev = Event::OutboxFailed {
                            client_id: entry.client_id,
                            target: entry.target,
                            error: e.to_string(),
                        };
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                    if let Some(e) = report.stopped {
                        tracing::info!(error = %e, remaining = report.remaining, "outbox flush paused");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "outbox flush failed"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Paths, Session};

    #[tokio::test]
    async fn unreachable_server_reports_offline_and_shuts_down() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let paths = Paths::under(dir.path());
        let server = format!("http://127.0.0.1:{port}");
        Session {
            server: server.clone(),
            username: "alice".into(),
            token: "t".into(),
        }
        .save(&paths)
        .unwrap();
        let client = Client::open(paths, None).unwrap();
        let (conn, mut events) = Connection::spawn(client, ConnectOptions::default());
        let next = async |events: &mut mpsc::Receiver<Event>| {
            tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .unwrap()
        };
        assert!(matches!(
            next(&mut events).await,
            Some(Event::ConnectionState(ConnectionState::Connecting))
        ));
        match next(&mut events).await {
            Some(Event::ConnectionState(ConnectionState::Offline { retry_in, reason })) => {
                assert_eq!(reason, format!("cannot reach {server}"));
                assert!(retry_in <= BACKOFF_CAP);
            }
            other => panic!("expected offline, got {other:?}"),
        }
        // A send while offline fails at once instead of hanging.
        let e = conn.send(1, "c".into(), "hi".into()).await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }));
        conn.shutdown().await;
        assert!(next(&mut events).await.is_none(), "the actor stopped");
    }
}
