//! Fault tests: a crashing server, a lossy network, receivers that keep dropping off,
//! a shutdown under load, and a full disk. Each checks the promises that matter when
//! things go wrong: an acknowledged message is never lost, a retried one is never stored
//! twice, and a reader sees every message of a conversation once, in order.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use natter_e2e::proxy::{FaultProxy, Faults, Rng};
use natter_e2e::user::COMMAND_TIMEOUT;
use natter_e2e::ws::Api;
use natter_e2e::{Listener, PASSWORD, Server, User, await_ready, message_id, process};
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// POSTs one message until the server acknowledges it, retrying (with the same client
/// id) through connection failures and 5xx answers. Returns the stored message id.
async fn send_retrying(
    http: &reqwest::Client,
    base: &RwLock<String>,
    token: &str,
    conversation: i64,
    client_id: &str,
    text: &str,
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pause = 20u64;
    loop {
        let url = format!(
            "{}/api/v1/conversations/{conversation}/messages",
            base.read().unwrap()
        );
        let attempt = http
            .post(url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(10))
            .json(&json!({ "client_id": client_id, "text": text }))
            .send()
            .await;
        if let Ok(resp) = attempt {
            let status = resp.status().as_u16();
            if let Ok(body) = resp.json::<Value>().await {
                match status {
                    200 | 201 => return body["message"]["id"].as_i64().expect("message id"),
                    s if s >= 500 => {}
                    s => panic!("send {client_id} refused with {s}: {body}"),
                }
            }
        }
        assert!(Instant::now() < deadline, "{client_id} never acknowledged");
        tokio::time::sleep(Duration::from_millis(pause)).await;
        pause = (pause * 2).min(300);
    }
}

/// Every message of a conversation, ascending, paging forwards by seq.
async fn all_messages(api: &Api, conversation: i64) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m["seq"].as_i64().unwrap());
        let (status, body) = api
            .get(&format!(
                "/conversations/{conversation}/messages?after={after}&limit=500"
            ))
            .await;
        assert_eq!(status, 200, "history: {body}");
        let page = body["messages"].as_array().unwrap().clone();
        out.extend(page);
        if body["has_more"] != true {
            return out;
        }
    }
}

/// The messages people wrote, without the group's timeline events ("alice added bob").
fn written(history: &[Value]) -> Vec<&Value> {
    history.iter().filter(|m| m["event"].is_null()).collect()
}

/// How many timeline events a group has so far (its creation and first members).
async fn event_count(api: &Api, conversation: i64) -> i64 {
    let all = all_messages(api, conversation).await;
    (all.len() - written(&all).len()) as i64
}

/// Checks a conversation's history against what was acknowledged: every acknowledged
/// message once, with the id its ack carried, each sender's messages in the order sent,
/// and seq 1..N without gaps.
fn check_history(history: &[Value], acked: &HashMap<String, i64>) {
    let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "seq has gaps"
    );
    let mut seen = HashSet::new();
    let mut last_index: HashMap<String, i64> = HashMap::new();
    for m in written(history) {
        let cid = m["client_id"].as_str().unwrap().to_owned();
        assert!(seen.insert(cid.clone()), "client id {cid} stored twice");
        // Client ids are "SENDER-INDEX".
        let (sender, index) = cid.rsplit_once('-').unwrap();
        let index: i64 = index.parse().unwrap();
        if let Some(prev) = last_index.insert(sender.to_owned(), index) {
            assert!(
                index > prev,
                "{sender}'s messages out of order: {prev} then {index}"
            );
        }
    }
    for (cid, id) in acked {
        let stored = history.iter().find(|m| m["client_id"] == cid.as_str());
        let stored = stored.unwrap_or_else(|| panic!("acknowledged {cid} is missing"));
        assert_eq!(
            stored["id"].as_i64(),
            Some(*id),
            "{cid} has another id than its ack"
        );
    }
}

#[test]
fn kill_9_five_times_while_20_clients_send_loses_and_duplicates_nothing() {
    const SENDERS: usize = 20;
    const EACH: usize = 30;
    const TOTAL: usize = SENDERS * EACH;
    let mut server = Server::start();
    let rt = runtime();
    let base = Arc::new(RwLock::new(server.url()));
    let url = server.url();
    let apis: Vec<Api> = rt.block_on(async {
        let mut apis = Vec::new();
        for k in 0..SENDERS {
            apis.push(Api::register(&url, &format!("s{k}"), PASSWORD).await);
        }
        apis
    });
    let members: Vec<String> = (1..SENDERS).map(|k| format!("s{k}")).collect();
    let (status, body) =
        rt.block_on(apis[0].post("/groups", &json!({ "name": "load", "members": members })));
    assert_eq!(status, 201, "{body}");
    let conv = body["id"].as_i64().unwrap();

    let acked_count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = apis
        .iter()
        .enumerate()
        .map(|(k, api)| {
            let (base, token, count) = (base.clone(), api.token.clone(), acked_count.clone());
            rt.spawn(async move {
                let http = reqwest::Client::new();
                let mut acked = HashMap::new();
                for i in 0..EACH {
                    let cid = format!("s{k}-{i}");
                    let id = send_retrying(&http, &base, &token, conv, &cid, &format!("s{k} #{i}"))
                        .await;
                    acked.insert(cid, id);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                acked
            })
        })
        .collect();

    let mut rng = Rng::new();
    eprintln!("kill moments seed: {}", rng.seed());
    for round in 1..=5 {
        // Kill at a random point in each sixth of the run.
        let target = round * TOTAL / 6 + rng.range(0, (TOTAL / 12) as u64) as usize;
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked_count.load(Ordering::SeqCst) < target.min(TOTAL - 1) {
            assert!(
                Instant::now() < deadline,
                "senders stalled before kill {round}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill9();
        server.restart();
        *base.write().unwrap() = server.url();
    }
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(rt.block_on(t).expect("sender task"));
    }
    assert_eq!(acked.len(), TOTAL);
    let reader = rt.block_on(Api::login(&server.url(), "s0", PASSWORD));
    let history = rt.block_on(all_messages(&reader, conv));
    assert_eq!(
        written(&history).len(),
        TOTAL,
        "every message stored exactly once"
    );
    check_history(&history, &acked);
}

/// A `natter` command through another address than the server's.
fn via(user: &User, url: &str, args: &[&str]) -> Command {
    let mut cmd = user.command(args);
    cmd.env("NATTER_SERVER", url);
    cmd
}

#[test]
fn lost_acks_and_cut_connections_store_each_client_id_once() {
    let server = Server::start();
    let upstream = Arc::new(RwLock::new(server.addr().to_string()));
    let proxy = FaultProxy::start(
        upstream,
        Faults {
            drop_response: 0.3,
            cut_random: 0.15,
        },
    );
    let sink = server.register("sink");
    let senders: Vec<User> = (0..4).map(|k| server.register(&format!("p{k}"))).collect();
    const EACH: usize = 10;
    let proxy_url = proxy.url();
    let results: Vec<Vec<i64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = senders
            .iter()
            .map(|user| {
                let proxy_url = proxy_url.clone();
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let text = format!("{} #{i}", user.name);
                            let cmd =
                                via(user, &proxy_url, &["send", "@sink", &text, "--wait", "60s"]);
                            let out = process::run(cmd, None, COMMAND_TIMEOUT);
                            out.assert_ok();
                            message_id(&out)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stats = &proxy.stats;
    eprintln!(
        "proxy: {} connections, {} answers swallowed, {} random cuts",
        stats.connections.load(Ordering::Relaxed),
        stats.dropped_responses.load(Ordering::Relaxed),
        stats.random_cuts.load(Ordering::Relaxed),
    );
    assert!(
        stats.dropped_responses.load(Ordering::Relaxed) > 0,
        "no ack was lost: the test proved nothing"
    );
    for (user, ids) in senders.iter().zip(results) {
        // Read directly from the server, not through the proxy.
        let history = sink.history(&format!("@{}", user.name), &["--limit", "500"]);
        let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
        let want: Vec<String> = (0..EACH).map(|i| format!("{} #{i}", user.name)).collect();
        assert_eq!(texts, want, "each message once, in order");
        let stored: Vec<i64> = history.iter().map(|m| m.id).collect();
        assert_eq!(
            stored, ids,
            "the ids `natter send` printed are the stored ones"
        );
        assert!(
            user.run_ok(["outbox", "--json"]).stdout.trim().is_empty(),
            "outbox drained"
        );
    }
}

#[test]
fn receivers_cut_off_every_few_seconds_see_every_message_once_in_order() {
    let server = Server::start();
    let rt = runtime();
    let url = server.url();
    let senders: Vec<Api> = rt.block_on(async {
        let mut v = Vec::new();
        for k in 0..3 {
            v.push(Api::register(&url, &format!("w{k}"), PASSWORD).await);
        }
        v
    });
    let receivers: Vec<User> = (0..2).map(|k| server.register(&format!("r{k}"))).collect();
    let prober = server.register("prober");
    let (status, body) = rt.block_on(senders[0].post(
        "/groups",
        &json!({ "name": "fire", "members": ["w1", "w2", "r0", "r1"] }),
    ));
    assert_eq!(status, 201, "{body}");
    let conv = body["id"].as_i64().unwrap();
    let events = rt.block_on(event_count(&senders[0], conv));

    let proxy = FaultProxy::start(
        Arc::new(RwLock::new(server.addr().to_string())),
        Faults::default(),
    );
    let mut listeners: Vec<Listener> = receivers
        .iter()
        .map(|r| {
            Listener::spawn(via(
                r,
                &proxy.url(),
                &["listen", "--json", "fire", &format!("@{}", prober.name)],
            ))
        })
        .collect();
    for (l, r) in listeners.iter_mut().zip(&receivers) {
        await_ready(l, &prober, &r.name);
    }

    // Three senders send for a few seconds while the proxy cuts the receivers off every
    // 1-5 s.
    let base = Arc::new(RwLock::new(url.clone()));
    let stop_at = Instant::now() + Duration::from_secs(9);
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(k, api)| {
            let (base, token) = (base.clone(), api.token.clone());
            rt.spawn(async move {
                let http = reqwest::Client::new();
                let mut i = 0;
                while Instant::now() < stop_at {
                    send_retrying(
                        &http,
                        &base,
                        &token,
                        conv,
                        &format!("w{k}-{i}"),
                        &format!("w{k} #{i}"),
                    )
                    .await;
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                i
            })
        })
        .collect();
    let mut rng = Rng::new();
    let mut cuts = 0;
    while Instant::now() < stop_at {
        std::thread::sleep(
            Duration::from_millis(rng.range(1000, 5000))
                .min(stop_at.saturating_duration_since(Instant::now())),
        );
        proxy.cut_all();
        cuts += 1;
    }
    let total: usize = tasks.into_iter().map(|t| rt.block_on(t).unwrap()).sum();
    assert!(cuts >= 2 && total > 50, "cuts {cuts}, messages {total}");

    for (l, r) in listeners.iter_mut().zip(&receivers) {
        let mut seqs = Vec::new();
        while seqs.len() < total {
            match l.next_message(Duration::from_secs(30)) {
                Some(m) if m.conversation == "fire" => seqs.push(m.seq),
                Some(_) => {}
                None => panic!(
                    "{} saw {} of {total} messages; stderr:\n{}",
                    r.name,
                    seqs.len(),
                    l.stderr()
                ),
            }
        }
        assert_eq!(
            seqs,
            (events + 1..=events + total as i64).collect::<Vec<_>>(),
            "{}: gaps, duplicates or disorder",
            r.name
        );
    }
    assert!(
        proxy.stats.forced_cuts.load(Ordering::Relaxed) >= 2,
        "the receivers were never cut off"
    );
}

#[test]
fn sigterm_under_load_drains_and_nothing_acknowledged_is_lost() {
    let mut server = Server::start();
    let rt = runtime();
    let url = server.url();
    let apis: Vec<Api> = rt.block_on(async {
        let mut v = Vec::new();
        for k in 0..5 {
            v.push(Api::register(&url, &format!("t{k}"), PASSWORD).await);
        }
        v
    });
    let reader = server.register("reader");
    let prober = server.register("prober2");
    let (status, body) = rt.block_on(apis[0].post(
        "/groups",
        &json!({ "name": "drain", "members": ["t1", "t2", "t3", "t4", "reader"] }),
    ));
    assert_eq!(status, 201, "{body}");
    let conv = body["id"].as_i64().unwrap();
    let events = rt.block_on(event_count(&apis[0], conv));
    let mut listener = reader.listen(&["drain", "@prober2"]);
    await_ready(&mut listener, &prober, "reader");

    const EACH: usize = 60;
    let base = Arc::new(RwLock::new(url));
    let count = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = apis
        .iter()
        .enumerate()
        .map(|(k, api)| {
            let (base, token, count) = (base.clone(), api.token.clone(), count.clone());
            rt.spawn(async move {
                let http = reqwest::Client::new();
                let mut acked = HashMap::new();
                for i in 0..EACH {
                    let cid = format!("t{k}-{i}");
                    acked.insert(
                        cid.clone(),
                        send_retrying(&http, &base, &token, conv, &cid, &format!("t{k} #{i}"))
                            .await,
                    );
                    count.fetch_add(1, Ordering::SeqCst);
                }
                acked
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < EACH * 5 / 3 {
        assert!(Instant::now() < deadline, "senders stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = server.sigterm();
    assert!(
        status.success(),
        "natterd exit after SIGTERM: {status:?}\n{}",
        server.log()
    );
    assert!(server.log().contains("shutting down"), "{}", server.log());
    server.restart();
    *base.write().unwrap() = server.url();
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(rt.block_on(t).unwrap());
    }
    let api = rt.block_on(Api::login(&server.url(), "t0", PASSWORD));
    let history = rt.block_on(all_messages(&api, conv));
    assert_eq!(written(&history).len(), EACH * 5);
    check_history(&history, &acked);
    // The listener reconnected by itself and saw everything once, in order.
    let mut seqs = Vec::new();
    while seqs.len() < EACH * 5 {
        match listener.next_message(Duration::from_secs(30)) {
            Some(m) if m.conversation == "drain" => seqs.push(m.seq),
            Some(_) => {}
            None => panic!(
                "listener saw {} messages; stderr:\n{}",
                seqs.len(),
                listener.stderr()
            ),
        }
    }
    assert_eq!(
        seqs,
        (events + 1..=events + (EACH * 5) as i64).collect::<Vec<_>>()
    );
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up and needs root (CI runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Writes zeros into `path` until the file system says it is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if f.write_all(&block).and_then(|_| f.sync_all()).is_err() {
            break;
        }
    }
    // Also the last few bytes.
    while f.write_all(&[0u8; 512]).and_then(|_| f.sync_all()).is_ok() {}
}

#[test]
fn a_full_disk_refuses_sends_clearly_keeps_what_was_stored_and_recovers() {
    let fs = Tmpfs::mount(8 * 1024 * 1024);
    let data = fs.0.path().join("data");
    let mut server = Server::start_in(Some(&data), &[]);
    let alice = server.register("alice");
    let bob = server.register("bob");
    let before: Vec<i64> = (0..5)
        .map(|i| alice.send("@bob", &format!("before {i}")))
        .collect();
    let filler = fs.0.path().join("filler");
    fill(&filler);

    // Sends now fail with a clear error, quickly, and the server stays up.
    let big = "x".repeat(8000);
    let mut refused = 0;
    for i in 0..20 {
        let out = alice.run(["send", "@bob", &format!("{big} {i}"), "--wait", "1s"]);
        if out.code() == Some(1) {
            assert!(
                out.stderr.contains("cannot store") || out.stderr.contains("not sent"),
                "unclear error:\n{out}"
            );
            refused += 1;
            break;
        }
        out.assert_ok();
    }
    assert_eq!(refused, 1, "a full disk never refused a send");
    assert!(
        server.is_running(),
        "natterd died on a full disk:\n{}",
        server.log()
    );
    // Everything acknowledged before is still there.
    let history = bob.history("@alice", &["--limit", "500"]);
    for id in &before {
        assert!(
            history.iter().any(|m| m.id == *id),
            "acknowledged {id} lost:\n{history:?}"
        );
    }

    // Space returns: sending works again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let after = alice.send("@bob", "after the disk was freed");
    let history = bob.history("@alice", &["--limit", "500"]);
    assert_eq!(history.last().unwrap().id, after);
    let seqs: Vec<i64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no gap from the refused sends"
    );

    // And it survives a restart on that data.
    server.restart();
    assert_eq!(
        bob.history("@alice", &["--limit", "500"])
            .last()
            .unwrap()
            .id,
        after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_fills_the_disk_is_refused_clearly_and_leaves_nothing() {
    let fs = Tmpfs::mount(16 * 1024 * 1024);
    let data = fs.0.path().join("data");
    let mut server = Server::start_in(Some(&data), &[]);
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", server.url());
    let auth: serde_json::Value = http
        .post(format!("{api}/auth/register"))
        .json(&serde_json::json!({"username": "carol", "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = auth["token"].as_str().unwrap().to_owned();
    let upload = |len: usize| {
        http.post(format!("{api}/files?name=big.bin"))
            .bearer_auth(&token)
            .body(vec![1u8; len])
            .send()
    };

    // Twice the disk: refused with 507 and a sentence, and the half-written file is gone.
    let resp = upload(32 << 20).await.unwrap();
    assert_eq!(resp.status(), 507);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "storage_unavailable", "{body}");
    let staged = std::fs::read_dir(data.join("files/staging"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "a refused upload left its part behind");
    assert!(
        server.is_running(),
        "natterd died on a full disk:\n{}",
        server.log()
    );

    // The space came back with the deleted part: a file that fits is stored.
    let resp = upload(1 << 20).await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}
