//! Files in the interface: attachments as the timeline shows them ([`Att`]), the
//! files mode that picks one to save or open ([`FileSel`]), transfers with their progress
//! in the status line ([`Transfer`]), and the pure helpers of `/file PATH`: splitting the
//! path from the text, `~` expansion, path completion, a free name in the download
//! directory and the system opener.

use std::path::{Path, PathBuf};

use natter_protocol::{Attachment, human_size};

use crate::state::{Key, clean_line};

/// An attachment made safe to display: every string is sanitized on the way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Att {
    pub id: String,
    /// One line, no controls or bidi overrides (the server sanitized it already; a name
    /// is network text all the same).
    pub name: String,
    /// Bytes; `None` for an outbox entry whose metadata is not known here.
    pub size: Option<u64>,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The server has a PNG preview of it.
    pub thumbnail: bool,
}

impl Att {
    pub fn from_attachment(a: &Attachment) -> Att {
        Att {
            id: a.id.clone(),
            name: clean_line(&a.name),
            size: Some(a.size),
            mime: clean_line(&a.mime),
            width: a.width,
            height: a.height,
            thumbnail: a.thumbnail,
        }
    }

    /// A file of a queued message known only by its id (the outbox keeps ids).
    pub fn unknown(id: &str) -> Att {
        Att {
            id: id.to_string(),
            name: "attached file".into(),
            size: None,
            mime: String::new(),
            width: None,
            height: None,
            thumbnail: false,
        }
    }

    pub fn size_label(&self) -> String {
        self.size.map(human_size).unwrap_or_default()
    }
}

/// Files mode: the attachments of the loaded messages of the open conversation, newest
/// (lowest on screen) first; `index` is the highlighted one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSel {
    /// (message, position of the attachment in it).
    pub items: Vec<(Key, usize)>,
    pub index: usize,
}

impl FileSel {
    pub fn current(&self) -> Option<(Key, usize)> {
        self.items.get(self.index).copied()
    }
}

/// What a transfer is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferKind {
    /// `/file`: once uploaded, the message is queued for `target`.
    Upload {
        target: String,
        conversation_id: natter_protocol::ConversationId,
        text: String,
        client_id: String,
    },
    /// `s` in files mode.
    Save,
    /// `o` in files mode: fetched to the cache, then handed to the system opener.
    Open,
}

/// A running upload or download, shown in the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: u64,
    pub kind: TransferKind,
    /// The file name, safe to display.
    pub name: String,
    pub done: u64,
    /// Bytes in all, once known.
    pub total: Option<u64>,
}

impl Transfer {
    /// `uploading build.log 45% (2.1 MB)`.
    pub fn label(&self) -> String {
        let verb = match self.kind {
            TransferKind::Upload { .. } => "uploading",
            TransferKind::Save => "saving",
            TransferKind::Open => "fetching",
        };
        match self.total {
            Some(total) if total > 0 => {
                let pct = (self.done.min(total) * 100) / total;
                format!("{verb} {} {pct}% ({})", self.name, human_size(total))
            }
            _ => format!("{verb} {}…", self.name),
        }
    }
}

/// Splits the argument of `/file` into the path and the message text. The path is the
/// first word; it may be quoted (`"my file.txt"`, `'my file.txt'`) or have escaped
/// spaces (`my\ file.txt`, as Tab completion writes it). Returns `None` when there is
/// no path.
pub fn split_path_arg(arg: &str) -> Option<(String, String)> {
    let arg = arg.trim_start();
    let mut chars = arg.char_indices().peekable();
    let mut path = String::new();
    let mut end = arg.len();
    match chars.peek() {
        None => return None,
        Some(&(_, q @ ('"' | '\''))) => {
            chars.next();
            let mut closed = false;
            for (i, c) in chars.by_ref() {
                if c == q {
                    end = i + 1;
                    closed = true;
                    break;
                }
                path.push(c);
            }
            if !closed {
                end = arg.len();
            }
        }
        Some(_) => {
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, n)) => path.push(n),
                        None => path.push('\\'),
                    },
                    c if c.is_whitespace() => {
                        end = i;
                        break;
                    }
                    c => path.push(c),
                }
            }
        }
    }
    if path.is_empty() {
        return None;
    }
    let rest = &arg[end..];
    let text = rest.strip_prefix(' ').unwrap_or(rest);
    Some((path, text.trim_end().to_string()))
}

/// `~` and `~/...` become the home directory (when there is one).
pub fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path, home) {
        ("~", Some(h)) => h.to_path_buf(),
        (p, Some(h)) if p.starts_with("~/") => h.join(&p[2..]),
        (p, _) => PathBuf::from(p),
    }
}

/// Writes a path for the input line: spaces and backslashes escaped, as
/// [`split_path_arg`] reads them.
pub fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == ' ' || c == '\\' || c == '"' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Completions of a partly typed path `word` (as typed, `~` and escapes included): the
/// entries of its directory that start with its last component, escaped, directories
/// with a trailing `/`, sorted. Hidden entries only when the component starts with `.`.
pub fn complete_path(word: &str, home: Option<&Path>, cwd: &Path) -> Vec<String> {
    let typed: String = split_path_arg(word)
        .map(|(p, _)| p)
        .unwrap_or_else(|| word.to_string());
    let (dir_typed, base) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed.as_str()),
    };
    let dir = if dir_typed.is_empty() {
        cwd.to_path_buf()
    } else {
        let d = expand_tilde(dir_typed.trim_end_matches('/'), home);
        let d = if d.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            d
        };
        if d.is_absolute() { d } else { cwd.join(d) }
    };
    // `~` alone completes to the home directory itself.
    if typed == "~" && home.is_some() {
        return vec!["~/".into()];
    }
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(base) || (name.starts_with('.') && !base.starts_with('.')) {
                return None;
            }
            let is_dir = e.path().is_dir();
            let mut full = format!("{dir_typed}{name}");
            if is_dir {
                full.push('/');
            }
            Some(escape_path(&full))
        })
        .take(200)
        .collect();
    out.sort();
    out
}

/// The first of `dir/name`, `dir/name (1).ext`, `dir/name (2).ext`, ... that does not
/// exist yet. `name` must already be a safe file name.
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    for n in 1..10_000 {
        let p = dir.join(format!("{stem} ({n}){ext}"));
        if !p.exists() {
            return p;
        }
    }
    dir.join(format!("{stem} ({}){ext}", uuid::Uuid::now_v7()))
}

/// The program that opens a file the way the desktop would: `opener` from `tui.toml`
/// when set (split at spaces), else `open` on macOS and `xdg-open` elsewhere.
pub fn opener(configured: Option<&str>) -> (String, Vec<String>) {
    if let Some(cmd) = configured {
        let mut parts = cmd.split_whitespace().map(str::to_string);
        if let Some(program) = parts.next() {
            return (program, parts.collect());
        }
    }
    let program = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    (program.to_string(), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_text_are_split() {
        let s = |a: &str| split_path_arg(a);
        assert_eq!(s("a.txt"), Some(("a.txt".into(), String::new())));
        assert_eq!(
            s("~/build.log here it is "),
            Some(("~/build.log".into(), "here it is".into()))
        );
        assert_eq!(
            s(r"my\ file.txt  two spaces"),
            Some(("my file.txt".into(), " two spaces".into()))
        );
        assert_eq!(
            s("\"my file.txt\" hi"),
            Some(("my file.txt".into(), "hi".into()))
        );
        assert_eq!(s("'a b'"), Some(("a b".into(), String::new())));
        assert_eq!(s("   "), None);
        assert_eq!(s("\"\""), None);
    }

    #[test]
    fn tilde_expands_only_at_the_start() {
        let home = Path::new("/home/alice");
        assert_eq!(expand_tilde("~", Some(home)), home);
        assert_eq!(
            expand_tilde("~/x/y", Some(home)),
            Path::new("/home/alice/x/y")
        );
        assert_eq!(expand_tilde("a/~/b", Some(home)), Path::new("a/~/b"));
        assert_eq!(expand_tilde("~bob/x", Some(home)), Path::new("~bob/x"));
        assert_eq!(expand_tilde("~/x", None), Path::new("~/x"));
    }

    #[test]
    fn paths_complete_from_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("build.log"), "x").unwrap();
        std::fs::write(dir.path().join("build notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("builds")).unwrap();
        let c = complete_path("bu", None, dir.path());
        assert_eq!(c, ["build.log", r"build\ notes.txt", "builds/"]);
        assert_eq!(complete_path(".h", None, dir.path()), [".hidden"]);
        assert!(
            complete_path("", None, dir.path())
                .iter()
                .all(|p| !p.starts_with('.'))
        );
        let abs = format!("{}/builds", dir.path().display());
        assert_eq!(
            complete_path(&abs, None, Path::new("/")),
            [format!("{abs}/")]
        );
        let c = complete_path("~/builds", Some(dir.path()), Path::new("/"));
        assert_eq!(c, ["~/builds/"]);
        // What completion writes, /file reads back.
        let (p, _) = split_path_arg(r"build\ notes.txt").unwrap();
        assert_eq!(p, "build notes.txt");
    }

    #[test]
    fn saving_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(free_path(dir.path(), "a.log"), dir.path().join("a.log"));
        std::fs::write(dir.path().join("a.log"), "x").unwrap();
        assert_eq!(free_path(dir.path(), "a.log"), dir.path().join("a (1).log"));
        std::fs::write(dir.path().join("a (1).log"), "x").unwrap();
        assert_eq!(free_path(dir.path(), "a.log"), dir.path().join("a (2).log"));
        std::fs::write(dir.path().join("README"), "x").unwrap();
        assert_eq!(
            free_path(dir.path(), "README"),
            dir.path().join("README (1)")
        );
    }

    #[test]
    fn progress_reads_like_the_status_line() {
        let mut t = Transfer {
            id: 1,
            kind: TransferKind::Save,
            name: "build.log".into(),
            done: 945_000,
            total: Some(2_100_000),
        };
        assert_eq!(t.label(), "saving build.log 45% (2.1 MB)");
        t.total = None;
        assert_eq!(t.label(), "saving build.log…");
    }
}
