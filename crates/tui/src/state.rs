//! Everything the screen shows, as plain data: [`State`] and its parts. Text from the
//! network is sanitized on the way in ([`clean`], [`clean_line`]), so every string held
//! here is safe to put on a terminal.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use natter_protocol::{
    ConversationId, ConversationInfo, ConversationKind, Message, MessageId, PresenceState,
    ReceiptKind, Seq, sanitize,
};
use time::{OffsetDateTime, UtcOffset};

use crate::config::Config;
use crate::files::{Att, FileSel, Transfer};
use crate::input::{Editor, History};
use crate::preview::Previews;

/// Multi-line untrusted text made safe: escape sequences and controls removed (newlines
/// kept), tabs expanded so that the width of every cell is known.
pub fn clean(s: &str) -> String {
    sanitize::terminal(s).replace('\t', "    ")
}

/// One-line untrusted text (names) made safe.
pub fn clean_line(s: &str) -> String {
    sanitize::single_line(s)
}

/// How far one of the user's own messages got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Receipts {
    /// Other members with a device that has it.
    pub delivered: u32,
    /// Other members who read it.
    pub read: u32,
    /// Other members in the conversation (0 while unknown).
    pub of: u32,
}

/// The marker shown next to the user's own messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Pending,
    Failed,
    Sent,
    Delivered,
    Read,
}

/// One message in a timeline: stored (with a seq) or the user's own, waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub id: Option<MessageId>,
    pub seq: Option<Seq>,
    pub client_id: String,
    pub sender: String,
    pub text: String,
    pub sent_at: OffsetDateTime,
    /// Why the server refused it for good (local messages only).
    pub failed: Option<String>,
    pub receipts: Receipts,
    /// A membership or settings change ("bob added carol"), shown as a quiet line.
    pub system: bool,
    /// Files it carries, in the order sent.
    pub attachments: Vec<Att>,
}

impl Msg {
    pub fn from_message(m: &Message) -> Msg {
        Msg {
            id: Some(m.id),
            seq: Some(m.seq),
            client_id: m.client_id.clone(),
            sender: clean_line(&m.sender),
            text: clean(&m.text),
            sent_at: m.sent_at,
            failed: None,
            receipts: Receipts::default(),
            system: m.event.is_some(),
            attachments: m.attachments.iter().map(Att::from_attachment).collect(),
        }
    }

    /// Has an attachment with a preview to show.
    pub fn has_preview(&self) -> bool {
        self.attachments.iter().any(|a| a.thumbnail)
    }

    pub fn mark(&self) -> Mark {
        if self.failed.is_some() {
            Mark::Failed
        } else if self.seq.is_none() {
            Mark::Pending
        } else if self.receipts.read > 0 {
            Mark::Read
        } else if self.receipts.delivered > 0 {
            Mark::Delivered
        } else {
            Mark::Sent
        }
    }
}

/// A position in a timeline: a stored message by seq, or a pending one by index. Pending
/// messages come after every stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Seq(Seq),
    Pending(usize),
}

/// Where a scrolled timeline's top edge is: line `offset` of the item `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub key: Key,
    pub offset: usize,
}

/// Someone typing, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub user: String,
    pub until: Instant,
}

/// A conversation with what has been loaded of it.
#[derive(Debug, Clone)]
pub struct Conv {
    pub id: ConversationId,
    pub kind: ConversationKind,
    /// What the user types to reach it (`@bob`, `ops`), already safe to display.
    pub target: String,
    pub peer: Option<String>,
    pub member_count: u32,
    pub last_seq: Seq,
    pub last_activity: OffsetDateTime,
    pub unread: u64,
    pub mentions: u64,
    pub muted: bool,
    /// The read marker known to the server (or set locally).
    pub read_seq: Seq,
    /// A contiguous run of stored messages ending at the newest loaded one.
    pub messages: BTreeMap<Seq, Msg>,
    /// The user's messages not yet acknowledged, in the order typed.
    pub pending: Vec<Msg>,
    /// The first message of the conversation is loaded: nothing older to fetch.
    pub reached_start: bool,
    pub loading_older: bool,
    /// The latest messages were requested once (on first view).
    pub opened: bool,
    /// `None`: follow the newest message. `Some`: scrolled, top edge here.
    pub anchor: Option<Anchor>,
    pub typing: Vec<Typist>,
    /// Loaded messages with an image preview: while 0 (nearly always), nothing looks
    /// for previews to fetch.
    pub with_previews: usize,
}

impl Conv {
    pub fn from_info(info: &ConversationInfo) -> Conv {
        let mut c = Conv {
            id: info.id,
            kind: info.kind,
            target: String::new(),
            peer: None,
            member_count: 0,
            last_seq: 0,
            last_activity: info.last_activity,
            unread: 0,
            mentions: 0,
            muted: false,
            read_seq: 0,
            messages: BTreeMap::new(),
            pending: Vec::new(),
            reached_start: false,
            loading_older: false,
            opened: false,
            anchor: None,
            typing: Vec::new(),
            with_previews: 0,
        };
        c.apply_info(info);
        c
    }

    pub fn apply_info(&mut self, info: &ConversationInfo) {
        self.kind = info.kind;
        self.target = clean_line(&info.target());
        self.peer = info.peer.as_deref().map(clean_line);
        self.member_count = info.member_count;
        self.last_seq = self.last_seq.max(info.last_seq);
        self.last_activity = self.last_activity.max(info.last_activity);
        if info.last_seq == 0 {
            self.reached_start = true;
        }
    }

    /// The name shown in the sidebar and the header (`#ops`, `bob`).
    pub fn title(&self) -> String {
        match self.kind {
            ConversationKind::Group => format!("#{}", self.target),
            ConversationKind::Direct => self.peer.clone().unwrap_or_else(|| self.target.clone()),
        }
    }

    pub fn get(&self, key: Key) -> Option<&Msg> {
        match key {
            Key::Seq(s) => self.messages.get(&s),
            Key::Pending(i) => self.pending.get(i),
        }
    }

    pub fn first_key(&self) -> Option<Key> {
        self.messages
            .keys()
            .next()
            .map(|s| Key::Seq(*s))
            .or((!self.pending.is_empty()).then_some(Key::Pending(0)))
    }

    pub fn last_key(&self) -> Option<Key> {
        if !self.pending.is_empty() {
            return Some(Key::Pending(self.pending.len() - 1));
        }
        self.messages.keys().next_back().map(|s| Key::Seq(*s))
    }

    pub fn prev_key(&self, key: Key) -> Option<Key> {
        match key {
            Key::Pending(0) => self.messages.keys().next_back().map(|s| Key::Seq(*s)),
            Key::Pending(i) => Some(Key::Pending(i - 1)),
            Key::Seq(s) => self
                .messages
                .range(..s)
                .next_back()
                .map(|(s, _)| Key::Seq(*s)),
        }
    }

    pub fn next_key(&self, key: Key) -> Option<Key> {
        match key {
            Key::Pending(i) => (i + 1 < self.pending.len()).then_some(Key::Pending(i + 1)),
            Key::Seq(s) => match self.messages.range(s + 1..).next() {
                Some((s, _)) => Some(Key::Seq(*s)),
                None => (!self.pending.is_empty()).then_some(Key::Pending(0)),
            },
        }
    }

    /// The newest stored seq loaded.
    pub fn newest_seq(&self) -> Option<Seq> {
        self.messages.keys().next_back().copied()
    }

    pub fn oldest_seq(&self) -> Option<Seq> {
        self.messages.keys().next().copied()
    }

    /// Inserts stored messages (idempotent by seq) and resolves pending copies of them.
    pub fn insert(&mut self, m: Msg) {
        if let Some(seq) = m.seq {
            self.pending.retain(|p| p.client_id != m.client_id);
            if seq == 1 {
                self.reached_start = true;
            }
            self.last_seq = self.last_seq.max(seq);
            let receipts = self.messages.get(&seq).map(|old| old.receipts);
            if receipts.is_none() && m.has_preview() {
                self.with_previews += 1;
            }
            let entry = self.messages.entry(seq).or_insert(m);
            if let Some(r) = receipts {
                entry.receipts = r;
            }
        } else if !self.pending.iter().any(|p| p.client_id == m.client_id) {
            self.pending.push(m);
        }
    }

    /// Drops everything older than a gap, so `messages` is one contiguous run that ends
    /// with the newest message (older pages are then fetched before its first seq).
    pub fn keep_contiguous_tail(&mut self) {
        let mut expected: Option<Seq> = None;
        let mut cut: Option<Seq> = None;
        for seq in self.messages.keys().rev() {
            if let Some(e) = expected
                && *seq != e
            {
                cut = Some(e + 1);
                break;
            }
            expected = Some(seq - 1);
        }
        if let Some(cut) = cut {
            self.messages = self.messages.split_off(&cut);
            self.with_previews = self.messages.values().filter(|m| m.has_preview()).count();
            self.reached_start = false;
            if self
                .anchor
                .is_some_and(|a| matches!(a.key, Key::Seq(s) if s < cut))
            {
                self.anchor = None;
            }
        }
    }

    /// Applies a receipt for the user's message `message_seq`: counts only grow, and
    /// older messages have at least the counts of newer ones (markers are positions).
    pub fn apply_receipt(
        &mut self,
        me: &str,
        kind: ReceiptKind,
        message_seq: Seq,
        count: u32,
        of: u32,
    ) {
        for (_, m) in self.messages.range_mut(..=message_seq).rev() {
            if m.sender != me {
                continue;
            }
            let r = &mut m.receipts;
            let slot = match kind {
                ReceiptKind::Delivered => &mut r.delivered,
                ReceiptKind::Read => &mut r.read,
            };
            if *slot >= count && r.of == of {
                break;
            }
            *slot = (*slot).max(count);
            if kind == ReceiptKind::Read {
                r.delivered = r.delivered.max(count);
            }
            r.of = of;
        }
    }

    pub fn pending_count(&self) -> usize {
        self.pending.iter().filter(|m| m.failed.is_none()).count()
    }
}

/// What the status line says about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Online,
    Offline { retry_in: Duration, reason: String },
    Error(String),
}

/// A popup over the main view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    Switcher(Switcher),
    /// Output of a command such as `/group info`.
    Info {
        title: String,
        lines: Vec<String>,
    },
}

/// The quick switcher: a query and the entries it matches, best first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Switcher {
    pub query: Editor,
    pub matches: Vec<SwitchEntry>,
    pub selected: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchEntry {
    pub label: String,
    /// An existing conversation, or a user to open a direct conversation with.
    pub target: SwitchTarget,
    pub unread: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchTarget {
    Conversation(ConversationId),
    User(String),
}

/// A line in the status bar that goes away by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub until: Instant,
}

/// Tab completion in progress: repeated Tab cycles through `candidates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub start: usize,
    pub candidates: Vec<String>,
    pub index: usize,
}

/// The whole interface.
#[derive(Debug, Clone)]
pub struct State {
    /// The logged-in user (already a valid username, so safe to display).
    pub me: String,
    pub server: String,
    pub config: Config,
    /// Conversations in sidebar order (groups, then direct, each by name).
    pub convs: Vec<Conv>,
    pub selected: Option<ConversationId>,
    pub link: Link,
    pub input: Editor,
    pub history: History,
    pub completion: Option<Completion>,
    pub overlay: Option<Overlay>,
    pub notice: Option<Notice>,
    pub presence: HashMap<String, PresenceState>,
    /// Everyone seen (members, senders, peers), for completion and the switcher.
    pub users: BTreeSet<String>,
    /// The user set themself away.
    pub away: bool,
    /// Server-side do-not-disturb: no desktop notifications.
    pub do_not_disturb: bool,
    /// Terminal size (columns, rows).
    pub size: (u16, u16),
    /// The clock as of the last tick (events carry no time; ticks move it).
    pub now: Instant,
    /// Wall-clock time as of the last tick (for the time of a message being typed).
    pub wall: OffsetDateTime,
    /// When the outbox was last asked to flush.
    pub last_flush: Option<Instant>,
    pub utc_offset: UtcOffset,
    /// When "typing" was last sent, and for which conversation.
    pub typing_sent: Option<(ConversationId, Instant)>,
    /// Files mode (Ctrl-O): the attachment picked in the open conversation.
    pub files: Option<FileSel>,
    /// Uploads and downloads under way, oldest first.
    pub transfers: Vec<Transfer>,
    pub next_transfer: u64,
    pub previews: Previews,
    /// Set by `update` when something visible changed.
    pub dirty: bool,
    pub quit: bool,
}

/// How long a notice stays in the status line.
pub const NOTICE_TIME: Duration = Duration::from_secs(8);

impl State {
    pub fn new(me: &str, server: &str, config: Config, now: Instant) -> State {
        let previews = config.previews;
        State {
            me: clean_line(me),
            server: clean_line(server),
            config,
            convs: Vec::new(),
            selected: None,
            link: Link::Connecting,
            input: Editor::default(),
            history: History::default(),
            completion: None,
            overlay: None,
            notice: None,
            presence: HashMap::new(),
            users: BTreeSet::new(),
            away: false,
            do_not_disturb: false,
            size: (80, 24),
            now,
            wall: OffsetDateTime::UNIX_EPOCH,
            last_flush: None,
            utc_offset: UtcOffset::UTC,
            typing_sent: None,
            files: None,
            transfers: Vec::new(),
            next_transfer: 1,
            previews: Previews::new(previews),
            dirty: true,
            quit: false,
        }
    }

    pub fn conv(&self, id: ConversationId) -> Option<&Conv> {
        self.convs.iter().find(|c| c.id == id)
    }

    pub fn conv_mut(&mut self, id: ConversationId) -> Option<&mut Conv> {
        self.convs.iter_mut().find(|c| c.id == id)
    }

    pub fn current(&self) -> Option<&Conv> {
        self.selected.and_then(|id| self.conv(id))
    }

    pub fn current_mut(&mut self) -> Option<&mut Conv> {
        let id = self.selected?;
        self.conv_mut(id)
    }

    pub fn conv_by_target(&self, target: &str) -> Option<&Conv> {
        self.convs.iter().find(|c| c.target == target)
    }

    /// Messages typed and not yet acknowledged, in every conversation.
    pub fn queued(&self) -> usize {
        self.convs.iter().map(Conv::pending_count).sum()
    }

    pub fn sort_convs(&mut self) {
        self.convs.sort_by(|a, b| {
            let rank = |c: &Conv| match c.kind {
                ConversationKind::Group => 0,
                ConversationKind::Direct => 1,
            };
            rank(a).cmp(&rank(b)).then_with(|| a.target.cmp(&b.target))
        });
    }

    pub fn notify(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
            until: self.now + NOTICE_TIME,
        });
        self.dirty = true;
    }
}
