//! A person at a terminal: the real `natter` with its own `NATTER_HOME`.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tempfile::TempDir;

use crate::bins::bins;
use crate::process::{self, Output, Signal};

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";
/// How long one `natter` command may run before the test fails instead of hanging.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One device of one user: a `NATTER_HOME` directory and the server's URL.
pub struct User {
    pub name: String,
    home: TempDir,
    url: Arc<RwLock<String>>,
}

impl User {
    pub(crate) fn new(name: &str, url: Arc<RwLock<String>>) -> User {
        let home = tempfile::Builder::new()
            .prefix(&format!("natter-{name}-"))
            .tempdir()
            .expect("temp NATTER_HOME");
        User {
            name: name.to_owned(),
            home,
            url,
        }
    }

    /// The same account on another device (a fresh `NATTER_HOME`), logged in.
    #[track_caller]
    pub fn device(&self) -> User {
        let other = User::new(&self.name, Arc::clone(&self.url));
        other.login_ok();
        other
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn url(&self) -> String {
        self.url.read().unwrap().clone()
    }

    /// `natter ARGS` with `NATTER_SERVER` and `NATTER_HOME` set.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(&bins().natter);
        cmd.args(args)
            .env("NATTER_SERVER", self.url())
            .env("NATTER_HOME", self.home.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        cmd
    }

    /// Runs `natter ARGS` to completion (at most [`COMMAND_TIMEOUT`]) with empty stdin.
    #[track_caller]
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        process::run(self.command(args), None, COMMAND_TIMEOUT)
    }

    /// Runs `natter ARGS` with `stdin` as its standard input.
    #[track_caller]
    pub fn run_stdin<I, S>(&self, args: I, stdin: impl Into<Vec<u8>>) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        process::run(self.command(args), Some(stdin.into()), COMMAND_TIMEOUT)
    }

    /// Like [`User::run`], asserting exit code 0.
    #[track_caller]
    pub fn run_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let out = self.run(args);
        out.assert_ok();
        out
    }

    /// `natter register NAME --password-stdin` (registers and logs in).
    #[track_caller]
    pub fn register(&self) -> Output {
        let out = self.run_stdin(
            ["register", &self.name, "--password-stdin"],
            format!("{PASSWORD}\n"),
        );
        out.assert_ok();
        out
    }

    /// `natter login NAME --password-stdin`, asserting success.
    #[track_caller]
    pub fn login_ok(&self) -> Output {
        let out = self.run_stdin(
            ["login", &self.name, "--password-stdin"],
            format!("{PASSWORD}\n"),
        );
        out.assert_ok();
        out
    }

    /// `natter send TARGET TEXT`, asserting success; returns the printed message id.
    #[track_caller]
    pub fn send(&self, target: &str, text: &str) -> i64 {
        let out = self.run(["send", target, text]);
        out.assert_ok();
        message_id(&out)
    }

    /// `natter history TARGET --json [EXTRA...]`, asserting success.
    #[track_caller]
    pub fn history(&self, target: &str, extra: &[&str]) -> Vec<Msg> {
        let mut args = vec!["history", target, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        out.assert_ok();
        messages(&out)
    }

    /// Starts `natter ARGS` in the background (e.g. `listen --json`); killed on drop.
    #[track_caller]
    pub fn spawn<I, S>(&self, args: I) -> Listener
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Listener::spawn(self.command(args))
    }

    /// `natter listen --json [ARGS...]` in the background.
    #[track_caller]
    pub fn listen(&self, args: &[&str]) -> Listener {
        let mut all = vec!["listen", "--json"];
        all.extend_from_slice(args);
        self.spawn(all)
    }
}

impl Listener {
    /// Starts `cmd` (a [`User::command`], perhaps with changed environment) in the
    /// background, reading its stdout line by line; killed on drop.
    #[track_caller]
    pub fn spawn(mut cmd: Command) -> Listener {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = process::describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
        let (lines, stdout) = process::lines(child.stdout.take().expect("piped"));
        let (stderr, _) = process::collect(child.stderr.take().expect("piped"));
        Listener {
            command,
            child,
            lines,
            stdout,
            stderr,
            status: None,
        }
    }
}

/// The message id `natter send` prints on stdout (its last non-empty line).
#[track_caller]
pub fn message_id(out: &Output) -> i64 {
    let last = out.lines().last().copied().unwrap_or_default();
    last.parse().unwrap_or_else(|_| {
        panic!("`natter send` should print the message id, got {last:?}\n{out}")
    })
}

/// A message line of `--json` output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Msg {
    #[serde(rename = "type")]
    pub kind: String,
    pub conversation: String,
    pub conversation_id: i64,
    pub id: i64,
    pub seq: i64,
    pub sender: String,
    pub text: String,
    pub sent_at: String,
    pub client_id: String,
    /// The files the message carries (absent from the JSON when there are none).
    #[serde(default)]
    pub attachments: Vec<natter_protocol::Attachment>,
}

impl Msg {
    /// Parses one `--json` line if it is a message (`type` is `message`).
    pub fn parse(line: &str) -> Option<Result<Msg, String>> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value["type"] != "message" {
            return None;
        }
        Some(serde_json::from_value(value).map_err(|e| format!("message line {line:?}: {e}")))
    }
}

/// Every message line of a command's `--json` output (other line types are skipped).
#[track_caller]
pub fn messages(out: &Output) -> Vec<Msg> {
    let mut msgs = Vec::new();
    for line in out.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Err(e) => panic!("stdout line is not JSON ({e}): {line:?}\n{out}"),
            Ok(v) if v["type"] == "message" => msgs.push(
                serde_json::from_value(v)
                    .unwrap_or_else(|e| panic!("bad message line {line:?}: {e}\n{out}")),
            ),
            Ok(_) => {}
        }
    }
    msgs
}

/// A long-running `natter` (usually `listen`) whose stdout is read line by line.
pub struct Listener {
    command: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Listener {
    fn transcript(&self) -> String {
        format!(
            "command: {}\n--- stdout so far ---\n{}--- stderr so far ---\n{}",
            self.command,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The next stdout line, or `None` if none comes within `timeout` (or stdout closed).
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        process::recv_line(&self.lines, Instant::now() + timeout)
    }

    /// Reads lines until one satisfies `pred`; fails the test after `timeout`.
    #[track_caller]
    pub fn expect_line(&mut self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(line) = process::recv_line(&self.lines, deadline) {
            if pred(&line) {
                return line;
            }
        }
        panic!("no expected line within {timeout:?}\n{}", self.transcript());
    }

    /// The next message line, skipping other `--json` line types; `None` after `timeout`.
    #[track_caller]
    pub fn next_message(&mut self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        while let Some(line) = process::recv_line(&self.lines, deadline) {
            match Msg::parse(&line) {
                Some(Ok(m)) => return Some(m),
                Some(Err(e)) => panic!("{e}\n{}", self.transcript()),
                None => {}
            }
        }
        None
    }

    /// Reads message lines until one satisfies `pred`; fails the test after `timeout`.
    #[track_caller]
    pub fn expect_message(&mut self, timeout: Duration, mut pred: impl FnMut(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_message(left) {
                Some(m) if pred(&m) => return m,
                Some(_) => {}
                None => panic!(
                    "no expected message within {timeout:?}\n{}",
                    self.transcript()
                ),
            }
        }
    }

    /// Waits for the process to exit by itself; fails the test after `timeout`.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        match process::wait_timeout(&mut self.child, timeout) {
            Some(status) => {
                self.status = Some(status);
                status
            }
            None => panic!(
                "process did not exit within {timeout:?}\n{}",
                self.transcript()
            ),
        }
    }

    /// After the process has exited: every stdout line not consumed yet, up to EOF.
    #[track_caller]
    pub fn remaining_lines(&mut self, timeout: Duration) -> Vec<String> {
        assert!(self.status.is_some(), "call wait() first");
        let deadline = Instant::now() + timeout;
        let mut rest = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => rest.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return rest,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "stdout not closed within {timeout:?} of the exit\n{}",
                        self.transcript()
                    )
                }
            }
        }
    }

    /// Sends SIGINT (what Ctrl-C does) and waits for the exit.
    #[track_caller]
    pub fn interrupt(&mut self, timeout: Duration) -> ExitStatus {
        process::signal(self.child.id(), Signal::INT);
        self.wait(timeout)
    }

    /// Everything read from stdout so far (also lines not yet consumed by `next_*`).
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes sure `listener` (run by `target_user`) is connected: `prober` sends direct
/// messages `probe N` until the listener prints one. Returns the texts of all probes sent.
///
/// Without this a test could send before the listener's WebSocket is up, and a listener
/// without a stored cursor starts from "now". Probes are real messages and wait for real
/// output: no fixed sleeps.
#[track_caller]
pub fn await_ready(listener: &mut Listener, prober: &User, target_user: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = Vec::new();
    for n in 1.. {
        let text = format!("probe {n}");
        prober.send(&format!("@{target_user}"), &text);
        sent.push(text);
        let until = Instant::now() + Duration::from_millis(750);
        while let Some(m) = listener.next_message(until.saturating_duration_since(Instant::now())) {
            if m.sender == prober.name && m.text.starts_with("probe ") {
                return sent;
            }
        }
        assert!(
            Instant::now() < deadline,
            "listener never showed a probe message\n{}",
            listener.transcript()
        );
    }
    unreachable!()
}

impl Listener {
    /// SIGKILL, as a crash or `kill -9` would: nothing gets to say goodbye.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls stderr until it contains `needle`; fails the test after `timeout`.
    #[track_caller]
    pub fn expect_stderr(&mut self, timeout: Duration, needle: &str) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "stderr never showed {needle:?} within {timeout:?}\n{}",
                self.transcript()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads JSON lines until one satisfies `pred`; fails the test after `timeout`.
    /// Lines that are not JSON are skipped.
    #[track_caller]
    pub fn expect_json(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        while let Some(line) = process::recv_line(&self.lines, deadline) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && pred(&v)
            {
                return v;
            }
        }
        panic!(
            "no expected JSON line within {timeout:?}\n{}",
            self.transcript()
        );
    }

    /// Every JSON line up to (and including) the first that satisfies `until`.
    #[track_caller]
    pub fn json_until(
        &mut self,
        timeout: Duration,
        mut until: impl FnMut(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(line) = process::recv_line(&self.lines, deadline) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let done = until(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
        }
        panic!(
            "no expected JSON line within {timeout:?}\n{}",
            self.transcript()
        );
    }
}
