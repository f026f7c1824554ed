//! `natter-protocol`: the vocabulary shared by the Natter server and its clients.
//!
//! Nothing here does I/O; every type is plain serde data so that the server, the client
//! library, the benchmark driver and the fuzz targets agree on one definition.
//!
//! - [`ids`]: identifier aliases and the conversation [`ids::Target`] syntax (`@alice`, `ops`).
//! - [`limits`]: default limits (message size, frame size, page size) shared by both sides.
//! - [`validate`]: username, group-name, password, client-id and message checks.
//! - [`api`]: REST request and response bodies under `/api/v1`.
//! - [`frames`]: WebSocket frames (`ClientFrame`, `ServerFrame`), tagged by `type`.
//! - [`error`]: stable error codes and the error body every failure carries.
//! - [`sanitize`]: makes untrusted text safe to show on a terminal.
//! - [`live`]: presence, typing, receipts, read markers, mutes and settings.
//! - [`files`]: file attachments and their upload query.

pub mod admin;
pub mod api;
pub mod error;
pub mod files;
pub mod frames;
pub mod ids;
pub mod limits;
pub mod live;
pub mod sanitize;
pub mod validate;

pub use admin::*;
pub use api::*;
pub use error::{ErrorBody, ErrorCode};
pub use files::{Attachment, AttachmentId, UploadQuery, human_size};
pub use frames::{
    ClientFrame, ServerFrame, ack_frame_from_json, message_frame_from_json, message_json,
};
pub use ids::{ConversationId, MessageId, Seq, Target, UserId};
pub use live::*;
