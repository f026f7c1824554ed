//! Server configuration: defaults, then a TOML file (`--config`), then `NATTERD_*`
//! environment variables, then command-line flags; later sources win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use natter_protocol::limits;
use serde::Deserialize;

/// How hard SQLite works to keep an acknowledged message through a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous = FULL`: an acknowledged message survives a process crash and a
    /// power loss. The default.
    Full,
    /// `synchronous = NORMAL`: survives a process crash (`kill -9`); the last commits
    /// before a power loss may be lost.
    Normal,
}

impl Durability {
    pub fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone who can reach the server may register.
    Open,
    /// Registration needs an invite code from a server admin.
    Invite,
    /// Nobody may register (admins create no accounts either; use invites for that).
    Closed,
}

/// The whole configuration. Field names are the TOML keys; `NATTERD_<KEY>` (upper case)
/// overrides each of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the database lives. Default: the platform data directory
    /// (`~/.local/share/natter` on Linux).
    pub data_dir: Option<PathBuf>,
    pub registration: Registration,
    pub durability: Durability,
    pub max_message_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_group_members: usize,
    /// Largest file upload in bytes (default 100 MiB), enforced while the body streams.
    pub max_upload_bytes: u64,
    /// Frames buffered per connection before it counts as a slow consumer.
    pub queue_capacity: usize,
    pub heartbeat_secs: u32,
    /// Read connections to the database: at most this many reads run at once, small ones
    /// on the runtime thread that asks, others on blocking threads (`store::sqlite::readers`).
    pub readers: usize,
    /// Tokens expire this many days after they were issued.
    pub token_ttl_days: u32,
    /// Turn every rate limit off (for load benchmarks on a trusted machine).
    pub rate_limits: bool,
    /// Messages each user may send per second, sustained, and in one burst.
    pub send_per_sec: u32,
    pub send_burst: u32,
    /// Registrations each IP address may make per minute, sustained, and in one burst.
    pub register_per_min: u32,
    pub register_burst: u32,
    /// Login attempts each IP address may make per minute, and in one burst.
    pub login_per_min: u32,
    pub login_burst: u32,
    /// Login attempts per account per minute, and in one burst: against password guessing
    /// from many addresses.
    pub login_account_per_min: u32,
    pub login_account_burst: u32,
    /// Open WebSocket connections one user may have at once.
    pub max_connections_per_user: usize,
    /// PEM certificate chain for HTTPS/WSS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Generate a self-signed certificate at start (for test setups); its fingerprint is
    /// printed so clients can pin it.
    pub tls_self_signed: bool,
    /// A user whose last connection closed is announced offline this long after (a
    /// reconnect within it announces nothing). Milliseconds.
    pub presence_grace_ms: u64,
    /// How often presence changes are sent (batched) and typing indicators expire.
    /// Milliseconds.
    pub live_tick_ms: u64,
    /// Presence changes are pushed to people who share a conversation of at most this
    /// many members with the user (direct conversations always qualify); members of
    /// larger groups ask with `GET /presence`.
    pub presence_push_max_members: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7600)),
            data_dir: None,
            registration: Registration::Open,
            durability: Durability::Full,
            max_message_bytes: limits::DEFAULT_MAX_MESSAGE_BYTES,
            max_frame_bytes: limits::DEFAULT_MAX_FRAME_BYTES,
            max_group_members: limits::DEFAULT_MAX_GROUP_MEMBERS,
            max_upload_bytes: limits::DEFAULT_MAX_UPLOAD_BYTES,
            queue_capacity: 1024,
            heartbeat_secs: 20,
            readers: 4,
            token_ttl_days: 90,
            rate_limits: true,
            send_per_sec: 50,
            send_burst: 200,
            register_per_min: 6,
            register_burst: 30,
            login_per_min: 30,
            login_burst: 30,
            login_account_per_min: 6,
            login_account_burst: 10,
            max_connections_per_user: 32,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            presence_grace_ms: 2000,
            live_tick_ms: 250,
            presence_push_max_members: crate::domain::DEFAULT_PRESENCE_PUSH_MAX_MEMBERS,
        }
    }
}

impl Config {
    /// Reads the TOML file (when given) and applies environment overrides from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("config file {} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (key, value) in env {
            let Some(name) = key.strip_prefix("NATTERD_") else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if name == "log" {
                continue;
            }
            // Numbers stay numbers; everything else is a string.
            let v = match (value.parse::<i64>(), value.as_str()) {
                (Ok(n), _) => toml::Value::Integer(n),
                (_, "true") => toml::Value::Boolean(true),
                (_, "false") => toml::Value::Boolean(false),
                _ => toml::Value::String(value),
            };
            table.insert(name, v);
        }
        let config: Config = table.try_into().context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_message_bytes >= 1,
            "max_message_bytes must be at least 1"
        );
        anyhow::ensure!(
            self.max_frame_bytes >= self.max_message_bytes + 1024,
            "max_frame_bytes must exceed max_message_bytes by at least 1024"
        );
        anyhow::ensure!(
            self.queue_capacity >= 2,
            "queue_capacity must be at least 2"
        );
        anyhow::ensure!(
            self.heartbeat_secs >= 1,
            "heartbeat_secs must be at least 1"
        );
        anyhow::ensure!(self.readers >= 1, "readers must be at least 1");
        anyhow::ensure!(
            (10..=60_000).contains(&self.live_tick_ms),
            "live_tick_ms must be between 10 and 60000"
        );
        anyhow::ensure!(
            self.max_group_members >= 2,
            "max_group_members must be at least 2"
        );
        Ok(())
    }

    /// The data directory, falling back to the platform's.
    pub fn resolved_data_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        directories::ProjectDirs::from("", "", "natter")
            .map(|d| d.data_dir().to_path_buf())
            .context("cannot find a home directory for the data; pass --data-dir")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("natterd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nmax_message_bytes = 100\nmax_frame_bytes = 4096\n",
        )
        .unwrap();
        let env = vec![
            ("NATTERD_MAX_MESSAGE_BYTES".to_string(), "200".to_string()),
            ("NATTERD_REGISTRATION".to_string(), "closed".to_string()),
            ("HOME".to_string(), "/x".to_string()),
        ];
        let c = Config::load(Some(&path), env).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.max_message_bytes, 200);
        assert_eq!(c.registration, Registration::Closed);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let env = vec![("NATTERD_NO_SUCH_THING".to_string(), "1".to_string())];
        let err = Config::load(None, env).unwrap_err();
        assert!(format!("{err:#}").contains("no_such_thing"), "{err:#}");
    }
}
