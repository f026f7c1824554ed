//! Where the client keeps its files: the session (config dir) and the cache database.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The client's directories. With `NATTER_HOME` set, everything lives under that one
/// directory, so several users can run side by side in scripts and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    /// `NATTER_HOME` when set (and not empty), else the platform directories.
    pub fn from_env() -> Result<Paths, Error> {
        match std::env::var_os("NATTER_HOME") {
            Some(home) if !home.is_empty() => Ok(Paths::under(PathBuf::from(home))),
            _ => Paths::platform(),
        }
    }

    /// Everything under one directory.
    pub fn under(home: impl Into<PathBuf>) -> Paths {
        let home = home.into();
        Paths {
            config_dir: home.clone(),
            cache_dir: home,
        }
    }

    /// The platform's config and data directories for "natter".
    pub fn platform() -> Result<Paths, Error> {
        let dirs = directories::ProjectDirs::from("", "", "natter").ok_or_else(|| {
            Error::io(
                "cannot find a home directory",
                std::io::Error::new(std::io::ErrorKind::NotFound, "set NATTER_HOME"),
            )
        })?;
        Ok(Paths {
            config_dir: dirs.config_dir().to_path_buf(),
            cache_dir: dirs.data_dir().to_path_buf(),
        })
    }

    pub fn session_file(&self) -> PathBuf {
        self.config_dir.join("session.json")
    }

    pub fn cache_db(&self) -> PathBuf {
        self.cache_dir.join("cache.db")
    }
}

/// Creates `dir` and its parents, readable only by the owner when newly created.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::io(format!("cannot create directory {}", dir.display()), e))
}
