//! The live-layer commands (`read`, `receipts`, `presence`, `status`, `typing`, `mute`,
//! `unmute`, `settings`, `notify`) and the lines `listen` prints for live events. The
//! JSON shapes are documented in `docs/CLI.md`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use natter_client_core::notify::{Burst, Desktop, Filter, NotificationText, Shown};
use natter_client_core::{Client, ConnectOptions, Connection, ConnectionState, Event};
use natter_protocol::sanitize::single_line;
use natter_protocol::{
    ConversationId, ConversationInfo, ConversationKind, ConversationState, Presence, PresenceState,
    Receipt, ReceiptKind, Seq, Settings, SettingsUpdate, Target, limits,
};
use serde::Serialize;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::StatusArg;
use crate::commands::{interrupted, note, open, out};
use crate::output;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

// ----- JSON and human lines for live events -----

/// Serializes a line with `"type"` first, then the fields in declaration order.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    fields: T,
}

fn line<T: Serialize>(kind: &str, fields: T) -> String {
    serde_json::to_string(&Line { kind, fields }).unwrap_or_default()
}

pub fn presence_json(p: &Presence) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        user: &'a str,
        state: &'a str,
        last_seen: Option<String>,
    }
    line(
        "presence",
        F {
            user: &p.user,
            state: p.state.as_str(),
            last_seen: p.last_seen.map(rfc3339),
        },
    )
}

pub fn presence_human(p: &Presence) -> String {
    let who = single_line(&p.user);
    match (p.state, p.last_seen) {
        (PresenceState::Offline, Some(t)) => {
            format!("{who} is offline (last seen {})", output::short_time(t))
        }
        (state, _) => format!("{who} is {}", state.as_str()),
    }
}

pub fn typing_json(
    target: Option<&str>,
    conversation_id: ConversationId,
    user: &str,
    active: bool,
) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        conversation: Option<&'a str>,
        conversation_id: ConversationId,
        user: &'a str,
        active: bool,
    }
    line(
        "typing",
        F {
            conversation: target,
            conversation_id,
            user,
            active,
        },
    )
}

pub fn receipt_json(target: Option<&str>, r: &Receipt) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        receipt: &'a str,
        conversation: Option<&'a str>,
        conversation_id: ConversationId,
        user: &'a str,
        seq: Seq,
        message_seq: Seq,
        count: u32,
        of: u32,
    }
    line(
        "receipt",
        F {
            receipt: r.kind.as_str(),
            conversation: target,
            conversation_id: r.conversation_id,
            user: &r.user,
            seq: r.seq,
            message_seq: r.message_seq,
            count: r.count,
            of: r.of,
        },
    )
}

pub fn receipt_human(target: Option<&str>, r: &Receipt) -> String {
    let name = target
        .map(single_line)
        .unwrap_or_else(|| format!("conversation {}", r.conversation_id));
    let verb = match r.kind {
        ReceiptKind::Delivered => "delivered to",
        ReceiptKind::Read => "read by",
    };
    format!(
        "-- {name}: your message {} {verb} {} ({} of {})",
        r.message_seq,
        single_line(&r.user),
        r.count,
        r.of
    )
}

pub fn unread_json(
    target: Option<&str>,
    conversation_id: ConversationId,
    unread: u64,
    read_seq: Seq,
) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        conversation: Option<&'a str>,
        conversation_id: ConversationId,
        unread: u64,
        read_seq: Seq,
    }
    line(
        "unread",
        F {
            conversation: target,
            conversation_id,
            unread,
            read_seq,
        },
    )
}

/// The line `listen` prints for a live event, if any (`wanted` filters by target).
pub fn listen_line(event: &Event, json: bool, wanted: &dyn Fn(&str) -> bool) -> Vec<String> {
    let wanted_opt = |t: &Option<String>| t.as_deref().is_none_or(wanted);
    match event {
        Event::Presence(list) => list
            .iter()
            .map(|p| {
                if json {
                    presence_json(p)
                } else {
                    format!("-- {}", presence_human(p))
                }
            })
            .collect(),
        Event::Typing {
            conversation_id,
            target,
            user,
            active,
        } if wanted_opt(target) => {
            if json {
                vec![typing_json(
                    target.as_deref(),
                    *conversation_id,
                    user,
                    *active,
                )]
            } else if *active {
                let name = target.as_deref().map(single_line).unwrap_or_default();
                vec![format!("-- {} is typing in {name}", single_line(user))]
            } else {
                vec![]
            }
        }
        Event::Receipt { target, receipt } if wanted_opt(target) => {
            vec![if json {
                receipt_json(target.as_deref(), receipt)
            } else {
                receipt_human(target.as_deref(), receipt)
            }]
        }
        Event::Unread {
            conversation_id,
            target,
            unread,
            read_seq,
        } if json && wanted_opt(target) => {
            vec![unread_json(
                target.as_deref(),
                *conversation_id,
                *unread,
                *read_seq,
            )]
        }
        _ => vec![],
    }
}

// ----- conversations with unread counts and presence -----

/// `conversations`: the list, each with its unread count and who is around.
pub async fn conversations(server: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let list = client.conversations().await?;
    let states: HashMap<ConversationId, ConversationState> = client
        .states()
        .await?
        .into_iter()
        .map(|s| (s.conversation_id, s))
        .collect();
    let presence: HashMap<String, Presence> = client
        .presence(&[])
        .await?
        .into_iter()
        .map(|p| (p.user.clone(), p))
        .collect();
    for c in &list {
        let state = states.get(&c.id);
        let peer = match c.kind {
            ConversationKind::Direct => c.peer.as_deref().and_then(|p| presence.get(p)),
            ConversationKind::Group => None,
        };
        out(&if json {
            conversation_json(c, state, peer)
        } else {
            conversation_human(c, state, peer)
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn conversation_json(
    c: &ConversationInfo,
    state: Option<&ConversationState>,
    peer: Option<&Presence>,
) -> String {
    // The `conversation` object of `listen`, with the live fields appended.
    let base = output::conversation_json(c);
    #[derive(Serialize)]
    struct Extra<'a> {
        unread: u64,
        read_seq: Seq,
        muted: bool,
        online: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        presence: Option<&'a str>,
    }
    let extra = serde_json::to_string(&Extra {
        unread: state.map_or(0, |s| s.unread),
        read_seq: state.map_or(0, |s| s.read_seq),
        muted: state.is_some_and(|s| s.muted),
        online: state.map_or(0, |s| s.online),
        presence: (c.kind == ConversationKind::Direct)
            .then(|| peer.map_or("offline", |p| p.state.as_str())),
    })
    .unwrap_or_default();
    match (base.strip_suffix('}'), extra.strip_prefix('{')) {
        (Some(head), Some(tail)) => format!("{head},{tail}"),
        _ => base,
    }
}

fn conversation_human(
    c: &ConversationInfo,
    state: Option<&ConversationState>,
    peer: Option<&Presence>,
) -> String {
    let unread = state.map_or(0, |s| s.unread);
    let around = match c.kind {
        ConversationKind::Direct => peer.map_or("offline", |p| p.state.as_str()).to_string(),
        ConversationKind::Group => format!("{} online", state.map_or(0, |s| s.online)),
    };
    let muted = if state.is_some_and(|s| s.muted) {
        "  muted"
    } else {
        ""
    };
    format!(
        "{}  {:>4} unread  {around:<9}{muted}",
        output::conversation_human(c),
        unread
    )
}

// ----- one-shot commands -----

fn state_json(target: &str, s: &ConversationState) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        conversation: &'a str,
        conversation_id: ConversationId,
        last_seq: Seq,
        read_seq: Seq,
        unread: u64,
        muted: bool,
        muted_until: Option<String>,
    }
    line(
        "state",
        F {
            conversation: target,
            conversation_id: s.conversation_id,
            last_seq: s.last_seq,
            read_seq: s.read_seq,
            unread: s.unread,
            muted: s.muted,
            muted_until: s.muted_until.map(rfc3339),
        },
    )
}

pub async fn read(
    server: Option<&str>,
    target: Target,
    seq: Option<i64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let (info, state) = client.mark_read(&target, seq).await?;
    let name = info.target();
    out(&if json {
        state_json(&name, &state)
    } else {
        format!(
            "{} read up to {} ({} unread)",
            single_line(&name),
            state.read_seq,
            state.unread
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn receipts(
    server: Option<&str>,
    target: Target,
    seq: Option<i64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let (info, r) = client.receipts(&target, seq).await?;
    let name = info.target();
    if json {
        #[derive(Serialize)]
        struct F<'a> {
            conversation: &'a str,
            conversation_id: ConversationId,
            seq: Seq,
            delivered_to: &'a [String],
            read_by: &'a [String],
            of: u32,
        }
        out(&line(
            "receipts",
            F {
                conversation: &name,
                conversation_id: r.conversation_id,
                seq: r.seq,
                delivered_to: &r.delivered_to,
                read_by: &r.read_by,
                of: r.of,
            },
        ))?;
    } else {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.iter()
                    .map(|u| single_line(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        out(&format!(
            "{} message {}: delivered to {} of {} ({}); read by {} of {} ({})",
            single_line(&name),
            r.seq,
            r.delivered_to.len(),
            r.of,
            list(&r.delivered_to),
            r.read_by.len(),
            r.of,
            list(&r.read_by)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn presence(
    server: Option<&str>,
    users: Vec<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let list = client.presence(&users).await?;
    for p in &list {
        out(&if json {
            presence_json(p)
        } else {
            presence_human(p)
        })?;
    }
    let missing: Vec<&String> = users
        .iter()
        .filter(|u| !list.iter().any(|p| &p.user == *u))
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        note(&format!(
            "no presence for {}: you see presence only of people you share a conversation with",
            names.join(", ")
        ));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(server: Option<&str>, state: StatusArg) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let state = match state {
        StatusArg::Away => PresenceState::Away,
        StatusArg::Online => PresenceState::Online,
    };
    let p = client.set_presence(state).await?;
    let shown = if p.state == PresenceState::Offline {
        format!(
            "you are {} (no device connected; others see {} once one is)",
            p.state.as_str(),
            state.as_str()
        )
    } else {
        format!("you are {}", p.state.as_str())
    };
    out(&shown)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn typing(
    server: Option<&str>,
    target: Target,
    duration: Option<Duration>,
    stop: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    if stop {
        client.typing(&target, false).await?;
        return Ok(ExitCode::SUCCESS);
    }
    client.typing(&target, true).await?;
    let Some(duration) = duration else {
        return Ok(ExitCode::SUCCESS);
    };
    let until = tokio::time::Instant::now() + duration;
    let renew = Duration::from_secs(limits::TYPING_RENEW_SECS);
    let stop_signal = interrupted();
    tokio::pin!(stop_signal);
    loop {
        let next = (tokio::time::Instant::now() + renew).min(until);
        tokio::select! {
            _ = &mut stop_signal => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        if tokio::time::Instant::now() >= until {
            break;
        }
        client.typing(&target, true).await?;
    }
    client.typing(&target, false).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn mute(
    server: Option<&str>,
    target: Target,
    mute: Option<Option<Duration>>,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let (info, state) = match mute {
        Some(d) => client.mute(&target, d).await?,
        None => client.unmute(&target).await?,
    };
    let name = single_line(&info.target());
    out(&match (state.muted, state.muted_until) {
        (true, Some(t)) => format!("muted {name} until {}", output::short_time(t)),
        (true, None) => format!("muted {name}"),
        (false, _) => format!("unmuted {name}"),
    })?;
    Ok(ExitCode::SUCCESS)
}

fn settings_line(s: &Settings, json: bool) -> String {
    if json {
        line("settings", s)
    } else {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "read receipts: {}\ndo not disturb: {}",
            on(s.read_receipts),
            on(s.do_not_disturb)
        )
    }
}

pub async fn settings(
    server: Option<&str>,
    read_receipts: Option<bool>,
    dnd: Option<bool>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let s = if read_receipts.is_none() && dnd.is_none() {
        client.settings().await?
    } else {
        client
            .update_settings(&SettingsUpdate {
                read_receipts,
                do_not_disturb: dnd,
            })
            .await?
    };
    out(&settings_line(&s, json))?;
    Ok(ExitCode::SUCCESS)
}

// ----- notify -----

async fn load_filter(client: &Client) -> Option<Filter> {
    let settings = client.settings().await.ok()?;
    let states = client.states().await.ok()?;
    Some(Filter::new(settings, &states))
}

fn notification_json(n: &NotificationText, shown: bool) -> String {
    #[derive(Serialize)]
    struct F<'a> {
        summary: &'a str,
        body: &'a str,
        conversation: Option<&'a str>,
        shown: bool,
    }
    line(
        "notification",
        F {
            summary: &n.summary,
            body: &n.body,
            conversation: n.target.as_deref(),
            shown,
        },
    )
}

/// `natter notify`: a background companion that raises desktop notifications.
pub async fn notify(server: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let url = client.server().to_string();
    let me = client.username().to_string();
    // Its own cursor: after a pause it notifies (grouped) about what it missed, and
    // `natter listen` in the same NATTER_HOME still gets every message.
    let (conn, mut events) =
        Connection::spawn_with_cursor(client.clone(), ConnectOptions::default(), "notify_cursor");
    let mut filter = Filter::default();
    let mut burst = Burst::default();
    let mut desktop = Desktop::new("natter");
    let mut was_online = false;
    let stop = interrupted();
    tokio::pin!(stop);
    let code = loop {
        let due = burst.due();
        tokio::select! {
            _ = &mut stop => break ExitCode::SUCCESS,
            _ = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                for n in burst.take() {
                    let shown = match desktop.show(&n).await {
                        Shown::Yes => true,
                        Shown::Recovered => {
                            note("desktop notifications work again");
                            true
                        }
                        Shown::No { reason, first } => {
                            if first {
                                note(&format!(
                                    "no desktop notification service ({}): notifications are not shown; still running",
                                    single_line(&reason)
                                ));
                            }
                            false
                        }
                    };
                    if json {
                        out(&notification_json(&n, shown))?;
                    }
                }
            }
            ev = events.recv() => {
                let Some(event) = ev else {
                    anyhow::bail!("the connection to {url} stopped unexpectedly");
                };
                match event {
                    Event::ConnectionState(ConnectionState::Online) => {
                        note(&format!("{} to {url}", if was_online { "reconnected" } else { "connected" }));
                        was_online = true;
                        // Mutes and do-not-disturb may have changed while away.
                        if let Some(f) = load_filter(&client).await {
                            filter = f;
                        }
                    }
                    Event::ConnectionState(ConnectionState::Offline { retry_in, reason }) => {
                        note(&format!("{reason}; retrying in {}", natter_client_core::humane(retry_in)));
                    }
                    Event::ConnectionState(ConnectionState::Error { message, .. }) => {
                        note(&message);
                        break ExitCode::FAILURE;
                    }
                    Event::Message(ev) if filter.allows(&ev, &me) => burst.push(ev),
                    Event::ConversationState(state) => filter.update(&state),
                    Event::Settings(settings) => filter.settings = settings,
                    _ => {}
                }
            }
        }
    };
    conn.shutdown().await;
    Ok(code)
}
