//! The real `natter` TUI in a real terminal: a tmux server on a private socket, a pane
//! of a fixed size running `natter` with the user's `NATTER_HOME`, keys sent with
//! `send-keys`, and the screen read with `capture-pane`. Tests wait for text on the
//! screen with a deadline; they never sleep for a fixed time.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bins::bins;
use crate::user::User;

/// A tmux server with one session whose pane runs `natter` for one user. The server is
/// killed on drop.
pub struct Tmux {
    dir: TempDir,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Tmux {
    /// Starts `natter ARGS` for `user` in a `cols` x `rows` pane. When natter exits, the
    /// pane's shell prints `natter exited: STATUS` and whether the tty is back in
    /// canonical mode (`tty: cooked`) or was left raw (`tty: raw`).
    #[track_caller]
    pub fn start(user: &User, args: &[&str], cols: u16, rows: u16) -> Tmux {
        let dir = tempfile::Builder::new()
            .prefix("natter-tmux-")
            .tempdir()
            .expect("temp dir for the tmux socket");
        let tmux = Tmux { dir };
        let mut line = format!(
            "NATTER_HOME={} NATTER_SERVER={} TERM=tmux-256color {}",
            quote(&user.home().display().to_string()),
            quote(&user.url()),
            quote(&bins().natter.display().to_string()),
        );
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line.push_str(
            "; echo \"natter exited: $?\"; \
             if stty -a | grep -q -- '-icanon'; then echo 'tty: raw'; else echo 'tty: cooked'; fi; \
             exec sleep 3600",
        );
        let out = tmux
            .command()
            .args(["new-session", "-d", "-s", "natter", "-x"])
            .arg(cols.to_string())
            .arg("-y")
            .arg(rows.to_string())
            .arg(line)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run tmux ({e}): the TUI tests need it (apt-get install tmux)")
            });
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-f")
            .arg("/dev/null")
            .arg("-S")
            .arg(self.socket())
            .stdin(Stdio::null());
        cmd
    }

    /// `tmux send-keys` with tmux key names (`Enter`, `PPage`, `M-1`, `C-k`).
    #[track_caller]
    pub fn keys(&self, keys: &[&str]) {
        let out = self
            .command()
            .args(["send-keys", "-t", "natter"])
            .args(keys)
            .output()
            .expect("tmux send-keys");
        assert!(out.status.success(), "send-keys {keys:?} failed");
    }

    /// Types `text` literally (no key-name lookup).
    #[track_caller]
    pub fn type_text(&self, text: &str) {
        let out = self
            .command()
            .args(["send-keys", "-t", "natter", "-l", text])
            .output()
            .expect("tmux send-keys -l");
        assert!(out.status.success(), "send-keys -l {text:?} failed");
    }

    /// The visible screen, one string per row.
    pub fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "natter"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A pane format variable, such as `alternate_on` or `mouse_any_flag`.
    pub fn pane_flag(&self, name: &str) -> String {
        let out = self
            .command()
            .args(["display-message", "-p", "-t", "natter"])
            .arg(format!("#{{{name}}}"))
            .output()
            .expect("tmux display-message");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the screen satisfies `pred`; returns that screen. Panics with the last
    /// screen after `timeout`.
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if pred(&screen) {
                return screen;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `text` is on the screen.
    #[track_caller]
    pub fn wait_text(&self, text: &str, timeout: Duration) -> String {
        self.wait_for(&format!("{text:?}"), timeout, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}
