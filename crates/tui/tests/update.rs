//! `update` alone: an event goes in, state and effects come out. Nothing is rendered.

mod common;

use common::{World, attachment, direct, group, image_attachment, msg, msg_with, png, world};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use natter_protocol::{ConversationState, Presence, PresenceState, Receipt, ReceiptKind, SendAck};
use natter_tui::Effect;
use natter_tui::event::{Event, GroupOp, LinkEvent, Page};
use natter_tui::state::{Key, Link, Mark, Overlay};

fn sends(fx: &[Effect]) -> Vec<(String, String, String)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Send {
                target,
                client_id,
                text,
                ..
            } => Some((target.clone(), client_id.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_message_elsewhere_counts_as_unread_and_notifies() {
    let mut w = world();
    let fx = w.send(Event::Message {
        message: msg(3, 1, "bob", "psst @alice, lunch?", 25),
        conversation: direct(3, "bob", 1),
        replayed: false,
    });
    let bob = w.state.conv(3).unwrap();
    assert_eq!((bob.unread, bob.mentions), (1, 1));
    assert!(
        fx.contains(&Effect::Notify {
            title: "bob".into(),
            body: "psst @alice, lunch?".into()
        }),
        "{fx:?}"
    );
    // Replayed messages (missed while away) count, but do not pop up notifications.
    let fx = w.send(Event::Message {
        message: msg(3, 2, "bob", "hello?", 26),
        conversation: direct(3, "bob", 2),
        replayed: true,
    });
    assert_eq!(w.state.conv(3).unwrap().unread, 2);
    assert!(!fx.iter().any(|e| matches!(e, Effect::Notify { .. })));
    // Viewing it marks it read.
    let fx = w.alt(KeyCode::Char('3'));
    assert!(fx.contains(&Effect::LoadLatest { conversation_id: 3 }));
    assert!(
        fx.contains(&Effect::MarkRead {
            conversation_id: 3,
            seq: 2
        }),
        "{fx:?}"
    );
    let fx = w.history(
        3,
        vec![msg(3, 1, "bob", "psst", 25), msg(3, 2, "bob", "hello?", 26)],
    );
    assert!(fx.is_empty(), "already marked: {fx:?}");
    assert_eq!(w.state.conv(3).unwrap().unread, 0);
    assert_eq!(w.state.conv(3).unwrap().mentions, 0);
}

#[test]
fn a_message_in_the_open_conversation_is_read_at_once() {
    let mut w = world();
    let fx = w.send(Event::Message {
        message: msg(2, 7, "carol", "done", 30),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    assert_eq!(
        fx,
        [Effect::MarkRead {
            conversation_id: 2,
            seq: 7
        }]
    );
    assert_eq!(w.state.conv(2).unwrap().unread, 0);
    assert_eq!(w.state.conv(2).unwrap().newest_seq(), Some(7));
    // Muted conversations stay quiet unless you are mentioned.
    w.send(Event::Key(KeyEvent::new(
        KeyCode::Char('1'),
        KeyModifiers::ALT,
    )));
    w.type_text("/mute");
    let fx = w.key(KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Mute {
            target: "dev".into(),
            muted: true
        }]
    );
    w.alt(KeyCode::Char('2'));
    let fx = w.send(Event::Message {
        message: msg(1, 2, "bob", "noise", 31),
        conversation: group(1, "dev", 2),
        replayed: false,
    });
    assert!(fx.is_empty(), "{fx:?}");
    let fx = w.send(Event::Message {
        message: msg(1, 3, "bob", "@alice look", 31),
        conversation: group(1, "dev", 3),
        replayed: false,
    });
    assert!(matches!(&fx[..], [Effect::Notify { title, .. }] if title == "bob in #dev"));
}

#[test]
fn typed_message_goes_pending_then_sent_then_read_in_place() {
    let mut w = world();
    let fx = w.type_text("ship it");
    assert_eq!(
        fx,
        [Effect::Typing {
            conversation_id: 2,
            active: true
        }],
        "typing is announced once, not per key"
    );
    let fx = w.key(KeyCode::Enter);
    let sent = sends(&fx);
    assert_eq!(sent.len(), 1);
    let (target, client_id, text) = sent[0].clone();
    assert_eq!((target.as_str(), text.as_str()), ("ops", "ship it"));
    assert!(w.state.input.is_empty());
    let ops = w.state.conv(2).unwrap();
    assert_eq!(ops.pending.len(), 1);
    assert_eq!(ops.pending[0].mark(), Mark::Pending);
    assert_eq!(w.state.queued(), 1);

    // The ack from the outbox flush replaces the pending copy with the stored message.
    let mut stored = msg(2, 7, "alice", "ship it", 30);
    stored.client_id = client_id.clone();
    w.send(Event::OutboxSent {
        client_id: client_id.clone(),
        ack: SendAck {
            message: stored.clone(),
            duplicate: false,
        },
    });
    // The same message echoed by the socket does not duplicate it.
    w.send(Event::Message {
        message: stored,
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    let ops = w.state.conv(2).unwrap();
    assert!(ops.pending.is_empty());
    assert_eq!(ops.messages.len(), 7);
    assert_eq!(ops.get(Key::Seq(7)).unwrap().mark(), Mark::Sent);

    // Receipts update the message where it is, and older own messages with it.
    let receipt = |kind, count| {
        Event::Receipt(Receipt {
            conversation_id: 2,
            kind,
            user: "bob".into(),
            seq: 7,
            message_seq: 7,
            count,
            of: 2,
        })
    };
    w.send(receipt(ReceiptKind::Delivered, 2));
    let ops = w.state.conv(2).unwrap();
    assert_eq!(ops.get(Key::Seq(7)).unwrap().mark(), Mark::Delivered);
    assert_eq!(ops.get(Key::Seq(5)).unwrap().mark(), Mark::Delivered);
    w.send(receipt(ReceiptKind::Read, 1));
    let ops = w.state.conv(2).unwrap();
    assert_eq!(ops.get(Key::Seq(7)).unwrap().mark(), Mark::Read);
    assert_eq!(ops.get(Key::Seq(4)).unwrap().mark(), Mark::Read);
    assert_eq!(ops.get(Key::Seq(7)).unwrap().receipts.read, 1);
    assert_eq!(
        ops.get(Key::Seq(6)).unwrap().mark(),
        Mark::Sent,
        "bob's own message has no receipt mark state change"
    );
}

#[test]
fn offline_messages_wait_and_go_out_once_on_reconnect() {
    let mut w = world();
    w.send(Event::Link(LinkEvent::Offline {
        retry_in: std::time::Duration::from_secs(4),
        reason: "cannot reach".into(),
    }));
    assert!(matches!(w.state.link, Link::Offline { .. }));
    w.type_text("one");
    let first = sends(&w.key(KeyCode::Enter));
    w.type_text("two");
    let second = sends(&w.key(KeyCode::Enter));
    assert_eq!(w.state.queued(), 2);
    // No flushing while offline.
    assert!(w.tick(10).is_empty());
    let fx = w.online();
    assert!(fx.contains(&Effect::RefreshConversations));
    // Still pending after a while online: retried, but not more often than every 5 s.
    let fx = w.tick(5);
    assert_eq!(fx, [Effect::Flush]);
    assert!(w.tick(1).is_empty());
    for (i, (_, id, text)) in first.iter().chain(&second).enumerate() {
        let mut m = msg(2, 7 + i as i64, "alice", text, 31);
        m.client_id = id.clone();
        for _ in 0..2 {
            w.send(Event::OutboxSent {
                client_id: id.clone(),
                ack: SendAck {
                    message: m.clone(),
                    duplicate: false,
                },
            });
        }
    }
    let ops = w.state.conv(2).unwrap();
    assert_eq!(w.state.queued(), 0);
    let texts: Vec<_> = ops.messages.values().map(|m| m.text.as_str()).collect();
    assert_eq!(&texts[5..], ["👍 日本語も大丈夫", "one", "two"]);
}

#[test]
fn refused_messages_are_marked_and_explained() {
    let mut w = world();
    w.type_text("x");
    let (_, id, _) = sends(&w.key(KeyCode::Enter)).remove(0);
    w.send(Event::OutboxFailed {
        client_id: id,
        error: "you are not a member of ops".into(),
    });
    let ops = w.state.conv(2).unwrap();
    assert_eq!(ops.pending[0].mark(), Mark::Failed);
    let notice = w.state.notice.clone().unwrap();
    assert!(notice.error);
    assert_eq!(notice.text, "message not sent: you are not a member of ops");
    // A message over the size limit never leaves the input.
    let long = "y".repeat(20_000);
    w.send(Event::Paste(long.clone()));
    let fx = w.key(KeyCode::Enter);
    assert!(sends(&fx).is_empty());
    assert_eq!(w.state.input.text(), long);
    assert!(w.state.notice.as_ref().unwrap().text.contains("limit"));
    // Errors from the server land in the status line.
    w.send(Event::ServerError("rate limited: slow down".into()));
    assert_eq!(
        w.state.notice.as_ref().unwrap().text,
        "rate limited: slow down"
    );
}

#[test]
fn untrusted_text_is_sanitized_on_the_way_in() {
    let mut w = world();
    w.send(Event::Message {
        message: msg(
            2,
            7,
            "bob",
            "\x1b[2J\x1b]0;pwned\x07red\x1b[0m\u{202e}exe\tok\u{9b}31m",
            30,
        ),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    let m = w.state.conv(2).unwrap().get(Key::Seq(7)).unwrap();
    assert_eq!(m.text, "redexe    ok");
    w.send(Event::Done(Err("bad \x1b[31mthing\nhere".into())));
    assert_eq!(w.state.notice.as_ref().unwrap().text, "bad thing here");
}

#[test]
fn slash_commands_become_effects() {
    let mut w = world();
    let run = |w: &mut World, line: &str| {
        w.type_text(line);
        w.key(KeyCode::Enter)
    };
    assert_eq!(
        run(&mut w, "/msg @dave hello  there"),
        [Effect::Open {
            target: "@dave".into(),
            text: Some("hello  there".into())
        }]
    );
    let fx = run(&mut w, "/msg @bob hi bob");
    assert_eq!(w.selected_target(), "@bob");
    assert_eq!(sends(&fx)[0].0, "@bob");
    assert_eq!(sends(&fx)[0].2, "hi bob");
    assert_eq!(
        run(&mut w, "/group create infra @bob carol"),
        [Effect::Group(GroupOp::Create {
            name: "infra".into(),
            members: vec!["bob".into(), "carol".into()]
        })]
    );
    assert_eq!(
        run(&mut w, "/group add ops @dave"),
        [Effect::Group(GroupOp::Add {
            name: "ops".into(),
            users: vec!["dave".into()]
        })]
    );
    assert_eq!(
        run(&mut w, "/group remove #ops dave"),
        [Effect::Group(GroupOp::Remove {
            name: "ops".into(),
            user: "dave".into()
        })]
    );
    assert!(run(&mut w, "/group info").is_empty(), "not in a group now");
    assert!(w.state.notice.as_ref().unwrap().error);
    w.alt(KeyCode::Char('2'));
    assert_eq!(
        run(&mut w, "/group info"),
        [Effect::Group(GroupOp::Info { name: "ops".into() })]
    );
    assert_eq!(
        run(&mut w, "/group leave"),
        [Effect::Group(GroupOp::Leave { name: "ops".into() })]
    );
    assert_eq!(
        run(&mut w, "/away"),
        [Effect::SetPresence(PresenceState::Away)]
    );
    assert!(w.state.away);
    assert_eq!(
        run(&mut w, "/back"),
        [Effect::SetPresence(PresenceState::Online)]
    );
    assert_eq!(
        run(&mut w, "/unmute @carol"),
        [Effect::Mute {
            target: "@carol".into(),
            muted: false
        }]
    );
    assert!(run(&mut w, "/bogus").is_empty());
    assert!(
        w.state
            .notice
            .as_ref()
            .unwrap()
            .text
            .starts_with("unknown command /bogus")
    );
    let fx = run(&mut w, "//not a command");
    assert_eq!(sends(&fx)[0].2, "/not a command");
    run(&mut w, "/help");
    assert!(matches!(w.state.overlay, Some(Overlay::Help { .. })));
    w.key(KeyCode::Esc);
    assert!(w.state.overlay.is_none());
    assert_eq!(run(&mut w, "/quit"), [Effect::Quit]);
    assert!(w.state.quit);
}

#[test]
fn read_clears_the_unread_count() {
    let mut w = world();
    w.send(Event::ConversationState(ConversationState {
        conversation_id: 2,
        last_seq: 9,
        read_seq: 6,
        unread: 3,
        muted: false,
        muted_until: None,
        online: 1,
    }));
    // Newer messages are not loaded yet: the count stays until they are seen.
    assert_eq!(w.state.conv(2).unwrap().unread, 3);
    w.type_text("/read");
    let fx = w.key(KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::MarkRead {
            conversation_id: 2,
            seq: 9
        }]
    );
    assert_eq!(w.state.conv(2).unwrap().unread, 0);
}

#[test]
fn tab_completes_commands_users_and_groups() {
    let mut w = world();
    w.type_text("/gr");
    w.key(KeyCode::Tab);
    assert_eq!(w.state.input.text(), "/group ");
    w.type_text("a");
    w.key(KeyCode::Tab);
    assert_eq!(w.state.input.text(), "/group add ");
    w.type_text("o");
    w.key(KeyCode::Tab);
    assert_eq!(w.state.input.text(), "/group add ops ");
    w.type_text("@");
    w.key(KeyCode::Tab);
    assert_eq!(
        w.state.input.text(),
        "/group add ops @bob",
        "first of several"
    );
    w.key(KeyCode::Tab);
    assert_eq!(
        w.state.input.text(),
        "/group add ops @carol",
        "Tab again cycles"
    );
    w.ctrl('u');
    w.type_text("thanks @ca");
    w.key(KeyCode::Tab);
    assert_eq!(w.state.input.text(), "thanks @carol ");
}

#[test]
fn keys_switch_conversations() {
    let mut w = world();
    let order: Vec<_> = w.state.convs.iter().map(|c| c.target.clone()).collect();
    assert_eq!(order, ["dev", "ops", "@bob", "@carol"]);
    w.ctrl('n');
    assert_eq!(w.selected_target(), "@bob");
    w.ctrl('n');
    w.ctrl('n');
    assert_eq!(w.selected_target(), "dev", "wraps around");
    w.ctrl('p');
    assert_eq!(w.selected_target(), "@carol");
    w.alt(KeyCode::Char('9'));
    assert_eq!(w.selected_target(), "@carol", "no ninth conversation");
    // Alt-A: the next with activity, mentions first.
    w.send(Event::Message {
        message: msg(3, 1, "bob", "hey", 25),
        conversation: direct(3, "bob", 1),
        replayed: false,
    });
    w.send(Event::Message {
        message: msg(1, 2, "bob", "@alice?", 25),
        conversation: group(1, "dev", 2),
        replayed: false,
    });
    w.alt(KeyCode::Char('a'));
    assert_eq!(w.selected_target(), "dev");
    w.alt(KeyCode::Char('a'));
    assert_eq!(w.selected_target(), "@bob");
    w.alt(KeyCode::Char('a'));
    assert_eq!(w.state.notice.as_ref().unwrap().text, "no unread messages");
}

#[test]
fn the_switcher_matches_fuzzily_and_opens_new_direct_conversations() {
    let mut w = world();
    w.send(Event::Presence(vec![Presence {
        user: "dave".into(),
        state: PresenceState::Online,
        last_seen: None,
    }]));
    w.ctrl('k');
    let Some(Overlay::Switcher(sw)) = &w.state.overlay else {
        panic!("switcher open");
    };
    assert_eq!(sw.matches.len(), 5, "4 conversations and dave");
    w.type_text("cl");
    let Some(Overlay::Switcher(sw)) = &w.state.overlay else {
        panic!("switcher open");
    };
    let labels: Vec<_> = sw.matches.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["@carol"]);
    w.key(KeyCode::Enter);
    assert_eq!(w.selected_target(), "@carol");
    assert!(w.state.overlay.is_none());
    w.ctrl('k');
    w.type_text("dav");
    let fx = w.key(KeyCode::Enter);
    assert_eq!(
        fx,
        [Effect::Open {
            target: "@dave".into(),
            text: None
        }]
    );
    w.ctrl('k');
    w.key(KeyCode::Esc);
    assert!(w.state.overlay.is_none());
}

#[test]
fn question_mark_opens_help_only_on_an_empty_input() {
    let mut w = world();
    w.key(KeyCode::Char('?'));
    assert!(matches!(w.state.overlay, Some(Overlay::Help { .. })));
    w.key(KeyCode::Char('q'));
    assert!(w.state.overlay.is_none());
    w.type_text("why?");
    assert_eq!(w.state.input.text(), "why?");
    w.key(KeyCode::F(1));
    assert!(matches!(w.state.overlay, Some(Overlay::Help { .. })));
}

#[test]
fn readline_keys_history_and_editor() {
    let mut w = world();
    w.type_text("first");
    w.key(KeyCode::Enter);
    w.type_text("hello big world");
    w.ctrl('w');
    assert_eq!(w.state.input.text(), "hello big ");
    w.ctrl('a');
    w.type_text(">");
    w.alt(KeyCode::Char('f'));
    w.alt(KeyCode::Char('b'));
    assert_eq!(w.state.input.cursor(), 1);
    let fx = w.ctrl('e');
    assert!(fx.is_empty(), "Ctrl-E moves to the end first");
    let fx = w.ctrl('e');
    assert_eq!(
        fx,
        [Effect::Edit {
            text: ">hello big ".into()
        }],
        "then opens $EDITOR"
    );
    w.send(Event::Edited(Ok(Some(
        "from the editor\nline two\n".into(),
    ))));
    assert_eq!(w.state.input.text(), "from the editor\nline two");
    w.alt(KeyCode::Enter);
    assert_eq!(w.state.input.text(), "from the editor\nline two\n");
    w.ctrl('u');
    w.key(KeyCode::Backspace);
    w.ctrl('u');
    w.ctrl('u');
    w.key(KeyCode::Backspace);
    w.ctrl('u');
    assert!(w.state.input.is_empty());
    w.key(KeyCode::Up);
    assert_eq!(w.state.input.text(), "first");
    w.key(KeyCode::Down);
    assert_eq!(w.state.input.text(), "");
    // Ctrl-C clears the input, and quits only when it is empty.
    w.type_text("abc");
    assert!(w.ctrl('c').is_empty() || !w.state.quit);
    assert!(!w.state.quit && w.state.input.is_empty());
    assert_eq!(w.ctrl('c'), [Effect::Quit]);
}

#[test]
fn typing_is_sent_at_most_every_few_seconds_and_shown_for_others() {
    let mut w = world();
    assert_eq!(w.type_text("a").len(), 1);
    assert!(w.type_text("bc").is_empty());
    w.tick(3);
    assert_eq!(
        w.type_text("d"),
        [Effect::Typing {
            conversation_id: 2,
            active: true
        }]
    );
    // Switching away says "stopped".
    let fx = w.alt(KeyCode::Char('1'));
    assert!(fx.contains(&Effect::Typing {
        conversation_id: 2,
        active: false
    }));
    w.alt(KeyCode::Char('2'));
    w.send(Event::Typing {
        conversation_id: 2,
        user: "bob".into(),
        active: true,
    });
    assert_eq!(w.state.conv(2).unwrap().typing.len(), 1);
    w.tick(3);
    assert_eq!(w.state.conv(2).unwrap().typing.len(), 1);
    w.tick(4);
    assert!(w.state.conv(2).unwrap().typing.is_empty(), "expired");
    // A message from the typist ends it at once.
    w.send(Event::Typing {
        conversation_id: 2,
        user: "bob".into(),
        active: true,
    });
    w.send(Event::Message {
        message: msg(2, 7, "bob", "here", 30),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    assert!(w.state.conv(2).unwrap().typing.is_empty());
}

#[test]
fn scrolling_loads_older_history_without_jumping() {
    let mut w = world();
    // A long conversation: seqs 501..=1000 loaded, older ones on the server.
    w.send(Event::Conversations(vec![
        group(1, "dev", 1),
        group(2, "ops", 1000),
        direct(3, "bob", 0),
        direct(4, "carol", 0),
    ]));
    let page: Vec<_> = (501..=1000)
        .map(|s| {
            msg(
                2,
                s,
                if s % 3 == 0 { "bob" } else { "carol" },
                &format!("line {s}"),
                0,
            )
        })
        .collect();
    w.history(2, page);
    let ops = w.state.conv(2).unwrap();
    assert!(!ops.reached_start && ops.anchor.is_none());
    assert_eq!(
        ops.oldest_seq(),
        Some(501),
        "the earlier 1..=6 were cut off at the gap"
    );

    let mut older = None;
    for _ in 0..200 {
        let fx = w.key(KeyCode::PageUp);
        if let Some(e) = fx.iter().find(|e| matches!(e, Effect::LoadOlder { .. })) {
            older = Some(e.clone());
            break;
        }
    }
    assert_eq!(
        older,
        Some(Effect::LoadOlder {
            conversation_id: 2,
            before: 501
        })
    );
    let anchor = w.state.conv(2).unwrap().anchor.expect("scrolled");
    assert!(w.state.conv(2).unwrap().loading_older);
    assert!(
        w.key(KeyCode::PageUp)
            .iter()
            .all(|e| !matches!(e, Effect::LoadOlder { .. })),
        "one load at a time"
    );
    let anchor_before_load = w.state.conv(2).unwrap().anchor.unwrap();
    assert!(matches!(anchor.key, Key::Seq(s) if s < 560));
    w.send(Event::History {
        conversation_id: 2,
        messages: (401..=500)
            .map(|s| msg(2, s, "bob", &format!("line {s}"), 0))
            .collect(),
        page: Page::Older { complete: false },
    });
    let ops = w.state.conv(2).unwrap();
    assert_eq!(ops.oldest_seq(), Some(401));
    assert_eq!(
        ops.anchor,
        Some(anchor_before_load),
        "the view stays where it was"
    );
    // The mouse wheel scrolls too; PageDown all the way returns to following.
    w.send(Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollUp,
        column: 40,
        row: 10,
        modifiers: KeyModifiers::NONE,
    }));
    for _ in 0..400 {
        w.key(KeyCode::PageDown);
        if w.state.conv(2).unwrap().anchor.is_none() {
            break;
        }
    }
    assert!(w.state.conv(2).unwrap().anchor.is_none());
    // Reaching seq 1 means there is nothing more to load.
    w.send(Event::History {
        conversation_id: 2,
        messages: (1..=400).map(|s| msg(2, s, "bob", "x", 0)).collect(),
        page: Page::Older { complete: true },
    });
    for _ in 0..300 {
        let fx = w.key(KeyCode::PageUp);
        assert!(fx.iter().all(|e| !matches!(e, Effect::LoadOlder { .. })));
    }
    let ops = w.state.conv(2).unwrap();
    assert_eq!(
        ops.anchor.map(|a| (a.key, a.offset)),
        Some((Key::Seq(1), 0)),
        "clamped at the top"
    );
}

#[test]
fn removal_and_presence() {
    let mut w = world();
    w.send(Event::Presence(vec![
        Presence {
            user: "bob".into(),
            state: PresenceState::Online,
            last_seen: None,
        },
        Presence {
            user: "alice".into(),
            state: PresenceState::Away,
            last_seen: None,
        },
    ]));
    assert_eq!(w.state.presence.get("bob"), Some(&PresenceState::Online));
    assert!(w.state.away, "set away on another device");
    let fx = w.send(Event::Removed {
        conversation_id: 2,
        target: Some("ops".into()),
    });
    assert!(w.state.conv(2).is_none());
    assert_eq!(w.selected_target(), "dev");
    assert!(fx.contains(&Effect::LoadLatest { conversation_id: 1 }));
    assert_eq!(
        w.state.notice.as_ref().unwrap().text,
        "you are no longer a member of #ops"
    );
}

fn uploads(fx: &[Effect]) -> Vec<(u64, std::path::PathBuf)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Upload { transfer, path } => Some((*transfer, path.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn file_command_uploads_then_queues_the_message_with_the_file() {
    let mut w = world();
    // No path: usage, nothing to do.
    w.type_text("/file   ");
    assert!(uploads(&w.key(KeyCode::Enter)).is_empty());
    assert!(
        w.state
            .notice
            .as_ref()
            .unwrap()
            .text
            .starts_with("usage: /file")
    );

    w.type_text(r"/file /tmp/build\ 42.log here is the log");
    let fx = w.key(KeyCode::Enter);
    let up = uploads(&fx);
    assert_eq!(up.len(), 1, "{fx:?}");
    let (transfer, path) = up[0].clone();
    assert_eq!(path, std::path::Path::new("/tmp/build 42.log"));
    assert!(sends(&fx).is_empty(), "nothing is sent before the upload");
    assert_eq!(w.state.transfers[0].label(), "uploading build 42.log…");
    w.send(Event::Progress {
        transfer,
        done: 945_000,
        total: 2_100_000,
    });
    assert_eq!(
        w.state.transfers[0].label(),
        "uploading build 42.log 45% (2.1 MB)"
    );

    // Meanwhile the user moves elsewhere: the file still goes where /file was typed.
    w.alt(KeyCode::Char('1'));
    let att = attachment("att-1", "build 42.log", 2_100_000, "text/plain");
    let fx = w.send(Event::Uploaded {
        transfer,
        result: Ok(att),
    });
    assert!(w.state.transfers.is_empty());
    let send = fx
        .iter()
        .find_map(|e| match e {
            Effect::Send {
                target,
                text,
                attachments,
                ..
            } => Some((target.clone(), text.clone(), attachments.clone())),
            _ => None,
        })
        .expect("the message is queued");
    assert_eq!(
        send,
        ("ops".into(), "here is the log".into(), vec!["att-1".into()])
    );
    let pending = &w.state.conv(2).unwrap().pending;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attachments[0].name, "build 42.log");
    assert_eq!(pending[0].mark(), Mark::Pending);

    // A failed upload (too large, missing file) is a notice, not a message.
    w.type_text("~/nope.bin");
    w.ctrl('a');
    w.type_text("/file ");
    let (transfer, path) = uploads(&w.key(KeyCode::Enter))[0].clone();
    assert!(!path.starts_with("~"), "~ is expanded: {path:?}");
    assert!(path.ends_with("nope.bin"));
    let fx = w.send(Event::Uploaded {
        transfer,
        result: Err("/home/a/nope.bin is 3.0 GB; the server takes files up to 104.9 MB".into()),
    });
    assert!(sends(&fx).is_empty());
    let notice = w.state.notice.clone().unwrap();
    assert!(
        notice.error && notice.text.contains("cannot send nope.bin"),
        "{notice:?}"
    );
}

#[test]
fn tab_completes_file_paths_through_the_runtime() {
    let mut w = world();
    w.type_text("/file ~/bu");
    let fx = w.key(KeyCode::Tab);
    assert_eq!(
        fx,
        [Effect::CompletePath {
            start: 6,
            word: "~/bu".into()
        }]
    );
    w.send(Event::PathCompletions {
        start: 6,
        word: "~/bu".into(),
        candidates: vec!["~/builds/".into()],
    });
    assert_eq!(
        w.state.input.text(),
        "/file ~/builds/",
        "a directory: no space"
    );
    w.type_text("a");
    w.key(KeyCode::Tab);
    w.send(Event::PathCompletions {
        start: 6,
        word: "~/builds/a".into(),
        candidates: vec![r"~/builds/a\ b.log".into(), "~/builds/a.log".into()],
    });
    assert_eq!(
        w.state.input.text(),
        "/file ~/builds/a.log",
        "the first of several"
    );
    assert!(
        w.key(KeyCode::Tab).is_empty(),
        "Tab again cycles, no new lookup"
    );
    assert_eq!(w.state.input.text(), r"/file ~/builds/a\ b.log");
    // A late answer for a word no longer there changes nothing.
    w.ctrl('u');
    w.send(Event::PathCompletions {
        start: 6,
        word: "~/x".into(),
        candidates: vec!["~/xyz".into()],
    });
    assert_eq!(w.state.input.text(), "");
}

fn with_files(w: &mut World) {
    w.send(Event::Message {
        message: msg_with(
            2,
            7,
            "bob",
            "logs and a screenshot",
            25,
            vec![
                attachment("a-log", "build.log", 2_100_000, "text/plain"),
                image_attachment("a-png", "shot.png", 1920, 1080),
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
                "release.tar.gz",
                51_000_000,
                "application/gzip",
            )],
        ),
        conversation: group(2, "ops", 8),
        replayed: false,
    });
}

#[test]
fn files_mode_picks_newest_first_then_saves_or_opens() {
    let mut w = world();
    // Nothing to pick yet.
    w.ctrl('o');
    assert!(w.state.files.is_none());
    assert!(w.state.notice.as_ref().unwrap().text.contains("no files"));

    with_files(&mut w);
    w.key(KeyCode::F(3));
    let sel = w.state.files.clone().expect("files mode");
    assert_eq!(sel.items.len(), 3);
    let name = |w: &World| {
        let (k, i) = w.state.files.as_ref().unwrap().current().unwrap();
        w.state.conv(2).unwrap().get(k).unwrap().attachments[i]
            .name
            .clone()
    };
    assert_eq!(name(&w), "release.tar.gz", "the newest first");
    w.key(KeyCode::Up);
    assert_eq!(name(&w), "shot.png");
    w.key(KeyCode::Up);
    assert_eq!(name(&w), "build.log");
    w.key(KeyCode::Up);
    assert_eq!(name(&w), "build.log", "stops at the oldest");
    w.key(KeyCode::Down);
    w.key(KeyCode::Down);
    assert_eq!(name(&w), "release.tar.gz");

    // `s` saves, with progress in the status line.
    let fx = w.key(KeyCode::Char('s'));
    let Some(Effect::Download {
        transfer,
        id,
        open: false,
        size,
        ..
    }) = fx.first().cloned()
    else {
        panic!("{fx:?}")
    };
    assert_eq!((id.as_str(), size), ("a-tar", 51_000_000));
    assert!(w.state.files.is_some(), "still in files mode");
    assert!(w.state.input.is_empty(), "s was not typed");
    w.send(Event::Progress {
        transfer,
        done: 25_500_000,
        total: 51_000_000,
    });
    assert_eq!(
        w.state.transfers[0].label(),
        "saving release.tar.gz 50% (51.0 MB)"
    );
    w.send(Event::Downloaded {
        transfer,
        result: Ok("/home/alice/Downloads/release.tar.gz".into()),
    });
    assert!(w.state.transfers.is_empty());
    assert_eq!(
        w.state.notice.as_ref().unwrap().text,
        "saved /home/alice/Downloads/release.tar.gz"
    );

    // Enter (or `o`) opens.
    w.key(KeyCode::Up);
    let fx = w.key(KeyCode::Enter);
    assert!(
        matches!(&fx[..], [Effect::Download { id, open: true, .. }] if id == "a-png"),
        "{fx:?}"
    );
    let transfer = w.state.transfers[0].id;
    w.send(Event::Downloaded {
        transfer,
        result: Err("cannot run xdg-open (No such file or directory)".into()),
    });
    let n = w.state.notice.clone().unwrap();
    assert!(
        n.error && n.text.starts_with("cannot get shot.png"),
        "{n:?}"
    );

    // Esc leaves; a letter leaves and is typed.
    w.key(KeyCode::Esc);
    assert!(w.state.files.is_none());
    w.ctrl('o');
    assert!(w.state.files.is_some());
    w.type_text("x");
    assert!(w.state.files.is_none());
    assert_eq!(w.state.input.text(), "x");
    // Outside files mode, `s` and `o` are just letters.
    w.type_text("so");
    assert_eq!(w.state.input.text(), "xso");
}

#[test]
fn previews_are_fetched_once_when_on_screen_and_can_be_turned_off() {
    let mut w = world();
    let fx = w.send(Event::Message {
        message: msg_with(
            2,
            7,
            "bob",
            "look",
            25,
            vec![image_attachment("a-png", "shot.png", 1920, 1080)],
        ),
        conversation: group(2, "ops", 7),
        replayed: false,
    });
    let fetches: Vec<_> = fx
        .iter()
        .filter(|e| matches!(e, Effect::FetchPreview { .. }))
        .collect();
    assert_eq!(
        fetches,
        [&Effect::FetchPreview {
            id: "a-png".into(),
            cols: 26,
            rows: 8
        }]
    );
    // Asked once, however often the screen changes.
    let fx = w.type_text("hm");
    assert!(!fx.iter().any(|e| matches!(e, Effect::FetchPreview { .. })));
    let picker = natter_tui::preview::halfblocks();
    let img = natter_tui::preview::encode(&png(256, 144), &picker, 26, 8).unwrap();
    w.send(Event::Preview {
        id: "a-png".into(),
        result: Ok(img),
    });
    assert!(matches!(
        w.state.previews.get("a-png"),
        Some(natter_tui::preview::Slot::Ready(_))
    ));
    // Alt-I: off, and the images are dropped.
    w.alt(KeyCode::Char('i'));
    assert!(!w.state.previews.enabled && w.state.previews.is_empty());
    assert_eq!(w.state.notice.as_ref().unwrap().text, "image previews off");
    let fx = w.type_text("m");
    assert!(!fx.iter().any(|e| matches!(e, Effect::FetchPreview { .. })));
    // On again: fetched again.
    let fx = w.alt(KeyCode::Char('i'));
    assert!(
        fx.iter().any(|e| matches!(e, Effect::FetchPreview { .. })),
        "{fx:?}"
    );
    // A preview that fails is not asked for again.
    w.send(Event::Preview {
        id: "a-png".into(),
        result: Err("404".into()),
    });
    let fx = w.type_text("m");
    assert!(!fx.iter().any(|e| matches!(e, Effect::FetchPreview { .. })));
}

#[test]
fn attachments_are_sanitized_and_files_only_messages_notify_by_name() {
    let mut w = world();
    let fx = w.send(Event::Message {
        message: msg_with(
            3,
            1,
            "bob",
            "",
            25,
            vec![attachment(
                "x",
                "\x1b]0;pwned\x07re\u{202e}port\x1b[2J.txt",
                2_100_000,
                "text/\x1b[31mplain",
            )],
        ),
        conversation: direct(3, "bob", 1),
        replayed: false,
    });
    let m = &w.state.conv(3).unwrap().messages[&1];
    assert_eq!(m.attachments[0].name, "report.txt");
    assert_eq!(m.attachments[0].mime, "text/plain");
    assert!(
        fx.contains(&Effect::Notify {
            title: "bob".into(),
            body: "sent report.txt (2.1 MB)".into()
        }),
        "{fx:?}"
    );
}
