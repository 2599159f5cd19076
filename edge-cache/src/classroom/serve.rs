//! The file routes: `/files/<blake3>`, `/courses/<course>/<lesson>/<path>`
//! and `/assets/<course>/<path>`. A held file is answered from disk (its
//! answer decided by [`crate::classroom::answer`]); a lesson file not held
//! yet is read through from the origin ([`crate::sync::readthrough`]) and
//! streamed as it arrives. A store or disk failure is a 500 with its cause
//! logged ([`ReadError::answer`]), never a 404 or an empty 200 (issue 12).

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use catalog::store::OpenedBlob;
use catalog::{FileManifest, Hash, Store};
use futures_util::{Stream, StreamExt};
use tracing::{info, warn};

use crate::classroom::answer::{
    AnswerBody, answer_held, content_type_of, etag_matches, requested_ranges,
};
use crate::classroom::error::ReadError;
use crate::classroom::files::{PlaceKey, read_stream};
use crate::classroom::lesson_html;
use crate::classroom::range::Ranges;
use crate::classroom::{Classroom, IMMUTABLE, REVALIDATE, not_found, read};
use crate::metrics::Metrics;
use crate::sync::readthrough::Unavailable;

pub(crate) async fn file_by_hash(
    State(state): State<Arc<Classroom>>,
    Path(hash): Path<String>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(blob) = hash.parse::<Hash>() else {
        return not_found("that file");
    };
    let held = async {
        let Some(media) = media_of_blob(&state, blob).await? else {
            return Ok::<_, ReadError>(None);
        };
        Ok(open_blob(&state.store, &blob)
            .await?
            .map(|(file, len)| (media, file, len)))
    };
    match held.await {
        Ok(Some((media, file, len))) => {
            state.metrics.cache_hits.inc();
            let held = Held {
                file,
                len,
                blob,
                media: &media,
            };
            let mut response = serve_blob(&state, held, IMMUTABLE, &uri, &method, &headers).await;
            if is_active(&media) {
                // Opened by hash it is nobody's lesson page: it runs sandboxed
                // (a teacher's upload must not run as the classroom).
                response.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(TEACHERS_SANDBOX),
                );
            }
            response
        }
        Ok(None) => not_found("that file"),
        Err(err) => err.answer(uri.path()),
    }
}

/// The media type of a held blob, remembered after the first look; `None`
/// if the blob is not held.
pub(crate) async fn media_of_blob(
    state: &Classroom,
    blob: Hash,
) -> Result<Option<String>, ReadError> {
    if let Some(media) = state.places.media(&blob) {
        return Ok(Some(media));
    }
    let store = state.store.clone();
    let media = read(move || {
        let Some(info) = store
            .blob_info(&blob)
            .map_err(ReadError::object("the record of held file", blob))?
        else {
            return Ok(None);
        };
        let manifest = store
            .manifest(&info.manifest)
            .map_err(ReadError::object("manifest", info.manifest))?;
        Ok(Some(manifest.media_type))
    })
    .await?;
    if let Some(media) = &media {
        state.places.set_media(blob, media);
    }
    Ok(media)
}

/// Opens a held blob to serve it; `None` if it is not held (or was found
/// damaged and quarantined just now). An open file stays readable even if
/// it is replaced meanwhile.
///
/// The hot path costs one `fstat` of the open file: its size and identity
/// must be those recorded when it was verified. A file that differs (or is
/// gone) is never served as it is: it is re-hashed on the blocking pool (one
/// re-check per blob at a time, later readers wait for it), served if its
/// bytes are still right, and quarantined otherwise, so the next sync fetches
/// it again ([`catalog::store::OpenedBlob`]). A file that cannot be opened
/// or re-checked at all (a folder of the store replaced, an I/O error) is an
/// error: the caller answers 500.
pub(crate) async fn open_blob(
    store: &Arc<Store>,
    blob: &Hash,
) -> Result<Option<(Arc<std::fs::File>, u64)>, ReadError> {
    let failed = ReadError::open_blob(*blob);
    // Issue 13: an open blob is never evicted, and opens set the eviction order.
    let opened = |file: std::fs::File| {
        let file = Arc::new(file);
        crate::quota::readers::opened(store, *blob, &file);
        file
    };
    match store.open_blob(blob).map_err(failed)? {
        OpenedBlob::Verified { file, len } => return Ok(Some((opened(file), len))),
        OpenedBlob::NotHeld => return Ok(None),
        OpenedBlob::Changed => {}
    }
    let (for_check, blob) = (store.clone(), *blob);
    let rechecked = read(move || {
        for_check
            .recheck_blob(&blob)
            .map_err(ReadError::open_blob(blob))
    })
    .await?;
    Ok(rechecked.map(|(file, len)| {
        info!(blob = %blob, "a blob's file changed but its bytes are right; serving it");
        (opened(file), len)
    }))
}

/// Whether a file of this media type can run scripts when opened as a page.
pub(crate) fn is_active(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim();
    matches!(
        essence,
        "text/html" | "application/xhtml+xml" | "image/svg+xml" | "text/xml" | "application/xml"
    )
}

/// The policy a teacher's own lesson files are served under: scripts,
/// forms and pop-ups run, never as the classroom's own origin.
pub(crate) const TEACHERS_SANDBOX: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals";

/// Marks a teacher's own lesson file: the sandbox, and for subtitles
/// `Access-Control-Allow-Origin: *` — the sandboxed page that shows them
/// is an origin of its own, so the browser fetches its `<track>`s as
/// another site's. Nothing else of hers is readable from such a page.
pub(crate) fn sandboxed(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(TEACHERS_SANDBOX),
    );
    let subtitles = (headers.get(header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|media| media.starts_with("text/vtt"));
    if subtitles {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
}

pub(crate) async fn lesson_file(
    State(state): State<Arc<Classroom>>,
    Path((course, lesson, path)): Path<(String, String, String)>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let key = PlaceKey {
        course,
        lesson: Some(lesson),
        path,
    };
    serve_placed(state, key, uri, method, headers).await
}

pub(crate) async fn course_file(
    State(state): State<Arc<Classroom>>,
    Path((course, path)): Path<(String, String)>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let key = PlaceKey {
        course,
        lesson: None,
        path,
    };
    serve_placed(state, key, uri, method, headers).await
}

/// Serves the file at a place in the catalog in force: from disk when held,
/// else read through from the origin.
async fn serve_placed(
    state: Arc<Classroom>,
    key: PlaceKey,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let (course, lesson) = (key.course.clone(), key.lesson.clone().unwrap_or_default());
    let counts = method == Method::GET;
    let mut response = answer_placed(state.clone(), key, uri, method, headers).await;
    // Issue 17: a teacher's own lesson (an HTML folder she uploaded) runs
    // in a sandbox, an origin of its own: its scripts cannot read `/teach`
    // or act with a teacher's login. The bureau's signed lessons are not
    // sandboxed.
    if course.starts_with('~') {
        sandboxed(response.headers_mut());
    }
    // Issue 15: the body's length, as the file's lesson's bytes served.
    if counts && response.status().is_success() {
        let length = (response.headers().get(header::CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = length {
            state.usage.served(&course, &lesson, length);
        }
    }
    response
}

async fn answer_placed(
    state: Arc<Classroom>,
    key: PlaceKey,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let placed = match state.places.cached(&key) {
        Some(placed) => placed,
        None => {
            let classroom = state.clone();
            match read(move || classroom.places.look_up(&classroom.store, &key)).await {
                Ok(placed) => placed,
                Err(err) => return err.answer(uri.path()),
            }
        }
    };
    let Some(placed) = placed else {
        return not_found("that file");
    };
    if let Some(page) = lesson_html::serve(&state, &placed, &uri, &method, &headers).await {
        return page;
    }
    let opened = match open_blob(&state.store, &placed.blob).await {
        Ok(opened) => opened,
        Err(err) => return err.answer(uri.path()),
    };
    if let Some((file, len)) = opened {
        state.metrics.cache_hits.inc();
        let held = Held {
            file,
            len,
            blob: placed.blob,
            media: &placed.media,
        };
        return serve_blob(&state, held, REVALIDATE, &uri, &method, &headers).await;
    }
    let store = state.store.clone();
    let manifest_hash = placed.manifest;
    let manifest = read(move || {
        store
            .manifest(&manifest_hash)
            .map_err(ReadError::object("manifest", manifest_hash))
    })
    .await;
    match manifest {
        Ok(manifest) => {
            serve_read_through(&state, manifest_hash, manifest, &uri, &method, &headers).await
        }
        Err(err) => err.answer(uri.path()),
    }
}

/// What a file request was answered with when the file cannot be had now.
pub(crate) fn unavailable(headers: &HeaderMap, uri: &Uri, why: &Unavailable) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        return crate::classroom::ui::unavailable_page(headers, uri.path(), why);
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "30")],
        format!(
            "this file is not available offline yet: {}\n",
            crate::sync::error_chain(why)
        ),
    )
        .into_response()
}

/// Counts the body bytes that leave for the classroom.
fn counted<S>(stream: S, metrics: Arc<Metrics>) -> impl Stream<Item = Result<Bytes, std::io::Error>>
where
    S: Stream<Item = Result<Bytes, std::io::Error>>,
{
    stream.inspect(move |item| {
        if let Ok(bytes) = item {
            metrics.bytes_served.inc_by(bytes.len() as u64);
        }
    })
}

/// A lesson file not held yet: fetched now and streamed as it arrives.
/// A single range is honoured; several ranges get the whole file.
async fn serve_read_through(
    state: &Classroom,
    manifest_hash: Hash,
    manifest: FileManifest,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let len = manifest.size;
    let etag = format!("\"{}\"", manifest.blob);
    let response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, REVALIDATE)
        .header(header::ACCEPT_RANGES, "bytes");
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let ranges = requested_ranges(headers, &etag, len);
    let (response, start, end) = match ranges {
        Ranges::Unsatisfiable => {
            return response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Ranges::Parts(parts) if parts.len() == 1 => (
            response.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{len}", parts[0].start, parts[0].end - 1),
            ),
            parts[0].start,
            parts[0].end,
        ),
        Ranges::Full | Ranges::Parts(_) => (response.status(StatusCode::OK), 0, len),
    };
    let response = response
        .header(header::CONTENT_TYPE, content_type_of(&manifest.media_type))
        .header(header::CONTENT_LENGTH, end - start);
    if method == Method::HEAD {
        return response
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    // Issue 13: room is made first; a file that cannot fit is a 507.
    if let Err(full) = state.read_through.make_room(&manifest).await {
        return (StatusCode::INSUFFICIENT_STORAGE, format!("{full}\n")).into_response();
    }
    let fetch = match state.read_through.start(manifest_hash, manifest) {
        Ok(fetch) => fetch,
        Err(err) => return unavailable(headers, uri, &err),
    };
    match fetch.stream(start, end).await {
        Ok(stream) => response
            .body(Body::from_stream(counted(stream, state.metrics.clone())))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        Err(err) => unavailable(headers, uri, &err),
    }
}

/// A held, verified blob, opened.
struct Held<'a> {
    file: Arc<std::fs::File>,
    len: u64,
    blob: Hash,
    media: &'a str,
}

/// Answers from a held blob. The first block of the body is read before
/// the status is sent, so a file that cannot be read is a 500 with its
/// cause logged, not a 200 that ends at once; a failure later in the body
/// cuts the connection (the length was promised) and is logged.
async fn serve_blob(
    state: &Classroom,
    held: Held<'_>,
    cache: &'static str,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let Held {
        file,
        len,
        blob,
        media,
    } = held;
    let answer = answer_held(len, blob, media, cache, method, headers);
    let mut response = Response::builder().status(answer.status);
    if let Some(out) = response.headers_mut() {
        *out = answer.headers;
    }
    let built = match answer.body {
        AnswerBody::Empty => response.body(Body::empty()),
        AnswerBody::Region { start, end } => {
            let mut stream = Box::pin(read_stream(file, start, end, state.buffers.clone()));
            let first = match stream.next().await {
                Some(Ok(first)) => first,
                Some(Err(source)) => {
                    return ReadError::ReadBlob { blob, source }.answer(uri.path());
                }
                None => Bytes::new(),
            };
            let path = uri.path().to_owned();
            let rest = stream.inspect(move |item| {
                if let Err(err) = item {
                    warn!(path, blob = %blob, cause = %err, "reading a held file failed mid-answer; the connection is cut");
                }
            });
            let body = futures_util::stream::once(async { Ok(first) }).chain(rest);
            response.body(Body::from_stream(counted(body, state.metrics.clone())))
        }
        AnswerBody::Parts {
            parts,
            boundary,
            content_type,
        } => {
            let mut body = Vec::new();
            for part in &parts {
                body.extend_from_slice(
                    format!(
                        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
                        part.start,
                        part.end - 1
                    )
                    .as_bytes(),
                );
                let (reader, at) = (file.clone(), part.start);
                let mut bytes = vec![0u8; (part.end - part.start) as usize];
                let read = read(move || {
                    reader
                        .read_exact_at(&mut bytes, at)
                        .map(|()| bytes)
                        .map_err(|source| ReadError::ReadBlob { blob, source })
                });
                match read.await {
                    Ok(bytes) => body.extend_from_slice(&bytes),
                    Err(err) => return err.answer(uri.path()),
                }
            }
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            let response = response.header(header::CONTENT_LENGTH, body.len());
            if method == Method::HEAD {
                response.body(Body::empty())
            } else {
                state.metrics.bytes_served.inc_by(body.len() as u64);
                response.body(Body::from(body))
            }
        }
    };
    built.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
