use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use natter_server::{Config, Server};
use std::io::Write;

/// natterd: the Natter chat server.
///
/// With no flags it serves on 127.0.0.1:7600 with an SQLite database in the platform
/// data directory. Settings come from defaults, then --config FILE (TOML), then NATTERD_*
/// environment variables (e.g. NATTERD_MAX_MESSAGE_BYTES=32768), then these flags.
#[derive(Debug, Parser)]
#[command(name = "natterd", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the real one is printed).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory for the database.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve HTTPS/WSS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS/WSS with a self-signed certificate generated at start (for tests and
    /// trials); its SHA-256 fingerprint is printed for clients to pin with --pin.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
}

/// mimalloc gives freed memory back to the system; glibc's malloc kept the 19 MiB argon2
/// buffers of every burst of logins in its arenas (~440 MiB after 50 concurrent
/// registrations, measured with /proc/PID/status).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("natterd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NATTERD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = Some(dir);
    }
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
        config.tls_key = args.tls_key;
    }
    if args.tls_self_signed {
        config.tls_self_signed = true;
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listen = config.listen;
        let server = Server::new(config).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback()
            && server.state.config.registration == natter_server::config::Registration::Open
        {
            tracing::warn!(
                %addr,
                "registration is open on a non-loopback address: anyone who can reach this \
                 server can create an account (set registration = \"invite\" or \"closed\")"
            );
        }
        {
            let mut out = std::io::stdout().lock();
            if let Some(fp) = server.tls_fingerprint() {
                writeln!(out, "tls certificate sha256 fingerprint {fp}")?;
            }
            if let Some(path) = server.generated_cert() {
                writeln!(
                    out,
                    "tls self-signed certificate written to {}",
                    path.display()
                )?;
            }
            writeln!(out, "listening on {}://{addr}", server.scheme())?;
            out.flush()?;
        }
        tracing::info!(%addr, "natterd ready");
        server.serve(listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
