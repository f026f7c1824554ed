//! Key bindings: [`Action`]s, the [`KeySpec`] notation (`ctrl-k`, `alt-enter`, `f1`) and
//! the [`Keymap`] built from the defaults plus the `[keys]` table of the config file.
//!
//! A binding in the config replaces every default binding of that action, and a key the
//! user binds is taken away from whatever action had it by default.

use std::collections::HashMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Everything a key can be bound to. The names (snake case) are the keys of the config's
/// `[keys]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Send,
    Newline,
    Complete,
    HistoryPrev,
    HistoryNext,
    LineStart,
    LineEnd,
    /// End of line; when the cursor is already at the end of the input, opens `$EDITOR`.
    LineEndOrEditor,
    CharBack,
    CharForward,
    WordBack,
    WordForward,
    DeleteBack,
    DeleteForward,
    KillWordBack,
    KillToStart,
    KillToEnd,
    Yank,
    OpenEditor,
    Switcher,
    Help,
    /// Clears the input; quits when it is already empty.
    Interrupt,
    Quit,
    Cancel,
    NextConversation,
    PrevConversation,
    NextActive,
    Jump(u8),
    PageUp,
    PageDown,
    /// Files mode: pick an attachment of the open conversation.
    Files,
    /// In files mode: save the highlighted file to the download directory.
    SaveFile,
    /// In files mode: open the highlighted file with the system opener.
    OpenFile,
    /// Inline image previews on or off.
    TogglePreviews,
}

impl Action {
    /// The name used in the config file.
    pub fn name(self) -> String {
        let s = match self {
            Action::Send => "send",
            Action::Newline => "newline",
            Action::Complete => "complete",
            Action::HistoryPrev => "history_prev",
            Action::HistoryNext => "history_next",
            Action::LineStart => "line_start",
            Action::LineEnd => "line_end",
            Action::LineEndOrEditor => "line_end_or_editor",
            Action::CharBack => "char_back",
            Action::CharForward => "char_forward",
            Action::WordBack => "word_back",
            Action::WordForward => "word_forward",
            Action::DeleteBack => "delete_back",
            Action::DeleteForward => "delete_forward",
            Action::KillWordBack => "kill_word_back",
            Action::KillToStart => "kill_to_start",
            Action::KillToEnd => "kill_to_end",
            Action::Yank => "yank",
            Action::OpenEditor => "open_editor",
            Action::Switcher => "switcher",
            Action::Help => "help",
            Action::Interrupt => "interrupt",
            Action::Quit => "quit",
            Action::Cancel => "cancel",
            Action::NextConversation => "next_conversation",
            Action::PrevConversation => "prev_conversation",
            Action::NextActive => "next_active",
            Action::Jump(n) => return format!("jump_{n}"),
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Files => "files",
            Action::SaveFile => "save_file",
            Action::OpenFile => "open_file",
            Action::TogglePreviews => "toggle_previews",
        };
        s.to_string()
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Action> {
        if let Some(n) = name.strip_prefix("jump_") {
            return match n.parse::<u8>() {
                Ok(n @ 1..=9) => Some(Action::Jump(n)),
                _ => None,
            };
        }
        Action::all().into_iter().find(|a| a.name() == name)
    }

    /// Every action, in the order the help screen lists them.
    pub fn all() -> Vec<Action> {
        let mut v = vec![
            Action::Send,
            Action::Newline,
            Action::Complete,
            Action::Switcher,
            Action::NextConversation,
            Action::PrevConversation,
            Action::NextActive,
        ];
        v.extend((1..=9).map(Action::Jump));
        v.extend([
            Action::PageUp,
            Action::PageDown,
            Action::Files,
            Action::SaveFile,
            Action::OpenFile,
            Action::TogglePreviews,
            Action::HistoryPrev,
            Action::HistoryNext,
            Action::LineStart,
            Action::LineEnd,
            Action::LineEndOrEditor,
            Action::CharBack,
            Action::CharForward,
            Action::WordBack,
            Action::WordForward,
            Action::DeleteBack,
            Action::DeleteForward,
            Action::KillWordBack,
            Action::KillToStart,
            Action::KillToEnd,
            Action::Yank,
            Action::OpenEditor,
            Action::Help,
            Action::Cancel,
            Action::Interrupt,
            Action::Quit,
        ]);
        v
    }

    /// One line for the help screen.
    pub fn describe(self) -> String {
        match self {
            Action::Send => "send the message (or run the /command)".into(),
            Action::Newline => "insert a newline".into(),
            Action::Complete => "complete a /command, @user or group".into(),
            Action::HistoryPrev => "previous input (or line up)".into(),
            Action::HistoryNext => "next input (or line down)".into(),
            Action::LineStart => "start of line".into(),
            Action::LineEnd => "end of line".into(),
            Action::LineEndOrEditor => "end of line, then $EDITOR".into(),
            Action::CharBack => "character left".into(),
            Action::CharForward => "character right".into(),
            Action::WordBack => "word left".into(),
            Action::WordForward => "word right".into(),
            Action::DeleteBack => "delete character left".into(),
            Action::DeleteForward => "delete character right".into(),
            Action::KillWordBack => "delete word left".into(),
            Action::KillToStart => "delete to start of line".into(),
            Action::KillToEnd => "delete to end of line".into(),
            Action::Yank => "paste the last deleted text".into(),
            Action::OpenEditor => "write the message in $EDITOR".into(),
            Action::Switcher => "quick switcher (fuzzy)".into(),
            Action::Help => "this help (also ? on an empty input)".into(),
            Action::Interrupt => "clear the input; quit when empty".into(),
            Action::Quit => "quit".into(),
            Action::Cancel => "close popup / back to newest".into(),
            Action::NextConversation => "next conversation".into(),
            Action::PrevConversation => "previous conversation".into(),
            Action::NextActive => "next conversation with unread".into(),
            Action::Jump(n) => format!("conversation {n} of the sidebar"),
            Action::PageUp => "scroll up (loads older history)".into(),
            Action::PageDown => "scroll down".into(),
            Action::Files => "files mode: ↑↓ choose a file, Esc leaves".into(),
            Action::SaveFile => "(files mode) save it to the download directory".into(),
            Action::OpenFile => "(files mode) open it with the system opener".into(),
            Action::TogglePreviews => "image previews on / off".into(),
        }
    }

    fn defaults(self) -> Vec<&'static str> {
        match self {
            Action::Send => vec!["enter"],
            Action::Newline => vec!["alt-enter", "shift-enter", "ctrl-j"],
            Action::Complete => vec!["tab"],
            Action::HistoryPrev => vec!["up"],
            Action::HistoryNext => vec!["down"],
            Action::LineStart => vec!["ctrl-a", "home"],
            Action::LineEnd => vec!["end"],
            Action::LineEndOrEditor => vec!["ctrl-e"],
            Action::CharBack => vec!["left", "ctrl-b"],
            Action::CharForward => vec!["right", "ctrl-f"],
            Action::WordBack => vec!["alt-b", "ctrl-left"],
            Action::WordForward => vec!["alt-f", "ctrl-right"],
            Action::DeleteBack => vec!["backspace", "ctrl-h"],
            Action::DeleteForward => vec!["delete", "ctrl-d"],
            Action::KillWordBack => vec!["ctrl-w", "alt-backspace"],
            Action::KillToStart => vec!["ctrl-u"],
            Action::KillToEnd => vec!["alt-k"],
            Action::Yank => vec!["ctrl-y"],
            Action::OpenEditor => vec!["alt-e", "f2"],
            Action::Switcher => vec!["ctrl-k", "ctrl-g"],
            Action::Help => vec!["f1"],
            Action::Interrupt => vec!["ctrl-c"],
            Action::Quit => vec!["ctrl-q"],
            Action::Cancel => vec!["esc"],
            Action::NextConversation => vec!["ctrl-n", "alt-down"],
            Action::PrevConversation => vec!["ctrl-p", "alt-up"],
            Action::NextActive => vec!["alt-a", "alt-A"],
            Action::Jump(n) => vec![
                [
                    "alt-1", "alt-2", "alt-3", "alt-4", "alt-5", "alt-6", "alt-7", "alt-8", "alt-9",
                ][usize::from(n - 1)],
            ],
            Action::PageUp => vec!["pageup"],
            Action::PageDown => vec!["pagedown"],
            Action::Files => vec!["ctrl-o", "f3"],
            Action::SaveFile => vec!["s"],
            Action::OpenFile => vec!["o"],
            Action::TogglePreviews => vec!["alt-i"],
        }
    }
}

/// A key with its modifiers, normalized so that what the terminal reports and what a
/// person writes in the config compare equal. Shift is folded into the character for
/// printable keys (`alt-A` is alt with shift and a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl KeySpec {
    pub fn from_event(ev: &KeyEvent) -> KeySpec {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let code = match ev.code {
            KeyCode::Char(c) => {
                mods.remove(KeyModifiers::SHIFT);
                if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            // Shift-Tab arrives as BackTab.
            KeyCode::BackTab => {
                mods.remove(KeyModifiers::SHIFT);
                KeyCode::BackTab
            }
            other => other,
        };
        KeySpec { code, mods }
    }

    /// Parses `ctrl-k`, `alt-enter`, `shift-enter`, `f1`, `pageup`, `?`, `alt-A`.
    pub fn parse(s: &str) -> Result<KeySpec, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            let (prefix, m) = if lower.starts_with("ctrl-") || lower.starts_with("ctrl+") {
                (5, KeyModifiers::CONTROL)
            } else if lower.starts_with("c-") && rest.len() > 2 {
                (2, KeyModifiers::CONTROL)
            } else if lower.starts_with("alt-") || lower.starts_with("alt+") {
                (4, KeyModifiers::ALT)
            } else if lower.starts_with("m-") && rest.len() > 2 {
                (2, KeyModifiers::ALT)
            } else if lower.starts_with("shift-") || lower.starts_with("shift+") {
                (6, KeyModifiers::SHIFT)
            } else {
                break;
            };
            mods |= m;
            rest = &rest[prefix..];
        }
        let lower = rest.to_ascii_lowercase();
        let code = match lower.as_str() {
            "enter" | "return" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" | "bs" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" | "ins" => KeyCode::Insert,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.len() >= 2 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                let n: u8 = f[1..].parse().unwrap_or(0);
                if !(1..=24).contains(&n) {
                    return Err(format!("unknown key {s:?}"));
                }
                KeyCode::F(n)
            }
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return Err(format!("unknown key {s:?}")),
                }
            }
        };
        Ok(KeySpec::from_event(&KeyEvent::new(code, mods)))
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("Shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) if self.mods.contains(KeyModifiers::CONTROL) => {
                write!(f, "{}", c.to_ascii_uppercase())
            }
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "F{n}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("BackTab"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Backspace => f.write_str("Backspace"),
            KeyCode::Delete => f.write_str("Delete"),
            KeyCode::Insert => f.write_str("Insert"),
            KeyCode::Up => f.write_str("Up"),
            KeyCode::Down => f.write_str("Down"),
            KeyCode::Left => f.write_str("Left"),
            KeyCode::Right => f.write_str("Right"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PageUp"),
            KeyCode::PageDown => f.write_str("PageDown"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Key -> action.
#[derive(Debug, Clone)]
pub struct Keymap {
    map: HashMap<KeySpec, Action>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap::build(&HashMap::new()).0
    }
}

impl Keymap {
    /// The defaults with `overrides` (action name -> keys) applied. Returns the keymap and
    /// a description of every entry that could not be used.
    pub fn build(overrides: &HashMap<String, Vec<String>>) -> (Keymap, Vec<String>) {
        let mut problems = Vec::new();
        let mut user: Vec<(Action, Vec<KeySpec>)> = Vec::new();
        let mut names: Vec<_> = overrides.keys().collect();
        names.sort();
        for name in names {
            let Some(action) = Action::from_name(name) else {
                problems.push(format!("unknown action {name:?} in [keys]"));
                continue;
            };
            let mut keys = Vec::new();
            for k in &overrides[name] {
                match KeySpec::parse(k) {
                    Ok(spec) => keys.push(spec),
                    Err(e) => problems.push(format!("{e} for {name} in [keys]")),
                }
            }
            user.push((action, keys));
        }
        let mut map = HashMap::new();
        for action in Action::all() {
            if user.iter().any(|(a, _)| *a == action) {
                continue;
            }
            for k in action.defaults() {
                if let Ok(spec) = KeySpec::parse(k) {
                    map.insert(spec, action);
                }
            }
        }
        for (action, keys) in user {
            for k in keys {
                map.insert(k, action);
            }
        }
        (Keymap { map }, problems)
    }

    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        self.map.get(&KeySpec::from_event(ev)).copied()
    }

    /// Like [`Keymap::action`] outside files mode: keys of files-mode actions (plain
    /// letters by default) are then typed, not taken.
    pub fn typing_action(&self, ev: &KeyEvent) -> Option<Action> {
        self.action(ev)
            .filter(|a| !matches!(a, Action::SaveFile | Action::OpenFile))
    }

    /// The keys bound to `action`, in a stable order, for the help screen.
    pub fn keys_for(&self, action: Action) -> Vec<String> {
        let mut keys: Vec<String> = self
            .map
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| k.to_string())
            .collect();
        keys.sort_by_key(|k| (k.len(), k.clone()));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn parses_and_matches_terminal_events() {
        let km = Keymap::default();
        assert_eq!(
            km.action(&key(KeyCode::Char('k'), KeyModifiers::CONTROL)),
            Some(Action::Switcher)
        );
        assert_eq!(
            km.action(&key(KeyCode::Enter, KeyModifiers::ALT)),
            Some(Action::Newline)
        );
        assert_eq!(
            km.action(&key(KeyCode::Enter, KeyModifiers::SHIFT)),
            Some(Action::Newline)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('3'), KeyModifiers::ALT)),
            Some(Action::Jump(3))
        );
        assert_eq!(
            km.action(&key(
                KeyCode::Char('A'),
                KeyModifiers::ALT | KeyModifiers::SHIFT
            )),
            Some(Action::NextActive)
        );
        assert_eq!(
            km.action(&key(KeyCode::F(1), KeyModifiers::NONE)),
            Some(Action::Help)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(KeySpec::parse("C-x").unwrap().to_string(), "Ctrl-X");
        assert_eq!(KeySpec::parse("M-f").unwrap().to_string(), "Alt-f");
        assert!(KeySpec::parse("ctrl-nope").is_err());
        assert!(KeySpec::parse("f99").is_err());
    }

    #[test]
    fn overrides_replace_defaults_and_steal_keys() {
        let mut o = HashMap::new();
        o.insert("kill_to_end".to_string(), vec!["ctrl-k".to_string()]);
        o.insert("switcher".to_string(), vec!["ctrl-g".to_string()]);
        o.insert("bogus".to_string(), vec!["x".to_string()]);
        o.insert("quit".to_string(), vec!["ctrl-?!".to_string()]);
        let (km, problems) = Keymap::build(&o);
        assert_eq!(
            km.action(&key(KeyCode::Char('k'), KeyModifiers::CONTROL)),
            Some(Action::KillToEnd)
        );
        assert_eq!(
            km.action(&key(KeyCode::Char('g'), KeyModifiers::CONTROL)),
            Some(Action::Switcher)
        );
        assert_eq!(km.keys_for(Action::Switcher), ["Ctrl-G"]);
        assert_eq!(
            km.action(&key(KeyCode::Char('k'), KeyModifiers::ALT)),
            None,
            "the default alt-k binding was replaced"
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
