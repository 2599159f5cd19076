//! The answer to a request for a held file, decided before a byte is read:
//! its status, headers (`ETag`, `Cache-Control`, `Content-Type`,
//! `Content-Range`, `Content-Length`) and which bytes its body holds — for a
//! single range, several ranges, `If-None-Match`, `If-Range` and `HEAD`.
//! Shared by the router's file routes ([`crate::classroom::serve`]) and the
//! sendfile front door ([`crate::classroom::front`]), so the two answer alike.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use catalog::Hash;

use crate::classroom::MAX_MULTIPART_BYTES;
use crate::classroom::range::{self, Ranges};

/// Whether an `If-None-Match` or `If-Range` value names this ETag.
pub(crate) fn etag_matches(value: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// How to answer a request for a held blob, decided before a byte is read;
/// shared by the hyper path and the sendfile front ([`crate::classroom::front`]).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: AnswerBody,
}

pub(crate) enum AnswerBody {
    Empty,
    /// Bytes `start..end` of the file.
    Region {
        start: u64,
        end: u64,
    },
    /// Several ranges, as `multipart/byteranges`.
    Parts {
        parts: Vec<std::ops::Range<u64>>,
        boundary: String,
        content_type: String,
    },
}

/// The byte ranges a request asks of a file of `len` bytes whose ETag is
/// `etag`: its `Range`, unless an `If-Range` names another version.
pub(crate) fn requested_ranges(headers: &HeaderMap, etag: &str, len: u64) -> Ranges {
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| etag_matches(Some(v), etag));
    if if_range_ok {
        range::parse(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            len,
        )
    } else {
        Ranges::Full
    }
}

pub(crate) fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// The answer to `method` with `headers` for a held blob of `len` bytes:
/// ranges, conditionals, HEAD.
pub(crate) fn answer_held(
    len: u64,
    blob: Hash,
    media: &str,
    cache: &'static str,
    method: &Method,
    headers: &HeaderMap,
) -> Answer {
    let etag = format!("\"{blob}\"");
    let content_type = content_type_of(media);
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(&etag));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return Answer {
            status: StatusCode::NOT_MODIFIED,
            headers: out,
            body: AnswerBody::Empty,
        };
    }
    let ranges = requested_ranges(headers, &etag, len);
    let head = method == Method::HEAD;
    let (status, body) = match ranges {
        Ranges::Unsatisfiable => {
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{len}")),
            );
            (StatusCode::RANGE_NOT_SATISFIABLE, AnswerBody::Empty)
        }
        Ranges::Parts(parts) if parts.len() == 1 => {
            let part = parts[0].clone();
            out.insert(header::CONTENT_TYPE, header_value(&content_type));
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{len}", part.start, part.end - 1)),
            );
            out.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(part.end - part.start),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                AnswerBody::Region {
                    start: part.start,
                    end: part.end,
                },
            )
        }
        Ranges::Parts(parts)
            if parts.iter().map(|p| p.end - p.start).sum::<u64>() <= MAX_MULTIPART_BYTES =>
        {
            let boundary = format!("shanlu-{}", blob.fmt_short());
            out.insert(
                header::CONTENT_TYPE,
                header_value(&format!("multipart/byteranges; boundary={boundary}")),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                AnswerBody::Parts {
                    parts,
                    boundary,
                    content_type,
                },
            )
        }
        Ranges::Full | Ranges::Parts(_) => {
            out.insert(header::CONTENT_TYPE, header_value(&content_type));
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            (StatusCode::OK, AnswerBody::Region { start: 0, end: len })
        }
    };
    Answer {
        status,
        headers: out,
        body: if head && !matches!(body, AnswerBody::Parts { .. }) {
            AnswerBody::Empty
        } else {
            body
        },
    }
}

pub(crate) fn content_type_of(media: &str) -> String {
    if media.starts_with("text/") && !media.contains("charset") {
        format!("{media}; charset=utf-8")
    } else {
        media.to_owned()
    }
}
