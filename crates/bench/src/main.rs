//! natter-bench: a load generator for natterd, and for plain IRC servers so the same
//! workloads can run against real peers (issue 7).
//!
//! - [`wire`]: raw sockets, the minimal WebSocket and IRC codecs, timestamp stamping.
//! - [`sched`]: the open-loop send schedule (no coordinated omission).
//! - [`engine`]: rooms of senders and receivers (workloads 1, 2, 5, 6).
//! - [`workloads`]: idle density (3), history and resume (4).
//! - [`files`]: upload and download of one large file (issue 5).
//! - [`api`]: Natter accounts and groups over REST.
//! - [`procstat`]: server and driver CPU, RSS and pinning from `/proc`.
//! - [`report`]: results as text, JSON lines and markdown.
//!
//! The driver runs on one thread (pin it with `taskset`); every connection is a task.

mod api;
mod engine;
mod files;
mod procstat;
mod report;
mod sched;
mod wire;
mod workloads;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Mode, Shape, Target};
use crate::report::Report;
use crate::wire::Proto;

/// Load generator for natterd and IRC servers. Every run prints its results and, with
/// --out, appends them as one JSON line per measurement.
#[derive(Debug, Parser)]
#[command(name = "natter-bench", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Args)]
struct Global {
    /// Protocol the server speaks.
    #[arg(long, value_enum, default_value_t = Proto::Natter, global = true)]
    proto: Proto,
    /// Server address (Natter: its HTTP listener; IRC: its client port).
    #[arg(long, default_value = "127.0.0.1:7600", global = true)]
    addr: SocketAddr,
    /// PID of the server process, for its CPU time, RSS and pinning.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Name of the system under test in reports (default: the protocol).
    #[arg(long, global = true)]
    label: Option<String>,
    /// Append results as JSON lines to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Natter: file caching registered accounts and tokens for reuse against one
    /// database (registration is slow by design).
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// Natter: concurrent registrations.
    #[arg(long, default_value_t = 8, global = true)]
    register_concurrency: usize,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Workload 1: one room, several senders, everyone receives.
    Fanout(RoomArgs),
    /// Workload 2: many small rooms, one or more senders each; --ladder steps the rate.
    Rooms(RoomArgs),
    /// Workload 3: ramp to many idle authenticated connections.
    Idle(IdleArgs),
    /// Workload 4 (Natter): clients catch up after missing messages; history page p99.
    History(HistoryArgs),
    /// Workload 5 (Natter): drop every connection of a rooms run and reconnect.
    Storm(RoomArgs),
    /// Workload 6: a fan-out run in which some receivers stop reading.
    Slow(RoomArgs),
    /// Natter: upload then download one large file; throughput and server memory.
    Files {
        /// File size in MiB (the server's max_upload_bytes must allow it).
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
    },
    /// Natter: registers accounts into --state ahead of the runs (argon2 is slow).
    Register {
        #[arg(long)]
        users: usize,
    },
    /// Renders JSON lines (from --out) as markdown tables.
    Report {
        /// The JSON lines file.
        input: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Closed,
    Rate,
}

#[derive(Debug, Args)]
struct RoomArgs {
    /// Number of rooms.
    #[arg(long)]
    rooms: Option<usize>,
    /// Members (connections) per room.
    #[arg(long)]
    members: Option<usize>,
    /// Senders per room (the first members).
    #[arg(long)]
    senders: Option<usize>,
    /// closed: each sender keeps --window in flight; rate: --rate per sender (open loop).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// In-flight messages per sender.
    #[arg(long)]
    window: Option<usize>,
    /// Messages per second per sender in rate mode.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Percentage of receivers that stop reading (default 1 for `slow`).
    #[arg(long)]
    slow_pct: Option<f64>,
    /// Total rates (msg/s, all senders together) to step through, e.g. 1000,2000,4000.
    #[arg(long, value_delimiter = ',')]
    ladder: Vec<f64>,
    /// Seconds per ladder step.
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    /// The ladder stops at the first step whose p99 exceeds this.
    #[arg(long, default_value_t = 50.0)]
    p99_target_ms: f64,
    /// Seconds into the measured window at which the storm drops every connection.
    #[arg(long)]
    storm_at: Option<f64>,
    /// Reconnects are spread over this many seconds.
    #[arg(long, default_value_t = 5.0)]
    storm_window: f64,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Natter accounts the connections are spread over (many connections per user).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Seconds to sit idle while measuring CPU.
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    #[arg(long, default_value_t = 128)]
    connect_concurrency: usize,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Messages each client misses before reconnecting.
    #[arg(long, default_value_t = 1000)]
    missed: usize,
    /// History requests (latest 50) for the p99.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

/// Defaults per workload: (rooms, members, senders, mode, window, rate, slow%, storm_at).
type Defaults = (usize, usize, usize, Mode, usize, f64, f64, Option<f64>);

impl RoomArgs {
    fn shape(&self, d: Defaults) -> Shape {
        let mode = match self.mode {
            Some(ModeArg::Closed) => Mode::Closed,
            Some(ModeArg::Rate) => Mode::Rate,
            None if !self.ladder.is_empty() || self.rate.is_some() => Mode::Rate,
            None => d.3,
        };
        Shape {
            rooms: self.rooms.unwrap_or(d.0),
            members: self.members.unwrap_or(d.1),
            senders: self.senders.unwrap_or(d.2),
            mode,
            window: self
                .window
                .unwrap_or(if mode == Mode::Closed { d.4 } else { 1000 }),
            rate: self.rate.unwrap_or(d.5),
            warmup: self.warmup,
            duration: self.duration,
            slow_pct: self.slow_pct.unwrap_or(d.6),
            ladder: self.ladder.clone(),
            step_secs: self.step_secs,
            p99_target_ms: self.p99_target_ms,
            storm_at: self.storm_at.or(d.7),
            storm_window: self.storm_window,
            connect_concurrency: self.connect_concurrency,
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("natter-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Cmd::Report { input } = &cli.cmd {
        let text = std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?;
        let md = report::markdown(&text)?;
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(md.as_bytes())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e.into());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let reports = local.block_on(&runtime, workload(cli))?;
    drop(local);
    Ok(if reports {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn workload(cli: Cli) -> anyhow::Result<bool> {
    let g = &cli.global;
    let api = match g.proto {
        Proto::Natter => Some(Rc::new(api::Api::new(g.addr)?)),
        Proto::Irc => None,
    };
    let tag = wire::now_ns() / 1_000_000 % 1_000_000;
    let target = Target {
        proto: g.proto,
        addr: g.addr,
        server_pid: g.server_pid,
        api,
        state: g.state.clone(),
        register_concurrency: g.register_concurrency,
        run_tag: format!("b{tag}"),
    };
    let label = g
        .label
        .clone()
        .unwrap_or_else(|| format!("{:?}", g.proto).to_lowercase());
    let reports: Vec<Report> = match &cli.cmd {
        Cmd::Fanout(a) => {
            let s = a.shape((1, 100, 10, Mode::Closed, 8, 100.0, 0.0, None));
            let name = match s.mode {
                Mode::Closed => "1 fan-out, closed loop",
                Mode::Rate => "1 fan-out, fixed rate",
            };
            let name = format!("{name} (room of {}, {} senders)", s.members, s.senders);
            engine::run(&target, s, &label, &name).await?
        }
        Cmd::Rooms(a) => {
            let s = a.shape((100, 10, 1, Mode::Closed, 8, 20.0, 0.0, None));
            let name = match (s.mode, s.ladder.is_empty()) {
                (Mode::Closed, _) => "2 small rooms, closed loop",
                (Mode::Rate, true) => "2 small rooms, fixed rate",
                (Mode::Rate, false) => "2 small rooms, rate ladder",
            };
            let name = format!("{name} ({} rooms of {})", s.rooms, s.members);
            engine::run(&target, s, &label, &name).await?
        }
        Cmd::Storm(a) => {
            let s = a.shape((100, 10, 1, Mode::Rate, 1000, 20.0, 0.0, Some(3.0)));
            let name = format!("5 reconnect storm ({} rooms of {})", s.rooms, s.members);
            engine::run(&target, s, &label, &name).await?
        }
        Cmd::Slow(a) => {
            let s = a.shape((1, 100, 10, Mode::Rate, 1000, 100.0, 1.0, None));
            let name = format!(
                "6 slow consumers ({}% of a room of {}, {} senders)",
                s.slow_pct, s.members, s.senders
            );
            engine::run(&target, s, &label, &name).await?
        }
        Cmd::Idle(a) => vec![
            workloads::idle(
                &target,
                &label,
                a.connections,
                a.users,
                a.idle_secs,
                a.connect_concurrency,
            )
            .await?,
        ],
        Cmd::History(a) => vec![
            workloads::history(
                &target,
                &label,
                a.clients,
                a.missed,
                a.requests,
                a.concurrency,
            )
            .await?,
        ],
        Cmd::Files { size_mib } => files::transfer(&target, &label, *size_mib).await?,
        Cmd::Register { users } => {
            let api = target
                .api
                .clone()
                .context("registering needs --proto natter")?;
            let started = std::time::Instant::now();
            let n = api::accounts(&api, g.state.as_deref(), *users, g.register_concurrency)
                .await?
                .len();
            println!(
                "{n} accounts ready in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(true);
        }
        Cmd::Report { .. } => unreachable!("handled before the runtime starts"),
    };
    if let Some(path) = &g.out {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        for r in &reports {
            writeln!(f, "{}", serde_json::to_string(r)?)?;
        }
    }
    Ok(!reports.is_empty())
}
