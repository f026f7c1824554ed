//! Speed and memory of the interface: `cargo bench -p natter-tui` (figures go to
//! docs/BENCHMARKS.md). No criterion here: each figure is one scenario measured
//! directly, printed with what it means.
//!
//! 1. Start to first full frame with 100 conversations and 10,000 cached messages: open
//!    the client, build the state from the cache, start the connection (to a server that
//!    is not there: the first frame never waits for the network), draw.
//! 2. Memory (VmRSS) at that point.
//! 3. CPU while idle: the same event sources as `natter` (the connection retrying, the
//!    one-second tick) for 10 s, drawing only when the state changed.
//! 4. Frame time (update + draw) while paging through a 100,000-message conversation.
//! 5. The same through 10,000 messages of which every fourth carries a text file and an
//!    image whose half-block preview is drawn (previews on: the visible ones are looked
//!    up, asked for once, and drawn from the cache).

use std::time::{Duration, Instant};

use natter_client_core::{Cache, Client, Paths, Session};
use natter_protocol::{Attachment, ConversationInfo, ConversationKind, Message};
use natter_tui::app::{self, Boot, Options};
use natter_tui::event::{Event, Page};
use natter_tui::{Config, State, update};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use time::OffsetDateTime;

const COLS: u16 = 120;
const ROWS: u16 = 40;

fn conv(id: i64, n: i64, last_seq: i64, t: OffsetDateTime) -> ConversationInfo {
    let group = id % 3 == 0;
    ConversationInfo {
        id,
        kind: if group {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        },
        name: group.then(|| format!("team-{n:03}")),
        peer: (!group).then(|| format!("user{n:03}")),
        last_seq,
        last_activity: t,
        member_count: if group { 12 } else { 2 },
    }
}

fn message(id: i64, conversation_id: i64, seq: i64, t: OffsetDateTime) -> Message {
    let senders = ["alice", "bob", "carol", "dave"];
    Message {
        id,
        conversation_id,
        seq,
        sender: senders[(seq as usize / 3) % senders.len()].into(),
        text: format!(
            "message {seq} in conversation {conversation_id}: some ordinary chat text that \
             is long enough to wrap on a narrow terminal now and then 🙂"
        ),
        sent_at: t + time::Duration::seconds(seq * 20),
        client_id: format!("c{id}"),
        event: None,
        attachments: Vec::new(),
    }
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime), counted from after the command name.
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would run this too: keep it
    // quick there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::under(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    Session {
        server: server.clone(),
        username: "alice".into(),
        token: "t".into(),
    }
    .save(&paths)
    .unwrap();

    // 100 conversations with 100 cached messages each.
    let t0 = OffsetDateTime::now_utc() - time::Duration::days(2);
    {
        let client = Client::open(paths.clone(), None).unwrap();
        let cache: &Cache = client.cache();
        let mut id = 0;
        for c in 1..=100i64 {
            cache
                .put_conversation(&conv(c, c, 100, t0 + time::Duration::minutes(c)))
                .unwrap();
            for seq in 1..=100 {
                id += 1;
                cache.put_message(&message(id, c, seq, t0)).unwrap();
            }
        }
    }
    println!(
        "natter-tui benchmarks ({COLS}x{ROWS}, {} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // 1 + 2: start to first full frame.
        let runs = if quick { 2 } else { 10 };
        let mut times = Vec::new();
        let mut boot = None;
        for _ in 0..runs {
            let start = Instant::now();
            let client = Client::open(paths.clone(), None).unwrap();
            let mut terminal = Terminal::new(TestBackend::new(COLS, ROWS)).unwrap();
            let b = app::boot(&client, &Options::default(), &mut terminal).unwrap();
            times.push(start.elapsed());
            let screen = terminal.backend().to_string();
            assert!(screen.contains("@ user098"), "the sidebar is drawn:\n{screen}");
            assert!(screen.contains("message 100 in conversation 100"), "the timeline is drawn:\n{screen}");
            if let Some(old) = boot.replace((b, terminal)) {
                old.0.ctx.conn.shutdown().await;
            }
        }
        times.sort();
        let (rss, hwm) = rss_kib();
        println!(
            "start to first full frame (100 conversations, 10,000 cached messages): median {}, max {} over {runs} runs",
            ms(percentile(&times, 0.5)),
            ms(*times.last().unwrap())
        );
        println!("memory after the first frame: VmRSS {} KiB, peak VmHWM {} KiB", rss, hwm);

        // 3: idle.
        let (Boot { mut state, ctx, mut results, mut core }, mut terminal) = boot.unwrap();
        let idle = Duration::from_secs(if quick { 1 } else { 10 });
        let cpu0 = cpu_time();
        let until = tokio::time::Instant::now() + idle;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut frames = 0;
        loop {
            let ev = tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                c = core.recv() => c.and_then(app::from_core),
                Some(r) = results.recv() => Some(r),
                _ = tick.tick() => Some(Event::Tick { now: Instant::now(), wall: OffsetDateTime::now_utc() }),
            };
            if let Some(ev) = ev {
                app::apply(&mut state, ev, &ctx);
            }
            if state.dirty {
                frames += 1;
                app::draw(&mut terminal, &mut state).unwrap();
            }
        }
        let cpu = cpu_time().saturating_sub(cpu0);
        println!(
            "idle for {}s (offline, reconnecting with backoff): CPU {} ({:.2}% of one core), {frames} frames drawn",
            idle.as_secs(),
            ms(cpu),
            cpu.as_secs_f64() / idle.as_secs_f64() * 100.0
        );
        ctx.conn.shutdown().await;
    });

    // 4: paging through 100,000 messages.
    let n: i64 = if quick { 5_000 } else { 100_000 };
    let mut state = State::new("alice", &server, Config::default(), Instant::now());
    state.size = (COLS, ROWS);
    let _ = update(&mut state, Event::Conversations(vec![conv(1, 1, n, t0)]));
    let messages: Vec<Message> = (1..=n).map(|seq| message(seq, 1, seq, t0)).collect();
    let _ = update(
        &mut state,
        Event::History {
            conversation_id: 1,
            messages,
            page: Page::Latest,
        },
    );
    let mut terminal = Terminal::new(TestBackend::new(COLS, ROWS)).unwrap();
    let page_up = Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::PageUp,
        crossterm::event::KeyModifiers::NONE,
    ));
    let mut frame = |state: &mut State, ev: Option<Event>| {
        let start = Instant::now();
        if let Some(ev) = ev {
            let _ = update(state, ev);
        }
        terminal
            .draw(|f| f.render_widget(&*state, f.area()))
            .unwrap();
        start.elapsed()
    };
    let mut steady: Vec<Duration> = (0..200).map(|_| frame(&mut state, None)).collect();
    steady.sort();
    let mut paging = Vec::new();
    let pages = if quick { 100 } else { 3_000 };
    for _ in 0..pages {
        paging.push(frame(&mut state, Some(page_up.clone())));
    }
    let top = state.current().and_then(|c| c.anchor).map(|a| a.key);
    paging.sort();
    println!(
        "frame at the newest of {n} messages: p50 {}, p99 {}",
        ms(percentile(&steady, 0.5)),
        ms(percentile(&steady, 0.99))
    );
    println!(
        "PageUp + frame, {pages} pages back through {n} messages (ended at {top:?}): p50 {}, p99 {}, max {}",
        ms(percentile(&paging, 0.5)),
        ms(percentile(&paging, 0.99)),
        ms(*paging.last().unwrap())
    );

    // 5: files and image previews.
    let n: i64 = if quick { 1_000 } else { 10_000 };
    let mut state = State::new("alice", &server, Config::default(), Instant::now());
    state.size = (COLS, ROWS);
    let _ = update(&mut state, Event::Conversations(vec![conv(1, 1, n, t0)]));
    let messages: Vec<Message> = (1..=n)
        .map(|seq| {
            let mut m = message(seq, 1, seq, t0);
            if seq % 4 == 0 {
                m.attachments = vec![
                    attachment(
                        &format!("log{seq}"),
                        "build.log",
                        2_100_000,
                        "text/plain",
                        None,
                    ),
                    attachment(
                        &format!("img{seq}"),
                        "screenshot.png",
                        184_320,
                        "image/png",
                        Some((1920, 1080)),
                    ),
                ];
            }
            m
        })
        .collect();
    let picker = natter_tui::preview::halfblocks();
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(256, 144, |x, y| {
        image::Rgb([x as u8, y as u8, 128])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    let img = natter_tui::preview::encode(&png, &picker, 26, 8).unwrap();
    // The runtime's part, without the network: every preview asked for arrives at once.
    let step = |state: &mut State, ev: Event| {
        let mut fx = update(state, ev);
        while let Some(f) = fx.pop() {
            if let natter_tui::Effect::FetchPreview { id, .. } = f {
                fx.extend(update(
                    state,
                    Event::Preview {
                        id,
                        result: Ok(img.clone()),
                    },
                ));
            }
        }
    };
    step(
        &mut state,
        Event::History {
            conversation_id: 1,
            messages,
            page: Page::Latest,
        },
    );
    let mut terminal = Terminal::new(TestBackend::new(COLS, ROWS)).unwrap();
    let mut frame = |state: &mut State, ev: Option<Event>| {
        let start = Instant::now();
        if let Some(ev) = ev {
            step(state, ev);
        }
        terminal
            .draw(|f| f.render_widget(&*state, f.area()))
            .unwrap();
        start.elapsed()
    };
    let mut steady: Vec<Duration> = (0..200).map(|_| frame(&mut state, None)).collect();
    steady.sort();
    let mut paging = Vec::new();
    let pages = if quick { 30 } else { 300 };
    for _ in 0..pages {
        paging.push(frame(&mut state, Some(page_up.clone())));
    }
    paging.sort();
    let screen = terminal.backend().to_string();
    assert!(
        screen.contains("📎 build.log"),
        "files are drawn:\n{screen}"
    );
    println!(
        "with files and previews, frame at the newest of {n} messages: p50 {}, p99 {}; previews cached: {}",
        ms(percentile(&steady, 0.5)),
        ms(percentile(&steady, 0.99)),
        state.previews.len()
    );
    println!(
        "with files and previews, PageUp + frame, {pages} pages back: p50 {}, p99 {}, max {}",
        ms(percentile(&paging, 0.5)),
        ms(percentile(&paging, 0.99)),
        ms(*paging.last().unwrap())
    );
}

fn attachment(id: &str, name: &str, size: u64, mime: &str, dims: Option<(u32, u32)>) -> Attachment {
    Attachment {
        id: id.into(),
        name: name.into(),
        size,
        mime: mime.into(),
        hash: "0".repeat(64),
        width: dims.map(|d| d.0),
        height: dims.map(|d| d.1),
        thumbnail: dims.is_some(),
    }
}
