//! `natter-server`: the Natter chat server, run as `natterd`.
//!
//! Three layers, as in mini-redis: [`transport`] turns HTTP requests and WebSocket frames
//! into typed calls on the [`domain`], which checks authorization and limits and talks to
//! [`store`] (the storage trait and its SQLite implementation). [`hub`] holds each
//! connection's bounded outbound queue and fans committed messages out; [`config`] reads
//! the TOML file, `NATTERD_*` variables and flags.
//!
//! A message's path: `POST /conversations/{id}/messages` (or a `send` frame) →
//! [`domain::Domain::send`] → the store's writer thread commits it (batched with whatever
//! else is queued) → the caller gets its ack → the committed message goes, in commit
//! order, to [`domain::fan_out`], which serializes it once and queues the bytes on every
//! connection of every member.

pub mod blobs;
pub mod config;
pub mod domain;
pub mod hub;
pub mod store;
pub mod tls;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use transport::{AppState, openapi, router};

use crate::domain::{Domain, Limits, Live, LiveConfig};
use crate::hub::{Bus, Hub, LocalBus};
use crate::store::sqlite::{SqliteStore, WriterThread};

/// A server that is set up (database open, migrations applied) and ready to serve.
pub struct Server {
    pub state: AppState,
    writer: WriterThread,
    fan_out: tokio::task::JoinHandle<()>,
    ticks: tokio::task::JoinHandle<()>,
    tls: Option<tls::Tls>,
}

impl Server {
    /// Opens the database under the configured data directory and wires the layers.
    pub async fn new(config: Config) -> anyhow::Result<Server> {
        let data_dir = config.resolved_data_dir()?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let db = data_dir.join("natter.db");
        let tls = tls::load(&config, &data_dir).await?;
        let (committed_tx, committed_rx) = tokio::sync::mpsc::channel(64);
        let (store, writer) =
            SqliteStore::open(&db, config.durability, config.readers, committed_tx)
                .with_context(|| format!("cannot open database {}", db.display()))?;
        let hub = Hub::new(config.queue_capacity);
        let bus: Arc<dyn Bus> = Arc::new(LocalBus(hub.clone()));
        let store = store::sqlite::shared(store);
        let live = Live::new(
            LiveConfig {
                tick: Duration::from_millis(config.live_tick_ms),
                presence_grace: Duration::from_millis(config.presence_grace_ms),
                presence_push_max_members: config.presence_push_max_members,
            },
            store.clone(),
            bus.clone(),
        );
        let fan_out = tokio::spawn(domain::fan_out(committed_rx, bus.clone(), live.clone()));
        let ticks = tokio::spawn(domain::run_ticks(live.clone()));
        let blobs = blobs::LocalBlobs::open(&data_dir.join("files")).with_context(|| {
            format!(
                "cannot open the file store {}",
                data_dir.join("files").display()
            )
        })?;
        let domain = Arc::new(Domain {
            store,
            bus,
            limits: Limits::from(&config),
            live,
            files: domain::files::Files::new(Arc::new(blobs), config.max_upload_bytes),
        });
        let state = AppState {
            domain,
            hub,
            config: Arc::new(config),
            sessions: TaskTracker::new(),
        };
        Ok(Server {
            state,
            writer,
            fan_out,
            ticks,
            tls,
        })
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// The SHA-256 fingerprint of the TLS certificate (`AB:CD:...`), when serving TLS.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.fingerprint.as_str())
    }

    /// Where a generated self-signed certificate was written.
    pub fn generated_cert(&self) -> Option<&std::path::Path> {
        self.tls.as_ref().and_then(|t| t.generated_cert.as_deref())
    }

    /// Serves until `shutdown` resolves, then closes every WebSocket with a close frame,
    /// lets in-flight requests and writes finish, and stops the writer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            state,
            writer,
            fan_out,
            ticks,
            tls,
        } = self;
        let hub = state.hub.clone();
        let sessions = state.sessions.clone();
        let app = router(state);
        let signal_hub = hub.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down");
            signal_hub.shutdown.cancel();
        };
        match tls {
            None => {
                let listener = listener.tap_io(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                });
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .context("server failed")?;
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(10)));
                });
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls.config)
                    .acceptor(axum_server::accept::NoDelayAcceptor::new());
                axum_server::from_tcp(listener.into_std()?)?
                    .acceptor(acceptor)
                    .handle(handle)
                    .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                    .await
                    .context("server failed")?;
            }
        }
        sessions.close();
        if tokio::time::timeout(Duration::from_secs(5), sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!("some WebSocket sessions did not close in time");
        }
        // Every socket is closed, so nobody is left to deliver to. The presence ticker and
        // the fan-out hold store handles through the live layer: stop them and wait until
        // they are gone. Then the last store handle goes with the router, and the writer
        // finishes its last transaction and exits.
        ticks.abort();
        fan_out.abort();
        let _ = ticks.await;
        let _ = fan_out.await;
        let joined = tokio::task::spawn_blocking(move || writer.join());
        if tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .is_err()
        {
            tracing::warn!("database writer did not stop in time");
        }
        Ok(())
    }
}
