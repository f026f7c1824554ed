//! Workloads 3 (idle density) and 4 (history and resume); the room-shaped ones are in
//! [`crate::engine`].

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, watch};

use crate::engine::{Target, persistence};
use crate::procstat::{self, Window};
use crate::report::{Report, round};
use crate::wire::{Client, Event, Proto, now_ns};

pub fn base(t: &Target, label: &str, workload: &str, params: String) -> Report {
    Report {
        label: label.into(),
        workload: workload.into(),
        params,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        persistence: persistence(t),
        server_cpus: t.server_pid.map_or("?".into(), procstat::cpus_allowed),
        driver_cpus: procstat::cpus_allowed(std::process::id()),
        ..Report::default()
    }
}

/// Workload 3: ramp to `conns` idle, authenticated connections; then measure the server's
/// memory per connection and its CPU while they sit idle.
pub async fn idle(
    t: &Target,
    label: &str,
    conns: usize,
    users: usize,
    idle_secs: f64,
    concurrency: usize,
) -> anyhow::Result<Report> {
    let accounts = match t.proto {
        Proto::Natter => {
            let api = t.api.clone().expect("natter target has an API client");
            crate::api::accounts(
                &api,
                t.state.as_deref(),
                users.max(1),
                t.register_concurrency,
            )
            .await?
        }
        Proto::Irc => Vec::new(),
    };
    let params = format!(
        "proto={:?} connections={conns} users={} idle={idle_secs}s connect-concurrency={concurrency}",
        t.proto,
        if t.proto == Proto::Natter {
            users
        } else {
            conns
        }
    );
    let mut r = base(t, label, "3 idle density", params);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = t.server_pid.and_then(procstat::rss_kb).unwrap_or(0);
    let ramp_window = Window::start(t.server_pid);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sem = Rc::new(Semaphore::new(concurrency.max(1)));
    let connected = Rc::new(Cell::new(0usize));
    let failed = Rc::new(Cell::new(0usize));
    let first_error: Rc<std::cell::RefCell<Option<String>>> = Rc::default();
    let ramp = Instant::now();
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let (sem, connected, failed, first_error) = (
            sem.clone(),
            connected.clone(),
            failed.clone(),
            first_error.clone(),
        );
        let mut stop = stop_rx.clone();
        let token = accounts.get(i % users.max(1)).map(|a| a.token.clone());
        let (proto, addr, nick) = (t.proto, t.addr, format!("{}{i}", t.run_tag));
        tasks.push(tokio::task::spawn_local(async move {
            let c = {
                let _p = sem.acquire().await;
                match proto {
                    Proto::Natter => {
                        Client::natter(addr, token.as_deref().unwrap_or_default(), None, None, 1024)
                            .await
                            .map(|(c, _)| c)
                    }
                    Proto::Irc => Client::irc(addr, &nick, 1024).await,
                }
            };
            let mut c = match c {
                Ok(c) => c,
                Err(e) => {
                    failed.set(failed.get() + 1);
                    first_error.borrow_mut().get_or_insert(format!("{e:#}"));
                    return;
                }
            };
            connected.set(connected.get() + 1);
            // Idle: answer pings until told to stop.
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    read = c.fill() => {
                        if !matches!(read, Ok(n) if n > 0) {
                            return;
                        }
                        while let Some(ev) = c.next_event() {
                            if matches!(ev, Event::Closed { .. }) {
                                return;
                            }
                        }
                        if c.flush().await.is_err() {
                            return;
                        }
                    }
                }
            }
            c.quit().await;
        }));
    }
    while connected.get() + failed.get() < conns {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp_secs = ramp.elapsed().as_secs_f64();
    let ramp_usage = ramp_window.finish();
    let ok = connected.get();
    eprintln!("{ok} of {conns} connected in {ramp_secs:.1}s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = t.server_pid.and_then(procstat::rss_kb).unwrap_or(0);
    let idle_window = Window::start(t.server_pid);
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let usage = idle_window.finish();
    r.set_usage(&usage);
    r.server_peak_rss_kb = ramp_usage.server_peak_rss_kb.max(usage.server_peak_rss_kb);
    r.extra.insert("connected".into(), ok as f64);
    r.extra.insert("failed".into(), failed.get() as f64);
    r.extra
        .insert("connects_per_s".into(), round(ok as f64 / ramp_secs, 0));
    r.extra.insert(
        "ramp_server_cpu_s".into(),
        round(ramp_usage.server_cpu_s, 2),
    );
    r.extra.insert(
        "server_rss_before_mib".into(),
        round(rss_before as f64 / 1024.0, 1),
    );
    r.extra.insert(
        "server_rss_after_mib".into(),
        round(rss_after as f64 / 1024.0, 1),
    );
    if ok > 0 {
        r.extra.insert(
            "kib_per_idle_conn".into(),
            round(rss_after.saturating_sub(rss_before) as f64 / ok as f64, 2),
        );
    }
    r.extra.insert(
        "idle_server_cpu_pct".into(),
        round(100.0 * usage.server_cpu_s / usage.secs.max(1e-9), 2),
    );
    if let Some(e) = first_error.borrow().as_ref() {
        r.notes.push(format!("first connect error: {e}"));
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    r.print();
    Ok(r)
}

/// Workload 4: `clients` reconnect after missing `missed` messages each; then the p99 of
/// fetching the latest 50 messages.
pub async fn history(
    t: &Target,
    label: &str,
    clients: usize,
    missed: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Report> {
    anyhow::ensure!(
        t.proto == Proto::Natter,
        "history and resume is a Natter workload"
    );
    let api = t.api.clone().expect("natter target has an API client");
    let accounts = crate::api::accounts(
        &api,
        t.state.as_deref(),
        clients + 1,
        t.register_concurrency,
    )
    .await?;
    let refs: Vec<&crate::api::Account> = accounts.iter().collect();
    let conv = api
        .create_group(&accounts[0], &format!("h{}", t.run_tag), &refs)
        .await?;
    let params = format!(
        "clients={clients} missed={missed} history-requests={requests} concurrency={concurrency} limit=50 text=64B"
    );
    let mut r = base(t, label, "4 history and resume", params);
    let window = Window::start(t.server_pid);

    // Everyone is online once and learns its cursor, then goes away.
    let mut cursors = Vec::with_capacity(clients);
    for a in &accounts[1..] {
        let (c, cursor) = Client::natter(t.addr, &a.token, None, None, 4096).await?;
        cursors.push(cursor);
        c.quit().await;
    }
    // The sender posts `missed` messages, 64 in flight, each acked after its commit.
    let (mut s, _) = Client::natter(t.addr, &accounts[0].token, None, None, 64 * 1024).await?;
    let send_start = Instant::now();
    let (mut queued, mut acked) = (0usize, 0usize);
    while acked < missed {
        while queued < missed && queued - acked < 64 {
            queued += 1;
            s.queue_message(conv, now_ns(), 0, queued as u64);
        }
        s.flush().await?;
        anyhow::ensure!(s.fill().await? > 0, "sender connection closed");
        while let Some(ev) = s.next_event() {
            match ev {
                Event::Ack { .. } => acked += 1,
                Event::Error => anyhow::bail!("the server refused a send"),
                _ => {}
            }
        }
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    s.quit().await;

    // Everyone comes back with its cursor.
    let catchup_start = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for (a, &cursor) in accounts[1..].iter().zip(&cursors) {
        let (addr, token) = (t.addr, a.token.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let started = Instant::now();
            let (mut c, _) = Client::natter(addr, &token, Some(cursor), None, 64 * 1024).await?;
            let mut got = 0usize;
            loop {
                while let Some(ev) = c.next_event() {
                    match ev {
                        Event::Message { .. } => got += 1,
                        Event::Synced => {
                            let took = started.elapsed();
                            c.quit().await;
                            return anyhow::Ok((took, got));
                        }
                        Event::Closed { code } => anyhow::bail!("closed during catch-up ({code})"),
                        _ => {}
                    }
                }
                c.flush().await?;
                anyhow::ensure!(c.fill().await? > 0, "closed during catch-up");
            }
        }));
    }
    let mut catchup = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut short = 0usize;
    for task in tasks {
        let (took, got) = task.await??;
        catchup.saturating_record(took.as_micros() as u64);
        if got < missed {
            short += 1;
        }
    }
    let all_secs = catchup_start.elapsed().as_secs_f64();

    // The latest page of 50, over REST with keep-alive.
    let mut lat = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let hist = Rc::new(std::cell::RefCell::new(Histogram::<u64>::new_with_bounds(
        1,
        3_600_000_000,
        3,
    )?));
    let next = Rc::new(Cell::new(0usize));
    let accounts = Rc::new(accounts);
    let fetch_start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (api, hist, next, accounts) =
            (api.clone(), hist.clone(), next.clone(), accounts.clone());
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= requests {
                    return anyhow::Ok(());
                }
                next.set(i + 1);
                let who = &accounts[1 + i % (accounts.len() - 1)];
                let t0 = Instant::now();
                let n = api.latest(who, conv, 50).await?;
                anyhow::ensure!(n == 50, "history page had {n} messages");
                hist.borrow_mut()
                    .saturating_record(t0.elapsed().as_micros() as u64);
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let fetch_secs = fetch_start.elapsed().as_secs_f64();
    lat.add(&*hist.borrow())?;

    r.set_usage(&window.finish());
    r.sent = missed as u64;
    r.set_deliveries((clients * missed) as u64);
    r.set_latency(&lat);
    r.extra.insert(
        "send_msgs_per_s".into(),
        round(missed as f64 / send_secs, 0),
    );
    r.extra.insert("catchup_all_s".into(), round(all_secs, 3));
    r.extra.insert(
        "catchup_p50_s".into(),
        round(catchup.value_at_quantile(0.5) as f64 / 1e6, 3),
    );
    r.extra.insert(
        "catchup_p99_s".into(),
        round(catchup.value_at_quantile(0.99) as f64 / 1e6, 3),
    );
    r.extra.insert(
        "replayed_msgs_per_s".into(),
        round((clients * missed) as f64 / all_secs, 0),
    );
    r.extra
        .insert("clients_short_of_messages".into(), short as f64);
    r.extra.insert(
        "history_requests_per_s".into(),
        round(requests as f64 / fetch_secs, 0),
    );
    r.notes.push(
        "latency columns are the history fetch (GET latest 50, REST, keep-alive); \
         deliveries are the replayed messages"
            .into(),
    );
    r.print();
    Ok(r)
}
