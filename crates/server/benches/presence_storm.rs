//! Presence frames when 1,000 connected users of shared groups reconnect at once.
//!
//! A real `natterd` (in process, SQLite in a temp dir, port 0) and 1,000 real WebSocket
//! clients. 1,000 users in 20 groups of 100 (10 by blocks of ids, 10 by id modulo 10), so
//! each user shares a conversation with 189 others. Three phases, each counting the
//! `presence` frames every client receives (and the presence entries inside them):
//!
//! 1. cold start: all 1,000 connect at once;
//! 2. reconnect storm: all 1,000 sockets drop and reconnect at once (a network blip);
//! 3. outage: all drop, stay away longer than the grace period, then reconnect at once.
//!
//! The naive figure is what one frame per (changed user, online contact) would cost.
//! Run: `cargo bench -p natter-server --bench presence_storm` (`NATTER_BENCH_USERS=N`
//! for another size, a multiple of 100).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use natter_server::Config;
use natter_server::domain::{hash_token, new_token};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http};

#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    entries: AtomicU64,
    connected: AtomicU64,
}

impl Counts {
    fn take(&self) -> (u64, u64) {
        (
            self.frames.swap(0, Ordering::SeqCst),
            self.entries.swap(0, Ordering::SeqCst),
        )
    }
}

async fn client(url: String, token: String, counts: Arc<Counts>) {
    let mut req = url.as_str().into_client_request().expect("ws url");
    req.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    counts.connected.fetch_add(1, Ordering::SeqCst);
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg
            && t.as_str().starts_with("{\"type\":\"presence\"")
        {
            let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
            let n = v["presence"].as_array().map_or(0, Vec::len) as u64;
            counts.frames.fetch_add(1, Ordering::Relaxed);
            counts.entries.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Connects every user at once and waits until all are greeted.
async fn connect_all(url: &str, tokens: &[String], counts: &Arc<Counts>) -> JoinSet<()> {
    counts.connected.store(0, Ordering::SeqCst);
    let mut set = JoinSet::new();
    for t in tokens {
        set.spawn(client(url.to_string(), t.clone(), counts.clone()));
    }
    while counts.connected.load(Ordering::SeqCst) < tokens.len() as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    set
}

/// Waits until no presence frame arrived for `quiet`; returns the time to the last one.
async fn settle(counts: &Counts, start: Instant, quiet: Duration) -> Duration {
    let mut last = counts.frames.load(Ordering::SeqCst);
    let mut last_change = start;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counts.frames.load(Ordering::SeqCst);
        if now != last {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return last_change - start;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let users: usize = std::env::var("NATTER_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    anyhow::ensure!(
        users >= 100 && users.is_multiple_of(100),
        "NATTER_BENCH_USERS: a multiple of 100"
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(users))
}

async fn run(users: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: Some(dir.path().to_path_buf()),
        durability: natter_server::config::Durability::Normal,
        ..Config::default()
    };
    let grace = Duration::from_millis(config.presence_grace_ms);
    let tick = Duration::from_millis(config.live_tick_ms);
    let server = natter_server::Server::new(config).await?;
    let store = server.state.domain.store.clone();
    let live = server.state.domain.live.clone();

    // Accounts and sessions straight through the store: 1,000 Argon2 hashes would only
    // measure Argon2.
    let mut ids = Vec::with_capacity(users);
    let mut tokens = Vec::with_capacity(users);
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    for i in 0..users {
        let u = store.create_user(&format!("u{i:04}"), "-").await?;
        let token = new_token();
        store
            .create_session(u.id, hash_token(&token), None, expires)
            .await?;
        ids.push(u.id);
        tokens.push(token);
    }
    let blocks = users / 100;
    for b in 0..blocks {
        let members = &ids[b * 100..(b + 1) * 100];
        store
            .create_group(members[0], &format!("block{b}"), &members[1..])
            .await?;
    }
    for m in 0..blocks {
        let members: Vec<i64> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % blocks == m)
            .map(|(_, id)| *id)
            .collect();
        store
            .create_group(members[0], &format!("stride{m}"), &members[1..])
            .await?;
    }
    let pairs = store.contacts(&ids).await?.len() as u64;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/api/v1/ws", listener.local_addr()?);
    tokio::spawn(server.serve(listener, std::future::pending()));

    let counts = Arc::new(Counts::default());
    let quiet = grace + tick * 4;
    println!(
        "presence storm: {users} users, 20 groups of 100, {} contacts each, tick {tick:?}, grace {grace:?}",
        pairs / users as u64
    );
    println!(
        "{:<34} {:>9} {:>9} {:>14} {:>10}",
        "phase", "frames", "entries", "naive frames", "settled"
    );

    // 1. Cold start.
    let start = Instant::now();
    let mut set = connect_all(&url, &tokens, &counts).await;
    let took = settle(&counts, start, quiet).await;
    let (f, e) = counts.take();
    // Naive: each user coming online tells each contact already online: half the pairs
    // on average when they arrive in random order.
    println!(
        "{:<34} {f:>9} {e:>9} {:>14} {:>9.2}s",
        "1. cold start (all connect)",
        pairs / 2,
        took.as_secs_f64()
    );

    // 2. Reconnect storm within the grace period.
    set.shutdown().await;
    let start = Instant::now();
    let mut set = connect_all(&url, &tokens, &counts).await;
    let took = settle(&counts, start, quiet).await;
    let (f, e) = counts.take();
    // Naive: offline then online, each told to every contact still connected.
    println!(
        "{:<34} {f:>9} {e:>9} {:>14} {:>9.2}s",
        "2. reconnect storm (< grace)",
        pairs,
        took.as_secs_f64()
    );

    // 3. Outage longer than the grace period, then everyone back at once.
    set.shutdown().await;
    tokio::time::sleep(grace + tick * 4).await;
    let (f_off, _) = counts.take();
    let start = Instant::now();
    let set = connect_all(&url, &tokens, &counts).await;
    let took = settle(&counts, start, quiet).await;
    let (f, e) = counts.take();
    println!(
        "{:<34} {f:>9} {e:>9} {:>14} {:>9.2}s",
        "3. outage > grace, all reconnect",
        pairs / 2,
        took.as_secs_f64()
    );
    println!(
        "(frames while everyone was away: {f_off}; server-side total: {} frames, {} entries)",
        live.stats.presence_frames.load(Ordering::Relaxed),
        live.stats.presence_entries.load(Ordering::Relaxed)
    );
    drop(set);
    Ok(())
}
