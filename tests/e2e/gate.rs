//! The gate and administration: disabling accounts, invites, rate limits, connection
//! limits, sessions, and TLS with a pinned certificate.

use std::time::{Duration, Instant};

use natter_e2e::ws::{Api, Event, Ws, login_token};
use natter_e2e::{PASSWORD, Server};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn disabling_a_user_closes_their_socket_at_once_and_locks_them_out() {
    let server = Server::start();
    let admin = server.register("alice");
    let bob = server.register("bob");
    let rt = runtime();
    let url = server.url();
    let token = rt.block_on(login_token(&url, "bob", PASSWORD));
    let mut ws = rt.block_on(Ws::connect(&url, &token, None));
    rt.block_on(async {
        match ws.next(Duration::from_secs(10)).await {
            Some(Event::Frame(v)) if v["type"] == "hello" => {}
            other => panic!("no hello: {other:?}"),
        }
    });
    // A member of the public cannot do it.
    let out = bob.run(["admin", "disable", "alice"]);
    out.assert_code(1)
        .assert_stderr_contains("only server admins");

    let started = Instant::now();
    admin.run_ok(["admin", "disable", "bob"]);
    let close = rt
        .block_on(ws.expect_close(Duration::from_secs(5)))
        .expect("a close frame");
    let took = started.elapsed();
    assert_eq!(u16::from(close.code), 4003, "{close:?}");
    // The CLI call above includes process start-up; the close itself follows the commit.
    assert!(
        took < Duration::from_secs(3),
        "socket closed only after {took:?}"
    );

    bob.run(["whoami"]).assert_code(1);
    let relogin = bob.run_stdin(
        ["login", "bob", "--password-stdin"],
        format!("{PASSWORD}\n"),
    );
    relogin.assert_code(1);
    let users = admin.run_ok(["admin", "users", "--json"]);
    let bob_row = users
        .json_lines()
        .into_iter()
        .find(|u| u["username"] == "bob")
        .unwrap();
    assert_eq!(bob_row["disabled"], true);
    assert_eq!(bob_row["sessions"], 0);

    admin.run_ok(["admin", "enable", "bob"]);
    bob.login_ok();
    bob.run_ok(["whoami"]);
    // The last admin cannot lock themself out.
    admin
        .run(["admin", "revoke-admin", "alice"])
        .assert_code(1)
        .assert_stderr_contains("last server admin");
    admin.run_ok(["admin", "make-admin", "bob"]);
    bob.run_ok(["admin", "revoke-admin", "alice"]);
    admin.run(["admin", "users"]).assert_code(1);
}

#[test]
fn invite_codes_expire_run_out_and_can_be_revoked() {
    let server = Server::start_with(&[("NATTERD_REGISTRATION", "invite")]);
    // The first account needs no invite: it becomes the admin.
    let admin = server.register("alice");
    let bob = server.user("bob");
    let out = bob.run_stdin(
        ["register", "bob", "--password-stdin"],
        format!("{PASSWORD}\n"),
    );
    out.assert_code(1).assert_stderr_contains("invite");

    let code = admin
        .run_ok(["admin", "invite", "create", "--uses", "2"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(code.len(), 32, "{code:?}");
    for name in ["bob", "carol"] {
        let u = server.user(name);
        u.run_stdin(
            ["register", name, "--password-stdin", "--invite", &code],
            format!("{PASSWORD}\n"),
        )
        .assert_ok();
    }
    let dave = server.user("dave");
    dave.run_stdin(
        ["register", "dave", "--password-stdin", "--invite", &code],
        format!("{PASSWORD}\n"),
    )
    .assert_code(1)
    .assert_stderr_contains("used up");

    let revoked = admin.run_ok(["admin", "invite", "create", "--json"]);
    let revoked = &revoked.json_lines()[0];
    admin.run_ok(["admin", "invite", "revoke", &revoked["id"].to_string()]);
    dave.run_stdin(
        [
            "register",
            "dave",
            "--password-stdin",
            "--invite",
            revoked["code"].as_str().unwrap(),
        ],
        format!("{PASSWORD}\n"),
    )
    .assert_code(1)
    .assert_stderr_contains("revoked");

    let short = admin
        .run_ok(["admin", "invite", "create", "--expires", "1s"])
        .stdout
        .trim()
        .to_owned();
    // Expiry is about time itself, so this waits for it to pass.
    std::thread::sleep(Duration::from_millis(1500));
    dave.run_stdin(
        ["register", "dave", "--password-stdin", "--invite", &short],
        format!("{PASSWORD}\n"),
    )
    .assert_code(1)
    .assert_stderr_contains("expired");

    let list = admin
        .run_ok(["admin", "invite", "list", "--json"])
        .json_lines();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["uses"], 2);
    assert!(
        list.iter().all(|i| i["code"].is_null()),
        "codes are shown once only"
    );
}

#[test]
fn a_burst_over_the_send_limit_gets_429_with_retry_after_and_loses_nothing() {
    let server = Server::start_with(&[("NATTERD_SEND_PER_SEC", "1"), ("NATTERD_SEND_BURST", "5")]);
    let rt = runtime();
    let url = server.url();
    let (alice, bob) = rt.block_on(async {
        (
            Api::register(&url, "alice", PASSWORD).await,
            Api::register(&url, "bob", PASSWORD).await,
        )
    });
    let conv = rt.block_on(alice.direct("bob"));
    let http = reqwest::Client::new();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..15 {
        let resp = rt
            .block_on(
                http.post(format!("{url}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&alice.token)
                    .json(&json!({"client_id": format!("b{i}"), "text": format!("burst {i}")}))
                    .send(),
            )
            .unwrap();
        match resp.status().as_u16() {
            201 => accepted.push(format!("burst {i}")),
            429 => {
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                let body: serde_json::Value = rt.block_on(resp.json()).unwrap();
                assert_eq!(body["code"], "rate_limited");
                assert!(
                    body["message"].as_str().unwrap().contains("try again"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        accepted.len() >= 5 && refused >= 5,
        "accepted {accepted:?}, refused {refused}"
    );
    // Every accepted message is stored, in order; refused ones are not.
    assert_eq!(rt.block_on(bob.texts(conv)), accepted);
}

#[test]
fn password_guessing_is_throttled_per_account() {
    let server = Server::start_with(&[
        ("NATTERD_LOGIN_ACCOUNT_BURST", "3"),
        ("NATTERD_LOGIN_ACCOUNT_PER_MIN", "1"),
    ]);
    let alice = server.register("alice");
    let guesser = server.user("alice");
    for _ in 0..2 {
        guesser
            .run_stdin(["login", "alice", "--password-stdin"], "wrong password\n")
            .assert_code(1)
            .assert_stderr_contains("wrong username or password");
    }
    // alice's own `register` counted as no login; her two failed guesses plus this one
    // use the burst of 3, then even the right password has to wait.
    guesser
        .run_stdin(["login", "alice", "--password-stdin"], "wrong again\n")
        .assert_code(1);
    let out = guesser.run_stdin(
        ["login", "alice", "--password-stdin"],
        format!("{PASSWORD}\n"),
    );
    out.assert_code(1)
        .assert_stderr_contains("too many login attempts");
    alice.run_ok(["whoami"]);
}

#[test]
fn connections_per_user_are_limited() {
    let server = Server::start_with(&[("NATTERD_MAX_CONNECTIONS_PER_USER", "2")]);
    server.register("alice");
    let rt = runtime();
    let url = server.url();
    let token = rt.block_on(login_token(&url, "alice", PASSWORD));
    let _a = rt.block_on(Ws::connect(&url, &token, None));
    let _b = rt.block_on(Ws::connect(&url, &token, None));
    match rt.block_on(Ws::try_connect(&url, &token, None)) {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 429)
        }
        other => panic!(
            "a third connection was not refused: {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn connections_opened_at_the_same_moment_cannot_exceed_the_limit() {
    let server = Server::start_with(&[("NATTERD_MAX_CONNECTIONS_PER_USER", "2")]);
    server.register("alice");
    let rt = runtime();
    let url = server.url();
    let token = rt.block_on(login_token(&url, "alice", PASSWORD));
    let results = rt.block_on(futures_util::future::join_all(
        (0..8).map(|_| Ws::try_connect(&url, &token, None)),
    ));
    let mut open = Vec::new();
    for r in results {
        match r {
            Ok(ws) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 429)
            }
            Err(e) => panic!("unexpected failure: {e}"),
        }
    }
    assert_eq!(open.len(), 2, "exactly the limit got through");
}

#[test]
fn sessions_are_listed_and_revocable_by_their_owner() {
    let server = Server::start();
    let laptop = server.register("alice");
    let phone = laptop.device();
    let list = laptop.run_ok(["sessions", "--json"]).json_lines();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"].to_string();
    laptop.run_ok(["sessions", "revoke", &other]);
    phone.run(["whoami"]).assert_code(1);
    laptop.run_ok(["whoami"]);
    // Someone else's session id is not yours to revoke.
    let bob = server.register("bob");
    let mine = laptop.run_ok(["sessions", "--json"]).json_lines()[0]["id"].to_string();
    bob.run(["sessions", "revoke", &mine]).assert_code(1);
    laptop.run_ok(["whoami"]);
}

#[test]
fn tls_with_a_pinned_self_signed_certificate_and_a_refused_wrong_pin() {
    let server = Server::start_with(&[("NATTERD_TLS_SELF_SIGNED", "true")]);
    let url = server.url();
    assert!(url.starts_with("https://"), "{url}");
    let pin = server
        .fingerprint()
        .expect("natterd prints its fingerprint")
        .to_owned();
    let alice = server.user("alice");
    // Not trusted by default: a clear error, not a silent accept.
    alice
        .run_stdin(
            ["register", "alice", "--password-stdin"],
            format!("{PASSWORD}\n"),
        )
        .assert_code(1)
        .assert_stderr_contains("not trusted");
    alice
        .run_stdin(
            ["register", "alice", "--password-stdin", "--pin", &pin],
            format!("{PASSWORD}\n"),
        )
        .assert_ok();
    let bob = server.user("bob");
    bob.run_stdin(
        ["register", "bob", "--password-stdin", "--pin", &pin],
        format!("{PASSWORD}\n"),
    )
    .assert_ok();
    let mut listener = natter_e2e::Listener::spawn({
        let mut c = bob.command(["listen", "--json"]);
        c.env("NATTER_PIN", &pin);
        c
    });
    // Round trip over HTTPS and WSS: wait until the listener is connected, by sending
    // until a message shows up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        alice.run_ok(["send", "@bob", &format!("over tls {n}"), "--pin", &pin]);
        if let Some(m) = listener.next_message(Duration::from_millis(750)) {
            assert!(m.text.starts_with("over tls"), "{m:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no message over WSS\n{}",
            listener.stderr()
        );
    }
    let mut wrong = pin.clone();
    wrong.replace_range(0..2, if &pin[0..2] == "00" { "11" } else { "00" });
    alice
        .run(["whoami", "--pin", &wrong])
        .assert_code(1)
        .assert_stderr_contains("not the pinned one");
}

#[test]
fn login_and_registration_refuse_large_bodies_before_reading_them() {
    let server = Server::start();
    let url = server.url();
    let rt = runtime();
    let body = json!({"username": "alice", "password": "x".repeat(20_000)});
    for path in ["register", "login"] {
        let resp = rt
            .block_on(
                reqwest::Client::new()
                    .post(format!("{url}/api/v1/auth/{path}"))
                    .json(&body)
                    .send(),
            )
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413, "{path}");
        let body: serde_json::Value = rt.block_on(resp.json()).unwrap();
        assert_eq!(body["code"], "payload_too_large");
    }
}
