//! Default limits. The server reads its configured values at start; these are the
//! defaults and the hard ceilings both sides agree on.

/// Default maximum size of one message's text, in bytes of UTF-8.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Default maximum size of one WebSocket message from a client, in bytes. Large enough
/// for a maximal text message plus its JSON envelope and escaping.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 * 1024;
/// Largest history page a client may ask for.
pub const MAX_HISTORY_LIMIT: u32 = 500;
/// History page size when the client does not say.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;
/// Longest username or group name.
pub const MAX_NAME_LEN: usize = 32;
/// Shortest and longest password accepted at registration.
pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest client-generated message id.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// Default number of members a group may have.
pub const DEFAULT_MAX_GROUP_MEMBERS: usize = 1000;
/// Messages per page when a reconnecting client is caught up.
pub const RESUME_PAGE: u32 = 500;
/// A typing indicator ends by itself this long after the last renewal.
pub const TYPING_EXPIRY_SECS: u64 = 6;
/// How often a client renews "typing" while the user keeps typing (the server ignores
/// renewals that come faster than once a second).
pub const TYPING_RENEW_SECS: u64 = 3;
/// Longest group topic, in characters.
pub const MAX_TOPIC_CHARS: usize = 512;
/// Default largest file upload, in bytes (the server's `max_upload_bytes`).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// Most files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
/// Thumbnails fit in a square of this many pixels.
pub const THUMBNAIL_PX: u32 = 256;
