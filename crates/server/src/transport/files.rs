//! File routes: `POST /files` (streaming upload), `GET /files/{id}` (download with
//! `Range`), `GET /files/{id}/info` and `GET /files/{id}/thumbnail`.

use std::ops::Range;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use natter_protocol::{Attachment, ErrorBody, ErrorCode, UploadQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiPath, ApiQuery, AppState, Auth};
use crate::domain::DomainError;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .routes(routes!(download))
        .routes(routes!(info))
        .routes(routes!(thumbnail))
}

/// Uploads a file: the request body is the file's bytes, streamed (any `Content-Type`;
/// the server sniffs the type from the content). Refused with 413 past the server's
/// `max_upload_bytes` (100 MiB unless configured), as soon as `Content-Length` or the bytes
/// received pass it; nothing of a refused or cut-off upload is kept. Attach the answer's
/// `id` to a message with `attachments` in a `send`.
#[utoipa::path(post, path = "/files", tag = "files", security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Attachment), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 429, body = ErrorBody), (status = 507, body = ErrorBody),
    ))]
async fn upload(
    State(s): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    match s
        .domain
        .upload(&auth.principal, &q.name, declared, &mut stream)
        .await
    {
        Ok(attachment) => Ok((StatusCode::CREATED, Json(attachment)).into_response()),
        // Refused while the client may still be sending: over the cap, or the disk
        // filled up part way.
        Err(e @ (DomainError::TooLarge(_) | DomainError::StorageUnavailable)) => {
            // A client still sending when it is refused would see the connection reset
            // before it reads the answer: read (and drop) a bounded amount first, and
            // close the connection after the answer.
            drain(&mut stream).await;
            let mut resp = ApiError::from(e).into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

/// Most of a refused upload read and dropped before the answer.
const DRAIN_BYTES: u64 = 16 << 20;
/// Longest time spent doing so.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn drain(stream: &mut axum::body::BodyDataStream) {
    use futures_util::StreamExt;
    let mut read = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while read < DRAIN_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => read += chunk.len() as u64,
                _ => break,
            }
        }
    })
    .await;
}

/// Downloads a file the caller may see (they uploaded it, or are a member of a
/// conversation where it was sent; anyone else gets 404 as for a missing file). Supports
/// a single `Range: bytes=...` (206), with `If-Range` against the `ETag` (the content's
/// BLAKE3 hash). Always `Content-Disposition: attachment` and `X-Content-Type-Options:
/// nosniff`.
#[utoipa::path(get, path = "/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path), ("Range" = Option<String>, Header, description = "bytes=START-END, START- or -SUFFIX")),
    responses(
        (status = 200, description = "the whole file", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range", content_type = "application/octet-stream"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody),
    ))]
async fn download(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let if_range = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut partial = false;
    let dl = s
        .domain
        .download(&auth.principal, &id, |size| {
            match range_header.as_deref() {
                None => Ok(0..size),
                Some(spec) => match parse_range(spec, size) {
                    // Not one plain byte range: serve the whole file, as RFC 9110 allows.
                    RangeAnswer::Ignore => Ok(0..size),
                    RangeAnswer::Unsatisfiable => Err(DomainError::RangeNotSatisfiable(size)),
                    RangeAnswer::Part(r) => {
                        partial = true;
                        Ok(r)
                    }
                },
            }
        })
        .await;
    let dl = match dl {
        Err(DomainError::RangeNotSatisfiable(size)) => {
            let mut resp = ApiError::new(
                ErrorCode::BadRequest,
                format!("the requested range is outside the file's {size} bytes"),
            )
            .into_response();
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
        other => other?,
    };
    let etag = format!("\"{}\"", dl.attachment.hash);
    // A stale If-Range (the validator does not match) asks for the whole file.
    if partial && if_range.is_some_and(|v| v.trim() != etag) {
        let dl = s
            .domain
            .download(&auth.principal, &id, |size| Ok(0..size))
            .await?;
        return Ok(file_response(
            dl.attachment,
            dl.range,
            false,
            dl.body,
            &etag,
        ));
    }
    Ok(file_response(
        dl.attachment,
        dl.range,
        partial,
        dl.body,
        &etag,
    ))
}

fn file_response(
    attachment: Attachment,
    range: Range<u64>,
    partial: bool,
    body: crate::blobs::ByteStream,
    etag: &str,
) -> Response {
    let len = range.end - range.start;
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(served_type(&attachment.mime)),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&attachment.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if partial
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{}",
            range.start,
            range.end - 1,
            attachment.size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

/// The attachment's description, for anyone who may download it.
#[utoipa::path(get, path = "/files/{id}/info", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Attachment), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn info(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Attachment>> {
    Ok(Json(s.domain.attachment(&auth.principal, &id).await?))
}

/// A PNG preview (at most 256 x 256) of an image attachment; 404 for other files.
#[utoipa::path(get, path = "/files/{id}/thumbnail", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "PNG image", content_type = "image/png"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn thumbnail(
    State(s): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let png = s.domain.thumbnail(&auth.principal, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        png,
    )
        .into_response())
}

/// The `Content-Type` a download is served with: images and plain text as themselves,
/// everything else as opaque bytes (never anything a browser would run).
fn served_type(mime: &str) -> &'static str {
    match mime {
        "image/png" => "image/png",
        "image/jpeg" => "image/jpeg",
        "image/gif" => "image/gif",
        "image/webp" => "image/webp",
        "text/plain" => "text/plain; charset=utf-8",
        "application/pdf" => "application/pdf",
        "application/zip" => "application/zip",
        "application/gzip" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// `attachment; filename="..."; filename*=UTF-8''...`: an ASCII stand-in for old
/// clients and the exact (already sanitized) name percent-encoded (RFC 6266, RFC 8187).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    Ignore,
    Unsatisfiable,
    Part(Range<u64>),
}

/// Reads one `bytes=` range against a file of `size` bytes.
fn parse_range(spec: &str, size: u64) -> RangeAnswer {
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if set.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // -SUFFIX: the last SUFFIX bytes.
        (true, false) => match num(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if size > 0 => RangeAnswer::Part(size.saturating_sub(n)..size),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Ignore,
        },
        // START-
        (false, true) => match num(first) {
            Some(start) if start < size => RangeAnswer::Part(start..size),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Ignore,
        },
        (false, false) => match (num(first), num(last)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= size {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Part(start..end.min(size - 1) + 1)
                }
            }
            _ => RangeAnswer::Ignore,
        },
        (true, true) => RangeAnswer::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-99", 1000), Part(0..100));
        assert_eq!(parse_range("bytes=500-", 1000), Part(500..1000));
        assert_eq!(parse_range("bytes=-100", 1000), Part(900..1000));
        assert_eq!(parse_range("bytes=-5000", 1000), Part(0..1000));
        assert_eq!(parse_range("bytes=900-5000", 1000), Part(900..1000));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ignore);
        assert_eq!(parse_range("items=0-1", 1000), Ignore);
        assert_eq!(parse_range("bytes=x-1", 1000), Ignore);
    }

    #[test]
    fn disposition_is_safe_for_any_name() {
        assert_eq!(
            content_disposition("build log.txt"),
            "attachment; filename=\"build log.txt\"; filename*=UTF-8''build%20log.txt"
        );
        assert_eq!(
            content_disposition("résumé \"x\".pdf"),
            "attachment; filename=\"r_sum_ _x_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.pdf"
        );
    }

    #[test]
    fn only_inert_types_are_served_as_themselves() {
        assert_eq!(served_type("text/html"), "application/octet-stream");
        assert_eq!(served_type("image/svg+xml"), "application/octet-stream");
        assert_eq!(served_type("text/plain"), "text/plain; charset=utf-8");
    }
}
