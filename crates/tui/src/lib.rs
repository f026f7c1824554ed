//! `natter-tui`: the full-screen terminal interface of `natter`, on ratatui and crossterm.
//! It talks to the network only through `natter-client-core`.
//!
//! The shape is The Elm Architecture: one [`Event`] type merges terminal input, the
//! connection's events, results of background work and clock ticks;
//! [`update`]`(&mut State, Event) -> Vec<Effect>` is the only place state changes; the
//! screen is a pure function of `&State` (`impl Widget for &State` in [`view`]).
//!
//! - [`app`]: the runtime: terminal setup/restore (panic hook, signals), the event loop,
//!   effects run in background tasks, `$EDITOR`.
//! - [`event`]: [`Event`] and [`Effect`].
//! - [`state`]: [`State`]: conversations, timelines, input, overlays; sanitizes network
//!   text on the way in.
//! - [`update`]: key handling, slash commands, completion, switcher, live events.
//! - [`timeline`]: message layout (day separators, grouping, wrapping, receipts) and
//!   anchor-based scrolling that only touches visible items.
//! - [`layout`], [`view`]: where things go and how they are drawn.
//! - [`input`]: the line editor (readline keys) and input history.
//! - [`keys`], [`config`]: key bindings and `tui.toml`.
//! - [`fuzzy`]: the quick switcher's matcher.
//! - [`files`]: attachments as shown, files mode, transfers, `/file` path handling.
//! - [`preview`]: inline image previews: terminal graphics detection, box sizes,
//!   thumbnail encoding, the bounded cache.

pub mod app;
pub mod config;
pub mod event;
pub mod files;
pub mod fuzzy;
pub mod input;
pub mod keys;
pub mod layout;
pub mod preview;
pub mod state;
pub mod timeline;
pub mod update;
pub mod view;

pub use app::{Error, Options, run};
pub use config::Config;
pub use event::{Effect, Event};
pub use state::State;
pub use update::update;
