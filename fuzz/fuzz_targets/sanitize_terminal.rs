//! `sanitize::terminal` and `sanitize::single_line`: never panic, leave no unsafe
//! character (checked by an oracle independent of the sanitizer's own predicate), are
//! idempotent, and change nothing in text that was already safe.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_protocol::sanitize::{single_line, terminal};

fn dangerous(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && c != '\n' && c != '\t')
        || u == 0x7f
        || (0x80..=0x9f).contains(&u)
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fuzz_target!(|data: &[u8]| {
    // Lossy, so that every input exercises the sanitizer (invalid UTF-8 cannot reach
    // it: the wire is JSON in UTF-8, and the CLI refuses such stdin).
    let text = String::from_utf8_lossy(data);
    let out = terminal(&text);
    if let Some(c) = out.chars().find(|&c| dangerous(c)) {
        panic!("U+{:04X} survived in {out:?} (input {text:?})", c as u32);
    }
    assert_eq!(terminal(&out), out, "not idempotent");
    if !text.chars().any(dangerous) {
        assert_eq!(out, text, "changed text that was already safe");
    }
    let line = single_line(&text);
    assert!(!line.chars().any(|c| dangerous(c) || c == '\n' || c == '\t'));
    assert_eq!(single_line(&line), line, "single_line not idempotent");
});
