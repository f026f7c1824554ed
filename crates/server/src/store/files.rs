//! The part of storage that records uploads and decides who may read them. The bytes
//! themselves live in a [`crate::blobs::BlobStore`]; this is only their description.

use async_trait::async_trait;
use natter_protocol::{Attachment, UserId};

use super::StoreResult;

/// What the server worked out about some content.
#[derive(Debug, Clone)]
pub struct BlobMeta {
    /// BLAKE3, lowercase hex.
    pub hash: String,
    pub size: u64,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A PNG preview, for images.
    pub thumbnail: Option<Vec<u8>>,
}

#[async_trait]
pub trait FileStore: Send + Sync {
    /// What is known about content with this hash, thumbnail included, when it was
    /// stored before (so an identical upload needs no second look).
    async fn blob(&self, hash: &str) -> StoreResult<Option<BlobMeta>>;
    /// Records an upload of `blob` (describing the content once, when new) named `name`
    /// by `uploader`, under the new id `id`.
    async fn record_upload(
        &self,
        id: &str,
        uploader: UserId,
        name: &str,
        blob: BlobMeta,
    ) -> StoreResult<Attachment>;
    /// The attachment `id` when `user` may read it: they uploaded it, or they are a
    /// member of a conversation with a message that carries it. `None` otherwise, the
    /// same as for an id that does not exist.
    async fn readable_attachment(&self, user: UserId, id: &str) -> StoreResult<Option<Attachment>>;
    /// The PNG thumbnail of the content with this hash.
    async fn thumbnail(&self, hash: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Number of stored contents and uploads (for tests and `admin stats`).
    async fn file_counts(&self) -> StoreResult<(u64, u64)>;
}
