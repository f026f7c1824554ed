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
    ClientFrame, ConversationId, ConversationInfo, ConversationState, ErrorCode, Message,
    MessageId, Presence, PresenceState, Receipt, SendAck, Seq, ServerFrame, Settings,
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
/// Delivery receipts for live messages wait this long to be sent together.
const DELIVERED_DELAY: Duration = Duration::from_millis(200);
/// The cursor key of the main consumer (`natter listen`, the TUI).
const MAIN_CURSOR: &str = "cursor";

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
    /// Presence changes of people who share a conversation with this user.
    Presence(Vec<Presence>),
    /// A member started or stopped typing. `target` is known when the conversation is.
    Typing {
        conversation_id: ConversationId,
        target: Option<String>,
        user: String,
        active: bool,
    },
    /// Another member's delivery or read marker passed one of this user's messages.
    Receipt {
        target: Option<String>,
        receipt: Receipt,
    },
    /// This user's unread count in a conversation changed (a message from someone else,
    /// or the conversation was read on some device).
    Unread {
        conversation_id: ConversationId,
        target: Option<String>,
        unread: u64,
        read_seq: Seq,
    },
    /// This user's state in a conversation changed on the server (read, muted, unmuted).
    ConversationState(ConversationState),
    /// This user's settings changed (on any device).
    Settings(Settings),
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
    /// A fire-and-forget frame (typing, read, presence); dropped while disconnected.
    Frame(ClientFrame),
    Shutdown,
}

/// Handle on the connection actor. Cheap to clone; the actor stops when every handle is
/// dropped, on [`Connection::shutdown`], or when the event receiver is dropped.
#[derive(Clone, Debug)]
pub struct Connection {
    cmd: mpsc::Sender<Command>,
    client: Client,
    cursor_key: &'static str,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send { .. } => "Send",
            Command::Flush => "Flush",
            Command::Frame(_) => "Frame",
            Command::Shutdown => "Shutdown",
        })
    }
}

impl Connection {
    /// Starts the actor on the current tokio runtime.
    pub fn spawn(client: Client, opts: ConnectOptions) -> (Connection, mpsc::Receiver<Event>) {
        Self::spawn_with_cursor(client, opts, MAIN_CURSOR)
    }

    /// Like [`Connection::spawn`], resuming from (and committing to) a cursor of its own,
    /// so that a second consumer of the same `NATTER_HOME` (the notifier) does not take
    /// messages away from `natter listen`.
    pub fn spawn_with_cursor(
        client: Client,
        opts: ConnectOptions,
        cursor_key: &'static str,
    ) -> (Connection, mpsc::Receiver<Event>) {
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
            cursor_key,
            delivered: HashMap::new(),
            delivered_due: None,
            unread: HashMap::new(),
        };
        tokio::spawn(actor.run());
        (
            Connection {
                cmd: cmd_tx,
                client,
                cursor_key,
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
        self.client
            .cache()
            .advance_cursor_named(self.cursor_key, id)
    }

    async fn frame(&self, frame: ClientFrame) {
        let _ = self.cmd.send(Command::Frame(frame)).await;
    }

    /// Says this user is typing in a conversation (`active`), or stopped. Renew every
    /// `limits::TYPING_RENEW_SECS` while typing. Dropped while disconnected.
    pub async fn typing(&self, conversation_id: ConversationId, active: bool) {
        self.frame(ClientFrame::Typing {
            conversation_id,
            active,
        })
        .await;
    }

    /// Moves the read marker of a conversation forward to `seq` (never back).
    pub async fn mark_read(&self, conversation_id: ConversationId, seq: Seq) {
        self.frame(ClientFrame::Read {
            conversation_id,
            seq,
        })
        .await;
    }

    /// Sets this user away or back online.
    pub async fn set_presence(&self, state: PresenceState) {
        self.frame(ClientFrame::SetPresence { state }).await;
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
    cursor_key: &'static str,
    /// Highest seq per conversation this device has stored and not yet reported.
    delivered: HashMap<ConversationId, Seq>,
    /// When the pending delivery receipts go out.
    delivered_due: Option<Instant>,
    /// Per conversation: (read marker, unread count, last seq counted), from the server's
    /// states at connect and kept up by frames.
    unread: HashMap<ConversationId, (Seq, u64, Seq)>,
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
        let stored = self.client.cache().cursor_named(self.cursor_key)?;
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
        match self.client.cache().cursor_named(self.cursor_key) {
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
                    Some(Command::Flush | Command::Frame(_)) => {}
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
        let connector = match crate::tls::client_config() {
            Ok(config) => tokio_tungstenite::Connector::Rustls(config),
            Err(e) => {
                return Err(End::Fatal {
                    code: None,
                    message: e.to_string(),
                });
            }
        };
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector));
        match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
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
            let delivered_due = self.delivered_due;
            tokio::select! {
                _ = sleep_until_opt(delivered_due) => {
                    if let Err(e) = self.send_delivered(&mut sink).await {
                        return (End::Retry(format!("connection lost: {e}")), greeted);
                    }
                }
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
                            if let Err(e) = self.client.cache().advance_cursor_named(self.cursor_key, cursor) {
                                return (End::Fatal { code: None, message: e.to_string() }, true);
                            }
                            self.floor = self.floor.max(cursor);
                        }
                        if !self.state(ConnectionState::Online).await {
                            return (End::Stop, true);
                        }
                        self.start_flush();
                        self.load_unread().await;
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
                    Some(Command::Frame(frame)) => {
                        let Ok(json) = serde_json::to_string(&frame) else { continue };
                        if let Err(e) = sink.send(WsMessage::text(json)).await {
                            return (End::Retry(format!("connection lost: {e}")), greeted);
                        }
                    }
                    Some(Command::Send { conversation_id, client_id, text, reply }) => {
                        let frame = ClientFrame::Send {
                            conversation_id,
                            client_id: client_id.clone(),
                            text,
                            attachments: Vec::new(),
                        };
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
                self.note_delivered(&message);
                let unread = self.count_unread(&message);
                if self.opts.auto_commit {
                    self.client
                        .cache()
                        .advance_cursor_named(self.cursor_key, id)
                        .map_err(cache_err)?;
                }
                let target = conversation.target();
                let conversation_id = conversation.id;
                let event = MessageEvent {
                    target: target.clone(),
                    conversation,
                    message,
                    replayed: *replaying,
                };
                if !self.emit(Event::Message(event)).await {
                    return Ok(false);
                }
                if let Some((unread, read_seq)) = unread {
                    return Ok(self
                        .emit(Event::Unread {
                            conversation_id,
                            target: Some(target),
                            unread,
                            read_seq,
                        })
                        .await);
                }
                Ok(true)
            }
            ServerFrame::Synced { cursor } => {
                *replaying = false;
                // Everything replayed is stored: report it now rather than later.
                if !self.delivered.is_empty() {
                    self.delivered_due = Some(Instant::now());
                }
                if self.opts.auto_commit {
                    self.client
                        .cache()
                        .advance_cursor_named(self.cursor_key, cursor)
                        .map_err(cache_err)?;
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
            ServerFrame::Presence { presence } => Ok(self.emit(Event::Presence(presence)).await),
            ServerFrame::Typing {
                conversation_id,
                user,
                active,
            } => {
                let target = self.target_of(conversation_id).await;
                Ok(self
                    .emit(Event::Typing {
                        conversation_id,
                        target,
                        user,
                        active,
                    })
                    .await)
            }
            ServerFrame::Receipt { receipt } => {
                let target = self.target_of(receipt.conversation_id).await;
                Ok(self.emit(Event::Receipt { target, receipt }).await)
            }
            ServerFrame::ConversationState { state } => {
                let entry = self
                    .unread
                    .entry(state.conversation_id)
                    .or_insert((0, 0, 0));
                let changed = (entry.0, entry.1) != (state.read_seq, state.unread);
                *entry = (state.read_seq, state.unread, entry.2.max(state.last_seq));
                if changed {
                    let target = self.target_of(state.conversation_id).await;
                    let ev = Event::Unread {
                        conversation_id: state.conversation_id,
                        target,
                        unread: state.unread,
                        read_seq: state.read_seq,
                    };
                    if !self.emit(ev).await {
                        return Ok(false);
                    }
                }
                Ok(self.emit(Event::ConversationState(state)).await)
            }
            ServerFrame::Settings { settings } => Ok(self.emit(Event::Settings(settings)).await),
            ServerFrame::Hello { .. } | ServerFrame::Pong { .. } => Ok(true),
            other => {
                tracing::debug!(?other, "unhandled frame");
                Ok(true)
            }
        }
    }

    /// The target of a conversation, from the cache or the server.
    async fn target_of(&self, id: ConversationId) -> Option<String> {
        self.client.conversation(id).await.ok().map(|c| c.target())
    }

    /// Notes that this device has `m`, for the next delivery receipt.
    fn note_delivered(&mut self, m: &Message) {
        if m.sender == self.client.username() {
            return;
        }
        let seq = self.delivered.entry(m.conversation_id).or_insert(0);
        *seq = (*seq).max(m.seq);
        if self.delivered_due.is_none() {
            self.delivered_due = Some(Instant::now() + DELIVERED_DELAY);
        }
    }

    /// Sends one `delivered` frame per conversation with news.
    async fn send_delivered<S>(&mut self, sink: &mut S) -> Result<(), S::Error>
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        self.delivered_due = None;
        for (conversation_id, seq) in std::mem::take(&mut self.delivered) {
            let frame = ClientFrame::Delivered {
                conversation_id,
                seq,
            };
            if let Ok(json) = serde_json::to_string(&frame) {
                sink.feed(WsMessage::text(json)).await?;
            }
        }
        sink.flush().await
    }

    /// Loads the unread counts the server knows, as the base for live counting.
    async fn load_unread(&mut self) {
        match self.client.rest().conversation_states().await {
            Ok(states) => {
                self.unread = states
                    .into_iter()
                    .map(|s| (s.conversation_id, (s.read_seq, s.unread, s.last_seq)))
                    .collect();
            }
            Err(e) => tracing::info!(error = %e, "cannot load unread counts"),
        }
    }

    /// Counts a message from someone else as unread; returns the new (unread, read_seq)
    /// when the count changed. Messages the server's count already includes are skipped.
    fn count_unread(&mut self, m: &Message) -> Option<(u64, Seq)> {
        let entry = self.unread.entry(m.conversation_id).or_insert((0, 0, 0));
        if m.seq <= entry.2 {
            return None;
        }
        entry.2 = m.seq;
        if m.sender == self.client.username() || m.event.is_some() || m.seq <= entry.0 {
            return None;
        }
        entry.1 += 1;
        Some((entry.1, entry.0))
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

/// Sleeps until `at`, or forever without it.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
