//! Reading a STOW-RS request body (PS3.18 §10.5): `multipart/related;
//! type="application/dicom"`, one DICOM Part 10 instance per part, parsed
//! with multer as the bytes stream in (nothing is held but the current
//! chunk).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use ct_triage_native::related::RelatedParts;
//! let body = "--B\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--B--\r\n";
//! let stream = futures_util::stream::once(async move {
//!     Ok::<_, std::io::Error>(bytes::Bytes::from(body))
//! });
//! let mut parts =
//!     RelatedParts::new("multipart/related; type=\"application/dicom\"; boundary=B", stream, 10)?;
//! let mut part = parts.next().await?.unwrap();
//! assert!(part.refusal.is_none());
//! assert_eq!(part.chunk().await?.as_deref(), Some(&b"DICM"[..]));
//! drop(part); // one part at a time
//! assert!(parts.next().await?.is_none());
//! # Ok::<(), ct_triage_native::NativeError>(()) }).unwrap();
//! ```

use bytes::Bytes;
use futures_util::Stream;

use crate::error::{NativeError, Result};

fn request_error(status: u16, message: impl Into<String>) -> NativeError {
    NativeError::Request {
        status,
        message: message.into(),
    }
}

/// The HTTP error of a multipart body that could not be read: over the body
/// limit 413, stalled past the body timeout 408, cut short or malformed 400.
pub fn multipart_error(e: multer::Error) -> NativeError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            request_error(413, format!("request body: {e}"))
        }
        multer::Error::StreamReadFailed(inner) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
            while let Some(c) = cause {
                if c.is::<http_body_util::LengthLimitError>() {
                    return request_error(413, "request body: larger than the limit (max_body_mb)");
                }
                if c.is::<tower_http::timeout::TimeoutError>() {
                    return request_error(408, "request body: no data within the body timeout");
                }
                cause = c.source();
            }
            request_error(400, format!("request body cut short: {inner}"))
        }
        multer::Error::IncompleteStream
        | multer::Error::IncompleteFieldData { .. }
        | multer::Error::IncompleteHeaders => {
            request_error(400, format!("truncated multipart body: {e}"))
        }
        e => request_error(400, format!("malformed multipart body: {e}")),
    }
}

/// The boundary of a STOW-RS request's `Content-Type`: it must be
/// `multipart/related` with `type="application/dicom"` (415 otherwise) and a
/// boundary (400 otherwise).
pub fn related_boundary(content_type: &str) -> Result<String> {
    let m: mime::Mime = content_type.parse().map_err(|_| {
        request_error(
            415,
            format!("Content-Type {content_type:?} is not a media type"),
        )
    })?;
    if m.type_() != mime::MULTIPART || m.subtype() != "related" {
        return Err(request_error(
            415,
            "STOW-RS expects multipart/related; type=\"application/dicom\"",
        ));
    }
    match m.get_param("type") {
        Some(t) if t.as_str().eq_ignore_ascii_case("application/dicom") => {}
        Some(t) => {
            return Err(request_error(
                415,
                format!("multipart/related type {t} is not supported (only application/dicom)"),
            ));
        }
        None => {
            return Err(request_error(
                415,
                "multipart/related without type=\"application/dicom\" (PS3.18 §10.5.1)",
            ));
        }
    }
    m.get_param(mime::BOUNDARY)
        .map(|b| b.as_str().to_string())
        .ok_or_else(|| request_error(400, "multipart/related without boundary"))
}

/// The parts of a STOW-RS body, one at a time.
pub struct RelatedParts {
    mp: multer::Multipart<'static>,
    count: usize,
    max_parts: usize,
}

/// One part: why it is refused (its media type is not `application/dicom`),
/// and its bytes as they arrive (read them all, also for a refused part).
pub struct RelatedPart {
    /// 1-based position in the body.
    pub index: usize,
    /// `Some(reason)` when the part's `Content-Type` is missing or not
    /// `application/dicom` (parameters such as `transfer-syntax` allowed).
    pub refusal: Option<String>,
    field: multer::Field<'static>,
}

impl RelatedParts {
    /// Start reading `stream` as the body of a request with `content_type`;
    /// more than `max_parts` parts is a [`NativeError::Limit`].
    pub fn new<S, E>(content_type: &str, stream: S, max_parts: usize) -> Result<Self>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let boundary = related_boundary(content_type)?;
        Ok(RelatedParts {
            mp: multer::Multipart::new(stream, boundary),
            count: 0,
            max_parts,
        })
    }

    /// The next part, `None` after the last. The previous part must have
    /// been dropped (multer reads one part at a time).
    pub async fn next(&mut self) -> Result<Option<RelatedPart>> {
        let Some(field) = self.mp.next_field().await.map_err(multipart_error)? else {
            return Ok(None);
        };
        self.count += 1;
        if self.count > self.max_parts {
            return Err(NativeError::Limit(format!(
                "more than {} instances in one request",
                self.max_parts
            )));
        }
        let refusal = match field.content_type() {
            Some(m) if m.essence_str().eq_ignore_ascii_case("application/dicom") => None,
            Some(m) => Some(format!(
                "part {} is {}, not application/dicom",
                self.count,
                m.essence_str()
            )),
            None => Some(format!("part {} has no Content-Type", self.count)),
        };
        Ok(Some(RelatedPart {
            index: self.count,
            refusal,
            field,
        }))
    }
}

impl RelatedPart {
    /// The next chunk of the part's bytes, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        self.field.chunk().await.map_err(multipart_error)
    }

    /// Read the rest of the part and throw it away (a refused part).
    pub async fn drain(&mut self) -> Result<()> {
        while self.chunk().await?.is_some() {}
        Ok(())
    }

    /// Write the rest of the part to a new owner-only file at `path`, synced
    /// to disk. Reading errors are the body's; writing errors are
    /// [`NativeError::Io`].
    pub async fn save(&mut self, path: &std::path::Path) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut out = tokio::fs::File::from_std(crate::private_fs::create_file(path)?);
        while let Some(chunk) = self.chunk().await? {
            out.write_all(&chunk)
                .await
                .map_err(|e| NativeError::io(path, e))?;
        }
        out.sync_all().await.map_err(|e| NativeError::io(path, e))
    }
}
