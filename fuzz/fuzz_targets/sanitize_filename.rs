//! `sanitize::filename`: never panics, never empty, at most 255 bytes, one path
//! component that is not hidden, no control or bidi characters, and idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_protocol::sanitize::{MAX_FILENAME_BYTES, filename};

fuzz_target!(|data: &[u8]| {
    let name = String::from_utf8_lossy(data);
    let out = filename(&name);
    assert!(!out.is_empty());
    assert!(out.len() <= MAX_FILENAME_BYTES, "{} bytes", out.len());
    assert!(
        !out.starts_with('.') && !out.starts_with(char::is_whitespace),
        "{out:?}"
    );
    assert!(
        !out.ends_with('.') && !out.ends_with(char::is_whitespace),
        "{out:?}"
    );
    assert!(
        !out.contains(['/', '\\', '<', '>', ':', '"', '|', '?', '*']),
        "{out:?}"
    );
    assert!(out != "." && out != "..");
    assert!(
        !out.chars().any(|c| c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "{out:?}"
    );
    assert_eq!(filename(&out), out, "not idempotent for {name:?}");
});
