//! Input validation shared by server and clients, so a client can refuse bad input
//! before it travels and the server refuses it again regardless.

use crate::limits::{MAX_CLIENT_ID_LEN, MAX_NAME_LEN, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters; the limit is {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} may only contain a-z, 0-9, '_', '.' and '-' (found {found:?})")]
    BadChar { what: &'static str, found: char },
    #[error("password must be at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    #[error("message is {len} bytes; the limit is {max}")]
    MessageTooLarge { len: usize, max: usize },
    #[error("client id must be 1-{MAX_CLIENT_ID_LEN} printable ASCII characters")]
    BadClientId,
    #[error("a message may carry at most {max} files (got {count})")]
    TooManyAttachments { count: usize, max: usize },
}

fn name(what: &'static str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    let len = raw.chars().count();
    if len > MAX_NAME_LEN {
        return Err(ValidationError::TooLong {
            what,
            len,
            max: MAX_NAME_LEN,
        });
    }
    let lower = raw.to_ascii_lowercase();
    if let Some(found) = lower
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::BadChar { what, found });
    }
    Ok(lower)
}

/// Checks a username (1-32 of `[a-z0-9_.-]`, case-insensitive) and returns its canonical
/// lowercase form.
pub fn username(raw: &str) -> Result<String, ValidationError> {
    name("username", raw)
}

/// Checks a group name (same rules as usernames, its own namespace).
pub fn group_name(raw: &str) -> Result<String, ValidationError> {
    name("group name", raw)
}

pub fn password(raw: &str) -> Result<(), ValidationError> {
    let len = raw.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ValidationError::PasswordTooShort);
    }
    if len > MAX_PASSWORD_LEN {
        return Err(ValidationError::TooLong {
            what: "password",
            len,
            max: MAX_PASSWORD_LEN,
        });
    }
    Ok(())
}

/// Checks a message text against the limit in bytes. Empty messages are refused:
/// they would show as nothing.
pub fn message_text(text: &str, max_bytes: usize) -> Result<(), ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::Empty { what: "message" });
    }
    if text.len() > max_bytes {
        return Err(ValidationError::MessageTooLarge {
            len: text.len(),
            max: max_bytes,
        });
    }
    Ok(())
}

/// Checks a message that may carry files: its text may then be empty, and it may carry
/// at most [`crate::limits::MAX_ATTACHMENTS`] of them.
pub fn message(text: &str, attachments: usize, max_bytes: usize) -> Result<(), ValidationError> {
    let max = crate::limits::MAX_ATTACHMENTS;
    if attachments > max {
        return Err(ValidationError::TooManyAttachments {
            count: attachments,
            max,
        });
    }
    if attachments > 0 && text.is_empty() {
        return Ok(());
    }
    message_text(text, max_bytes)
}

pub fn client_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > MAX_CLIENT_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::BadClientId);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username("Alice_1.x-y").unwrap(), "alice_1.x-y");
        assert!(matches!(username(""), Err(ValidationError::Empty { .. })));
        assert!(matches!(
            username(&"a".repeat(33)),
            Err(ValidationError::TooLong { .. })
        ));
        assert!(username(&"a".repeat(32)).is_ok());
        assert!(matches!(
            username("al ice"),
            Err(ValidationError::BadChar { found: ' ', .. })
        ));
        assert!(username("élan").is_err());
        assert!(username("a\u{1b}").is_err());
    }

    #[test]
    fn messages() {
        assert!(message_text("hi", 16).is_ok());
        assert!(message_text("", 16).is_err());
        let e = message_text(&"x".repeat(20480), 16384).unwrap_err();
        assert_eq!(e.to_string(), "message is 20480 bytes; the limit is 16384");
    }

    #[test]
    fn client_ids() {
        assert!(client_id("0193a0b1-7e2c-7000-8000-000000000000").is_ok());
        assert!(client_id("").is_err());
        assert!(client_id("has space").is_err());
        assert!(client_id(&"x".repeat(65)).is_err());
    }
}
