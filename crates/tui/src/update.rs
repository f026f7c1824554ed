//! `update(&mut State, Event) -> Vec<Effect>`: every change to the interface happens
//! here, synchronously and without I/O. Slash commands, completion and the switcher are
//! part of it.

use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEventKind};
use natter_protocol::limits::{DEFAULT_MAX_MESSAGE_BYTES, TYPING_EXPIRY_SECS, TYPING_RENEW_SECS};
use natter_protocol::{
    ConversationId, ConversationInfo, ConversationKind, PresenceState, Target, validate,
};

use crate::event::{Effect, Event, GroupOp, LinkEvent, Page};
use crate::files::{Att, FileSel, Transfer, TransferKind, split_path_arg};
use crate::fuzzy;
use crate::keys::Action;
use crate::layout::timeline_size;
use crate::preview::Slot;
use crate::state::{
    Completion, Conv, Key, Link, Msg, Overlay, Receipts, State, SwitchEntry, SwitchTarget,
    Switcher, Typist, clean, clean_line,
};
use crate::timeline;

/// The slash commands, for completion and help.
pub const COMMANDS: &[(&str, &str)] = &[
    ("/msg", "@user|group [text]  open a conversation (and send)"),
    ("/file", "PATH [text]  send a file (Tab completes the path)"),
    ("/group", "create|add|remove|info|leave NAME [users]"),
    ("/read", "mark this conversation read"),
    ("/away", "set yourself away"),
    ("/back", "set yourself back online"),
    ("/mute", "[target]  no notifications or unread highlight"),
    ("/unmute", "[target]  undo /mute"),
    ("/help", "show keys and commands"),
    ("/quit", "leave natter"),
];

const GROUP_SUBCOMMANDS: &[&str] = &["add", "create", "info", "leave", "remove"];
/// Lines moved by one mouse wheel step.
const WHEEL_LINES: usize = 3;
/// How often pending messages are retried while online.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Applies one event. Returns the effects to run, in order.
pub fn update(s: &mut State, event: Event) -> Vec<Effect> {
    let mut fx = Vec::new();
    apply_event(s, event, &mut fx);
    if s.dirty {
        want_previews(s, &mut fx);
    }
    fx
}

/// Asks for the previews on screen that are not in the cache yet (and marks those that
/// are as recently wanted). Free when the open conversation has no image loaded.
fn want_previews(s: &mut State, fx: &mut Vec<Effect>) {
    if !s.previews.enabled || s.current().is_none_or(|c| c.with_previews == 0) {
        return;
    }
    let (width, rows) = timeline_size(s);
    let Some(c) = s.current() else { return };
    let width = width.saturating_sub(1);
    let view = timeline::visible_layout(s, c, width, rows);
    for shown in view.previews {
        let p = shown.placement;
        if s.previews.want(&p.id) {
            fx.push(Effect::FetchPreview {
                id: p.id,
                cols: p.cols,
                rows: p.rows,
            });
        }
    }
}

fn apply_event(s: &mut State, event: Event, fx: &mut Vec<Effect>) {
    match event {
        Event::Key(key) => on_key(s, key, fx),
        Event::Mouse(m) => match m.kind {
            MouseEventKind::ScrollUp => scroll(s, true, WHEEL_LINES, fx),
            MouseEventKind::ScrollDown => scroll(s, false, WHEEL_LINES, fx),
            _ => {}
        },
        Event::Paste(text) => {
            let text = clean(&text.replace("\r\n", "\n").replace('\r', "\n"));
            if let Some(Overlay::Switcher(sw)) = &mut s.overlay {
                sw.query.insert_str(&text.replace('\n', " "));
                refresh_switcher(s);
            } else if s.overlay.is_none() {
                s.input.insert_str(&text);
                typed(s, fx);
            }
            s.dirty = true;
        }
        Event::Resize(w, h) => {
            s.size = (w, h);
            s.dirty = true;
        }
        Event::Tick { now, wall } => tick(s, now, wall, fx),
        Event::Terminate => quit(s, fx),
        Event::Link(l) => {
            let online = l == LinkEvent::Online;
            s.link = match l {
                LinkEvent::Connecting => Link::Connecting,
                LinkEvent::Online => Link::Online,
                LinkEvent::Offline { retry_in, reason } => Link::Offline {
                    retry_in,
                    reason: clean_line(&reason),
                },
                LinkEvent::Error(e) => Link::Error(clean_line(&e)),
            };
            if online {
                fx.push(Effect::RefreshConversations);
                s.last_flush = Some(s.now);
                mark_viewed(s, fx);
            }
            s.dirty = true;
        }
        Event::Message {
            message,
            conversation,
            replayed,
        } => on_message(s, &message, &conversation, replayed, fx),
        Event::Conversation(info) => {
            upsert(s, &info);
            if s.selected.is_none() {
                select(s, info.id, fx);
            }
        }
        Event::Removed {
            conversation_id,
            target,
        } => {
            let name = s
                .conv(conversation_id)
                .map(Conv::title)
                .or(target.map(|t| clean_line(&t)))
                .unwrap_or_else(|| "a conversation".into());
            s.convs.retain(|c| c.id != conversation_id);
            if s.selected == Some(conversation_id) {
                s.selected = None;
                if let Some(id) = s.convs.first().map(|c| c.id) {
                    select(s, id, fx);
                }
            }
            s.notify(format!("you are no longer a member of {name}"), false);
        }
        Event::ServerError(e) => s.notify(clean_line(&e), true),
        Event::OutboxSent { client_id, ack } => {
            let m = Msg::from_message(&ack.message);
            if let Some(c) = s.conv_mut(ack.message.conversation_id) {
                c.insert(m);
            } else {
                for c in &mut s.convs {
                    c.pending.retain(|p| p.client_id != client_id);
                }
            }
            s.dirty = true;
        }
        Event::OutboxFailed { client_id, error }
        | Event::Queued {
            client_id,
            result: Err(error),
        } => {
            let error = clean_line(&error);
            for c in &mut s.convs {
                for p in &mut c.pending {
                    if p.client_id == client_id {
                        p.failed = Some(error.clone());
                    }
                }
            }
            s.notify(format!("message not sent: {error}"), true);
        }
        Event::Queued { result: Ok(()), .. } => {}
        Event::Presence(list) => {
            for p in list {
                let user = clean_line(&p.user);
                if user == s.me {
                    s.away = p.state == PresenceState::Away;
                }
                s.users.insert(user.clone());
                s.presence.insert(user, p.state);
            }
            s.dirty = true;
        }
        Event::Typing {
            conversation_id,
            user,
            active,
        } => {
            let user = clean_line(&user);
            let until = s.now + Duration::from_secs(TYPING_EXPIRY_SECS);
            let me = s.me.clone();
            if let Some(c) = s.conv_mut(conversation_id)
                && user != me
            {
                c.typing.retain(|t| t.user != user);
                if active {
                    c.typing.push(Typist { user, until });
                }
            }
            s.dirty = true;
        }
        Event::Receipt(r) => {
            let me = s.me.clone();
            if let Some(c) = s.conv_mut(r.conversation_id) {
                c.apply_receipt(&me, r.kind, r.message_seq, r.count, r.of);
            }
            s.dirty = true;
        }
        Event::ConversationState(st) => {
            if let Some(c) = s.conv_mut(st.conversation_id) {
                c.unread = st.unread;
                if st.unread == 0 {
                    c.mentions = 0;
                }
                c.read_seq = c.read_seq.max(st.read_seq);
                c.muted = st.muted;
                c.last_seq = c.last_seq.max(st.last_seq);
            }
            if s.selected == Some(st.conversation_id) {
                mark_viewed(s, fx);
            }
            s.dirty = true;
        }
        Event::Unread {
            conversation_id,
            unread,
            read_seq,
        } => {
            if let Some(c) = s.conv_mut(conversation_id) {
                c.read_seq = c.read_seq.max(read_seq);
                // A count from the server that is older than what was seen here is
                // still the best estimate; what is on screen is read right after.
                c.unread = unread;
                if unread == 0 {
                    c.mentions = 0;
                }
            }
            if s.selected == Some(conversation_id) {
                mark_viewed(s, fx);
            }
            s.dirty = true;
        }
        Event::Settings(st) => {
            s.do_not_disturb = st.do_not_disturb;
            s.dirty = true;
        }
        Event::Conversations(list) => {
            let ids: Vec<_> = list.iter().map(|c| c.id).collect();
            s.convs
                .retain(|c| ids.contains(&c.id) || !c.pending.is_empty());
            for info in &list {
                upsert(s, info);
            }
            if s.selected.is_none_or(|id| s.conv(id).is_none()) {
                s.selected = None;
                let latest = s
                    .convs
                    .iter()
                    .max_by_key(|c| (c.last_activity, c.id))
                    .map(|c| c.id);
                if let Some(id) = latest {
                    select(s, id, fx);
                }
            }
            s.dirty = true;
        }
        Event::Outbox(entries) => {
            let me = s.me.clone();
            for e in entries {
                let conv = e
                    .conversation_id
                    .and_then(|id| s.conv(id).map(|c| c.id))
                    .or_else(|| s.conv_by_target(&e.target).map(|c| c.id));
                if let Some(c) = conv.and_then(|id| s.conv_mut(id)) {
                    c.insert(Msg {
                        id: None,
                        seq: None,
                        client_id: e.client_id,
                        sender: me.clone(),
                        text: clean(&e.text),
                        sent_at: e.created_at,
                        failed: None,
                        receipts: Receipts::default(),
                        system: false,
                        attachments: e.attachments.iter().map(|id| Att::unknown(id)).collect(),
                    });
                }
            }
            s.dirty = true;
        }
        Event::History {
            conversation_id,
            messages,
            page,
        } => {
            let me = s.me.clone();
            if let Some(c) = s.conv_mut(conversation_id) {
                for m in &messages {
                    c.insert(Msg::from_message(m));
                }
                match page {
                    Page::Latest => c.keep_contiguous_tail(),
                    Page::Older { complete } => {
                        c.loading_older = false;
                        if complete {
                            c.reached_start = true;
                        }
                    }
                }
            }
            let mut users: Vec<String> = messages.iter().map(|m| clean_line(&m.sender)).collect();
            users.retain(|u| *u != me);
            s.users.extend(users);
            if s.selected == Some(conversation_id) {
                mark_viewed(s, fx);
                if s.current()
                    .is_some_and(|c| c.anchor.is_some() && timeline::wants_older(c))
                {
                    load_older(s, fx);
                }
            }
            s.dirty = true;
        }
        Event::HistoryFailed {
            conversation_id,
            error,
        } => {
            if let Some(c) = s.conv_mut(conversation_id) {
                c.loading_older = false;
            }
            if s.selected == Some(conversation_id) {
                s.notify(format!("cannot load history: {}", clean_line(&error)), true);
            }
        }
        Event::Opened { info, text } => {
            upsert(s, &info);
            select(s, info.id, fx);
            if let Some(text) = text {
                send_text(s, text, fx);
            }
        }
        Event::Done(Ok(line)) => s.notify(clean_line(&line), false),
        Event::Done(Err(e)) => s.notify(clean_line(&e), true),
        Event::Info { title, lines } => {
            s.overlay = Some(Overlay::Info {
                title: clean_line(&title),
                lines: lines.iter().map(|l| clean_line(l)).collect(),
            });
            s.dirty = true;
        }
        Event::Edited(Ok(Some(text))) => {
            let text = clean(text.strip_suffix('\n').unwrap_or(&text));
            s.input.set(text);
            s.dirty = true;
        }
        Event::Edited(Ok(None)) => s.dirty = true,
        Event::Edited(Err(e)) => s.notify(clean_line(&e), true),
        Event::Progress {
            transfer,
            done,
            total,
        } => {
            if let Some(t) = s.transfers.iter_mut().find(|t| t.id == transfer) {
                t.done = done;
                t.total = Some(total);
                s.dirty = true;
            }
        }
        Event::Uploaded { transfer, result } => uploaded(s, transfer, result, fx),
        Event::Downloaded { transfer, result } => {
            let Some(i) = s.transfers.iter().position(|t| t.id == transfer) else {
                return;
            };
            let t = s.transfers.remove(i);
            match (result, &t.kind) {
                (Ok(path), TransferKind::Open) => s.notify(
                    format!("opened {}", clean_line(&path.display().to_string())),
                    false,
                ),
                (Ok(path), _) => s.notify(
                    format!("saved {}", clean_line(&path.display().to_string())),
                    false,
                ),
                (Err(e), _) => s.notify(format!("cannot get {}: {}", t.name, clean_line(&e)), true),
            }
        }
        Event::Preview { id, result } => {
            let slot = match result {
                Ok(img) => Slot::Ready(img),
                Err(e) => {
                    tracing::debug!("preview of {id}: {e}");
                    Slot::Failed
                }
            };
            s.previews.put(&id, slot);
            s.dirty = true;
        }
        Event::PathCompletions {
            start,
            word,
            candidates,
        } => {
            // Only if the input still ends with what was completed.
            let end = s.input.cursor();
            if s.input.text().get(start..end) == Some(word.as_str()) {
                apply_completions(s, start, &word, candidates, true);
            }
        }
    }
}

fn quit(s: &mut State, fx: &mut Vec<Effect>) {
    s.quit = true;
    fx.push(Effect::Quit);
}

fn tick(s: &mut State, now: std::time::Instant, wall: time::OffsetDateTime, fx: &mut Vec<Effect>) {
    s.now = now;
    s.wall = wall;
    for c in &mut s.convs {
        let before = c.typing.len();
        c.typing.retain(|t| t.until > now);
        if c.typing.len() != before {
            s.dirty = true;
        }
    }
    if s.notice.as_ref().is_some_and(|n| n.until <= now) {
        s.notice = None;
        s.dirty = true;
    }
    if matches!(s.link, Link::Offline { .. }) {
        // The retry countdown is only as precise as the last report; redraw nothing.
    }
    if s.link == Link::Online
        && s.queued() > 0
        && s.last_flush
            .is_none_or(|t| now.duration_since(t) >= FLUSH_EVERY)
    {
        s.last_flush = Some(now);
        fx.push(Effect::Flush);
    }
}

fn upsert(s: &mut State, info: &ConversationInfo) {
    if let Some(peer) = &info.peer {
        s.users.insert(clean_line(peer));
    }
    match s.conv_mut(info.id) {
        Some(c) => c.apply_info(info),
        None => {
            s.convs.push(Conv::from_info(info));
            s.sort_convs();
        }
    }
    s.dirty = true;
}

fn mentions(text: &str, me: &str) -> bool {
    let needle = format!("@{me}");
    let lower = text.to_lowercase();
    lower.match_indices(&needle).any(|(i, _)| {
        let after = lower[i + needle.len()..].chars().next();
        let before = lower[..i].chars().next_back();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && !before.is_some_and(|c| c.is_alphanumeric())
    })
}

fn on_message(
    s: &mut State,
    message: &natter_protocol::Message,
    info: &ConversationInfo,
    replayed: bool,
    fx: &mut Vec<Effect>,
) {
    upsert(s, info);
    let m = Msg::from_message(message);
    let me = s.me.clone();
    // Membership changes are shown, but are nobody's message to answer.
    let mine = m.sender == me || m.system;
    if !mine {
        s.users.insert(m.sender.clone());
    }
    let viewing = s.selected == Some(info.id)
        && s.current().is_some_and(|c| c.anchor.is_none())
        && s.overlay.is_none();
    let notify_on = s.config.notifications && !s.do_not_disturb;
    let Some(c) = s.conv_mut(info.id) else {
        return;
    };
    let gap = c.opened && c.newest_seq().is_some_and(|n| message.seq > n + 1);
    c.typing.retain(|t| t.user != m.sender);
    let notice = (!mine && !viewing).then(|| {
        let title = match c.kind {
            ConversationKind::Group => format!("{} in #{}", m.sender, c.target),
            ConversationKind::Direct => m.sender.clone(),
        };
        (title, timeline::preview(&m, 200), c.muted)
    });
    let is_mention = !mine && mentions(&m.text, &me);
    if !mine && message.seq > c.read_seq && !(viewing) {
        c.unread += 1;
        if is_mention {
            c.mentions += 1;
        }
    }
    c.insert(m);
    if gap {
        fx.push(Effect::LoadLatest {
            conversation_id: info.id,
        });
    }
    if let Some((title, body, muted)) = notice
        && notify_on
        && !replayed
        && (!muted || is_mention)
    {
        fx.push(Effect::Notify { title, body });
    }
    if viewing {
        mark_viewed(s, fx);
    }
    s.dirty = true;
}

/// Marks the current conversation read when its newest message is on screen.
fn mark_viewed(s: &mut State, fx: &mut Vec<Effect>) {
    let Some(c) = s.current_mut() else { return };
    if c.anchor.is_some() {
        return;
    }
    let Some(newest) = c.newest_seq() else {
        return;
    };
    if newest >= c.last_seq && (c.unread > 0 || c.mentions > 0) {
        c.unread = 0;
        c.mentions = 0;
    }
    if newest > c.read_seq {
        c.read_seq = newest;
        fx.push(Effect::MarkRead {
            conversation_id: c.id,
            seq: newest,
        });
    }
}

fn stop_typing(s: &mut State, fx: &mut Vec<Effect>) {
    if let Some((id, _)) = s.typing_sent.take() {
        fx.push(Effect::Typing {
            conversation_id: id,
            active: false,
        });
    }
}

fn select(s: &mut State, id: ConversationId, fx: &mut Vec<Effect>) {
    if s.typing_sent.is_some_and(|(c, _)| c != id) {
        stop_typing(s, fx);
    }
    s.selected = Some(id);
    s.completion = None;
    s.dirty = true;
    if let Some(c) = s.conv_mut(id)
        && !c.opened
    {
        c.opened = true;
        fx.push(Effect::LoadLatest {
            conversation_id: id,
        });
    }
    mark_viewed(s, fx);
}

fn select_offset(s: &mut State, delta: isize, fx: &mut Vec<Effect>) {
    let n = s.convs.len();
    if n == 0 {
        return;
    }
    let cur = s
        .selected
        .and_then(|id| s.convs.iter().position(|c| c.id == id));
    let next = match cur {
        None => 0,
        Some(i) => (i as isize + delta).rem_euclid(n as isize) as usize,
    };
    let id = s.convs[next].id;
    select(s, id, fx);
}

fn next_active(s: &mut State, fx: &mut Vec<Effect>) {
    let n = s.convs.len();
    let cur = s
        .selected
        .and_then(|id| s.convs.iter().position(|c| c.id == id))
        .unwrap_or(n.saturating_sub(1));
    let order: Vec<usize> = (1..=n).map(|k| (cur + k) % n.max(1)).collect();
    let pick = order
        .iter()
        .find(|&&i| s.convs[i].mentions > 0)
        .or_else(|| {
            order
                .iter()
                .find(|&&i| s.convs[i].unread > 0 && !s.convs[i].muted)
        })
        .or_else(|| order.iter().find(|&&i| s.convs[i].unread > 0))
        .copied();
    match pick {
        Some(i) if s.selected != Some(s.convs[i].id) => {
            let id = s.convs[i].id;
            select(s, id, fx);
        }
        _ => s.notify("no unread messages", false),
    }
}

fn load_older(s: &mut State, fx: &mut Vec<Effect>) {
    let Some(c) = s.current_mut() else { return };
    if c.reached_start || c.loading_older {
        return;
    }
    match c.oldest_seq() {
        Some(before) => {
            c.loading_older = true;
            fx.push(Effect::LoadOlder {
                conversation_id: c.id,
                before,
            });
        }
        None if c.last_seq > 0 => {
            c.loading_older = true;
            fx.push(Effect::LoadLatest {
                conversation_id: c.id,
            });
        }
        None => {}
    }
}

fn scroll(s: &mut State, up: bool, n: usize, fx: &mut Vec<Effect>) {
    if let Some(Overlay::Help { scroll }) = &mut s.overlay {
        *scroll = if up {
            scroll.saturating_sub(n)
        } else {
            *scroll + n
        };
        s.dirty = true;
        return;
    }
    let (width, rows) = timeline_size(s);
    let Some(c) = s.current() else { return };
    if up {
        let (anchor, at_top) = timeline::scroll_up(s, c, width, rows, n);
        let older = at_top || timeline::wants_older_at(c, anchor);
        if let Some(c) = s.current_mut() {
            c.anchor = anchor;
        }
        if older {
            load_older(s, fx);
        }
    } else {
        let anchor = timeline::scroll_down(s, c, width, rows, n);
        if let Some(c) = s.current_mut() {
            c.anchor = anchor;
        }
        if anchor.is_none() {
            mark_viewed(s, fx);
        }
    }
    s.dirty = true;
}

fn page(s: &State) -> usize {
    timeline_size(s).1.saturating_sub(2).max(1)
}

fn typed(s: &mut State, fx: &mut Vec<Effect>) {
    s.history.reset();
    let Some(id) = s.selected else { return };
    if s.input.text().starts_with('/') || s.input.is_empty() {
        return;
    }
    let due = match s.typing_sent {
        Some((c, t)) if c == id => {
            s.now.duration_since(t) >= Duration::from_secs(TYPING_RENEW_SECS)
        }
        _ => true,
    };
    if due {
        s.typing_sent = Some((id, s.now));
        fx.push(Effect::Typing {
            conversation_id: id,
            active: true,
        });
    }
}

fn on_key(s: &mut State, key: KeyEvent, fx: &mut Vec<Effect>) {
    if key.kind == KeyEventKind::Release {
        return;
    }
    s.dirty = true;
    if s.overlay.is_some() {
        overlay_key(s, key, fx);
        return;
    }
    if s.files.is_some() && files_key(s, key, fx) {
        return;
    }
    let action = s.config.keymap.typing_action(&key);
    if action != Some(Action::Complete) {
        s.completion = None;
    }
    let Some(action) = action else {
        if let KeyCode::Char(c) = key.code {
            let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
            let alt = key.modifiers.contains(KeyModifiers::ALT);
            // Ctrl and Alt together is AltGr on many layouts: a character.
            if ctrl == alt {
                if c == '?' && s.input.is_empty() {
                    s.overlay = Some(Overlay::Help { scroll: 0 });
                    return;
                }
                s.input.insert(c);
                typed(s, fx);
            }
        }
        return;
    };
    match action {
        Action::Send => {
            if s.input.text().trim().is_empty() {
                return;
            }
            let text = s.input.take();
            s.history.push(&text);
            if text.starts_with('/') && !text.starts_with("//") {
                command(s, &text, fx);
            } else {
                let text = text.strip_prefix('/').unwrap_or(&text).to_string();
                s.typing_sent = None;
                if !send_text(s, text.clone(), fx) {
                    s.input.set(text);
                }
            }
        }
        Action::Newline => s.input.insert('\n'),
        Action::Complete => complete(s, fx),
        Action::Files => enter_files(s),
        Action::SaveFile | Action::OpenFile => {}
        Action::TogglePreviews => {
            s.previews.enabled = !s.previews.enabled;
            if !s.previews.enabled {
                // Drops the images (memory) too; they are fetched again when wanted.
                s.previews.clear();
            }
            let on = if s.previews.enabled { "on" } else { "off" };
            s.notify(format!("image previews {on}"), false);
        }
        Action::HistoryPrev => {
            if !s.input.on_first_line() {
                s.input.line_up();
            } else if let Some(t) = s.history.older(s.input.text()) {
                s.input.set(t);
            }
        }
        Action::HistoryNext => {
            if !s.input.on_last_line() {
                s.input.line_down();
            } else if let Some(t) = s.history.newer() {
                s.input.set(t);
            }
        }
        Action::LineStart => s.input.line_start(),
        Action::LineEnd => s.input.line_end(),
        Action::LineEndOrEditor => {
            if s.input.at_end() {
                fx.push(Effect::Edit {
                    text: s.input.text().to_string(),
                });
            } else {
                s.input.line_end();
            }
        }
        Action::CharBack => s.input.left(),
        Action::CharForward => s.input.right(),
        Action::WordBack => s.input.word_back(),
        Action::WordForward => s.input.word_forward(),
        Action::DeleteBack => s.input.backspace(),
        Action::DeleteForward => s.input.delete(),
        Action::KillWordBack => s.input.kill_word_back(),
        Action::KillToStart => s.input.kill_to_start(),
        Action::KillToEnd => s.input.kill_to_end(),
        Action::Yank => s.input.yank(),
        Action::OpenEditor => fx.push(Effect::Edit {
            text: s.input.text().to_string(),
        }),
        Action::Switcher => open_switcher(s),
        Action::Help => s.overlay = Some(Overlay::Help { scroll: 0 }),
        Action::Interrupt => {
            if s.input.is_empty() {
                quit(s, fx);
            } else {
                s.input.take();
                s.history.reset();
                stop_typing(s, fx);
            }
        }
        Action::Quit => quit(s, fx),
        Action::Cancel => {
            if let Some(c) = s.current_mut() {
                c.anchor = None;
            }
            mark_viewed(s, fx);
        }
        Action::NextConversation => select_offset(s, 1, fx),
        Action::PrevConversation => select_offset(s, -1, fx),
        Action::NextActive => next_active(s, fx),
        Action::Jump(n) => {
            if let Some(id) = s.convs.get(usize::from(n) - 1).map(|c| c.id) {
                select(s, id, fx);
            }
        }
        Action::PageUp => {
            let n = page(s);
            scroll(s, true, n, fx);
        }
        Action::PageDown => {
            let n = page(s);
            scroll(s, false, n, fx);
        }
    }
}

fn overlay_key(s: &mut State, key: KeyEvent, fx: &mut Vec<Effect>) {
    let action = s.config.keymap.action(&key);
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match &mut s.overlay {
        Some(Overlay::Help { .. }) => match (key.code, action) {
            (_, Some(Action::PageUp)) => scroll(s, true, 10, fx),
            (_, Some(Action::PageDown)) => scroll(s, false, 10, fx),
            (KeyCode::Up, _) => scroll(s, true, 1, fx),
            (KeyCode::Down, _) => scroll(s, false, 1, fx),
            _ => s.overlay = None,
        },
        Some(Overlay::Info { .. }) => s.overlay = None,
        Some(Overlay::Switcher(sw)) => {
            match (key.code, action) {
                (KeyCode::Esc, _)
                | (_, Some(Action::Switcher | Action::Interrupt | Action::Cancel)) => {
                    s.overlay = None;
                    return;
                }
                (KeyCode::Enter, _) => {
                    let pick = sw.matches.get(sw.selected).map(|e| e.target.clone());
                    s.overlay = None;
                    match pick {
                        Some(SwitchTarget::Conversation(id)) => select(s, id, fx),
                        Some(SwitchTarget::User(u)) => fx.push(Effect::Open {
                            target: format!("@{u}"),
                            text: None,
                        }),
                        None => {}
                    }
                    return;
                }
                (KeyCode::Up, _) | (KeyCode::BackTab, _) | (_, Some(Action::PrevConversation)) => {
                    sw.selected = sw.selected.saturating_sub(1);
                    return;
                }
                (KeyCode::Down, _) | (KeyCode::Tab, _) | (_, Some(Action::NextConversation)) => {
                    if sw.selected + 1 < sw.matches.len() {
                        sw.selected += 1;
                    }
                    return;
                }
                (KeyCode::Backspace, _) => sw.query.backspace(),
                (_, Some(Action::KillWordBack)) => sw.query.kill_word_back(),
                (_, Some(Action::KillToStart)) => sw.query.kill_to_start(),
                (_, Some(Action::CharBack)) => sw.query.left(),
                (_, Some(Action::CharForward)) => sw.query.right(),
                (KeyCode::Char(c), _) if !ctrl => sw.query.insert(c),
                _ => return,
            }
            refresh_switcher(s);
        }
        None => {}
    }
}

fn switch_entries(s: &State) -> Vec<(SwitchEntry, time::OffsetDateTime)> {
    let mut v: Vec<(SwitchEntry, time::OffsetDateTime)> = s
        .convs
        .iter()
        .map(|c| {
            let label = match c.kind {
                ConversationKind::Group => format!("#{}", c.target),
                ConversationKind::Direct => c.target.clone(),
            };
            (
                SwitchEntry {
                    label,
                    target: SwitchTarget::Conversation(c.id),
                    unread: c.unread,
                },
                c.last_activity,
            )
        })
        .collect();
    for u in &s.users {
        if *u != s.me && s.conv_by_target(&format!("@{u}")).is_none() {
            v.push((
                SwitchEntry {
                    label: format!("@{u}"),
                    target: SwitchTarget::User(u.clone()),
                    unread: 0,
                },
                time::OffsetDateTime::UNIX_EPOCH,
            ));
        }
    }
    v
}

fn refresh_switcher(s: &mut State) {
    let entries = switch_entries(s);
    let Some(Overlay::Switcher(sw)) = &mut s.overlay else {
        return;
    };
    let q = sw.query.text().to_string();
    let mut scored: Vec<(i64, SwitchEntry, time::OffsetDateTime)> = entries
        .into_iter()
        .filter_map(|(e, t)| {
            let target = e.label.trim_start_matches(['#', '@']);
            let score = fuzzy::score(&q, &e.label)
                .into_iter()
                .chain(fuzzy::score(&q, target))
                .max()?;
            Some((score, e, t))
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then((b.1.unread > 0).cmp(&(a.1.unread > 0)))
            .then(b.2.cmp(&a.2))
            .then(a.1.label.cmp(&b.1.label))
    });
    sw.matches = scored.into_iter().map(|(_, e, _)| e).collect();
    sw.selected = 0;
}

fn open_switcher(s: &mut State) {
    s.overlay = Some(Overlay::Switcher(Switcher::default()));
    refresh_switcher(s);
}

/// Queues `text` for the current conversation. False (with a notice) when it cannot be.
fn send_text(s: &mut State, text: String, fx: &mut Vec<Effect>) -> bool {
    if text.trim().is_empty() {
        return true;
    }
    if let Err(e) = validate::message_text(&text, DEFAULT_MAX_MESSAGE_BYTES) {
        s.notify(e.to_string(), true);
        return false;
    }
    let me = s.me.clone();
    let wall = s.wall;
    let Some(c) = s.current_mut() else {
        s.notify(
            "no conversation selected: press Ctrl-K or type /msg @user",
            true,
        );
        return false;
    };
    let client_id = uuid::Uuid::now_v7().to_string();
    c.pending
        .push(pending_msg(client_id.clone(), me, &text, wall, Vec::new()));
    c.anchor = None;
    let target = c.target.clone();
    fx.push(Effect::Send {
        target,
        client_id,
        text,
        attachments: Vec::new(),
    });
    s.dirty = true;
    true
}

/// An upload of `/file` finished: the message with the file goes into the outbox (so it
/// survives going offline from here on), shown at once as pending.
fn uploaded(
    s: &mut State,
    transfer: u64,
    result: Result<natter_protocol::Attachment, String>,
    fx: &mut Vec<Effect>,
) {
    let Some(i) = s.transfers.iter().position(|t| t.id == transfer) else {
        return;
    };
    let t = s.transfers.remove(i);
    s.dirty = true;
    let TransferKind::Upload {
        target,
        conversation_id,
        text,
        client_id,
    } = t.kind
    else {
        return;
    };
    let att = match result {
        Ok(a) => a,
        Err(e) => {
            return s.notify(format!("cannot send {}: {}", t.name, clean_line(&e)), true);
        }
    };
    let me = s.me.clone();
    let wall = s.wall;
    let viewing = s.selected == Some(conversation_id);
    if let Some(c) = s.conv_mut(conversation_id) {
        c.pending.push(pending_msg(
            client_id.clone(),
            me,
            &text,
            wall,
            vec![Att::from_attachment(&att)],
        ));
        if viewing {
            c.anchor = None;
        }
    }
    fx.push(Effect::Send {
        target,
        client_id,
        text,
        attachments: vec![att.id],
    });
}

/// `/file PATH [text]`: starts the upload; the message is queued when it is done.
fn send_file(s: &mut State, arg: &str, fx: &mut Vec<Effect>) {
    let Some((path, text)) = split_path_arg(arg) else {
        return s.notify("usage: /file PATH [text]  (~ works, Tab completes)", true);
    };
    if !text.is_empty()
        && let Err(e) = validate::message_text(&text, DEFAULT_MAX_MESSAGE_BYTES)
    {
        return s.notify(e.to_string(), true);
    }
    let Some(c) = s.current() else {
        return s.notify(
            "no conversation selected: press Ctrl-K or type /msg @user",
            true,
        );
    };
    let (target, conversation_id) = (c.target.clone(), c.id);
    let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
    let full = crate::files::expand_tilde(&path, home.as_deref());
    let name = clean_line(
        &full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.clone()),
    );
    let id = s.next_transfer;
    s.next_transfer += 1;
    s.transfers.push(Transfer {
        id,
        kind: TransferKind::Upload {
            target,
            conversation_id,
            text,
            client_id: uuid::Uuid::now_v7().to_string(),
        },
        name,
        done: 0,
        total: None,
    });
    s.dirty = true;
    fx.push(Effect::Upload {
        transfer: id,
        path: full,
    });
}

/// The attachments of the loaded messages of the open conversation, newest first
/// (bottom of the screen first).
fn file_items(c: &Conv) -> Vec<(Key, usize)> {
    let mut items = Vec::new();
    for (seq, m) in c.messages.iter().rev() {
        for i in (0..m.attachments.len()).rev() {
            items.push((Key::Seq(*seq), i));
        }
    }
    items
}

fn enter_files(s: &mut State) {
    let Some(c) = s.current() else {
        return s.notify("no conversation selected", true);
    };
    let items = file_items(c);
    if items.is_empty() {
        let more = if c.reached_start {
            ""
        } else {
            " (PageUp loads older messages)"
        };
        return s.notify(format!("no files in this conversation{more}"), false);
    }
    s.files = Some(FileSel { items, index: 0 });
    reveal_file(s);
}

/// Scrolls so that the highlighted file is on screen.
fn reveal_file(s: &mut State) {
    let Some((key, _)) = s.files.as_ref().and_then(FileSel::current) else {
        return;
    };
    let (width, rows) = timeline_size(s);
    let Some(c) = s.current() else { return };
    let anchor = timeline::reveal(s, c, key, width.saturating_sub(1), rows);
    if let Some(c) = s.current_mut() {
        c.anchor = anchor;
    }
    s.dirty = true;
}

/// Keys in files mode. Returns false when the key is not for files mode: the mode
/// ends and the key is handled as usual.
fn files_key(s: &mut State, key: KeyEvent, fx: &mut Vec<Effect>) -> bool {
    let action = s.config.keymap.action(&key);
    let Some(sel) = s.files.as_mut() else {
        return false;
    };
    let n = sel.items.len();
    match (key.code, action) {
        (KeyCode::Esc, _)
        | (KeyCode::Char('q'), None)
        | (_, Some(Action::Files | Action::Cancel)) => {
            s.files = None;
        }
        (KeyCode::Up | KeyCode::BackTab | KeyCode::Char('k'), _)
        | (_, Some(Action::HistoryPrev)) => {
            sel.index = (sel.index + 1).min(n.saturating_sub(1));
            reveal_file(s);
        }
        (KeyCode::Down | KeyCode::Tab | KeyCode::Char('j'), _) | (_, Some(Action::HistoryNext)) => {
            sel.index = sel.index.saturating_sub(1);
            reveal_file(s);
        }
        (_, Some(Action::SaveFile)) => start_download(s, false, fx),
        (KeyCode::Enter, _) | (_, Some(Action::OpenFile)) => start_download(s, true, fx),
        (_, Some(Action::PageUp)) => {
            let n = page(s);
            scroll(s, true, n, fx);
        }
        (_, Some(Action::PageDown)) => {
            let n = page(s);
            scroll(s, false, n, fx);
        }
        (_, Some(Action::Quit | Action::Interrupt)) => {
            s.files = None;
            return false;
        }
        _ => {
            s.files = None;
            return false;
        }
    }
    true
}

fn start_download(s: &mut State, open: bool, fx: &mut Vec<Effect>) {
    let Some((key, i)) = s.files.as_ref().and_then(FileSel::current) else {
        return;
    };
    let Some(att) = s
        .current()
        .and_then(|c| c.get(key))
        .and_then(|m| m.attachments.get(i))
    else {
        return;
    };
    let att = att.clone();
    if s.transfers
        .iter()
        .any(|t| t.name == att.name && !matches!(t.kind, TransferKind::Upload { .. }))
    {
        return s.notify(format!("{} is already on its way", att.name), false);
    }
    let id = s.next_transfer;
    s.next_transfer += 1;
    s.transfers.push(Transfer {
        id,
        kind: if open {
            TransferKind::Open
        } else {
            TransferKind::Save
        },
        name: att.name.clone(),
        done: 0,
        total: att.size,
    });
    s.dirty = true;
    fx.push(Effect::Download {
        transfer: id,
        id: att.id,
        name: att.name,
        size: att.size.unwrap_or(0),
        open,
    });
}

fn strip_user(u: &str) -> String {
    u.trim_start_matches('@').to_string()
}

fn strip_group(g: &str) -> String {
    g.trim_start_matches('#').to_string()
}

fn current_group(s: &State) -> Option<String> {
    s.current()
        .filter(|c| c.kind == ConversationKind::Group)
        .map(|c| c.target.clone())
}

fn command(s: &mut State, line: &str, fx: &mut Vec<Effect>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let cmd = words.first().copied().unwrap_or("");
    let usage = |s: &mut State, u: &str| s.notify(format!("usage: {u}"), true);
    match cmd {
        "/file" | "/f" | "/upload" => {
            let arg = line.trim_start()[cmd.len()..].to_string();
            send_file(s, &arg, fx);
        }
        "/msg" | "/m" | "/query" => {
            let Some(target) = words.get(1) else {
                return usage(s, "/msg @user|group [text]");
            };
            let parsed = match Target::parse(target) {
                Ok(t) => t,
                Err(e) => return s.notify(e.to_string(), true),
            };
            // The text keeps its own spacing: everything after the target word.
            let after_cmd = line.trim_start()[cmd.len()..].trim_start();
            let text = after_cmd[target.len()..]
                .strip_prefix(' ')
                .unwrap_or(&after_cmd[target.len()..]);
            let text = (!text.trim().is_empty()).then(|| text.to_string());
            let key = parsed.to_string();
            match s.conv_by_target(&key).map(|c| c.id) {
                Some(id) => {
                    select(s, id, fx);
                    if let Some(t) = text {
                        send_text(s, t, fx);
                    }
                }
                None => fx.push(Effect::Open { target: key, text }),
            }
        }
        "/group" | "/g" => {
            let sub = words.get(1).copied().unwrap_or("");
            let arg = |i: usize| words.get(i).map(|w| strip_group(w));
            let op = match sub {
                "create" => match arg(2) {
                    Some(name) => GroupOp::Create {
                        name,
                        members: words[3..].iter().map(|u| strip_user(u)).collect(),
                    },
                    None => return usage(s, "/group create NAME [@user...]"),
                },
                "add" if words.len() >= 4 => GroupOp::Add {
                    name: strip_group(words[2]),
                    users: words[3..].iter().map(|u| strip_user(u)).collect(),
                },
                "add" => return usage(s, "/group add NAME @user..."),
                "remove" | "kick" if words.len() == 4 => GroupOp::Remove {
                    name: strip_group(words[2]),
                    user: strip_user(words[3]),
                },
                "remove" | "kick" => return usage(s, "/group remove NAME @user"),
                "info" | "leave" => {
                    let Some(name) = arg(2).or_else(|| current_group(s)) else {
                        return usage(s, &format!("/group {sub} NAME (or run it in a group)"));
                    };
                    if sub == "info" {
                        GroupOp::Info { name }
                    } else {
                        GroupOp::Leave { name }
                    }
                }
                _ => return usage(s, "/group create|add|remove|info|leave NAME ..."),
            };
            fx.push(Effect::Group(op));
        }
        "/read" => {
            let Some(c) = s.current_mut() else { return };
            c.unread = 0;
            c.mentions = 0;
            let seq = c.newest_seq().unwrap_or(0).max(c.last_seq);
            c.read_seq = c.read_seq.max(seq);
            let id = c.id;
            if seq > 0 {
                fx.push(Effect::MarkRead {
                    conversation_id: id,
                    seq,
                });
            }
            s.dirty = true;
        }
        "/away" => {
            s.away = true;
            fx.push(Effect::SetPresence(PresenceState::Away));
            s.notify("you are away", false);
        }
        "/back" => {
            s.away = false;
            fx.push(Effect::SetPresence(PresenceState::Online));
            s.notify("you are back", false);
        }
        "/mute" | "/unmute" => {
            let muted = cmd == "/mute";
            let id = match words.get(1) {
                Some(t) => match Target::parse(t) {
                    Ok(t) => s.conv_by_target(&t.to_string()).map(|c| c.id),
                    Err(e) => return s.notify(e.to_string(), true),
                },
                None => s.selected,
            };
            let Some(c) = id.and_then(|id| s.conv_mut(id)) else {
                return s.notify(format!("usage: {cmd} [@user|group]"), true);
            };
            c.muted = muted;
            let title = c.title();
            fx.push(Effect::Mute {
                target: c.target.clone(),
                muted,
            });
            s.notify(
                format!("{title} {}", if muted { "muted" } else { "unmuted" }),
                false,
            );
        }
        "/help" | "/h" => s.overlay = Some(Overlay::Help { scroll: 0 }),
        "/quit" | "/q" | "/exit" => quit(s, fx),
        other => s.notify(
            format!("unknown command {other}: type /help (start with // to send a slash)"),
            true,
        ),
    }
}

fn complete(s: &mut State, fx: &mut Vec<Effect>) {
    if let Some(c) = &mut s.completion {
        if c.candidates.is_empty() {
            return;
        }
        c.index = (c.index + 1) % c.candidates.len();
        let (start, cand) = (c.start, c.candidates[c.index].clone());
        let end = s.input.cursor();
        s.input.replace_range(start, end, &cand);
        return;
    }
    let (start, word) = s.input.word_before_cursor();
    let word = word.to_string();
    let before = s.input.text()[..start].to_string();
    let prior: Vec<&str> = before.split_whitespace().collect();
    let groups: Vec<String> = s
        .convs
        .iter()
        .filter(|c| c.kind == ConversationKind::Group)
        .map(|c| c.target.clone())
        .collect();
    let users: Vec<String> = s
        .users
        .iter()
        .filter(|u| **u != s.me)
        .map(|u| format!("@{u}"))
        .collect();
    let first = prior.first().copied();
    if matches!(first, Some("/file" | "/f" | "/upload")) && prior.len() == 1 {
        // The file system is read by the runtime, not here.
        fx.push(Effect::CompletePath { start, word });
        return;
    }
    let candidates: Vec<String> = if prior.is_empty() && word.starts_with('/') {
        COMMANDS.iter().map(|(c, _)| c.to_string()).collect()
    } else {
        match (first, prior.len()) {
            (Some("/group" | "/g"), 1) => GROUP_SUBCOMMANDS.iter().map(|s| s.to_string()).collect(),
            (Some("/group" | "/g"), 2) => groups.clone(),
            (Some("/group" | "/g"), _) => users.clone(),
            (Some("/msg" | "/m" | "/query" | "/mute" | "/unmute"), 1) => users
                .iter()
                .cloned()
                .chain(groups.iter().cloned())
                .collect(),
            _ if word.starts_with('@') => users.clone(),
            _ => Vec::new(),
        }
    };
    let lower = word.to_lowercase();
    let matches: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .collect();
    apply_completions(s, start, &word, matches, false);
}

/// Puts completion candidates for the word at `start` into the input: the only one
/// (with a space after it, except a directory for paths), or the first of several,
/// which Tab then cycles.
fn apply_completions(
    s: &mut State,
    start: usize,
    word: &str,
    mut matches: Vec<String>,
    paths: bool,
) {
    matches.sort();
    matches.dedup();
    match matches.len() {
        0 => s.notify(format!("no completion for {word:?}"), false),
        1 => {
            let end = s.input.cursor();
            let only = &matches[0];
            let done = if paths && only.ends_with('/') {
                only.clone()
            } else {
                format!("{only} ")
            };
            s.input.replace_range(start, end, &done);
        }
        _ => {
            let end = s.input.cursor();
            s.input.replace_range(start, end, &matches[0]);
            s.notify(matches.join("  "), false);
            s.completion = Some(Completion {
                start,
                candidates: matches,
                index: 0,
            });
        }
    }
}

/// A message of ours shown as pending until the server acknowledges it.
fn pending_msg(
    client_id: String,
    me: String,
    text: &str,
    sent_at: time::OffsetDateTime,
    attachments: Vec<Att>,
) -> Msg {
    Msg {
        id: None,
        seq: None,
        client_id,
        sender: me,
        text: clean(text),
        sent_at,
        failed: None,
        receipts: Receipts::default(),
        system: false,
        attachments,
    }
}
