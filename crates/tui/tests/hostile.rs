//! The hostile corpus (`crates/protocol/tests/corpus/hostile.rs`) rendered by the TUI on
//! ratatui's `TestBackend`: each entry arrives as a live message in the open
//! conversation, and no cell of the screen may hold ESC, a C0 control other than newline
//! and tab, DEL, a C1 control or a bidi control, while the message is still shown.

mod common;
#[path = "../../protocol/tests/corpus/hostile.rs"]
mod corpus;

use common::{attachment, group, msg, msg_with, world};
use natter_tui::event::Event;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(state: &natter_tui::State, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| f.render_widget(state, f.area())).unwrap();
    let backend = terminal.backend();
    // Cell by cell as well as the whole text: a cell's symbol is what is written out.
    for cell in backend.buffer().content() {
        corpus::assert_terminal_safe("a screen cell", cell.symbol());
    }
    backend.to_string()
}

#[test]
fn every_corpus_entry_renders_safely() {
    for (i, (name, text)) in corpus::all().into_iter().enumerate() {
        let mut w = world();
        let marker = format!("h{i:02}:");
        let seq = 7;
        w.send(Event::Message {
            message: msg(2, seq, "bob", &format!("{marker} {text}"), 30),
            conversation: group(2, "ops", seq),
            replayed: false,
        });
        for (cols, rows) in [(100, 30), (40, 12)] {
            let screen = render(&w.state, cols, rows);
            corpus::assert_terminal_safe(&format!("{name} at {cols}x{rows}"), &screen);
            // The message is shown (its start, unless a huge line pushed it off screen).
            if !name.starts_with("huge") && cols == 100 {
                assert!(
                    screen.contains(&marker),
                    "{name}: the message is not on screen\n{screen}"
                );
            }
        }
    }
}

#[test]
fn hostile_file_names_render_safely() {
    let mut names: Vec<(String, String)> = corpus::all()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    names.push(("10,000 characters".into(), "n".repeat(10_000) + ".log"));
    names.push((
        "bidi extension swap".into(),
        "invoice\u{202e}fdp.exe".into(),
    ));
    for (i, (name, file)) in names.into_iter().enumerate() {
        let mut w = world();
        let seq = 7;
        let mut a = attachment("h", &file, 2_100_000, &file);
        a.id = format!("h{i}");
        w.send(Event::Message {
            message: msg_with(2, seq, "bob", "", 30, vec![a]),
            conversation: group(2, "ops", seq),
            replayed: false,
        });
        // Files mode highlights it, too.
        w.ctrl('o');
        for (cols, rows) in [(100, 30), (40, 12)] {
            let screen = render(&w.state, cols, rows);
            corpus::assert_terminal_safe(&format!("file {name} at {cols}x{rows}"), &screen);
            assert!(
                screen.contains("📎"),
                "{name}: the file is not shown\n{screen}"
            );
            // One line per file, however long its name.
            let file_lines = screen.lines().filter(|l| l.contains("📎")).count();
            assert_eq!(file_lines, 1, "{name}\n{screen}");
        }
    }
}
