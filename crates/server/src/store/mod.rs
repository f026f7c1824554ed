//! Storage: the [`Store`] trait the domain layer talks to, and its SQLite
//! implementation ([`sqlite::SqliteStore`]). A PostgreSQL store would implement the same
//! trait; nothing above this module knows which one runs.

pub mod accounts;
pub mod files;
pub mod groups;
pub mod sqlite;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use natter_protocol::{
    ConversationId, ConversationInfo, ConversationState, GroupInfo, HistoryPage, Message,
    MessageId, MessageReceipts, Receipt, Role, Seq, Settings, SettingsUpdate, SyncPage, UserId,
};
use time::OffsetDateTime;

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("name is taken")]
    NameTaken,
    #[error("not a member")]
    NotMember,
    #[error("not found")]
    NotFound,
    #[error("the invite code is unknown, expired, revoked or used up")]
    InvalidInvite,
    /// An attachment id that is not one of the sender's uploads.
    #[error("no such upload: {0}")]
    UnknownAttachment(String),
    #[error("the group would have more than {0} members")]
    GroupFull(usize),
    /// The database refused the write for lack of space (SQLITE_FULL) or I/O trouble.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("storage is shut down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull | C::SystemIoFailure | C::CannotOpen | C::ReadOnly) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A user as the server knows it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
}

/// The result of storing a message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Shared with the fan-out (see [`CommittedMessage`]).
    pub message: Arc<SharedMessage>,
    /// True when (sender, client id) was already stored: nothing new was written.
    pub duplicate: bool,
}

/// A stored message as the sender's ack and its deliveries share it: the writer makes no
/// copy of it, and its JSON object is made once, by whichever needs it first (the
/// fan-out for the recipients' `message` frames or the sender's session for the `ack`).
/// Serializing each message twice, and copying it for the fan-out, was ~3 % of natterd's
/// CPU under workload 2 of docs/BENCHMARKS.md.
#[derive(Debug)]
pub struct SharedMessage {
    message: Message,
    json: OnceLock<String>,
}

impl SharedMessage {
    pub fn new(message: Message) -> Arc<SharedMessage> {
        Arc::new(SharedMessage {
            message,
            json: OnceLock::new(),
        })
    }

    /// The message's JSON object (see [`natter_protocol::message_json`]).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| natter_protocol::message_json(&self.message))
    }

    /// The message itself: moved out when nobody else holds it any more, else copied.
    pub fn into_message(this: Arc<SharedMessage>) -> Message {
        match Arc::try_unwrap(this) {
            Ok(shared) => shared.message,
            Err(shared) => shared.message.clone(),
        }
    }
}

impl From<Stored> for natter_protocol::SendAck {
    fn from(stored: Stored) -> Self {
        natter_protocol::SendAck {
            message: SharedMessage::into_message(stored.message),
            duplicate: stored.duplicate,
        }
    }
}

impl std::ops::Deref for SharedMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl PartialEq for SharedMessage {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

/// What a transaction committed that connections must hear of. The store emits these
/// in commit order (messages in id order), and the fan-out delivers them in that order.
#[derive(Debug, Clone)]
// Nearly everything committed is a message: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Committed {
    Message(CommittedMessage),
    /// Receipts for message authors, worked out in the same transaction as the markers
    /// that moved: in commit order an author sees "delivered to 1 of 2" before "2 of 2".
    Receipts(Vec<(UserId, Receipt)>),
}

impl Committed {
    pub fn message(&self) -> Option<&CommittedMessage> {
        match self {
            Committed::Message(m) => Some(m),
            Committed::Receipts(_) => None,
        }
    }
}

/// A message that was just committed, with the members to deliver it to.
#[derive(Debug, Clone)]
pub struct CommittedMessage {
    /// Shared with the sender's [`Stored`].
    pub message: Arc<SharedMessage>,
    pub recipients: Vec<UserId>,
    /// The sender's id (whose typing indicator the message ends); `None` when unknown.
    pub sender: Option<UserId>,
}

/// A membership change that was just committed.
#[derive(Debug, Clone)]
pub struct MembershipChange {
    pub conversation_id: ConversationId,
    pub added: Vec<UserId>,
    pub removed: Vec<UserId>,
}

/// What advancing one user's markers in one conversation changed.
#[derive(Debug, Clone)]
pub struct MarkerUpdate {
    /// The user's state after the update, when their read marker moved (their other
    /// devices are told); `None` when it did not.
    pub read_moved: Option<ConversationState>,
    /// Receipts for the authors of the messages the markers passed, by author (also sent
    /// to them through [`Committed::Receipts`]).
    pub receipts: Vec<(UserId, Receipt)>,
}

/// What the domain needs from storage. Every write is committed before the future
/// resolves: an `Ok` means durable.
#[async_trait]
pub trait Store:
    accounts::AccountStore + groups::GroupStore + files::FileStore + Send + Sync + 'static
{
    /// Creates a user; the first user ever becomes a server admin.
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<UserRecord>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn create_session(
        &self,
        user_id: UserId,
        token_hash: [u8; 32],
        device: Option<String>,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// The user a live, unexpired token belongs to.
    async fn session_user(&self, token_hash: [u8; 32]) -> StoreResult<Option<UserRecord>>;
    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()>;

    /// The direct conversation between two users, created when missing.
    async fn open_direct(&self, a: UserId, b: UserId) -> StoreResult<ConversationId>;
    /// Creates a group with `owner` as owner and `members` as members.
    async fn create_group(
        &self,
        owner: UserId,
        name: &str,
        members: &[UserId],
    ) -> StoreResult<ConversationId>;
    async fn group_id(&self, name: &str) -> StoreResult<Option<ConversationId>>;
    async fn role(&self, conversation: ConversationId, user: UserId) -> StoreResult<Option<Role>>;
    async fn group_info(&self, conversation: ConversationId) -> StoreResult<GroupInfo>;
    /// Conversations of `user`, latest activity first; direct ones only once they have a
    /// message.
    async fn conversations(&self, user: UserId) -> StoreResult<Vec<ConversationInfo>>;
    /// One conversation as `user` sees it; `None` when the user is not a member.
    async fn conversation(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> StoreResult<Option<ConversationInfo>>;

    /// Stores a message from a member, with the sender's uploads `attachments` attached,
    /// or returns the earlier one for a repeated (sender, client id). `NotMember` when
    /// the sender is not a member, `UnknownAttachment` for an id that is not one of the
    /// sender's uploads.
    async fn insert_message(
        &self,
        sender: UserId,
        conversation: ConversationId,
        client_id: &str,
        text: &str,
        attachments: &[String],
    ) -> StoreResult<Stored>;
    async fn history(
        &self,
        conversation: ConversationId,
        before: Option<i64>,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<HistoryPage>;
    /// Messages of every conversation of `user` with id greater than `after`, oldest first.
    async fn sync(&self, user: UserId, after: MessageId, limit: u32) -> StoreResult<SyncPage>;
    /// The newest message id in any conversation of `user` (0 when none).
    async fn head(&self, user: UserId) -> StoreResult<MessageId>;

    // ----- live layer: markers, receipts, mutes, settings -----

    /// Member ids of a conversation.
    async fn members(&self, conversation: ConversationId) -> StoreResult<Vec<UserId>>;
    /// For each of `users`, everyone who shares at least one conversation with them
    /// (themself excluded), as (user, contact, contact's username).
    async fn contacts(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, UserId, String)>>;
    /// Who is told live about presence changes of `users`: for each, everyone who shares
    /// a conversation of at most `max_members` members with them, as (user, contact).
    /// Larger groups are left out: in a room of thousands, telling everyone about
    /// everyone costs (members x changes) frames per tick; their members ask with
    /// `GET /presence` instead.
    async fn presence_audience(
        &self,
        users: &[UserId],
        max_members: usize,
    ) -> StoreResult<Vec<(UserId, UserId)>>;
    /// (conversation, member) pairs of every conversation `user` is a member of.
    async fn co_members(&self, user: UserId) -> StoreResult<Vec<(ConversationId, UserId)>>;
    /// Moves `user`'s delivered and read markers forward (never back; clamped to the
    /// latest message; reading implies delivery) and works out the receipts this makes.
    /// `NotMember` when the user is not a member.
    async fn advance_markers(
        &self,
        user: UserId,
        conversation: ConversationId,
        delivered: Option<Seq>,
        read: Option<Seq>,
    ) -> StoreResult<MarkerUpdate>;
    /// The user's state in each of their conversations (or in one); `online` is left 0
    /// for the domain to fill in.
    async fn conversation_states(
        &self,
        user: UserId,
        conversation: Option<ConversationId>,
    ) -> StoreResult<Vec<ConversationState>>;
    /// Who has the user's message `seq` (default: their latest). `NotFound` when there is
    /// no such message of theirs, `NotMember` when they are not a member.
    async fn message_receipts(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Option<Seq>,
    ) -> StoreResult<MessageReceipts>;
    /// Mutes (`Some(until)`, where `until` `None` means indefinitely) or unmutes (`None`).
    async fn set_mute(
        &self,
        user: UserId,
        conversation: ConversationId,
        mute: Option<Option<OffsetDateTime>>,
    ) -> StoreResult<()>;
    async fn settings(&self, user: UserId) -> StoreResult<Settings>;
    async fn update_settings(&self, user: UserId, update: SettingsUpdate) -> StoreResult<Settings>;
}
