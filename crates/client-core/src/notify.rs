//! Desktop notifications: what to show for incoming messages, and showing it over D-Bus
//! (`org.freedesktop.Notifications`, through notify-rust's pure-Rust zbus client).
//!
//! The pieces are separate so that `natter notify` and the TUI share them:
//! - [`Filter`]: whether a message may notify at all: not your own, not in a muted
//!   conversation, not under do-not-disturb (all kept server-side, so every device agrees).
//! - [`Burst`]: collects messages for a moment; a few become one notification each, many
//!   arriving at once (a catch-up after sleep) become one grouped notification.
//! - [`render`]: the text, made safe: control characters and escape sequences removed
//!   ([`natter_protocol::sanitize`]), markup escaped (notification servers interpret
//!   `<b>`, `<a href>` and `<img>` in bodies), length capped. A message with files names
//!   them in the summary ("alice sent build.log (2.1 MB)"); its text, if any, is the body.
//! - [`Desktop`]: sends notifications; [`Desktop::show`] reports a missing service once.

use std::collections::HashMap;
use std::time::Duration;

use natter_protocol::{Attachment, sanitize};
use natter_protocol::{ConversationId, ConversationKind, ConversationState, Settings, human_size};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::connection::MessageEvent;

/// Longest summary line, in characters (an ellipsis marks a cut).
pub const MAX_SUMMARY_CHARS: usize = 80;
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 300;
/// More messages than this in one burst become one grouped notification.
pub const GROUP_ABOVE: usize = 3;
/// How long a burst collects messages after its first one.
pub const BURST_WINDOW: Duration = Duration::from_millis(500);
/// Longest file name in a notification, in characters: a long name must not push the
/// size (and the rest of the summary) out of [`MAX_SUMMARY_CHARS`].
pub const MAX_FILE_NAME_CHARS: usize = 40;

/// One notification's text, already sanitized, escaped and capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationText {
    pub summary: String,
    pub body: String,
    /// The conversation it is about, when it is about one (`@alice`, `ops`).
    pub target: Option<String>,
}

/// Escapes the markup notification servers interpret (`&`, `<`, `>`, quotes).
pub fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `s` to `max` characters, marking the cut with an ellipsis.
fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Plain text from the network made fit for a notification: sanitized, capped, escaped
/// (capped before escaping, so an entity is never cut in half).
fn safe(s: &str, max: usize, one_line: bool) -> String {
    let clean = if one_line {
        sanitize::single_line(s)
    } else {
        sanitize::terminal(s).into_owned()
    };
    escape_markup(&cap(clean.trim(), max))
}

/// What a message's files are, in a few words: `build.log (2.1 MB)`, or `build.log and 2
/// more files (5.3 MB)` with the total size; `None` without files. Sanitized, not escaped.
pub fn files_phrase(files: &[Attachment]) -> Option<String> {
    let first = files.first()?;
    let name = cap(
        sanitize::single_line(&first.name).trim(),
        MAX_FILE_NAME_CHARS,
    );
    let total: u64 = files.iter().map(|a| a.size).sum();
    Some(match files.len() {
        1 => format!("{name} ({})", human_size(total)),
        2 => format!("{name} and 1 more file ({})", human_size(total)),
        n => format!("{name} and {} more files ({})", n - 1, human_size(total)),
    })
}

/// `alice`, `alice in ops`; with files `alice sent build.log (2.1 MB)`, `alice in ops sent
/// build.log (2.1 MB)`.
fn summary_for(ev: &MessageEvent) -> String {
    let who = match ev.conversation.kind {
        ConversationKind::Direct => ev.message.sender.clone(),
        ConversationKind::Group => format!("{} in {}", ev.message.sender, ev.target),
    };
    match files_phrase(&ev.message.attachments) {
        Some(files) => format!("{who} sent {files}"),
        None => who,
    }
}

/// The body of a single message's notification: its text; for a message of several
/// files and no text, their names and sizes one per line.
fn body_for(ev: &MessageEvent) -> String {
    let m = &ev.message;
    if !m.text.trim().is_empty() || m.attachments.len() < 2 {
        return m.text.clone();
    }
    m.attachments
        .iter()
        .map(|a| {
            format!(
                "{} ({})",
                cap(sanitize::single_line(&a.name).trim(), MAX_FILE_NAME_CHARS),
                human_size(a.size)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of a grouped notification: `alice: text`, `alice sent build.log (2.1 MB)`,
/// `alice sent build.log (2.1 MB): text`.
fn line_for(ev: &MessageEvent) -> String {
    let text = sanitize::single_line(&ev.message.text);
    match files_phrase(&ev.message.attachments) {
        None => format!("{}: {text}", ev.message.sender),
        Some(files) if text.trim().is_empty() => format!("{} sent {files}", ev.message.sender),
        Some(files) => format!("{} sent {files}: {text}", ev.message.sender),
    }
}

/// The notifications for a burst of messages: one each for up to [`GROUP_ABOVE`],
/// otherwise one that groups them.
pub fn render(burst: &[MessageEvent]) -> Vec<NotificationText> {
    if burst.len() <= GROUP_ABOVE {
        return burst
            .iter()
            .map(|ev| NotificationText {
                summary: safe(&summary_for(ev), MAX_SUMMARY_CHARS, true),
                body: safe(&body_for(ev), MAX_BODY_CHARS, false),
                target: Some(ev.target.clone()),
            })
            .collect();
    }
    // Conversations in order of their first message in the burst.
    let mut order: Vec<&str> = Vec::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for ev in burst {
        let n = counts.entry(ev.target.as_str()).or_default();
        if *n == 0 {
            order.push(&ev.target);
        }
        *n += 1;
    }
    let n = burst.len();
    if order.len() == 1 {
        let first = &burst[0];
        let summary = match first.conversation.kind {
            ConversationKind::Direct => format!("{n} new messages from {}", first.message.sender),
            ConversationKind::Group => format!("{n} new messages in {}", first.target),
        };
        // The latest few lines, each on one line.
        let lines: Vec<String> = burst
            .iter()
            .rev()
            .take(GROUP_ABOVE)
            .rev()
            .map(line_for)
            .collect();
        return vec![NotificationText {
            summary: safe(&summary, MAX_SUMMARY_CHARS, true),
            body: safe(&lines.join("\n"), MAX_BODY_CHARS, false),
            target: Some(first.target.clone()),
        }];
    }
    let summary = format!("{n} new messages in {} conversations", order.len());
    let body: Vec<String> = order
        .iter()
        .map(|t| format!("{}: {}", sanitize::single_line(t), counts[t]))
        .collect();
    vec![NotificationText {
        summary: safe(&summary, MAX_SUMMARY_CHARS, true),
        body: safe(&body.join("\n"), MAX_BODY_CHARS, false),
        target: None,
    }]
}

/// Whether a message may raise a notification: the user's server-side settings and
/// mutes, kept current from the event stream.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub settings: Settings,
    /// Muted conversations: `None` until unmuted, `Some(t)` until `t`.
    muted: HashMap<ConversationId, Option<OffsetDateTime>>,
}

impl Filter {
    pub fn new(settings: Settings, states: &[ConversationState]) -> Filter {
        let mut f = Filter {
            settings,
            muted: HashMap::new(),
        };
        for s in states {
            f.update(s);
        }
        f
    }

    /// Takes a conversation's new state (muted or unmuted elsewhere).
    pub fn update(&mut self, state: &ConversationState) {
        if state.muted {
            self.muted.insert(state.conversation_id, state.muted_until);
        } else {
            self.muted.remove(&state.conversation_id);
        }
    }

    pub fn is_muted(&self, conversation: ConversationId, now: OffsetDateTime) -> bool {
        match self.muted.get(&conversation) {
            Some(None) => true,
            Some(Some(until)) => *until > now,
            None => false,
        }
    }

    /// True when `ev` should notify `me`. Timeline events ("alice added bob") do not
    /// notify: they are bookkeeping, not someone writing to you.
    pub fn allows(&self, ev: &MessageEvent, me: &str) -> bool {
        !self.settings.do_not_disturb
            && ev.message.event.is_none()
            && ev.message.sender != me
            && !self.is_muted(ev.conversation.id, OffsetDateTime::now_utc())
    }
}

/// Messages waiting to be shown together; see [`BURST_WINDOW`].
#[derive(Debug, Default)]
pub struct Burst {
    items: Vec<MessageEvent>,
    due: Option<Instant>,
}

/// A burst never holds more than this many messages (bounded memory); older ones are
/// still counted in the grouped notification through the ones kept.
const MAX_BURST: usize = 1000;

impl Burst {
    pub fn push(&mut self, ev: MessageEvent) {
        if self.items.len() < MAX_BURST {
            self.items.push(ev);
        }
        if self.due.is_none() {
            self.due = Some(Instant::now() + BURST_WINDOW);
        }
    }

    /// When the burst should be shown, if it has anything.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Empties the burst into the notifications to show.
    pub fn take(&mut self) -> Vec<NotificationText> {
        self.due = None;
        render(&std::mem::take(&mut self.items))
    }
}

/// Why a notification could not be shown.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(String);

/// The desktop's notification service.
#[derive(Debug)]
pub struct Desktop {
    app_name: String,
    /// Whether the last attempt failed (so a missing service is reported once, and its
    /// return once).
    failing: bool,
}

/// What happened to a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Yes,
    /// Not shown; `first` is true for the first failure in a row (say so once).
    No {
        reason: String,
        first: bool,
    },
    /// Shown again after failures (the service came back).
    Recovered,
}

impl Desktop {
    pub fn new(app_name: &str) -> Desktop {
        Desktop {
            app_name: app_name.to_string(),
            failing: false,
        }
    }

    /// Sends one notification to the session bus's notification service.
    pub async fn send(&self, n: &NotificationText) -> Result<(), NotifyError> {
        let mut notification = notify_rust::Notification::new();
        notification
            .appname(&self.app_name)
            .summary(&n.summary)
            .body(&n.body)
            .icon("mail-message-new");
        notification
            .show_async()
            .await
            .map(drop)
            .map_err(|e| NotifyError(e.to_string()))
    }

    /// Shows `n`, tracking failures so the caller can report a missing service once.
    pub async fn show(&mut self, n: &NotificationText) -> Shown {
        match self.send(n).await {
            Ok(()) if self.failing => {
                self.failing = false;
                Shown::Recovered
            }
            Ok(()) => Shown::Yes,
            Err(e) => {
                let first = !self.failing;
                self.failing = true;
                Shown::No {
                    reason: e.to_string(),
                    first,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::{ConversationInfo, Message};
    use time::macros::datetime;

    use super::*;

    fn ev(kind: ConversationKind, target: &str, sender: &str, text: &str) -> MessageEvent {
        let conversation = ConversationInfo {
            id: if target == "ops" { 3 } else { 4 },
            kind,
            name: (kind == ConversationKind::Group).then(|| target.to_string()),
            peer: (kind == ConversationKind::Direct).then(|| sender.to_string()),
            last_seq: 1,
            last_activity: datetime!(2026-11-28 12:00 UTC),
            member_count: 3,
        };
        MessageEvent {
            target: target.to_string(),
            message: Message {
                id: 1,
                conversation_id: conversation.id,
                seq: 1,
                sender: sender.to_string(),
                text: text.to_string(),
                sent_at: datetime!(2026-11-28 12:00 UTC),
                client_id: "c".into(),
                event: None,
                attachments: Vec::new(),
            },
            conversation,
            replayed: false,
        }
    }

    #[test]
    fn text_is_sanitized_escaped_and_capped() {
        let nasty = "\x1b]0;pwned\x07<b>bold</b> & <a href=\"x\">link</a>\x1b[31m\r";
        let out = render(&[ev(ConversationKind::Group, "ops", "alice", nasty)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, "alice in ops");
        assert_eq!(
            out[0].body,
            "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=&quot;x&quot;&gt;link&lt;/a&gt;"
        );
        let long = render(&[ev(
            ConversationKind::Direct,
            "@bob",
            "bob",
            &"é".repeat(1000),
        )]);
        assert_eq!(long[0].body.chars().count(), MAX_BODY_CHARS);
        assert!(long[0].body.ends_with('…'));
        assert_eq!(long[0].summary, "bob");
    }

    fn file(name: &str, size: u64) -> Attachment {
        Attachment {
            id: "0193".into(),
            name: name.into(),
            size,
            mime: "text/plain".into(),
            hash: "0".repeat(64),
            width: None,
            height: None,
            thumbnail: false,
        }
    }

    fn with_files(mut e: MessageEvent, files: Vec<Attachment>) -> MessageEvent {
        e.message.attachments = files;
        e
    }

    #[test]
    fn files_are_named_in_the_summary_and_text_stays_the_body() {
        let one = with_files(
            ev(ConversationKind::Direct, "@alice", "alice", ""),
            vec![file("build.log", 2_100_000)],
        );
        let n = &render(std::slice::from_ref(&one))[0];
        assert_eq!(n.summary, "alice sent build.log (2.1 MB)");
        assert_eq!(n.body, "");

        let three = with_files(
            ev(
                ConversationKind::Group,
                "ops",
                "alice",
                "logs <b>attached</b>",
            ),
            vec![
                file("build.log", 2_100_000),
                file("test.log", 3_000_000),
                file("x", 200_000),
            ],
        );
        let n = &render(std::slice::from_ref(&three))[0];
        assert_eq!(
            n.summary,
            "alice in ops sent build.log and 2 more files (5.3 MB)"
        );
        assert_eq!(
            n.body, "logs &lt;b&gt;attached&lt;/b&gt;",
            "the text is the body"
        );

        // Without text, several files are listed in the body.
        let mut bare = three.clone();
        bare.message.text.clear();
        let n = &render(&[bare])[0];
        assert_eq!(
            n.body,
            "build.log (2.1 MB)\ntest.log (3.0 MB)\nx (200.0 kB)"
        );

        let two = with_files(
            ev(ConversationKind::Direct, "@alice", "alice", ""),
            vec![file("a", 1), file("b", 1)],
        );
        assert_eq!(
            render(&[two])[0].summary,
            "alice sent a and 1 more file (2 B)"
        );
    }

    #[test]
    fn hostile_file_names_are_sanitized_escaped_and_capped() {
        let evil = format!(
            "\x1b]0;pwned\x07<img src=x>{}\x1b[2J.txt",
            "n".repeat(10_000)
        );
        let e = with_files(
            ev(ConversationKind::Direct, "@mallory", "mallory", ""),
            vec![file(&evil, 10)],
        );
        let n = &render(&[e])[0];
        assert!(
            !n.summary.contains(['\x1b', '\x07', '<', '>']),
            "{:?}",
            n.summary
        );
        assert!(n.summary.starts_with("mallory sent &lt;img src=x&gt;nnn"));
        assert!(
            n.summary.chars().count() <= MAX_SUMMARY_CHARS,
            "{:?}",
            n.summary
        );
        // The name is cut, not the size.
        assert!(n.summary.ends_with("… (10 B)"), "{:?}", n.summary);
    }

    #[test]
    fn grouped_lines_mention_files() {
        let mut burst: Vec<_> = (0..3)
            .map(|i| ev(ConversationKind::Group, "ops", "alice", &format!("m{i}")))
            .collect();
        burst.push(with_files(
            ev(ConversationKind::Group, "ops", "bob", ""),
            vec![file("build.log", 2_100_000)],
        ));
        burst.push(with_files(
            ev(ConversationKind::Group, "ops", "carol", "see"),
            vec![file("a.png", 1000)],
        ));
        let one = render(&burst);
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].body,
            "alice: m2\nbob sent build.log (2.1 MB)\ncarol sent a.png (1.0 kB): see"
        );
    }

    #[test]
    fn bursts_group_above_the_threshold() {
        let few: Vec<_> = (0..3)
            .map(|i| ev(ConversationKind::Group, "ops", "alice", &format!("m{i}")))
            .collect();
        assert_eq!(render(&few).len(), 3);
        let many: Vec<_> = (0..5)
            .map(|i| ev(ConversationKind::Group, "ops", "alice", &format!("m{i}")))
            .collect();
        let one = render(&many);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].summary, "5 new messages in ops");
        assert_eq!(one[0].body, "alice: m2\nalice: m3\nalice: m4");
        let mut mixed = many.clone();
        mixed.push(ev(ConversationKind::Direct, "@bob", "bob", "hi"));
        let one = render(&mixed);
        assert_eq!(one[0].summary, "6 new messages in 2 conversations");
        assert_eq!(one[0].body, "ops: 5\n@bob: 1");
    }

    #[test]
    fn filter_honours_mutes_dnd_and_own_messages() {
        let m = ev(ConversationKind::Group, "ops", "alice", "hi");
        let state = |muted: bool, until: Option<OffsetDateTime>| ConversationState {
            conversation_id: 3,
            last_seq: 1,
            read_seq: 0,
            unread: 1,
            muted,
            muted_until: until,
            online: 0,
        };
        let mut f = Filter::new(Settings::default(), &[]);
        assert!(f.allows(&m, "bob"));
        assert!(!f.allows(&m, "alice"), "own message");
        f.update(&state(true, None));
        assert!(!f.allows(&m, "bob"));
        f.update(&state(true, Some(datetime!(2000-01-01 0:00 UTC))));
        assert!(f.allows(&m, "bob"), "the timed mute is over");
        f.update(&state(false, None));
        f.settings.do_not_disturb = true;
        assert!(!f.allows(&m, "bob"));
    }
}
