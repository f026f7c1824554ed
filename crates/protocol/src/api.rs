//! REST bodies under `/api/v1`. The OpenAPI document at `/api/v1/openapi.json` is
//! generated from these types and the server's handlers.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::files::{Attachment, AttachmentId};
use crate::ids::{ConversationId, MessageId, Seq, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    /// An invite code, needed when the server's registration mode is `invite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// A label for this session, shown when sessions are listed (e.g. "laptop cli").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthResponse {
    /// Bearer token for `Authorization: Bearer ...`. The server keeps only its hash.
    pub token: String,
    pub user: UserInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    pub id: UserId,
    pub username: String,
    /// Server administrators manage accounts; the first account registered is one.
    pub is_admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A conversation as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationInfo {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// Group name; absent for direct conversations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For a direct conversation, the other person (relative to the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Sequence number of the latest message (0 when there is none).
    pub last_seq: Seq,
    /// Time of the latest message, or of creation when there is none.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_activity: OffsetDateTime,
    pub member_count: u32,
}

impl ConversationInfo {
    /// The target a user would type for this conversation: `@peer` or the group name.
    pub fn target(&self) -> String {
        match self.kind {
            ConversationKind::Direct => format!("@{}", self.peer.as_deref().unwrap_or("?")),
            ConversationKind::Group => self.name.clone().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Owners and admins manage membership.
    pub fn can_manage(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberInfo {
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupInfo {
    pub id: ConversationId,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: OffsetDateTime,
    /// Members, owner first, then admins, then members, each by name.
    pub members: Vec<MemberInfo>,
    /// Set by an owner or admin; empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateGroupRequest {
    pub name: String,
    /// Usernames to add besides the creator, who becomes the owner.
    #[serde(default)]
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembersRequest {
    pub usernames: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenDirectRequest {
    pub username: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    /// Client-generated id (a UUIDv7 is a good choice). The server stores a message
    /// once per (sender, client_id): a retry returns the original acknowledgement.
    pub client_id: String,
    /// May be empty when `attachments` is not.
    #[serde(default)]
    pub text: String,
    /// Ids of files the sender uploaded (`POST /api/v1/files`) to attach, at most
    /// [`crate::limits::MAX_ATTACHMENTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentId>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Server-wide id, increasing in commit order; a client's resume cursor.
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// Position in the conversation: 1, 2, 3, ... without gaps.
    pub seq: Seq,
    pub sender: String,
    pub text: String,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub sent_at: OffsetDateTime,
    /// The sender's client id, so the sender's devices can match their outbox.
    pub client_id: String,
    /// Set when this entry is a membership or settings change rather than a message
    /// someone wrote; `text` then describes it for people ("alice added bob") and
    /// `sender` is who made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<TimelineEvent>,
    /// Files attached to the message, in the order the sender gave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A membership or settings change of a group, kept in its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TimelineEvent {
    Created {
        by: String,
    },
    MemberAdded {
        by: String,
        user: String,
    },
    MemberRemoved {
        by: String,
        user: String,
    },
    MemberLeft {
        user: String,
    },
    Promoted {
        by: String,
        user: String,
    },
    Demoted {
        by: String,
        user: String,
    },
    Renamed {
        by: String,
        from: String,
        to: String,
    },
    TopicChanged {
        by: String,
        topic: String,
    },
    OwnerChanged {
        from: String,
        to: String,
    },
}

impl TimelineEvent {
    /// One line for people; names are validated (`[a-z0-9_.-]`), the topic is not and is
    /// sanitized where shown.
    pub fn describe(&self) -> String {
        match self {
            TimelineEvent::Created { by } => format!("{by} created the group"),
            TimelineEvent::MemberAdded { by, user } => format!("{by} added {user}"),
            TimelineEvent::MemberRemoved { by, user } => format!("{by} removed {user}"),
            TimelineEvent::MemberLeft { user } => format!("{user} left"),
            TimelineEvent::Promoted { by, user } => format!("{by} made {user} an admin"),
            TimelineEvent::Demoted { by, user } => format!("{by} made {user} a member"),
            TimelineEvent::Renamed { by, from, to } => format!("{by} renamed {from} to {to}"),
            TimelineEvent::TopicChanged { by, topic } => format!("{by} set the topic: {topic}"),
            TimelineEvent::OwnerChanged { from, to } => format!("{from} made {to} the owner"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleRequest {
    /// `admin` or `member` (ownership moves with `POST /groups/{name}/owner`).
    pub role: Role,
}

/// Rename a group and/or set its topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupSettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferRequest {
    pub username: String,
}

/// The durable acknowledgement of a send: the message is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendAck {
    pub message: Message,
    /// True when this client id had been stored before and nothing new was stored.
    pub duplicate: bool,
}

/// Query of `GET /api/v1/conversations/{id}/messages`. With neither bound the latest
/// messages are returned; `before` pages backwards, `after` forwards. Pages are always
/// in ascending `seq` order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct HistoryQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Seq>,
    /// 1-500, default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked.
    pub has_more: bool,
}

/// Query of `GET /api/v1/sync`: messages of all the caller's conversations with an id
/// greater than `after`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct SyncQuery {
    /// 0 (the default) means from the beginning.
    #[serde(default)]
    pub after: MessageId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncPage {
    pub messages: Vec<Message>,
    pub has_more: bool,
    /// The id to pass as `after` next time.
    pub cursor: MessageId,
}

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub version: String,
    /// Largest file upload this server takes, in bytes (absent from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upload_bytes: Option<u64>,
}
