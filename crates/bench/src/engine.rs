//! Rooms with senders and receivers: workloads 1 (fan-out), 2 (many small rooms, with a
//! rate ladder), 5 (reconnect storm) and 6 (slow consumers) are all this one engine with
//! different shapes.
//!
//! Every simulated client is one task on a single-threaded runtime owning one socket, so
//! the counters and the histogram are plain `Cell`s. Connection `c` is member `c % members`
//! of room `c / members`; the first `senders` members of a room send, the next one is the
//! room's *witness*: each message it sees returns one in-flight permit to its sender, which
//! bounds the window per sender for both protocols (IRC has no acks).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::{Notify, Semaphore, watch};

use crate::api::{Account, Api};
use crate::procstat::{self, Window};
use crate::report::{Report, round};
use crate::sched::Schedule;
use crate::wire::{Client, Event, Proto, instant_at, now_ns};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Each sender keeps at most `window` messages in flight and sends as fast as that allows.
    Closed,
    /// Each sender sends at a fixed rate (open loop); `window` only caps a runaway backlog.
    Rate,
}

#[derive(Debug, Clone)]
pub struct Shape {
    pub rooms: usize,
    pub members: usize,
    pub senders: usize,
    pub mode: Mode,
    pub window: usize,
    /// Per-sender rate for [`Mode::Rate`], messages per second.
    pub rate: f64,
    pub warmup: f64,
    pub duration: f64,
    /// Percentage of receivers that stop reading once the run starts (workload 6).
    pub slow_pct: f64,
    /// Total rates (all senders together) to step through; stop at the first whose p99
    /// exceeds `p99_target_ms`.
    pub ladder: Vec<f64>,
    pub step_secs: f64,
    pub p99_target_ms: f64,
    /// Drop and reconnect every connection this many seconds into the measured window
    /// (workload 5), spreading reconnects over `storm_window` seconds.
    pub storm_at: Option<f64>,
    pub storm_window: f64,
    pub connect_concurrency: usize,
}

/// Where the server is and how to reach it.
pub struct Target {
    pub proto: Proto,
    pub addr: SocketAddr,
    pub server_pid: Option<u32>,
    pub api: Option<Rc<Api>>,
    pub state: Option<std::path::PathBuf>,
    pub register_concurrency: usize,
    /// Short per-run tag for group, channel and nick names.
    pub run_tag: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Run,
    Storm,
    Stop,
}

struct Shared {
    shape: Shape,
    measuring: Cell<bool>,
    hist: RefCell<Histogram<u64>>,
    delivered: Cell<u64>,
    sent: Cell<u64>,
    echoes: Cell<u64>,
    errors: Cell<u64>,
    closed: Cell<u64>,
    ready: Cell<usize>,
    ready_notify: Notify,
    failure: RefCell<Option<String>>,
    permits: Vec<Semaphore>,
    per_sender_rate: Cell<f64>,
    rate_gen: Cell<u64>,
    // Storm and order checking (Natter only: needs message ids and seqs).
    storm_started: Cell<u64>,
    recovered: Cell<usize>,
    recover_hist: RefCell<Histogram<u64>>,
    other_frames: Cell<u64>,
    presence: Cell<u64>,
    gaps: Cell<u64>,
    dups: Cell<u64>,
    room_max_seq: RefCell<Vec<u64>>,
    kicked: Cell<u64>,
    /// (room, last seq seen) of every connection that stayed up to the end.
    finals: RefCell<Vec<(usize, u64)>>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What one connection is in the shape.
#[derive(Debug, Clone)]
struct Role {
    idx: usize,
    room: usize,
    /// Global sender index when this connection sends.
    sender: Option<u32>,
    witness: bool,
    slow: bool,
    /// Natter conversation id or IRC channel number.
    target: u64,
    token: String,
    nick: String,
}

/// Per-connection order check state.
struct Order {
    last_seq: u64,
    last_id: u64,
}

pub async fn run(
    t: &Target,
    shape: Shape,
    label: &str,
    workload: &str,
) -> anyhow::Result<Vec<Report>> {
    anyhow::ensure!(
        shape.members > shape.senders,
        "a room needs more members than senders"
    );
    anyhow::ensure!(
        shape.storm_at.is_none() || t.proto == Proto::Natter,
        "the reconnect storm measures resume from a cursor, which only Natter has"
    );
    let conns = shape.rooms * shape.members;
    let total_senders = shape.rooms * shape.senders;
    let slow_every = if shape.slow_pct > 0.0 {
        (100.0 / shape.slow_pct).round().max(1.0) as usize
    } else {
        usize::MAX
    };

    // Accounts and groups (Natter) or channel numbers (IRC).
    let mut targets: Vec<u64> = (0..shape.rooms as u64).collect();
    let mut accounts: Vec<Account> = Vec::new();
    if t.proto == Proto::Natter {
        let api = t.api.clone().expect("natter target has an API client");
        accounts =
            crate::api::accounts(&api, t.state.as_deref(), conns, t.register_concurrency).await?;
        let started = std::time::Instant::now();
        let sem = Rc::new(Semaphore::new(8));
        let mut tasks = Vec::new();
        for r in 0..shape.rooms {
            let members: Vec<Account> =
                accounts[r * shape.members..(r + 1) * shape.members].to_vec();
            let (api, sem) = (api.clone(), sem.clone());
            let name = format!("g{}x{r}", t.run_tag);
            tasks.push(tokio::task::spawn_local(async move {
                let _p = sem.acquire().await;
                let refs: Vec<&Account> = members.iter().collect();
                api.create_group(&members[0], &name, &refs).await
            }));
        }
        for (r, task) in tasks.into_iter().enumerate() {
            targets[r] = task.await??;
        }
        eprintln!(
            "created {} groups of {} in {:.1}s",
            shape.rooms,
            shape.members,
            started.elapsed().as_secs_f64()
        );
    }

    let mut permits = Vec::with_capacity(total_senders);
    for _ in 0..total_senders {
        permits.push(Semaphore::new(shape.window));
    }
    let sh = Rc::new(Shared {
        shape: shape.clone(),
        measuring: Cell::new(false),
        hist: RefCell::new(histogram()),
        delivered: Cell::new(0),
        sent: Cell::new(0),
        echoes: Cell::new(0),
        errors: Cell::new(0),
        closed: Cell::new(0),
        ready: Cell::new(0),
        ready_notify: Notify::new(),
        failure: RefCell::new(None),
        permits,
        per_sender_rate: Cell::new(shape.rate),
        rate_gen: Cell::new(0),
        storm_started: Cell::new(0),
        recovered: Cell::new(0),
        recover_hist: RefCell::new(histogram()),
        other_frames: Cell::new(0),
        presence: Cell::new(0),
        gaps: Cell::new(0),
        dups: Cell::new(0),
        room_max_seq: RefCell::new(vec![0; shape.rooms]),
        kicked: Cell::new(0),
        finals: RefCell::new(Vec::new()),
    });

    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let connect_sem = Rc::new(Semaphore::new(shape.connect_concurrency.max(1)));
    let ramp = std::time::Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    let mut slow_count = 0;
    for idx in 0..conns {
        let room = idx / shape.members;
        let pos = idx % shape.members;
        let sender = (pos < shape.senders).then(|| (room * shape.senders + pos) as u32);
        let slow = pos > shape.senders && idx % slow_every == slow_every - 1;
        slow_count += usize::from(slow);
        let role = Role {
            idx,
            room,
            sender,
            witness: pos == shape.senders,
            slow,
            target: targets[room],
            token: accounts
                .get(idx)
                .map(|a| a.token.clone())
                .unwrap_or_default(),
            nick: format!("{}{idx}", t.run_tag),
        };
        tasks.push(tokio::task::spawn_local(conn_task(
            t.proto,
            t.addr,
            role,
            sh.clone(),
            phase_rx.clone(),
            connect_sem.clone(),
        )));
    }
    while sh.ready.get() < conns {
        if let Some(f) = sh.failure.borrow().as_ref() {
            anyhow::bail!("setting up connections failed: {f}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), sh.ready_notify.notified()).await;
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    eprintln!("{conns} connections ready in {ramp_secs:.1}s; running");

    let base = || {
        let mut r = Report {
            label: label.into(),
            workload: workload.into(),
            params: describe(&shape, t.proto),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            persistence: persistence(t),
            server_cpus: t.server_pid.map_or("?".into(), procstat::cpus_allowed),
            driver_cpus: procstat::cpus_allowed(std::process::id()),
            ..Report::default()
        };
        r.extra.insert("connections".into(), conns as f64);
        r.extra.insert("connect_ramp_s".into(), round(ramp_secs, 2));
        r
    };

    let _ = phase_tx.send(Phase::Run);
    let mut reports = Vec::new();
    if shape.ladder.is_empty() {
        tokio::time::sleep(Duration::from_secs_f64(shape.warmup)).await;
        let window = Window::start(t.server_pid);
        reset(&sh);
        sh.measuring.set(true);
        let mut rss_samples: Vec<u64> = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs_f64(shape.duration);
        let storm_at = shape
            .storm_at
            .map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
        let mut stormed = false;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Some(pid) = t.server_pid
                && let Some(rss) = procstat::rss_kb(pid)
            {
                rss_samples.push(rss);
            }
            if let Some(at) = storm_at
                && !stormed
                && tokio::time::Instant::now() >= at
            {
                stormed = true;
                sh.storm_started.set(now_ns());
                let _ = phase_tx.send(Phase::Storm);
            }
        }
        if stormed {
            // Let every connection finish its catch-up before judging losses.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while sh.recovered.get() < conns && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        sh.measuring.set(false);
        let usage = window.finish();
        let mut r = base();
        r.set_usage(&usage);
        r.sent = sh.sent.get();
        r.set_deliveries(sh.delivered.get());
        r.set_latency(&sh.hist.borrow());
        if !rss_samples.is_empty() {
            let first = rss_samples[0];
            let last = *rss_samples.last().unwrap_or(&first);
            r.extra.insert(
                "server_rss_first_mib".into(),
                round(first as f64 / 1024.0, 1),
            );
            r.extra
                .insert("server_rss_last_mib".into(), round(last as f64 / 1024.0, 1));
        }
        if slow_count > 0 {
            r.extra.insert("slow_consumers".into(), slow_count as f64);
        }
        if stormed {
            let h = sh.recover_hist.borrow();
            r.extra
                .insert("reconnected".into(), sh.recovered.get() as f64);
            r.extra
                .insert("recovery_all_s".into(), round(h.max() as f64 / 1e6, 3));
            r.extra.insert(
                "recovery_p50_s".into(),
                round(h.value_at_quantile(0.5) as f64 / 1e6, 3),
            );
            r.extra.insert(
                "non_message_frames_during_recovery".into(),
                sh.other_frames.get() as f64,
            );
            r.extra
                .insert("presence_frames_received".into(), sh.presence.get() as f64);
        }
        reports.push(r);
    } else {
        let n = total_senders.max(1) as f64;
        for &total in &shape.ladder {
            sh.per_sender_rate.set(total / n);
            sh.rate_gen.set(sh.rate_gen.get() + 1);
            tokio::time::sleep(Duration::from_secs_f64(shape.warmup.min(2.0))).await;
            let window = Window::start(t.server_pid);
            reset(&sh);
            sh.measuring.set(true);
            tokio::time::sleep(Duration::from_secs_f64(shape.step_secs)).await;
            sh.measuring.set(false);
            let mut r = base();
            r.workload = format!("{workload} @ {total:.0} msg/s");
            r.set_usage(&window.finish());
            r.sent = sh.sent.get();
            r.set_deliveries(sh.delivered.get());
            r.set_latency(&sh.hist.borrow());
            r.extra.insert("offered_msgs_per_s".into(), total);
            let p99 = r.p99_ms.unwrap_or(f64::INFINITY);
            let achieved = r.sent as f64 / r.secs.max(1e-9);
            eprintln!("  step {total:.0} msg/s: sent {achieved:.0}/s, p99 {p99} ms");
            reports.push(r);
            if p99 > shape.p99_target_ms || achieved < 0.9 * total {
                break;
            }
        }
    }

    let _ = phase_tx.send(Phase::Stop);
    let stop_deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for task in tasks {
        let _ = tokio::time::timeout_at(stop_deadline, task).await;
    }
    if t.proto == Proto::Natter {
        // Everyone leaves the run's groups, so later runs with the same accounts do not
        // pay for this room (presence and membership fan-out to people who share it).
        leave_groups(t, &accounts, &shape).await;
    }
    let order_checked = t.proto == Proto::Natter;
    for r in &mut reports {
        r.extra
            .insert("server_errors".into(), sh.errors.get() as f64);
        r.extra
            .insert("closed_by_server".into(), sh.closed.get() as f64);
        if slow_count > 0 {
            r.extra
                .insert("slow_consumers_disconnected".into(), sh.kicked.get() as f64);
        }
        if order_checked {
            let max = sh.room_max_seq.borrow();
            let mut room_max = max.clone();
            for &(room, seq) in sh.finals.borrow().iter() {
                room_max[room] = room_max[room].max(seq);
            }
            let shortfall: u64 = sh
                .finals
                .borrow()
                .iter()
                .map(|&(room, seq)| room_max[room] - seq)
                .sum();
            // In a storm every connection has resumed and caught up, so a shortfall is a
            // loss; elsewhere it may only be a server still behind when the run ended.
            let key = if r.workload.starts_with('5') {
                "messages_lost"
            } else {
                "undelivered_at_end"
            };
            r.extra
                .insert(key.into(), (sh.gaps.get() + shortfall) as f64);
            r.extra.insert("seq_gaps".into(), sh.gaps.get() as f64);
            r.extra
                .insert("seq_duplicates".into(), sh.dups.get() as f64);
        }
    }
    for r in &reports {
        r.print();
    }
    Ok(reports)
}

async fn leave_groups(t: &Target, accounts: &[Account], shape: &Shape) {
    let Some(api) = t.api.clone() else { return };
    let sem = Rc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for r in 0..shape.rooms {
        let group = format!("g{}x{r}", t.run_tag);
        for a in &accounts[r * shape.members..(r + 1) * shape.members] {
            let (api, sem, group, a) = (api.clone(), sem.clone(), group.clone(), a.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let _p = sem.acquire().await;
                api.leave_group(&a, &group).await
            }));
        }
    }
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    // Owners cannot leave their own group; anyone else failing is worth a line.
    if failed > shape.rooms {
        eprintln!(
            "{} members could not leave their group",
            failed - shape.rooms
        );
    }
}

fn reset(sh: &Shared) {
    sh.hist.borrow_mut().reset();
    sh.delivered.set(0);
    sh.sent.set(0);
    sh.echoes.set(0);
}

pub fn persistence(t: &Target) -> String {
    match t.proto {
        Proto::Irc => "none (in memory)".into(),
        Proto::Natter => {
            let mode = t
                .server_pid
                .and_then(|p| procstat::env_var(p, "NATTERD_DURABILITY"))
                .unwrap_or_else(|| "full".into());
            format!("SQLite WAL, synchronous={}", mode.to_uppercase())
        }
    }
}

fn describe(s: &Shape, proto: Proto) -> String {
    let mut d = format!(
        "proto={proto:?} rooms={} members={} senders/room={} ",
        s.rooms, s.members, s.senders
    );
    match s.mode {
        Mode::Closed => d.push_str(&format!("closed-loop window={}", s.window)),
        Mode::Rate if s.ladder.is_empty() => d.push_str(&format!(
            "rate={}/s per sender (window {})",
            s.rate, s.window
        )),
        Mode::Rate => d.push_str(&format!(
            "rate ladder {:?} msg/s total, {}s per step, p99 target {} ms",
            s.ladder, s.step_secs, s.p99_target_ms
        )),
    }
    d.push_str(&format!(
        " warmup={}s duration={}s text=64B",
        s.warmup, s.duration
    ));
    if s.slow_pct > 0.0 {
        d.push_str(&format!(" slow={}%", s.slow_pct));
    }
    if let Some(at) = s.storm_at {
        d.push_str(&format!(" storm at {at}s over {}s", s.storm_window));
    }
    d
}

async fn connect(
    proto: Proto,
    addr: SocketAddr,
    role: &Role,
    after: Option<u64>,
) -> anyhow::Result<Client> {
    let rcvbuf = role.slow.then_some(4096);
    match proto {
        Proto::Natter => {
            let (mut c, _cursor) =
                Client::natter(addr, &role.token, after, rcvbuf, 16 * 1024).await?;
            c.want_ids = true;
            Ok(c)
        }
        Proto::Irc => {
            let mut c = Client::irc(addr, &role.nick, 16 * 1024).await?;
            c.irc_join(&format!("#c{}", role.target)).await?;
            Ok(c)
        }
    }
}

async fn conn_task(
    proto: Proto,
    addr: SocketAddr,
    role: Role,
    sh: Rc<Shared>,
    mut phase: watch::Receiver<Phase>,
    connect_sem: Rc<Semaphore>,
) {
    let first = {
        let _permit = connect_sem.acquire().await;
        match connect(proto, addr, &role, None).await {
            Ok(c) => c,
            Err(e) => {
                *sh.failure.borrow_mut() = Some(format!("connection {}: {e:#}", role.idx));
                return;
            }
        }
    };
    let mut c = Some(first);
    sh.ready.set(sh.ready.get() + 1);
    sh.ready_notify.notify_one();

    let shape = &sh.shape;
    let mut order = Order {
        last_seq: 0,
        last_id: 0,
    };
    // This sender's place among all of them, so that they do not send in lock step.
    let (slot, slots) = (
        u64::from(role.sender.unwrap_or_default()),
        sh.permits.len() as u64,
    );
    let mut sched = Schedule::staggered(now_ns(), sh.per_sender_rate.get(), slot, slots);
    let mut seen_gen = u64::MAX;
    let mut pending: u64 = 0;
    let mut n: u64 = 0;
    let mut stormed = false;
    let mut replaying = false;
    loop {
        let ph = *phase.borrow_and_update();
        if ph == Phase::Stop {
            break;
        }
        let alive = c.is_some();
        let running = ph != Phase::Setup;
        let sending = running && alive && role.sender.is_some() && !replaying;
        if sending && shape.mode == Mode::Rate && seen_gen != sh.rate_gen.get() {
            seen_gen = sh.rate_gen.get();
            sched = Schedule::staggered(now_ns(), sh.per_sender_rate.get(), slot, slots);
            pending = 0;
        }
        let reading = alive && !(role.slow && running);
        let open = shape.mode == Mode::Rate;
        let wake = instant_at(sched.next_time());
        let sem = role.sender.map(|s| &sh.permits[s as usize]);
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                if *phase.borrow() == Phase::Storm && !stormed {
                    stormed = true;
                    // An abrupt drop of the socket, as a network cut would do.
                    c = None;
                    let spread = shape.storm_window * role.idx as f64
                        / (shape.rooms * shape.members).max(1) as f64;
                    tokio::time::sleep(Duration::from_secs_f64(spread)).await;
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                    loop {
                        match connect(proto, addr, &role, Some(order.last_id)).await {
                            Ok(new) => {
                                c = Some(new);
                                replaying = true;
                                break;
                            }
                            Err(_) if tokio::time::Instant::now() < deadline => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(e) => {
                                *sh.failure.borrow_mut() = Some(format!("reconnect {}: {e:#}", role.idx));
                                break;
                            }
                        }
                    }
                    // Senders restart their schedule from now: nothing is sent while
                    // disconnected (those messages were never sent, so never lost).
                    sched = Schedule::staggered(now_ns(), sh.per_sender_rate.get(), slot, slots);
                    pending = 0;
                    if let Some(cl) = c.as_mut() {
                        // Frames that arrived with the upgrade response.
                        process(cl, &role, &sh, &mut order, &mut replaying);
                    }
                }
            }
            read = fill(&mut c), if reading => {
                let closed = match read {
                    Ok(0) | Err(_) => true,
                    Ok(_) => c
                        .as_mut()
                        .is_some_and(|cl| process(cl, &role, &sh, &mut order, &mut replaying)),
                };
                if closed {
                    c = None;
                    sh.closed.set(sh.closed.get() + 1);
                }
            }
            _ = tokio::time::sleep_until(wake), if sending && open && pending == 0 => {
                pending = sched.due(now_ns());
            }
            permit = async { sem.expect("sender").acquire().await }, if sending && (!open || pending > 0) => {
                if let (Ok(p), Some(cl), Some(sem)) = (permit, c.as_mut(), sem) {
                    p.forget();
                    let mut batch = 1u64;
                    let limit = if open { pending } else { u64::MAX };
                    while batch < limit {
                        match sem.try_acquire() {
                            Ok(p) => {
                                p.forget();
                                batch += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    let sender = role.sender.unwrap_or_default();
                    let now = now_ns();
                    for _ in 0..batch {
                        let ts = if open { sched.take() } else { now };
                        n += 1;
                        cl.queue_message(role.target, ts, sender, n);
                    }
                    if open {
                        pending -= batch;
                    }
                    if sh.measuring.get() {
                        sh.sent.set(sh.sent.get() + batch);
                    }
                }
            }
        }
        if let Some(cl) = c.as_mut()
            && cl.flush().await.is_err()
        {
            c = None;
            sh.closed.set(sh.closed.get() + 1);
        }
    }
    let Some(mut c) = c else {
        return;
    };
    // Final bookkeeping: how far this connection got in its room's sequence.
    if proto == Proto::Natter && !role.slow {
        // Drain what is already on its way so a late delivery is not counted as lost.
        // A server that is behind may still be delivering: wait for 1 s of silence (at
        // most 10 s) before judging.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), c.fill()).await {
                if n == 0 || process(&mut c, &role, &sh, &mut order, &mut replaying) {
                    break;
                }
            }
        })
        .await;
        sh.finals.borrow_mut().push((role.room, order.last_seq));
    }
    if role.slow {
        // Was it disconnected by the server? Read what is left for a moment.
        let kicked = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match c.fill().await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {
                        while let Some(ev) = c.next_event() {
                            if matches!(ev, Event::Closed { .. }) {
                                return true;
                            }
                        }
                    }
                }
            }
        })
        .await
        .unwrap_or(false);
        if kicked {
            sh.kicked.set(sh.kicked.get() + 1);
        }
        return;
    }
    c.quit().await;
}

async fn fill(c: &mut Option<Client>) -> std::io::Result<usize> {
    match c {
        Some(c) => c.fill().await,
        None => std::future::pending().await,
    }
}

/// Handles every complete frame in the buffer. Returns true when the server closed.
fn process(
    c: &mut Client,
    role: &Role,
    sh: &Shared,
    order: &mut Order,
    replaying: &mut bool,
) -> bool {
    let now = now_ns();
    let measuring = sh.measuring.get();
    while let Some(ev) = c.next_event() {
        match ev {
            Event::Message {
                ts,
                sender,
                id,
                seq,
            } => {
                if id > 0 {
                    if seq <= order.last_seq {
                        sh.dups.set(sh.dups.get() + 1);
                    } else {
                        if seq > order.last_seq + 1 && order.last_seq > 0 {
                            sh.gaps.set(sh.gaps.get() + (seq - order.last_seq - 1));
                        }
                        order.last_seq = seq;
                    }
                    order.last_id = order.last_id.max(id);
                }
                if role.witness {
                    sh.permits[sender as usize].add_permits(1);
                }
                if role.sender == Some(sender) {
                    sh.echoes.set(sh.echoes.get() + 1);
                    continue;
                }
                if measuring {
                    sh.delivered.set(sh.delivered.get() + 1);
                    if !*replaying {
                        let us = now.saturating_sub(ts) / 1000;
                        sh.hist.borrow_mut().saturating_record(us.max(1));
                    }
                }
            }
            Event::Ack { seq } => {
                let mut max = sh.room_max_seq.borrow_mut();
                max[role.room] = max[role.room].max(seq);
            }
            Event::Synced => {
                if *replaying {
                    *replaying = false;
                    sh.recovered.set(sh.recovered.get() + 1);
                    let took = now.saturating_sub(sh.storm_started.get()) / 1000;
                    sh.recover_hist.borrow_mut().saturating_record(took.max(1));
                }
            }
            Event::Presence => {
                if measuring {
                    sh.presence.set(sh.presence.get() + 1);
                }
            }
            Event::Closed { .. } => return true,
            Event::Error => sh.errors.set(sh.errors.get() + 1),
            Event::Hello { .. } | Event::Other | Event::Welcome | Event::NamesEnd => {
                if *replaying {
                    sh.other_frames.set(sh.other_frames.get() + 1);
                }
            }
        }
    }
    false
}
