//! `natter-cli`: the `natter` command. The clap definitions live here (not in `main.rs`)
//! so that tests and the man-page generator reach them.
//!
//! - [`cli`]: the command line (clap derive); the source of `--help`, man pages and
//!   shell completions.
//! - [`commands`]: runs each command on `natter-client-core`.
//! - [`files`]: `send --file` uploads and `download`, with progress bars on a terminal.
//! - [`live`]: the live-layer commands (read, receipts, presence, status, typing, mute,
//!   settings, notify) and the JSON of live events.
//! - [`output`]: JSON lines for programs and sanitized lines for people.
//!
//! [`run`] parses, runs and returns the exit code; [`report`] turns an error into the
//! one-sentence `natter: ...` line and the exit status (1 runtime, 2 usage; a closed
//! stdout pipe counts as success).

pub mod admin;
pub mod cli;
pub mod commands;
pub mod files;
pub mod live;
pub mod output;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use natter_client_core::Error as CoreError;
use natter_protocol::ErrorCode;

pub use cli::Cli;

/// The full clap command (for man pages, completions and tests).
pub fn command() -> clap::Command {
    Cli::command()
}

/// A usage error found after parsing: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Writes `natter.1` and one page per visible subcommand (`natter-send.1`, ...) to `dir`.
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(command(), dir)
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<ExitCode> {
    // Must happen while the process has one thread.
    output::init_local_offset();
    init_tracing();
    let mut cli = Cli::parse();
    if cli.command.is_none() {
        // A bare `natter` in a terminal opens the interface; elsewhere it explains itself.
        if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
            cli.command = Some(cli::Command::Tui);
        } else if std::io::stdout().is_terminal() {
            command().print_help()?;
            return Ok(ExitCode::SUCCESS);
        } else {
            eprintln!("{}", command().render_usage());
            eprintln!("natter: a command is required: see 'natter --help'");
            return Ok(ExitCode::from(2));
        }
    }
    if let Some(pin) = &cli.pin {
        match natter_client_core::tls::parse_pin(pin) {
            Ok(pin) => natter_client_core::tls::set_trust(natter_client_core::tls::Trust::Pin(pin)),
            Err(e) => {
                eprintln!("natter: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    } else if let Some(ca) = &cli.ca_cert {
        natter_client_core::tls::set_trust(natter_client_core::tls::Trust::CaFile(ca.clone()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(commands::dispatch(cli))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NATTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Prints `err` as one `natter: ...` sentence on stderr and returns the exit status.
pub fn report(err: &anyhow::Error) -> ExitCode {
    // A reader that went away (`natter history ops | head -1`) is not a failure.
    if err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    if let Some(usage) = err.downcast_ref::<UsageError>() {
        eprintln!("natter: {usage}");
        return ExitCode::from(2);
    }
    let message = match err.downcast_ref::<CoreError>() {
        Some(e) => describe(e),
        None => format!("{err:#}"),
    };
    // The sentence may quote the server (an error's message): sanitize it for the terminal.
    eprintln!("natter: {}", natter_protocol::sanitize::terminal(&message));
    ExitCode::FAILURE
}

/// The sentence shown for a client-library error.
pub fn describe(e: &CoreError) -> String {
    match e {
        CoreError::NotSent { after, last } => match &**last {
            CoreError::Unreachable { url, .. } => {
                format!(
                    "cannot reach {url}: message not sent (gave up after {})",
                    natter_client_core::humane(*after)
                )
            }
            other => format!(
                "{}: message not sent (gave up after {})",
                describe(other).trim_end_matches('.'),
                natter_client_core::humane(*after)
            ),
        },
        CoreError::Api {
            code: ErrorCode::Unauthorized,
            ..
        } => "the server no longer accepts your session: run 'natter login USER'".into(),
        CoreError::Api { message, .. } => message.clone(),
        other => other.to_string(),
    }
}
