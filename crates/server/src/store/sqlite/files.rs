//! [`FileStore`] for SQLite, and attaching uploads to a message inside the message's
//! own transaction.

use async_trait::async_trait;
use natter_protocol::{Attachment, MessageId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, now_micros};
use crate::store::files::{BlobMeta, FileStore};
use crate::store::{StoreError, StoreResult};

const ATTACHMENT_COLUMNS: &str =
    "a.id, a.name, b.size, b.mime, b.hash, b.width, b.height, b.thumbnail IS NOT NULL";

fn attachment_from_row(row: &Row<'_>) -> rusqlite::Result<Attachment> {
    Ok(Attachment {
        id: row.get(0)?,
        name: row.get(1)?,
        size: row.get::<_, i64>(2)? as u64,
        mime: row.get(3)?,
        hash: row.get(4)?,
        width: row.get(5)?,
        height: row.get(6)?,
        thumbnail: row.get(7)?,
    })
}

/// Attaches the sender's uploads `ids` to the new message `message`, in order, and
/// returns them together with their JSON for `messages.attachments`. An id that is not
/// one of the sender's uploads is refused as unknown (someone else's upload id gives the
/// same answer as one that does not exist).
pub(super) fn attach(
    conn: &Connection,
    sender: UserId,
    message: MessageId,
    ids: &[String],
) -> StoreResult<Vec<Attachment>> {
    let mut out = Vec::with_capacity(ids.len());
    for (position, id) in ids.iter().enumerate() {
        let attachment = conn
            .prepare_cached(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.hash
                 WHERE a.id = ?1 AND a.uploader_id = ?2"
            ))?
            .query_row(params![id, sender], attachment_from_row)
            .optional()?
            .ok_or_else(|| StoreError::UnknownAttachment(id.clone()))?;
        conn.prepare_cached(
            "INSERT INTO message_attachments (message_id, attachment_id, position) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![message, id, position as i64])?;
        out.push(attachment);
    }
    Ok(out)
}

#[async_trait]
impl FileStore for SqliteStore {
    async fn blob(&self, hash: &str) -> StoreResult<Option<BlobMeta>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT hash, size, mime, width, height, thumbnail FROM blobs WHERE hash = ?1",
                )?
                .query_row([hash], |r| {
                    Ok(BlobMeta {
                        hash: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        mime: r.get(2)?,
                        width: r.get(3)?,
                        height: r.get(4)?,
                        thumbnail: r.get(5)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn record_upload(
        &self,
        id: &str,
        uploader: UserId,
        name: &str,
        blob: BlobMeta,
    ) -> StoreResult<Attachment> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.write(move |conn, _| {
            let now = now_micros();
            conn.prepare_cached(
                "INSERT OR IGNORE INTO blobs (hash, size, mime, width, height, thumbnail, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                blob.hash,
                blob.size as i64,
                blob.mime,
                blob.width,
                blob.height,
                blob.thumbnail,
                now
            ])?;
            conn.prepare_cached(
                "INSERT INTO attachments (id, uploader_id, hash, name, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, uploader, blob.hash, name, now])?;
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.hash
                     WHERE a.id = ?1"
                ))?
                .query_row([&id], attachment_from_row)?)
        })
        .await
    }

    async fn readable_attachment(&self, user: UserId, id: &str) -> StoreResult<Option<Attachment>> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {ATTACHMENT_COLUMNS} FROM attachments a JOIN blobs b ON b.hash = a.hash
                     WHERE a.id = ?1 AND (a.uploader_id = ?2 OR EXISTS(
                        SELECT 1 FROM message_attachments ma
                        JOIN messages m ON m.id = ma.message_id
                        JOIN members mb ON mb.conversation_id = m.conversation_id
                        WHERE ma.attachment_id = a.id AND mb.user_id = ?2))"
                ))?
                .query_row(params![id, user], attachment_from_row)
                .optional()?)
        })
        .await
    }

    async fn thumbnail(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
        let hash = hash.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT thumbnail FROM blobs WHERE hash = ?1")?
                .query_row([hash], |r| r.get::<_, Option<Vec<u8>>>(0))
                .optional()?
                .flatten())
        })
        .await
    }

    async fn file_counts(&self) -> StoreResult<(u64, u64)> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM blobs), (SELECT COUNT(*) FROM attachments)",
                )?
                .query_row([], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })?)
        })
        .await
    }
}
