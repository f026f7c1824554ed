//! Desktop notifications from `natter notify`, through a real D-Bus session bus
//! (`dbus-run-session`) to a real notification service on it: a minimal
//! `org.freedesktop.Notifications` written for the test with zbus, which records what
//! arrives. Needs the `dbus` package (`.ci/run` installs it); the test fails without it.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use natter_e2e::process::{self, Signal};
use natter_e2e::{Listener, SOON, Server, User};

/// One notification as the service received it.
#[derive(Debug, Clone)]
struct Seen {
    app_name: String,
    summary: String,
    body: String,
}

/// A session bus from `dbus-run-session`, alive until dropped.
struct SessionBus {
    child: Child,
    /// The `sleep` that keeps the session alive; ending it ends the bus.
    holder: u32,
    address: String,
}

impl SessionBus {
    fn start() -> SessionBus {
        let mut child = Command::new("dbus-run-session")
            .args([
                "--",
                "sh",
                "-c",
                "echo \"$DBUS_SESSION_BUS_ADDRESS\"; echo $$; exec sleep 3600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run dbus-run-session ({e}): install the dbus package (apt-get install dbus)")
            });
        let (lines, _) = process::lines(child.stdout.take().expect("piped"));
        let deadline = std::time::Instant::now() + SOON;
        let address =
            process::recv_line(&lines, deadline).expect("bus address from dbus-run-session");
        let holder = process::recv_line(&lines, deadline)
            .and_then(|l| l.trim().parse().ok())
            .expect("pid of the session's child");
        assert!(
            address.starts_with("unix:"),
            "unexpected bus address {address:?}"
        );
        SessionBus {
            child,
            holder,
            address,
        }
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        process::signal(self.holder, Signal::TERM);
        if process::wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Notifications {
    seen: mpsc::Sender<Seen>,
    next_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &mut self,
        app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        let _ = self.seen.send(Seen {
            app_name,
            summary,
            body,
        });
        self.next_id += 1;
        self.next_id
    }

    async fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into(), "body-markup".into()]
    }

    async fn get_server_information(&self) -> (String, String, String, String) {
        (
            "natter-test".into(),
            "natter".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    async fn close_notification(&self, _id: u32) {}
}

/// Serves `org.freedesktop.Notifications` on the bus at `address` from a thread of its
/// own; returns what it receives once it owns the name.
fn notification_service(address: &str) -> mpsc::Receiver<Seen> {
    let (seen_tx, seen_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let address = address.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let service = Notifications {
                seen: seen_tx,
                next_id: 0,
            };
            let conn = zbus::connection::Builder::address(address.as_str())
                .name("org.freedesktop.Notifications")
                .serve_at("/org/freedesktop/Notifications", service)
                .build()
                .await
                .expect("serve org.freedesktop.Notifications on the session bus");
            let _ = ready_tx.send(());
            // Serve until the test process ends.
            let _keep = conn;
            std::future::pending::<()>().await;
        });
    });
    ready_rx
        .recv_timeout(SOON)
        .expect("the notification service is up");
    seen_rx
}

/// `natter notify --json` for `user`, on the given bus, connected.
fn notifier(user: &User, bus_address: &str) -> Listener {
    let mut cmd = user.command(["notify", "--json"]);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", bus_address);
    let mut l = Listener::spawn(cmd);
    l.expect_stderr(SOON, "connected to");
    l
}

#[track_caller]
fn next(seen: &mpsc::Receiver<Seen>) -> Seen {
    seen.recv_timeout(SOON)
        .expect("a notification reached the notification service")
}

#[test]
fn notifications_reach_a_real_session_bus_safe_muted_and_grouped() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    alice.send("@bob", "before the notifier");
    carol.send("@bob", "before the notifier too");

    let bus = SessionBus::start();
    let seen = notification_service(&bus.address);
    let mut bob_n = notifier(&bob, &bus.address);

    // Escape sequences and markup never get through.
    alice.send(
        "@bob",
        "\x1b]0;pwned\x07<b>bold</b> & <a href='x'>link</a> \x1b[31mred\x1b[0m\r",
    );
    let n = next(&seen);
    assert_eq!(n.app_name, "natter");
    assert_eq!(n.summary, "alice");
    assert_eq!(
        n.body,
        "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=&#39;x&#39;&gt;link&lt;/a&gt; red"
    );
    assert!(!n.body.contains(['\x1b', '\x07', '\r', '<', '>']), "{n:?}");

    // A long message is capped.
    alice.send("@bob", &"long ".repeat(400));
    let n = next(&seen);
    assert!(
        n.body.chars().count() <= 300 && n.body.ends_with('…'),
        "{n:?}"
    );

    // Muted (server-side, from another device): nothing for alice; carol still notifies.
    bob.device().run_ok(["mute", "@alice"]);
    alice.send("@bob", "muted one");
    carol.send("@bob", "from carol");
    let n = next(&seen);
    assert_eq!(
        (n.summary.as_str(), n.body.as_str()),
        ("carol", "from carol")
    );

    // Do not disturb silences everyone.
    bob.run_ok(["unmute", "@alice"]);
    bob.run_ok(["settings", "--dnd", "on"]);
    carol.send("@bob", "during dnd");
    bob.run_ok(["settings", "--dnd", "off"]);
    alice.send("@bob", "after dnd");
    let n = next(&seen);
    assert_eq!(
        (n.summary.as_str(), n.body.as_str()),
        ("alice", "after dnd")
    );

    // Many at once (a catch-up after a pause) become one grouped notification.
    bob_n.interrupt(SOON);
    for i in 1..=5 {
        alice.send("@bob", &format!("catch-up {i}"));
    }
    let _bob_n = notifier(&bob, &bus.address);
    let n = next(&seen);
    assert_eq!(n.summary, "5 new messages from alice");
    assert_eq!(
        n.body,
        "alice: catch-up 3\nalice: catch-up 4\nalice: catch-up 5"
    );
    // In a group: sender and group in the summary.
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    alice.send("ops", "group <i>news</i>");
    let n = next(&seen);
    assert_eq!(
        (n.summary.as_str(), n.body.as_str()),
        ("alice in ops", "group &lt;i&gt;news&lt;/i&gt;")
    );

    // A file is announced by name and size; with text, the text is the body.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("build.log");
    std::fs::write(&log, "x".repeat(2_100_000)).unwrap();
    alice.run_ok(["send", "@bob", "--file", log.to_str().unwrap()]);
    let n = next(&seen);
    assert_eq!(
        (n.summary.as_str(), n.body.as_str()),
        ("alice sent build.log (2.1 MB)", "")
    );
    // Several, one with a hostile name, and a caption: sanitized and escaped like text.
    let evil = dir.path().join("\x1b]0;pwned\x07R&D <b>\x1b[2J.txt");
    std::fs::write(&evil, "evil").unwrap();
    alice.run_ok([
        "send",
        "ops",
        "-f",
        evil.to_str().unwrap(),
        "-f",
        log.to_str().unwrap(),
        "see <these>",
    ]);
    let n = next(&seen);
    assert_eq!(
        n.summary,
        // The server drops the escape sequences whole; `<`, `>` become `_` in a file name.
        "alice in ops sent R&amp;D _b_.txt and 1 more file (2.1 MB)"
    );
    assert_eq!(n.body, "see &lt;these&gt;");
    assert!(!n.summary.contains(['\x1b', '\x07']), "{n:?}");
}

#[test]
fn without_a_notification_service_it_says_so_once_and_keeps_running() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.send("@bob", "hi");
    let mut bob_n = notifier(&bob, "unix:path=/nonexistent/natter-test-bus");
    for i in 1..=3 {
        alice.send("@bob", &format!("message {i}"));
        let line = bob_n.expect_json(SOON, |v| v["type"] == "notification");
        assert_eq!(line["shown"], false, "{line}");
        assert_eq!(line["body"], format!("message {i}"));
    }
    assert!(bob_n.is_running(), "it keeps running");
    let said = bob_n
        .stderr()
        .matches("no desktop notification service")
        .count();
    assert_eq!(said, 1, "said once:\n{}", bob_n.stderr());
}
