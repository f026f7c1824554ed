//! The driver's hot path: one raw TCP stream per simulated client, spoken as either
//! Natter's WebSocket protocol or plain IRC.
//!
//! The WebSocket side is deliberately minimal (a fixed-key HTTP upgrade, unmasked server
//! frames parsed in place, client frames masked with an all-zero key so the payload is
//! copied unchanged) and nothing is JSON-decoded: the fields the driver needs are found by
//! substring search. That keeps the driver's cost per delivery close to a line split, so
//! the same driver can be compared fairly across Natter and the IRC servers.

use std::io;
use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use memchr::memmem::Finder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes of message text the driver sends: `t=<unix ns> s=<sender> ` padded with `x`.
pub const TEXT_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Proto {
    Natter,
    Irc,
}

static CLOCK: LazyLock<(Instant, u64)> = LazyLock::new(|| {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    (Instant::now(), unix)
});

/// Unix time in nanoseconds, from a monotonic clock anchored once per process (sends and
/// receives happen in this one process, so only differences matter).
pub fn now_ns() -> u64 {
    let (base, unix) = *CLOCK;
    unix + base.elapsed().as_nanos() as u64
}

/// The tokio instant for a time from [`now_ns`].
pub fn instant_at(ns: u64) -> tokio::time::Instant {
    let (base, unix) = *CLOCK;
    // Capped (about 13 days ahead) so a schedule that never fires cannot overflow.
    tokio::time::Instant::from_std(
        base + Duration::from_nanos(ns.saturating_sub(unix).min(1 << 50)),
    )
}

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Parses leading ASCII digits; returns the value and how many bytes it used.
pub fn parse_u64(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut n = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        n += 1;
    }
    (n > 0).then_some((v, n))
}

/// Appends the message text carrying the send timestamp and the sender's index.
pub fn stamp_text(out: &mut Vec<u8>, ts: u64, sender: u32) {
    let start = out.len();
    out.extend_from_slice(b"t=");
    push_u64(out, ts);
    out.extend_from_slice(b" s=");
    push_u64(out, u64::from(sender));
    out.push(b' ');
    out.resize(start + TEXT_LEN.max(out.len() - start), b'x');
}

/// Reads `<ts> s=<sender>` from the bytes right after `t=`.
pub fn parse_stamp(b: &[u8]) -> Option<(u64, u32)> {
    let (ts, n) = parse_u64(b)?;
    let rest = b.get(n..)?.strip_prefix(b" s=")?;
    let (sender, _) = parse_u64(rest)?;
    Some((ts, u32::try_from(sender).ok()?))
}

/// `NATTER_BENCH_DEBUG=1` prints frames the driver does not count.
static DEBUG: LazyLock<bool> = LazyLock::new(|| std::env::var_os("NATTER_BENCH_DEBUG").is_some());

static NATTER_TEXT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"text\":\"t="));
static IRC_TEXT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" :t="));
static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"seq\":"));
static CURSOR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"cursor\":"));
static CLOSE_RN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));

/// What one received frame or line meant to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A chat message carrying a driver timestamp. `id` and `seq` are Natter's message id
    /// and per-conversation sequence (0 for IRC).
    Message {
        ts: u64,
        sender: u32,
        id: u64,
        seq: u64,
    },
    /// Natter's durable ack of our own send, with the stored message's seq.
    Ack { seq: u64 },
    /// Natter `hello` with the user's cursor.
    Hello { cursor: u64 },
    /// Natter `synced`: the replay after a cursor is complete.
    Synced,
    /// Natter `presence`: someone who shares a conversation came or went.
    Presence,
    /// IRC 001: registration complete.
    Welcome,
    /// IRC 366: end of NAMES, i.e. a JOIN completed.
    NamesEnd,
    /// The server closed the stream (WebSocket close frame with its code, IRC `ERROR`).
    Closed { code: u16 },
    /// A server error reply (Natter `error`, IRC 4xx/5xx numerics).
    Error,
    /// Any other frame (a control frame the driver answered, a membership frame, ...).
    Other,
}

/// Parses a Natter server text frame.
pub fn natter_event(p: &[u8], want_ids: bool) -> Event {
    const MSG: &[u8] = b"{\"type\":\"message\",\"message\":{\"id\":";
    if let Some(rest) = p.strip_prefix(MSG) {
        let Some(at) = NATTER_TEXT.find(p) else {
            return Event::Other;
        };
        let Some((ts, sender)) = parse_stamp(&p[at + 10..]) else {
            return Event::Other;
        };
        let (mut id, mut seq) = (0, 0);
        if want_ids {
            id = parse_u64(rest).map_or(0, |(v, _)| v);
            seq = SEQ
                .find(rest)
                .and_then(|i| parse_u64(&rest[i + 6..]))
                .map_or(0, |(v, _)| v);
        }
        return Event::Message {
            ts,
            sender,
            id,
            seq,
        };
    }
    if p.starts_with(b"{\"type\":\"ack\"") {
        let seq = SEQ
            .find(p)
            .and_then(|i| parse_u64(&p[i + 6..]))
            .map_or(0, |(v, _)| v);
        return Event::Ack { seq };
    }
    if p.starts_with(b"{\"type\":\"hello\"") {
        let cursor = CURSOR
            .find(p)
            .and_then(|i| parse_u64(&p[i + 9..]))
            .map_or(0, |(v, _)| v);
        return Event::Hello { cursor };
    }
    if p.starts_with(b"{\"type\":\"synced\"") {
        return Event::Synced;
    }
    if p.starts_with(b"{\"type\":\"presence\"") {
        return Event::Presence;
    }
    if p.starts_with(b"{\"type\":\"error\"") {
        if *DEBUG {
            eprintln!("server error frame: {}", String::from_utf8_lossy(p));
        }
        return Event::Error;
    }
    if *DEBUG {
        eprintln!(
            "other frame: {}",
            String::from_utf8_lossy(&p[..p.len().min(300)])
        );
    }
    Event::Other
}

/// Parses one IRC line (without its line ending). `PING` is answered by the caller.
pub fn irc_event(line: &[u8]) -> Event {
    // Skip the optional `:prefix `.
    let cmd_start = if line.first() == Some(&b':') {
        match memchr::memchr(b' ', line) {
            Some(i) => i + 1,
            None => return Event::Other,
        }
    } else {
        0
    };
    let rest = &line[cmd_start..];
    if rest.starts_with(b"PRIVMSG ") {
        return match IRC_TEXT
            .find(rest)
            .and_then(|i| parse_stamp(&rest[i + 4..]))
        {
            Some((ts, sender)) => Event::Message {
                ts,
                sender,
                id: 0,
                seq: 0,
            },
            None => Event::Other,
        };
    }
    if rest.starts_with(b"001 ") {
        return Event::Welcome;
    }
    if rest.starts_with(b"366 ") {
        return Event::NamesEnd;
    }
    if rest.starts_with(b"ERROR") {
        return Event::Closed { code: 0 };
    }
    if rest.len() > 3
        && (rest[0] == b'4' || rest[0] == b'5')
        && rest[1..3].iter().all(u8::is_ascii_digit)
    {
        return Event::Error;
    }
    Event::Other
}

/// One decoded WebSocket frame header: opcode, header length, payload length.
pub fn ws_frame(buf: &[u8]) -> Option<(u8, usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (mut hdr, len) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (4, usize::from(u16::from_be_bytes([buf[2], buf[3]])))
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (10, usize::try_from(u64::from_be_bytes(b)).ok()?)
        }
        n => (2, usize::from(n)),
    };
    if masked {
        // Servers never mask; treat the key as part of the header and ignore it.
        hdr += 4;
    }
    (buf.len() >= hdr + len).then_some((opcode, hdr, len))
}

/// Appends a client frame, masked with the all-zero key (so the payload is unchanged).
pub fn ws_client_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// One connection of the driver.
pub struct Client {
    stream: TcpStream,
    pub proto: Proto,
    rbuf: Vec<u8>,
    rpos: usize,
    /// Bytes to write at the next [`Client::flush`]: sends and automatic pongs coalesce.
    pub wbuf: Vec<u8>,
    scratch: Vec<u8>,
    /// Parse message ids and seqs (Natter) as well as timestamps.
    pub want_ids: bool,
    read_chunk: usize,
}

impl Client {
    fn new(stream: TcpStream, proto: Proto, read_chunk: usize) -> Client {
        Client {
            stream,
            proto,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            scratch: Vec::new(),
            want_ids: false,
            read_chunk,
        }
    }

    async fn dial(addr: SocketAddr, rcvbuf: Option<u32>) -> io::Result<TcpStream> {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(size) = rcvbuf {
            sock.set_recv_buffer_size(size)?;
        }
        let stream = sock.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Opens `/api/v1/ws` with a bearer token and waits for `hello`; returns the cursor.
    /// Frames after `hello` (a replay when `after` is given) stay buffered.
    pub async fn natter(
        addr: SocketAddr,
        token: &str,
        after: Option<u64>,
        rcvbuf: Option<u32>,
        read_chunk: usize,
    ) -> anyhow::Result<(Client, u64)> {
        let stream = Self::dial(addr, rcvbuf).await?;
        let mut c = Client::new(stream, Proto::Natter, read_chunk);
        let query = after.map(|a| format!("?after={a}")).unwrap_or_default();
        let req = format!(
            "GET /api/v1/ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        c.stream.write_all(req.as_bytes()).await?;
        let end = loop {
            if let Some(i) = CLOSE_RN.find(&c.rbuf) {
                break i + 4;
            }
            anyhow::ensure!(c.rbuf.len() < 16 * 1024, "oversized upgrade response");
            if c.fill().await? == 0 {
                anyhow::bail!("connection closed during the WebSocket upgrade");
            }
        };
        if !c.rbuf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&c.rbuf[..end]);
            anyhow::bail!(
                "upgrade refused: {}",
                head.lines().next().unwrap_or_default()
            );
        }
        c.rpos = end;
        loop {
            match c.next_event() {
                Some(Event::Hello { cursor }) => return Ok((c, cursor)),
                Some(Event::Closed { code }) => anyhow::bail!("closed before hello ({code})"),
                Some(_) => {}
                None => {
                    c.flush().await?;
                    if c.fill().await? == 0 {
                        anyhow::bail!("connection closed before hello");
                    }
                }
            }
        }
    }

    /// Connects and registers an IRC nick; waits for 001.
    pub async fn irc(addr: SocketAddr, nick: &str, read_chunk: usize) -> anyhow::Result<Client> {
        let stream = Self::dial(addr, None).await?;
        let mut c = Client::new(stream, Proto::Irc, read_chunk);
        c.wbuf
            .extend_from_slice(format!("NICK {nick}\r\nUSER {nick} 0 * :bench\r\n").as_bytes());
        c.flush().await?;
        c.wait_for(Event::Welcome)
            .await
            .map_err(|e| anyhow::anyhow!("registering {nick}: {e}"))?;
        Ok(c)
    }

    /// Joins an IRC channel and waits for the end of its NAMES list.
    pub async fn irc_join(&mut self, channel: &str) -> anyhow::Result<()> {
        self.wbuf
            .extend_from_slice(format!("JOIN {channel}\r\n").as_bytes());
        self.flush().await?;
        self.wait_for(Event::NamesEnd).await
    }

    async fn wait_for(&mut self, want: Event) -> anyhow::Result<()> {
        loop {
            match self.next_event() {
                Some(e) if e == want => return Ok(()),
                Some(Event::Closed { code }) => {
                    anyhow::bail!("server closed the connection ({code})")
                }
                Some(Event::Error) => anyhow::bail!("server answered with an error"),
                Some(_) => {}
                None => {
                    self.flush().await?;
                    if self.fill().await? == 0 {
                        anyhow::bail!("connection closed");
                    }
                }
            }
        }
    }

    /// Reads what the socket has (cancel-safe). Returns 0 at end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        } else if self.rpos > 0 && self.rbuf.capacity() - self.rbuf.len() < self.read_chunk {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(self.read_chunk);
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// The next complete frame or line in the buffer, if any. Pings are answered into
    /// `wbuf` here, so callers only need to flush.
    pub fn next_event(&mut self) -> Option<Event> {
        let avail = &self.rbuf[self.rpos..];
        match self.proto {
            Proto::Natter => {
                let (opcode, hdr, len) = ws_frame(avail)?;
                let payload = &avail[hdr..hdr + len];
                self.rpos += hdr + len;
                Some(match opcode {
                    0x0..=0x2 => natter_event(payload, self.want_ids),
                    0x8 => Event::Closed {
                        code: if payload.len() >= 2 {
                            u16::from_be_bytes([payload[0], payload[1]])
                        } else {
                            1005
                        },
                    },
                    0x9 => {
                        ws_client_frame(&mut self.wbuf, 0xA, payload);
                        Event::Other
                    }
                    _ => Event::Other,
                })
            }
            Proto::Irc => {
                let nl = memchr::memchr(b'\n', avail)?;
                let mut line = &avail[..nl];
                self.rpos += nl + 1;
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                if let Some(arg) = line.strip_prefix(b"PING") {
                    self.wbuf.extend_from_slice(b"PONG");
                    self.wbuf.extend_from_slice(arg);
                    self.wbuf.extend_from_slice(b"\r\n");
                    return Some(Event::Other);
                }
                Some(irc_event(line))
            }
        }
    }

    /// Queues one chat message (64 bytes of text) into `wbuf`. `target` is the Natter
    /// conversation id or the IRC channel's number.
    pub fn queue_message(&mut self, target: u64, ts: u64, sender: u32, n: u64) {
        match self.proto {
            Proto::Natter => {
                let s = &mut self.scratch;
                s.clear();
                s.extend_from_slice(b"{\"type\":\"send\",\"conversation_id\":");
                push_u64(s, target);
                // Time first, like the UUIDv7 ids Natter's own clients send: the server's
                // idempotency index is keyed by it, so a realistic key matters. The send
                // time also keeps ids apart from earlier runs by the same accounts. (Until
                // 2286 every such time has 19 digits: text order is time order.)
                s.extend_from_slice(b",\"client_id\":\"");
                push_u64(s, ts);
                s.push(b'-');
                push_u64(s, u64::from(sender));
                s.push(b'-');
                push_u64(s, n);
                s.extend_from_slice(b"\",\"text\":\"");
                stamp_text(s, ts, sender);
                s.extend_from_slice(b"\"}");
                ws_client_frame(&mut self.wbuf, 0x1, s);
            }
            Proto::Irc => {
                self.wbuf.extend_from_slice(b"PRIVMSG #c");
                push_u64(&mut self.wbuf, target);
                self.wbuf.extend_from_slice(b" :");
                stamp_text(&mut self.wbuf, ts, sender);
                self.wbuf.extend_from_slice(b"\r\n");
            }
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Says goodbye politely (IRC `QUIT`, WebSocket close) without waiting for an answer.
    pub async fn quit(mut self) {
        match self.proto {
            Proto::Natter => ws_client_frame(&mut self.wbuf, 0x8, &1000u16.to_be_bytes()),
            Proto::Irc => self.wbuf.extend_from_slice(b"QUIT :done\r\n"),
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), self.flush()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_and_is_64_bytes() {
        let mut out = Vec::new();
        stamp_text(&mut out, 1_780_000_000_123_456_789, 4321);
        assert_eq!(out.len(), TEXT_LEN);
        assert!(out.starts_with(b"t=1780000000123456789 s=4321 xx"));
        assert_eq!(
            parse_stamp(&out[2..]),
            Some((1_780_000_000_123_456_789, 4321))
        );
        assert_eq!(parse_stamp(b"12 x=3"), None);
    }

    #[test]
    fn finds_the_stamp_in_a_natter_message_frame() {
        let mut text = Vec::new();
        stamp_text(&mut text, 99, 7);
        let frame = format!(
            "{{\"type\":\"message\",\"message\":{{\"id\":42,\"conversation_id\":3,\"seq\":17,\
             \"sender\":\"u1\",\"text\":\"{}\",\"sent_at\":\"2026-01-01T00:00:00Z\",\"client_id\":\"c7-1\"}}}}",
            String::from_utf8(text).unwrap()
        );
        assert_eq!(
            natter_event(frame.as_bytes(), true),
            Event::Message {
                ts: 99,
                sender: 7,
                id: 42,
                seq: 17
            }
        );
        let ack = br#"{"type":"ack","client_id":"c7-1","message":{"id":42,"conversation_id":3,"seq":17},"duplicate":false}"#;
        assert_eq!(natter_event(ack, false), Event::Ack { seq: 17 });
        let hello = br#"{"type":"hello","user":{"id":1,"username":"a","is_admin":false},"cursor":1234,"heartbeat_secs":20}"#;
        assert_eq!(natter_event(hello, false), Event::Hello { cursor: 1234 });
    }

    #[test]
    fn parses_irc_lines() {
        assert_eq!(
            irc_event(b":n1!n1@127.0.0.1 PRIVMSG #c3 :t=123 s=9 xxxx"),
            Event::Message {
                ts: 123,
                sender: 9,
                id: 0,
                seq: 0
            }
        );
        assert_eq!(irc_event(b":irc.local 001 n1 :Welcome"), Event::Welcome);
        assert_eq!(
            irc_event(b":irc.local 366 n1 #c3 :End of /NAMES list."),
            Event::NamesEnd
        );
        assert_eq!(
            irc_event(b":irc.local 433 * n1 :Nickname is already in use"),
            Event::Error
        );
        assert_eq!(irc_event(b"ERROR :Closing link"), Event::Closed { code: 0 });
        assert_eq!(irc_event(b":a!b@c PRIVMSG #c3 :hello"), Event::Other);
    }

    #[test]
    fn websocket_frames_round_trip_through_the_header_parser() {
        for len in [0usize, 5, 125, 126, 200, 70_000] {
            let payload = vec![b'a'; len];
            let mut out = Vec::new();
            ws_client_frame(&mut out, 0x1, &payload);
            let (op, hdr, n) = ws_frame(&out).unwrap();
            assert_eq!((op, n), (1, len));
            // Client frames carry a (zero) mask key, which the parser skips.
            assert_eq!(&out[hdr..], &payload[..]);
            assert_eq!(ws_frame(&out[..out.len() - 1]), None);
        }
        // An unmasked server frame.
        let server = [0x81u8, 3, b'a', b'b', b'c'];
        assert_eq!(ws_frame(&server), Some((1, 2, 3)));
    }
}
