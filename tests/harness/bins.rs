//! Builds `natterd` and `natter` once per test process and finds them.
//!
//! `CARGO_BIN_EXE_*` only reaches binaries of the package under test, so the harness asks
//! cargo itself, with the profile the tests were built with, and takes the executables'
//! paths from cargo's JSON messages (which also respects `CARGO_TARGET_DIR`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Paths of the real binaries under test.
#[derive(Debug)]
pub struct Bins {
    pub natterd: PathBuf,
    pub natter: PathBuf,
}

static BINS: OnceLock<Bins> = OnceLock::new();

/// The binaries, built on first use. Panics with cargo's output if the build fails.
pub fn bins() -> &'static Bins {
    BINS.get_or_init(build)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

fn build() -> Bins {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "-p", "natter-server", "-p", "natter-cli", "--bins"])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd
        .output()
        .expect("run cargo build for natterd and natter");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "cargo build -p natter-server -p natter-cli failed ({}):\n{stderr}",
        out.status
    );
    let mut natterd = None;
    let mut natter = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = msg["executable"].as_str() else {
            continue;
        };
        match msg["target"]["name"].as_str() {
            Some("natterd") => natterd = Some(PathBuf::from(exe)),
            Some("natter") => natter = Some(PathBuf::from(exe)),
            _ => {}
        }
    }
    let found = |p: Option<PathBuf>, name: &str| {
        p.unwrap_or_else(|| panic!("cargo build did not report the `{name}` executable:\n{stderr}"))
    };
    Bins {
        natterd: found(natterd, "natterd"),
        natter: found(natter, "natter"),
    }
}
