//! File transfer on the command line: the uploads of `natter send --file` (checked before
//! anything travels) and `natter download`, with progress bars on a terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natter_client_core::{Client, Progress};
use natter_protocol::sanitize::single_line;
use natter_protocol::{Attachment, ErrorCode, human_size, limits, sanitize};

use crate::cli::DownloadArgs;
use crate::commands::{note, open, out};
use crate::output;

/// Whether to draw progress: stderr is a terminal and `--quiet` was not given.
pub fn show_progress(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

/// Longest file name shown in front of a progress bar, in characters.
const BAR_NAME_CHARS: usize = 28;

/// A byte-count progress bar on stderr for `name` (padded to `width` characters so the
/// bars of several files line up), or a hidden one.
fn bar(name: &str, width: usize, len: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(style(
        "{msg} [{wide_bar}] {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} {eta}",
    ));
    let shown = bar_name(name);
    let pad = width.saturating_sub(shown.chars().count());
    pb.set_message(format!("{shown}{}", " ".repeat(pad)));
    pb
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The name shown by a bar: one safe line (it may come from the server), cut to fit.
fn bar_name(name: &str) -> String {
    let clean = single_line(name);
    if clean.chars().count() > BAR_NAME_CHARS {
        let mut s: String = clean.chars().take(BAR_NAME_CHARS - 1).collect();
        s.push('…');
        s
    } else {
        clean
    }
}

/// Leaves a finished bar on the screen as a summary: size, time and rate.
fn finish(pb: &ProgressBar) {
    if !pb.is_hidden() {
        pb.set_style(style(
            "{msg} [{wide_bar}] {decimal_total_bytes} in {elapsed} ({decimal_bytes_per_sec})",
        ));
        pb.finish();
    }
}

fn progress_of(pb: &ProgressBar) -> Option<Progress> {
    if pb.is_hidden() {
        return None;
    }
    let pb = pb.clone();
    Some(Arc::new(move |n| pb.set_position(n)))
}

/// One file to upload, checked.
struct Local {
    path: PathBuf,
    len: u64,
}

/// Checks every file before anything is uploaded or sent: it exists, is a regular file
/// that can be opened, and fits the server's upload limit (when the server says it).
async fn check(client: &Client, paths: &[PathBuf]) -> anyhow::Result<Vec<Local>> {
    if paths.len() > limits::MAX_ATTACHMENTS {
        anyhow::bail!(
            "a message may carry at most {} files (got {}): send them in several messages",
            limits::MAX_ATTACHMENTS,
            paths.len()
        );
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot send {}: {}; nothing was sent",
                path.display(),
                io_reason(&e)
            )
        })?;
        if !meta.is_file() {
            anyhow::bail!(
                "cannot send {}: it is not a regular file; nothing was sent",
                path.display()
            );
        }
        std::fs::File::open(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot send {}: {}; nothing was sent",
                path.display(),
                io_reason(&e)
            )
        })?;
        files.push(Local {
            path: path.clone(),
            len: meta.len(),
        });
    }
    let sizes: Vec<(&Path, u64)> = files.iter().map(|f| (f.path.as_path(), f.len)).collect();
    if let Err(e) = client.check_upload_sizes(&sizes).await {
        anyhow::bail!("{e}: nothing was sent");
    }
    Ok(files)
}

/// An I/O error as people say it: "no such file", "permission denied".
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Uploads `paths` one after the other (each checked first, see [`check`]) and returns
/// the attachments in the same order.
pub async fn upload_all(
    client: &Client,
    paths: &[PathBuf],
    quiet: bool,
) -> anyhow::Result<Vec<Attachment>> {
    let files = check(client, paths).await?;
    let visible = show_progress(quiet);
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.path.display().to_string())
        })
        .collect();
    let width = names
        .iter()
        .map(|n| bar_name(n).chars().count())
        .max()
        .unwrap_or(0);
    let mut uploaded = Vec::with_capacity(files.len());
    for (f, name) in files.iter().zip(&names) {
        let pb = bar(name, width, f.len, visible);
        match client.rest().upload(&f.path, name, progress_of(&pb)).await {
            Ok(a) => {
                finish(&pb);
                uploaded.push(a);
            }
            Err(e) => {
                pb.abandon();
                let done = if uploaded.is_empty() {
                    "nothing was sent".to_string()
                } else {
                    format!(
                        "the message was not sent ({} of {} files had been uploaded)",
                        uploaded.len(),
                        files.len()
                    )
                };
                let why = crate::describe(&e);
                return Err(anyhow::anyhow!(
                    "cannot upload {}: {}; {done}",
                    f.path.display(),
                    why.trim_end_matches('.')
                ));
            }
        }
    }
    Ok(uploaded)
}

/// `natter download ID [-o PATH] [--force] [--json]`.
pub async fn download(
    server: Option<&str>,
    args: DownloadArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let client = open(server)?;
    let a = match client.attachment(&args.id).await {
        Err(e) if e.code() == Some(ErrorCode::NotFound) => anyhow::bail!(
            "no file {} that you can see: check the id (a file is only for the members of \
             the conversation it was sent in)",
            single_line(&args.id)
        ),
        other => other?,
    };
    let dest = destination(&a, args.output.as_deref())?;
    if !args.force && dest.exists() {
        return Err(natter_client_core::Error::Exists(dest).into());
    }
    let pb = bar(&a.name, 0, a.size, show_progress(quiet));
    let report = match client
        .rest()
        .download(&a, &dest, args.force, progress_of(&pb))
        .await
    {
        Ok(r) => {
            finish(&pb);
            r
        }
        Err(e) => {
            pb.abandon();
            return Err(e.into());
        }
    };
    if report.resumed_from > 0 && !quiet {
        note(&format!(
            "resumed an interrupted download at {} of {}",
            human_size(report.resumed_from),
            human_size(a.size)
        ));
    }
    if args.json {
        out(&output::download_json(&report))?;
    } else {
        // The name in it came from the server (made safe, and sanitized once more here).
        out(&sanitize::terminal(&report.path.to_string_lossy()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where attachment `a` goes: `output` itself, or inside it when it is a directory (or
/// ends with a slash), under the attachment's name made safe; by default the current
/// directory. The safe name is one path component, so nothing lands outside.
fn destination(a: &Attachment, output: Option<&Path>) -> anyhow::Result<PathBuf> {
    let safe = sanitize::filename(&a.name);
    let Some(out) = output else {
        return Ok(PathBuf::from(safe));
    };
    if out.is_dir() {
        return Ok(out.join(safe));
    }
    let s = out.as_os_str().to_string_lossy();
    if s.ends_with('/') || s.ends_with(std::path::MAIN_SEPARATOR) {
        anyhow::bail!(
            "cannot save to {}: no such directory (create it first)",
            out.display()
        );
    }
    match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => anyhow::bail!(
            "cannot save to {}: the directory {} does not exist (create it first)",
            out.display(),
            parent.display()
        ),
        _ => Ok(out.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(name: &str) -> Attachment {
        Attachment {
            id: "x".into(),
            name: name.into(),
            size: 1,
            mime: "text/plain".into(),
            hash: "0".repeat(64),
            width: None,
            height: None,
            thumbnail: false,
        }
    }

    #[test]
    fn destinations_stay_inside_the_chosen_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = att("../../etc/passwd");
        assert_eq!(
            destination(&a, Some(dir.path())).unwrap(),
            dir.path().join("passwd")
        );
        assert_eq!(destination(&a, None).unwrap(), PathBuf::from("passwd"));
        let named = dir.path().join("mine.txt");
        assert_eq!(destination(&a, Some(&named)).unwrap(), named);
        let missing = dir.path().join("nope/x.txt");
        let err = destination(&a, Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let slash = PathBuf::from(format!("{}/nope/", dir.path().display()));
        assert!(destination(&a, Some(&slash)).is_err());
    }

    #[test]
    fn bar_names_are_safe_and_short() {
        let pb = bar(&format!("\x1b]0;pwned\x07{}", "n".repeat(100)), 0, 10, true);
        let msg = pb.message();
        assert!(!msg.contains('\x1b') && !msg.contains('\x07'), "{msg:?}");
        assert_eq!(msg.chars().count(), BAR_NAME_CHARS);
        assert_eq!(
            bar("ab", 5, 10, true).message(),
            "ab   ",
            "padded to line up"
        );
        assert!(bar("x", 0, 10, false).is_hidden());
    }
}
