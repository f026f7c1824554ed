//! The end-to-end harness: the real `natterd` and the real `natter`, no mocks.
//!
//! - [`bins`]: builds both binaries once per test process (`cargo build`, same profile).
//! - [`server`]: [`Server`] runs `natterd` on `127.0.0.1:0` with a temp data dir, waits for
//!   its `listening on http://ADDR` line, and can be killed (`kill -9`), stopped
//!   (SIGTERM) and restarted on the same data.
//! - [`user`]: [`User`] is one device of one person: `natter` with its own `NATTER_HOME`;
//!   commands run with a timeout, and [`Listener`] reads a background `natter listen` line
//!   by line so tests wait for output instead of sleeping.
//! - [`ws`]: a raw WebSocket client for wire-level tests.
//! - [`tmux`]: [`tmux::Tmux`] runs the real `natter` TUI in a tmux pane; tests send keys
//!   and read the screen (capture-pane), waiting for text with a deadline.
//! - [`process`]: child-process plumbing (signals, bounded waits, pipe draining).
//! - [`proxy`]: a fault-injecting TCP proxy (lost acks, random cuts, cut-all).

pub mod bins;
pub mod process;
pub mod proxy;
pub mod server;
pub mod tmux;
pub mod user;
pub mod ws;

pub use process::Output;
pub use server::Server;
pub use user::{Listener, Msg, PASSWORD, User, await_ready, message_id, messages};

use std::time::Duration;

/// How long a test waits for something a user would expect to see "at once".
pub const SOON: Duration = Duration::from_secs(20);
