//! `natter sessions` (your own logins) and `natter admin ...` (server administration),
//! plus their clap definitions.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use natter_protocol::{AdminUser, CreateInviteRequest, InviteInfo, SessionInfo, sanitize};
use serde_json::json;

use crate::commands::{open, out};

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub action: Option<SessionsAction>,
    /// Print one JSON object per session
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Revoke one of your sessions (its token stops working at once)
    Revoke {
        /// The session id, as `natter sessions` lists it
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List every account
    Users {
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: revoke its sessions and close its connections at once
    Disable { user: String },
    /// Enable a disabled account
    Enable { user: String },
    /// Set a new password for an account (revokes its sessions)
    ResetPassword {
        user: String,
        /// Read the new password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make an account a server admin
    MakeAdmin { user: String },
    /// Take server-admin rights away from an account
    RevokeAdmin { user: String },
    /// Users, connections, messages and storage used
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Invite codes for registration mode `invite`
    #[command(subcommand)]
    Invite(InviteCommand),
}

#[derive(Debug, Subcommand)]
pub enum InviteCommand {
    /// Create an invite code (printed once: the server keeps only its hash)
    Create {
        /// How many registrations it allows
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it is valid (e.g. 30m, 24h, 7d)
        #[arg(long, value_parser = parse_duration, default_value = "7d")]
        expires: Duration,
        #[arg(long)]
        json: bool,
    },
    /// List invite codes (without the codes themselves)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke an invite code by its id
    Revoke { id: i64 },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Some(days) = s.strip_suffix('d') {
        let n: u64 = days.parse().map_err(|_| format!("not a duration: {s:?}"))?;
        return Ok(Duration::from_secs(n * 86_400));
    }
    if let Some(hours) = s.strip_suffix('h') {
        let n: u64 = hours
            .parse()
            .map_err(|_| format!("not a duration: {s:?}"))?;
        return Ok(Duration::from_secs(n * 3_600));
    }
    natter_client_core::parse_duration(s)
}

fn time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn session_json(s: &SessionInfo) -> String {
    json!({
        "type": "session", "id": s.id, "device": s.device, "created_at": time(s.created_at),
        "expires_at": time(s.expires_at), "current": s.current,
    })
    .to_string()
}

fn user_json(u: &AdminUser) -> String {
    json!({
        "type": "user", "id": u.id, "username": u.username, "is_admin": u.is_admin,
        "disabled": u.disabled, "created_at": time(u.created_at), "sessions": u.sessions,
        "connections": u.connections,
    })
    .to_string()
}

fn invite_json(i: &InviteInfo) -> String {
    json!({
        "type": "invite", "id": i.id, "code": i.code, "created_by": i.created_by,
        "created_at": time(i.created_at), "expires_at": time(i.expires_at),
        "max_uses": i.max_uses, "uses": i.uses, "revoked": i.revoked,
    })
    .to_string()
}

pub async fn sessions(server: Option<&str>, args: SessionsArgs) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let rest = client.rest();
    match args.action {
        Some(SessionsAction::Revoke { id }) => {
            rest.revoke_session(id).await?;
            out(&format!("revoked session {id}"))?;
        }
        None => {
            for s in rest.sessions().await? {
                if args.json {
                    out(&session_json(&s))?;
                } else {
                    let device = sanitize::single_line(s.device.as_deref().unwrap_or("-"));
                    let mark = if s.current { "  (this one)" } else { "" };
                    out(&format!(
                        "{:>5}  {:<24} since {}  expires {}{mark}",
                        s.id,
                        device,
                        time(s.created_at),
                        time(s.expires_at)
                    ))?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn admin(server: Option<&str>, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let rest = client.rest();
    match cmd {
        AdminCommand::Users { json } => {
            for u in rest.admin_users().await? {
                if json {
                    out(&user_json(&u))?;
                } else {
                    let mut flags = Vec::new();
                    if u.is_admin {
                        flags.push("admin");
                    }
                    if u.disabled {
                        flags.push("disabled");
                    }
                    out(&format!(
                        "{:<32} {:<16} {} sessions, {} connections",
                        u.username,
                        flags.join(","),
                        u.sessions,
                        u.connections
                    ))?;
                }
            }
        }
        AdminCommand::Disable { user } => {
            let user = user.trim_start_matches('@');
            rest.admin_set_disabled(user, true).await?;
            out(&format!(
                "disabled {user}; its sessions are revoked and its connections closed"
            ))?;
        }
        AdminCommand::Enable { user } => {
            let user = user.trim_start_matches('@');
            rest.admin_set_disabled(user, false).await?;
            out(&format!("enabled {user}"))?;
        }
        AdminCommand::ResetPassword {
            user,
            password_stdin,
        } => {
            let user = user.trim_start_matches('@').to_owned();
            let password = crate::commands::read_new_password(&user, password_stdin)?;
            rest.admin_reset_password(&user, &password).await?;
            out(&format!(
                "set a new password for {user}; its sessions are revoked"
            ))?;
        }
        AdminCommand::MakeAdmin { user } => {
            let user = user.trim_start_matches('@');
            rest.admin_set_admin(user, true).await?;
            out(&format!("{user} is now a server admin"))?;
        }
        AdminCommand::RevokeAdmin { user } => {
            let user = user.trim_start_matches('@');
            rest.admin_set_admin(user, false).await?;
            out(&format!("{user} is no longer a server admin"))?;
        }
        AdminCommand::Stats { json } => {
            let s = rest.admin_stats().await?;
            if json {
                out(&json!({
                    "type": "stats", "users": s.users, "disabled_users": s.disabled_users,
                    "conversations": s.conversations, "messages": s.messages,
                    "connections": s.connections, "storage_bytes": s.storage_bytes,
                })
                .to_string())?;
            } else {
                out(&format!(
                    "users:          {} ({} disabled)",
                    s.users, s.disabled_users
                ))?;
                out(&format!("connections:    {}", s.connections))?;
                out(&format!("conversations:  {}", s.conversations))?;
                out(&format!("messages:       {}", s.messages))?;
                out(&format!(
                    "storage:        {:.1} MiB",
                    s.storage_bytes as f64 / 1_048_576.0
                ))?;
            }
        }
        AdminCommand::Invite(InviteCommand::Create {
            uses,
            expires,
            json,
        }) => {
            let req = CreateInviteRequest {
                uses: Some(uses),
                expires_in_secs: Some(expires.as_secs()),
            };
            let i = rest.create_invite(&req).await?;
            if json {
                out(&invite_json(&i))?;
            } else {
                out(i.code.as_deref().unwrap_or_default())?;
                crate::commands::note(&format!(
                    "invite {} allows {} registration(s) until {}; share the code: \
                     natter register USER --invite CODE",
                    i.id,
                    i.max_uses,
                    time(i.expires_at)
                ));
            }
        }
        AdminCommand::Invite(InviteCommand::List { json }) => {
            for i in rest.invites().await? {
                if json {
                    out(&invite_json(&i))?;
                } else {
                    let state = if i.revoked { "revoked" } else { "" };
                    out(&format!(
                        "{:>5}  by {:<16} used {}/{}  expires {}  {state}",
                        i.id,
                        i.created_by,
                        i.uses,
                        i.max_uses,
                        time(i.expires_at)
                    ))?;
                }
            }
        }
        AdminCommand::Invite(InviteCommand::Revoke { id }) => {
            rest.revoke_invite(id).await?;
            out(&format!("revoked invite {id}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
