//! File transfer (issue 5): upload one large file over loopback, download it again, and
//! watch the server's memory while it does (it must not grow with the file).
//!
//! The file is generated on the fly (a fast pseudo-random sequence, so nothing
//! compresses or dedupes it and the driver holds one chunk at a time); the driver hashes
//! what it sends and what it gets back with BLAKE3 and checks both against the server's
//! answer.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;

use crate::engine::Target;
use crate::procstat::{self, Window};
use crate::report::{Report, round};
use crate::workloads::base;

const CHUNK: usize = 1 << 20;
/// How often the server's RSS is sampled during a transfer.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// xorshift64*: cheap enough that generating a GiB costs the driver well under a second.
struct Gen(u64);

impl Gen {
    fn chunk(&mut self, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.truncate(len);
        Bytes::from(out)
    }
}

/// Samples the server's RSS until dropped; keeps the highest value seen.
struct RssSampler {
    peak: Rc<Cell<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: Option<u32>) -> RssSampler {
        let peak = Rc::new(Cell::new(0));
        let seen = peak.clone();
        let task = tokio::task::spawn_local(async move {
            let Some(pid) = pid else { return };
            loop {
                if let Some(kb) = procstat::rss_kb(pid) {
                    seen.set(seen.get().max(kb));
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        RssSampler { peak, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.peak.get()
    }
}

/// One direction's figures: throughput, the server's peak RSS (sampled and `VmHWM`)
/// against its RSS before, and server CPU per GiB.
fn transfer_report(
    mut r: Report,
    usage: &procstat::Usage,
    sampled_peak_kb: u64,
    rss_before_kb: u64,
    bytes: u64,
    secs: f64,
) -> Report {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    r.set_usage(usage);
    r.server_peak_rss_kb = sampled_peak_kb.max(usage.server_peak_rss_kb);
    r.sent = 1;
    r.extra
        .insert("mib_per_s".into(), round((bytes >> 20) as f64 / secs, 1));
    r.extra
        .insert("server_rss_before_kib".into(), rss_before_kb as f64);
    r.extra.insert(
        "server_peak_growth_kib".into(),
        r.server_peak_rss_kb.saturating_sub(rss_before_kb) as f64,
    );
    r.extra.insert(
        "server_cpu_s_per_gib".into(),
        round(usage.server_cpu_s / gib, 2),
    );
    r
}

/// Uploads and downloads a file of `size_mib` MiB; one report per direction.
pub async fn transfer(t: &Target, label: &str, size_mib: u64) -> anyhow::Result<Vec<Report>> {
    let api = t
        .api
        .clone()
        .context("the files workload needs --proto natter")?;
    let who = api.account(&format!("{}files", t.run_tag)).await?;
    let size = size_mib << 20;
    let params = format!("file={size_mib} MiB chunk={} KiB", CHUNK >> 10);
    let http = reqwest::Client::builder().build()?;

    // A small upload first, so the baseline includes what any upload sets up (and not
    // the login's password hashing, whose memory the allocator gives back lazily).
    let warm = http
        .post(format!("{}/files", api.base()))
        .query(&[("name", "warm-up.bin")])
        .bearer_auth(&who.token)
        .body(Gen(size ^ 1).chunk(CHUNK))
        .send()
        .await?;
    anyhow::ensure!(
        warm.status().as_u16() == 201,
        "warm-up upload answered HTTP {}",
        warm.status()
    );

    // ----- upload -----
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = t.server_pid.and_then(procstat::rss_kb).unwrap_or(0);
    let seed = 0x9E37_79B9_7F4A_7C15 ^ size;
    let mut source = Gen(seed);
    let mut left = size;
    // The body stream owns the generator; the sent content's hash is computed after the
    // upload from the same seed, so the driver's hashing is not in the timed part.
    let body = futures_util::stream::poll_fn(move |_| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = left.min(CHUNK as u64) as usize;
        left -= n as u64;
        std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(source.chunk(n))))
    });
    let sampler = RssSampler::start(t.server_pid);
    let window = Window::start(t.server_pid);
    let started = Instant::now();
    let resp = http
        .post(format!("{}/files", api.base()))
        .query(&[("name", "bench.bin")])
        .bearer_auth(&who.token)
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?;
    let status = resp.status();
    let answer: serde_json::Value = resp.json().await.unwrap_or_default();
    let up_secs = started.elapsed().as_secs_f64();
    let up_usage = window.finish();
    let up_peak = sampler.stop();
    anyhow::ensure!(
        status.as_u16() == 201,
        "upload answered HTTP {status}: {answer}"
    );
    let id = answer["id"]
        .as_str()
        .context("no id in the upload answer")?
        .to_owned();
    let server_hash = answer["hash"].as_str().unwrap_or_default().to_owned();
    let want = {
        let mut regen = Gen(seed);
        let mut h = blake3::Hasher::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            h.update(&regen.chunk(n));
            left -= n as u64;
        }
        h.finalize().to_hex().to_string()
    };
    anyhow::ensure!(
        server_hash == want,
        "the server's hash {server_hash} is not the sent content's {want}"
    );

    let mut up = transfer_report(
        base(t, label, "files upload", params.clone()),
        &up_usage,
        up_peak,
        rss_before,
        size,
        up_secs,
    );

    // ----- download -----
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = t.server_pid.and_then(procstat::rss_kb).unwrap_or(0);
    let sampler = RssSampler::start(t.server_pid);
    let window = Window::start(t.server_pid);
    let started = Instant::now();
    let resp = http
        .get(format!("{}/files/{id}", api.base()))
        .bearer_auth(&who.token)
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().as_u16() == 200,
        "download answered HTTP {}",
        resp.status()
    );
    let mut got = blake3::Hasher::new();
    let mut received = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        received += chunk.len() as u64;
        got.update(&chunk);
    }
    let down_secs = started.elapsed().as_secs_f64();
    let down_usage = window.finish();
    let down_peak = sampler.stop();
    anyhow::ensure!(received == size, "downloaded {received} of {size} bytes");
    anyhow::ensure!(
        got.finalize().to_hex().to_string() == want,
        "the download does not match the upload"
    );

    let mut down = transfer_report(
        base(t, label, "files download", params),
        &down_usage,
        down_peak,
        rss_before,
        size,
        down_secs,
    );
    down.notes
        .push("driver hashes every byte with BLAKE3 (part of its CPU)".into());
    up.notes
        .push("includes the server's fsync of the file before it answers".into());
    for r in [&up, &down] {
        r.print();
    }
    Ok(vec![up, down])
}
