//! File attachments: what an uploaded file looks like on the wire.
//!
//! A file is uploaded first (`POST /api/v1/files?name=NAME`, the raw bytes as the body)
//! and answered with an [`Attachment`]; a message then carries the ids of one or more
//! uploads (`attachments` in a `send` frame or `POST .../messages`). Members of the
//! conversation download it from `GET /api/v1/files/{id}` (with `Range` support) and a
//! server-made preview of an image from `GET /api/v1/files/{id}/thumbnail`.

use serde::{Deserialize, Serialize};

/// Identifies one upload (a UUID). Identical content uploaded twice gets two ids but is
/// stored once.
pub type AttachmentId = String;

/// A file attached to a message. Everything but `name` is worked out by the server from
/// the bytes; `name` is the uploader's file name made safe by
/// [`crate::sanitize::filename`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub id: AttachmentId,
    /// Display and default save name: one path component, no control characters, at
    /// most 255 bytes.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type sniffed from the content (never taken from the uploader), e.g.
    /// `image/png`, `text/plain` or `application/octet-stream`.
    pub mime: String,
    /// BLAKE3 hash of the content, 64 lowercase hex digits. Clients check a download
    /// against it.
    pub hash: String,
    /// Pixel size, for images the server could read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// True when `GET /api/v1/files/{id}/thumbnail` has a PNG preview (images in PNG,
    /// JPEG, GIF or WebP within the decode limits).
    #[serde(default)]
    pub thumbnail: bool,
}

impl Attachment {
    /// True for the image types the server previews.
    pub fn is_image(&self) -> bool {
        matches!(
            self.mime.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        )
    }
}

/// Query of `POST /api/v1/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct UploadQuery {
    /// The file's name; the server keeps only a safe form of its last path component.
    pub name: String,
}

/// Formats a byte count for people: `512 B`, `2.1 MB`, `1.0 GB` (powers of 1000, one
/// decimal from kB up).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1000), "1.0 kB");
        assert_eq!(human_size(2_100_000), "2.1 MB");
        assert_eq!(human_size(999_999), "1.0 MB");
        assert_eq!(human_size(1 << 30), "1.1 GB");
        assert_eq!(human_size(u64::MAX), "18446.7 PB");
    }
}
