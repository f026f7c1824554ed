//! Where file contents live: [`BlobStore`], content-addressed by BLAKE3 hash, and its
//! local-disk implementation [`LocalBlobs`].
//!
//! An upload is written to a staging area first ([`BlobStore::stage`]); only a complete
//! upload is moved under its hash ([`Staged::commit`]). Dropping a [`Staged`] without
//! committing deletes what was written, so an interrupted or refused upload leaves
//! nothing behind. The trait is shaped for an object store as well (stage to a multipart
//! upload, commit by completing it under the hash as key, read by range), which is what a
//! deployment with several nodes would plug in.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};

/// A stream of a blob's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a new blob whose hash is not known yet.
    async fn stage(&self) -> io::Result<Box<dyn Staged>>;
    /// Reads `range` of the blob `hash` (the caller keeps the range within its size).
    async fn read(&self, hash: &str, range: Range<u64>) -> io::Result<ByteStream>;
    /// True when a blob with this hash is stored.
    async fn contains(&self, hash: &str) -> io::Result<bool>;
}

/// A blob being written. Dropped without [`Staged::commit`], it is discarded.
#[async_trait]
pub trait Staged: Send {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Stores what was written under `hash`. When that hash is already stored the new
    /// copy is discarded: identical content is kept once.
    async fn commit(self: Box<Self>, hash: &str) -> io::Result<()>;
}

/// Blobs as files under a directory: `objects/ab/cd/abcd...` by hash, uploads in
/// progress under `staging/`.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

/// Writes are collected into chunks of this size before they go to the file.
const WRITE_BUFFER: usize = 1 << 20;
/// Reads hand out chunks of this size.
const READ_CHUNK: usize = 256 * 1024;

impl LocalBlobs {
    /// Opens (creating) the store under `root` and deletes uploads a crash left in
    /// staging.
    pub fn open(root: &Path) -> io::Result<LocalBlobs> {
        let staging = root.join("staging");
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(root.join("objects"))?;
        for entry in std::fs::read_dir(&staging)? {
            let path = entry?.path();
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a leftover upload");
            }
        }
        Ok(LocalBlobs {
            root: root.to_owned(),
        })
    }

    fn object_path(&self, hash: &str) -> io::Result<PathBuf> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a hash"));
        }
        Ok(self
            .root
            .join("objects")
            .join(&hash[0..2])
            .join(&hash[2..4])
            .join(hash))
    }

    /// Files in `objects/` (for tests and diagnostics).
    pub fn object_count(&self) -> io::Result<usize> {
        count_files(&self.root.join("objects"))
    }

    /// Files in `staging/` (for tests and diagnostics).
    pub fn staging_count(&self) -> io::Result<usize> {
        count_files(&self.root.join("staging"))
    }
}

fn count_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += count_files(&entry.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

struct LocalStaged {
    file: Option<BufWriter<tokio::fs::File>>,
    path: PathBuf,
    store: LocalBlobs,
    done: bool,
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if !self.done {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[async_trait]
impl Staged for LocalStaged {
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(chunk).await,
            None => Err(io::Error::other("upload already finished")),
        }
    }

    async fn commit(mut self: Box<Self>, hash: &str) -> io::Result<()> {
        let target = self.store.object_path(hash)?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("upload already finished"))?;
        file.flush().await?;
        let file = file.into_inner();
        file.sync_all().await?;
        drop(file);
        if tokio::fs::try_exists(&target).await? {
            // Stored before: keep the old copy (its hash is the same content).
            return Ok(()); // Drop removes the staged copy.
        }
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(&self.path, &target).await?;
        self.done = true;
        // The rename is durable once the directory is synced.
        if let Some(dir) = target.parent() {
            let dir = dir.to_owned();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(io::Error::other)??;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn stage(&self) -> io::Result<Box<dyn Staged>> {
        let mut name = [0u8; 16];
        getrandom::fill(&mut name).map_err(io::Error::other)?;
        let path = self.root.join("staging").join(hex::encode(name));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Box::new(LocalStaged {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            path,
            store: self.clone(),
            done: false,
        }))
    }

    async fn read(&self, hash: &str, range: Range<u64>) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.object_path(hash)?).await?;
        file.seek(io::SeekFrom::Start(range.start)).await?;
        let remaining = range.end.saturating_sub(range.start);
        let reader = file.take(remaining);
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader, READ_CHUNK,
        )))
    }

    async fn contains(&self, hash: &str) -> io::Result<bool> {
        tokio::fs::try_exists(self.object_path(hash)?).await
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    async fn read_all(store: &LocalBlobs, hash: &str, range: Range<u64>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut s = store.read(hash, range).await.unwrap();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn staged_blobs_are_stored_once_and_dropped_ones_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        let hash = blake3::hash(b"hello world").to_hex().to_string();
        for _ in 0..2 {
            let mut s = store.stage().await.unwrap();
            s.write(b"hello ").await.unwrap();
            s.write(b"world").await.unwrap();
            s.commit(&hash).await.unwrap();
        }
        assert_eq!(store.object_count().unwrap(), 1);
        assert_eq!(store.staging_count().unwrap(), 0);
        assert_eq!(read_all(&store, &hash, 0..11).await, b"hello world");
        assert_eq!(read_all(&store, &hash, 6..11).await, b"world");

        let mut s = store.stage().await.unwrap();
        s.write(b"partial").await.unwrap();
        assert_eq!(store.staging_count().unwrap(), 1);
        drop(s);
        assert_eq!(store.staging_count().unwrap(), 0);
        assert_eq!(store.object_count().unwrap(), 1);
    }

    #[tokio::test]
    async fn leftovers_in_staging_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("staging")).unwrap();
        std::fs::write(dir.path().join("staging/abc"), b"half an upload").unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        assert_eq!(store.staging_count().unwrap(), 0);
    }

    #[tokio::test]
    async fn only_hashes_name_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobs::open(dir.path()).unwrap();
        assert!(store.read("../../etc/passwd", 0..1).await.is_err());
        assert!(store.contains("zz").await.is_err());
    }
}
