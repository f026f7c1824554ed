//! `natter-client-core`: the one Natter client library. The CLI uses it now, the TUI and
//! the notifier later; it holds no UI code.
//!
//! - [`paths`]: where files live (`NATTER_HOME`, or the platform directories).
//! - [`session`]: the stored login (`session.json`, 0600) and server URL resolution.
//! - [`rest`]: [`Rest`], one method per `/api/v1` endpoint, errors mapped to [`Error`].
//! - [`cache`]: the local SQLite cache: conversations, messages, resume cursor, outbox.
//! - [`client`]: [`Client`], the logged-in account: target resolution, history, groups,
//!   and the outbox (`queue`, `flush`, `send_now` with bounded retry).
//! - [`connection`]: the WebSocket actor behind [`Connection`] handles: reconnect with
//!   backoff, resume from the cursor, outbox flush on connect, a typed [`Event`] stream.
//! - [`error`]: [`Error`], plus humane duration parsing for `--wait`-style options.
//! - [`live`]: presence, typing, read markers, receipts, mutes and settings on [`Client`].
//! - [`notify`]: desktop notifications (filter, bursts, safe text, D-Bus), shared by
//!   `natter notify` and the TUI.
//!
//! A message travels: `Client::send_now` persists it in the outbox with a UUIDv7 client
//! id, POSTs it until the server's durable ack (retries reuse the id, so the server stores
//! it once), then drops it from the outbox. Another user's `Connection` receives it as a
//! `message` frame, stores it in its cache, and emits [`Event::Message`].

pub mod cache;
pub mod client;
pub mod connection;
pub mod error;
pub mod live;
pub mod notify;
pub mod paths;
pub mod rest;
pub mod session;
pub mod tls;

pub use cache::{Cache, OutboxEntry};
pub use client::{Client, FlushReport, SendOptions, SendOutcome};
pub use connection::{ConnectOptions, Connection, ConnectionState, Event, MessageEvent};
pub use error::{CacheError, Error, humane, parse_duration};
pub use paths::Paths;
pub use rest::{DownloadReport, Progress, Rest, part_path};
pub use session::{DEFAULT_SERVER, Session};

/// Installs the aws-lc-rs rustls crypto provider for the process. Call once at the start
/// of `main`; later calls (and a provider installed by someone else) are fine.
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
