//! The command line, as clap definitions. Man pages and shell completions are generated
//! from these same definitions (`natter man`, `natter completions`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use natter_protocol::{Target, validate};

/// Terminal-first chat: the Natter client.
///
/// Targets name conversations: `@alice` is your direct conversation with alice, `ops` or
/// `#ops` is the group named ops (quote `#ops` in a shell). Read commands take `--json`
/// and print one JSON object per line. Exit status: 0 success, 1 runtime error (network,
/// authentication, permission, limit), 2 usage error.
#[derive(Debug, Parser)]
#[command(
    name = "natter",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Environment:\n  NATTER_SERVER  server URL (same as --server)\n  \
    NATTER_HOME    keep config, session and cache under this directory\n  \
    NATTER_CA_CERT trust this CA certificate file (same as --ca-cert)\n  \
    NATTER_PIN     trust the server with this certificate fingerprint (same as --pin)\n  \
    NATTER_LOG     log filter for diagnostics on stderr (e.g. debug)"
)]
pub struct Cli {
    /// Server URL [default: the one you logged in to, else http://127.0.0.1:7600]
    #[arg(long, global = true, env = "NATTER_SERVER", value_name = "URL")]
    pub server: Option<String>,

    /// Trust only certificates issued by the CA(s) in this PEM file (for a self-hosted
    /// server with its own CA)
    #[arg(
        long,
        global = true,
        env = "NATTER_CA_CERT",
        value_name = "FILE",
        conflicts_with = "pin"
    )]
    pub ca_cert: Option<PathBuf>,

    /// Trust only a server whose certificate has this SHA-256 fingerprint, as
    /// `natterd --tls-self-signed` prints it (AB:CD:...)
    #[arg(long, global = true, env = "NATTER_PIN", value_name = "SHA256")]
    pub pin: Option<String>,

    /// No progress bars or progress notes on stderr (errors still show). Progress bars
    /// are only drawn when stderr is a terminal anyway
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and log in to it
    Register(RegisterArgs),
    /// Log in and remember the session (and the server) for later commands
    Login(AuthArgs),
    /// Revoke this session's token and forget it
    Logout,
    /// Show who you are logged in as, and where
    Whoami {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Send a message (and files); prints its id once the server has durably stored it
    Send(SendArgs),
    /// Download a file someone sent; prints where it was saved
    Download(DownloadArgs),
    /// Show or flush messages waiting to be sent
    Outbox(OutboxArgs),
    /// Print incoming messages as they arrive, until interrupted
    Listen(ListenArgs),
    /// Print a page of a conversation's history, oldest first
    History(HistoryArgs),
    /// List your direct conversations and groups, latest activity first
    Conversations {
        /// Print one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Create groups and manage their members
    #[command(subcommand)]
    Group(GroupCommand),
    /// Mark a conversation read up to its latest message (or up to --seq)
    Read {
        /// The conversation: @user, or a group name (ops or #ops)
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Mark read only up to this sequence number (a marker never moves back)
        #[arg(long, value_name = "SEQ")]
        seq: Option<i64>,
        /// Print the conversation's new state as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Show who has your latest message in a conversation (or the one at SEQ)
    Receipts {
        #[arg(value_parser = parse_target)]
        target: Target,
        /// The sequence number of your message (default: your latest)
        seq: Option<i64>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Show whether people you share a conversation with are online, away or offline
    Presence {
        /// Usernames (default: everyone you share a conversation with)
        #[arg(value_parser = parse_username)]
        users: Vec<String>,
        /// Print one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Set yourself away, or back online (on every device)
    Status {
        #[arg(value_enum)]
        state: StatusArg,
    },
    /// Tell a conversation you are typing (it shows for a few seconds, or for --for)
    Typing {
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Keep announcing for this long (e.g. 30s, 5m) or until interrupted, then stop;
        /// for scripts that take a while before they send
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "stop")]
        duration: Option<Duration>,
        /// Stop the indicator now
        #[arg(long)]
        stop: bool,
    },
    /// Mute a conversation's desktop notifications (on every device)
    Mute {
        #[arg(value_parser = parse_target)]
        target: Target,
        /// Only for this long (e.g. 30m, 8h); default: until unmuted
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// Unmute a conversation
    Unmute {
        #[arg(value_parser = parse_target)]
        target: Target,
    },
    /// Show or change your settings (stored on the server, the same on every device)
    Settings {
        /// Send read receipts (off: you also see none from others)
        #[arg(long, value_name = "on|off", value_parser = parse_switch)]
        read_receipts: Option<bool>,
        /// Do not disturb: no desktop notifications on any device
        #[arg(long, value_name = "on|off", value_parser = parse_switch)]
        dnd: Option<bool>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Raise desktop notifications for incoming messages until interrupted
    Notify {
        /// Also print each notification as one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Open the full-screen terminal interface (what a bare `natter` does in a terminal)
    Tui,
    /// List your sessions (logins), or revoke one
    Sessions(crate::admin::SessionsArgs),
    /// Server administration (server admins only)
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write man pages for natter and its subcommands
    #[command(hide = true)]
    Man {
        /// Directory to write the pages to
        #[arg(long, default_value = "man")]
        dir: PathBuf,
    },
}

/// What `natter status` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusArg {
    Away,
    Online,
}

#[derive(Debug, Args)]
pub struct AuthArgs {
    /// Username: 1-32 of a-z, 0-9, '_', '.', '-'
    #[arg(value_parser = parse_username)]
    pub user: String,
    /// Read the password from the first line of standard input instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    /// An invite code from a server admin (needed when the server registers by invite)
    #[arg(long, value_name = "CODE")]
    pub invite: Option<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Where to send: @user, or a group name (ops or #ops)
    #[arg(value_parser = parse_target)]
    pub target: Target,
    /// The message; when absent, all of standard input is the message (one trailing
    /// newline removed). Words are joined by spaces; put `--` before text that starts
    /// with a dash. With --file it is optional: standard input is then read only when it
    /// is not a terminal (give `</dev/null` in a `while read` loop)
    pub text: Vec<String>,
    /// Attach this file (repeat for several, at most 10). Each is uploaded first, with a
    /// progress bar on a terminal; the message is sent once all are uploaded
    #[arg(long = "file", short = 'f', value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// How long to keep retrying while the server is unreachable (e.g. 500ms, 10s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub wait: Duration,
    /// If the server stays unreachable, keep the message in the outbox (exit 0); it goes
    /// out on the next `natter listen` or `natter outbox flush`
    #[arg(long)]
    pub queue: bool,
    /// Client id of the message (default: a new UUIDv7). Sending again with the same id
    /// never stores a second copy.
    #[arg(long, value_name = "ID", value_parser = parse_client_id)]
    pub client_id: Option<String>,
    /// Print the stored message as one JSON object instead of its id
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The file's id, as `history` and `listen` show it (📎 ... id ID, or `attachments`
    /// in --json)
    #[arg(value_name = "ATTACHMENT_ID")]
    pub id: String,
    /// Where to save it: a file path, or a directory to save it in under its own name
    /// (made safe: never outside that directory) [default: the current directory]
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace the file if it exists
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object (the attachment and the saved path) instead of the path
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct OutboxArgs {
    #[command(subcommand)]
    pub action: Option<OutboxAction>,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Send every waiting message now (exit 1 if the server is unreachable)
    Flush,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Only show these conversations (@user, ops or #ops); default: all
    #[arg(value_parser = parse_target)]
    pub targets: Vec<Target>,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Exit (status 0) after printing this many messages
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The conversation: @user, or a group name (ops or #ops)
    #[arg(value_parser = parse_target)]
    pub target: Target,
    /// How many messages (1-500)
    #[arg(long, short = 'n', default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Only messages with a sequence number below SEQ (page backwards)
    #[arg(long, value_name = "SEQ", conflicts_with = "after")]
    pub before: Option<i64>,
    /// Only messages with a sequence number above SEQ (page forwards)
    #[arg(long, value_name = "SEQ")]
    pub after: Option<i64>,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group; you become its owner
    Create {
        /// Group name: 1-32 of a-z, 0-9, '_', '.', '-'
        #[arg(value_parser = parse_group)]
        name: String,
        /// Members to add besides you (comma-separated; a leading @ is fine)
        #[arg(long, value_delimiter = ',', value_name = "USERS", value_parser = parse_username)]
        members: Vec<String>,
    },
    /// Add members to a group (owners and admins)
    Add {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(required = true, value_parser = parse_username)]
        users: Vec<String>,
    },
    /// Remove members from a group (owners and admins; anyone may remove themself)
    Remove {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(required = true, value_parser = parse_username)]
        users: Vec<String>,
    },
    /// List the groups you are a member of
    List {
        /// Print one JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show a group's members and their roles
    Info {
        #[arg(value_parser = parse_group)]
        name: String,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Make members admins (owners and admins)
    Promote {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(required = true, value_parser = parse_username)]
        users: Vec<String>,
    },
    /// Make admins plain members again (owners and admins; never the owner)
    Demote {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(required = true, value_parser = parse_username)]
        users: Vec<String>,
    },
    /// Rename a group (owners and admins)
    Rename {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(value_parser = parse_group)]
        new_name: String,
    },
    /// Set a group's topic; an empty topic clears it (owners and admins)
    Topic {
        #[arg(value_parser = parse_group)]
        name: String,
        /// The topic (words are joined with spaces)
        topic: Vec<String>,
    },
    /// Make another member the owner; you become an admin (owner only)
    Transfer {
        #[arg(value_parser = parse_group)]
        name: String,
        #[arg(value_parser = parse_username)]
        user: String,
    },
    /// Delete a group and its history for everyone (owner only)
    Delete {
        #[arg(value_parser = parse_group)]
        name: String,
        /// Confirm: the group's history is gone for every member
        #[arg(long)]
        yes: bool,
    },
    /// Leave a group (its owner transfers ownership first)
    Leave {
        #[arg(value_parser = parse_group)]
        name: String,
    },
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).map_err(|e| e.to_string())
}

fn parse_username(s: &str) -> Result<String, String> {
    validate::username(s.trim().strip_prefix('@').unwrap_or(s.trim())).map_err(|e| e.to_string())
}

fn parse_group(s: &str) -> Result<String, String> {
    validate::group_name(s.trim().strip_prefix('#').unwrap_or(s.trim())).map_err(|e| e.to_string())
}

fn parse_client_id(s: &str) -> Result<String, String> {
    validate::client_id(s)
        .map(|()| s.to_string())
        .map_err(|e| e.to_string())
}

fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    natter_client_core::parse_duration(s)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_promised_forms() {
        let cli =
            Cli::try_parse_from(["natter", "send", "#ops", "hello", "--json", "--", "-x"]).unwrap();
        let Some(Command::Send(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.target, Target::Group("ops".into()));
        assert_eq!(s.text, ["hello", "-x"]);
        assert!(s.json);
        assert_eq!(s.wait, Duration::from_secs(10));

        let cli =
            Cli::try_parse_from(["natter", "group", "create", "ops", "--members", "@a,b"]).unwrap();
        let Some(Command::Group(GroupCommand::Create { members, .. })) = cli.command else {
            panic!()
        };
        assert_eq!(members, ["a", "b"]);

        assert!(Cli::try_parse_from(["natter", "send", "a b", "x"]).is_err());
        assert!(Cli::try_parse_from(["natter", "send", "@bob", "--wait", "soon"]).is_err());
        assert!(Cli::try_parse_from(["natter", "history", "ops", "--limit", "501"]).is_err());
        assert!(Cli::try_parse_from(["natter", "listen", "--count", "0"]).is_err());
        let cli = Cli::try_parse_from([
            "natter", "send", "@bob", "-f", "a.log", "--file", "b.png", "--quiet",
        ])
        .unwrap();
        assert!(cli.quiet, "--quiet works after the subcommand too");
        let Some(Command::Send(s)) = cli.command else {
            panic!()
        };
        assert_eq!(s.files, [PathBuf::from("a.log"), PathBuf::from("b.png")]);
        assert!(s.text.is_empty());
        let cli =
            Cli::try_parse_from(["natter", "-q", "download", "0193", "-o", "out/", "--force"])
                .unwrap();
        let Some(Command::Download(d)) = cli.command else {
            panic!()
        };
        assert!(cli.quiet && d.force && !d.json);
        assert_eq!(d.output, Some(PathBuf::from("out/")));
        assert!(Cli::try_parse_from(["natter", "download"]).is_err());

        let cli = Cli::try_parse_from(["natter", "outbox", "flush"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Outbox(OutboxArgs {
                action: Some(_),
                ..
            }))
        ));
    }
}
