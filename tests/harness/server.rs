//! A real `natterd` on a loopback port with a temporary data directory.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bins::bins;
use crate::process::{self, Signal};
use crate::user::User;

/// How long `natterd` may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a restart keeps trying to bind the port the server had before.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or deliberately stopped) `natterd`. Killed on drop, also when a test panics.
pub struct Server {
    data_dir: TempDir,
    /// `http`, or `https` when natterd serves TLS.
    scheme: &'static str,
    /// The TLS certificate fingerprint natterd printed, if it serves TLS.
    fingerprint: Option<String>,
    /// Where the database goes when not in `data_dir` (e.g. a small tmpfs).
    data_override: Option<std::path::PathBuf>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    addr: SocketAddr,
    /// Shared with every [`User`] so a restart on another port is followed.
    url: Arc<RwLock<String>>,
    /// stdout and stderr of every incarnation, for failure messages.
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `natterd --listen 127.0.0.1:0 --data-dir TMP` and waits until it listens.
    #[track_caller]
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Like [`Server::start`], with extra environment (e.g. `NATTERD_MAX_MESSAGE_BYTES`).
    #[track_caller]
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        Server::start_in(None, env)
    }

    /// Like [`Server::start_with`], with the database in `data_dir` instead of a temp dir.
    #[track_caller]
    pub fn start_in(dir: Option<&std::path::Path>, env: &[(&str, &str)]) -> Server {
        let data_dir = tempfile::Builder::new()
            .prefix("natterd-")
            .tempdir()
            .expect("temp data dir");
        let mut server = Server {
            scheme: "http",
            fingerprint: None,
            data_dir,
            data_override: dir.map(std::path::Path::to_path_buf),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            url: Arc::new(RwLock::new(String::new())),
            log: Arc::new(Mutex::new(String::new())),
        };
        let addr = server
            .spawn("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{e}"));
        server.set_addr(addr);
        server
    }

    /// The SHA-256 fingerprint natterd printed for its TLS certificate (`AB:CD:...`).
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// `http://127.0.0.1:PORT` (or `https://` when natterd serves TLS)
    pub fn url(&self) -> String {
        self.url.read().unwrap().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_override
            .as_deref()
            .unwrap_or(self.data_dir.path())
    }

    /// Everything the server printed so far, across restarts.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// A user handle (not registered) with its own `NATTER_HOME`.
    pub fn user(&self, name: &str) -> User {
        User::new(name, Arc::clone(&self.url))
    }

    /// A user registered (and logged in) through `natter register NAME --password-stdin`.
    #[track_caller]
    pub fn register(&self, name: &str) -> User {
        let user = self.user(name);
        user.register();
        user
    }

    /// SIGKILL, and wait until the process is gone. Nothing gets a chance to flush.
    #[track_caller]
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and wait for the exit (at most 20 s). Returns the exit status.
    #[track_caller]
    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server is running");
        process::signal(child.id(), Signal::TERM);
        match process::wait_timeout(&mut child, Duration::from_secs(20)) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "natterd did not exit within 20 s of SIGTERM\n{}",
                    self.log()
                );
            }
        }
    }

    /// Starts the server again on the same data directory (and, if it can be bound again
    /// within a few seconds, the same port; otherwise a new one, which users follow).
    #[track_caller]
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        let want = self.addr.to_string();
        let deadline = Instant::now() + REBIND_TIMEOUT;
        loop {
            match self.spawn(&want) {
                Ok(addr) => {
                    self.set_addr(addr);
                    return;
                }
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("natterd could not rebind {want} ({e}); using a new port");
                    let addr = self.spawn("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
                    self.set_addr(addr);
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn set_addr(&mut self, addr: SocketAddr) {
        self.addr = addr;
        *self.url.write().unwrap() = format!("{}://{addr}", self.scheme);
    }

    /// Spawns natterd on `listen` and waits for its `listening on http://ADDR` line.
    fn spawn(&mut self, listen: &str) -> Result<SocketAddr, String> {
        let mut cmd = Command::new(&bins().natterd);
        cmd.arg("--listen").arg(listen).arg("--data-dir").arg(
            self.data_override
                .as_deref()
                .unwrap_or(self.data_dir.path()),
        );
        for (k, _) in std::env::vars() {
            if k.starts_with("NATTERD_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = process::describe(&cmd);
        let mut child = cmd.spawn().map_err(|e| format!("spawn {command}: {e}"))?;
        let (stdout, _) = process::lines(child.stdout.take().expect("piped"));
        let stderr_pipe = child.stderr.take().expect("piped");
        let log = Arc::clone(&self.log);
        let stderr_thread = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                log.lock()
                    .unwrap()
                    .push_str(&format!("[natterd stderr] {line}\n"));
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = loop {
            let Some(line) = process::recv_line(&stdout, deadline) else {
                let _ = child.kill();
                let status = child.wait().ok();
                // The child is gone, so its stderr is closed: the thread ends promptly.
                let _ = stderr_thread.join();
                return Err(format!(
                    "{command} did not print `listening on http://ADDR` within {START_TIMEOUT:?} \
                     (exit: {status:?})\n{}",
                    self.log()
                ));
            };
            self.log
                .lock()
                .unwrap()
                .push_str(&format!("[natterd stdout] {line}\n"));
            if let Some(fp) = line
                .trim()
                .strip_prefix("tls certificate sha256 fingerprint ")
            {
                self.fingerprint = Some(fp.to_owned());
            }
            let listening = line.trim().strip_prefix("listening on ");
            let found = listening
                .and_then(|l| l.strip_prefix("http://").map(|r| ("http", r)))
                .or_else(|| {
                    listening.and_then(|l| l.strip_prefix("https://").map(|r| ("https", r)))
                });
            if let Some((scheme, rest)) = found {
                self.scheme = scheme;
                match rest.trim().parse::<SocketAddr>() {
                    Ok(addr) => break addr,
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("bad address in {line:?}: {e}"));
                    }
                }
            }
        };
        // Keep draining stdout into the log so the pipe never fills.
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            while let Ok(line) = stdout.recv() {
                log.lock()
                    .unwrap()
                    .push_str(&format!("[natterd stdout] {line}\n"));
            }
        });
        self.child = Some(child);
        Ok(addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- natterd log ---\n{}", self.log());
        }
    }
}
