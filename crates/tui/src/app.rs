//! The runtime: sets the terminal up (and always restores it), merges terminal input, the
//! connection's events, effect results, ticks and signals into one stream of [`Event`]s,
//! runs [`update`], carries out the [`Effect`]s in background tasks, and draws when the
//! state changed. Nothing here waits on the network in the loop itself.

use std::io::{Stdout, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
    Event as TermEvent, EventStream, KeyboardEnhancementFlags, PopKeyboardEnhancementFlags,
    PushKeyboardEnhancementFlags,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use futures_util::StreamExt;
use natter_client_core::notify::{self, Desktop, NotificationText, Shown, escape_markup};
use natter_client_core::{Client, ConnectOptions, Connection, ConnectionState, Event as CoreEvent};
use natter_protocol::{ConversationId, HistoryQuery, Message, Target};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui_image::picker::Picker;
use time::{OffsetDateTime, UtcOffset};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::event::{Effect, Event, GroupOp, LinkEvent, Page};
use crate::files;
use crate::preview;
use crate::state::State;
use crate::update::update;
use crate::view::cursor_position;

/// Messages read from the cache when a conversation is first shown.
pub const CACHE_PAGE: u32 = 200;
/// The resume cursor the interface keeps in the cache.
pub const TUI_CURSOR: &str = "tui_cursor";
/// Messages fetched from the server per page.
pub const SERVER_PAGE: u32 = 100;

/// Errors that end the interface.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("the terminal failed: {0}")]
    Terminal(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] natter_client_core::Error),
}

/// How to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// The local time zone (found before the runtime started threads).
    pub utc_offset: UtcOffset,
    /// The settings file; default `tui.toml` in the client's config directory.
    pub config: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            utc_offset: UtcOffset::UTC,
            config: None,
        }
    }
}

/// Builds the state for `client` with the settings file read. Problems with the file
/// show in the status line.
pub fn initial_state(client: &Client, opts: &Options) -> State {
    let (config, problems) = Config::load(&config_path(client, opts));
    let mut state = State::new(client.username(), client.server(), config, Instant::now());
    state.utc_offset = opts.utc_offset;
    state.wall = OffsetDateTime::now_utc();
    if !problems.is_empty() {
        state.notify(problems.join("; "), true);
        if let Some(n) = state.notice.as_mut() {
            n.until += Duration::from_secs(20);
        }
    }
    state
}

/// What the cache already knows, as events: conversations and the outbox. Reading it is
/// local and quick, so the first frame is a full one.
pub fn cached_events(client: &Client) -> Vec<Event> {
    let mut out = Vec::new();
    match client.cache().conversations() {
        Ok(list) => out.push(Event::Conversations(list)),
        Err(e) => out.push(Event::Done(Err(format!("cannot read the cache: {e}")))),
    }
    if let Ok(entries) = client.outbox()
        && !entries.is_empty()
    {
        out.push(Event::Outbox(entries));
    }
    out
}

/// The newest cached messages of a conversation.
pub fn cached_latest(client: &Client, id: ConversationId) -> Event {
    match client.cache().messages(id, None, CACHE_PAGE) {
        Ok(messages) => Event::History {
            conversation_id: id,
            messages,
            page: Page::Latest,
        },
        Err(e) => Event::HistoryFailed {
            conversation_id: id,
            error: e.to_string(),
        },
    }
}

/// Maps what the connection reports to the interface's events.
pub fn from_core(ev: CoreEvent) -> Option<Event> {
    Some(match ev {
        CoreEvent::ConnectionState(s) => Event::Link(match s {
            ConnectionState::Connecting => LinkEvent::Connecting,
            ConnectionState::Online => LinkEvent::Online,
            ConnectionState::Offline { retry_in, reason } => {
                LinkEvent::Offline { retry_in, reason }
            }
            ConnectionState::Error { message, .. } => LinkEvent::Error(message),
        }),
        CoreEvent::Message(m) => Event::Message {
            message: m.message,
            conversation: m.conversation,
            replayed: m.replayed,
        },
        CoreEvent::Conversation(c) => Event::Conversation(c),
        CoreEvent::Removed {
            conversation_id,
            target,
        } => Event::Removed {
            conversation_id,
            target,
        },
        CoreEvent::ServerError { message, .. } => Event::ServerError(message),
        CoreEvent::OutboxSent { client_id, ack, .. } => Event::OutboxSent { client_id, ack },
        CoreEvent::OutboxFailed {
            client_id, error, ..
        } => Event::OutboxFailed { client_id, error },
        CoreEvent::Presence(p) => Event::Presence(p),
        CoreEvent::Typing {
            conversation_id,
            user,
            active,
            ..
        } => Event::Typing {
            conversation_id,
            user,
            active,
        },
        CoreEvent::Receipt { receipt, .. } => Event::Receipt(receipt),
        CoreEvent::Unread {
            conversation_id,
            unread,
            read_seq,
            ..
        } => Event::Unread {
            conversation_id,
            unread,
            read_seq,
        },
        CoreEvent::ConversationState(s) => Event::ConversationState(s),
        CoreEvent::Settings(s) => Event::Settings(s),
        _ => return None,
    })
}

fn from_term(ev: TermEvent) -> Option<Event> {
    match ev {
        TermEvent::Key(k) => Some(Event::Key(k)),
        TermEvent::Mouse(m) => Some(Event::Mouse(m)),
        TermEvent::Paste(p) => Some(Event::Paste(p)),
        TermEvent::Resize(w, h) => Some(Event::Resize(w, h)),
        _ => None,
    }
}

// ----- terminal setup and restore -----

static ACTIVE: AtomicBool = AtomicBool::new(false);
static KEYBOARD_FLAGS: AtomicBool = AtomicBool::new(false);
static MOUSE: AtomicBool = AtomicBool::new(false);

/// Sets the terminal up. Returns whether the terminal answered the keyboard query (a
/// terminal that does not answer queries is not asked about graphics either).
fn enter(mouse: bool) -> std::io::Result<bool> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = std::io::stdout();
    crossterm::execute!(out, EnterAlternateScreen, EnableBracketedPaste)?;
    if mouse {
        crossterm::execute!(out, EnableMouseCapture)?;
        MOUSE.store(true, Ordering::SeqCst);
    }
    // Lets terminals that can (kitty, foot, WezTerm, ...) report Shift-Enter.
    let answered = match crossterm::terminal::supports_keyboard_enhancement() {
        Ok(true) => {
            crossterm::execute!(
                out,
                PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::DISAMBIGUATE_ESCAPE_CODES)
            )?;
            KEYBOARD_FLAGS.store(true, Ordering::SeqCst);
            true
        }
        Ok(false) => true,
        Err(_) => false,
    };
    Ok(answered)
}

/// Puts the terminal back as it was. Safe to call more than once, and from a panic hook.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout();
    if KEYBOARD_FLAGS.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(out, PopKeyboardEnhancementFlags);
    }
    if MOUSE.swap(false, Ordering::SeqCst) {
        let _ = crossterm::execute!(out, DisableMouseCapture);
    }
    let _ = crossterm::execute!(
        out,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
    let _ = disable_raw_mode();
    let _ = out.flush();
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// Restores the terminal when dropped (normal exit, `?` errors).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

// ----- the loop -----

/// The interface up to its first frame.
pub struct Boot {
    pub state: State,
    pub ctx: Ctx,
    /// Results of effects.
    pub results: mpsc::UnboundedReceiver<Event>,
    /// The connection's events.
    pub core: mpsc::Receiver<CoreEvent>,
}

fn config_path(client: &Client, opts: &Options) -> PathBuf {
    opts.config
        .clone()
        .unwrap_or_else(|| Config::path(&client.paths().config_dir))
}

/// Builds the state from the cache, starts the connection and draws the first full
/// frame, without waiting for the network. Must run inside a tokio runtime.
pub fn boot<B: Backend>(
    client: &Client,
    opts: &Options,
    terminal: &mut Terminal<B>,
) -> Result<Boot, Error>
where
    Error: From<B::Error>,
{
    boot_with(client, opts, terminal, preview::halfblocks())
}

/// [`boot`] with the image protocol found for the terminal.
pub fn boot_with<B: Backend>(
    client: &Client,
    opts: &Options,
    terminal: &mut Terminal<B>,
    picker: Picker,
) -> Result<Boot, Error>
where
    Error: From<B::Error>,
{
    let mut state = initial_state(client, opts);
    let font = picker.font_size();
    state.previews.cell = (font.width.max(1), font.height.max(1));
    state.previews.protocol = preview::protocol_name(picker.protocol_type());
    let size = terminal.size()?;
    state.size = (size.width, size.height);
    let (tx, mut results) = mpsc::unbounded_channel::<Event>();
    // A cursor of its own: the interface must not take messages away from a
    // `natter listen` script sharing this NATTER_HOME (and vice versa).
    let (conn, core) =
        Connection::spawn_with_cursor(client.clone(), ConnectOptions::default(), TUI_CURSOR);
    let ctx = Ctx {
        client: client.clone(),
        conn,
        tx,
        desktop: Arc::new(tokio::sync::Mutex::new(Desktop::new("natter"))),
        picker: Arc::new(picker),
        download_dir: state.config.download_dir.clone(),
        opener: state.config.opener.clone(),
    };
    for ev in cached_events(client) {
        apply(&mut state, ev, &ctx);
    }
    // Results of the startup effects that came from the cache (no network) are in the
    // channel already: take them before the first frame.
    while let Ok(ev) = results.try_recv() {
        apply(&mut state, ev, &ctx);
    }
    draw(terminal, &mut state)?;
    Ok(Boot {
        state,
        ctx,
        results,
        core,
    })
}

/// Runs the interface until the user quits (or SIGTERM/SIGHUP/SIGINT).
pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
    let config = Config::load(&config_path(&client, &opts)).0;
    install_panic_hook();
    let answers = enter(config.mouse)?;
    let _guard = Guard;
    // Before anything reads terminal input: the query reads the answers itself.
    let picker = if config.previews {
        preview::detect(config.image_protocol, answers)
    } else {
        preview::halfblocks()
    };
    tracing::debug!(
        "image previews: {} ({:?})",
        preview::protocol_name(picker.protocol_type()),
        picker.font_size()
    );
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let Boot {
        mut state,
        ctx,
        mut results,
        mut core,
    } = boot_with(&client, &opts, &mut terminal, picker)?;
    let conn = ctx.conn.clone();

    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signals = Signals::new()?;

    loop {
        let ev = tokio::select! {
            t = input.next() => match t {
                Some(Ok(t)) => from_term(t),
                // The terminal is gone (stdin closed): nothing more can be typed.
                Some(Err(_)) | None => Some(Event::Terminate),
            },
            c = core.recv() => match c {
                Some(c) => from_core(c),
                None => Some(Event::Link(LinkEvent::Error("the connection stopped".into()))),
            },
            Some(r) = results.recv() => Some(r),
            _ = tick.tick() => Some(Event::Tick { now: Instant::now(), wall: OffsetDateTime::now_utc() }),
            _ = signals.recv() => Some(Event::Terminate),
        };
        let mut edits = Vec::new();
        if let Some(ev) = ev {
            edits.extend(apply(&mut state, ev, &ctx));
        }
        // Take whatever else is ready before drawing: a burst (a replay after
        // reconnecting) becomes one frame, not hundreds.
        for _ in 0..512 {
            let next = match results.try_recv() {
                Ok(r) => Some(r),
                Err(_) => match core.try_recv() {
                    Ok(c) => from_core(c),
                    Err(_) => break,
                },
            };
            if let Some(ev) = next {
                edits.extend(apply(&mut state, ev, &ctx));
            }
        }
        if state.quit {
            break;
        }
        if let Some(text) = edits.pop() {
            drop(input);
            let result = edit_externally(&text, state.config.mouse).await;
            input = EventStream::new();
            terminal.clear()?;
            update(&mut state, Event::Edited(result));
            state.dirty = true;
        }
        if state.dirty {
            draw(&mut terminal, &mut state)?;
        }
    }
    conn.shutdown().await;
    drop(terminal);
    restore();
    Ok(())
}

/// Draws the state if needed and clears its dirty flag.
pub fn draw<B: Backend>(terminal: &mut Terminal<B>, state: &mut State) -> Result<(), Error>
where
    Error: From<B::Error>,
{
    terminal.draw(|f| {
        let area = f.area();
        f.render_widget(&*state, area);
        if let Some(p) = cursor_position(state, area) {
            f.set_cursor_position(p);
        }
    })?;
    state.dirty = false;
    Ok(())
}

impl From<std::convert::Infallible> for Error {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Runs `$VISUAL`/`$EDITOR` (default `vi`) on a temporary file holding `text`, with the
/// terminal handed over to it.
async fn edit_externally(text: &str, mouse: bool) -> Result<Option<String>, String> {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("natter-{}.txt", uuid::Uuid::now_v7()));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    restore();
    let editor = std::env::var("VISUAL")
        .ok()
        .or_else(|| std::env::var("EDITOR").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let mut parts = editor.split_whitespace();
    let program = parts.next().unwrap_or("vi").to_string();
    let status = tokio::process::Command::new(&program)
        .args(parts)
        .arg(&path)
        .status()
        .await;
    let back = enter(mouse).map(drop);
    let result = match status {
        Err(e) => Err(format!("cannot run {program}: {e}")),
        Ok(s) if !s.success() => Err(format!("{program} exited with {s}; message unchanged")),
        Ok(_) => match std::fs::read_to_string(&path) {
            Ok(t) if t.trim().is_empty() => Ok(None),
            Ok(t) => Ok(Some(t)),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        },
    };
    let _ = std::fs::remove_file(&path);
    back.map_err(|e| format!("cannot restore the terminal: {e}"))?;
    result
}

// ----- effects -----

/// What effects need: the client, the connection and the way back into the loop.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    pub conn: Connection,
    pub tx: mpsc::UnboundedSender<Event>,
    pub desktop: Arc<tokio::sync::Mutex<Desktop>>,
    /// How previews are encoded for this terminal.
    pub picker: Arc<Picker>,
    pub download_dir: Option<PathBuf>,
    pub opener: Option<String>,
}

/// Runs `update` and starts its effects. Returns the texts to edit in `$EDITOR` (the
/// loop does that, since it owns the terminal).
pub fn apply(state: &mut State, ev: Event, ctx: &Ctx) -> Vec<String> {
    let mut edits = Vec::new();
    for fx in update(state, ev) {
        match fx {
            Effect::Edit { text } => edits.push(text),
            Effect::Quit => {}
            other => exec(other, ctx),
        }
    }
    edits
}

fn is_offline(e: &natter_client_core::Error) -> bool {
    matches!(e, natter_client_core::Error::Unreachable { .. })
}

fn contiguous_tail(mut messages: Vec<Message>, before: i64) -> Vec<Message> {
    if messages.last().is_none_or(|m| m.seq != before - 1) {
        return Vec::new();
    }
    let mut start = messages.len() - 1;
    while start > 0 && messages[start - 1].seq + 1 == messages[start].seq {
        start -= 1;
    }
    messages.drain(..start);
    messages
}

/// Starts one effect. Local reads (the cache) happen at once; everything that talks to
/// the server runs in a task and reports back through `ctx.tx`.
pub fn exec(fx: Effect, ctx: &Ctx) {
    let Ctx {
        client,
        conn,
        tx,
        desktop,
        picker,
        download_dir,
        opener,
    } = ctx.clone();
    let progress_tx = tx.clone();
    let report = move |ev: Event| {
        let _ = tx.send(ev);
    };
    match fx {
        Effect::Send {
            target,
            client_id,
            text,
            attachments,
        } => {
            let result = Target::parse(&target)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    client
                        .queue_with(&t, &text, attachments, Some(client_id.clone()))
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(_) => {
                    tokio::spawn(async move { conn.flush_outbox().await });
                }
                Err(e) => report(Event::Queued {
                    client_id,
                    result: Err(e),
                }),
            }
        }
        Effect::Flush => {
            tokio::spawn(async move { conn.flush_outbox().await });
        }
        Effect::LoadLatest { conversation_id } => {
            report(cached_latest(&client, conversation_id));
            tokio::spawn(async move {
                let q = HistoryQuery {
                    limit: Some(SERVER_PAGE),
                    ..HistoryQuery::default()
                };
                match client.rest().history(conversation_id, &q).await {
                    Ok(page) => {
                        for m in &page.messages {
                            let _ = client.cache().put_message(m);
                        }
                        report(Event::History {
                            conversation_id,
                            messages: page.messages,
                            page: Page::Latest,
                        });
                    }
                    Err(e) if is_offline(&e) => {}
                    Err(e) => report(Event::HistoryFailed {
                        conversation_id,
                        error: e.to_string(),
                    }),
                }
            });
        }
        Effect::LoadOlder {
            conversation_id,
            before,
        } => {
            let cached = client
                .cache()
                .messages(conversation_id, Some(before), SERVER_PAGE)
                .map(|m| contiguous_tail(m, before))
                .unwrap_or_default();
            if !cached.is_empty() {
                let complete = cached[0].seq <= 1;
                report(Event::History {
                    conversation_id,
                    messages: cached,
                    page: Page::Older { complete },
                });
                return;
            }
            tokio::spawn(async move {
                let q = HistoryQuery {
                    before: Some(before),
                    limit: Some(SERVER_PAGE),
                    ..HistoryQuery::default()
                };
                match client.rest().history(conversation_id, &q).await {
                    Ok(page) => {
                        for m in &page.messages {
                            let _ = client.cache().put_message(m);
                        }
                        let complete =
                            !page.has_more || page.messages.first().is_some_and(|m| m.seq <= 1);
                        report(Event::History {
                            conversation_id,
                            messages: page.messages,
                            page: Page::Older { complete },
                        });
                    }
                    Err(e) => report(Event::HistoryFailed {
                        conversation_id,
                        error: if is_offline(&e) {
                            "offline: older messages load once connected".into()
                        } else {
                            e.to_string()
                        },
                    }),
                }
            });
        }
        Effect::RefreshConversations => {
            tokio::spawn(async move {
                match client.conversations().await {
                    Ok(list) => report(Event::Conversations(list)),
                    Err(e) if is_offline(&e) => return,
                    Err(e) => report(Event::Done(Err(e.to_string()))),
                }
                if let Ok(states) = client.states().await {
                    for s in states {
                        report(Event::ConversationState(s));
                    }
                }
                if let Ok(p) = client.presence(&[]).await {
                    report(Event::Presence(p));
                }
                if let Ok(s) = client.settings().await {
                    report(Event::Settings(s));
                }
            });
        }
        Effect::Open { target, text } => {
            tokio::spawn(async move {
                let result = match Target::parse(&target) {
                    Ok(t) => client.resolve(&t).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                report(match result {
                    Ok(info) => Event::Opened { info, text },
                    Err(e) => Event::Done(Err(format!("cannot open {target}: {e}"))),
                });
            });
        }
        Effect::Group(op) => {
            tokio::spawn(async move {
                let me = client.username().to_string();
                let ev = match op {
                    GroupOp::Create { name, members } => {
                        match client.create_group(&name, members).await {
                            Ok(g) => {
                                if let Ok(list) = client.conversations().await {
                                    report(Event::Conversations(list));
                                }
                                Event::Done(Ok(format!(
                                    "created #{} with {} members",
                                    g.name,
                                    g.members.len()
                                )))
                            }
                            Err(e) => Event::Done(Err(e.to_string())),
                        }
                    }
                    GroupOp::Add { name, users } => match client.add_members(&name, users).await {
                        Ok(g) => {
                            Event::Done(Ok(format!("#{} has {} members", g.name, g.members.len())))
                        }
                        Err(e) => Event::Done(Err(e.to_string())),
                    },
                    GroupOp::Remove { name, user } => {
                        match client.remove_member(&name, &user).await {
                            Ok(_) => Event::Done(Ok(format!("removed {user} from #{name}"))),
                            Err(e) => Event::Done(Err(e.to_string())),
                        }
                    }
                    GroupOp::Leave { name } => match client.remove_member(&name, &me).await {
                        Ok(_) => Event::Done(Ok(format!("you left #{name}"))),
                        Err(e) => Event::Done(Err(e.to_string())),
                    },
                    GroupOp::Info { name } => match client.group(&name).await {
                        Ok(g) => {
                            let created = g
                                .created_at
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default();
                            let mut lines = vec![
                                format!("{} members, created {created}", g.members.len()),
                                String::new(),
                            ];
                            lines.extend(
                                g.members
                                    .iter()
                                    .map(|m| format!("{:<8} {}", m.role.as_str(), m.username)),
                            );
                            Event::Info {
                                title: format!("#{}", g.name),
                                lines,
                            }
                        }
                        Err(e) => Event::Done(Err(e.to_string())),
                    },
                };
                report(ev);
            });
        }
        Effect::MarkRead {
            conversation_id,
            seq,
        } => {
            tokio::spawn(async move { conn.mark_read(conversation_id, seq).await });
        }
        Effect::Typing {
            conversation_id,
            active,
        } => {
            tokio::spawn(async move { conn.typing(conversation_id, active).await });
        }
        Effect::SetPresence(state) => {
            tokio::spawn(async move {
                if let Err(e) = client.set_presence(state).await {
                    report(Event::Done(Err(format!("cannot change presence: {e}"))));
                }
            });
        }
        Effect::Mute { target, muted } => {
            tokio::spawn(async move {
                let result = match Target::parse(&target) {
                    Ok(t) if muted => client.mute(&t, None).await.map(drop),
                    Ok(t) => client.unmute(&t).await.map(drop),
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = result {
                    report(Event::Done(Err(format!(
                        "cannot change mute of {target}: {e}"
                    ))));
                }
            });
        }
        Effect::Notify { title, body } => notify(desktop, title, body, report),
        Effect::Upload { transfer, path } => {
            tokio::spawn(async move {
                let total = tokio::fs::metadata(&path)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                let progress = progress(transfer, total, progress_tx);
                let result = client
                    .upload(&path, Some(progress))
                    .await
                    .map_err(|e| e.to_string());
                report(Event::Uploaded { transfer, result });
            });
        }
        Effect::Download {
            transfer,
            id,
            name,
            size,
            open,
        } => {
            tokio::spawn(async move {
                let result = download(
                    &client,
                    &id,
                    &name,
                    open,
                    download_dir,
                    opener,
                    progress(transfer, size, progress_tx),
                )
                .await;
                report(Event::Downloaded { transfer, result });
            });
        }
        Effect::FetchPreview { id, cols, rows } => {
            tokio::spawn(async move {
                let result = match client.thumbnail(&id).await {
                    Ok(png) => tokio::task::spawn_blocking(move || {
                        preview::encode(&png, &picker, cols, rows)
                    })
                    .await
                    .unwrap_or_else(|e| Err(format!("the preview task failed: {e}"))),
                    Err(e) => Err(e.to_string()),
                };
                report(Event::Preview { id, result });
            });
        }
        Effect::CompletePath { start, word } => {
            let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let candidates = files::complete_path(&word, home.as_deref(), &cwd);
            report(Event::PathCompletions {
                start,
                word,
                candidates,
            });
        }
        Effect::Edit { .. } | Effect::Quit => {}
    }
}

/// A progress callback that reports each whole percent once (a transfer reports many
/// chunks; the screen needs at most a hundred updates).
fn progress(
    transfer: u64,
    total: u64,
    tx: mpsc::UnboundedSender<Event>,
) -> natter_client_core::rest::Progress {
    let last = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    Arc::new(move |done: u64| {
        let pct = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        if last.swap(pct, Ordering::Relaxed) != pct {
            let _ = tx.send(Event::Progress {
                transfer,
                done,
                total,
            });
        }
    })
}

/// The user's download directory: `download_dir` from `tui.toml`, else the platform's
/// (`~/Downloads`), else the current directory.
fn save_dir(configured: Option<PathBuf>) -> PathBuf {
    configured
        .or_else(|| directories::UserDirs::new().and_then(|u| u.download_dir().map(PathBuf::from)))
        .filter(|d| d.is_dir())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Saves attachment `id` under a free name in the download directory, or (`open`)
/// fetches it into the cache directory and hands it to the system opener. Returns
/// where the file is.
async fn download(
    client: &Client,
    id: &str,
    name: &str,
    open: bool,
    download_dir: Option<PathBuf>,
    opener: Option<String>,
    progress: natter_client_core::rest::Progress,
) -> Result<PathBuf, String> {
    let safe = natter_protocol::sanitize::filename(name);
    if !open {
        let dir = save_dir(download_dir);
        let dest = files::free_path(&dir, &safe);
        return client
            .download(id, Some(&dest), false, Some(progress))
            .await
            .map(|r| r.path)
            .map_err(|e| e.to_string());
    }
    // One directory per attachment: the name is the sender's, ids never collide.
    let dir = client
        .paths()
        .cache_dir
        .join("files")
        .join(natter_protocol::sanitize::filename(id));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dest = dir.join(&safe);
    // Fetched (and verified) before: open it again without downloading.
    if !tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        client
            .download(id, Some(&dest), false, Some(progress))
            .await
            .map_err(|e| e.to_string())?;
    }
    let (program, args) = files::opener(opener.as_deref());
    // Detached: its own process group (Ctrl-C here is not for it), no terminal I/O (it
    // must not draw over the interface), and reaped in the background.
    let child = tokio::process::Command::new(&program)
        .args(&args)
        .arg(&dest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(false)
        .spawn();
    match child {
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            Ok(dest)
        }
        Err(e) => Err(format!(
            "cannot run {program} ({e}); the file is at {}",
            dest.display()
        )),
    }
}

/// A desktop notification through the client library's notifier. The text is already
/// sanitized (state holds only clean text); the notifier's markup escaping still
/// applies. A missing notification service is reported once in the status line.
fn notify(
    desktop: Arc<tokio::sync::Mutex<Desktop>>,
    title: String,
    body: String,
    report: impl Fn(Event) + Send + 'static,
) {
    let cap = |s: &str, max: usize| -> String {
        let mut out: String = s.chars().take(max).collect();
        if s.chars().count() > max {
            out.pop();
            out.push('…');
        }
        out
    };
    let text = NotificationText {
        summary: escape_markup(&cap(&title, notify::MAX_SUMMARY_CHARS)),
        body: escape_markup(&cap(&body, notify::MAX_BODY_CHARS)),
        target: None,
    };
    tokio::spawn(async move {
        if let Shown::No {
            reason,
            first: true,
        } = desktop.lock().await.show(&text).await
        {
            report(Event::Done(Err(format!(
                "desktop notifications are unavailable: {reason}"
            ))));
        }
    });
}

/// For tests and benchmarks: the terminal type the interface draws to.
pub type CrosstermTerminal = Terminal<CrosstermBackend<Stdout>>;
