//! What `natter` prints: JSON objects (one per line, exact text) for programs and
//! sanitized lines for people. The JSON shapes are documented in `docs/CLI.md`.

use std::sync::OnceLock;

use natter_client_core::OutboxEntry;
use natter_protocol::sanitize::{single_line, terminal};
use natter_protocol::{
    Attachment, ConversationInfo, ConversationKind, GroupInfo, Message, UserInfo, human_size,
};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Records the local UTC offset. Must run while the process is single-threaded (the
/// `time` crate refuses to read it otherwise); falls back to UTC.
pub fn init_local_offset() {
    let offset = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(offset);
}

fn local(t: OffsetDateTime) -> OffsetDateTime {
    t.to_offset(*LOCAL_OFFSET.get().unwrap_or(&UtcOffset::UTC))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `HH:MM` for today, `YYYY-MM-DD HH:MM` otherwise (local time).
pub fn short_time(t: OffsetDateTime) -> String {
    let t = local(t);
    let today = local(OffsetDateTime::now_utc()).date();
    let fmt = if t.date() == today {
        format_description!("[hour]:[minute]")
    } else {
        format_description!("[year]-[month]-[day] [hour]:[minute]")
    };
    t.format(&fmt).unwrap_or_default()
}

/// Whether to color human output: stdout is a terminal and `NO_COLOR` is unset.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        Style {
            color: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// `{"type":"message",...}`: the object `listen --json` and `history --json` print.
#[derive(Debug, Serialize)]
pub struct MessageJson<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub conversation: &'a str,
    pub conversation_id: i64,
    pub id: i64,
    pub seq: i64,
    pub sender: &'a str,
    pub text: &'a str,
    pub sent_at: String,
    pub client_id: &'a str,
    /// Only in `send --json`: the server had stored this client id before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// Only for timeline events (membership and settings changes of a group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a natter_protocol::TimelineEvent>,
    /// Only when the message carries files: the attachment objects, exact.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub attachments: &'a [Attachment],
}

impl<'a> MessageJson<'a> {
    pub fn new(target: &'a str, m: &'a Message) -> Self {
        MessageJson {
            kind: "message",
            conversation: target,
            conversation_id: m.conversation_id,
            id: m.id,
            seq: m.seq,
            sender: &m.sender,
            text: &m.text,
            sent_at: rfc3339(m.sent_at),
            client_id: &m.client_id,
            duplicate: None,
            event: m.event.as_ref(),
            attachments: &m.attachments,
        }
    }
}

pub fn message_json(target: &str, m: &Message) -> String {
    json_line(&MessageJson::new(target, m))
}

/// `[HH:MM] ops <alice> text`, sanitized; continuation lines are indented under the text.
pub fn message_human(target: &str, m: &Message, style: Style) -> String {
    let time = format!("[{}]", short_time(m.sent_at));
    let target = single_line(target);
    let sender = single_line(&m.sender);
    let plain_prefix = format!("{time} {target} <{sender}> ");
    let prefix = format!(
        "{} {} {} ",
        style.paint("2", &time),
        style.paint("36", &target),
        style.paint("1", &format!("<{sender}>"))
    );
    if m.event.is_some() {
        // A membership or settings change: `[12:00] ops * alice added bob`.
        return format!(
            "{} {} {}",
            style.paint("2", &time),
            style.paint("36", &target),
            style.paint("2", &format!("* {}", single_line(&m.text)))
        );
    }
    let indent = " ".repeat(plain_prefix.chars().count());
    let text = terminal(&m.text);
    let mut out = prefix;
    let mut first = true;
    if !text.is_empty() || m.attachments.is_empty() {
        for line in text.split('\n') {
            if !first {
                out.push('\n');
                out.push_str(&indent);
            }
            out.push_str(line);
            first = false;
        }
    }
    // Each file on a line of its own, under the text (or in its place).
    for a in &m.attachments {
        if !first {
            out.push('\n');
            out.push_str(&indent);
        }
        out.push_str(&attachment_human(a, style));
        first = false;
    }
    out
}

/// `📎 build.log (2.1 MB, text/plain) id 0193...`, with `, 800×600` for images. Every
/// part is from the network, so every part is sanitized.
pub fn attachment_human(a: &Attachment, style: Style) -> String {
    let dims = match (a.width, a.height) {
        (Some(w), Some(h)) => format!(", {w}×{h}"),
        _ => String::new(),
    };
    format!(
        "📎 {} ({}, {}{dims}) {}",
        style.paint("1", &single_line(&a.name)),
        human_size(a.size),
        single_line(&a.mime),
        style.paint("2", &format!("id {}", single_line(&a.id)))
    )
}

/// `{"type":"download",...}`: what `download --json` prints.
pub fn download_json(r: &natter_client_core::DownloadReport) -> String {
    #[derive(Serialize)]
    struct Download<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        path: String,
        attachment: &'a Attachment,
        resumed_from: u64,
        received: u64,
    }
    json_line(&Download {
        kind: "download",
        path: r.path.to_string_lossy().into_owned(),
        attachment: &r.attachment,
        resumed_from: r.resumed_from,
        received: r.received,
    })
}

#[derive(Debug, Serialize)]
struct ConversationJson {
    #[serde(rename = "type")]
    kind: &'static str,
    conversation: String,
    conversation_id: i64,
    #[serde(rename = "kind")]
    conversation_kind: ConversationKind,
    last_seq: i64,
    last_activity: String,
    member_count: u32,
}

pub fn conversation_json(c: &ConversationInfo) -> String {
    json_line(&ConversationJson {
        kind: "conversation",
        conversation: c.target(),
        conversation_id: c.id,
        conversation_kind: c.kind,
        last_seq: c.last_seq,
        last_activity: rfc3339(c.last_activity),
        member_count: c.member_count,
    })
}

pub fn conversation_human(c: &ConversationInfo) -> String {
    let kind = match c.kind {
        ConversationKind::Direct => "direct",
        ConversationKind::Group => "group",
    };
    let members = if c.member_count == 1 {
        "member"
    } else {
        "members"
    };
    format!(
        "{:<20} {:<6} {:>4} {members:<7}  {:>5} messages  last {}",
        single_line(&c.target()),
        kind,
        c.member_count,
        c.last_seq,
        short_time(c.last_activity)
    )
}

pub fn removed_json(target: Option<&str>, conversation_id: i64) -> String {
    #[derive(Serialize)]
    struct Removed<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        conversation: Option<&'a str>,
        conversation_id: i64,
    }
    json_line(&Removed {
        kind: "removed",
        conversation: target,
        conversation_id,
    })
}

#[derive(Debug, Serialize)]
struct GroupJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    conversation_id: i64,
    created_at: String,
    members: &'a [natter_protocol::MemberInfo],
    topic: &'a str,
}

pub fn group_json(g: &GroupInfo) -> String {
    json_line(&GroupJson {
        kind: "group",
        name: &g.name,
        conversation_id: g.id,
        created_at: rfc3339(g.created_at),
        members: &g.members,
        topic: &g.topic,
    })
}

/// `ops  3 members  (owner: alice)` for `group list`.
pub fn group_line(g: &GroupInfo, me: &str) -> String {
    let owner = g
        .members
        .iter()
        .find(|m| m.role == natter_protocol::Role::Owner)
        .map(|m| single_line(&m.username))
        .unwrap_or_else(|| "-".into());
    let mine = g
        .members
        .iter()
        .find(|m| m.username == me)
        .map(|m| m.role.as_str())
        .unwrap_or("-");
    let n = g.members.len();
    let members = if n == 1 { "member" } else { "members" };
    format!(
        "{:<20} {n:>4} {members:<7}  owner {owner}  you: {mine}",
        single_line(&g.name)
    )
}

/// Several lines for `group info`: the name, then each member with their role.
pub fn group_info_human(g: &GroupInfo) -> String {
    let mut out = format!(
        "{}  (created {}, {} {})",
        single_line(&g.name),
        short_time(g.created_at),
        g.members.len(),
        if g.members.len() == 1 {
            "member"
        } else {
            "members"
        }
    );
    let width = g
        .members
        .iter()
        .map(|m| m.username.chars().count())
        .max()
        .unwrap_or(0);
    for m in &g.members {
        out.push_str(&format!(
            "\n  {:<width$}  {}",
            single_line(&m.username),
            m.role.as_str()
        ));
    }
    if !g.topic.is_empty() {
        out.push_str(&format!("\n  topic: {}", single_line(&g.topic)));
    }
    out
}

pub fn user_json(u: &UserInfo, server: &str) -> String {
    #[derive(Serialize)]
    struct User<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        username: &'a str,
        id: i64,
        is_admin: bool,
        server: &'a str,
    }
    json_line(&User {
        kind: "user",
        username: &u.username,
        id: u.id,
        is_admin: u.is_admin,
        server,
    })
}

pub fn outbox_json(e: &OutboxEntry) -> String {
    #[derive(Serialize)]
    struct Outbox<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        client_id: &'a str,
        conversation: &'a str,
        text: &'a str,
        /// Upload ids of the files the message carries.
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        attachments: &'a [String],
        created_at: String,
    }
    json_line(&Outbox {
        kind: "outbox",
        client_id: &e.client_id,
        conversation: &e.target,
        text: &e.text,
        attachments: &e.attachments,
        created_at: rfc3339(e.created_at),
    })
}

pub fn outbox_human(e: &OutboxEntry) -> String {
    let files = match e.attachments.len() {
        0 => String::new(),
        1 => "  (+1 file)".into(),
        n => format!("  (+{n} files)"),
    };
    format!(
        "{}  [{}] {}  {}{files}",
        e.client_id,
        short_time(e.created_at),
        single_line(&e.target),
        single_line(&e.text)
    )
}

fn json_line<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn msg(text: &str) -> Message {
        Message {
            id: 42,
            conversation_id: 3,
            seq: 7,
            sender: "alice".into(),
            text: text.into(),
            sent_at: datetime!(2026-11-28 12:00 UTC),
            client_id: "0193".into(),
            event: None,
            attachments: Vec::new(),
        }
    }

    #[test]
    fn message_json_has_the_documented_shape() {
        assert_eq!(
            message_json("@alice", &msg("hi \u{1b}[31m\n")),
            r#"{"type":"message","conversation":"@alice","conversation_id":3,"id":42,"seq":7,"sender":"alice","text":"hi \u001b[31m\n","sent_at":"2026-11-28T12:00:00Z","client_id":"0193"}"#
        );
    }

    #[test]
    fn human_output_is_sanitized_and_indented() {
        let mut m = msg("one\x1b]0;pwned\x07\ntwo\r");
        m.sent_at = datetime!(2020-01-02 03:04 UTC);
        let line = message_human("ops", &m, Style { color: false });
        let prefix = "[2020-01-02 03:04] ops <alice> ";
        assert_eq!(
            line,
            format!("{prefix}one\n{}two", " ".repeat(prefix.len()))
        );
    }

    fn png(name: &str) -> Attachment {
        Attachment {
            id: "0193-a".into(),
            name: name.into(),
            size: 2_100_000,
            mime: "image/png".into(),
            hash: "ab".repeat(32),
            width: Some(800),
            height: Some(600),
            thumbnail: true,
        }
    }

    #[test]
    fn attachments_are_in_json_and_each_on_its_own_human_line() {
        let mut m = msg("logs");
        m.sent_at = datetime!(2020-01-02 03:04 UTC);
        m.attachments = vec![png("shot.png"), png("\x1b]0;pwned\x07evil\x1b[2J.png")];
        let j: serde_json::Value = serde_json::from_str(&message_json("@alice", &m)).unwrap();
        assert_eq!(j["attachments"][0]["name"], "shot.png");
        assert_eq!(j["attachments"][0]["width"], 800);
        assert_eq!(j["attachments"][0]["thumbnail"], true);
        assert_eq!(
            j["attachments"][1]["name"], "\x1b]0;pwned\x07evil\x1b[2J.png",
            "--json keeps the exact name"
        );
        let prefix = "[2020-01-02 03:04] @alice <alice> ";
        let pad = " ".repeat(prefix.len());
        assert_eq!(
            message_human("@alice", &m, Style { color: false }),
            format!(
                "{prefix}logs\n{pad}📎 shot.png (2.1 MB, image/png, 800×600) id 0193-a\n\
                 {pad}📎 evil.png (2.1 MB, image/png, 800×600) id 0193-a"
            )
        );
        // Files alone: the first one takes the text's place.
        m.text.clear();
        m.attachments.truncate(1);
        assert_eq!(
            message_human("@alice", &m, Style { color: false }),
            format!("{prefix}📎 shot.png (2.1 MB, image/png, 800×600) id 0193-a")
        );
    }

    #[test]
    fn conversation_json_shape() {
        let c = ConversationInfo {
            id: 3,
            kind: ConversationKind::Group,
            name: Some("ops".into()),
            peer: None,
            last_seq: 7,
            last_activity: datetime!(2026-11-28 12:00 UTC),
            member_count: 3,
        };
        assert_eq!(
            conversation_json(&c),
            r#"{"type":"conversation","conversation":"ops","conversation_id":3,"kind":"group","last_seq":7,"last_activity":"2026-11-28T12:00:00Z","member_count":3}"#
        );
    }
}
