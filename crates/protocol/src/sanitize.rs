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

/// The most bytes [`filename`] returns: what common file systems (ext4, APFS, NTFS in
/// UTF-16 units) accept for one path component.
pub const MAX_FILENAME_BYTES: usize = 255;

/// An extension up to this many bytes is kept when a long name is shortened.
const MAX_KEPT_EXTENSION_BYTES: usize = 16;

/// Makes a file name from the network safe to create in a download directory: the last
/// path component only (no `/` or `\`, so never `..` or an absolute path), no control
/// or bidirectional characters (a `txt.exe` shown as `exe.txt`), no characters Windows
/// refuses (`<>:"|?*`, replaced by `_`), no leading dots or spaces (no hidden files),
/// no trailing dots or spaces, no Windows device name (`CON`, `nul.txt`), at most
/// [`MAX_FILENAME_BYTES`] bytes cut on a character boundary (keeping a short extension),
/// and never empty (`file`). Applying it twice changes nothing.
pub fn filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mapped: String = base
        .chars()
        // Newline and tab too: a name is one line.
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    let trimmed = trim_name(&mapped);
    let mut out = if is_windows_device(trimmed) {
        format!("_{trimmed}")
    } else {
        trimmed.to_owned()
    };
    if out.len() > MAX_FILENAME_BYTES {
        out = shorten(&out);
    }
    if out.is_empty() {
        out.push_str("file");
    }
    out
}

/// Drops leading dots and whitespace (hidden files, `..`) and trailing ones (Windows
/// strips them silently, so `a.txt.` would name another file there).
fn trim_name(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
}

fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    let upper = stem.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit())
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Cuts an over-long (already trimmed) name to [`MAX_FILENAME_BYTES`], keeping a short
/// extension so the file still opens with the right program.
fn shorten(name: &str) -> String {
    if let Some((stem, ext)) = name.rsplit_once('.')
        && !stem.is_empty()
        && !ext.is_empty()
        && ext.len() <= MAX_KEPT_EXTENSION_BYTES
    {
        let stem = trim_name(prefix_within(stem, MAX_FILENAME_BYTES - 1 - ext.len()));
        if !stem.is_empty() {
            return format!("{stem}.{ext}");
        }
    }
    trim_name(prefix_within(name, MAX_FILENAME_BYTES)).to_owned()
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

#[cfg(test)]
mod filename_tests {
    use super::*;

    #[test]
    fn keeps_ordinary_names() {
        for name in [
            "report.pdf",
            "photo 2026-11-28.jpg",
            "日本語.txt",
            "a",
            "README",
        ] {
            assert_eq!(filename(name), name);
        }
    }

    #[test]
    fn cleans_hostile_names() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
            ("/abs/path.txt", "path.txt"),
            ("dir/", "file"),
            ("..", "file"),
            (".", "file"),
            ("", "file"),
            ("   ", "file"),
            (".bashrc", "bashrc"),
            ("...hidden", "hidden"),
            (" . .x", "x"),
            ("trailing. . ", "trailing"),
            ("a\0b\x1b[31mc\x07.txt", "ab[31mc.txt"),
            ("invoice\u{202e}fdp.exe", "invoicefdp.exe"),
            ("c1\u{9b}x", "c1x"),
            ("new\nline\ttab", "newlinetab"),
            ("a<b>c:d\"e|f?g*h", "a_b_c_d_e_f_g_h"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("com1.log", "_com1.log"),
            ("lpt9", "_lpt9"),
            ("console.txt", "console.txt"),
            ("com10", "com10"),
        ];
        for (input, want) in cases {
            assert_eq!(filename(input), want, "input {input:?}");
        }
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        let long = format!("{}.tar.gz", "é".repeat(300));
        let out = filename(&long);
        assert!(out.len() <= MAX_FILENAME_BYTES, "{} bytes", out.len());
        assert!(out.ends_with(".gz"), "{out}");
        assert!(out.starts_with("éé"));

        let no_ext = "x".repeat(1000);
        assert_eq!(filename(&no_ext), "x".repeat(MAX_FILENAME_BYTES));

        // An "extension" too long to keep is cut like the rest of the name.
        let long_ext = format!("a.{}", "b".repeat(400));
        assert_eq!(filename(&long_ext).len(), MAX_FILENAME_BYTES);

        // A cut that lands just after dots does not leave a trailing dot.
        let dots = format!("{}{}", "a".repeat(254), "....b");
        let out = filename(&dots);
        assert!(!out.ends_with('.'), "{out}");
        assert!(out.len() <= MAX_FILENAME_BYTES);
    }

    #[test]
    fn is_idempotent_and_safe() {
        let samples = [
            "../../x",
            "\u{1b}]0;t\u{7}.txt",
            ".. .. ..",
            "CON.txt",
            &format!("{}.{}", "ü".repeat(200), "e".repeat(16)),
            &format!(" {}. ", "ab.".repeat(120)),
        ];
        for s in samples {
            let once = filename(s);
            assert_eq!(filename(&once), once, "input {s:?}");
            assert!(!once.is_empty());
            assert!(once.len() <= MAX_FILENAME_BYTES);
            assert!(!once.starts_with('.'));
            assert!(!once.contains(['/', '\\']));
            assert!(!once.chars().any(|c| c.is_control() || is_bidi_control(c)));
        }
    }
}
