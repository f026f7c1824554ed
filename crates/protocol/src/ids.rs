//! Identifiers and conversation targets.

use std::fmt;

/// Server-assigned user id. Usernames are the public identity; ids never leave a server.
pub type UserId = i64;
/// Server-assigned conversation id, stable for the life of the conversation.
pub type ConversationId = i64;
/// Server-assigned message id. Ids grow strictly in commit order across the whole
/// server, which is what makes them usable as a client's resume cursor.
pub type MessageId = i64;
/// Per-conversation sequence number: 1, 2, 3, ... without gaps, assigned at commit.
pub type Seq = i64;

/// What a user types to name a conversation: `@alice` is the direct conversation
/// with alice, `ops` or `#ops` is the group named ops.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Direct(String),
    Group(String),
}

impl Target {
    /// Parses `@user`, `#group` or a bare `group`, folding names to lowercase.
    pub fn parse(s: &str) -> Result<Target, crate::validate::ValidationError> {
        let s = s.trim();
        if let Some(user) = s.strip_prefix('@') {
            Ok(Target::Direct(crate::validate::username(user)?))
        } else {
            let name = s.strip_prefix('#').unwrap_or(s);
            Ok(Target::Group(crate::validate::group_name(name)?))
        }
    }

    /// The bare name (username or group name) without a prefix.
    pub fn name(&self) -> &str {
        match self {
            Target::Direct(n) | Target::Group(n) => n,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Direct(u) => write!(f, "@{u}"),
            Target::Group(g) => f.write_str(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            Target::parse("@Alice").unwrap(),
            Target::Direct("alice".into())
        );
        assert_eq!(Target::parse("#ops").unwrap(), Target::Group("ops".into()));
        assert_eq!(Target::parse("ops").unwrap(), Target::Group("ops".into()));
        assert!(Target::parse("@").is_err());
        assert!(Target::parse("#a b").is_err());
        assert_eq!(Target::parse("@bob").unwrap().to_string(), "@bob");
        assert_eq!(Target::parse("#dev").unwrap().to_string(), "dev");
    }
}
