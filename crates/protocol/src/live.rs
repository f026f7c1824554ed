//! The live layer of a conversation: presence, typing, delivery and read receipts, read
//! markers with unread counts, per-conversation mutes and the user's settings.
//!
//! Presence and typing are ephemeral (the server keeps them in memory and never stores
//! them); markers, mutes and settings are durable. A user sees presence only of people who
//! share a conversation with them, and typing and receipts only of conversations they are
//! a member of.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{ConversationId, Seq};

/// Whether a person is around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceState {
    /// At least one device is connected and the user has not set themself away.
    Online,
    /// Connected, but the user said they are away (`natter status away`).
    Away,
    /// No device connected.
    Offline,
}

impl PresenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceState::Online => "online",
            PresenceState::Away => "away",
            PresenceState::Offline => "offline",
        }
    }
}

/// One person's presence as another user may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    pub user: String,
    pub state: PresenceState,
    /// When the user's last device disconnected; absent while connected and when the
    /// server has not seen them since it started (presence lives in memory only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<OffsetDateTime>,
}

/// Body of `PUT /api/v1/me/presence`: set yourself away or back. `offline` is refused:
/// offline is what the server sees when no device is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetPresenceRequest {
    pub state: PresenceState,
}

/// Query of `GET /api/v1/presence`: comma-separated usernames; without it, everybody who
/// shares a conversation with the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct PresenceQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<String>,
}

/// What a receipt says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// A device of the recipient has the message.
    Delivered,
    /// The recipient marked the conversation read up to (at least) the message.
    Read,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Read => "read",
        }
    }
}

/// Sent to the author of a message when another member's marker passes it: `user` now
/// has everything up to `seq`, which covers the author's message `message_seq`; that
/// message is now delivered to (or read by) `count` of the `of` other members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub conversation_id: ConversationId,
    pub kind: ReceiptKind,
    pub user: String,
    pub seq: Seq,
    pub message_seq: Seq,
    pub count: u32,
    pub of: u32,
}

/// Query of `GET /api/v1/conversations/{id}/receipts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct ReceiptsQuery {
    /// The message's sequence number; default: the caller's latest message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

/// Who has one of the caller's messages: the answer to "by whom?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageReceipts {
    pub conversation_id: ConversationId,
    pub seq: Seq,
    /// Other members the message is delivered to, by name.
    pub delivered_to: Vec<String>,
    /// Other members who read it, by name. Members who turned read receipts off never
    /// appear; empty when the caller turned them off.
    pub read_by: Vec<String>,
    /// How many other members the conversation has.
    pub of: u32,
}

/// The caller's own state in one conversation: read marker, unread count, mute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationState {
    pub conversation_id: ConversationId,
    pub last_seq: Seq,
    /// The read marker: every message up to this seq counts as read. It only moves forward.
    pub read_seq: Seq,
    /// Messages from others after the read marker.
    pub unread: u64,
    pub muted: bool,
    /// When a timed mute ends; absent for no mute or a mute without end.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub muted_until: Option<OffsetDateTime>,
    /// Other members currently online or away (those the caller may see).
    pub online: u32,
}

/// Body of `POST /api/v1/conversations/{id}/read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadRequest {
    /// Mark read up to this seq; default: the latest message. Values beyond the latest
    /// message are clamped to it, and a marker never moves back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}

/// Body of `PUT /api/v1/conversations/{id}/mute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MuteRequest {
    /// Mute for this many seconds; without it the mute lasts until `unmute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_secs: Option<u64>,
}

/// The user's settings, the same on every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    /// Send read receipts. When off, the user also sees none from others.
    pub read_receipts: bool,
    /// Do not disturb: no desktop notifications on any device.
    pub do_not_disturb: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            read_receipts: true,
            do_not_disturb: false,
        }
    }
}

/// Body of `PATCH /api/v1/me/settings`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_receipts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_disturb: Option<bool>,
}
