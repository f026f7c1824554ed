//! File transfer: streaming uploads into the blob store (hashed, sniffed, previewed,
//! stored once per content), and member-only downloads.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use natter_protocol::{Attachment, human_size, limits, sanitize};
use tokio::sync::Semaphore;

use super::{Domain, DomainError, DomainResult, Principal};
use crate::blobs::{BlobStore, ByteStream};
use crate::store::files::BlobMeta;

/// Bytes looked at to tell the content's type.
const SNIFF_BYTES: usize = 8192;
/// Images larger than this (in bytes) get no thumbnail.
const MAX_PREVIEW_SOURCE: u64 = 32 << 20;
/// Images wider or taller than this get no thumbnail.
const MAX_PREVIEW_SIDE: u32 = 12_000;
/// Most memory one image decode may take.
const MAX_DECODE_ALLOC: u64 = 128 << 20;
/// Thumbnails made at once (each holds a decoded image in memory).
const PREVIEW_CONCURRENCY: usize = 2;

/// File storage and its limits, as the domain uses them.
pub struct Files {
    pub blobs: Arc<dyn BlobStore>,
    pub max_upload_bytes: u64,
    previews: Semaphore,
}

impl Files {
    pub fn new(blobs: Arc<dyn BlobStore>, max_upload_bytes: u64) -> Files {
        Files {
            blobs,
            max_upload_bytes,
            previews: Semaphore::new(PREVIEW_CONCURRENCY),
        }
    }
}

/// An authorized download: what it is and the requested bytes of it.
pub struct Download {
    pub attachment: Attachment,
    pub range: Range<u64>,
    pub body: ByteStream,
}

fn storage_error(e: io::Error) -> DomainError {
    if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded {
        tracing::error!(error = %e, "no space for an upload");
        DomainError::StorageUnavailable
    } else {
        DomainError::Internal(format!("blob store: {e}"))
    }
}

fn too_large(max: u64) -> DomainError {
    DomainError::TooLarge(format!(
        "the file is larger than this server's upload limit of {} ({max} bytes)",
        human_size(max)
    ))
}

/// The media type of content starting with `head`: by magic bytes, else UTF-8 text, else
/// opaque bytes. What the uploader claims is never consulted.
pub fn sniff(head: &[u8]) -> String {
    if head.is_empty() {
        return "application/octet-stream".into();
    }
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    let text = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut at the end of the sniffed part is still text.
        Err(e) => e.error_len().is_none(),
    };
    if text && !head.contains(&0) {
        "text/plain".into()
    } else {
        "application/octet-stream".into()
    }
}

/// The decoder for a media type the server previews: the allowlist.
fn previewed_format(mime: &str) -> Option<image::ImageFormat> {
    use image::ImageFormat;
    match mime {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// Width, height and a PNG thumbnail for an image in one of the previewed formats, read
/// with bounded dimensions and memory. Anything that fails gives what was learned so far.
pub fn preview(bytes: &[u8], mime: &str) -> (Option<u32>, Option<u32>, Option<Vec<u8>>) {
    use image::{ImageFormat, ImageReader};
    use std::io::Cursor;
    let Some(format) = previewed_format(mime) else {
        return (None, None, None);
    };
    let Ok((w, h)) = ImageReader::with_format(Cursor::new(bytes), format).into_dimensions() else {
        return (None, None, None);
    };
    if w > MAX_PREVIEW_SIDE || h > MAX_PREVIEW_SIDE || w == 0 || h == 0 {
        return (Some(w), Some(h), None);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut bounds = image::Limits::default();
    bounds.max_image_width = Some(MAX_PREVIEW_SIDE);
    bounds.max_image_height = Some(MAX_PREVIEW_SIDE);
    bounds.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(bounds);
    let Ok(img) = reader.decode() else {
        return (Some(w), Some(h), None);
    };
    let side = limits::THUMBNAIL_PX;
    let thumb = image::DynamicImage::ImageRgba8(img.thumbnail(side, side).to_rgba8());
    let mut png = Vec::new();
    match thumb.write_to(&mut Cursor::new(&mut png), ImageFormat::Png) {
        Ok(()) => (Some(w), Some(h), Some(png)),
        Err(_) => (Some(w), Some(h), None),
    }
}

impl Domain {
    /// Streams an upload into the blob store: at most `max_upload_bytes` (refused as soon
    /// as the declared length or the bytes so far pass it), hashed as it arrives, stored
    /// once per content. Nothing is kept of an upload that fails or is cut off. The body
    /// is borrowed so the caller can drain what is left of a refused one.
    pub async fn upload<S, E>(
        &self,
        p: &Principal,
        name: &str,
        declared_len: Option<u64>,
        body: &mut S,
    ) -> DomainResult<Attachment>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let max = self.files.max_upload_bytes;
        if name.is_empty() {
            return Err(DomainError::BadRequest("the file needs a name".into()));
        }
        if declared_len.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        self.limits.gate.send(p.id)?;
        // Whole escape sequences go first, so no printable remains of one stay in the name.
        let name = sanitize::filename(&sanitize::terminal(name));
        let mut staged = self.files.blobs.stage().await.map_err(storage_error)?;
        let mut hasher = blake3::Hasher::new();
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                DomainError::BadRequest(format!("the upload was cut off: {e}; nothing was kept"))
            })?;
            size += chunk.len() as u64;
            if size > max {
                return Err(too_large(max));
            }
            if head.len() < SNIFF_BYTES {
                let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            staged.write(&chunk).await.map_err(storage_error)?;
        }
        let hash = hasher.finalize().to_hex().to_string();
        let known = self.store.blob(&hash).await?;
        staged.commit(&hash).await.map_err(storage_error)?;
        let blob = match known {
            Some(meta) => meta,
            None => self.describe(hash, size, sniff(&head)).await?,
        };
        let id = uuid::Uuid::now_v7().to_string();
        Ok(self.store.record_upload(&id, p.id, &name, blob).await?)
    }

    /// Works out an image's size and thumbnail from the stored bytes.
    async fn describe(&self, hash: String, size: u64, mime: String) -> DomainResult<BlobMeta> {
        let mut meta = BlobMeta {
            hash,
            size,
            mime,
            width: None,
            height: None,
            thumbnail: None,
        };
        if previewed_format(&meta.mime).is_none() || size > MAX_PREVIEW_SOURCE {
            return Ok(meta);
        }
        let _permit = self
            .files
            .previews
            .acquire()
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        let mut bytes = Vec::with_capacity(size as usize);
        let mut stream = self
            .files
            .blobs
            .read(&meta.hash, 0..size)
            .await
            .map_err(storage_error)?;
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(storage_error)?);
        }
        let mime = meta.mime.clone();
        let (w, h, thumb) = tokio::task::spawn_blocking(move || preview(&bytes, &mime))
            .await
            .map_err(|e| DomainError::Internal(e.to_string()))?;
        meta.width = w;
        meta.height = h;
        meta.thumbnail = thumb;
        Ok(meta)
    }

    /// The attachment `id` when the caller may read it; otherwise the same `NotFound` as
    /// for an id that does not exist.
    pub async fn attachment(&self, p: &Principal, id: &str) -> DomainResult<Attachment> {
        if id.is_empty() || id.len() > 64 {
            return Err(not_found());
        }
        self.store
            .readable_attachment(p.id, id)
            .await?
            .ok_or_else(not_found)
    }

    /// Opens the caller's view of attachment `id`: all of it, or `range` of it (already
    /// checked against its size by the caller).
    pub async fn download(
        &self,
        p: &Principal,
        id: &str,
        range: impl FnOnce(u64) -> DomainResult<Range<u64>>,
    ) -> DomainResult<Download> {
        let attachment = self.attachment(p, id).await?;
        let range = range(attachment.size)?;
        let body = self
            .files
            .blobs
            .read(&attachment.hash, range.clone())
            .await
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    tracing::error!(hash = %attachment.hash, "an attachment's content is missing from the blob store");
                }
                storage_error(e)
            })?;
        Ok(Download {
            attachment,
            range,
            body,
        })
    }

    /// The PNG preview of an image attachment the caller may read.
    pub async fn thumbnail(&self, p: &Principal, id: &str) -> DomainResult<Vec<u8>> {
        let attachment = self.attachment(p, id).await?;
        if !attachment.thumbnail {
            return Err(DomainError::NotFound(
                "this attachment has no thumbnail".into(),
            ));
        }
        self.store
            .thumbnail(&attachment.hash)
            .await?
            .ok_or_else(not_found)
    }
}

fn not_found() -> DomainError {
    DomainError::NotFound("no such file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_the_type() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"plain words\n"), "text/plain");
        assert_eq!(sniff("caf\u{e9}".as_bytes()), "text/plain");
        // A multi-byte character cut at the end of the sniffed part.
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02\xff"), "application/octet-stream");
        assert_eq!(sniff(b""), "application/octet-stream");
        // Sniffed as what it is (and served as opaque bytes, see transport::files).
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), "text/html");
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba([200, 10, 10, 255]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn images_get_bounded_thumbnails() {
        let (w, h, thumb) = preview(&png(1000, 500), "image/png");
        assert_eq!((w, h), (Some(1000), Some(500)));
        let thumb = image::load_from_memory(&thumb.unwrap()).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (256, 128));
    }

    #[test]
    fn broken_or_huge_images_get_no_thumbnail() {
        assert_eq!(
            preview(b"\x89PNG\r\n\x1a\nbroken", "image/png"),
            (None, None, None)
        );
        assert_eq!(preview(b"hello", "text/plain"), (None, None, None));
        // A header claiming 20,000 x 20,000 pixels is not decoded.
        let mut big = Vec::new();
        image::DynamicImage::ImageRgba8(image::RgbaImage::new(1, 1))
            .write_to(&mut std::io::Cursor::new(&mut big), image::ImageFormat::Gif)
            .unwrap();
        big[6..8].copy_from_slice(&20_000u16.to_le_bytes());
        big[8..10].copy_from_slice(&20_000u16.to_le_bytes());
        let (w, h, thumb) = preview(&big, "image/gif");
        assert_eq!((w, h), (Some(20_000), Some(20_000)));
        assert!(thumb.is_none());
    }
}
