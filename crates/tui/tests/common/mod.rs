//! Fixtures: a state driven only by injected events, at fixed times.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use natter_protocol::{ConversationInfo, ConversationKind, Message};
use natter_tui::event::{Event, LinkEvent, Page};
use natter_tui::{Config, Effect, State, update};
use time::OffsetDateTime;
use time::macros::datetime;

pub const T0: OffsetDateTime = datetime!(2026-11-27 23:50 UTC);

pub fn at(minutes: i64) -> OffsetDateTime {
    T0 + time::Duration::minutes(minutes)
}

pub fn group(id: i64, name: &str, last_seq: i64) -> ConversationInfo {
    ConversationInfo {
        id,
        kind: ConversationKind::Group,
        name: Some(name.into()),
        peer: None,
        last_seq,
        last_activity: at(id),
        member_count: 3,
    }
}

pub fn direct(id: i64, peer: &str, last_seq: i64) -> ConversationInfo {
    ConversationInfo {
        id,
        kind: ConversationKind::Direct,
        name: None,
        peer: Some(peer.into()),
        last_seq,
        last_activity: at(id),
        member_count: 2,
    }
}

pub fn msg(conv: i64, seq: i64, sender: &str, text: &str, minute: i64) -> Message {
    Message {
        id: conv * 100_000 + seq,
        conversation_id: conv,
        seq,
        sender: sender.into(),
        text: text.into(),
        sent_at: at(minute),
        client_id: format!("c-{conv}-{seq}"),
        event: None,
        attachments: Vec::new(),
    }
}

/// A test world: the state and the clock.
pub struct World {
    pub state: State,
    pub now: Instant,
    pub wall: OffsetDateTime,
}

impl World {
    pub fn new() -> World {
        let now = Instant::now();
        let mut state = State::new("alice", "http://127.0.0.1:7600", Config::default(), now);
        state.wall = at(30);
        World {
            state,
            now,
            wall: at(30),
        }
    }

    pub fn send(&mut self, ev: Event) -> Vec<Effect> {
        update(&mut self.state, ev)
    }

    pub fn key(&mut self, code: KeyCode) -> Vec<Effect> {
        self.send(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    pub fn ctrl(&mut self, c: char) -> Vec<Effect> {
        self.send(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        )))
    }

    pub fn alt(&mut self, code: KeyCode) -> Vec<Effect> {
        self.send(Event::Key(KeyEvent::new(code, KeyModifiers::ALT)))
    }

    pub fn type_text(&mut self, s: &str) -> Vec<Effect> {
        let mut fx = Vec::new();
        for c in s.chars() {
            fx.extend(self.key(KeyCode::Char(c)));
        }
        fx
    }

    pub fn tick(&mut self, secs: u64) -> Vec<Effect> {
        self.now += Duration::from_secs(secs);
        self.wall += time::Duration::seconds(secs as i64);
        self.send(Event::Tick {
            now: self.now,
            wall: self.wall,
        })
    }

    pub fn online(&mut self) -> Vec<Effect> {
        self.send(Event::Link(LinkEvent::Online))
    }

    pub fn history(&mut self, conv: i64, messages: Vec<Message>) -> Vec<Effect> {
        self.send(Event::History {
            conversation_id: conv,
            messages,
            page: Page::Latest,
        })
    }

    pub fn selected_target(&self) -> String {
        self.state
            .current()
            .map(|c| c.target.clone())
            .unwrap_or_default()
    }
}

/// Four conversations: groups dev (1) and ops (2), direct bob (3) and carol (4). ops is
/// the most recently active, so it is selected, and its history is loaded.
pub fn world() -> World {
    let mut w = World::new();
    w.online();
    let fx = w.send(Event::Conversations(vec![
        group(1, "dev", 1),
        group(2, "ops", 6),
        direct(3, "bob", 0),
        direct(4, "carol", 0),
    ]));
    assert!(
        fx.contains(&Effect::LoadLatest { conversation_id: 4 }),
        "the latest active conversation (carol, id 4) is opened: {fx:?}"
    );
    w.send(Event::Key(KeyEvent::new(
        KeyCode::Char('2'),
        KeyModifiers::ALT,
    )));
    assert_eq!(w.selected_target(), "ops");
    w.history(
        2,
        vec![
            msg(2, 1, "bob", "morning all", 0),
            msg(2, 2, "bob", "deploy is at noon", 1),
            msg(2, 3, "carol", "I'll watch the dashboards 📈", 3),
            msg(2, 4, "alice", "thanks! I'll write the notes", 15),
            msg(2, 5, "alice", "and ping the channel after", 16),
            msg(2, 6, "bob", "👍 日本語も大丈夫", 20),
        ],
    );
    w
}

/// The screen as text, with clock times (`12:34`) redacted.
pub fn redact(screen: &str) -> String {
    let chars: Vec<char> = screen.chars().collect();
    let mut out = String::with_capacity(screen.len());
    let mut i = 0;
    while i < chars.len() {
        let is_time = i + 5 <= chars.len()
            && chars[i].is_ascii_digit()
            && chars[i + 1].is_ascii_digit()
            && chars[i + 2] == ':'
            && chars[i + 3].is_ascii_digit()
            && chars[i + 4].is_ascii_digit()
            && (i == 0 || !chars[i - 1].is_ascii_digit());
        if is_time {
            out.push_str("HH:MM");
            i += 5;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// An attachment as the server describes it.
pub fn attachment(id: &str, name: &str, size: u64, mime: &str) -> natter_protocol::Attachment {
    natter_protocol::Attachment {
        id: id.into(),
        name: name.into(),
        size,
        mime: mime.into(),
        hash: "0".repeat(64),
        width: None,
        height: None,
        thumbnail: false,
    }
}

/// An image attachment with a server thumbnail.
pub fn image_attachment(id: &str, name: &str, w: u32, h: u32) -> natter_protocol::Attachment {
    natter_protocol::Attachment {
        width: Some(w),
        height: Some(h),
        thumbnail: true,
        ..attachment(id, name, 184_320, "image/png")
    }
}

/// A message carrying files.
pub fn msg_with(
    conv: i64,
    seq: i64,
    sender: &str,
    text: &str,
    minute: i64,
    files: Vec<natter_protocol::Attachment>,
) -> Message {
    Message {
        attachments: files,
        ..msg(conv, seq, sender, text, minute)
    }
}

/// A PNG thumbnail: a deterministic gradient, `w` x `h` pixels.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}
