//! The WebSocket connection under the gateway: the HTTP/1.1 upgrade, and the socket with
//! the outgoing byte stream buffered here rather than inside tungstenite.
//!
//! tungstenite reads and answers the client (masking, fragments, pings, close), but the
//! text frames the server sends are framed here, once per frame: a delivery's bytes are
//! framed when it is published ([`Outbound::text`](crate::hub::Outbound::text)) and every recipient copies them straight
//! into its connection's buffer. tungstenite is set to hand every frame of its own (a
//! ping, a pong, a close) to [`Conn`] at once, so both kinds of frames reach the socket in
//! the order they were sent.
//!
//! The buffer is given back once it is written: a connection that had a burst of
//! deliveries (or one large frame) keeps nothing of it when it goes idle. (tungstenite's
//! own write buffer keeps the capacity of the largest burst for the life of the
//! connection: ~1 KiB per idle connection once presence frames had reached it.)
//!
//! On a plain TCP connection the socket is shared with the connection's hub queue, which
//! writes deliveries to it straight away while this side has nothing to write (see
//! [`Queue`]). So every write here first [claims](Queue::claim) the socket, and
//! [`Conn::release`] hands it back once everything is written.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use natter_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::ApiError;
use crate::hub::{Queue, try_io_short};

/// The upgraded socket with its outgoing bytes buffered (see the module docs).
pub struct Conn {
    io: Io,
    out: Vec<u8>,
    /// How much of `out` the socket already took.
    written: usize,
    /// The connection's hub queue, which may write to a plain TCP socket itself.
    queue: Arc<Queue>,
}

enum Io {
    /// A plain TCP connection, shared with the hub queue.
    Tcp {
        socket: Arc<TcpStream>,
        /// Bytes read from the socket and not yet handed to tungstenite: at first what
        /// the HTTP server had read after the upgrade request.
        unread: Bytes,
    },
    /// Any other connection (TLS): only this side writes to it.
    Other(TokioIo<Upgraded>),
}

/// Bytes read from a TCP socket at most at once, into a buffer on the stack (see
/// [`Conn`]'s `AsyncRead`): a pipelining client's frames in one call.
const READ_CHUNK: usize = 4096;

/// Frames go to the socket once this many bytes are buffered (and at a flush), so a burst
/// becomes few writes and the buffer stays bounded. As large as what one wake-up takes off
/// the queue (`MAX_COALESCE_BYTES` in `ws.rs`), so that a batch goes out as one write: at
/// 16 KiB a batch of ~66 deliveries to a room of 100 took two, and the kernel's cost per
/// write (the loopback transmit and the reader's wake-up) was ~28 % of natterd's CPU.
pub const WRITE_BUFFER: usize = 64 * 1024;

impl Conn {
    fn new(upgraded: Upgraded, queue: Arc<Queue>) -> Conn {
        let io =
            match hyper_util::server::conn::auto::upgrade::downcast::<TokioIo<TcpStream>>(upgraded)
            {
                Ok(parts) => Io::Tcp {
                    socket: Arc::new(parts.io.into_inner()),
                    // A copy: what is given is a view of the HTTP server's read buffer
                    // (8 KiB or more), not to be kept for the life of the connection.
                    unread: Bytes::copy_from_slice(&parts.read_buf),
                },
                Err(upgraded) => Io::Other(TokioIo::new(upgraded)),
            };
        Conn {
            io,
            out: Vec::new(),
            written: 0,
            queue,
        }
    }

    /// The plain TCP socket, for the hub queue to write to (see the module docs).
    pub fn tcp(&self) -> Option<Arc<TcpStream>> {
        match &self.io {
            Io::Tcp { socket, .. } => Some(socket.clone()),
            Io::Other(_) => None,
        }
    }

    /// Lets the hub queue write to the socket again if everything here is written: the
    /// caller has nothing more to write until it is woken.
    pub fn release(&mut self) {
        if self.pending() == 0 && matches!(self.io, Io::Tcp { .. }) {
            self.queue.release();
        }
    }

    /// Takes the socket back from the hub queue (see the module docs). Called before
    /// bytes are buffered, and by the session while it answers a client's frames, so that
    /// nothing the queue writes comes between them or before an answer. The rest of a frame
    /// the queue had begun writing is buffered first. Returns whether bytes were buffered.
    pub fn claim(&mut self) -> bool {
        if !self.out.is_empty() || !matches!(self.io, Io::Tcp { .. }) {
            // Claimed when the first bytes were buffered; nothing was written directly since.
            return false;
        }
        match self.queue.claim() {
            Some(rest) => {
                self.out.extend_from_slice(&rest);
                true
            }
            None => false,
        }
    }

    /// Makes room for `bytes` more (never past [`WRITE_BUFFER`] waiting), so that a batch
    /// of frames is copied in without the buffer growing and copying itself on the way.
    pub fn reserve(&mut self, bytes: usize) {
        let room = WRITE_BUFFER.saturating_sub(self.pending());
        self.out.reserve_exact(bytes.min(room));
    }

    /// Bytes buffered and not yet written.
    fn pending(&self) -> usize {
        self.out.len() - self.written
    }

    /// Buffers a whole frame (an [`Outbound`](crate::hub::Outbound)'s bytes); it goes out
    /// with the next flush, or now if [`WRITE_BUFFER`] bytes wait.
    pub async fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        self.claim();
        self.out.extend_from_slice(frame);
        self.drain_if_full().await
    }

    /// Buffers `payload` as a text frame, as [`Conn::write`] does.
    pub async fn write_text(&mut self, payload: &str) -> io::Result<()> {
        self.claim();
        crate::hub::push_text_frame(&mut self.out, payload.as_bytes());
        self.drain_if_full().await
    }

    async fn drain_if_full(&mut self) -> io::Result<()> {
        if self.pending() >= WRITE_BUFFER {
            std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        }
        Ok(())
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let buf = &self.out[self.written..];
            let n = match &mut self.io {
                Io::Tcp { socket, .. } => {
                    match try_io_short(socket, Interest::WRITABLE, buf.len(), |s| s.send(buf)) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            ready!(socket.poll_write_ready(cx))?;
                            continue;
                        }
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Io::Other(io) => ready!(Pin::new(io).poll_write(cx, buf))?,
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        // Given back, not kept: an idle connection holds no buffer.
        self.out = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp { socket, unread } => {
                if !unread.is_empty() {
                    let n = unread.len().min(buf.remaining());
                    buf.put_slice(&unread[..n]);
                    unread.advance(n);
                    if unread.is_empty() {
                        // Let go of the allocation (an empty view still holds it).
                        *unread = Bytes::new();
                    }
                    return Poll::Ready(Ok(()));
                }
                // tungstenite asks for what its small buffer has room for (often a frame's
                // header, then its payload: two calls per frame); one call takes what the
                // socket has, and the rest waits in `unread` (allocated only then).
                let mut chunk = [0; READ_CHUNK];
                loop {
                    ready!(socket.poll_read_ready(cx))?;
                    match try_io_short(socket, Interest::READABLE, READ_CHUNK, |mut s| {
                        s.read(&mut chunk)
                    }) {
                        Ok(n) => {
                            let given = n.min(buf.remaining());
                            buf.put_slice(&chunk[..given]);
                            if given < n {
                                *unread = Bytes::copy_from_slice(&chunk[given..n]);
                            }
                            return Poll::Ready(Ok(()));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
            Io::Other(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    /// Takes everything at once, never a part: a frame of tungstenite's then stays whole
    /// and in order with the frames buffered by [`Conn::write`].
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.claim();
        this.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        match &mut this.io {
            // A TCP socket has nothing more to flush than what `poll_drain` wrote.
            Io::Tcp { .. } => Poll::Ready(Ok(())),
            Io::Other(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.claim();
        ready!(this.poll_drain(cx))?;
        match &mut this.io {
            Io::Tcp { socket, .. } => {
                // Only the write side, as `TcpStream::poll_shutdown` does; the hub queue
                // holds the socket too, so it cannot be taken by value.
                Poll::Ready(socket2::SockRef::from(&**socket).shutdown(std::net::Shutdown::Write))
            }
            Io::Other(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

/// A request to upgrade to a WebSocket (RFC 6455 over HTTP/1.1), checked.
pub struct Handshake {
    accept: HeaderValue,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let bad = |message: &str| ApiError::new(ErrorCode::BadRequest, message).into_response();
        if parts.method != Method::GET {
            return Err(bad("a WebSocket upgrade must be a GET request"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade")
            || !has_token(&parts.headers, header::UPGRADE, "websocket")
        {
            return Err(bad(
                "this endpoint speaks WebSocket: send `Connection: upgrade` and `Upgrade: websocket`",
            ));
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v.as_bytes() != b"13")
        {
            let mut r = bad("only WebSocket version 13 is supported");
            *r.status_mut() = StatusCode::UPGRADE_REQUIRED;
            r.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return Err(r);
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(bad("the Sec-WebSocket-Key header is missing"));
        };
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|_| bad("bad Sec-WebSocket-Key"))?;
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(bad("this connection cannot be upgraded"));
        };
        Ok(Handshake { accept, on_upgrade })
    }
}

impl Handshake {
    /// Answers 101 and runs `session` on the connection once the client has switched.
    pub fn on_upgrade<F, Fut>(
        self,
        config: WebSocketConfig,
        queue: Arc<Queue>,
        session: F,
    ) -> Response
    where
        F: FnOnce(WebSocketStream<Conn>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Handshake { accept, on_upgrade } = self;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let conn = Conn::new(upgraded, queue);
            let socket = WebSocketStream::from_raw_socket(conn, Role::Server, Some(config)).await;
            // A task of its own: this one's state (the upgrade, the configuration, the
            // closure) is not carried for the whole life of the connection.
            tokio::spawn(session(socket));
        });
        let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        r
    }
}
