//! Natter setup over REST: accounts (argon2 makes registration deliberately slow, so
//! tokens are cached in a state file and reused across runs against one database) and
//! groups.

use std::path::Path;
use std::rc::Rc;

use anyhow::Context;
use serde_json::json;
use tokio::sync::Semaphore;

const PASSWORD: &str = "bench-password";

pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// A registered account and its bearer token.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub token: String,
}

impl Api {
    pub fn new(addr: std::net::SocketAddr) -> anyhow::Result<Api> {
        Ok(Api {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            base: format!("http://{addr}/api/v1"),
        })
    }

    async fn auth(&self, path: &str, name: &str) -> anyhow::Result<(u16, String)> {
        let resp = self
            .http
            .post(format!("{}/auth/{path}", self.base))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let token = body["token"].as_str().unwrap_or_default().to_string();
        Ok((status, token))
    }

    /// `http://ADDR/api/v1`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Registers `name`, or logs in when it exists from an earlier run.
    pub async fn account(&self, name: &str) -> anyhow::Result<Account> {
        let (status, mut token) = self.auth("register", name).await?;
        if status == 409 {
            token = self.auth("login", name).await?.1;
        } else {
            anyhow::ensure!(status == 201, "registering {name}: HTTP {status}");
        }
        anyhow::ensure!(!token.is_empty(), "no token for {name}");
        Ok(Account {
            name: name.into(),
            token,
        })
    }

    /// Creates a group owned by `owner` with `members`; returns its conversation id.
    pub async fn create_group(
        &self,
        owner: &Account,
        name: &str,
        members: &[&Account],
    ) -> anyhow::Result<u64> {
        let names: Vec<&str> = members
            .iter()
            .filter(|m| m.name != owner.name)
            .map(|m| m.name.as_str())
            .collect();
        let resp = self
            .http
            .post(format!("{}/groups", self.base))
            .bearer_auth(&owner.token)
            .json(&json!({"name": name, "members": names}))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "creating group {name}: {status} {body}"
        );
        body["id"].as_u64().context("group without id")
    }

    /// The account removes itself from a group.
    pub async fn leave_group(&self, who: &Account, group: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .delete(format!("{}/groups/{group}/members/{}", self.base, who.name))
            .bearer_auth(&who.token)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "leaving {group}: {}",
            resp.status()
        );
        Ok(())
    }

    /// `GET /conversations/{id}/messages?limit=N`; returns how many messages came back.
    pub async fn latest(&self, who: &Account, conv: u64, limit: u32) -> anyhow::Result<usize> {
        let resp = self
            .http
            .get(format!(
                "{}/conversations/{conv}/messages?limit={limit}",
                self.base
            ))
            .bearer_auth(&who.token)
            .send()
            .await?;
        anyhow::ensure!(resp.status().is_success(), "history: {}", resp.status());
        let body = resp.bytes().await?;
        Ok(memchr::memmem::find_iter(&body, b"\"seq\":").count())
    }
}

/// `n` accounts named `<prefix>u<i>`. With a state file, accounts registered before are
/// reused (their tokens read back) and new ones appended.
pub async fn accounts(
    api: &Rc<Api>,
    state: Option<&Path>,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<Account>> {
    let mut have: Vec<Account> = Vec::new();
    let prefix = match state {
        Some(path) => {
            if let Ok(text) = std::fs::read_to_string(path) {
                for line in text.lines() {
                    if let Some((name, token)) = line.split_once('\t') {
                        have.push(Account {
                            name: name.into(),
                            token: token.into(),
                        });
                    }
                }
            }
            "b".to_string()
        }
        None => format!("r{}", crate::wire::now_ns() / 1_000_000 % 100_000_000),
    };
    if have.len() >= n {
        have.truncate(n);
        return Ok(have);
    }
    let started = std::time::Instant::now();
    let missing = n - have.len();
    eprintln!("registering {missing} accounts (argon2 hashing is deliberately slow)...");
    let sem = Rc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(missing);
    for i in have.len()..n {
        let api = api.clone();
        let sem = sem.clone();
        let name = format!("{prefix}u{i}");
        tasks.push(tokio::task::spawn_local(async move {
            let _permit = sem.acquire().await;
            api.account(&name).await
        }));
    }
    let mut new = Vec::with_capacity(missing);
    for t in tasks {
        new.push(t.await??);
    }
    eprintln!(
        "registered {missing} accounts in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = state {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        for a in &new {
            writeln!(f, "{}\t{}", a.name, a.token)?;
        }
    }
    have.extend(new);
    Ok(have)
}
