//! A fault-injecting TCP proxy on loopback, for tests that must survive a bad network:
//! it can swallow the server's answer after the request went through (a lost ack), cut
//! connections at random moments, and cut every open connection on demand.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Chances, per proxied connection, of each fault.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Forward the request, then throw away the answer and close: the server did the work
    /// but the client never hears of it.
    pub drop_response: f64,
    /// Close the connection after a random 0-40 ms.
    pub cut_random: f64,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub dropped_responses: AtomicU64,
    pub random_cuts: AtomicU64,
    pub forced_cuts: AtomicU64,
}

/// A small xorshift generator seeded from the process's random hasher state.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9);
        Rng(h.finish() | 1)
    }

    pub fn seeded(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// The proxy; stops (and drops every connection) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    pub stats: Arc<Stats>,
    cut: broadcast::Sender<()>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`, re-read
    /// for every connection so a server restarted elsewhere is followed).
    pub fn start(upstream: Arc<RwLock<String>>, faults: Faults) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("proxy listen");
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let (cut, _) = broadcast::channel(16);
        let rng = Arc::new(Mutex::new(Rng::new()));
        let (stats2, cut2) = (stats.clone(), cut.clone());
        runtime.spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let upstream = upstream.read().unwrap().clone();
                let (a, b) = {
                    let mut r = rng.lock().unwrap();
                    (r.unit(), r.range(0, 40))
                };
                let stats = stats2.clone();
                let cut_rx = cut2.subscribe();
                tokio::spawn(handle(client, upstream, faults, a, b, stats, cut_rx));
            }
        });
        FaultProxy {
            addr,
            stats,
            cut,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection open right now.
    pub fn cut_all(&self) {
        let _ = self.cut.send(());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: String,
    faults: Faults,
    dice: f64,
    delay_ms: u64,
    stats: Arc<Stats>,
    mut cut: broadcast::Receiver<()>,
) {
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    if dice < faults.drop_response {
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        // The first bytes of the answer arrive: swallow them and hang up on both sides.
        let mut buf = [0u8; 1];
        if matches!(sr.read(&mut buf).await, Ok(n) if n > 0) {
            stats.dropped_responses.fetch_add(1, Ordering::Relaxed);
        }
        up.abort();
        let _ = cw.shutdown().await;
        return;
    }
    let random_cut = dice < faults.drop_response + faults.cut_random;
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = tokio::time::sleep(Duration::from_millis(delay_ms)), if random_cut => {
            stats.random_cuts.fetch_add(1, Ordering::Relaxed);
        }
        _ = cut.recv() => {
            stats.forced_cuts.fetch_add(1, Ordering::Relaxed);
        }
    }
}
