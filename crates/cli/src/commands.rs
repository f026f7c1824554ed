//! Runs each command on top of `natter-client-core`.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::Context;
use natter_client_core::{
    Client, ConnectOptions, Connection, ConnectionState, Event, Paths, SendOptions, SendOutcome,
    humane,
};
use natter_protocol::limits::DEFAULT_MAX_MESSAGE_BYTES;
use natter_protocol::{HistoryQuery, Target, validate};

use crate::UsageError;
use crate::cli::{
    AuthArgs, Cli, Command, GroupCommand, HistoryArgs, ListenArgs, OutboxAction, RegisterArgs,
    SendArgs,
};
use crate::output::{self, MessageJson, Style};

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let server = cli.server.as_deref();
    let quiet = cli.quiet;
    let Some(command) = cli.command else {
        return Ok(ExitCode::SUCCESS);
    };
    match command {
        Command::Register(args) => register(server, args).await,
        Command::Login(args) => login(server, args).await,
        Command::Logout => logout(server).await,
        Command::Whoami { json } => whoami(server, json).await,
        Command::Send(args) => send(server, args, quiet).await,
        Command::Download(args) => crate::files::download(server, args, quiet).await,
        Command::Outbox(args) => match args.action {
            Some(OutboxAction::Flush) => outbox_flush(server).await,
            None => outbox_list(server, args.json),
        },
        Command::Listen(args) => listen(server, args).await,
        Command::History(args) => history(server, args).await,
        Command::Conversations { json } => crate::live::conversations(server, json).await,
        Command::Group(cmd) => group(server, cmd).await,
        Command::Read { target, seq, json } => crate::live::read(server, target, seq, json).await,
        Command::Receipts { target, seq, json } => {
            crate::live::receipts(server, target, seq, json).await
        }
        Command::Presence { users, json } => crate::live::presence(server, users, json).await,
        Command::Status { state } => crate::live::status(server, state).await,
        Command::Typing {
            target,
            duration,
            stop,
        } => crate::live::typing(server, target, duration, stop).await,
        Command::Mute { target, duration } => {
            crate::live::mute(server, target, Some(duration)).await
        }
        Command::Unmute { target } => crate::live::mute(server, target, None).await,
        Command::Settings {
            read_receipts,
            dnd,
            json,
        } => crate::live::settings(server, read_receipts, dnd, json).await,
        Command::Notify { json } => crate::live::notify(server, json).await,
        Command::Tui => tui(server).await,
        Command::Sessions(args) => crate::admin::sessions(server, args).await,
        Command::Admin(cmd) => crate::admin::admin(server, cmd).await,
        Command::Completions { shell } => {
            // Generated into memory first: clap_complete panics on a write error, and a
            // closed pipe must not be a crash.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut crate::command(), "natter", &mut script);
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&script)?;
            stdout.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => {
            crate::write_man_pages(&dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The full-screen interface (`natter tui`, or a bare `natter` in a terminal).
async fn tui(server: Option<&str>) -> anyhow::Result<ExitCode> {
    // Asked while the runtime still has one thread (the time crate requires it).
    let utc_offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "the interface needs a terminal on stdin and stdout: use 'natter listen' and 'natter send' in scripts".into(),
        )
        .into());
    }
    let client = open(server)?;
    let opts = natter_tui::Options {
        utc_offset,
        ..natter_tui::Options::default()
    };
    natter_tui::run(client, opts).await?;
    Ok(ExitCode::SUCCESS)
}

fn paths() -> anyhow::Result<Paths> {
    Ok(Paths::from_env()?)
}

pub(crate) fn open(server: Option<&str>) -> anyhow::Result<Client> {
    Ok(Client::open(paths()?, server)?)
}

/// Writes one line to stdout and flushes it (stdout may be a pipe read line by line).
pub(crate) fn out(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

/// A `natter: ...` line on stderr. Sanitized: it often carries text from the server
/// (error messages, close reasons), and stderr is a terminal too.
pub(crate) fn note(line: &str) {
    eprintln!("natter: {}", natter_protocol::sanitize::terminal(line));
}

// ----- accounts -----

/// A new password for `user`, from stdin (`--password-stdin`) or asked twice on a terminal.
pub(crate) fn read_new_password(user: &str, password_stdin: bool) -> anyhow::Result<String> {
    let args = AuthArgs {
        user: user.to_owned(),
        password_stdin,
    };
    read_password(&args, true)
}

fn read_password(args: &AuthArgs, confirm: bool) -> anyhow::Result<String> {
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let pw = line.strip_suffix('\n').unwrap_or(&line);
        let pw = pw.strip_suffix('\r').unwrap_or(pw);
        if pw.is_empty() {
            return Err(UsageError("no password on standard input".into()).into());
        }
        return Ok(pw.to_string());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "no terminal to ask for the password: pass it on standard input with --password-stdin"
                .into(),
        )
        .into());
    }
    let pw = rpassword::prompt_password(format!("Password for {}: ", args.user))
        .context("cannot read the password")?;
    if confirm {
        validate::password(&pw)?;
        let again = rpassword::prompt_password("Repeat the password: ")
            .context("cannot read the password")?;
        if again != pw {
            anyhow::bail!("the passwords do not match: run the command again");
        }
    }
    Ok(pw)
}

async fn register(server: Option<&str>, args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let password = read_password(&args.auth, true)?;
    let (client, user) =
        Client::register_with_invite(paths()?, server, &args.auth.user, &password, args.invite)
            .await?;
    let admin = if user.is_admin { " (server admin)" } else { "" };
    out(&format!(
        "registered and logged in as {} on {}{admin}",
        user.username,
        client.server()
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn login(server: Option<&str>, args: AuthArgs) -> anyhow::Result<ExitCode> {
    let password = read_password(&args, false)?;
    let (client, user) = Client::login(paths()?, server, &args.user, &password).await?;
    out(&format!(
        "logged in as {} on {}",
        user.username,
        client.server()
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn logout(server: Option<&str>) -> anyhow::Result<ExitCode> {
    let client = match Client::open(paths()?, server) {
        Ok(c) => c,
        Err(natter_client_core::Error::NotLoggedIn) => {
            note("not logged in");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    let url = client.server().to_string();
    let name = client.username().to_string();
    if client.logout().await? {
        out(&format!("logged out {name} from {url}"))?;
    } else {
        note(&format!(
            "cannot reach {url}: forgot the session here, but its token stays valid on the server"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn whoami(server: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let me = client.me().await?;
    if json {
        out(&output::user_json(&me, client.server()))?;
    } else {
        let admin = if me.is_admin { " (server admin)" } else { "" };
        out(&format!("{} on {}{admin}", me.username, client.server()))?;
    }
    Ok(ExitCode::SUCCESS)
}

// ----- sending -----

fn message_from_stdin() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .context("cannot read the message from stdin")?;
    let mut text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("the message on standard input is not valid UTF-8"))?;
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.pop();
    }
    Ok(text)
}

async fn send(server: Option<&str>, args: SendArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let with_files = !args.files.is_empty();
    let text = if !args.text.is_empty() {
        args.text.join(" ")
    } else if with_files && std::io::stdin().is_terminal() {
        // Files alone: nobody is going to type a message into a waiting terminal.
        String::new()
    } else {
        message_from_stdin()?
    };
    validate::message(&text, args.files.len(), DEFAULT_MAX_MESSAGE_BYTES)?;
    let client = open(server)?;
    let mut attachments = Vec::new();
    if with_files {
        // Settle where it goes before uploading what may be gigabytes: an unknown user or
        // group fails here, with nothing sent.
        client.resolve(&args.target).await?;
        attachments = crate::files::upload_all(&client, &args.files, quiet).await?;
    }
    let opts = SendOptions {
        wait: args.wait,
        keep_queued: args.queue,
        client_id: args.client_id,
        attachments: attachments.iter().map(|a| a.id.clone()).collect(),
    };
    match client.send_now(&args.target, &text, opts).await? {
        SendOutcome::Sent(ack) => {
            if args.json {
                let target = args.target.to_string();
                let mut j = MessageJson::new(&target, &ack.message);
                j.duplicate = Some(ack.duplicate);
                out(&serde_json::to_string(&j)?)?;
            } else {
                out(&ack.message.id.to_string())?;
            }
        }
        SendOutcome::Queued {
            client_id,
            last_error,
        } => {
            note(&format!(
                "{last_error} The message waits in the outbox; it goes out with the next \
                 'natter listen' or 'natter outbox flush'."
            ));
            eprintln!("queued {client_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn outbox_list(server: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    for entry in client.outbox()? {
        out(&if json {
            output::outbox_json(&entry)
        } else {
            output::outbox_human(&entry)
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn outbox_flush(server: Option<&str>) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let report = client.flush().await?;
    for (entry, ack) in &report.sent {
        out(&format!(
            "sent {} to {}: id {}",
            entry.client_id, entry.target, ack.message.id
        ))?;
    }
    for (entry, e) in &report.failed {
        note(&format!(
            "dropped {} to {}: {e}",
            entry.client_id, entry.target
        ));
    }
    if let Some(e) = report.stopped {
        note(&format!("{} message(s) still queued", report.remaining));
        return Err(e.into());
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ----- reading -----

/// Resolves when the user interrupts (Ctrl-C) or the process is asked to stop (SIGTERM).
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn listen(server: Option<&str>, args: ListenArgs) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let url = client.server().to_string();
    let filter: Option<HashSet<String>> =
        (!args.targets.is_empty()).then(|| args.targets.iter().map(Target::to_string).collect());
    let wanted = |target: &str| filter.as_ref().is_none_or(|f| f.contains(target));
    let style = Style::detect();
    // Commit the cursor only after a message is printed: a listener that exits early
    // (--count, a signal) gets the rest on its next start.
    let opts = ConnectOptions {
        auto_commit: false,
        ..ConnectOptions::default()
    };
    let (conn, mut events) = Connection::spawn(client, opts);
    let mut printed = 0u64;
    let mut was_online = false;
    let stop = interrupted();
    tokio::pin!(stop);
    let code = loop {
        let event = tokio::select! {
            _ = &mut stop => break ExitCode::SUCCESS,
            ev = events.recv() => ev,
        };
        let Some(event) = event else {
            anyhow::bail!("the connection to {url} stopped unexpectedly");
        };
        match event {
            Event::ConnectionState(state) => match state {
                ConnectionState::Connecting => tracing::debug!("connecting"),
                ConnectionState::Online => {
                    note(&format!(
                        "{} to {url}",
                        if was_online {
                            "reconnected"
                        } else {
                            "connected"
                        }
                    ));
                    was_online = true;
                }
                ConnectionState::Offline { retry_in, reason } => {
                    let retry = humane(retry_in);
                    note(&if was_online {
                        format!("connection lost ({reason}); retrying in {retry}")
                    } else {
                        format!("{reason}; retrying in {retry}")
                    });
                }
                ConnectionState::Error { message, .. } => {
                    note(&message);
                    break ExitCode::FAILURE;
                }
            },
            Event::Message(ev) => {
                if wanted(&ev.target) {
                    out(&if args.json {
                        output::message_json(&ev.target, &ev.message)
                    } else {
                        output::message_human(&ev.target, &ev.message, style)
                    })?;
                    printed += 1;
                }
                conn.commit(ev.message.id)?;
                if args.count.is_some_and(|n| printed >= n) {
                    break ExitCode::SUCCESS;
                }
            }
            Event::Conversation(info) if wanted(&info.target()) => {
                out(&if args.json {
                    output::conversation_json(&info)
                } else {
                    let name = natter_protocol::sanitize::single_line(&info.target());
                    format!("-- {name} ({} members)", info.member_count)
                })?;
            }
            Event::Removed {
                conversation_id,
                target,
            } if target.as_deref().is_none_or(&wanted) => {
                out(&if args.json {
                    output::removed_json(target.as_deref(), conversation_id)
                } else {
                    let name = target
                        .as_deref()
                        .map(natter_protocol::sanitize::single_line);
                    let name = name.unwrap_or_else(|| format!("conversation {conversation_id}"));
                    format!("-- removed from {name}")
                })?;
            }
            ev @ (Event::Presence(_)
            | Event::Typing { .. }
            | Event::Receipt { .. }
            | Event::Unread { .. }) => {
                for line in crate::live::listen_line(&ev, args.json, &wanted) {
                    out(&line)?;
                }
            }
            Event::ServerError { code, message } => {
                note(&format!("the server reported an error ({code}): {message}"));
            }
            Event::OutboxSent {
                client_id,
                target,
                ack,
            } => {
                note(&format!(
                    "sent queued message {client_id} to {target}: id {}",
                    ack.message.id
                ));
            }
            Event::OutboxFailed {
                client_id,
                target,
                error,
            } => {
                note(&format!(
                    "dropped queued message {client_id} to {target}: {error}"
                ));
            }
            _ => {}
        }
    };
    conn.shutdown().await;
    Ok(code)
}

async fn history(server: Option<&str>, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let query = HistoryQuery {
        before: args.before,
        after: args.after,
        limit: Some(args.limit),
    };
    let (info, page) = client.history(&args.target, &query).await?;
    let target = info.target();
    let style = Style::detect();
    for m in &page.messages {
        out(&if args.json {
            output::message_json(&target, m)
        } else {
            output::message_human(&target, m, style)
        })?;
    }
    if page.has_more && !args.json && std::io::stderr().is_terminal() {
        let hint = match (args.after, page.messages.first(), page.messages.last()) {
            (Some(_), _, Some(last)) => format!("newer messages exist: use --after {}", last.seq),
            (None, Some(first), _) => format!("older messages exist: use --before {}", first.seq),
            _ => String::new(),
        };
        if !hint.is_empty() {
            note(&hint);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_roles(
    client: &Client,
    group: &str,
    users: &[String],
    role: natter_protocol::Role,
) -> anyhow::Result<()> {
    for user in users {
        client.rest().set_role(group, user, role).await?;
    }
    let verb = if users.len() == 1 { "is" } else { "are" };
    out(&format!(
        "{} {verb} now {} of {group}",
        users.join(", "),
        if role == natter_protocol::Role::Admin {
            "an admin"
        } else {
            "a member"
        }
    ))?;
    Ok(())
}

async fn group(server: Option<&str>, cmd: GroupCommand) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    match cmd {
        GroupCommand::Create { name, members } => {
            let g = client.create_group(&name, members).await?;
            out(&format!(
                "created group {} with {} members",
                g.name,
                g.members.len()
            ))?;
        }
        GroupCommand::Add { name, users } => {
            let g = client.add_members(&name, users.clone()).await?;
            out(&format!(
                "added {} to {}; it has {} members",
                users.join(", "),
                g.name,
                g.members.len()
            ))?;
        }
        GroupCommand::Remove { name, users } => {
            for user in &users {
                client.remove_member(&name, user).await?;
                out(&format!("removed {user} from {name}"))?;
            }
        }
        GroupCommand::List { json } => {
            for g in client.groups().await? {
                out(&if json {
                    output::group_json(&g)
                } else {
                    output::group_line(&g, client.username())
                })?;
            }
        }
        GroupCommand::Info { name, json } => {
            let g = client.group(&name).await?;
            out(&if json {
                output::group_json(&g)
            } else {
                output::group_info_human(&g)
            })?;
        }
        GroupCommand::Promote { name, users } => {
            set_roles(&client, &name, &users, natter_protocol::Role::Admin).await?;
        }
        GroupCommand::Demote { name, users } => {
            set_roles(&client, &name, &users, natter_protocol::Role::Member).await?;
        }
        GroupCommand::Rename { name, new_name } => {
            let req = natter_protocol::GroupSettingsRequest {
                name: Some(new_name),
                topic: None,
            };
            let g = client.rest().update_group(&name, &req).await?;
            out(&format!("renamed {name} to {}", g.name))?;
        }
        GroupCommand::Topic { name, topic } => {
            let req = natter_protocol::GroupSettingsRequest {
                name: None,
                topic: Some(topic.join(" ")),
            };
            client.rest().update_group(&name, &req).await?;
            out(&format!("set the topic of {name}"))?;
        }
        GroupCommand::Transfer { name, user } => {
            client.rest().transfer_group(&name, &user).await?;
            out(&format!("{user} now owns {name}; you are an admin"))?;
        }
        GroupCommand::Delete { name, yes } => {
            if !yes {
                return Err(UsageError(format!(
                    "deleting {name} removes its history for every member: add --yes to confirm"
                ))
                .into());
            }
            client.rest().delete_group(&name).await?;
            out(&format!("deleted {name}"))?;
        }
        GroupCommand::Leave { name } => {
            client.rest().leave_group(&name).await?;
            out(&format!("left {name}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
