//! Stable error codes. Scripts may match on `code`; `message` is for people and may change.

use serde::{Deserialize, Serialize};

/// Every error the server reports, over HTTP or in a WebSocket `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed or a field fails validation.
    BadRequest,
    /// No valid bearer token: log in again.
    Unauthorized,
    /// Authenticated, but this account may not do this.
    Forbidden,
    /// Wrong username or password.
    InvalidCredentials,
    /// The thing does not exist (or the caller may not know that it does).
    NotFound,
    /// The caller is not a member of the conversation (also answered for groups that do
    /// not exist, so that a non-member learns nothing).
    NotMember,
    /// A named user does not exist.
    UnknownUser,
    /// The username or group name is taken.
    NameTaken,
    /// A message's text is over the size limit.
    MessageTooLarge,
    /// A request or frame body is over the size limit.
    PayloadTooLarge,
    /// A group would exceed its member limit.
    GroupFull,
    /// The WebSocket frame could not be decoded.
    MalformedFrame,
    /// Registration is closed on this server.
    RegistrationClosed,
    /// Too many requests; retry later.
    RateLimited,
    /// The server could not store the data (for example, its disk is full).
    StorageUnavailable,
    /// Something went wrong inside the server; details are in its log.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotMember => "not_member",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::GroupFull => "group_full",
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::RegistrationClosed => "registration_closed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status the REST API answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::MalformedFrame => 400,
            ErrorCode::Unauthorized | ErrorCode::InvalidCredentials => 401,
            ErrorCode::Forbidden | ErrorCode::NotMember | ErrorCode::RegistrationClosed => 403,
            ErrorCode::NotFound | ErrorCode::UnknownUser => 404,
            ErrorCode::NameTaken | ErrorCode::GroupFull => 409,
            ErrorCode::MessageTooLarge | ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::StorageUnavailable => 507,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response: `{"code": "not_member", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// One sentence for a person: what went wrong and what to do.
    pub message: String,
}
