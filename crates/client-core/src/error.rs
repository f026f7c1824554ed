//! The one error type of the client library. Every failure a front end must explain to a
//! person lands in one of these variants; [`Error::is_retryable`] says whether trying
//! again later may succeed.

use std::time::Duration;

use natter_protocol::ErrorCode;

/// A client-library failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached at all (connection refused, DNS, timeout, TLS
    /// handshake). Nothing is known to have been stored.
    #[error("cannot reach {url}: is natterd running?")]
    Unreachable {
        url: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server was reached but its TLS certificate is not trusted. Retrying will not
    /// help; trusting it (`--ca-cert`, `--pin`) will.
    #[error(
        "the TLS certificate of {url} is not trusted ({detail}): pass --ca-cert FILE or --pin FINGERPRINT if this is your server"
    )]
    Untrusted { url: String, detail: String },
    /// The server answered with an error body: its `message` is one sentence for a person.
    #[error("{message}")]
    Api { code: ErrorCode, message: String },
    /// No session is stored (or it belongs to nobody): the user must log in.
    #[error("not logged in: run 'natter login USER'")]
    NotLoggedIn,
    /// A send kept failing with a retryable error until its deadline; it was not sent.
    #[error("message not sent (gave up after {}): {last}", humane(*after))]
    NotSent { after: Duration, last: Box<Error> },
    /// Input refused before it travelled (the server would refuse it as well).
    #[error(transparent)]
    Invalid(#[from] natter_protocol::validate::ValidationError),
    /// The server said something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The local cache database failed.
    #[error("local cache: {0}")]
    Cache(#[from] CacheError),
    /// A download would replace an existing file.
    #[error("{} exists: pass --force to overwrite it", .0.display())]
    Exists(std::path::PathBuf),
    /// A downloaded file does not match what the server said it is; it was deleted.
    #[error("the download of {name} is damaged ({detail}); it was deleted: try again")]
    Corrupt { name: String, detail: String },
    /// Reading or writing a local file (session, directories) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Errors of the local SQLite cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Migration(#[from] rusqlite_migration::Error),
    #[error("corrupt cache row: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Cache(CacheError::Sqlite(e))
    }
}

impl Error {
    /// True when the same request may succeed later: the server is unreachable, failing
    /// inside (5xx), out of storage, or rate limiting. 4xx answers are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { code, .. } => *code == ErrorCode::RateLimited || code.http_status() >= 500,
            _ => false,
        }
    }

    /// The server's error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::NotSent { last, .. } => last.code(),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Formats a duration the way a person would write it: `10s`, `2m`, `1m30s`, `500ms`.
pub fn humane(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Parses a humane duration: `500ms`, `10s`, `2m`, `1h`, `1m30s`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {s:?}: use e.g. 500ms, 10s, 2m, 1h"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" | "sec" | "secs" => Duration::from_secs(n),
            "m" | "min" | "mins" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: use e.g. 500ms, 10s, 2m, 1h"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(humane(Duration::from_secs(10)), "10s");
        assert_eq!(humane(Duration::from_secs(90)), "1m30s");
        assert_eq!(humane(Duration::from_millis(250)), "250ms");
        assert_eq!(humane(Duration::ZERO), "0ms");
    }

    #[test]
    fn retryable_classification() {
        let api = |code| Error::Api {
            code,
            message: String::new(),
        };
        assert!(
            Error::Unreachable {
                url: "x".into(),
                source: None
            }
            .is_retryable()
        );
        assert!(api(ErrorCode::Internal).is_retryable());
        assert!(api(ErrorCode::StorageUnavailable).is_retryable());
        assert!(api(ErrorCode::RateLimited).is_retryable());
        assert!(!api(ErrorCode::NotMember).is_retryable());
        assert!(!api(ErrorCode::MessageTooLarge).is_retryable());
        assert!(!Error::NotLoggedIn.is_retryable());
    }
}
