//! Child-process plumbing shared by the server and user handles: signals, bounded waits,
//! and readers that drain pipes in threads so a child never blocks on a full pipe.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use rustix::process::Signal;

/// Sends `sig` to the process `pid`. Errors (the process is already gone) are ignored.
pub fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for failure messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the whole output unless the command exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        self.assert_code(0)
    }

    /// Panics with the whole output unless the command exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "expected exit code {code}\n{self}");
        self
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "expected stderr to contain {needle:?}\n{self}"
        );
        self
    }

    /// The non-empty stdout lines, trimmed.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Stdout parsed as one JSON object per line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}\n{self}"))
            })
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

/// A pipe drained into a shared string by a thread.
pub fn collect<R: Read + Send + 'static>(pipe: R) -> (Arc<Mutex<String>>, thread::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&buf);
    let handle = thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            match reader.read_until(b'\n', &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    });
    (buf, handle)
}

/// A pipe whose lines are sent over a channel (and also kept in a shared transcript).
pub fn lines<R: Read + Send + 'static>(pipe: R) -> (Receiver<String>, Arc<Mutex<String>>) {
    let (tx, rx) = mpsc::channel();
    let transcript = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&transcript);
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut chunk = Vec::new();
        loop {
            chunk.clear();
            match reader.read_until(b'\n', &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&chunk)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    sink.lock().unwrap().push_str(&format!("{line}\n"));
                    // The receiver may be gone (the test moved on); keep draining anyway.
                    let _ = tx.send(line);
                }
            }
        }
    });
    (rx, transcript)
}

/// Runs `cmd` to completion with `stdin` as its input, killing it (and failing the test)
/// if it takes longer than `timeout`.
#[track_caller]
pub fn run(mut cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let command = describe(&cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A child that exits without reading all of it closes the pipe: not our failure.
        thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, timed_out) = match rx.recv_timeout(timeout) {
        Ok(out) => (out, false),
        Err(_) => {
            signal(pid, Signal::KILL);
            (rx.recv().expect("waiter thread reports"), true)
        }
    };
    let out = out.unwrap_or_else(|e| panic!("wait for {command}: {e}"));
    let output = Output {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !timed_out,
        "command did not finish within {timeout:?}; killed\n{output}"
    );
    output
}

/// Receives one line, or `None` at the deadline or when the pipe is closed.
pub fn recv_line(rx: &Receiver<String>, deadline: Instant) -> Option<String> {
    let left = deadline.saturating_duration_since(Instant::now());
    rx.recv_timeout(left).ok()
}

/// Waits up to `timeout` for a child to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// `program arg arg ...` with the interesting environment, for failure messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    let program = cmd.get_program().to_string_lossy();
    s.push_str(program.rsplit('/').next().unwrap_or(&program));
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.len() > 80 {
            s.push_str(&format!(" <{} bytes>", a.len()));
        } else {
            s.push_str(&format!(" {a}"));
        }
    }
    s
}
