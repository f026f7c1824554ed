//! Registration, login, logout and command-line usage.

use natter_e2e::{PASSWORD, Server};

#[test]
fn register_logs_in_and_whoami_names_the_user() {
    let server = Server::start();
    let alice = server.register("alice");
    let out = alice.run_ok(["whoami"]);
    assert!(
        out.stdout.contains("alice"),
        "whoami should name alice\n{out}"
    );
    let out = alice.run_ok(["whoami", "--json"]);
    let json = out.json_lines();
    assert_eq!(json.len(), 1, "{out}");
    assert_eq!(json[0]["username"], "alice", "{out}");
}

#[test]
fn duplicate_username_is_refused_case_insensitively() {
    let server = Server::start();
    let _alice = server.register("alice");
    for name in ["alice", "Alice", "ALICE"] {
        let other = server.user(name);
        let out = other.run_stdin(
            ["register", name, "--password-stdin"],
            format!("{PASSWORD}\n"),
        );
        out.assert_code(1).assert_stderr_contains("taken");
        // The refused device holds no session.
        other.run(["whoami"]).assert_code(1);
    }
    // The account is still alice's, and names fold to lowercase at login.
    let device = server.user("ALICE");
    device
        .run_stdin(
            ["login", "ALICE", "--password-stdin"],
            format!("{PASSWORD}\n"),
        )
        .assert_ok();
    let out = device.run_ok(["whoami", "--json"]);
    assert_eq!(out.json_lines()[0]["username"], "alice", "{out}");
}

#[test]
fn wrong_password_and_unknown_account_cannot_log_in() {
    let server = Server::start();
    let _alice = server.register("alice");
    let intruder = server.user("alice");
    intruder
        .run_stdin(["login", "alice", "--password-stdin"], "not the password\n")
        .assert_code(1);
    intruder.run(["whoami"]).assert_code(1);
    let nobody = server.user("nobody");
    nobody
        .run_stdin(
            ["login", "nobody", "--password-stdin"],
            format!("{PASSWORD}\n"),
        )
        .assert_code(1);
}

#[test]
fn weak_password_and_bad_username_are_refused_with_a_reason() {
    let server = Server::start();
    let bob = server.user("bob");
    let out = bob.run_stdin(["register", "bob", "--password-stdin"], "short\n");
    assert_ne!(
        out.code(),
        Some(0),
        "a 5-character password must be refused\n{out}"
    );
    out.assert_stderr_contains("at least 8");
    let out = bob.run_stdin(
        ["register", "bob smith", "--password-stdin"],
        format!("{PASSWORD}\n"),
    );
    assert_ne!(
        out.code(),
        Some(0),
        "a username with a space must be refused\n{out}"
    );
    out.assert_stderr_contains("username");
    // Neither attempt created an account: bob is still free.
    bob.register();
}

#[test]
fn closed_registration_is_refused_clearly() {
    let server = Server::start_with(&[("NATTERD_REGISTRATION", "closed")]);
    let alice = server.user("alice");
    let out = alice.run_stdin(
        ["register", "alice", "--password-stdin"],
        format!("{PASSWORD}\n"),
    );
    out.assert_code(1).assert_stderr_contains("closed");
}

#[test]
fn logout_ends_the_session() {
    let server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(alice.home().join("session.json")).unwrap())
            .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    let me = |token: &str| {
        let url = format!("{}/api/v1/me", server.url());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    assert_eq!(me(&token).as_u16(), 200);
    alice.run_ok(["logout"]);
    // The server revoked the token itself, not only the client's copy.
    assert_eq!(me(&token).as_u16(), 401);
    alice.run(["whoami"]).assert_code(1);
    let out = alice.run(["send", "@bob", "after logout"]);
    out.assert_code(1);
    assert!(
        out.stderr.to_lowercase().contains("log"),
        "the error should say to log in\n{out}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let server = Server::start();
    let alice = server.register("alice");
    for args in [
        &["frobnicate"][..],
        &["send"][..],
        &["history"][..],
        &["history", "@bob", "--limit", "many"][..],
        &["listen", "--count", "-3"][..],
        &["group", "create"][..],
        &["send", "@bob", "hi", "--no-such-flag"][..],
    ] {
        let out = alice.run(args);
        out.assert_code(2);
        assert!(
            !out.stderr.trim().is_empty(),
            "a usage error says what is wrong\n{out}"
        );
    }
}

#[test]
fn unreachable_server_is_a_clear_runtime_error() {
    let mut server = Server::start();
    let alice = server.register("alice");
    let _bob = server.register("bob");
    server.kill9();
    let out = alice.run(["history", "@bob"]);
    out.assert_code(1).assert_stderr_contains("cannot reach");
}
