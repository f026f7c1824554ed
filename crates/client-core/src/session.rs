//! The stored login: `session.json` with the server, the username and the bearer token,
//! readable only by its owner (created with mode 0600, never chmod-ed afterwards).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::paths::{Paths, ensure_dir};

/// The server used when neither `--server`/`NATTER_SERVER` nor a session names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7600";

/// A logged-in session. The token is a secret: it is never logged or printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Base URL of the server the token belongs to, without a trailing slash.
    pub server: String,
    pub username: String,
    pub token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Session {
    /// Reads the session, or `None` when there is none.
    pub fn load(paths: &Paths) -> Result<Option<Session>, Error> {
        let file = paths.session_file();
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", file.display()), e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::io(
                format!(
                    "{} is damaged; run 'natter login USER' again",
                    file.display()
                ),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Writes the session atomically: a new 0600 file is written, then renamed over the old.
    pub fn save(&self, paths: &Paths) -> Result<(), Error> {
        ensure_dir(&paths.config_dir)?;
        let file = paths.session_file();
        let tmp = paths
            .config_dir
            .join(format!(".session.json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Protocol(e.to_string()))?;
        write_private(&tmp, &json)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(format!("cannot write {}", file.display()), e)
            })
    }

    /// Removes the session file; no file is not an error.
    pub fn delete(paths: &Paths) -> Result<(), Error> {
        let file = paths.session_file();
        match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("cannot remove {}", file.display()), e)),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Normalizes a server URL: trims, drops trailing slashes, adds `http://` when no scheme
/// is given (so `localhost:7600` works).
pub fn normalize_server(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// Which server to talk to: the explicit one (`--server` or `NATTER_SERVER`), else the
/// one the session remembers, else [`DEFAULT_SERVER`].
pub fn resolve_server(explicit: Option<&str>, session: Option<&Session>) -> String {
    match (explicit.filter(|s| !s.trim().is_empty()), session) {
        (Some(url), _) => normalize_server(url),
        (None, Some(s)) => normalize_server(&s.server),
        (None, None) => DEFAULT_SERVER.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Session {
        Session {
            server: "http://127.0.0.1:9".into(),
            username: "alice".into(),
            token: "secret".into(),
        }
    }

    #[test]
    fn save_load_delete() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path().join("home"));
        assert_eq!(Session::load(&paths).unwrap(), None);
        sample().save(&paths).unwrap();
        assert_eq!(Session::load(&paths).unwrap(), Some(sample()));
        // Saving again replaces the file.
        let mut other = sample();
        other.username = "bob".into();
        other.save(&paths).unwrap();
        assert_eq!(Session::load(&paths).unwrap().unwrap().username, "bob");
        Session::delete(&paths).unwrap();
        Session::delete(&paths).unwrap();
        assert_eq!(Session::load(&paths).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn session_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        sample().save(&paths).unwrap();
        let mode = std::fs::metadata(paths.session_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_hides_token() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }

    #[test]
    fn damaged_session_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::under(dir.path());
        std::fs::write(paths.session_file(), b"{not json").unwrap();
        let e = Session::load(&paths).unwrap_err().to_string();
        assert!(e.contains("natter login"), "{e}");
    }

    #[test]
    fn server_resolution_order() {
        let s = sample();
        assert_eq!(resolve_server(Some("http://x:1/"), Some(&s)), "http://x:1");
        assert_eq!(resolve_server(None, Some(&s)), "http://127.0.0.1:9");
        assert_eq!(resolve_server(None, None), DEFAULT_SERVER);
        assert_eq!(resolve_server(Some(""), None), DEFAULT_SERVER);
        assert_eq!(
            resolve_server(Some("localhost:7600"), None),
            "http://localhost:7600"
        );
    }
}
