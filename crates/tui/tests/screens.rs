//! What a person sees: the state rendered on ratatui's `TestBackend` at fixed sizes, as
//! insta snapshots (clock times redacted). States are built by injecting events.

mod common;

use common::{attachment, direct, group, image_attachment, msg, msg_with, png, redact, world};
use crossterm::event::KeyCode;
use natter_protocol::{Presence, PresenceState, Receipt, ReceiptKind, SendAck};
use natter_tui::event::{Event, LinkEvent};
use natter_tui::view::cursor_position;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn screen(state: &natter_tui::State, w: u16, h: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| {
            f.render_widget(state, f.area());
            if let Some(p) = cursor_position(state, f.area()) {
                f.set_cursor_position(p);
            }
        })
        .unwrap();
    let text = terminal.backend().to_string();
    assert!(
        !text.contains('\u{1b}'),
        "no escape character may reach the terminal"
    );
    redact(&text)
}

/// The main view with a bit of everything: unread and mention counts, presence, a
/// muted conversation, day separators, grouping, receipts and a pending message.
fn busy_world() -> common::World {
    let mut w = world();
    w.send(Event::Presence(vec![
        Presence {
            user: "bob".into(),
            state: PresenceState::Online,
            last_seen: None,
        },
        Presence {
            user: "carol".into(),
            state: PresenceState::Away,
            last_seen: None,
        },
    ]));
    for (seq, text) in [(1, "are you around?"), (2, "ping @alice")] {
        w.send(Event::Message {
            message: msg(3, seq, "bob", text, 21),
            conversation: direct(3, "bob", seq),
            replayed: false,
        });
    }
    w.send(Event::Message {
        message: msg(1, 2, "carol", "build is green", 22),
        conversation: group(1, "dev", 2),
        replayed: false,
    });
    w.alt(KeyCode::Char('4'));
    w.type_text("/mute");
    w.key(KeyCode::Enter);
    w.alt(KeyCode::Char('2'));
    w.send(Event::Receipt(Receipt {
        conversation_id: 2,
        kind: ReceiptKind::Read,
        user: "bob".into(),
        seq: 6,
        message_seq: 4,
        count: 1,
        of: 2,
    }));
    w.send(Event::Receipt(Receipt {
        conversation_id: 2,
        kind: ReceiptKind::Delivered,
        user: "carol".into(),
        seq: 6,
        message_seq: 5,
        count: 1,
        of: 2,
    }));
    w.tick(9);
    w.type_text("on my way, this one is still pending and long enough to wrap around the line");
    w.key(KeyCode::Enter);
    w.send(Event::Typing {
        conversation_id: 2,
        user: "carol".into(),
        active: true,
    });
    w.type_text("draft: 日本 ok");
    w
}

#[test]
fn main_view_80x24() {
    let w = busy_world();
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

#[test]
fn main_view_120x30() {
    let w = busy_world();
    insta::assert_snapshot!(screen(&w.state, 120, 30));
}

#[test]
fn narrow_terminal_hides_the_sidebar() {
    let w = busy_world();
    insta::assert_snapshot!(screen(&w.state, 50, 16));
}

#[test]
fn switcher() {
    let mut w = busy_world();
    w.ctrl('u');
    w.ctrl('k');
    w.type_text("o");
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

#[test]
fn help() {
    let mut w = busy_world();
    w.key(KeyCode::F(1));
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

#[test]
fn offline_with_queued_messages() {
    let mut w = world();
    w.send(Event::Link(LinkEvent::Offline {
        retry_in: std::time::Duration::from_secs(4),
        reason: "cannot reach http://127.0.0.1:7600".into(),
    }));
    w.type_text("written on the train");
    w.key(KeyCode::Enter);
    w.type_text("and another one");
    w.key(KeyCode::Enter);
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

#[test]
fn hostile_message_full_of_escape_sequences() {
    let mut w = world();
    let hostile = concat!(
        "\x1b[2J\x1b[H",                  // clear the screen, home
        "\x1b]0;you have been pwned\x07", // set the window title
        "\x1b]52;c;ZWNobyBldmls\x07",     // write the clipboard
        "\x1b[31mred\x1b[0m ",
        "\x1bP+q544e\x1b\\",        // DCS query
        "\u{9b}6n",                 // 8-bit CSI: report the cursor
        "\u{202e}gnp.exe\u{202c} ", // right-to-left override
        "bell\x07 back\x08space\r\n",
        "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\ done",
    );
    w.send(Event::Message {
        message: msg(2, 7, "bob", hostile, 30),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    let shown = screen(&w.state, 80, 24);
    assert!(shown.contains("red gnp.exe bell backspace"), "{shown}");
    assert!(shown.contains("link done"), "{shown}");
    assert!(
        !shown.contains("pwned") && !shown.contains("evil"),
        "{shown}"
    );
    insta::assert_snapshot!(shown);
}

#[test]
fn info_popup_and_ack() {
    let mut w = world();
    w.type_text("hi");
    w.key(KeyCode::Enter);
    let id = w.state.conv(2).unwrap().pending[0].client_id.clone();
    let mut m = msg(2, 7, "alice", "hi", 30);
    m.client_id = id.clone();
    w.send(Event::OutboxSent {
        client_id: id,
        ack: SendAck {
            message: m,
            duplicate: false,
        },
    });
    w.send(Event::Info {
        title: "#ops".into(),
        lines: vec![
            "3 members, created 2026-11-27T23:00:00Z".into(),
            String::new(),
            "owner    alice".into(),
            "member   bob".into(),
            "member   carol".into(),
        ],
    });
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

#[test]
fn first_start_without_conversations() {
    let mut w = common::World::new();
    w.send(Event::Conversations(vec![]));
    insta::assert_snapshot!(screen(&w.state, 80, 24));
}

/// bob sends a log and a screenshot, carol a file with no text; alice's own upload is
/// still pending.
fn files_world() -> common::World {
    let mut w = world();
    w.send(Event::Message {
        message: msg_with(
            2,
            7,
            "bob",
            "the failing build, and what it looked like",
            25,
            vec![
                attachment("a-log", "build.log", 2_100_000, "text/plain"),
                image_attachment("a-png", "screenshot-2026-11-28.png", 1920, 1080),
            ],
        ),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    w.send(Event::Message {
        message: msg_with(
            2,
            8,
            "carol",
            "",
            26,
            vec![attachment(
                "a-tar",
                "a-release-with-a-very-long-name-that-does-not-fit-the-line-v1.2.3.tar.gz",
                51_000_000,
                "application/gzip",
            )],
        ),
        conversation: group(2, "ops", 8),
        replayed: false,
    });
    w.type_text("/file ~/notes.md");
    let fx = w.key(KeyCode::Enter);
    let transfer = fx
        .iter()
        .find_map(|e| match e {
            natter_tui::Effect::Upload { transfer, .. } => Some(*transfer),
            _ => None,
        })
        .unwrap();
    w.send(Event::Uploaded {
        transfer,
        result: Ok(attachment("a-md", "notes.md", 1_234, "text/markdown")),
    });
    w
}

#[test]
fn files_and_an_image_preview() {
    let mut w = files_world();
    // Still being fetched: the box is there, with a note.
    let loading = screen(&w.state, 100, 34);
    assert!(loading.contains("loading preview…"), "{loading}");
    // The thumbnail, drawn with half blocks (what every terminal can show).
    let picker = natter_tui::preview::halfblocks();
    let img = natter_tui::preview::encode(&png(256, 144), &picker, 26, 8).unwrap();
    w.send(Event::Preview {
        id: "a-png".into(),
        result: Ok(img),
    });
    // A save under way shows in the status line.
    w.ctrl('o');
    w.key(KeyCode::Up);
    w.key(KeyCode::Up);
    w.key(KeyCode::Char('s'));
    let transfer = w.state.transfers[0].id;
    w.send(Event::Progress {
        transfer,
        done: 945_000,
        total: 2_100_000,
    });
    w.key(KeyCode::Esc);
    let shown = screen(&w.state, 100, 34);
    assert!(
        shown.contains("📎 build.log  2.1 MB  text/plain"),
        "{shown}"
    );
    assert!(shown.contains("saving build.log 45% (2.1 MB)"), "{shown}");
    assert!(shown.contains('▀'), "the preview is drawn: {shown}");
    insta::assert_snapshot!(shown);
}

#[test]
fn files_mode_with_previews_off() {
    let mut w = files_world();
    w.alt(KeyCode::Char('i'));
    w.key(KeyCode::F(3));
    w.key(KeyCode::Up);
    let shown = screen(&w.state, 80, 24);
    assert!(!shown.contains("loading preview"), "{shown}");
    assert!(
        shown.contains("▸ 📎 notes.md") || shown.contains("▸ 📎 screenshot"),
        "{shown}"
    );
    insta::assert_snapshot!(shown);
}
