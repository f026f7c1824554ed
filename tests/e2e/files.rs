//! File transfer with the real binaries: `natter send --file` and `natter download`
//! round-trip bytes exactly, resume and verify, respect the upload cap and membership,
//! survive hostile names, preview images, and store identical content once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use natter_e2e::proxy::Rng;
use natter_e2e::{Output, SOON, Server, User, await_ready};
use natter_protocol::Attachment;
use serde_json::Value;

const MIB: usize = 1 << 20;

/// `n` random bytes (incompressible, and no two tests share them).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = Rng::new();
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Writes `bytes` to `dir/name` and returns the path.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

/// The attachments of the one message `send --json` printed.
#[track_caller]
fn sent_attachments(out: &Output) -> Vec<Attachment> {
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "{out}");
    serde_json::from_value(lines[0]["attachments"].clone())
        .unwrap_or_else(|e| panic!("no attachments in send --json ({e})\n{out}"))
}

/// Regular files under `dir`, at any depth.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                count_files(&e.path())
            } else {
                usize::from(t.is_file())
            }
        })
        .sum()
}

fn objects(server: &Server) -> usize {
    count_files(&server.data_dir().join("files/objects"))
}

fn staging(server: &Server) -> usize {
    count_files(&server.data_dir().join("files/staging"))
}

/// Rows in a table of the server's database, read through a read-only connection.
fn rows(server: &Server, table: &str) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        server.data_dir().join("natter.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the server's database read-only");
    db.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Waits (polling) until `cond` holds; fails the test after `timeout`.
#[track_caller]
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Raw HTTP as `user` (their stored session token), for what the CLI does not do.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    fn new(user: &User) -> Http {
        let session: Value = serde_json::from_str(
            &std::fs::read_to_string(user.home().join("session.json")).unwrap(),
        )
        .unwrap();
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::new(),
            base: format!("{}/api/v1", user.url()),
            token: session["token"].as_str().unwrap().to_owned(),
        }
    }

    /// `GET path`: status, content type and body.
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        self.rt.block_on(async {
            let resp = self
                .client
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, ctype, resp.bytes().await.unwrap().to_vec())
        })
    }

    /// `POST /files?name=NAME` with `bytes`; the attachment.
    #[track_caller]
    fn upload(&self, name: &str, bytes: Vec<u8>) -> Attachment {
        self.rt.block_on(async {
            let resp = self
                .client
                .post(format!("{}/files", self.base))
                .query(&[("name", name)])
                .bearer_auth(&self.token)
                .body(bytes)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert_eq!(status.as_u16(), 201, "upload of {name:?}: {body}");
            serde_json::from_str(&body).unwrap()
        })
    }

    /// Sends a message carrying `attachments` to conversation `conversation`.
    #[track_caller]
    fn send(&self, conversation: i64, text: &str, attachments: &[&str]) -> Value {
        self.rt.block_on(async {
            let resp = self
                .client
                .post(format!(
                    "{}/conversations/{conversation}/messages",
                    self.base
                ))
                .bearer_auth(&self.token)
                .json(&serde_json::json!({
                    "client_id": format!("raw-{}", Rng::new().next_u64()),
                    "text": text,
                    "attachments": attachments,
                }))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert!(status.is_success(), "send: {status} {body}");
            serde_json::from_str(&body).unwrap()
        })
    }
}

#[test]
fn a_file_round_trips_byte_identical_and_shows_in_history_and_listen() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let src = tempdir("natter-src-");
    let bytes = random_bytes(3 * MIB + 12345);
    let path = file(src.path(), "build.bin", &bytes);

    let mut bob_listen = bob.listen(&[]);
    await_ready(&mut bob_listen, &carol, "bob");

    let out = alice.run_ok([
        "send",
        "@bob",
        "--file",
        path.to_str().unwrap(),
        "--json",
        "the",
        "build",
    ]);
    assert!(
        out.stderr.is_empty(),
        "no progress bar when stderr is not a terminal\n{out}"
    );
    let sent = sent_attachments(&out);
    assert_eq!(sent.len(), 1);
    let a = &sent[0];
    assert_eq!(
        (a.name.as_str(), a.size, a.mime.as_str()),
        ("build.bin", bytes.len() as u64, "application/octet-stream")
    );
    assert_eq!(a.hash.len(), 64);
    assert!(!a.thumbnail && a.width.is_none(), "{a:?}");
    assert_eq!(out.json_lines()[0]["text"], "the build");

    // bob sees it live, and in history (both forms).
    let live = bob_listen.expect_message(SOON, |m| m.sender == "alice");
    assert_eq!(live.text, "the build");
    assert_eq!(
        live.attachments, sent,
        "listen --json carries the attachment"
    );
    let history = bob.history("@alice", &[]);
    assert_eq!(history.last().unwrap().attachments, sent);
    let human = bob.run_ok(["history", "@alice"]).stdout;
    let want = format!(
        "📎 build.bin ({}, application/octet-stream) id {}",
        natter_protocol::human_size(a.size),
        a.id
    );
    assert!(human.contains(&want), "{want:?} missing from\n{human}");

    // bob downloads it: the path is printed, the bytes are the same.
    let dest = tempdir("natter-dl-");
    let dir = dest.path().to_str().unwrap();
    let out = bob.run_ok(["download", &a.id, "-o", dir]);
    let saved = dest.path().join("build.bin");
    assert_eq!(out.stdout.trim(), saved.to_str().unwrap());
    assert!(std::fs::read(&saved).unwrap() == bytes, "bytes differ");
    assert_eq!(count_files(dest.path()), 1, "no .natter-part left behind");

    // It is not overwritten without --force; with it, it is.
    std::fs::write(&saved, b"mine").unwrap();
    let out = bob.run(["download", &a.id, "-o", dir]);
    out.assert_code(1)
        .assert_stderr_contains("exists: pass --force to overwrite it");
    assert_eq!(std::fs::read(&saved).unwrap(), b"mine", "left alone");
    let out = bob.run_ok(["download", &a.id, "-o", dir, "--force", "--json"]);
    let j = &out.json_lines()[0];
    assert_eq!(j["type"], "download");
    assert_eq!(j["path"], saved.to_str().unwrap());
    assert_eq!(j["attachment"]["id"], a.id.as_str());
    assert_eq!(j["attachment"]["hash"], a.hash.as_str());
    assert_eq!(j["received"], a.size);
    assert!(std::fs::read(&saved).unwrap() == bytes);

    // A file path as -o, and the default (the current directory); the uploader may
    // download too.
    let named = dest.path().join("copy.bin");
    bob.run_ok(["download", &a.id, "-o", named.to_str().unwrap()]);
    assert!(std::fs::read(&named).unwrap() == bytes);
    let here = tempdir("natter-cwd-");
    let mut cmd = alice.command(["download", &a.id]);
    cmd.current_dir(here.path());
    let out = natter_e2e::process::run(cmd, None, SOON);
    out.assert_ok();
    assert_eq!(out.stdout.trim(), "build.bin");
    assert!(std::fs::read(here.path().join("build.bin")).unwrap() == bytes);

    // Files alone (no text, stdin not a terminal and empty), and a caption from stdin.
    let small = file(src.path(), "notes.txt", b"plain text\n");
    let out = alice.run_ok(["send", "@bob", "--file", small.to_str().unwrap(), "--json"]);
    assert_eq!(out.json_lines()[0]["text"], "");
    assert_eq!(sent_attachments(&out)[0].mime, "text/plain");
    let out = alice.run_stdin(
        ["send", "@bob", "-f", small.to_str().unwrap(), "--json"],
        "caption from stdin\n",
    );
    out.assert_ok();
    assert_eq!(out.json_lines()[0]["text"], "caption from stdin");
    let human = bob.run_ok(["history", "@alice", "-n", "2"]).stdout;
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 3, "{human}");
    assert!(
        lines[0].contains("<alice> 📎 notes.txt (11 B, text/plain) id "),
        "a file alone takes the text's place: {human}"
    );
    assert!(lines[1].ends_with("<alice> caption from stdin"), "{human}");
    assert!(
        lines[2]
            .trim_start()
            .starts_with("📎 notes.txt (11 B, text/plain) id "),
        "{human}"
    );
}

#[test]
fn several_files_go_in_one_message_in_order() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let a = file(src.path(), "a.log", b"first");
    let b = file(src.path(), "b.log", b"second file");
    let out = alice.run_ok([
        "send",
        "@bob",
        "-f",
        a.to_str().unwrap(),
        "-f",
        b.to_str().unwrap(),
        "two logs",
    ]);
    let id: i64 = out.stdout.trim().parse().unwrap();
    let h = bob.history("@alice", &[]);
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].id, id);
    let names: Vec<&str> = h[0].attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a.log", "b.log"]);

    // More than a message may carry is refused (a limit: exit 1) before anything is
    // uploaded.
    let many: Vec<String> = (0..11)
        .map(|i| {
            file(src.path(), &format!("f{i}"), b"x")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut args = vec!["send", "@bob"];
    for p in &many {
        args.extend(["--file", p.as_str()]);
    }
    alice
        .run(&args)
        .assert_code(1)
        .assert_stderr_contains("at most 10 files");
    assert_eq!(objects(&server), 2, "nothing more was uploaded");
}

#[test]
fn a_missing_file_or_an_unknown_target_fails_before_anything_is_sent() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let good = file(src.path(), "good.bin", &random_bytes(100_000));
    let missing = src.path().join("nope.bin");
    let out = alice.run([
        "send",
        "@bob",
        "--file",
        good.to_str().unwrap(),
        "--file",
        missing.to_str().unwrap(),
        "hello",
    ]);
    out.assert_code(1)
        .assert_stderr_contains("cannot send")
        .assert_stderr_contains("nope.bin: no such file; nothing was sent");
    assert!(out.stdout.is_empty(), "{out}");
    let dir = alice.run(["send", "@bob", "--file", src.path().to_str().unwrap()]);
    dir.assert_code(1)
        .assert_stderr_contains("not a regular file");
    let unknown = alice.run(["send", "@nobody", "--file", good.to_str().unwrap()]);
    unknown.assert_code(1).assert_stderr_contains("nobody");
    assert!(bob.history("@alice", &[]).is_empty(), "no message");
    assert_eq!(objects(&server), 0, "not even the good file was uploaded");
    assert_eq!(rows(&server, "attachments"), 0);
}

#[test]
fn an_interrupted_download_resumes_with_range_and_a_damaged_one_is_refused() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let bytes = random_bytes(4 * MIB + 7);
    let path = file(src.path(), "image.iso", &bytes);
    let a = sent_attachments(&alice.run_ok([
        "send",
        "@bob",
        "--file",
        path.to_str().unwrap(),
        "--json",
    ]))
    .remove(0);
    let dest = tempdir("natter-dl-");
    let dir = dest.path().to_str().unwrap();
    let saved = dest.path().join("image.iso");
    let part = dest.path().join("image.iso.natter-part");
    let half = bytes.len() / 2;

    // What an interrupted download leaves: the first half in NAME.natter-part.
    std::fs::write(&part, &bytes[..half]).unwrap();
    let out = bob.run_ok(["download", &a.id, "-o", dir, "--json"]);
    let j = &out.json_lines()[0];
    assert_eq!(j["resumed_from"], half, "{out}");
    assert_eq!(
        j["received"],
        bytes.len() - half,
        "only the missing half travelled (a Range request)"
    );
    assert!(std::fs::read(&saved).unwrap() == bytes, "bytes differ");
    assert!(!part.exists(), "the part file became the file");
    // Human output says so on stderr; the path stays alone on stdout.
    std::fs::remove_file(&saved).unwrap();
    std::fs::write(&part, &bytes[..half]).unwrap();
    let out = bob.run_ok(["download", &a.id, "-o", dir]);
    assert_eq!(out.stdout.trim(), saved.to_str().unwrap());
    out.assert_stderr_contains("resumed an interrupted download at");
    assert!(std::fs::read(&saved).unwrap() == bytes);
    // --quiet keeps stderr empty.
    std::fs::remove_file(&saved).unwrap();
    std::fs::write(&part, &bytes[..half]).unwrap();
    let out = bob.run_ok(["download", &a.id, "-o", dir, "--quiet"]);
    assert!(out.stderr.is_empty(), "{out}");

    // A part whose bytes were damaged: the result fails the hash check, nothing is
    // reported as saved, and the damaged part is deleted so the next run starts clean.
    std::fs::remove_file(&saved).unwrap();
    let mut bad = bytes[..half].to_vec();
    bad[1000] ^= 0xff;
    std::fs::write(&part, &bad).unwrap();
    let out = bob.run(["download", &a.id, "-o", dir]);
    out.assert_code(1)
        .assert_stderr_contains("the download of image.iso is damaged")
        .assert_stderr_contains("hash does not match")
        .assert_stderr_contains("deleted");
    assert!(
        out.stdout.is_empty(),
        "no path printed for a failed download\n{out}"
    );
    assert!(!part.exists() && !saved.exists(), "nothing left");
    let out = bob.run_ok(["download", &a.id, "-o", dir, "--json"]);
    assert_eq!(out.json_lines()[0]["resumed_from"], 0);
    assert!(std::fs::read(&saved).unwrap() == bytes);

    // A part that is already complete (stopped just before the check) is verified and
    // moved without fetching anything.
    std::fs::remove_file(&saved).unwrap();
    std::fs::write(&part, &bytes).unwrap();
    let out = bob.run_ok(["download", &a.id, "-o", dir, "--json"]);
    assert_eq!(out.json_lines()[0]["received"], 0, "{out}");
    assert!(std::fs::read(&saved).unwrap() == bytes);
}

#[test]
fn a_file_over_the_cap_is_refused_clearly_and_leaves_nothing() {
    let server = Server::start_with(&[("NATTERD_MAX_UPLOAD_BYTES", "1000000")]);
    let alice = server.register("alice");
    let _bob = server.register("bob");
    let src = tempdir("natter-src-");
    let big = file(src.path(), "big.bin", &random_bytes(2 * MIB));

    let out = alice.run(["send", "@bob", "--file", big.to_str().unwrap(), "too big"]);
    out.assert_code(1)
        .assert_stderr_contains("big.bin is 2.1 MB; the server takes files up to 1.0 MB")
        .assert_stderr_contains("nothing was sent");
    assert!(alice.history("@bob", &[]).is_empty());
    // At the cap exactly is fine.
    let at = file(src.path(), "at.bin", &random_bytes(1_000_000));
    alice.run_ok(["send", "@bob", "--file", at.to_str().unwrap()]);
    assert_eq!((objects(&server), rows(&server, "blobs")), (1, 1));

    // Straight to the API, the server enforces it too: with Content-Length over the cap,
    // and streamed without one (chunked), cut as the bytes pass the cap.
    let http = Http::new(&alice);
    let over = http.rt.block_on(async {
        let resp = http
            .client
            .post(format!("{}/files?name=big.bin", http.base))
            .bearer_auth(&http.token)
            .body(random_bytes(1_000_001))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    });
    assert_eq!(over.0, 413, "{over:?}");
    assert!(over.1.contains("payload_too_large"), "{over:?}");
    // Streamed without Content-Length (chunked), over plain TCP so the answer can be read
    // even though the server stops reading the body: 413 once the bytes pass the cap.
    let status_line = chunked_upload(&server, &http.token, 4 * MIB);
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line:?}");

    wait_until(SOON, "staging is empty", || staging(&server) == 0);
    assert_eq!(objects(&server), 1, "only the file at the cap is stored");
    assert_eq!(rows(&server, "attachments"), 1);
    assert_eq!(rows(&server, "blobs"), 1);
}

/// POSTs `total` random bytes to `/files` with `Transfer-Encoding: chunked` over a raw
/// socket, reading the answer while sending; returns the answer's status line.
fn chunked_upload(server: &Server, token: &str, total: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
    conn.set_read_timeout(Some(SOON)).unwrap();
    let reader = conn.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(reader).read_line(&mut line);
        line
    });
    write!(
        conn,
        "POST /api/v1/files?name=stream.bin HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = random_bytes(64 * 1024);
    let mut sent = 0;
    while sent < total {
        // The server may stop reading and hang up: that ends the sending, not the test.
        if write!(conn, "{:x}\r\n", chunk.len()).is_err()
            || conn.write_all(&chunk).is_err()
            || conn.write_all(b"\r\n").is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = conn.write_all(b"0\r\n\r\n");
    answer.join().unwrap()
}

#[test]
fn an_upload_cut_off_midway_leaves_nothing() {
    use std::io::Write;
    let server = Server::start();
    let alice = server.register("alice");
    let session: Value =
        serde_json::from_str(&std::fs::read_to_string(alice.home().join("session.json")).unwrap())
            .unwrap();
    let token = session["token"].as_str().unwrap();
    let mut conn = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        conn,
        "POST /api/v1/files?name=cut.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        4 * MIB
    )
    .unwrap();
    conn.write_all(&random_bytes(MIB)).unwrap();
    conn.flush().unwrap();
    // The upload is under way (staged), then the client goes away.
    wait_until(SOON, "the upload is staged", || staging(&server) == 1);
    drop(conn);
    wait_until(SOON, "the staged upload is removed", || {
        staging(&server) == 0
    });
    assert_eq!(objects(&server), 0);
    assert_eq!(rows(&server, "attachments"), 0);
    assert_eq!(rows(&server, "blobs"), 0);
}

#[test]
fn only_members_download_and_a_removed_member_loses_access() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let carol = server.register("carol");
    let mallory = server.register("mallory");
    let src = tempdir("natter-src-");
    let secret = file(src.path(), "plans.txt", b"the secret plans\n");
    alice.run_ok(["group", "create", "ops", "--members", "bob,carol"]);
    let a = sent_attachments(&alice.run_ok([
        "send",
        "ops",
        "--file",
        secret.to_str().unwrap(),
        "--json",
    ]))
    .remove(0);
    let dest = tempdir("natter-dl-");
    let dir = dest.path().to_str().unwrap();
    carol.run_ok(["download", &a.id, "-o", dir]);
    std::fs::remove_file(dest.path().join("plans.txt")).unwrap();

    alice.run_ok(["group", "remove", "ops", "carol"]);
    // A missing id of the same shape, for comparison.
    let fake = "01936b3e-0000-7000-8000-000000000000";
    for outsider in [&mallory, &carol] {
        let real = outsider.run(["download", &a.id, "-o", dir]);
        let none = outsider.run(["download", fake, "-o", dir]);
        let real = Output {
            stderr: real.stderr.replace(&a.id, "ID"),
            ..real
        };
        real.assert_code(1);
        none.assert_code(1);
        assert_eq!(
            real.stderr,
            none.stderr.replace(fake, "ID"),
            "{} learned that the file exists",
            outsider.name
        );
        real.assert_stderr_contains("no file ID that you can see");
        assert!(!real.stderr.contains("plans"), "{real}");
        assert_eq!(count_files(dest.path()), 0, "nothing saved");
        // Over the API: the same 404 for the file, its info and its thumbnail.
        let http = Http::new(outsider);
        for suffix in ["", "/info", "/thumbnail"] {
            let (s1, _, b1) = http.get(&format!("/files/{}{suffix}", a.id));
            let (s2, _, b2) = http.get(&format!("/files/{fake}{suffix}"));
            assert_eq!((s1, s2), (404, 404), "{suffix}");
            assert_eq!(
                String::from_utf8_lossy(&b1).replace(&a.id, "ID"),
                String::from_utf8_lossy(&b2).replace(fake, "ID"),
                "{suffix}"
            );
        }
    }
    // bob, still a member, may.
    bob.run_ok(["download", &a.id, "-o", dir]);
    assert_eq!(
        std::fs::read(dest.path().join("plans.txt")).unwrap(),
        b"the secret plans\n"
    );
}

#[test]
fn hostile_names_are_stored_and_shown_safely() {
    let server = Server::start();
    let mallory = server.register("mallory");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");

    // A local file whose name carries escape sequences, through the CLI.
    let evil = "\x1b]0;pwned\x07evil\x1b[2J.txt";
    let path = file(src.path(), evil, b"escape");
    let out = mallory.run_ok(["send", "@bob", "--file", path.to_str().unwrap(), "--json"]);
    let conversation = out.json_lines()[0]["conversation_id"].as_i64().unwrap();
    let escaped = sent_attachments(&out).remove(0);
    assert!(
        !escaped.name.contains(['\x1b', '\x07']),
        "the server keeps a safe name: {:?}",
        escaped.name
    );

    // Names no file system would take, straight to the API.
    let http = Http::new(&mallory);
    let traversal = http.upload("../../etc/passwd", b"root:x:0:0\n".to_vec());
    assert_eq!(traversal.name, "passwd");
    let long_name = format!("{}.txt", "é".repeat(10_000));
    let long = http.upload(&long_name, b"long".to_vec());
    assert!(long.name.len() <= 255, "{}", long.name.len());
    assert!(long.name.ends_with(".txt"), "{}", long.name);
    let slashes = http.upload("..\\..\\windows\\system.ini", b"ini".to_vec());
    assert_eq!(slashes.name, "system.ini");
    http.send(
        conversation,
        "names",
        &[&traversal.id, &long.id, &slashes.id],
    );

    // Human output: no raw escape anywhere, every file listed.
    let human = bob.run_ok(["history", "@mallory"]);
    assert!(
        !human.stdout.contains(['\x1b', '\x07']) && !human.stderr.contains('\x1b'),
        "raw escapes reached the terminal\n{human:?}"
    );
    for a in [&escaped, &traversal, &long, &slashes] {
        assert!(human.stdout.contains(&a.id), "{} missing\n{human}", a.id);
    }
    assert!(human.stdout.contains("📎 passwd (11 B"), "{human}");

    // Downloads land inside the chosen directory, under the safe names.
    let outer = tempdir("natter-dl-");
    let dest = outer.path().join("in");
    std::fs::create_dir(&dest).unwrap();
    let dir = dest.to_str().unwrap();
    for a in [&escaped, &traversal, &long, &slashes] {
        let out = bob.run_ok(["download", &a.id, "-o", dir]);
        assert!(!out.stdout.contains(['\x1b', '\x07']), "{out:?}");
        let saved = PathBuf::from(out.stdout.trim_end_matches('\n'));
        assert_eq!(saved.parent(), Some(dest.as_path()), "{out}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"passwd".to_string()), "{names:?}");
    assert!(names.contains(&"system.ini".to_string()), "{names:?}");
    assert!(names.iter().all(|n| !n.contains(['\x1b', '\x07', '/'])));
    assert_eq!(std::fs::read(dest.join("passwd")).unwrap(), b"root:x:0:0\n");
    assert_eq!(
        std::fs::read_dir(outer.path()).unwrap().count(),
        1,
        "nothing landed beside the directory"
    );
}

#[test]
fn an_image_gets_a_thumbnail_and_a_text_file_does_not() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let png_path = src.path().join("shot.png");
    img.save_with_format(&png_path, image::ImageFormat::Png)
        .unwrap();
    // The extension does not decide the type: the bytes do.
    let txt_path = file(src.path(), "readme.png", b"just some text\n");
    let out = alice.run_ok([
        "send",
        "@bob",
        "-f",
        png_path.to_str().unwrap(),
        "-f",
        txt_path.to_str().unwrap(),
        "--json",
    ]);
    let sent = sent_attachments(&out);
    let (png, txt) = (&sent[0], &sent[1]);
    assert_eq!(png.mime, "image/png");
    assert_eq!(
        (png.width, png.height, png.thumbnail),
        (Some(640), Some(480), true)
    );
    assert_eq!(txt.mime, "text/plain");
    assert_eq!((txt.width, txt.height, txt.thumbnail), (None, None, false));
    assert_eq!(bob.history("@alice", &[])[0].attachments, sent);
    let human = bob.run_ok(["history", "@alice"]).stdout;
    assert!(human.contains("📎 shot.png ("), "{human}");
    assert!(human.contains("image/png, 640×480) id "), "{human}");

    let http = Http::new(&bob);
    let (status, ctype, body) = http.get(&format!("/files/{}/thumbnail", png.id));
    assert_eq!((status, ctype.as_str()), (200, "image/png"));
    let thumb = image::load_from_memory_with_format(&body, image::ImageFormat::Png)
        .expect("the thumbnail is a PNG");
    assert_eq!(
        (thumb.width(), thumb.height()),
        (256, 192),
        "fits 256 px, same shape"
    );
    let (status, _, _) = http.get(&format!("/files/{}/thumbnail", txt.id));
    assert_eq!(status, 404, "no thumbnail for text");
    // The download is served as what it is, and never sniffed by a browser.
    let (status, ctype, body) = http.get(&format!("/files/{}", png.id));
    assert_eq!((status, ctype.as_str()), (200, "image/png"));
    assert_eq!(body, std::fs::read(&png_path).unwrap());
}

#[test]
fn identical_uploads_are_stored_once() {
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let bytes = random_bytes(MIB);
    let one = file(src.path(), "one.bin", &bytes);
    let two = file(src.path(), "two.bin", &bytes);
    let a =
        sent_attachments(&alice.run_ok(["send", "@bob", "-f", one.to_str().unwrap(), "--json"]))
            .remove(0);
    let b =
        sent_attachments(&bob.run_ok(["send", "@alice", "-f", two.to_str().unwrap(), "--json"]))
            .remove(0);
    let c =
        sent_attachments(&alice.run_ok(["send", "@bob", "-f", one.to_str().unwrap(), "--json"]))
            .remove(0);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hash, c.hash);
    assert!(a.id != b.id && a.id != c.id, "each upload has its own id");
    assert_eq!((a.name.as_str(), b.name.as_str()), ("one.bin", "two.bin"));
    assert_eq!(objects(&server), 1, "the content is stored once");
    assert_eq!(rows(&server, "blobs"), 1);
    assert_eq!(rows(&server, "attachments"), 3);

    let other = file(src.path(), "three.bin", &random_bytes(MIB));
    alice.run_ok(["send", "@bob", "-f", other.to_str().unwrap()]);
    assert_eq!(objects(&server), 2);
    // Both names of the one content download to the same bytes.
    let dest = tempdir("natter-dl-");
    let dir = dest.path().to_str().unwrap();
    alice.run_ok(["download", &b.id, "-o", dir]);
    bob.run_ok(["download", &a.id, "-o", dir]);
    assert!(std::fs::read(dest.path().join("one.bin")).unwrap() == bytes);
    assert!(std::fs::read(dest.path().join("two.bin")).unwrap() == bytes);
}

#[test]
fn on_a_terminal_progress_bars_show_and_files_alone_do_not_wait_for_stdin() {
    use natter_e2e::tmux::Tmux;
    let server = Server::start();
    let alice = server.register("alice");
    let bob = server.register("bob");
    let src = tempdir("natter-src-");
    let bytes = random_bytes(2 * MIB);
    let path = file(src.path(), "build.bin", &bytes);

    // No TEXT and stdin is the terminal: it sends the file alone at once.
    let term = Tmux::start(
        &alice,
        &["send", "@bob", "--file", path.to_str().unwrap()],
        100,
        12,
    );
    let screen = term.wait_text("natter exited: 0", SOON);
    assert!(
        screen.contains("build.bin [====") && screen.contains("2.10 MB in "),
        "a finished progress bar stays on the terminal:\n{screen}"
    );
    let h = bob.history("@alice", &[]);
    assert_eq!((h.len(), h[0].text.as_str()), (1, ""));
    let id = h[0].attachments[0].id.clone();

    let dest = tempdir("natter-dl-");
    let term = Tmux::start(
        &bob,
        &["download", &id, "-o", dest.path().to_str().unwrap()],
        100,
        12,
    );
    let screen = term.wait_text("natter exited: 0", SOON);
    assert!(screen.contains("build.bin [===="), "{screen}");
    let saved = dest.path().join("build.bin");
    assert!(
        screen.contains(saved.to_str().unwrap()),
        "the saved path is printed:\n{screen}"
    );
    assert!(std::fs::read(dest.path().join("build.bin")).unwrap() == bytes);

    // --quiet: no bar even on a terminal.
    let term = Tmux::start(
        &bob,
        &[
            "download",
            &id,
            "-o",
            dest.path().to_str().unwrap(),
            "--force",
            "--quiet",
        ],
        100,
        12,
    );
    let screen = term.wait_text("natter exited: 0", SOON);
    assert!(!screen.contains("[="), "{screen}");
}
