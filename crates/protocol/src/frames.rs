//! WebSocket frames on `/api/v1/ws`: JSON text messages tagged by `type`.
//!
//! A connection authenticates with `Authorization: Bearer TOKEN` on the upgrade request
//! (never a token in the URL) and may pass `?after=CURSOR`, the highest message id it has.
//! The server then sends `hello`, every message after the cursor in id order (in pages),
//! `synced`, and from then on live frames. Without `after` it starts with live frames.

use serde::{Deserialize, Serialize};

use crate::api::{ConversationInfo, Message, SendAck, UserInfo};
use crate::error::ErrorCode;
use crate::ids::{ConversationId, MessageId, Seq};
use crate::live::{ConversationState, Presence, PresenceState, Receipt, Settings};

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientFrame {
    /// Send a message; answered by `ack` (or `error` carrying the same `client_id`).
    Send {
        conversation_id: ConversationId,
        client_id: String,
        /// May be empty when `attachments` is not.
        #[serde(default)]
        text: String,
        /// Ids of the sender's uploads to attach (see [`crate::files`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::files::AttachmentId>,
    },
    /// Application-level keepalive; answered by `pong` with the same nonce.
    Ping {
        #[serde(default)]
        nonce: u64,
    },
    /// The user is typing in a conversation (`active: false`: stopped). Renew every few
    /// seconds while typing; the indicator expires by itself otherwise. Not answered.
    Typing {
        conversation_id: ConversationId,
        #[serde(default = "yes")]
        active: bool,
    },
    /// This device has every message of the conversation up to `seq` (a delivery
    /// receipt). Not answered.
    Delivered {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// The user read the conversation up to `seq`: moves the read marker forward (never
    /// back). Not answered.
    Read {
        conversation_id: ConversationId,
        seq: Seq,
    },
    /// Set yourself `away` or back `online`. Not answered.
    SetPresence { state: PresenceState },
}

fn yes() -> bool {
    true
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerFrame {
    /// First frame on every connection.
    Hello {
        user: UserInfo,
        /// The newest message id visible to this user right now. A client without a
        /// cursor stores this one to receive everything after it next time.
        cursor: MessageId,
        /// Seconds between server pings; a client that hears nothing for two of these
        /// should reconnect.
        heartbeat_secs: u32,
    },
    /// A message, replayed on resume or live.
    Message {
        message: Message,
    },
    /// Replay is complete: everything up to `cursor` has been sent; live frames follow.
    Synced {
        cursor: MessageId,
    },
    /// A send over this socket is durably stored.
    Ack {
        client_id: String,
        #[serde(flatten)]
        ack: SendAck,
    },
    /// The caller joined a conversation or its details changed.
    Conversation {
        conversation: ConversationInfo,
    },
    /// The caller is no longer a member of this conversation.
    Removed {
        conversation_id: ConversationId,
    },
    /// A request failed. `client_id` is set when it answers a `send`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Pong {
        nonce: u64,
    },
    /// Presence changes of people who share a conversation with the caller, batched.
    Presence {
        presence: Vec<Presence>,
    },
    /// A member started (`active`) or stopped typing; it stops by itself after
    /// `limits::TYPING_EXPIRY_SECS` without renewal, and when their message arrives.
    Typing {
        conversation_id: ConversationId,
        user: String,
        active: bool,
    },
    /// Another member's delivery or read marker passed one of the caller's messages.
    Receipt {
        receipt: Receipt,
    },
    /// The caller's own state in a conversation changed (read on another device, muted).
    ConversationState {
        state: ConversationState,
    },
    /// The caller's settings changed (on any device).
    Settings {
        settings: Settings,
    },
}

/// A `send` frame, read straight into its fields. The derived decoder of an internally
/// tagged enum first copies every field of the object into an intermediate tree (each
/// string a fresh allocation) to find the tag; `send` is nearly every frame a busy
/// server reads, so it gets this direct path first.
#[derive(Deserialize)]
struct SendFrame {
    #[serde(rename = "type")]
    _type: SendTag,
    conversation_id: ConversationId,
    client_id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    attachments: Vec<crate::files::AttachmentId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SendTag {
    Send,
}

impl ClientFrame {
    /// Decodes one text frame, mapping any failure to a message fit for an `error` frame.
    pub fn decode(text: &str) -> Result<ClientFrame, String> {
        // The direct path accepts exactly what the derived decoder accepts as `send`
        // (unknown fields are ignored by both); anything else, including every error,
        // goes through the derived decoder, whose error messages clients see.
        if let Ok(f) = serde_json::from_str::<SendFrame>(text) {
            return Ok(ClientFrame::Send {
                conversation_id: f.conversation_id,
                client_id: f.client_id,
                text: f.text,
                attachments: f.attachments,
            });
        }
        serde_json::from_str(text).map_err(|e| format!("could not decode frame: {e}"))
    }
}

/// A message's JSON object, serialized once and shared: the `message` frame every
/// recipient gets and the sender's `ack` both embed it (see [`message_frame_from_json`]
/// and [`ack_frame_from_json`]).
pub fn message_json(message: &Message) -> String {
    json_in(Vec::with_capacity(256 + message.text.len()), message)
}

/// `value`'s JSON appended to `out`, as a string.
fn json_in<T: Serialize + ?Sized>(mut out: Vec<u8>, value: &T) -> String {
    // Serialization of these plain types cannot fail, and serde_json writes UTF-8 only.
    let _ = serde_json::to_writer(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// The pieces of `ServerFrame::Message { message }` as [`ServerFrame::encode`] writes it,
/// around the message's JSON: the frame is their concatenation.
pub fn message_frame_from_json(json: &str) -> [&str; 3] {
    [r#"{"type":"message","message":"#, json, "}"]
}

/// `ServerFrame::Ack` as [`ServerFrame::encode`] writes it, from the message's JSON (see
/// [`message_json`]).
pub fn ack_frame_from_json(client_id: &str, json: &str, duplicate: bool) -> String {
    let mut out = Vec::with_capacity(64 + client_id.len() + json.len());
    out.extend_from_slice(br#"{"type":"ack","client_id":"#);
    let mut out = json_in(out, client_id);
    out.push_str(r#","message":"#);
    out.push_str(json);
    out.push_str(if duplicate {
        r#","duplicate":true}"#
    } else {
        r#","duplicate":false}"#
    });
    out
}

impl ServerFrame {
    pub fn encode(&self) -> String {
        // Room for a message frame with a short text at once: growing from serde_json's
        // default of 128 bytes took two reallocations per frame.
        let capacity = match self {
            ServerFrame::Message { message }
            | ServerFrame::Ack {
                ack: SendAck { message, .. },
                ..
            } => 320 + message.text.len(),
            _ => 128,
        };
        json_in(Vec::with_capacity(capacity), self)
    }
}
