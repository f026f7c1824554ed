//! The TUI's settings: `tui.toml` in the config directory (under `NATTER_HOME` when set).
//! Every setting is optional; a file that cannot be used is reported in the status line
//! and the defaults apply, so a typo never keeps anyone from their messages.
//!
//! ```toml
//! timestamp_format = "[hour]:[minute]"   # `time` crate format description
//! notifications = true                   # desktop notifications for other conversations
//! mouse = true                           # wheel scrolling (hold Shift to select text)
//! previews = true                        # inline image previews (Alt-I toggles)
//! image_protocol = "auto"                # or "kitty", "sixel", "iterm2", "halfblocks"
//! download_dir = "~/Downloads"           # where `s` saves files (default: the platform's)
//! opener = "xdg-open"                    # what `o` opens files with
//!
//! [theme]                                # color names, "#rrggbb" or 0-255
//! accent = "cyan"
//!
//! [keys]                                 # action = key or [keys]; see docs/TUI.md
//! switcher = ["ctrl-g"]
//! kill_to_end = "ctrl-k"
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ratatui::style::Color;
use serde::Deserialize;
use time::format_description::OwnedFormatItem;

use crate::keys::Keymap;
use crate::preview::ImageProtocol;

/// The file name inside the config directory.
pub const FILE_NAME: &str = "tui.toml";

/// Colors of the interface. Text from the network never chooses a color; only these do.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub accent: Color,
    pub dim: Color,
    pub unread: Color,
    pub mention: Color,
    pub error: Color,
    pub online: Color,
    pub away: Color,
    pub selected_bg: Color,
    pub status_bg: Color,
    pub own_name: Color,
    pub read: Color,
    /// Sender names are colored by a hash of the name over this palette.
    pub names: Vec<Color>,
}

impl Default for Theme {
    fn default() -> Self {
        Theme {
            accent: Color::Cyan,
            dim: Color::DarkGray,
            unread: Color::White,
            mention: Color::LightRed,
            error: Color::LightRed,
            online: Color::LightGreen,
            away: Color::Yellow,
            selected_bg: Color::Indexed(237),
            status_bg: Color::Indexed(236),
            own_name: Color::LightBlue,
            read: Color::LightCyan,
            names: vec![
                Color::LightMagenta,
                Color::LightYellow,
                Color::LightGreen,
                Color::LightCyan,
                Color::LightRed,
                Color::Magenta,
                Color::Yellow,
                Color::Green,
            ],
        }
    }
}

/// Everything configurable, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub theme: Theme,
    pub keymap: Keymap,
    /// The format string as written (shown in help).
    pub timestamp_source: String,
    pub timestamp: OwnedFormatItem,
    pub notifications: bool,
    pub mouse: bool,
    /// Inline previews of images (the server's thumbnails) under their messages.
    pub previews: bool,
    pub image_protocol: ImageProtocol,
    /// Where files are saved; `None`: the platform's download directory.
    pub download_dir: Option<PathBuf>,
    /// The command that opens a file; `None`: `xdg-open` (`open` on macOS).
    pub opener: Option<String>,
}

pub const DEFAULT_TIMESTAMP: &str = "[hour]:[minute]";

impl Default for Config {
    fn default() -> Self {
        Config {
            theme: Theme::default(),
            keymap: Keymap::default(),
            timestamp_source: DEFAULT_TIMESTAMP.to_string(),
            timestamp: default_timestamp(),
            notifications: true,
            mouse: true,
            previews: true,
            image_protocol: ImageProtocol::Auto,
            download_dir: None,
            opener: None,
        }
    }
}

fn default_timestamp() -> OwnedFormatItem {
    time::format_description::parse_owned::<2>(DEFAULT_TIMESTAMP)
        .unwrap_or_else(|_| OwnedFormatItem::Compound(Box::new([])))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    timestamp_format: Option<String>,
    notifications: Option<bool>,
    mouse: Option<bool>,
    previews: Option<bool>,
    image_protocol: Option<String>,
    download_dir: Option<String>,
    opener: Option<String>,
    #[serde(default)]
    theme: HashMap<String, RawColor>,
    #[serde(default)]
    keys: HashMap<String, OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColor {
    Name(String),
    Index(u8),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

fn color(name: &str, raw: &str) -> Result<Color, String> {
    Color::from_str(raw).map_err(|_| format!("theme.{name}: unknown color {raw:?}"))
}

impl Config {
    /// `tui.toml` in `config_dir`.
    pub fn path(config_dir: &Path) -> PathBuf {
        config_dir.join(FILE_NAME)
    }

    /// Reads the file (a missing file means the defaults). Returns the config and the
    /// problems found, one sentence each.
    pub fn load(path: &Path) -> (Config, Vec<String>) {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Config::default(), vec![]),
            Err(e) => (
                Config::default(),
                vec![format!("cannot read {}: {e}", path.display())],
            ),
        }
    }

    pub fn parse(text: &str) -> (Config, Vec<String>) {
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let first = e
                    .message()
                    .lines()
                    .next()
                    .unwrap_or("invalid TOML")
                    .to_string();
                return (
                    Config::default(),
                    vec![format!("{FILE_NAME} ignored: {first}")],
                );
            }
        };
        let mut problems = Vec::new();
        let mut config = Config::default();
        if let Some(fmt) = raw.timestamp_format {
            match time::format_description::parse_owned::<2>(&fmt) {
                Ok(item) => {
                    config.timestamp = item;
                    config.timestamp_source = fmt;
                }
                Err(e) => problems.push(format!("timestamp_format {fmt:?}: {e}")),
            }
        }
        config.notifications = raw.notifications.unwrap_or(true);
        config.mouse = raw.mouse.unwrap_or(true);
        config.previews = raw.previews.unwrap_or(true);
        if let Some(p) = raw.image_protocol {
            match ImageProtocol::parse(&p) {
                Some(p) => config.image_protocol = p,
                None => problems.push(format!(
                    "image_protocol {p:?}: use auto, kitty, sixel, iterm2 or halfblocks"
                )),
            }
        }
        if let Some(d) = raw.download_dir.filter(|d| !d.trim().is_empty()) {
            let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
            config.download_dir = Some(crate::files::expand_tilde(&d, home.as_deref()));
        }
        config.opener = raw.opener.filter(|o| !o.trim().is_empty());
        let mut names: Vec<_> = raw.theme.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in names {
            let t = &mut config.theme;
            let slot = match name.as_str() {
                "accent" => &mut t.accent,
                "dim" => &mut t.dim,
                "unread" => &mut t.unread,
                "mention" => &mut t.mention,
                "error" => &mut t.error,
                "online" => &mut t.online,
                "away" => &mut t.away,
                "selected_bg" => &mut t.selected_bg,
                "status_bg" => &mut t.status_bg,
                "own_name" => &mut t.own_name,
                "read" => &mut t.read,
                "names" => {
                    match value {
                        RawColor::List(list) => {
                            let parsed: Result<Vec<_>, _> =
                                list.iter().map(|c| color("names", c)).collect();
                            match parsed {
                                Ok(v) if !v.is_empty() => t.names = v,
                                Ok(_) => problems.push("theme.names: empty list".into()),
                                Err(e) => problems.push(e),
                            }
                        }
                        _ => problems.push("theme.names: expected a list of colors".into()),
                    }
                    continue;
                }
                other => {
                    problems.push(format!("theme: unknown color slot {other:?}"));
                    continue;
                }
            };
            match value {
                RawColor::Name(s) => match color(&name, &s) {
                    Ok(c) => *slot = c,
                    Err(e) => problems.push(e),
                },
                RawColor::Index(i) => *slot = Color::Indexed(i),
                RawColor::List(_) => problems.push(format!("theme.{name}: expected one color")),
            }
        }
        let keys: HashMap<String, Vec<String>> = raw
            .keys
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    OneOrMany::One(s) => vec![s],
                    OneOrMany::Many(v) => v,
                };
                (k, v)
            })
            .collect();
        let (keymap, key_problems) = Keymap::build(&keys);
        config.keymap = keymap;
        problems.extend(key_problems);
        (config, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Action;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    #[test]
    fn full_file_parses() {
        let (c, problems) = Config::parse(
            r##"
timestamp_format = "[hour]h[minute]"
notifications = false
mouse = false
previews = false
image_protocol = "sixel"
download_dir = "/tmp/dl"
opener = "my-open --new"
[theme]
accent = "#ff8800"
dim = 244
names = ["red", "blue"]
[keys]
switcher = "ctrl-g"
kill_to_end = ["ctrl-k"]
"##,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert!(!c.notifications && !c.mouse && !c.previews);
        assert_eq!(c.image_protocol, ImageProtocol::Sixel);
        assert_eq!(c.download_dir.as_deref(), Some(Path::new("/tmp/dl")));
        assert_eq!(c.opener.as_deref(), Some("my-open --new"));
        assert_eq!(c.theme.accent, Color::Rgb(0xff, 0x88, 0));
        assert_eq!(c.theme.dim, Color::Indexed(244));
        assert_eq!(c.theme.names, [Color::Red, Color::Blue]);
        let t = time::macros::datetime!(2026-11-28 09:05 UTC);
        assert_eq!(t.format(&c.timestamp).unwrap(), "09h05");
        assert_eq!(
            c.keymap
                .action(&KeyEvent::new(KeyCode::Char('k'), KeyModifiers::CONTROL)),
            Some(Action::KillToEnd)
        );
    }

    #[test]
    fn problems_are_reported_and_defaults_kept() {
        let (c, problems) =
            Config::parse("timestamp_format = \"[nope]\"\n[theme]\naccent = \"blurple\"\n");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(c.timestamp_source, DEFAULT_TIMESTAMP);
        assert_eq!(c.theme.accent, Color::Cyan);
        let (_, problems) = Config::parse("this is not toml");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("tui.toml ignored"), "{problems:?}");
        let (_, problems) = Config::parse("colour = 1");
        assert_eq!(problems.len(), 1);
        let (c, problems) = Config::parse("image_protocol = \"ascii-art\"");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(c.image_protocol, ImageProtocol::Auto);
        assert!(c.previews, "previews are on by default");
    }
}
