//! Terminal-safe text. Text from the network passes through [`terminal`] before the
//! TUI, the CLI's human output or a desktop notification shows it: escape sequences
//! (CSI, OSC, DCS, APC, PM, SOS and their 8-bit forms) are removed whole, other control
//! characters (C0 except newline and tab, DEL, C1) and bidirectional overrides are
//! dropped. `--json` output does not use this; it keeps the exact text, JSON-escaped.

use std::borrow::Cow;

const ESC: char = '\u{1b}';
const BEL: char = '\u{07}';

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After ESC.
    Escape,
    /// Inside a CSI sequence: parameters until a final byte in 0x40..=0x7E.
    Csi,
    /// Inside a string sequence (OSC, DCS, SOS, PM, APC): until BEL or ST.
    Str,
    /// Inside a string sequence, just after ESC (a following `\` ends it).
    StrEscape,
}

/// Returns `s` with escape sequences and unsafe control characters removed; newline and
/// tab stay. Borrows when nothing needed removing.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut state = State::Text;
    for c in s.chars() {
        state = match state {
            State::Text => match c {
                ESC => State::Escape,
                '\u{9b}' => State::Csi,
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => State::Str,
                c if is_unsafe(c) => State::Text,
                c => {
                    out.push(c);
                    State::Text
                }
            },
            State::Escape => match c {
                '[' => State::Csi,
                ']' | 'P' | 'X' | '^' | '_' => State::Str,
                // Intermediate bytes (e.g. ESC ( B) take one more character.
                ' '..='/' => State::Escape,
                _ => State::Text,
            },
            State::Csi => match c {
                '\u{40}'..='\u{7e}' => State::Text,
                ESC => State::Escape,
                // Parameters and intermediates continue; anything else aborts the sequence.
                '\u{20}'..='\u{3f}' => State::Csi,
                _ => State::Text,
            },
            State::Str => match c {
                BEL | '\u{9c}' => State::Text,
                ESC => State::StrEscape,
                _ => State::Str,
            },
            State::StrEscape => match c {
                '\\' => State::Text,
                ESC => State::StrEscape,
                _ => State::Str,
            },
        };
    }
    Cow::Owned(out)
}

/// Like [`terminal`], and also replaces newlines and tabs with spaces: for one-line
/// places such as names in a list or a notification summary.
pub fn single_line(s: &str) -> String {
    terminal(s)
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            terminal("hello\n\tworld ✓ 日本"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn strips_sequences() {
        let cases = [
            ("\x1b[31mred\x1b[0m", "red"),
            ("a\x1b]0;title\x07b", "ab"),
            ("a\x1b]52;c;ZXZpbA==\x1b\\b", "ab"),
            ("x\x1bPq#0;2;0;0;0\x1b\\y", "xy"),
            ("bell\x07 nul\0 cr\r del\x7f", "bell nul cr del"),
            ("c1\u{9b}31mred", "c1red"),
            ("osc8\u{9d}8;;http://x\u{9c}link", "osc8link"),
            ("bidi\u{202e}txt.exe", "biditxt.exe"),
            ("\x1b(Bcharset", "charset"),
            ("\x1b[?1049h\x1b[2J", ""),
            ("keep\nnew\tlines", "keep\nnew\tlines"),
            ("unterminated \x1b]0;forever", "unterminated "),
        ];
        for (input, want) in cases {
            assert_eq!(terminal(input), want, "input {input:?}");
        }
    }

    #[test]
    fn output_never_contains_controls() {
        let nasty: String = (0u32..0x250).filter_map(char::from_u32).collect();
        let out = terminal(&nasty);
        assert!(!out.chars().any(is_unsafe));
        assert!(!out.contains(ESC));
    }

    #[test]
    fn single_line_flattens() {
        assert_eq!(single_line("a\nb\tc\x1b[1m"), "a b c");
    }
}
