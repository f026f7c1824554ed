//! The WebSocket gateway at `/api/v1/ws`.
//!
//! Each connection registers with the hub *before* it replays from the client's cursor,
//! so nothing committed in between is missed; live copies of messages the replay already
//! sent are dropped by id, so nothing is sent twice. One task serves a connection: it
//! reads and handles client frames, writes their answers, and drains the connection's
//! queue, everything ready into one flush. (One task instead of a reader and a writer
//! task: less memory per idle connection and no hand-off between them.) While the task
//! waits with everything written and no client frame to answer, the hub writes deliveries
//! to a plain TCP socket itself and wakes nobody (see [`crate::hub::Queue`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use futures_util::{FutureExt, SinkExt, StreamExt};
use natter_protocol::{ClientFrame, ErrorBody, ErrorCode, ServerFrame, limits};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage, Utf8Bytes};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::wsconn::{Conn, Handshake, WRITE_BUFFER};
use super::{ApiQuery, AppState, Auth};
use crate::domain::{DomainError, Principal};
use crate::hub::{Outbound, Registration};

/// Close code for a consumer that fell behind its queue (application range 4000-4999).
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a connection whose account was disabled.
pub const CLOSE_ACCOUNT_DISABLED: u16 = 4003;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_BAD_DATA: u16 = 1007;
const CLOSE_INTERNAL: u16 = 1011;
/// Text frames from one client handled together (and so committed together). Kept
/// under 30: `join_all` then polls its futures strictly in order.
const MAX_PIPELINE: usize = 16;
/// Frames written before one flush, so a burst becomes few syscalls.
const MAX_COALESCE: usize = 256;
/// Bytes (about) written before one flush: bounds what one wake-up takes off the queue.
const MAX_COALESCE_BYTES: usize = 64 * 1024;

/// Bytes read from the socket at most at a time, allocated per connection. Small: a
/// client sends little (a send frame is ~150 bytes) and an idle connection should cost
/// little; a larger frame simply takes several reads.
const READ_BUFFER: usize = 512;
type Socket = WebSocketStream<Conn>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct WsQuery {
    /// The highest message id the client already has; everything after it is replayed
    /// before live events.
    after: Option<i64>,
}

/// Upgrades to the real-time event stream. Frames are JSON, tagged by `type`; see
/// `natter_protocol::frames` and docs/API.md.
#[utoipa::path(get, path = "/ws", tag = "realtime", security(("bearer" = [])),
    params(WsQuery),
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 401, body = ErrorBody), (status = 400, body = ErrorBody),
        (status = 426, description = "WebSocket version other than 13", body = ErrorBody)))]
async fn upgrade(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: Handshake,
) -> Response {
    let max = s.config.max_connections_per_user;
    // Registered before the upgrade is answered: a client whose upgrade succeeded holds
    // its place (and a third connection made at the same moment as a second is refused).
    // Frames that arrive before the session starts wait in the queue.
    let Some(reg) = s.hub.register_within(auth.principal.id, max) else {
        return super::ApiError::new(
            ErrorCode::RateLimited,
            format!("you already have {max} open connections: close one and try again"),
        )
        .into_response();
    };
    let limit = s.config.max_frame_bytes;
    let tracker = s.sessions.clone();
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        // tungstenite's 128 KiB default read buffer per connection is far more than chat
        // needs; many idle connections should cost little. The read buffer is allocated
        // whole up front (and bounds one read).
        .read_buffer_size(READ_BUFFER)
        // tungstenite hands each frame of its own to `Conn` at once, which buffers the
        // outgoing bytes (see `wsconn`).
        .write_buffer_size(0)
        .max_write_buffer_size(limit + WRITE_BUFFER);
    let queue = reg.queue.clone();
    ws.on_upgrade(config, queue, move |socket| {
        tracker.track_future(session(s, reg, auth.principal, q.after, socket))
    })
}

fn close(code: u16, reason: &'static str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Buffers `frame`; it goes out with the next flush (see [`Conn::write`]).
async fn feed(sink: &mut Socket, frame: &ServerFrame) -> Result<(), WsError> {
    Ok(sink.get_mut().write_text(&frame.encode()).await?)
}

async fn send(sink: &mut Socket, frame: &ServerFrame) -> Result<(), WsError> {
    feed(sink, frame).await?;
    sink.flush().await
}

/// Sends `hello`, then (with a cursor) every message after it and `synced`. Returns the
/// highest message id sent or known, below which live copies are dropped.
async fn greet(
    s: &AppState,
    p: &Principal,
    after: Option<i64>,
    sink: &mut Socket,
) -> anyhow::Result<i64> {
    let head = s.domain.head(p).await?;
    send(
        sink,
        &ServerFrame::Hello {
            user: p.info(),
            cursor: head,
            heartbeat_secs: s.config.heartbeat_secs,
        },
    )
    .await?;
    let Some(mut cursor) = after else {
        return Ok(head);
    };
    loop {
        let page = s.domain.sync(p, cursor, Some(limits::RESUME_PAGE)).await?;
        for message in page.messages {
            feed(sink, &ServerFrame::Message { message }).await?;
        }
        sink.flush().await?;
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    send(sink, &ServerFrame::Synced { cursor }).await?;
    Ok(cursor.max(head))
}

/// The answers to a batch of client frames, in the order the frames came.
type Handling<'a> = Pin<Box<dyn Future<Output = Vec<Option<Answer>>> + Send + 'a>>;

/// One connection's whole life, as one task. A future's state is as large as its largest
/// await, and this one lives as long as the connection, idle or not: the awaits taken
/// once or now and then (greeting, answers, pings, goodbye) are boxed so that the idle
/// state stays small; the delivery path is not. The task is 1,280 bytes (it was 1,920
/// as an async fn run inside the upgrade's future; `-Zprint-type-sizes` shows them).
#[allow(clippy::manual_async_fn)] // on purpose: see the comment in the body
fn session(
    s: AppState,
    reg: Registration,
    p: Principal,
    after: Option<i64>,
    mut socket: Socket,
) -> impl Future<Output = ()> + Send {
    // An async block, not an async fn: an async fn keeps its arguments twice in its state
    // (as given, and moved into its body), here 448 bytes per connection for nothing.
    async move {
        let replayed = match Box::pin(greet(&s, &p, after, &mut socket)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(user = %p.username, error = %e, "could not start session");
                let _ = socket
                    .send(close(
                        CLOSE_INTERNAL,
                        "could not load your messages; try again",
                    ))
                    .await;
                return;
            }
        };

        // Counted online from here until the session ends (the guard is dropped with it).
        let mut presence = s.domain.live.connected(&p);
        let started = Instant::now();
        let mut last_heard = Duration::ZERO;
        let heartbeat = Duration::from_secs(u64::from(s.config.heartbeat_secs));
        let mut ping = tokio::time::interval_at(started + heartbeat, heartbeat);
        // Client frames being handled. One batch at a time: the next frames are read once
        // its answers are written, so a client cannot pile up work on the server.
        let mut handling: Option<Handling<'_>> = None;
        // A frame read ahead while batching that was not a text frame.
        let mut held: Option<Result<WsMessage, WsError>> = None;
        let mut out: Vec<Outbound> = Vec::new();
        // Frames written to the socket's buffer but not flushed: they are flushed once
        // nothing else is ready, so answers and deliveries that are ready together (an ack
        // and the deliveries of the same commit) leave in one write.
        let mut unflushed = false;
        // From here the hub writes deliveries to a plain TCP socket itself whenever this
        // task has nothing to write (see `Queue`).
        if let Some(tcp) = socket.get_ref().tcp() {
            reg.queue.attach(tcp, replayed);
        }
        let goodbye = loop {
            if let Some(reason) = reg.queue.kicked() {
                // (The rest of a frame the hub had begun writing, which a kicked queue
                // keeps, goes out before the close frame: see `Conn::claim`.)
                break Some(match reason {
                    crate::hub::KICK_DISABLED => {
                        close(CLOSE_ACCOUNT_DISABLED, "account disabled by an admin")
                    }
                    _ => close(
                        CLOSE_SLOW_CONSUMER,
                        "slow consumer: reconnect with your cursor",
                    ),
                });
            }
            if handling.is_none() && held.is_none() && !unflushed {
                // Everything is written and nothing is being answered: until this task
                // is woken, the hub may write deliveries to the socket itself.
                socket.get_mut().release();
            }
            // Biased, in this order: answers before deliveries (an ack goes out before the
            // echo of its message when both are ready), the client's frames before more
            // deliveries (a busy queue cannot keep a client from sending; a batch in flight
            // stops reading until it is answered), and the flush only when nothing else is
            // ready.
            tokio::select! {
                biased;
                _ = s.hub.shutdown.cancelled() => break Some(close(CLOSE_GOING_AWAY, "server shutting down")),
                answers = async { handling.as_mut().expect("guarded").await }, if handling.is_some() => {
                    handling = None;
                    if Box::pin(write_answers(&mut socket, answers)).await.is_err() {
                        break None;
                    }
                    unflushed = true;
                }
                msg = async { match held.take() { Some(m) => Some(m), None => socket.next().await } },
                    if handling.is_none() =>
                {
                    let Some(msg) = msg else { break None };
                    last_heard = started.elapsed();
                    let answer = match msg {
                        Ok(WsMessage::Text(first)) => {
                            // Pipelining: take every text frame already received (up to a
                            // bound) and handle them together. `join_all` polls them in order,
                            // so their writes reach the store's queue in the order sent (sends
                            // keep their order and get increasing seq), and one commit can
                            // carry all of them instead of one commit per frame. Answers go
                            // back in the order the frames came.
                            let mut batch = vec![first];
                            while batch.len() < MAX_PIPELINE {
                                match socket.next().now_or_never() {
                                    Some(Some(Ok(WsMessage::Text(t)))) => batch.push(t),
                                    Some(Some(other)) => {
                                        held = Some(other);
                                        break;
                                    }
                                    // The stream ended; the next read says so.
                                    Some(None) | None => break,
                                }
                            }
                            // While they are answered, deliveries are queued, as before
                            // direct writes: an ack then goes out before the echo of its
                            // message when both are ready (not when the echo's commit
                            // comes before the rest of the batch is answered).
                            unflushed |= socket.get_mut().claim();
                            let (s, p) = (&s, &p);
                            handling = Some(Box::pin(async move {
                                join_all(batch.iter().map(|t| handle(s, p, t.as_str()))).await
                            }));
                            continue;
                        }
                        Ok(WsMessage::Binary(_)) => Some(ServerFrame::Error {
                            code: ErrorCode::MalformedFrame,
                            message: "binary frames are not supported: send JSON text frames".into(),
                            client_id: None,
                        }),
                        Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_)) => None,
                        Ok(WsMessage::Close(_)) => break None,
                        Err(e) => {
                            let goodbye = close_for(e);
                            if let Some(goodbye) = &goodbye {
                                tracing::info!(user = %p.username, "refused a frame: {goodbye:?}");
                            }
                            break goodbye;
                        }
                    };
                    if Box::pin(write_answers(&mut socket, vec![answer.map(Answer::Frame)])).await.is_err() {
                        break None;
                    }
                    unflushed = true;
                }
                _ = reg.queue.ready() => {
                    // A kick wakes this branch too; the check above comes first.
                    if reg.queue.kicked().is_some() {
                        continue;
                    }
                    reg.queue.take(&mut out, MAX_COALESCE, MAX_COALESCE_BYTES);
                    if write_batch(&mut socket, &mut out, replayed).await.is_err() {
                        break None;
                    }
                    unflushed = true;
                }
                _ = ping.tick() => {
                    let silent = started.elapsed().saturating_sub(last_heard);
                    // Pongs answer within moments: silence over 1.5 intervals at a tick means
                    // the previous ping went unanswered. The peer stops counting as present
                    // (so a vanished one is offline within two intervals plus the grace
                    // period); the socket itself is kept for one more, as before.
                    presence.set_active(silent <= heartbeat * 3 / 2);
                    if silent > heartbeat * 2 {
                        break Some(close(CLOSE_GOING_AWAY, "no answer to heartbeat"));
                    }
                    if Box::pin(socket.send(WsMessage::Ping(Default::default()))).await.is_err() {
                        break None;
                    }
                    unflushed = false;
                }
                _ = std::future::ready(()), if unflushed => {
                    if socket.flush().await.is_err() {
                        break None;
                    }
                    unflushed = false;
                }
            }
        };
        drop(handling);
        if let Some(msg) = goodbye {
            let _ = Box::pin(tokio::time::timeout(
                Duration::from_secs(2),
                socket.send(msg),
            ))
            .await;
        }
        drop(reg);
    }
}

/// Copies what was taken off the queue (emptying `out`) into the connection's buffer
/// (see [`Conn::write`]); the caller flushes. The frames were framed once for all
/// recipients: one copy each, no encoding.
async fn write_batch(
    sink: &mut Socket,
    out: &mut Vec<Outbound>,
    replayed: i64,
) -> Result<(), WsError> {
    let conn = sink.get_mut();
    conn.reserve(out.iter().map(|f| f.frame.len()).sum());
    for frame in out.drain(..) {
        if frame.needed_after(replayed) {
            conn.write(&frame.frame).await?;
        }
    }
    Ok(())
}

async fn write_answers(sink: &mut Socket, answers: Vec<Option<Answer>>) -> Result<(), WsError> {
    for answer in answers.into_iter().flatten() {
        match answer {
            Answer::Frame(frame) => feed(sink, &frame).await?,
            Answer::Encoded(text) => sink.get_mut().write_text(&text).await?,
        }
    }
    Ok(())
}

/// The close frame a read error deserves: 1009 for a frame over the size limit, 1007
/// for a text frame that is not UTF-8; `None` when the connection is simply gone.
fn close_for(e: WsError) -> Option<WsMessage> {
    match e {
        WsError::Capacity(_) => Some(close(CLOSE_TOO_BIG, "frame too large")),
        WsError::Utf8(_) => Some(close(CLOSE_BAD_DATA, "text frames must be UTF-8")),
        _ => None,
    }
}

fn error_frame(e: DomainError) -> ServerFrame {
    let err = super::ApiError::from(e);
    ServerFrame::Error {
        code: err.code,
        message: err.message,
        client_id: None,
    }
}

/// What a client's frame is answered with: a frame, or one already encoded.
// As large as the `ServerFrame` answers were before; boxing would allocate per answer.
#[allow(clippy::large_enum_variant)]
enum Answer {
    Frame(ServerFrame),
    Encoded(String),
}

async fn handle(s: &AppState, p: &Principal, text: &str) -> Option<Answer> {
    let frame = match ClientFrame::decode(text) {
        Ok(f) => f,
        Err(message) => {
            return Some(Answer::Frame(ServerFrame::Error {
                code: ErrorCode::MalformedFrame,
                message,
                client_id: None,
            }));
        }
    };
    match frame {
        ClientFrame::Send {
            conversation_id,
            client_id,
            text,
            attachments,
        } => Some(
            match s
                .domain
                .send(p, conversation_id, &client_id, &text, &attachments)
                .await
            {
                // The message's JSON as its deliveries carry it, serialized once.
                Ok(stored) => Answer::Encoded(natter_protocol::ack_frame_from_json(
                    &client_id,
                    stored.message.json(),
                    stored.duplicate,
                )),
                Err(e) => {
                    let err = super::ApiError::from(e);
                    Answer::Frame(ServerFrame::Error {
                        code: err.code,
                        message: err.message,
                        client_id: Some(client_id),
                    })
                }
            },
        ),
        other => handle_other(s, p, other).await.map(Answer::Frame),
    }
}

/// Every client frame but `send`.
async fn handle_other(s: &AppState, p: &Principal, frame: ClientFrame) -> Option<ServerFrame> {
    match frame {
        ClientFrame::Ping { nonce } => Some(ServerFrame::Pong { nonce }),
        ClientFrame::Typing {
            conversation_id,
            active,
        } => match s.domain.typing(p, conversation_id, active).await {
            // Typing is best effort: over-eager clients are ignored, not scolded.
            Ok(()) | Err(DomainError::RateLimited(_)) => None,
            Err(e) => Some(error_frame(e)),
        },
        ClientFrame::Delivered {
            conversation_id,
            seq,
        } => s
            .domain
            .mark(p, conversation_id, Some(seq), None)
            .await
            .err()
            .map(error_frame),
        ClientFrame::Read {
            conversation_id,
            seq,
        } => s
            .domain
            .mark(p, conversation_id, None, Some(seq))
            .await
            .err()
            .map(error_frame),
        ClientFrame::SetPresence { state } => {
            s.domain.set_presence(p, state).err().map(error_frame)
        }
        _ => Some(ServerFrame::Error {
            code: ErrorCode::MalformedFrame,
            message: "unsupported frame type".into(),
            client_id: None,
        }),
    }
}
