//! The full-screen interface, as a person uses it: the real `natter` in a tmux pane
//! against a real `natterd`, with other people on the CLI.

use std::time::{Duration, Instant};

use natter_e2e::tmux::Tmux;
use natter_e2e::ws::Api;
use natter_e2e::{Msg, PASSWORD, SOON, Server, User, process};

#[test]
fn tui_shows_live_messages_sends_replies_switches_scrolls_and_restores_the_terminal() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    alice.run_ok(["group", "create", "ops", "--members", "bob"]);
    // A long group history, more than one server page, so scrolling must fetch more.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let api = Api::login(&server.url(), "bob", PASSWORD).await;
        let (status, group) = api.get("/groups/ops").await;
        assert_eq!(status, 200, "{group}");
        let id = group["id"].as_i64().unwrap();
        for n in 1..=150 {
            api.send(id, &format!("fill-{n}"), &format!("history line {n:03}"))
                .await;
        }
    });
    bob.send("@alice", "hi alice, lunch?");

    let tui = Tmux::start(&alice, &[], 100, 30);
    // The latest active conversation (bob's) opens; the sidebar lists both.
    let screen = tui.wait_for("the first frame with bob's message", SOON, |s| {
        s.contains("hi alice, lunch?") && s.contains("online")
    });
    assert!(
        screen.contains("Groups") && screen.contains("ops"),
        "{screen}"
    );
    assert!(
        screen.contains("Direct") && screen.contains("bob"),
        "{screen}"
    );

    // A message bob sends with the CLI appears live.
    bob.send("@alice", "are you there? \x1b[31m(no colors here)");
    let screen = tui.wait_text("are you there? (no colors here)", SOON);
    assert!(!screen.contains('\x1b'));

    // alice answers from the TUI; it arrives in bob's history.
    tui.type_text("yes, replying from the tui");
    tui.keys(&["Enter"]);
    let deadline = Instant::now() + SOON;
    loop {
        let texts: Vec<String> = bob
            .history("@alice", &[])
            .into_iter()
            .map(|m| m.text)
            .collect();
        if texts.iter().any(|t| t == "yes, replying from the tui") {
            assert_eq!(
                texts
                    .iter()
                    .filter(|t| *t == "yes, replying from the tui")
                    .count(),
                1,
                "sent exactly once: {texts:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reply never reached bob: {texts:?}\n{}",
            tui.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pending mark turns into "sent" once the server acknowledged it.
    tui.wait_for("the sent mark", SOON, |s| {
        s.lines()
            .any(|l| l.contains("yes, replying from the tui") && l.trim_end().ends_with('✓'))
    });

    // Alt-1 switches to the first conversation of the sidebar: the group.
    tui.keys(&["M-1"]);
    let screen = tui.wait_text("history line 150", SOON);
    assert!(screen.contains("#ops · 2 members"), "{screen}");
    assert!(!screen.contains("hi alice, lunch?"), "{screen}");

    // PageUp scrolls back through everything, fetching older pages as it goes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = tui.screen();
        if before.contains("history line 001") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never scrolled to the first message:\n{before}"
        );
        tui.keys(&["PPage"]);
        // Wait for the screen to move (or for the older page to arrive).
        let _ = wait_change(&tui, &before, Duration::from_secs(3));
    }
    let screen = tui.screen();
    assert!(screen.contains("start of the conversation"), "{screen}");
    assert!(!screen.contains("history line 150"), "{screen}");
    // Esc goes back to the newest message.
    tui.keys(&["Escape"]);
    tui.wait_text("history line 150", SOON);

    // Ctrl-N moves on to bob again.
    tui.keys(&["C-n"]);
    tui.wait_text("yes, replying from the tui", SOON);

    // /quit leaves, and the terminal is as it was: main screen, no mouse reporting,
    // canonical mode.
    tui.type_text("/quit");
    tui.keys(&["Enter"]);
    let screen = tui.wait_text("natter exited: 0", SOON);
    let screen = if screen.contains("tty: ") {
        screen
    } else {
        tui.wait_text("tty: ", SOON)
    };
    assert!(screen.contains("tty: cooked"), "{screen}");
    assert!(
        !screen.contains("history line"),
        "alternate screen left: {screen}"
    );
    assert_eq!(tui.pane_flag("alternate_on"), "0");
    assert_eq!(tui.pane_flag("mouse_any_flag"), "0");
    assert_eq!(tui.pane_flag("cursor_flag"), "1");
}

fn wait_change(tui: &Tmux, before: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if tui.screen() != before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    false
}

#[test]
fn tui_sigterm_restores_the_terminal() {
    let server = Server::start();
    let alice = server.register("alice");
    let tui = Tmux::start(&alice, &["tui"], 80, 24);
    tui.wait_text("Welcome to natter", SOON);
    assert_eq!(tui.pane_flag("alternate_on"), "1");
    // The pane's shell runs natter as its only child: signal exactly that process.
    let shell = tui.pane_flag("pane_pid");
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the pane shell's children");
    let natter: u32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child of the pane shell {shell}"));
    process::signal(natter, process::Signal::TERM);
    let screen = tui.wait_text("tty: ", SOON);
    assert!(screen.contains("natter exited: 0"), "{screen}");
    assert!(screen.contains("tty: cooked"), "{screen}");
    assert_eq!(tui.pane_flag("alternate_on"), "0");
}

/// Waits until `bob`'s `history --json @alice` has a message with `text`; returns it.
fn wait_history(bob: &User, text: &str, tui: &Tmux) -> Msg {
    let deadline = Instant::now() + SOON;
    loop {
        let found: Vec<_> = bob
            .history("@alice", &[])
            .into_iter()
            .filter(|m| m.text == text)
            .collect();
        match found.as_slice() {
            [m] => return m.clone(),
            [] => {}
            many => panic!("sent {} times: {many:?}", many.len()),
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} never reached bob\n{}",
            tui.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tui_sends_files_with_slash_file_previews_images_and_saves_and_opens_files() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    bob.send("@alice", "send me the build log please");

    // A 3 MiB log with a space in its name, and a screenshot.
    let files = tempfile::Builder::new()
        .prefix("natter-tui-files-")
        .tempdir()
        .unwrap();
    let log: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|i: usize| b"build step ok\n"[i % 14])
        .collect();
    let log_path = files.path().join("build 42.log");
    std::fs::write(&log_path, &log).unwrap();
    let png_path = files.path().join("screen.png");
    image::RgbImage::from_fn(320, 180, |x, y| image::Rgb([x as u8, y as u8, 90]))
        .save_with_format(&png_path, image::ImageFormat::Png)
        .unwrap();
    // Saves go to a directory of the test's; "open" runs a stand-in opener that copies
    // the file it is given (what xdg-open would receive).
    let downloads = files.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let opened = files.path().join("opened");
    let opener = files.path().join("opener.sh");
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\ncp \"$1\" '{}'\necho scribble\n",
            opened.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        alice.home().join("tui.toml"),
        format!(
            "download_dir = '{}'\nopener = '{}'\nimage_protocol = 'halfblocks'\n",
            downloads.display(),
            opener.display()
        ),
    )
    .unwrap();

    let tui = Tmux::start(&alice, &[], 100, 34);
    tui.wait_text("send me the build log please", SOON);

    // A missing file: an error in the status line, nothing sent.
    tui.type_text(&format!("/file {}/nope.log", files.path().display()));
    tui.keys(&["Enter"]);
    tui.wait_text("cannot send nope.log", SOON);

    // /file with an escaped space and a message; it shows in alice's timeline, sent.
    let escaped = log_path.display().to_string().replace(' ', "\\ ");
    tui.type_text(&format!("/file {escaped} here it is"));
    tui.keys(&["Enter"]);
    tui.wait_for("the log, sent", SOON, |s| {
        s.lines().any(|l| {
            l.contains("📎 build 42.log  3.1 MB  text/plain") && l.trim_end().ends_with('✓')
        })
    });
    let m = wait_history(&bob, "here it is", &tui);
    assert_eq!(m.attachments.len(), 1, "{m:?}");
    let a = &m.attachments[0];
    assert_eq!(
        (a.name.as_str(), a.size),
        ("build 42.log", log.len() as u64)
    );
    assert_eq!(a.mime, "text/plain");

    // A file alone is a message of its own; the image gets a preview under its line
    // (half blocks, as configured).
    tui.type_text(&format!("/file {}", png_path.display()));
    tui.keys(&["Enter"]);
    let screen = tui.wait_for("the screenshot's preview", SOON, |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines
            .iter()
            .position(|l| l.contains("📎 screen.png"))
            .is_some_and(|i| {
                lines[i + 1..]
                    .iter()
                    .take(3)
                    .any(|l| l.contains('▀') || l.contains('▄'))
            })
    });
    assert!(!screen.contains("loading preview"), "{screen}");
    let m = wait_history(&bob, "", &tui);
    assert_eq!(m.attachments[0].name, "screen.png");
    assert!(m.attachments[0].thumbnail, "{m:?}");

    // Files mode: the newest file first; Up to the log; `s` saves it, byte for byte.
    tui.keys(&["C-o"]);
    tui.wait_text("files 1/2", SOON);
    tui.keys(&["Up"]);
    tui.wait_for("the log highlighted", SOON, |s| {
        s.contains("▸ 📎 build 42.log")
    });
    tui.keys(&["s"]);
    let saved = downloads.join("build 42.log");
    tui.wait_text("saved ", SOON);
    assert_eq!(std::fs::read(&saved).unwrap(), log, "saved byte-identical");
    // Saving again never replaces it.
    tui.keys(&["s"]);
    tui.wait_for("the second copy", SOON, |_| {
        downloads.join("build 42 (1).log").exists()
    });

    // `o` hands the image to the opener, whose output does not reach the screen.
    tui.keys(&["Down", "o"]);
    tui.wait_text("opened ", SOON);
    let deadline = Instant::now() + SOON;
    while std::fs::metadata(&opened).map(|m| m.len()).unwrap_or(0)
        != std::fs::metadata(&png_path).unwrap().len()
    {
        assert!(Instant::now() < deadline, "the opener never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read(&opened).unwrap(),
        std::fs::read(&png_path).unwrap()
    );
    assert!(!tui.screen().contains("scribble"));

    // Esc leaves files mode; typing works as before.
    tui.keys(&["Escape"]);
    tui.type_text("thanks");
    tui.wait_text("› thanks", SOON);
}
