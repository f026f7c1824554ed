//! Writes the seed corpora for the fuzz targets (`fuzz/`) into `DIR/<target>/` (default
//! `fuzz/corpus`): every entry of the hostile corpus, its invalid UTF-8 entries, and
//! sample client and server frames that carry hostile text. Run by `.ci/run` before
//! the bounded fuzz runs; `cargo fuzz run TARGET` reads `fuzz/corpus/TARGET`.

#[path = "../tests/corpus/hostile.rs"]
mod hostile;

use std::path::Path;

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::fs::write(dir.join(format!("seed_{file}")), data)
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus"));
    let mut texts: Vec<(String, Vec<u8>)> = hostile::all()
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    texts.extend(
        hostile::HOSTILE_BYTES
            .iter()
            .map(|(n, b)| ((*n).to_owned(), b.to_vec())),
    );
    texts.push(("dotdot".into(), b"../../.ssh/authorized_keys".to_vec()));
    texts.push(("windows device".into(), b"CON.txt".to_vec()));
    for (name, bytes) in &texts {
        write(&dir, "sanitize_terminal", name, bytes)?;
        write(&dir, "sanitize_filename", name, bytes)?;
    }

    for (name, text) in hostile::HOSTILE {
        let text = serde_json::Value::from(*text);
        let send = serde_json::json!({"type": "send", "conversation_id": 3, "client_id": "c-1", "text": text});
        write(&dir, "client_frame", name, send.to_string().as_bytes())?;
        let message = serde_json::json!({"type": "message", "message": {
            "id": 42, "conversation_id": 3, "seq": 7, "sender": "alice", "text": text,
            "sent_at": "2026-11-28T12:00:00Z", "client_id": "c-1"}});
        write(&dir, "server_frame", name, message.to_string().as_bytes())?;
        let error = serde_json::json!({"type": "error", "code": "bad_request", "message": text});
        write(
            &dir,
            "server_frame",
            &format!("error {name}"),
            error.to_string().as_bytes(),
        )?;
    }
    let frames = [
        r#"{"type":"ping","nonce":7}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"typing","conversation_id":1}"#,
        r#"{"type":"typing","conversation_id":1,"active":false}"#,
        r#"{"type":"delivered","conversation_id":1,"seq":3}"#,
        r#"{"type":"read","conversation_id":1,"seq":3}"#,
        r#"{"type":"set_presence","state":"away"}"#,
        r#"{"type":"send","conversation_id":9223372036854775807,"client_id":"","text":"\u0000\ud800"}"#,
    ];
    for (i, f) in frames.iter().enumerate() {
        write(&dir, "client_frame", &format!("frame {i}"), f.as_bytes())?;
    }
    let frames = [
        r#"{"type":"hello","user":{"id":1,"username":"bob","is_admin":false},"cursor":0,"heartbeat_secs":30}"#,
        r#"{"type":"synced","cursor":5}"#,
        r#"{"type":"removed","conversation_id":4}"#,
        r#"{"type":"pong","nonce":1}"#,
        r#"{"type":"ack","client_id":"c","message":{"id":1,"conversation_id":3,"seq":1,"sender":"a","text":"t","sent_at":"2026-11-28T12:00:00Z","client_id":"c"},"duplicate":false}"#,
        r#"{"type":"typing","conversation_id":1,"user":"alice","active":true}"#,
    ];
    for (i, f) in frames.iter().enumerate() {
        write(&dir, "server_frame", &format!("frame {i}"), f.as_bytes())?;
    }
    println!("seeds written to {}", dir.display());
    Ok(())
}
