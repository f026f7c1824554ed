//! The hostile corpus through the sanitizers: nothing dangerous survives, sanitizing is
//! idempotent, harmless text is kept, and the exact output of every entry is pinned by a
//! golden snapshot (`snapshots/hostile__terminal_golden.snap`), so any change in what a
//! user would see is a visible diff.

#[path = "corpus/hostile.rs"]
mod hostile;

use natter_protocol::sanitize::{MAX_FILENAME_BYTES, filename, single_line, terminal};

#[test]
fn terminal_output_is_safe_and_idempotent() {
    for (name, text) in hostile::all() {
        let once = terminal(&text);
        hostile::assert_terminal_safe(&name, &once);
        assert_eq!(terminal(&once), once, "{name}: not idempotent");
        let line = single_line(&text);
        hostile::assert_terminal_safe(&name, &line);
        assert!(
            !line.contains(['\n', '\t']),
            "{name}: single_line kept a line break"
        );
    }
}

#[test]
fn harmless_text_is_kept() {
    let benign = hostile::HOSTILE
        .iter()
        .find(|(n, _)| *n == "benign unicode")
        .unwrap()
        .1;
    assert_eq!(terminal(benign), benign);
    assert_eq!(
        terminal(&hostile::huge_plain_line()),
        hostile::huge_plain_line()
    );
    // The visible text around and after sequences survives.
    assert_eq!(terminal("\x1b]0;pwned title\x07after"), "after");
    assert_eq!(terminal("copy\x1b]52;c;Y3Vy\x07this"), "copythis");
}

#[test]
fn terminal_golden() {
    let mut golden = String::new();
    for (name, text) in hostile::HOSTILE {
        golden.push_str(&format!("{name}: {:?}\n", terminal(text)));
    }
    let huge_line = hostile::huge_line();
    let huge = terminal(&huge_line);
    assert!(huge.chars().all(|c| c == 'X'), "{huge:?}");
    golden.push_str(&format!("huge hostile line: {} times \"X\"\n", huge.len()));
    insta::assert_snapshot!(golden);
}

#[test]
fn filenames_from_the_corpus_are_safe() {
    for (name, text) in hostile::all() {
        let f = filename(&text);
        hostile::assert_terminal_safe(&name, &f);
        assert!(
            !f.is_empty() && f.len() <= MAX_FILENAME_BYTES,
            "{name}: {f:?}"
        );
        assert!(
            !f.starts_with('.') && !f.contains(['/', '\\', '\n', '\t']),
            "{name}: {f:?}"
        );
        assert_eq!(filename(&f), f, "{name}: not idempotent");
    }
}
