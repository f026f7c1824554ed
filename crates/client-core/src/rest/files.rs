//! File transfer: streaming uploads and resumable, verified downloads.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use natter_protocol::{Attachment, ErrorCode, UploadQuery, human_size};
use reqwest::{Method, StatusCode, header};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::Rest;
use crate::error::Error;

/// Bytes moved so far, for a progress display. Called often; keep it cheap.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A whole transfer may take this long (a slow link and a large file); stalls are
/// caught by [`STALL_TIMEOUT`] instead.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// A download that receives nothing for this long is given up (and can be resumed).
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Upload chunk size.
const CHUNK: usize = 256 * 1024;

/// How a download went.
#[derive(Debug, Clone)]
pub struct DownloadReport {
    pub attachment: Attachment,
    pub path: PathBuf,
    /// Bytes that were already there from an interrupted download and were kept.
    pub resumed_from: u64,
    /// Bytes received this time.
    pub received: u64,
}

/// The suffix of an unfinished download.
const PART_SUFFIX: &str = ".natter-part";
/// Longest file name most file systems take, in bytes.
const MAX_NAME_BYTES: usize = 255;

/// Where an unfinished download of `dest` is kept: `NAME.natter-part` beside it. A name
/// too long to take the suffix (names may be up to 255 bytes) is cut first, on a
/// character boundary.
pub fn part_path(dest: &Path) -> PathBuf {
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let mut end = name.len().min(MAX_NAME_BYTES - PART_SUFFIX.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut part = if end == name.len() {
        dest.file_name().unwrap_or_default().to_os_string()
    } else {
        std::ffi::OsString::from(&name[..end])
    };
    part.push(PART_SUFFIX);
    dest.with_file_name(part)
}

impl Rest {
    /// Streams the file at `path` to the server under the name `name` (the server keeps
    /// a safe form of it). `progress` gets the bytes sent so far.
    pub async fn upload(
        &self,
        path: &Path,
        name: &str,
        progress: Option<Progress>,
    ) -> Result<Attachment, Error> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::io(
                format!("cannot send {}", path.display()),
                std::io::Error::other("not a regular file"),
            ));
        }
        let len = meta.len();
        let sent = Arc::new(AtomicU64::new(0));
        let stream = tokio_util::io::ReaderStream::with_capacity(file, CHUNK).map(move |chunk| {
            if let (Ok(c), Some(p)) = (&chunk, &progress) {
                p(sent.fetch_add(c.len() as u64, Ordering::Relaxed) + c.len() as u64);
            }
            chunk
        });
        let rb = self
            .request(Method::POST, &["files"])
            .query(&UploadQuery {
                name: name.to_owned(),
            })
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream))
            .timeout(TRANSFER_TIMEOUT);
        self.call(rb).await
    }

    /// What the server knows about attachment `id` (404 `not_found` unless the caller may
    /// download it).
    pub async fn attachment(&self, id: &str) -> Result<Attachment, Error> {
        self.get(&["files", id, "info"]).await
    }

    /// The PNG preview of an image attachment.
    pub async fn thumbnail(&self, id: &str) -> Result<Vec<u8>, Error> {
        let resp = self
            .execute(self.request(Method::GET, &["files", id, "thumbnail"]))
            .await?;
        Ok(resp
            .bytes()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_vec())
    }

    /// Downloads attachment `a` to `dest`. The bytes go to `dest.natter-part` first; an
    /// earlier partial download there is resumed with a `Range` request. The result is
    /// checked against the attachment's BLAKE3 hash before it is moved to `dest`; a
    /// mismatch deletes it and fails. `dest` is replaced only when `overwrite`.
    pub async fn download(
        &self,
        a: &Attachment,
        dest: &Path,
        overwrite: bool,
        progress: Option<Progress>,
    ) -> Result<DownloadReport, Error> {
        if !overwrite && tokio::fs::try_exists(dest).await.unwrap_or(false) {
            return Err(Error::Exists(dest.to_owned()));
        }
        let part = part_path(dest);
        let io = |what: &str, e| Error::io(format!("{what} {}", part.display()), e);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&part)
            .await
            .map_err(|e| io("cannot write", e))?;
        let mut have = file
            .metadata()
            .await
            .map_err(|e| io("cannot read", e))?
            .len();
        if have > a.size {
            have = 0;
        }
        // What is already there counts towards the hash.
        let mut hasher = blake3::Hasher::new();
        if have > 0 {
            let mut buf = vec![0u8; CHUNK];
            let mut left = have;
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = file
                    .read(&mut buf[..want])
                    .await
                    .map_err(|e| io("cannot read", e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
        }
        let mut rb = self
            .request(Method::GET, &["files", &a.id])
            .timeout(TRANSFER_TIMEOUT);
        if have > 0 {
            rb = rb
                .header(header::RANGE, format!("bytes={have}-"))
                .header(header::IF_RANGE, format!("\"{}\"", a.hash));
        }
        let resp = match self.execute(rb).await {
            // Complete already (the last run stopped before the check): nothing to fetch.
            Err(Error::Api { code, .. })
                if have == a.size && have > 0 && code == ErrorCode::BadRequest =>
            {
                None
            }
            other => Some(other?),
        };
        let mut resumed_from = 0;
        let mut received = 0u64;
        if let Some(resp) = resp {
            if resp.status() == StatusCode::PARTIAL_CONTENT {
                resumed_from = have;
                file.seek(SeekFrom::Start(have))
                    .await
                    .map_err(|e| io("cannot write", e))?;
            } else {
                // The whole file: start over.
                hasher = blake3::Hasher::new();
                file.set_len(0).await.map_err(|e| io("cannot write", e))?;
                file.seek(SeekFrom::Start(0))
                    .await
                    .map_err(|e| io("cannot write", e))?;
            }
            let mut stream = resp.bytes_stream();
            loop {
                let next = tokio::time::timeout(STALL_TIMEOUT, stream.next())
                    .await
                    .map_err(|_| Error::Unreachable {
                        url: self.server().to_owned(),
                        source: Some("the download stalled; run the same command to resume".into()),
                    })?;
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|e| self.unreachable(e))?;
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io("cannot write", e))?;
                received += chunk.len() as u64;
                if let Some(p) = &progress {
                    p(resumed_from + received);
                }
            }
        } else {
            resumed_from = have;
        }
        file.flush().await.map_err(|e| io("cannot write", e))?;
        file.sync_all().await.map_err(|e| io("cannot write", e))?;
        drop(file);
        let got = hasher.finalize().to_hex().to_string();
        let total = resumed_from + received;
        if total != a.size || got != a.hash {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(Error::Corrupt {
                name: a.name.clone(),
                detail: if total != a.size {
                    format!("got {} of {}", human_size(total), human_size(a.size))
                } else {
                    "its BLAKE3 hash does not match".into()
                },
            });
        }
        tokio::fs::rename(&part, dest)
            .await
            .map_err(|e| Error::io(format!("cannot move the download to {}", dest.display()), e))?;
        Ok(DownloadReport {
            attachment: a.clone(),
            path: dest.to_owned(),
            resumed_from,
            received,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_fit_the_file_system() {
        assert_eq!(
            part_path(Path::new("/d/build.log")),
            Path::new("/d/build.log.natter-part")
        );
        // A 255-byte name (what the server allows) still gets a part file it can create.
        let long = format!("{}.txt", "é".repeat(125));
        assert_eq!(long.len(), 254);
        let part = part_path(&Path::new("/d").join(&long));
        let name = part.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.ends_with("é.natter-part"), "{name}");
        assert_eq!(part.parent(), Some(Path::new("/d")));
    }
}
