//! File routes against a real in-process server: what an interrupted upload leaves
//! behind (nothing), and how downloads answer ranges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use natter_server::{Config, Server};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

struct Running {
    base: String,
    addr: std::net::SocketAddr,
    data: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(max_upload: u64) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: Some(dir.path().to_path_buf()),
        max_upload_bytes: max_upload,
        durability: natter_server::config::Durability::Normal,
        ..Config::default()
    };
    let server = Server::new(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}/api/v1"),
        addr,
        data: dir.path().to_path_buf(),
        stop: Some(stop),
        _dir: dir,
    }
}

async fn token(s: &Running, name: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{}/auth/register", s.base))
        .json(&json!({"username": name, "password": "password123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_in(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

fn rows(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Polls `cond` every 10 ms for up to 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

#[tokio::test]
async fn an_upload_cut_off_midway_leaves_nothing_behind() {
    let s = start(64 << 20).await;
    let t = token(&s, "alice").await;
    let staging = s.data.join("files/staging");
    let mut sock = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/files?name=big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\
         Content-Length: {}\r\n\r\n",
        8 << 20
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&vec![7u8; 2 << 20]).await.unwrap();
    sock.flush().await.unwrap();
    eventually("the upload to be staged", || files_in(&staging) == 1).await;
    drop(sock);
    eventually("the staged part to be deleted", || files_in(&staging) == 0).await;
    assert_eq!(files_in(&s.data.join("files/objects")), 0);
    let db = s.data.join("natter.db");
    assert_eq!((rows(&db, "attachments"), rows(&db, "blobs")), (0, 0));

    // The server is fine afterwards: the same upload, whole, is stored.
    let a: Value = reqwest::Client::new()
        .post(format!("{}/files?name=big.bin", s.base))
        .bearer_auth(&t)
        .body(vec![7u8; 8 << 20])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["size"], 8 << 20, "{a}");
    assert_eq!(files_in(&s.data.join("files/objects")), 1);
}

#[tokio::test]
async fn downloads_answer_ranges_and_stale_validators() {
    let s = start(1 << 20).await;
    let t = token(&s, "alice").await;
    let http = reqwest::Client::new();
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let a: Value = http
        .post(format!("{}/files?name=data.bin", s.base))
        .bearer_auth(&t)
        .body(content.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}/files/{}", s.base, a["id"].as_str().unwrap());
    let get = |range: Option<&str>, if_range: Option<&str>| {
        let mut rb = http.get(&url).bearer_auth(&t);
        if let Some(r) = range {
            rb = rb.header("range", r);
        }
        if let Some(v) = if_range {
            rb = rb.header("if-range", v);
        }
        rb.send()
    };
    let etag = format!("\"{}\"", a["hash"].as_str().unwrap());

    let r = get(Some("bytes=1000-1999"), Some(&etag)).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 1000-1999/100000");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(r.bytes().await.unwrap(), &content[1000..2000]);

    let r = get(Some("bytes=-10"), None).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), &content[99_990..]);

    // A validator for other content asks for the whole file.
    let r = get(Some("bytes=1000-"), Some("\"other\"")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), &content[..]);

    let r = get(Some("bytes=100000-"), None).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */100000");

    // Another user, even one who guesses the id, sees nothing.
    let mallory = token(&s, "mallory").await;
    let r = http.get(&url).bearer_auth(&mallory).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let missing = http
        .get(format!(
            "{}/files/00000000-0000-7000-8000-000000000000",
            s.base
        ))
        .bearer_auth(&mallory)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (a, b): (Value, Value) = (r.json().await.unwrap(), missing.json().await.unwrap());
    assert_eq!(
        a, b,
        "a file one may not see looks exactly like a missing one"
    );
}

#[tokio::test]
async fn a_client_still_sending_past_the_cap_reads_the_refusal() {
    let s = start(4 << 20).await;
    let t = token(&s, "alice").await;
    // Chunked, so the server only learns the size as it goes: 16 MiB against a 4 MiB cap
    // (far more than the socket buffers hold, so a server that stopped reading at the cap
    // would reset the connection under the client).
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(vec![3u8; 256 << 10]));
    let resp = reqwest::Client::new()
        .post(format!("{}/files?name=grows.log", s.base))
        .bearer_auth(&t)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("the answer, not a reset connection");
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("upload limit"),
        "{body}"
    );
    assert_eq!(files_in(&s.data.join("files/staging")), 0);
    assert_eq!(files_in(&s.data.join("files/objects")), 0);
}
