//! The read connections: a bounded set of SQLite connections that WAL mode lets run
//! beside the writer.
//!
//! A read runs one of two ways:
//! - [`Readers::read`] on a blocking thread, for reads whose size the caller does not
//!   bound (sync pages, searches, listings). Each such read is one hand-off to the
//!   blocking pool and back.
//! - [`Readers::read_now`] on the calling runtime thread, for lookups by key that touch a
//!   handful of pages (the session behind a token, a membership, a page of history).
//!   The hand-off to a blocking thread and back costs two context switches, more than
//!   such a read itself; a REST request makes two or three of them (perf put ~37 % of
//!   natterd in the scheduler under `natter-bench history`). An inline read never waits
//!   for a lock: its busy timeout is 0, and if it fails for any reason, or every
//!   connection is in use, it runs again through [`Readers::read`], which waits as usual.
//!   What it cannot avoid is a page that is not in the OS cache, or SQLite's own short
//!   retry while the WAL is being reset: the size bound ([`INLINE_ROWS`]) keeps such a
//!   read to a few pages.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

/// How long a read on a blocking thread waits for a lock (only a checkpoint that
/// truncates the WAL, at shutdown, or recovery after a crash makes a WAL reader wait).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most rows a read that returns a range (a history page) may ask for and still run
/// through [`Readers::read_now`]: SQLite reads 100 messages in ~0.1 ms (`sqlite3` `.timer`,
/// warm cache; 500 take ~0.25 ms).
pub(crate) const INLINE_ROWS: u32 = 100;

pub(crate) struct Readers {
    path: PathBuf,
    /// Connections not in use. There are never more than `permits` connections.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may exist: bounds concurrent reads (and open files).
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(crate) fn new(path: &Path, max: usize) -> Arc<Readers> {
        Arc::new(Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::with_capacity(max)),
            permits: Arc::new(Semaphore::new(max.max(1))),
        })
    }

    /// Runs `f` on a read connection on a blocking thread.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.take() {
                Some(conn) => conn,
                None => readers.open()?,
            };
            conn.busy_timeout(BUSY_TIMEOUT)?;
            let result = f(&conn);
            readers.give_back(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("a read failed: {e}")))?
    }

    /// Runs `f` on the calling thread when a connection is free, else (or when it fails)
    /// on a blocking thread: for small reads by key only (see the module docs).
    pub(crate) async fn read_now<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        if let Ok(permit) = self.permits.try_acquire()
            && let Some(conn) = self.take()
        {
            let result = conn.busy_timeout(Duration::ZERO).map_err(StoreError::from);
            // A read that panics fails like one on a blocking thread (its connection is
            // dropped) instead of unwinding through the request's task.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                result.and_then(|()| f(&conn))
            }));
            drop(permit);
            match result {
                Ok(Ok(value)) => {
                    self.give_back(conn);
                    return Ok(value);
                }
                Ok(Err(_)) => self.give_back(conn),
                Err(_) => return Err(StoreError::Database("a read failed: it panicked".into())),
            }
        }
        self.read(f).await
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    fn open(&self) -> StoreResult<Connection> {
        // Read-only: a bug in a read cannot write. WAL mode is a property of the file,
        // set by the writer before any reader opens it.
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        Ok(Connection::open_with_flags(&self.path, flags)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL database with one row, and its reader pool.
    fn fixture() -> (tempfile::TempDir, Arc<Readers>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        (dir, Readers::new(&path, 2))
    }

    /// [`fixture`] with one connection already open (the first read opens it).
    async fn warm() -> (tempfile::TempDir, Arc<Readers>) {
        let (dir, readers) = fixture();
        readers.read_now(value_and_thread).await.unwrap();
        (dir, readers)
    }

    fn value_and_thread(conn: &Connection) -> StoreResult<(i64, std::thread::ThreadId)> {
        let v = conn.query_row("SELECT v FROM t", [], |r| r.get(0))?;
        Ok((v, std::thread::current().id()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_read_runs_on_the_calling_thread_once_a_connection_is_open() {
        let (_dir, readers) = fixture();
        let here = std::thread::current().id();
        // No connection is open yet: the first read opens one on a blocking thread.
        let (v, first) = readers.read_now(value_and_thread).await.unwrap();
        assert_eq!(v, 7);
        assert_ne!(first, here);
        let (v, second) = readers.read_now(value_and_thread).await.unwrap();
        assert_eq!(v, 7);
        assert_eq!(second, here);
        let (_, pooled) = readers.read(value_and_thread).await.unwrap();
        assert_ne!(pooled, here);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_read_that_fails_on_the_spot_runs_again_off_the_runtime() {
        let (_dir, readers) = warm().await;
        let here = std::thread::current().id();
        // As a read that meets a lock would: it fails at once (busy timeout 0) where it
        // may not wait, and waits on a blocking thread.
        let (v, thread) = readers
            .read_now(move |conn| {
                if std::thread::current().id() == here {
                    let timeout: i64 = conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
                    assert_eq!(timeout, 0, "an inline read may not wait");
                    return Err(StoreError::Database("database is locked".into()));
                }
                value_and_thread(conn)
            })
            .await
            .unwrap();
        assert_eq!(v, 7);
        assert_ne!(thread, here);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_read_waits_its_turn_when_every_connection_is_busy() {
        let (_dir, readers) = warm().await;
        let here = std::thread::current().id();
        let held = readers.permits.clone().acquire_many_owned(2).await.unwrap();
        let read = tokio::spawn({
            let readers = readers.clone();
            async move { readers.read_now(value_and_thread).await }
        });
        tokio::task::yield_now().await;
        assert!(!read.is_finished(), "a read ran beyond the pool's bound");
        drop(held);
        let (v, thread) = read.await.unwrap().unwrap();
        assert_eq!(v, 7);
        assert_ne!(thread, here);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_small_read_that_panics_fails_with_an_error_and_the_pool_goes_on() {
        let (_dir, readers) = warm().await;
        let err = readers
            .read_now(|_| -> StoreResult<()> { panic!("a bug in a read") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let (v, _) = readers.read_now(value_and_thread).await.unwrap();
        assert_eq!(v, 7);
    }

    #[tokio::test]
    async fn read_connections_cannot_write() {
        let (_dir, readers) = fixture();
        let err = readers
            .read(|conn| Ok(conn.execute("DELETE FROM t", [])?))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
