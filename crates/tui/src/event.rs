//! The one [`Event`] type that drives [`crate::update`] (terminal input, what the client
//! library reports, results of effects, clock ticks) and the [`Effect`]s it asks for.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossterm::event::{KeyEvent, MouseEvent};
use natter_client_core::OutboxEntry;
use natter_protocol::{
    Attachment, ConversationId, ConversationInfo, ConversationState, Message, Presence,
    PresenceState, Receipt, SendAck, Seq, Settings,
};

/// Connection state as reported by the client library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    Connecting,
    Online,
    Offline { retry_in: Duration, reason: String },
    Error(String),
}

/// Which page of history a load brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest messages (first view, or after a gap).
    Latest,
    /// Messages before the oldest loaded; `complete` when nothing older exists.
    Older { complete: bool },
}

/// Everything that can happen.
#[derive(Debug, Clone)]
pub enum Event {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Paste(String),
    Resize(u16, u16),
    /// The clock moved (about once a second): expires typing indicators and notices.
    Tick {
        now: Instant,
        wall: time::OffsetDateTime,
    },
    /// SIGTERM, SIGHUP or SIGINT.
    Terminate,

    // ----- from the connection -----
    Link(LinkEvent),
    Message {
        message: Message,
        conversation: ConversationInfo,
        replayed: bool,
    },
    Conversation(ConversationInfo),
    Removed {
        conversation_id: ConversationId,
        target: Option<String>,
    },
    ServerError(String),
    OutboxSent {
        client_id: String,
        ack: SendAck,
    },
    OutboxFailed {
        client_id: String,
        error: String,
    },
    Presence(Vec<Presence>),
    Typing {
        conversation_id: ConversationId,
        user: String,
        active: bool,
    },
    Receipt(Receipt),
    ConversationState(ConversationState),
    /// The user's unread count in a conversation changed (new message, read elsewhere).
    Unread {
        conversation_id: ConversationId,
        unread: u64,
        read_seq: Seq,
    },
    Settings(Settings),

    // ----- results of effects -----
    Conversations(Vec<ConversationInfo>),
    Outbox(Vec<OutboxEntry>),
    History {
        conversation_id: ConversationId,
        messages: Vec<Message>,
        page: Page,
    },
    HistoryFailed {
        conversation_id: ConversationId,
        error: String,
    },
    /// `/msg` opened a conversation; `text` is sent there next.
    Opened {
        info: ConversationInfo,
        text: Option<String>,
    },
    Queued {
        client_id: String,
        result: Result<(), String>,
    },
    /// A command finished: a line for the status bar, or an error.
    Done(Result<String, String>),
    /// A command produced something to read (e.g. `/group info`).
    Info {
        title: String,
        lines: Vec<String>,
    },
    /// The external editor finished; `Ok(None)`: nothing was written.
    Edited(Result<Option<String>, String>),
    /// A transfer moved on: `done` bytes of `total`.
    Progress {
        transfer: u64,
        done: u64,
        total: u64,
    },
    /// An upload of `/file` finished; the message is queued next.
    Uploaded {
        transfer: u64,
        result: Result<Attachment, String>,
    },
    /// A save (or a fetch for the opener) finished: where the file is.
    Downloaded {
        transfer: u64,
        result: Result<PathBuf, String>,
    },
    /// A preview was fetched and encoded (or could not be).
    Preview {
        id: String,
        result: Result<crate::preview::PreviewImage, String>,
    },
    /// Paths that complete the word at `start` of the input (Tab after `/file`).
    PathCompletions {
        start: usize,
        word: String,
        candidates: Vec<String>,
    },
}

/// A group management command typed as `/group ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    Create { name: String, members: Vec<String> },
    Add { name: String, users: Vec<String> },
    Remove { name: String, user: String },
    Info { name: String },
    Leave { name: String },
}

/// Work `update` asks the runtime to do. Nothing here blocks the interface: each runs in
/// the background and reports back as an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Persist the message in the outbox and have the connection flush it.
    Send {
        target: String,
        client_id: String,
        text: String,
        /// Ids of uploaded files the message carries.
        attachments: Vec<String>,
    },
    /// Ask the connection to flush the outbox now.
    Flush,
    LoadLatest {
        conversation_id: ConversationId,
    },
    /// Older messages: from the cache, else from the server.
    LoadOlder {
        conversation_id: ConversationId,
        before: Seq,
    },
    RefreshConversations,
    Open {
        target: String,
        text: Option<String>,
    },
    Group(GroupOp),
    MarkRead {
        conversation_id: ConversationId,
        seq: Seq,
    },
    Typing {
        conversation_id: ConversationId,
        active: bool,
    },
    SetPresence(PresenceState),
    Mute {
        target: String,
        muted: bool,
    },
    Notify {
        title: String,
        body: String,
    },
    /// Suspend the interface and edit `text` in `$EDITOR`.
    Edit {
        text: String,
    },
    /// Upload the file at `path` (`~` already expanded), reporting progress.
    Upload {
        transfer: u64,
        path: PathBuf,
    },
    /// Download attachment `id` (`size` bytes): into the download directory under a
    /// name that is free, or with `open` into the cache and then to the system opener.
    Download {
        transfer: u64,
        id: String,
        name: String,
        size: u64,
        open: bool,
    },
    /// Fetch the thumbnail of `id` and encode it for a `cols` x `rows` box.
    FetchPreview {
        id: String,
        cols: u16,
        rows: u16,
    },
    /// List the paths that complete `word` (for Tab after `/file`).
    CompletePath {
        start: usize,
        word: String,
    },
    Quit,
}
