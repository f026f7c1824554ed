//! End-to-end tests: each starts a real `natterd` on a free port with a temp data dir and
//! drives the real `natter` as people and scripts would. See `tests/harness` for the kit.

mod accounts;
mod api;
mod delivery;
mod direct;
mod faults;
mod files;
mod gate;
mod groups;
mod history;
mod hostile;
mod limits;
mod live;
mod moderation;
mod notify;
mod resume;
mod tui;
mod websocket;
