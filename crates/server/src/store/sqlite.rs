//! The SQLite store: one writer thread that owns the only write connection and commits
//! whatever has queued up in one transaction (group commit), plus a pool of read
//! connections. WAL mode lets readers run while the writer commits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use natter_protocol::{
    ConversationId, ConversationInfo, ConversationKind, ConversationState, GroupInfo, HistoryPage,
    MemberInfo, Message, MessageId, MessageReceipts, Receipt, ReceiptKind, Role, Seq, Settings,
    SettingsUpdate, SyncPage, UserId,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use rusqlite_migration::{M, Migrations};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use super::{
    Committed, CommittedMessage, MarkerUpdate, SharedMessage, Store, StoreError, StoreResult,
    Stored, UserRecord,
};
use crate::config::Durability;

mod accounts;
mod files;
mod groups;
mod readers;

use readers::Readers;

const MIGRATIONS: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_init.sql")),
    M::up(include_str!("migrations/0002_live.sql")),
    M::up(include_str!("migrations/0003_accounts.sql")),
    M::up(include_str!("migrations/0004_groups.sql")),
    M::up(include_str!("migrations/0005_files.sql")),
    M::up(include_str!("migrations/0006_message_keys.sql")),
    M::up(include_str!("migrations/0007_one_conversation_index.sql")),
];
/// Most jobs one transaction takes: bounds the latency a batch adds to its first job.
const MAX_BATCH: usize = 512;

/// Most times the writer yields to let a batch grow (see `writer_loop`).
const YIELDS: usize = 4;

/// Conversations (and users) the writer's cache holds before it starts over: bounds its
/// memory on a server with very many conversations.
const MAX_CACHED: usize = 1 << 16;

type Completion = Box<dyn FnOnce(Option<StoreError>) + Send>;
/// Runs a job in the writer's transaction, or (given `None`, when the batch failed before
/// its turn) only makes its completion, which then carries the batch's error.
type Run = Box<
    dyn for<'a> FnOnce(
            Option<(&'a Connection, &'a mut Vec<Committed>, &'a mut WriterCache)>,
        ) -> (bool, Completion)
        + Send,
>;

/// A write for the writer thread. Each runs inside a savepoint of the batch's transaction,
/// so that a job that fails undoes its own writes and nothing else's, unless it writes
/// with one statement at most: SQLite applies a statement whole or not at all, so such a
/// job needs no savepoint. Storing a message is one (an `INSERT`); its savepoint and
/// release were ~5-15 % of natterd's CPU under workload 2 (A/B without them).
struct Job {
    run: Run,
    one_statement: bool,
}

/// What the writer thread remembers between jobs so that storing a message does not read
/// the members and the sender's name again every time: both were ~a third of the
/// writer's time under load.
///
/// Membership is authorization (only members may send, only members receive), so the
/// cache must never be stale: every job that writes the `members` table calls
/// [`WriterCache::forget_members`] (or [`WriterCache::clear`]) in the same job, and the
/// writer clears the whole cache when a job or a transaction is rolled back (the cache
/// may hold what the rollback undid). Only the writer thread touches it, and it is the
/// only writer of the database, so no other connection can change what it caches.
///
/// It also keeps each conversation's `last_seq`: the writer hands out sequence numbers
/// from here and writes `last_seq` and `last_activity` back once per conversation per
/// transaction ([`WriterCache::write_back`], just before the commit) instead of updating
/// the row for every message. A job that reads those columns itself must call
/// [`WriterCache::write_back_one`] first. A job's changes to them are undone with its
/// savepoint ([`WriterCache::undo_job`]); a failed transaction forgets them all.
#[derive(Default)]
pub(crate) struct WriterCache {
    members: HashMap<ConversationId, Arc<[UserId]>>,
    names: HashMap<UserId, String>,
    /// `last_seq` as this transaction has it.
    seqs: HashMap<ConversationId, Seq>,
    /// `(last_seq, last_activity)` not yet written to `conversations`.
    dirty: HashMap<ConversationId, (Seq, i64)>,
    /// What `seqs` and `dirty` held before the current job changed them, oldest first.
    undo: Vec<Undo>,
}

/// A conversation's entries in [`WriterCache::seqs`] and [`WriterCache::dirty`] before a
/// job changed them.
type Undo = (ConversationId, Option<Seq>, Option<(Seq, i64)>);

impl WriterCache {
    /// The members of `conversation`, as committed so far in this transaction.
    pub(crate) fn members(
        &mut self,
        conn: &Connection,
        conversation: ConversationId,
    ) -> rusqlite::Result<Arc<[UserId]>> {
        if let Some(m) = self.members.get(&conversation) {
            return Ok(m.clone());
        }
        let ids: Arc<[UserId]> = member_ids(conn, conversation)?.into();
        if self.members.len() >= MAX_CACHED {
            self.members.clear();
        }
        self.members.insert(conversation, ids.clone());
        Ok(ids)
    }

    /// A user's name (names never change once an account exists).
    pub(crate) fn username(&mut self, conn: &Connection, user: UserId) -> rusqlite::Result<&str> {
        if !self.names.contains_key(&user) {
            let name: String = conn
                .prepare_cached("SELECT username FROM users WHERE id = ?1")?
                .query_row([user], |r| r.get(0))?;
            if self.names.len() >= MAX_CACHED {
                self.names.clear();
            }
            self.names.insert(user, name);
        }
        Ok(self.names[&user].as_str())
    }

    /// Call in the same job as any write to the members of `conversation`.
    pub(crate) fn forget_members(&mut self, conversation: ConversationId) {
        self.members.remove(&conversation);
    }

    /// Forgets members and names (sequence numbers are kept: they are not about accounts).
    pub(crate) fn clear(&mut self) {
        self.members.clear();
        self.names.clear();
    }

    /// The next sequence number of `conversation`, which becomes its `last_seq` (and
    /// `now` its `last_activity`) when this transaction commits.
    ///
    /// The caller inserts the message (and so takes the next id) in the same job: with
    /// one writer, seq and id then rise together within every conversation, which
    /// `sync` and `head` rely on to go by the (conversation_id, seq) index alone.
    pub(crate) fn next_seq(
        &mut self,
        conn: &Connection,
        conversation: ConversationId,
        now: i64,
    ) -> rusqlite::Result<Seq> {
        let last = self.last_seq(conn, conversation)?;
        self.undo.push((
            conversation,
            Some(last),
            self.dirty.get(&conversation).copied(),
        ));
        self.seqs.insert(conversation, last + 1);
        self.dirty.insert(conversation, (last + 1, now));
        Ok(last + 1)
    }

    /// `last_seq` of `conversation` as this transaction has it.
    pub(crate) fn last_seq(
        &mut self,
        conn: &Connection,
        conversation: ConversationId,
    ) -> rusqlite::Result<Seq> {
        if let Some(&seq) = self.seqs.get(&conversation) {
            return Ok(seq);
        }
        let seq: Seq = conn
            .prepare_cached("SELECT last_seq FROM conversations WHERE id = ?1")?
            .query_row([conversation], |r| r.get(0))?;
        if self.seqs.len() >= MAX_CACHED {
            // Only what is still to be written back has to stay.
            let dirty = &self.dirty;
            self.seqs.retain(|c, _| dirty.contains_key(c));
        }
        self.seqs.insert(conversation, seq);
        Ok(seq)
    }

    /// Writes `conversation`'s pending `last_seq` and `last_activity` now, for a job that
    /// reads them from the table.
    pub(crate) fn write_back_one(
        &mut self,
        conn: &Connection,
        conversation: ConversationId,
    ) -> rusqlite::Result<()> {
        if let Some(pending) = self.dirty.remove(&conversation) {
            self.undo.push((
                conversation,
                self.seqs.get(&conversation).copied(),
                Some(pending),
            ));
            write_back(conn, conversation, pending)?;
        }
        Ok(())
    }

    /// Call in the same job as deleting `conversation` (its id may be used again).
    pub(crate) fn forget_conversation(&mut self, conversation: ConversationId) {
        self.members.remove(&conversation);
        self.undo.push((
            conversation,
            self.seqs.remove(&conversation),
            self.dirty.remove(&conversation),
        ));
    }

    /// Before each job: what it changes can be undone from here.
    fn start_job(&mut self) {
        self.undo.clear();
    }

    /// After a job was rolled back to its savepoint.
    fn undo_job(&mut self) {
        self.undo_changes();
        // The cache may hold what the rollback undid.
        self.clear();
    }

    /// Takes back what the current job changed in `seqs` and `dirty` (it wrote nothing
    /// that used them).
    pub(crate) fn undo_changes(&mut self) {
        while let Some((conversation, seq, pending)) = self.undo.pop() {
            match seq {
                Some(seq) => self.seqs.insert(conversation, seq),
                None => self.seqs.remove(&conversation),
            };
            match pending {
                Some(pending) => self.dirty.insert(conversation, pending),
                None => self.dirty.remove(&conversation),
            };
        }
    }

    /// Just before the commit: every pending `last_seq` and `last_activity`.
    fn write_back(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.undo.clear();
        for (conversation, pending) in self.dirty.drain() {
            write_back(conn, conversation, pending)?;
        }
        Ok(())
    }

    /// After a failed transaction: nothing it did may be remembered.
    fn forget_all(&mut self) {
        *self = WriterCache::default();
    }
}

fn write_back(
    conn: &Connection,
    conversation: ConversationId,
    (last_seq, at): (Seq, i64),
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE conversations SET last_seq = ?2, last_activity = MAX(last_activity, ?3) WHERE id = ?1",
    )?
    .execute(params![conversation, last_seq, at])?;
    Ok(())
}

/// Handle to the SQLite database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    readers: Arc<Readers>,
}

/// Joins the writer thread once every [`SqliteStore`] handle is gone, so that the last
/// transaction finishes before the process exits.
pub struct WriterThread(std::thread::JoinHandle<()>);

impl WriterThread {
    pub fn join(self) {
        let _ = self.0.join();
    }
}

pub(crate) fn now_micros() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

pub(crate) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn configure(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Applies the migrations with foreign keys off, as SQLite asks for a migration that
/// rebuilds a table (dropping the old table would otherwise delete what refers to it),
/// then checks that every reference still holds and turns them back on. The check reads
/// every table, so it runs only when a migration was applied: on a database of millions
/// of messages it would otherwise cost seconds at every start and fill the writer's
/// page cache (16 MiB of RSS) with pages nothing needs.
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version = |c: &Connection| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let before = version(conn)?;
    Migrations::from_slice(MIGRATIONS).to_latest(conn)?;
    if version(conn)? != before {
        let broken: i64 =
            conn.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        anyhow::ensure!(
            broken == 0,
            "the database has {broken} broken references after migrating"
        );
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path`, applies migrations, and
    /// starts the writer. The messages of each transaction are sent to `committed` as one
    /// batch once it is committed, in id order, so the fan-out can hand each connection
    /// all of them with one wake-up.
    pub fn open(
        path: &Path,
        durability: Durability,
        readers: usize,
        committed: mpsc::Sender<Vec<Committed>>,
    ) -> anyhow::Result<(SqliteStore, WriterThread)> {
        let mut conn = Connection::open(path)?;
        configure(&conn, durability)?;
        // The writer's own tuning (readers keep SQLite's defaults). Checkpointing every
        // 8,000 pages instead of 1,000 copies a hot index page back once per checkpoint
        // instead of ~8 times (the WAL then peaks at ~32 MiB); 16 MiB of page cache keeps
        // the leaves that messages are appended to.
        conn.pragma_update(None, "wal_autocheckpoint", 8000)?;
        conn.pragma_update(None, "cache_size", -16 * 1024)?;
        migrate(&mut conn)?;

        let readers = Readers::new(path, readers);

        let (tx, rx) = mpsc::channel::<Job>(4096);
        let handle = std::thread::Builder::new()
            .name("natter-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, committed))?;
        Ok((
            SqliteStore {
                writer: tx,
                readers,
            },
            WriterThread(handle),
        ))
    }

    /// Runs `f` inside the next write transaction and resolves once it is committed.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>) -> StoreResult<T> + Send + 'static,
    {
        self.write_cached(move |conn, events, _| f(conn, events))
            .await
    }

    /// [`SqliteStore::write`] with the writer's cache, for the jobs that read it or
    /// change what it holds (see [`WriterCache`]).
    async fn write_cached<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>, &mut WriterCache) -> StoreResult<T>
            + Send
            + 'static,
    {
        self.submit(false, f).await
    }

    /// [`SqliteStore::write_cached`] for a job that changes the database with one
    /// statement at most (any number of reads), and so needs no savepoint (see [`Job`]).
    /// That statement must be the job's last step that can fail: an error after it would
    /// leave its change in the transaction.
    async fn write_one_statement<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>, &mut WriterCache) -> StoreResult<T>
            + Send
            + 'static,
    {
        self.submit(true, f).await
    }

    async fn submit<T, F>(&self, one_statement: bool, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<Committed>, &mut WriterCache) -> StoreResult<T>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let run: Run = Box::new(move |ctx| {
            let result = match ctx {
                Some((conn, events, cache)) => f(conn, events, cache),
                // Replaced by the batch's error when the completion runs.
                None => Err(StoreError::Closed),
            };
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    None => result,
                    Some(e) => Err(e),
                });
            });
            (ok, done)
        });
        self.writer
            .send(Job { run, one_statement })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read connection off the async runtime.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// Runs `f`, a small read by key, on the calling thread (see [`Readers::read_now`]).
    async fn read_now<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.readers.read_now(f).await
    }
}

/// Moves queued jobs into `jobs`, up to [`MAX_BATCH`].
fn drain(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    committed: mpsc::Sender<Vec<Committed>>,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut cache = WriterCache::default();
    while let Some(first) = rx.blocking_recv() {
        jobs.push(first);
        drain(&mut rx, &mut jobs);
        // Let whatever is ready to run elsewhere (on a shared core, the connections
        // handing over more writes) go first, then take what it queued too, for as long
        // as that brings more: fewer, larger commits write each index page once for more
        // messages, and the fan-out then hands each connection more messages per
        // wake-up. A yield returns at once when nothing else is waiting for the CPU.
        for _ in 0..YIELDS {
            if jobs.len() >= MAX_BATCH / 4 {
                break;
            }
            let before = jobs.len();
            std::thread::yield_now();
            drain(&mut rx, &mut jobs);
            if jobs.len() == before {
                break;
            }
        }
        let mut events = Vec::new();
        let mut completions = Vec::with_capacity(jobs.len());
        let mut pending = jobs.drain(..);
        let outcome = (|| -> StoreResult<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in pending.by_ref() {
                let mark = events.len();
                let savepoint = !job.one_statement;
                // Prepared once per connection: parsing these again for every job was
                // ~11% of the writer's time under load.
                if savepoint {
                    tx.prepare_cached("SAVEPOINT job")?.execute([])?;
                }
                cache.start_job();
                let (ok, done) = (job.run)(Some((&tx, &mut events, &mut cache)));
                completions.push(done);
                if ok {
                    if savepoint {
                        tx.prepare_cached("RELEASE job")?.execute([])?;
                    }
                } else {
                    events.truncate(mark);
                    cache.undo_job();
                    if savepoint {
                        tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                        tx.prepare_cached("RELEASE job")?.execute([])?;
                    }
                }
                // After some errors (a full disk, I/O) SQLite rolls back the whole
                // transaction, not just the statement: then nothing of the batch is
                // stored and every job in it must hear so. (With a savepoint, the
                // `ROLLBACK TO` above fails the same way.)
                if tx.is_autocommit() {
                    return Err(StoreError::Unavailable(
                        "the write transaction was rolled back".into(),
                    ));
                }
            }
            cache.write_back(&tx)?;
            Ok(tx.commit()?)
        })();
        // The jobs whose turn never came (the batch failed first) hear the batch's error
        // with the others, not a dropped reply.
        for job in pending {
            let (_, done) = (job.run)(None);
            completions.push(done);
        }
        match outcome {
            Ok(()) => {
                // One batch per transaction: one wake-up of the fan-out, which then
                // queues every message for each connection before waking it once. Sent
                // before the acks are released so that a sender's connection usually
                // finds its ack and the deliveries of the same commit ready together and
                // writes them at once (the ack first).
                if !events.is_empty() {
                    let _ = committed.blocking_send(events);
                }
                for done in completions {
                    done(None);
                }
            }
            Err(err) => {
                cache.forget_all();
                tracing::error!(error = %err, "write transaction failed; nothing in it was stored");
                for done in completions {
                    done(Some(err.clone()));
                }
            }
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        is_admin: row.get(3)?,
        disabled: row.get(4)?,
    })
}

const MESSAGE_COLUMNS: &str = "m.id, m.conversation_id, m.seq, u.username, m.text, m.sent_at, \
     m.client_id, m.event, m.attachments";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        conversation_id: row.get(1)?,
        seq: row.get(2)?,
        sender: row.get(3)?,
        text: row.get(4)?,
        sent_at: from_micros(row.get(5)?),
        client_id: row.get(6)?,
        event: row
            .get::<_, Option<String>>(7)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        attachments: row
            .get::<_, Option<String>>(8)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
    })
}

fn role_from_str(s: &str) -> Role {
    match s {
        "owner" => Role::Owner,
        "admin" => Role::Admin,
        _ => Role::Member,
    }
}

fn message_by_id(conn: &Connection, id: MessageId) -> rusqlite::Result<Message> {
    conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id WHERE m.id = ?1"
    ))?
    .query_row([id], message_from_row)
}

fn member_ids(conn: &Connection, conversation: ConversationId) -> rusqlite::Result<Vec<UserId>> {
    let mut stmt = conn.prepare_cached("SELECT user_id FROM members WHERE conversation_id = ?1")?;
    let rows = stmt.query_map([conversation], |r| r.get(0))?;
    rows.collect()
}

fn member_count(conn: &Connection, conversation: ConversationId) -> rusqlite::Result<usize> {
    conn.prepare_cached("SELECT COUNT(*) FROM members WHERE conversation_id = ?1")?
        .query_row([conversation], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
}

fn conversation_query(filter: &str) -> String {
    format!(
        "SELECT c.id, c.kind, c.name, c.last_seq, c.last_activity,
                (SELECT COUNT(*) FROM members m2 WHERE m2.conversation_id = c.id),
                COALESCE((SELECT u.username FROM members m3 JOIN users u ON u.id = m3.user_id
                          WHERE m3.conversation_id = c.id AND m3.user_id != ?1 LIMIT 1),
                         (SELECT username FROM users WHERE id = ?1))
         FROM members m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.user_id = ?1 {filter}"
    )
}

fn conversation_from_row(row: &Row<'_>) -> rusqlite::Result<ConversationInfo> {
    let kind: String = row.get(1)?;
    let kind = if kind == "direct" {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    };
    let peer: Option<String> = row.get(6)?;
    Ok(ConversationInfo {
        id: row.get(0)?,
        kind,
        name: row.get(2)?,
        peer: if kind == ConversationKind::Direct {
            peer
        } else {
            None
        },
        last_seq: row.get(3)?,
        last_activity: from_micros(row.get(4)?),
        member_count: row.get::<_, i64>(5)? as u32,
    })
}

fn is_member(conn: &Connection, conversation: ConversationId, user: UserId) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM members WHERE conversation_id = ?1 AND user_id = ?2)",
        )?
        .query_row([conversation, user], |r| r.get(0))?)
}

fn settings_of(conn: &Connection, user: UserId) -> rusqlite::Result<Settings> {
    Ok(conn
        .prepare_cached(
            "SELECT read_receipts, do_not_disturb FROM user_settings WHERE user_id = ?1",
        )?
        .query_row([user], |r| {
            Ok(Settings {
                read_receipts: r.get(0)?,
                do_not_disturb: r.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

/// The user's state in their conversations (all, or `only`). `online` is left 0.
fn states_of(
    conn: &Connection,
    user: UserId,
    only: Option<ConversationId>,
) -> rusqlite::Result<Vec<ConversationState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.last_seq, COALESCE(mk.read_seq, 0),
                (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id
                   AND m.seq > COALESCE(mk.read_seq, 0) AND m.sender_id != ?1
                   AND m.event IS NULL),
                mu.user_id IS NOT NULL, mu.muted_until
         FROM members mb JOIN conversations c ON c.id = mb.conversation_id
         LEFT JOIN markers mk ON mk.conversation_id = c.id AND mk.user_id = ?1
         LEFT JOIN mutes mu ON mu.conversation_id = c.id AND mu.user_id = ?1
         WHERE mb.user_id = ?1 AND (?2 IS NULL OR c.id = ?2)
         ORDER BY c.id",
    )?;
    let now = now_micros();
    let rows = stmt.query_map(params![user, only], |r| {
        let has_mute: bool = r.get(4)?;
        let until: Option<i64> = r.get(5)?;
        let muted = has_mute && until.is_none_or(|u| u > now);
        Ok(ConversationState {
            conversation_id: r.get(0)?,
            last_seq: r.get(1)?,
            read_seq: r.get(2)?,
            unread: r.get::<_, i64>(3)?.max(0) as u64,
            muted,
            muted_until: if muted { until.map(from_micros) } else { None },
            online: 0,
        })
    })?;
    rows.collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_user(&self, username: &str, password_hash: &str) -> StoreResult<UserRecord> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(move |conn, _| accounts::insert_user(conn, &username, &hash))
            .await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read_now(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, username, password_hash, is_admin, disabled FROM users WHERE username = ?1",
                )?
                .query_row([&username], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn create_session(
        &self,
        user_id: UserId,
        token_hash: [u8; 32],
        device: Option<String>,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let expires = (expires_at.unix_timestamp_nanos() / 1000) as i64;
        self.write(move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO sessions (user_id, token_hash, device, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                user_id,
                &token_hash[..],
                device,
                now_micros(),
                expires
            ])?;
            Ok(())
        })
        .await
    }

    async fn session_user(&self, token_hash: [u8; 32]) -> StoreResult<Option<UserRecord>> {
        self.read_now(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT u.id, u.username, u.password_hash, u.is_admin, u.disabled
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                )?
                .query_row(params![&token_hash[..], now_micros()], user_from_row)
                .optional()?)
        })
        .await
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.write(move |conn, _| {
            conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?
                .execute([&token_hash[..]])?;
            Ok(())
        })
        .await
    }

    async fn open_direct(&self, a: UserId, b: UserId) -> StoreResult<ConversationId> {
        let key = format!("{}:{}", a.min(b), a.max(b));
        self.write_cached(move |conn, _, cache| {
            if let Some(id) = conn
                .prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")?
                .query_row([&key], |r| r.get(0))
                .optional()?
            {
                return Ok(id);
            }
            let now = now_micros();
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO conversations (kind, direct_key, last_activity, created_at)
                     VALUES ('direct', ?1, ?2, ?2) RETURNING id",
                )?
                .query_row(params![key, now], |r| r.get(0))?;
            let mut add = conn.prepare_cached(
                "INSERT OR IGNORE INTO members (conversation_id, user_id, role, joined_at)
                 VALUES (?1, ?2, 'member', ?3)",
            )?;
            add.execute(params![id, a, now])?;
            add.execute(params![id, b, now])?;
            // A new id, but ids of deleted conversations can come back.
            cache.forget_members(id);
            Ok(id)
        })
        .await
    }

    async fn create_group(
        &self,
        owner: UserId,
        name: &str,
        members: &[UserId],
    ) -> StoreResult<ConversationId> {
        let (name, members) = (name.to_owned(), members.to_vec());
        self.write_cached(move |conn, _, cache| {
            let exists: bool = conn
                .prepare_cached("SELECT EXISTS(SELECT 1 FROM conversations WHERE name = ?1)")?
                .query_row([&name], |r| r.get(0))?;
            if exists {
                return Err(StoreError::NameTaken);
            }
            let now = now_micros();
            let id: i64 = conn
                .prepare_cached(
                    "INSERT INTO conversations (kind, name, last_activity, created_at)
                     VALUES ('group', ?1, ?2, ?2) RETURNING id",
                )?
                .query_row(params![name, now], |r| r.get(0))?;
            let mut add = conn.prepare_cached(
                "INSERT OR IGNORE INTO members (conversation_id, user_id, role, joined_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            add.execute(params![id, owner, "owner", now])?;
            for m in members {
                add.execute(params![id, m, "member", now])?;
            }
            cache.forget_members(id);
            Ok(id)
        })
        .await
    }

    async fn group_id(&self, name: &str) -> StoreResult<Option<ConversationId>> {
        let name = name.to_owned();
        self.read_now(move |conn| {
            Ok(conn
                .prepare_cached("SELECT id FROM conversations WHERE kind = 'group' AND name = ?1")?
                .query_row([&name], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn role(&self, conversation: ConversationId, user: UserId) -> StoreResult<Option<Role>> {
        self.read_now(move |conn| {
            let role: Option<String> = conn
                .prepare_cached(
                    "SELECT role FROM members WHERE conversation_id = ?1 AND user_id = ?2",
                )?
                .query_row([conversation, user], |r| r.get(0))
                .optional()?;
            Ok(role.as_deref().map(role_from_str))
        })
        .await
    }

    async fn group_info(&self, conversation: ConversationId) -> StoreResult<GroupInfo> {
        self.read(move |conn| {
            let (name, created, topic): (String, i64, String) = conn
                .prepare_cached(
                    "SELECT name, created_at, topic FROM conversations WHERE id = ?1 AND kind = 'group'",
                )?
                .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let mut stmt = conn.prepare_cached(
                "SELECT u.username, m.role FROM members m JOIN users u ON u.id = m.user_id
                 WHERE m.conversation_id = ?1
                 ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.username",
            )?;
            let members = stmt
                .query_map([conversation], |r| {
                    Ok(MemberInfo { username: r.get(0)?, role: role_from_str(&r.get::<_, String>(1)?) })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(GroupInfo { id: conversation, name, created_at: from_micros(created), members, topic })
        })
        .await
    }

    async fn conversations(&self, user: UserId) -> StoreResult<Vec<ConversationInfo>> {
        self.read(move |conn| {
            let sql = conversation_query(
                "AND (c.kind = 'group' OR c.last_seq > 0) ORDER BY c.last_activity DESC, c.id DESC",
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([user], conversation_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn conversation(
        &self,
        user: UserId,
        conversation: ConversationId,
    ) -> StoreResult<Option<ConversationInfo>> {
        self.read(move |conn| {
            let sql = conversation_query("AND c.id = ?2");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([user, conversation], conversation_from_row)
                .optional()?)
        })
        .await
    }

    async fn insert_message(
        &self,
        sender: UserId,
        conversation: ConversationId,
        client_id: &str,
        text: &str,
        attachments: &[String],
    ) -> StoreResult<Stored> {
        let (client_id, text) = (client_id.to_owned(), text.to_owned());
        let attachment_ids = attachments.to_vec();
        let store = move |conn: &Connection,
                          events: &mut Vec<Committed>,
                          cache: &mut WriterCache| {
            // A client id stored before is answered with what was stored then, even if
            // the sender has left the conversation since (its retry must still clear).
            let earlier = |conn: &Connection| -> StoreResult<Option<Stored>> {
                let id: Option<i64> = conn
                    .prepare_cached(
                        "SELECT id FROM messages WHERE sender_id = ?1 AND client_id = ?2",
                    )?
                    .query_row(params![sender, client_id], |r| r.get(0))
                    .optional()?;
                Ok(match id {
                    Some(id) => Some(Stored {
                        message: SharedMessage::new(message_by_id(conn, id)?),
                        duplicate: true,
                    }),
                    None => None,
                })
            };
            let recipients = cache.members(conn, conversation)?;
            if !recipients.contains(&sender) {
                return earlier(conn)?.ok_or(StoreError::NotMember);
            }
            // Everything that can fail comes before the `INSERT`: without attachments
            // this job has no savepoint, so nothing may fail once the row is written.
            let username = cache.username(conn, sender)?.to_owned();
            let now = now_micros();
            let seq = cache.next_seq(conn, conversation, now)?;
            // The `INSERT` itself finds a client id stored before, in the unique index it
            // checks anyway: a lookup first cost every send a second search of that index
            // (~3 % of natterd's CPU under workload 2). Only that conflict is ignored; any
            // other is an error as before. Not `RETURNING id`: that makes SQLite keep a
            // statement journal (a copy of every page the statement first touches, ~2.5 %
            // of natterd's CPU under workload 2); the rowid of the one row inserted is the
            // same thing.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO messages (conversation_id, seq, sender_id, client_id, text, sent_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (client_id, sender_id) DO NOTHING",
                )?
                .execute(params![conversation, seq, sender, client_id, text, now])?;
            if inserted == 0 {
                // Nothing was written: the sequence number goes back unused.
                cache.undo_changes();
                return earlier(conn)?.ok_or_else(|| {
                    StoreError::Database("a send conflicted with no stored message".into())
                });
            }
            let id = conn.last_insert_rowid();
            let attachments = if attachment_ids.is_empty() {
                Vec::new()
            } else {
                let list = files::attach(conn, sender, id, &attachment_ids)?;
                let json = serde_json::to_string(&list)
                    .map_err(|e| StoreError::Database(e.to_string()))?;
                conn.prepare_cached("UPDATE messages SET attachments = ?2 WHERE id = ?1")?
                    .execute(params![id, json])?;
                list
            };
            let message = SharedMessage::new(Message {
                id,
                conversation_id: conversation,
                seq,
                sender: username,
                text,
                sent_at: from_micros(now),
                client_id,
                event: None,
                attachments,
            });
            events.push(Committed::Message(CommittedMessage {
                message: message.clone(),
                recipients: recipients.to_vec(),
                sender: Some(sender),
            }));
            Ok(Stored {
                message,
                duplicate: false,
            })
        };
        // Without attachments the only write is the `INSERT`.
        if attachments.is_empty() {
            self.write_one_statement(store).await
        } else {
            self.write_cached(store).await
        }
    }

    async fn history(
        &self,
        conversation: ConversationId,
        before: Option<i64>,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<HistoryPage> {
        let page = move |conn: &Connection| {
            let base = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
                 WHERE m.conversation_id = ?1"
            );
            let fetch = i64::from(limit) + 1;
            let (sql, descending) = match (before, after) {
                (_, Some(_)) => (
                    format!("{base} AND m.seq > ?3 AND m.seq < ?2 ORDER BY m.seq ASC LIMIT ?4"),
                    false,
                ),
                (_, None) => (
                    format!("{base} AND m.seq < ?2 AND m.seq > ?3 ORDER BY m.seq DESC LIMIT ?4"),
                    true,
                ),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    conversation,
                    before.unwrap_or(i64::MAX),
                    after.unwrap_or(0),
                    fetch
                ],
                message_from_row,
            )?;
            let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            if descending {
                messages.reverse();
            }
            Ok(HistoryPage { messages, has_more })
        };
        // A page is a range of one index: small pages are read on the spot.
        if limit <= readers::INLINE_ROWS {
            self.read_now(page).await
        } else {
            self.read(page).await
        }
    }

    async fn sync(&self, user: UserId, after: MessageId, limit: u32) -> StoreResult<SyncPage> {
        self.read(move |conn| {
            // Within a conversation seq and id rise together, so "id after the cursor"
            // is "seq after the last message at or before the cursor": found by walking
            // the conversation's (conversation_id, seq) index back from its end over just
            // the messages that are new (the index holds the id), then read as one range
            // of that index. (Migration 0007 dropped the (conversation_id, id) index.)
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS}
                 FROM members mb
                 JOIN messages m ON m.conversation_id = mb.conversation_id
                 JOIN users u ON u.id = m.sender_id
                 WHERE mb.user_id = ?1
                   AND m.seq > COALESCE((SELECT p.seq FROM messages p
                                         WHERE p.conversation_id = mb.conversation_id AND p.id <= ?2
                                         ORDER BY p.seq DESC LIMIT 1), 0)
                 ORDER BY m.id LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows =
                stmt.query_map(params![user, after, i64::from(limit) + 1], message_from_row)?;
            let mut messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            let cursor = messages.last().map_or(after, |m| m.id);
            Ok(SyncPage {
                messages,
                has_more,
                cursor,
            })
        })
        .await
    }

    async fn head(&self, user: UserId) -> StoreResult<MessageId> {
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    // The last message by seq is the last by id (see `sync`).
                    "SELECT COALESCE(MAX((SELECT id FROM messages WHERE conversation_id = mb.conversation_id
                                          ORDER BY seq DESC LIMIT 1)), 0)
                     FROM members mb WHERE mb.user_id = ?1",
                )?
                .query_row([user], |r| r.get(0))?)
        })
        .await
    }

    async fn members(&self, conversation: ConversationId) -> StoreResult<Vec<UserId>> {
        self.live_members(conversation).await
    }

    async fn contacts(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, UserId, String)>> {
        self.live_contacts(users).await
    }

    async fn presence_audience(
        &self,
        users: &[UserId],
        max_members: usize,
    ) -> StoreResult<Vec<(UserId, UserId)>> {
        let users = users.to_vec();
        let max = max_members as i64;
        self.read(move |conn| {
            let mut out = Vec::new();
            for chunk in users.chunks(500) {
                // Numbered, since the list appears twice.
                let marks = (1..=chunk.len())
                    .map(|i| format!("?{i}"))
                    .collect::<Vec<_>>()
                    .join(",");
                // The conversations of these users that are small enough, then their members.
                let sql = format!(
                    "WITH small AS (
                         SELECT m.conversation_id FROM members m
                         WHERE m.conversation_id IN (SELECT conversation_id FROM members WHERE user_id IN ({marks}))
                         GROUP BY m.conversation_id HAVING COUNT(*) <= ?{n})
                     SELECT DISTINCT a.user_id, b.user_id FROM members a
                     JOIN small s ON s.conversation_id = a.conversation_id
                     JOIN members b ON b.conversation_id = a.conversation_id AND b.user_id != a.user_id
                     WHERE a.user_id IN ({marks})",
                    n = chunk.len() + 1
                );
                let mut params: Vec<i64> = chunk.to_vec();
                params.push(max);
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn co_members(&self, user: UserId) -> StoreResult<Vec<(ConversationId, UserId)>> {
        self.live_co_members(user).await
    }

    async fn advance_markers(
        &self,
        user: UserId,
        conversation: ConversationId,
        delivered: Option<Seq>,
        read: Option<Seq>,
    ) -> StoreResult<MarkerUpdate> {
        self.live_advance_markers(user, conversation, delivered, read)
            .await
    }

    async fn conversation_states(
        &self,
        user: UserId,
        conversation: Option<ConversationId>,
    ) -> StoreResult<Vec<ConversationState>> {
        self.live_conversation_states(user, conversation).await
    }

    async fn message_receipts(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Option<Seq>,
    ) -> StoreResult<MessageReceipts> {
        self.live_message_receipts(user, conversation, seq).await
    }

    async fn set_mute(
        &self,
        user: UserId,
        conversation: ConversationId,
        mute: Option<Option<OffsetDateTime>>,
    ) -> StoreResult<()> {
        self.live_set_mute(user, conversation, mute).await
    }

    async fn settings(&self, user: UserId) -> StoreResult<Settings> {
        self.live_settings(user).await
    }

    async fn update_settings(&self, user: UserId, update: SettingsUpdate) -> StoreResult<Settings> {
        self.live_update_settings(user, update).await
    }
}

/// The live layer, split from the core impl for reading. Each method documents itself in
/// the trait.
impl SqliteStore {
    async fn live_members(&self, conversation: ConversationId) -> StoreResult<Vec<UserId>> {
        self.read(move |conn| Ok(member_ids(conn, conversation)?))
            .await
    }

    async fn live_contacts(&self, users: &[UserId]) -> StoreResult<Vec<(UserId, UserId, String)>> {
        let users = users.to_vec();
        self.read(move |conn| {
            let mut out = Vec::new();
            // Bounded batches of bound parameters.
            for chunk in users.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT DISTINCT a.user_id, b.user_id, u.username FROM members a
                     JOIN members b ON b.conversation_id = a.conversation_id AND b.user_id != a.user_id
                     JOIN users u ON u.id = b.user_id
                     WHERE a.user_id IN ({marks})"
                );
                let mut stmt = conn.prepare(&sql)?;
                let rows = stmt.query_map(rusqlite::params_from_iter(chunk.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                for row in rows {
                    out.push(row?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn live_co_members(&self, user: UserId) -> StoreResult<Vec<(ConversationId, UserId)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT b.conversation_id, b.user_id FROM members a
                 JOIN members b ON b.conversation_id = a.conversation_id
                 WHERE a.user_id = ?1",
            )?;
            let rows = stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn live_advance_markers(
        &self,
        user: UserId,
        conversation: ConversationId,
        delivered: Option<Seq>,
        read: Option<Seq>,
    ) -> StoreResult<MarkerUpdate> {
        self.write_cached(move |conn, events, cache| {
            if !is_member(conn, conversation, user)? {
                return Err(StoreError::NotMember);
            }
            let last_seq = cache.last_seq(conn, conversation)?;
            let (old_d, old_r): (i64, i64) = conn
                .prepare_cached(
                    "SELECT delivered_seq, read_seq FROM markers WHERE conversation_id = ?1 AND user_id = ?2",
                )?
                .query_row([conversation, user], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or((0, 0));
            let want_r = read.unwrap_or(0).clamp(0, last_seq);
            let want_d = delivered.unwrap_or(0).max(want_r).clamp(0, last_seq);
            let (new_d, new_r) = (old_d.max(want_d), old_r.max(want_r));
            let mut update = MarkerUpdate { read_moved: None, receipts: Vec::new() };
            if (new_d, new_r) == (old_d, old_r) {
                return Ok(update);
            }
            conn.prepare_cached(
                "INSERT INTO markers (conversation_id, user_id, delivered_seq, read_seq)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (conversation_id, user_id) DO UPDATE SET
                   delivered_seq = MAX(delivered_seq, excluded.delivered_seq),
                   read_seq = MAX(read_seq, excluded.read_seq)",
            )?
            .execute(params![conversation, user, new_d, new_r])?;
            let username: String = conn
                .prepare_cached("SELECT username FROM users WHERE id = ?1")?
                .query_row([user], |r| r.get(0))?;
            let of = member_count(conn, conversation)?.saturating_sub(1) as u32;
            let mine = settings_of(conn, user)?;
            for (kind, old, new) in [
                (ReceiptKind::Delivered, old_d, new_d),
                (ReceiptKind::Read, old_r, new_r),
            ] {
                // Someone who turned read receipts off sends none.
                if new <= old || (kind == ReceiptKind::Read && !mine.read_receipts) {
                    continue;
                }
                let authors: Vec<(UserId, Seq)> = {
                    let mut stmt = conn.prepare_cached(
                        "SELECT m.sender_id, MAX(m.seq) FROM messages m
                         JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = m.sender_id
                         WHERE m.conversation_id = ?1 AND m.seq > ?2 AND m.seq <= ?3 AND m.sender_id != ?4
                           AND m.event IS NULL
                         GROUP BY m.sender_id",
                    )?;
                    let rows = stmt.query_map(params![conversation, old, new, user], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for (author, message_seq) in authors {
                    // ... and sees none from others.
                    if kind == ReceiptKind::Read && !settings_of(conn, author)?.read_receipts {
                        continue;
                    }
                    let count: i64 = conn
                        .prepare_cached(
                            "SELECT COUNT(*) FROM markers mk
                             JOIN members mb ON mb.conversation_id = mk.conversation_id AND mb.user_id = mk.user_id
                             LEFT JOIN user_settings us ON us.user_id = mk.user_id
                             WHERE mk.conversation_id = ?1 AND mk.user_id != ?2
                               AND (CASE WHEN ?4 THEN mk.read_seq ELSE mk.delivered_seq END) >= ?3
                               AND (NOT ?4 OR COALESCE(us.read_receipts, 1) = 1)",
                        )?
                        .query_row(
                            params![conversation, author, message_seq, kind == ReceiptKind::Read],
                            |r| r.get(0),
                        )?;
                    update.receipts.push((
                        author,
                        Receipt {
                            conversation_id: conversation,
                            kind,
                            user: username.clone(),
                            seq: new,
                            message_seq,
                            count: count as u32,
                            of,
                        },
                    ));
                }
            }
            if new_r > old_r {
                // `states_of` reads `last_seq` from the row: write this transaction's now
                // (only here, so that a delivered-only update writes nothing extra).
                cache.write_back_one(conn, conversation)?;
                update.read_moved = states_of(conn, user, Some(conversation))?.pop();
            }
            if !update.receipts.is_empty() {
                events.push(Committed::Receipts(update.receipts.clone()));
            }
            Ok(update)
        })
        .await
    }

    async fn live_conversation_states(
        &self,
        user: UserId,
        conversation: Option<ConversationId>,
    ) -> StoreResult<Vec<ConversationState>> {
        self.read(move |conn| Ok(states_of(conn, user, conversation)?))
            .await
    }

    async fn live_message_receipts(
        &self,
        user: UserId,
        conversation: ConversationId,
        seq: Option<Seq>,
    ) -> StoreResult<MessageReceipts> {
        self.read(move |conn| {
            if !is_member(conn, conversation, user)? {
                return Err(StoreError::NotMember);
            }
            let seq: Seq = match seq {
                Some(seq) => conn
                    .prepare_cached(
                        "SELECT seq FROM messages WHERE conversation_id = ?1 AND seq = ?2 AND sender_id = ?3 AND event IS NULL",
                    )?
                    .query_row([conversation, seq, user], |r| r.get(0))
                    .optional()?,
                None => conn
                    .prepare_cached(
                        "SELECT MAX(seq) FROM messages WHERE conversation_id = ?1 AND sender_id = ?2 AND event IS NULL",
                    )?
                    .query_row([conversation, user], |r| r.get(0))?,
            }
            .ok_or(StoreError::NotFound)?;
            let names = |read: bool| -> rusqlite::Result<Vec<String>> {
                let mut stmt = conn.prepare_cached(
                    "SELECT u.username FROM markers mk
                     JOIN members mb ON mb.conversation_id = mk.conversation_id AND mb.user_id = mk.user_id
                     JOIN users u ON u.id = mk.user_id
                     LEFT JOIN user_settings us ON us.user_id = mk.user_id
                     WHERE mk.conversation_id = ?1 AND mk.user_id != ?2
                       AND (CASE WHEN ?4 THEN mk.read_seq ELSE mk.delivered_seq END) >= ?3
                       AND (NOT ?4 OR COALESCE(us.read_receipts, 1) = 1)
                     ORDER BY u.username",
                )?;
                let rows = stmt.query_map(params![conversation, user, seq, read], |r| r.get(0))?;
                rows.collect()
            };
            let delivered_to = names(false)?;
            let read_by = if settings_of(conn, user)?.read_receipts {
                names(true)?
            } else {
                Vec::new()
            };
            Ok(MessageReceipts {
                conversation_id: conversation,
                seq,
                delivered_to,
                read_by,
                of: member_count(conn, conversation)?.saturating_sub(1) as u32,
            })
        })
        .await
    }

    async fn live_set_mute(
        &self,
        user: UserId,
        conversation: ConversationId,
        mute: Option<Option<OffsetDateTime>>,
    ) -> StoreResult<()> {
        self.write(move |conn, _| {
            if !is_member(conn, conversation, user)? {
                return Err(StoreError::NotMember);
            }
            match mute {
                Some(until) => {
                    let until = until.map(|t| (t.unix_timestamp_nanos() / 1000) as i64);
                    conn.prepare_cached(
                        "INSERT INTO mutes (user_id, conversation_id, muted_until) VALUES (?1, ?2, ?3)
                         ON CONFLICT (user_id, conversation_id) DO UPDATE SET muted_until = excluded.muted_until",
                    )?
                    .execute(params![user, conversation, until])?;
                }
                None => {
                    conn.prepare_cached("DELETE FROM mutes WHERE user_id = ?1 AND conversation_id = ?2")?
                        .execute([user, conversation])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn live_settings(&self, user: UserId) -> StoreResult<Settings> {
        self.read(move |conn| Ok(settings_of(conn, user)?)).await
    }

    async fn live_update_settings(
        &self,
        user: UserId,
        update: SettingsUpdate,
    ) -> StoreResult<Settings> {
        self.write(move |conn, _| {
            let old = settings_of(conn, user)?;
            let new = Settings {
                read_receipts: update.read_receipts.unwrap_or(old.read_receipts),
                do_not_disturb: update.do_not_disturb.unwrap_or(old.do_not_disturb),
            };
            conn.prepare_cached(
                "INSERT INTO user_settings (user_id, read_receipts, do_not_disturb) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET
                   read_receipts = excluded.read_receipts, do_not_disturb = excluded.do_not_disturb",
            )?
            .execute(params![user, new.read_receipts, new.do_not_disturb])?;
            Ok(new)
        })
        .await
    }
}

/// Shares one store between the domain and whoever else needs it.
pub fn shared(store: SqliteStore) -> Arc<dyn Store> {
    Arc::new(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        store: SqliteStore,
        committed: mpsc::Receiver<Vec<Committed>>,
        _writer: WriterThread,
        dir: tempfile::TempDir,
    }

    /// Closes the store (its writer finishes the last transaction) and opens it again.
    fn reopen(f: Fixture) -> Fixture {
        let Fixture {
            store,
            _writer,
            dir,
            ..
        } = f;
        drop(store);
        _writer.join();
        open_in(dir)
    }

    fn open_in(dir: tempfile::TempDir) -> Fixture {
        let (tx, committed) = mpsc::channel(1024);
        let (store, writer) =
            SqliteStore::open(&dir.path().join("t.db"), Durability::Normal, 2, tx).unwrap();
        Fixture {
            store,
            committed,
            _writer: writer,
            dir,
        }
    }

    fn fixture() -> Fixture {
        open_in(tempfile::tempdir().unwrap())
    }

    async fn users(s: &SqliteStore, names: &[&str]) -> Vec<UserId> {
        let mut ids = Vec::new();
        for n in names {
            ids.push(s.create_user(n, "hash").await.unwrap().id);
        }
        ids
    }

    #[tokio::test]
    async fn first_user_is_admin_and_names_are_unique() {
        let f = fixture();
        let a = f.store.create_user("alice", "h").await.unwrap();
        let b = f.store.create_user("bob", "h").await.unwrap();
        assert!(a.is_admin && !b.is_admin);
        assert!(matches!(
            f.store.create_user("alice", "h").await,
            Err(StoreError::NameTaken)
        ));
    }

    #[tokio::test]
    async fn sequences_ids_dedupe_and_commit_events() {
        let mut f = fixture();
        let ids = users(&f.store, &["alice", "bob", "carol"]).await;
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let dm = f.store.open_direct(a, b).await.unwrap();
        assert_eq!(
            f.store.open_direct(b, a).await.unwrap(),
            dm,
            "one direct conversation per pair"
        );
        let m1 = f
            .store
            .insert_message(a, dm, "c1", "one", &[])
            .await
            .unwrap();
        let m2 = f
            .store
            .insert_message(b, dm, "c1", "two", &[])
            .await
            .unwrap();
        assert_eq!((m1.message.seq, m2.message.seq), (1, 2));
        assert!(m2.message.id > m1.message.id);
        let again = f
            .store
            .insert_message(a, dm, "c1", "one", &[])
            .await
            .unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message, m1.message);
        assert!(matches!(
            f.store.insert_message(c, dm, "x", "hi", &[]).await,
            Err(StoreError::NotMember)
        ));
        let page = f.store.history(dm, None, None, 10).await.unwrap();
        assert_eq!(
            page.messages.len(),
            2,
            "the duplicate and the refused send stored nothing"
        );
        // Committed events arrive in commit order with the members as recipients, one
        // batch per transaction (each send above was its own).
        let e1 = f.committed.recv().await.unwrap();
        let e2 = f.committed.recv().await.unwrap();
        assert_eq!((e1.len(), e2.len()), (1, 1));
        let (e1, e2) = (e1[0].message().unwrap(), e2[0].message().unwrap());
        assert_eq!((e1.message.seq, e2.message.seq), (1, 2));
        let mut r = e1.recipients.clone();
        r.sort();
        assert_eq!(r, vec![a, b]);
        assert!(f.committed.try_recv().is_err());
    }

    #[tokio::test]
    async fn history_pages_both_ways_in_ascending_order() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob"]).await;
        let dm = f.store.open_direct(ids[0], ids[1]).await.unwrap();
        for i in 1..=25 {
            f.store
                .insert_message(ids[0], dm, &format!("c{i}"), &format!("m{i}"), &[])
                .await
                .unwrap();
        }
        let seqs = |p: &HistoryPage| p.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
        let latest = f.store.history(dm, None, None, 10).await.unwrap();
        assert_eq!(seqs(&latest), (16..=25).collect::<Vec<_>>());
        assert!(latest.has_more);
        let older = f.store.history(dm, Some(16), None, 10).await.unwrap();
        assert_eq!(seqs(&older), (6..=15).collect::<Vec<_>>());
        let oldest = f.store.history(dm, Some(6), None, 10).await.unwrap();
        assert_eq!(seqs(&oldest), (1..=5).collect::<Vec<_>>());
        assert!(!oldest.has_more);
        let newer = f.store.history(dm, None, Some(20), 3).await.unwrap();
        assert_eq!(seqs(&newer), vec![21, 22, 23]);
        assert!(newer.has_more);
    }

    #[tokio::test]
    async fn sync_returns_only_the_users_conversations_in_id_order() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob", "carol"]).await;
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let ab = f.store.open_direct(a, b).await.unwrap();
        let ac = f.store.open_direct(a, c).await.unwrap();
        let g = f.store.create_group(a, "ops", &[b]).await.unwrap();
        f.store
            .insert_message(a, ab, "1", "to bob", &[])
            .await
            .unwrap();
        f.store
            .insert_message(a, ac, "2", "to carol", &[])
            .await
            .unwrap();
        f.store
            .insert_message(b, g, "3", "in ops", &[])
            .await
            .unwrap();
        let page = f.store.sync(b, 0, 10).await.unwrap();
        let texts: Vec<_> = page.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, vec!["to bob", "in ops"]);
        assert_eq!(page.cursor, page.messages.last().unwrap().id);
        assert_eq!(f.store.head(b).await.unwrap(), page.cursor);
        let rest = f.store.sync(b, page.cursor, 10).await.unwrap();
        assert!(rest.messages.is_empty() && !rest.has_more);
        assert_eq!(rest.cursor, page.cursor);
    }

    #[tokio::test]
    async fn sync_from_any_cursor_pages_through_exactly_what_follows_it() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob", "carol"]).await;
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let ab = f.store.open_direct(a, b).await.unwrap();
        let ac = f.store.open_direct(a, c).await.unwrap();
        let g = f.store.create_group(a, "ops", &[b, c]).await.unwrap();
        // Interleaved unevenly, so that ids and seqs differ across conversations.
        let order = [
            ab, ab, ac, g, ab, ac, ac, ac, g, ab, g, g, ac, ab, ab, ab, g, ac,
        ];
        let mut all = Vec::new();
        for (i, conv) in order.iter().enumerate() {
            let m = f
                .store
                .insert_message(a, *conv, &format!("c{i}"), "x", &[])
                .await
                .unwrap()
                .message;
            all.push((m.id, m.conversation_id));
        }
        // Bob's: ab and the group (whose creation is a timeline entry too).
        let first_group_entry = f.store.sync(b, 0, 500).await.unwrap().messages;
        let mut mine: Vec<MessageId> = first_group_entry.iter().map(|m| m.id).collect();
        let expected: Vec<MessageId> = all
            .iter()
            .filter(|(_, conv)| *conv != ac)
            .map(|(id, _)| *id)
            .collect();
        assert!(mine.ends_with(&expected), "{mine:?} vs {expected:?}");
        mine.sort_unstable();
        // From every cursor, also ones in carol's conversation and before everything.
        let cursors = std::iter::once(0).chain(all.iter().map(|(id, _)| *id));
        for cursor in cursors {
            let want: Vec<MessageId> = mine.iter().copied().filter(|id| *id > cursor).collect();
            let mut got = Vec::new();
            let mut at = cursor;
            loop {
                let page = f.store.sync(b, at, 4).await.unwrap();
                assert!(page.messages.len() <= 4);
                got.extend(page.messages.iter().map(|m| m.id));
                at = page.cursor;
                if !page.has_more {
                    break;
                }
            }
            assert_eq!(got, want, "after {cursor}");
        }
        assert_eq!(f.store.head(b).await.unwrap(), *mine.last().unwrap());
        assert_eq!(f.store.head(c).await.unwrap(), all.last().unwrap().0);
    }

    #[tokio::test]
    async fn groups_roles_and_membership() {
        use crate::store::groups::{GroupChange, GroupStore};
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob", "carol"]).await;
        let g = f
            .store
            .create_group(ids[0], "ops", &[ids[1]])
            .await
            .unwrap();
        assert!(matches!(
            f.store.create_group(ids[1], "ops", &[]).await,
            Err(StoreError::NameTaken)
        ));
        assert_eq!(f.store.role(g, ids[0]).await.unwrap(), Some(Role::Owner));
        assert_eq!(f.store.role(g, ids[2]).await.unwrap(), None);
        let add = |users: Vec<UserId>, max| GroupChange::Add { users, max };
        let change = f
            .store
            .change_group(g, ids[0], add(vec![ids[1], ids[2]], 10))
            .await
            .unwrap();
        assert_eq!(
            change.added,
            vec![ids[2]],
            "existing members are not added twice"
        );
        assert!(matches!(
            f.store.change_group(g, ids[0], add(vec![], 2)).await,
            Err(StoreError::GroupFull(2))
        ));
        let info = f.store.group_info(g).await.unwrap();
        let names: Vec<_> = info.members.iter().map(|m| m.username.as_str()).collect();
        assert_eq!(names, vec!["alice", "bob", "carol"]);
        let removed = f
            .store
            .change_group(g, ids[0], GroupChange::Remove { user: ids[2] })
            .await
            .unwrap();
        assert_eq!(removed.removed, vec![ids[2]]);
        let event = removed.event.expect("a timeline event");
        assert_eq!(event.text, "alice removed carol");
        assert!(matches!(
            f.store
                .change_group(g, ids[0], GroupChange::Remove { user: ids[2] })
                .await,
            Err(StoreError::NotMember)
        ));
    }

    /// A retry of a stored send is answered with what was stored, takes no sequence
    /// number, and still clears after its sender has left the group (the outbox of a
    /// device that was offline meanwhile must not be stuck with it).
    #[tokio::test]
    async fn a_retried_send_uses_no_seq_and_is_answered_after_leaving() {
        use crate::store::groups::{GroupChange, GroupStore};
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob"]).await;
        let g = f
            .store
            .create_group(ids[0], "ops", &[ids[1]])
            .await
            .unwrap();
        let send = |who, client_id: &'static str, text: &'static str| {
            let store = f.store.clone();
            async move { store.insert_message(who, g, client_id, text, &[]).await }
        };
        let first = send(ids[1], "k1", "one").await.unwrap();
        assert!(!first.duplicate);
        let again = send(ids[1], "k1", "one").await.unwrap();
        assert!(again.duplicate);
        assert_eq!(again.message, first.message);
        // Another sender's same client id is another message.
        let other = send(ids[0], "k1", "two").await.unwrap();
        assert!(!other.duplicate);
        assert_eq!(
            other.message.seq,
            first.message.seq + 1,
            "no seq was skipped"
        );
        f.store
            .change_group(g, ids[1], GroupChange::Leave)
            .await
            .unwrap();
        let after = send(ids[1], "k1", "one").await.unwrap();
        assert!(after.duplicate);
        assert_eq!(after.message, first.message);
        assert!(matches!(
            send(ids[1], "k2", "new").await,
            Err(StoreError::NotMember)
        ));
        let next = send(ids[0], "k3", "three").await.unwrap();
        let page = f.store.history(g, None, None, 50).await.unwrap();
        let seqs: Vec<_> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=next.message.seq).collect::<Vec<_>>(), "no gaps");
        let texts: Vec<_> = page
            .messages
            .iter()
            .filter(|m| m.event.is_none())
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(texts, ["one", "two", "three"]);
    }

    /// Stores a message from `who` and returns its recipients as committed.
    async fn recipients_of_send(
        f: &mut Fixture,
        conversation: ConversationId,
        who: UserId,
    ) -> StoreResult<Vec<UserId>> {
        let client_id = format!("c{}", now_micros());
        let stored = f
            .store
            .insert_message(who, conversation, &client_id, "hi", &[])
            .await?;
        // The batch may come a moment after the ack; skip membership events before it.
        loop {
            let batch = f.committed.recv().await.expect("the writer is running");
            let mut messages = batch.iter().filter_map(Committed::message);
            if let Some(c) = messages.find(|c| c.message.id == stored.message.id) {
                let mut to = c.recipients.clone();
                to.sort();
                return Ok(to);
            }
        }
    }

    /// The writer caches members; every change of membership must show at once.
    #[tokio::test]
    async fn membership_changes_reach_the_writers_cache_at_once() {
        use crate::store::groups::{GroupChange, GroupStore};
        let mut f = fixture();
        let ids = users(&f.store, &["alice", "bob", "carol"]).await;
        let (a, b, c) = (ids[0], ids[1], ids[2]);
        let g = f.store.create_group(a, "ops", &[b]).await.unwrap();
        let not_member = |r: StoreResult<Vec<UserId>>| matches!(r, Err(StoreError::NotMember));
        assert_eq!(recipients_of_send(&mut f, g, a).await.unwrap(), vec![a, b]);
        assert!(not_member(recipients_of_send(&mut f, g, c).await));

        let add = GroupChange::Add {
            users: vec![c],
            max: 10,
        };
        f.store.change_group(g, a, add).await.unwrap();
        assert_eq!(
            recipients_of_send(&mut f, g, c).await.unwrap(),
            vec![a, b, c],
            "added: sends and receives at once"
        );

        f.store
            .change_group(g, a, GroupChange::Remove { user: b })
            .await
            .unwrap();
        assert_eq!(
            recipients_of_send(&mut f, g, a).await.unwrap(),
            vec![a, c],
            "removed: receives nothing more"
        );
        assert!(not_member(recipients_of_send(&mut f, g, b).await));

        f.store
            .change_group(g, c, GroupChange::Leave)
            .await
            .unwrap();
        assert!(not_member(recipients_of_send(&mut f, g, c).await));

        // A refused change (rolled back) leaves nobody behind in the cache.
        let over = GroupChange::Add {
            users: vec![b, c],
            max: 2,
        };
        assert!(matches!(
            f.store.change_group(g, a, over).await,
            Err(StoreError::GroupFull(2))
        ));
        assert!(not_member(recipients_of_send(&mut f, g, b).await));
        assert_eq!(recipients_of_send(&mut f, g, a).await.unwrap(), vec![a]);

        // A deleted group's id can come back for a new conversation: nothing of the old
        // membership may stick to it.
        f.store
            .change_group(g, a, GroupChange::Delete)
            .await
            .unwrap();
        let dm = f.store.open_direct(b, c).await.unwrap();
        assert_eq!(dm, g, "SQLite reuses the highest rowid after a delete");
        assert!(not_member(recipients_of_send(&mut f, dm, a).await));
        assert_eq!(recipients_of_send(&mut f, dm, b).await.unwrap(), vec![b, c]);
    }

    #[tokio::test]
    async fn committed_data_survives_reopening() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob"]).await;
        let dm = f.store.open_direct(ids[0], ids[1]).await.unwrap();
        f.store
            .insert_message(ids[0], dm, "c", "kept", &[])
            .await
            .unwrap();
        let f = reopen(f);
        let page = f.store.history(dm, None, None, 10).await.unwrap();
        assert_eq!(page.messages[0].text, "kept");
        assert_eq!(
            f.store
                .insert_message(ids[1], dm, "d", "next", &[])
                .await
                .unwrap()
                .message
                .seq,
            2
        );
    }

    #[tokio::test]
    async fn presence_reaches_only_through_small_enough_conversations() {
        let f = fixture();
        let ids = users(&f.store, &["a", "b", "c", "d"]).await;
        let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
        f.store.create_group(a, "big", &[b, c, d]).await.unwrap();
        f.store.open_direct(a, b).await.unwrap();
        let mut pairs = f.store.presence_audience(&[a, c], 3).await.unwrap();
        pairs.sort();
        // The group of 4 is over the limit of 3: only the direct conversation counts.
        assert_eq!(pairs, vec![(a, b)]);
        let mut pairs = f.store.presence_audience(&[a, c], 4).await.unwrap();
        pairs.sort();
        assert_eq!(pairs, vec![(a, b), (a, c), (a, d), (c, a), (c, b), (c, d)]);
        // Everyone who shares any conversation is still a contact (for GET /presence).
        assert_eq!(f.store.contacts(&[c]).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn sequence_numbers_stay_dense_when_jobs_in_a_batch_fail() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob"]).await;
        let (a, b) = (ids[0], ids[1]);
        let dm = f.store.open_direct(a, b).await.unwrap();
        // Queued together, so they share transactions; every third names an upload that
        // does not exist and is rolled back after it took a sequence number.
        let sends = (0..30).map(|i| {
            let store = f.store.clone();
            let files = if i % 3 == 0 {
                vec!["nope".to_string()]
            } else {
                Vec::new()
            };
            async move {
                store
                    .insert_message(a, dm, &format!("c{i}"), "x", &files)
                    .await
            }
        });
        let results = futures_util::future::join_all(sends).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::UnknownAttachment(_))))
            .count();
        assert_eq!(refused, 10);
        let mut seqs: Vec<Seq> = results.iter().flatten().map(|s| s.message.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "no gaps, no repeats");
        assert_eq!(
            f.store
                .history(dm, None, None, 50)
                .await
                .unwrap()
                .messages
                .len(),
            20
        );
        assert_eq!(f.store.conversations(b).await.unwrap()[0].last_seq, 20);
        // A marker moved right after a send (likely in the same transaction) sees it.
        let (sent, marked) = tokio::join!(
            f.store.insert_message(a, dm, "late", "y", &[]),
            f.store.advance_markers(b, dm, None, Some(99)),
        );
        assert_eq!(sent.unwrap().message.seq, 21);
        let state = marked.unwrap().read_moved.expect("the read marker moved");
        assert_eq!((state.last_seq, state.read_seq, state.unread), (21, 21, 0));
        // Written back before the commit: a fresh start reads it from the table.
        let f = reopen(f);
        assert_eq!(f.store.conversations(a).await.unwrap()[0].last_seq, 21);
        let next = f
            .store
            .insert_message(b, dm, "after", "z", &[])
            .await
            .unwrap();
        assert_eq!(next.message.seq, 22);
    }

    #[tokio::test]
    async fn a_deleted_groups_sequence_is_not_carried_to_the_next_conversation() {
        let f = fixture();
        let ids = users(&f.store, &["alice", "bob"]).await;
        use crate::store::groups::{GroupChange, GroupStore};
        let g = f.store.create_group(ids[0], "ops", &[]).await.unwrap();
        f.store
            .insert_message(ids[0], g, "c1", "x", &[])
            .await
            .unwrap();
        f.store
            .change_group(g, ids[0], GroupChange::Delete)
            .await
            .unwrap();
        // The deleted group's id is free again (no AUTOINCREMENT on conversations).
        let dm = f.store.open_direct(ids[0], ids[1]).await.unwrap();
        assert_eq!(dm, g, "SQLite hands out the highest id + 1 again");
        let first = f
            .store
            .insert_message(ids[0], dm, "c2", "y", &[])
            .await
            .unwrap();
        assert_eq!(first.message.seq, 1);
    }

    #[tokio::test]
    async fn migrating_to_time_ordered_keys_keeps_messages_files_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join("t.db")).unwrap();
            Migrations::from_slice(&MIGRATIONS[..5])
                .to_latest(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO users (id, username, password_hash, created_at)
                     VALUES (1, 'alice', 'x', 0), (2, 'bob', 'x', 0);
                 INSERT INTO conversations (id, kind, direct_key, last_seq, last_activity, created_at)
                     VALUES (1, 'direct', '1:2', 3, 0, 0);
                 INSERT INTO members (conversation_id, user_id, role, joined_at)
                     VALUES (1, 1, 'member', 0), (1, 2, 'member', 0);
                 INSERT INTO messages (conversation_id, seq, sender_id, client_id, text, sent_at)
                     VALUES (1, 1, 1, 'a', 'one', 0), (1, 2, 2, 'b', 'two', 0), (1, 3, 1, 'c', 'three', 0);
                 INSERT INTO blobs (hash, size, mime, created_at) VALUES ('h', 1, 'text/plain', 0);
                 INSERT INTO attachments (id, uploader_id, hash, name, created_at)
                     VALUES ('f1', 1, 'h', 'f.txt', 0);
                 INSERT INTO message_attachments (message_id, attachment_id, position)
                     VALUES (1, 'f1', 0);
                 DELETE FROM messages WHERE id = 3;",
            )
            .unwrap();
        }
        use crate::store::files::FileStore;
        let f = open_in(dir);
        let page = f.store.history(1, None, None, 10).await.unwrap();
        let texts: Vec<&str> = page.messages.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"]);
        assert!(
            f.store
                .insert_message(1, 1, "a", "one", &[])
                .await
                .unwrap()
                .duplicate
        );
        let next = f.store.insert_message(2, 1, "a", "new", &[]).await.unwrap();
        assert!(!next.duplicate, "the key is the pair (client id, sender)");
        // Id 3 (deleted) is never handed out again; 4 went to the retry above, which
        // counted against AUTOINCREMENT (SQLite draws the id before it finds the
        // conflict). Ids only ever rise; seq has no gaps.
        assert_eq!(
            (next.message.id, next.message.seq),
            (5, 4),
            "ids are never reused, even the deleted message's"
        );
        assert!(
            f.store
                .readable_attachment(2, "f1")
                .await
                .unwrap()
                .is_some(),
            "the file's link to its message survived the rebuild"
        );
    }

    /// Runs `n` one-statement jobs at once, so that they share transactions; job `i`
    /// runs `job(i, conn)`. Their results, in order.
    async fn one_statement_jobs<F>(store: &SqliteStore, n: usize, job: F) -> Vec<StoreResult<()>>
    where
        F: Fn(usize, &Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    {
        let job = Arc::new(job);
        futures_util::future::join_all((0..n).map(|i| {
            let job = job.clone();
            store.write_one_statement(move |conn, _, _| Ok(job(i, conn)?))
        }))
        .await
    }

    fn insert_user(conn: &Connection, name: &str) -> rusqlite::Result<()> {
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES (?1, 'h', 0)",
            [name],
        )
        .map(|_| ())
    }

    async fn exists(store: &SqliteStore, name: &str) -> bool {
        store.user_by_name(name).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn a_one_statement_job_whose_statement_fails_leaves_the_batch_whole() {
        let f = fixture();
        users(&f.store, &["taken"]).await;
        // Every third breaks the unique name, without a savepoint of its own.
        let results = one_statement_jobs(&f.store, 30, |i, conn| {
            let name = if i % 3 == 0 {
                "taken".to_string()
            } else {
                format!("u{i}")
            };
            insert_user(conn, &name)
        })
        .await;
        assert_eq!(results.iter().filter(|r| r.is_err()).count(), 10);
        for i in (0..30).filter(|i| i % 3 != 0) {
            assert!(exists(&f.store, &format!("u{i}")).await, "u{i} was stored");
        }
        // The writer goes on as before.
        users(&f.store, &["after"]).await;
    }

    #[tokio::test]
    async fn when_a_batch_fails_every_job_in_it_hears_why() {
        let f = fixture();
        // One job ends the transaction under the writer's feet (as SQLite does on a full
        // disk): every job of that batch fails with the batch's error, also those after
        // it whose turn never came, and none is told the store shut down.
        let results = one_statement_jobs(&f.store, 30, |i, conn| {
            if i == 10 {
                conn.execute_batch("ROLLBACK")
            } else {
                insert_user(conn, &format!("u{i}"))
            }
        })
        .await;
        assert!(results[10].is_err());
        for (i, r) in results.iter().enumerate() {
            let stored = exists(&f.store, &format!("u{i}")).await;
            match r {
                Ok(()) => assert!(stored, "u{i} was acknowledged, so it is stored"),
                Err(e) => {
                    assert!(!matches!(e, StoreError::Closed), "job {i}: {e}");
                    assert!(e.to_string().contains("rolled back"), "job {i}: {e}");
                    assert!(!stored, "u{i} failed, so it is not stored");
                }
            }
        }
        users(&f.store, &["after"]).await;
    }
}
