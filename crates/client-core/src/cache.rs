//! The local SQLite cache (`cache.db`): conversations, messages, the resume cursor and the
//! outbox. WAL mode and a 5 s busy timeout let a `natter listen` and a `natter send` share
//! one `NATTER_HOME`. Calls are short and synchronous; the connection sits behind a
//! `std::sync::Mutex` that is never held across an `.await`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use natter_protocol::{ConversationId, ConversationInfo, Message, MessageId};
use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{CacheError, Error};
use crate::paths::ensure_dir;

const CURSOR_KEY: &str = "cursor";
const IDENTITY_KEY: &str = "identity";

/// A list as JSON for a TEXT column; NULL when empty.
fn json_list<T: serde::Serialize>(items: &[T]) -> Option<String> {
    if items.is_empty() {
        None
    } else {
        serde_json::to_string(items).ok()
    }
}

fn parse_list<T: serde::de::DeserializeOwned>(json: Option<&str>) -> Vec<T> {
    json.and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("migrations/001_initial.sql")),
        M::up(include_str!("migrations/002_attachments.sql")),
    ])
}

/// A message accepted from the user and not yet acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The id the server deduplicates on; it never changes across retries.
    pub client_id: String,
    /// What the user typed (`@bob`, `ops`), resolved when the entry is sent.
    pub target: String,
    /// Set once the target was resolved, so later retries need no lookup.
    pub conversation_id: Option<ConversationId>,
    pub text: String,
    /// Ids of uploads (already on the server) the message carries.
    pub attachments: Vec<String>,
    pub created_at: OffsetDateTime,
}

/// Handle on the cache database. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct Cache {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cache")
    }
}

/// Creates the database file readable only by its owner (it holds private messages);
/// SQLite gives its `-wal` and `-shm` files the same permissions.
fn create_private(path: &Path) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn parse_time(s: &str) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| CacheError::Corrupt(format!("bad time {s:?}: {e}")).into())
}

impl Cache {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Cache, Error> {
        if let Some(dir) = path.parent() {
            ensure_dir(dir)?;
        }
        create_private(path)?;
        let conn = Connection::open(path).map_err(CacheError::from)?;
        Cache::setup(conn)
    }

    /// An in-memory cache (tests, or a front end that wants no files).
    pub fn in_memory() -> Result<Cache, Error> {
        Cache::setup(Connection::open_in_memory().map_err(CacheError::from)?)
    }

    fn setup(mut conn: Connection) -> Result<Cache, Error> {
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(CacheError::from)?;
        // `journal_mode` answers with a row; in-memory databases stay "memory".
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(CacheError::from)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(CacheError::from)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(CacheError::from)?;
        Ok(Cache {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (statements
        // are atomic), so a poisoned lock is safe to keep using.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_kv(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .lock()
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Ties the cache to one account on one server (`alice@http://host:7600`). When the
    /// cache belonged to another identity, everything in it is dropped (its messages,
    /// cursor and outbox mean nothing for this account). Returns true when it was reset.
    pub fn bind_identity(&self, identity: &str) -> Result<bool, Error> {
        let current = self.get_kv(IDENTITY_KEY)?;
        if current.as_deref() == Some(identity) {
            return Ok(false);
        }
        let reset = current.is_some();
        {
            let mut conn = self.lock();
            let tx = conn.transaction()?;
            if reset {
                tx.execute_batch(
                    "DELETE FROM conversations; DELETE FROM messages; DELETE FROM outbox;
                     DELETE FROM kv;",
                )?;
            }
            tx.execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![IDENTITY_KEY, identity],
            )?;
            tx.commit()?;
        }
        Ok(reset)
    }

    // ----- conversations -----

    pub fn put_conversation(&self, info: &ConversationInfo) -> Result<(), Error> {
        let json = serde_json::to_string(info).map_err(|e| Error::Protocol(e.to_string()))?;
        self.lock().execute(
            "INSERT INTO conversations (id, target, info) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET target = excluded.target, info = excluded.info",
            params![info.id, info.target(), json],
        )?;
        Ok(())
    }

    fn decode_conversation(json: String) -> Result<ConversationInfo, Error> {
        serde_json::from_str(&json)
            .map_err(|e| CacheError::Corrupt(format!("conversation: {e}")).into())
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<ConversationInfo>, Error> {
        let json: Option<String> = self
            .lock()
            .query_row("SELECT info FROM conversations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        json.map(Self::decode_conversation).transpose()
    }

    /// The conversation a target string (`@bob`, `ops`) names, if known.
    pub fn conversation_by_target(&self, target: &str) -> Result<Option<ConversationInfo>, Error> {
        let json: Option<String> = self
            .lock()
            .query_row(
                "SELECT info FROM conversations WHERE target = ?1 ORDER BY id DESC LIMIT 1",
                [target],
                |r| r.get(0),
            )
            .optional()?;
        json.map(Self::decode_conversation).transpose()
    }

    /// All known conversations, latest activity first.
    pub fn conversations(&self) -> Result<Vec<ConversationInfo>, Error> {
        let rows: Vec<String> = {
            let conn = self.lock();
            let mut stmt = conn.prepare("SELECT info FROM conversations")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut list = rows
            .into_iter()
            .map(Self::decode_conversation)
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| b.last_activity.cmp(&a.last_activity).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    /// Forgets a conversation's mapping (after removal or a stale target); its messages stay.
    pub fn forget_conversation(&self, id: ConversationId) -> Result<(), Error> {
        self.lock()
            .execute("DELETE FROM conversations WHERE id = ?1", [id])?;
        Ok(())
    }

    // ----- messages -----

    /// Stores a message; returns true when it was new. A message already stored (same
    /// server id) is left as it is: re-delivery never duplicates.
    pub fn put_message(&self, m: &Message) -> Result<bool, Error> {
        let n = self.lock().execute(
            "INSERT INTO messages (id, conversation_id, seq, sender, text, sent_at, client_id, attachments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO NOTHING",
            params![
                m.id,
                m.conversation_id,
                m.seq,
                m.sender,
                m.text,
                rfc3339(m.sent_at),
                m.client_id,
                json_list(&m.attachments)
            ],
        )?;
        Ok(n == 1)
    }

    pub fn has_message(&self, id: MessageId) -> Result<bool, Error> {
        Ok(self
            .lock()
            .query_row("SELECT 1 FROM messages WHERE id = ?1", [id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Up to `limit` cached messages of a conversation with `seq < before` (all when
    /// `None`), in ascending seq order.
    pub fn messages(
        &self,
        conversation_id: ConversationId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, Error> {
        type Row = (
            i64,
            i64,
            i64,
            String,
            String,
            String,
            String,
            Option<String>,
        );
        let rows: Vec<Row> = {
            let conn = self.lock();
            let mut stmt = conn.prepare(
                "SELECT id, conversation_id, seq, sender, text, sent_at, client_id, attachments FROM messages
                 WHERE conversation_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
            )?;
            stmt.query_map(
                params![conversation_id, before.unwrap_or(i64::MAX), limit],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )?
            .collect::<Result<_, _>>()?
        };
        let mut out = rows
            .into_iter()
            .map(
                |(id, conversation_id, seq, sender, text, sent_at, client_id, attachments)| {
                    Ok(Message {
                        id,
                        conversation_id,
                        seq,
                        sender,
                        text,
                        sent_at: parse_time(&sent_at)?,
                        client_id,
                        event: None,
                        attachments: parse_list(attachments.as_deref()),
                    })
                },
            )
            .collect::<Result<Vec<_>, Error>>()?;
        out.reverse();
        Ok(out)
    }

    // ----- resume cursor -----

    /// The highest message id this client has taken from the stream, if any.
    pub fn cursor(&self) -> Result<Option<MessageId>, Error> {
        self.cursor_named(CURSOR_KEY)
    }

    /// Moves the cursor forward to `id`; never moves it back.
    pub fn advance_cursor(&self, id: MessageId) -> Result<(), Error> {
        self.advance_cursor_named(CURSOR_KEY, id)
    }

    /// A cursor of its own for a consumer that must not move the main one (the
    /// notifier keeps `notify_cursor`, so `natter listen` still gets everything).
    pub fn cursor_named(&self, key: &str) -> Result<Option<MessageId>, Error> {
        self.get_kv(key)?
            .map(|v| {
                v.parse()
                    .map_err(|_| CacheError::Corrupt(format!("cursor {v:?}")).into())
            })
            .transpose()
    }

    /// Moves the named cursor forward to `id`; never moves it back.
    pub fn advance_cursor_named(&self, key: &str, id: MessageId) -> Result<(), Error> {
        self.lock().execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value
             WHERE CAST(kv.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            params![key, id.to_string()],
        )?;
        Ok(())
    }

    // ----- outbox -----

    /// Persists an outbox entry. The same client id twice is refused by the primary key.
    pub fn outbox_push(&self, e: &OutboxEntry) -> Result<(), Error> {
        self.lock().execute(
            "INSERT INTO outbox (client_id, target, conversation_id, text, created_at, attachments)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                e.client_id,
                e.target,
                e.conversation_id,
                e.text,
                rfc3339(e.created_at),
                json_list(&e.attachments)
            ],
        )?;
        Ok(())
    }

    /// Pending entries, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        type Row = (String, String, Option<i64>, String, String, Option<String>);
        let rows: Vec<Row> = {
            let conn = self.lock();
            let mut stmt = conn.prepare(
                "SELECT client_id, target, conversation_id, text, created_at, attachments FROM outbox
                 ORDER BY created_at, rowid",
            )?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?
        };
        rows.into_iter()
            .map(
                |(client_id, target, conversation_id, text, created_at, attachments)| {
                    Ok(OutboxEntry {
                        client_id,
                        target,
                        conversation_id,
                        text,
                        attachments: parse_list(attachments.as_deref()),
                        created_at: parse_time(&created_at)?,
                    })
                },
            )
            .collect()
    }

    pub fn outbox_get(&self, client_id: &str) -> Result<Option<OutboxEntry>, Error> {
        Ok(self
            .outbox()?
            .into_iter()
            .find(|e| e.client_id == client_id))
    }

    pub fn outbox_set_conversation(
        &self,
        client_id: &str,
        id: ConversationId,
    ) -> Result<(), Error> {
        self.lock().execute(
            "UPDATE outbox SET conversation_id = ?2 WHERE client_id = ?1",
            params![client_id, id],
        )?;
        Ok(())
    }

    /// Removes an entry; returns false when it was already gone (another process sent it).
    pub fn outbox_remove(&self, client_id: &str) -> Result<bool, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM outbox WHERE client_id = ?1", [client_id])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use natter_protocol::ConversationKind;
    use time::macros::datetime;

    use super::*;

    fn msg(id: i64, conversation_id: i64, seq: i64, text: &str) -> Message {
        Message {
            id,
            conversation_id,
            seq,
            sender: "alice".into(),
            text: text.into(),
            sent_at: datetime!(2026-11-28 12:00 UTC),
            client_id: format!("c{id}"),
            event: None,
            attachments: Vec::new(),
        }
    }

    fn conv(id: i64, kind: ConversationKind, name: &str, minute: u8) -> ConversationInfo {
        ConversationInfo {
            id,
            kind,
            name: (kind == ConversationKind::Group).then(|| name.to_string()),
            peer: (kind == ConversationKind::Direct).then(|| name.to_string()),
            last_seq: 0,
            last_activity: datetime!(2026-11-28 12:00 UTC) + time::Duration::minutes(minute.into()),
            member_count: 2,
        }
    }

    #[test]
    fn messages_upsert_without_duplicates() {
        let cache = Cache::in_memory().unwrap();
        assert!(cache.put_message(&msg(1, 7, 1, "one")).unwrap());
        assert!(!cache.put_message(&msg(1, 7, 1, "one")).unwrap());
        assert!(cache.put_message(&msg(3, 7, 2, "two")).unwrap());
        assert!(cache.has_message(3).unwrap());
        assert!(!cache.has_message(2).unwrap());
        let all = cache.messages(7, None, 10).unwrap();
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(all[0], msg(1, 7, 1, "one"));
        assert_eq!(cache.messages(7, Some(2), 10).unwrap().len(), 1);
        assert_eq!(cache.messages(7, None, 1).unwrap()[0].seq, 2);
    }

    #[test]
    fn cursor_only_moves_forward() {
        let cache = Cache::in_memory().unwrap();
        assert_eq!(cache.cursor().unwrap(), None);
        cache.advance_cursor(5).unwrap();
        cache.advance_cursor(3).unwrap();
        assert_eq!(cache.cursor().unwrap(), Some(5));
        cache.advance_cursor(12).unwrap();
        assert_eq!(cache.cursor().unwrap(), Some(12));
    }

    #[test]
    fn conversations_by_target_and_activity() {
        let cache = Cache::in_memory().unwrap();
        cache
            .put_conversation(&conv(1, ConversationKind::Direct, "bob", 1))
            .unwrap();
        cache
            .put_conversation(&conv(2, ConversationKind::Group, "ops", 5))
            .unwrap();
        assert_eq!(cache.conversation_by_target("@bob").unwrap().unwrap().id, 1);
        assert_eq!(cache.conversation_by_target("ops").unwrap().unwrap().id, 2);
        assert!(cache.conversation_by_target("@ops").unwrap().is_none());
        let order: Vec<_> = cache
            .conversations()
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(order, [2, 1]);
        // An update replaces the row.
        cache
            .put_conversation(&conv(1, ConversationKind::Direct, "bob", 9))
            .unwrap();
        assert_eq!(cache.conversations().unwrap()[0].id, 1);
        cache.forget_conversation(1).unwrap();
        assert!(cache.conversation(1).unwrap().is_none());
    }

    #[test]
    fn outbox_persists_across_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/cache.db");
        {
            let cache = Cache::open(&path).unwrap();
            for (i, id) in ["b", "a", "c"].iter().enumerate() {
                cache
                    .outbox_push(&OutboxEntry {
                        client_id: id.to_string(),
                        target: "@bob".into(),
                        conversation_id: None,
                        text: format!("text {i}"),
                        attachments: Vec::new(),
                        created_at: datetime!(2026-11-28 12:00 UTC)
                            + time::Duration::seconds(i as i64),
                    })
                    .unwrap();
            }
            let dup = OutboxEntry {
                client_id: "a".into(),
                target: "ops".into(),
                conversation_id: None,
                text: "x".into(),
                attachments: Vec::new(),
                created_at: OffsetDateTime::now_utc(),
            };
            assert!(cache.outbox_push(&dup).is_err(), "same client id twice");
            cache.outbox_set_conversation("a", 9).unwrap();
        }
        let cache = Cache::open(&path).unwrap();
        let pending = cache.outbox().unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|e| e.client_id.as_str())
                .collect::<Vec<_>>(),
            ["b", "a", "c"]
        );
        assert_eq!(pending[1].conversation_id, Some(9));
        assert_eq!(pending[1].text, "text 1");
        assert!(cache.outbox_remove("a").unwrap());
        assert!(!cache.outbox_remove("a").unwrap());
        assert_eq!(cache.outbox().unwrap().len(), 2);
    }

    #[test]
    fn identity_change_resets_everything() {
        let cache = Cache::in_memory().unwrap();
        assert!(!cache.bind_identity("alice@http://a").unwrap());
        cache.put_message(&msg(1, 1, 1, "x")).unwrap();
        cache.advance_cursor(1).unwrap();
        assert!(!cache.bind_identity("alice@http://a").unwrap());
        assert_eq!(cache.cursor().unwrap(), Some(1));
        assert!(cache.bind_identity("bob@http://a").unwrap());
        assert_eq!(cache.cursor().unwrap(), None);
        assert!(!cache.has_message(1).unwrap());
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }
}
