//! The classroom HTTP server: lesson files and the JSON API, from the edge's store.
//!
//! - `GET|HEAD /files/<blake3>`: a file by content; immutable.
//! - `GET|HEAD /courses/<course>/<lesson>/<path>`: a lesson's file by its place,
//!   so a lesson's HTML finds its images and videos by relative links.
//! - `GET|HEAD /assets/<course>/<path>`: a course-level file (cover, syllabus).
//! - `GET /api/v1/courses`, `/api/v1/courses/<id>`, `/api/v1/search?q=`,
//!   `/api/v1/status`: JSON.
//! - `GET /metrics`: Prometheus.
//! - The pages people read: see [`crate::classroom::ui`].
//!
//! Requests whose path is over [`MAX_PATH_LEN`] bytes, or whose path and
//! query are over [`MAX_TARGET_LEN`], are answered 414 before any route looks
//! at them (issue 11), and every cache the classroom keeps is bounded (see
//! [`crate::classroom::files`]).
//!
//! Files support single and multiple byte ranges, `ETag` (the BLAKE3 of the
//! file), `If-None-Match` and `If-Range`. A file is served from disk only once
//! it is complete and verified in `blobs/`; partial files are never visible.
//! A lesson file not held yet is read through from the origin
//! ([`crate::sync::readthrough`]), each chunk verified before it is sent.

pub mod files;
pub mod front;
pub mod i18n;
pub mod lesson_html;
pub mod range;
pub mod search;
pub mod ui;

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use bytes::Bytes;
use catalog::store::OpenedBlob;
use catalog::{Catalog, Course, FileManifest, Hash, Lesson, LocalizedText, Object, Store};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::FileExt;
use tracing::{info, warn};

use crate::classroom::files::{PlaceKey, Places, read_stream};
use crate::classroom::range::Ranges;
use crate::classroom::search::{Doc, DocKey, SearchIndex};
use crate::config::EdgeConfig;
use crate::metrics::{Metrics, RequestLabels};
use crate::status::{EdgeStatus, Live};
use crate::sync::SyncError;
use crate::sync::readthrough::{ReadThrough, Unavailable};

/// What the handlers share.
pub struct Classroom {
    pub store: Arc<Store>,
    pub data_dir: PathBuf,
    pub config: EdgeConfig,
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub read_through: Arc<ReadThrough>,
    pub(crate) places: Places,
    /// The search index and the catalog sequence it was built for.
    search: Mutex<Option<(u64, Arc<SearchIndex>)>>,
}

/// A search result with what a page shows of it.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub key: DocKey,
    pub score: f32,
    pub title: LocalizedText,
    pub summary: LocalizedText,
    pub course_title: LocalizedText,
    pub url: String,
}

impl Classroom {
    /// The classroom of the edge in `dir`, over its open store.
    pub fn new(
        dir: &FsPath,
        store: Arc<Store>,
        live: Arc<Live>,
        metrics: Arc<Metrics>,
    ) -> Result<Classroom, SyncError> {
        let config = EdgeConfig::load(dir)?;
        let read_through = Arc::new(ReadThrough::new(
            config.clone(),
            store.clone(),
            live.clone(),
            metrics.clone(),
        )?);
        Ok(Classroom {
            store,
            data_dir: dir.to_owned(),
            config,
            live,
            metrics,
            read_through,
            places: Places::default(),
            search: Mutex::new(None),
        })
    }

    /// The edge's status, with what `edge run` knows live.
    pub async fn status(&self) -> Result<EdgeStatus, SyncError> {
        let (dir, config, store) = (
            self.data_dir.clone(),
            self.config.clone(),
            self.store.clone(),
        );
        let mut status = blocking(move || crate::status::status_of(&dir, &config, &store))
            .await
            .ok_or_else(|| {
                SyncError::Store(catalog::store::StoreError::Index("status stopped".into()))
            })??;
        status.live = Some(self.live.snapshot());
        Ok(status)
    }

    /// Courses and lessons matching `query`, best first.
    pub async fn search(&self, query: String, limit: usize) -> Vec<SearchHit> {
        let store = self.store.clone();
        let cached = crate::lock(&self.search).clone();
        let found = blocking(move || {
            let catalog = catalog(&store)?;
            let index = match cached {
                Some((sequence, index)) if sequence == catalog.sequence => index,
                _ => Arc::new(build_index(&store, &catalog)),
            };
            let hits = index
                .search(&query, limit)
                .into_iter()
                .filter_map(|hit| {
                    let course = course(&store, &catalog, &hit.key.course)?;
                    let (title, summary) = match &hit.key.lesson {
                        Some(id) => {
                            let lesson = lesson(&store, &course, id)?;
                            (lesson.title, lesson.summary)
                        }
                        None => (course.title.clone(), course.description.clone()),
                    };
                    Some(SearchHit {
                        url: crate::classroom::ui::hit_url(&hit.key),
                        key: hit.key,
                        score: hit.score,
                        title,
                        summary,
                        course_title: course.title,
                    })
                })
                .collect::<Vec<_>>();
            Some((catalog.sequence, index, hits))
        })
        .await
        .flatten();
        let Some((sequence, index, hits)) = found else {
            return Vec::new();
        };
        *crate::lock(&self.search) = Some((sequence, index));
        hits
    }
}

/// Every course and lesson of the catalog, as search documents.
fn build_index(store: &Store, catalog: &Catalog) -> SearchIndex {
    let texts = |text: &LocalizedText| text.iter().map(|(_, t)| t.to_owned()).collect::<Vec<_>>();
    let mut docs = Vec::new();
    for id in catalog.courses.keys() {
        let Some(course) = course(store, catalog, id) else {
            continue;
        };
        for lesson_ref in &course.lessons {
            if let Some(lesson) = lesson(store, &course, &lesson_ref.id) {
                docs.push(Doc {
                    key: DocKey {
                        course: course.id.clone(),
                        lesson: Some(lesson.id.clone()),
                    },
                    titles: texts(&lesson.title),
                    summaries: texts(&lesson.summary),
                    tags: lesson.tags.clone(),
                });
            }
        }
        let mut tags = course.tags.clone();
        tags.extend(course.subject.iter().cloned());
        docs.push(Doc {
            key: DocKey {
                course: course.id.clone(),
                lesson: None,
            },
            titles: texts(&course.title),
            summaries: texts(&course.description),
            tags,
        });
    }
    SearchIndex::build(docs)
}

pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Lesson paths can point at new content after a sync; revalidate with the ETag.
pub(crate) const REVALIDATE: &str = "no-cache";
/// Most bytes assembled in memory for a multi-range answer.
const MAX_MULTIPART_BYTES: u64 = 16 * 1024 * 1024;
/// Longest request path looked at, in bytes as sent (percent-encoded). A
/// lesson file's URL is its course id, lesson id and path: 2 KiB holds 220
/// Chinese characters once encoded, far more than any folder name, while a
/// request for a missing path can no longer make the edge hold 60 KB.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest path and query together: room for a long search and a way back.
pub const MAX_TARGET_LEN: usize = 8192;

pub fn router(state: Arc<Classroom>) -> Router {
    Router::new()
        .route("/files/{hash}", get(file_by_hash))
        .route("/courses/{course}/{lesson}/{*path}", get(lesson_file))
        .route("/assets/{course}/{*path}", get(course_file))
        .route("/api/v1/courses", get(api_courses))
        .route("/api/v1/courses/{id}", get(api_course))
        .route("/api/v1/search", get(api_search))
        .route("/api/v1/status", get(api_status))
        .route("/metrics", get(metrics))
        .merge(crate::classroom::ui::router())
        .layer(middleware::from_fn(refuse_long_targets))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Answers 414 to a request whose path or target is over the limits, before
/// any handler decodes it or looks it up.
async fn refuse_long_targets(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri.path().len() > MAX_PATH_LEN || target > MAX_TARGET_LEN {
        return (StatusCode::URI_TOO_LONG, too_long_message()).into_response();
    }
    next.run(request).await
}

/// The body of a 414, from the router and the front door alike.
pub(crate) fn too_long_message() -> String {
    format!(
        "this address is too long: paths may be {MAX_PATH_LEN} bytes and \
         path and query {MAX_TARGET_LEN}; follow a link from the classroom's pages\n"
    )
}

/// Counts each request by route pattern and status.
async fn count_requests(
    State(state): State<Arc<Classroom>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} is not here\n")).into_response()
}

/// The catalog in force (verified when it was synced).
pub(crate) fn catalog(store: &Store) -> Option<Catalog> {
    let signed = store.signed_catalog().ok()??;
    Object::decode(&signed.catalog).ok()?.into_catalog().ok()
}

pub(crate) fn course(store: &Store, catalog: &Catalog, id: &str) -> Option<Course> {
    let entry = catalog.courses.get(id)?;
    store.object(&entry.hash).ok()??.into_course().ok()
}

pub(crate) fn lesson(store: &Store, course: &Course, id: &str) -> Option<Lesson> {
    let lesson_ref = course.lessons.iter().find(|l| l.id == id)?;
    store.object(&lesson_ref.hash).ok()??.into_lesson().ok()
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

async fn file_by_hash(
    State(state): State<Arc<Classroom>>,
    Path(hash): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(blob) = hash.parse::<Hash>() else {
        return not_found("that file");
    };
    let Some(media) = media_of_blob(&state, blob).await else {
        return not_found("that file");
    };
    match open_blob(&state.store, &blob).await {
        Some((file, len)) => {
            state.metrics.cache_hits.inc();
            let held = Held {
                file,
                len,
                blob,
                media: &media,
            };
            serve_blob(&state, held, IMMUTABLE, &method, &headers).await
        }
        None => not_found("that file"),
    }
}

/// The media type of a held blob, remembered after the first look.
pub(crate) async fn media_of_blob(state: &Classroom, blob: Hash) -> Option<String> {
    if let Some(media) = state.places.media(&blob) {
        return Some(media);
    }
    let store = state.store.clone();
    let media = blocking(move || {
        let info = store.blob_info(&blob).ok()??;
        store.manifest(&info.manifest).ok().map(|m| m.media_type)
    })
    .await
    .flatten()?;
    state.places.set_media(blob, &media);
    Some(media)
}

/// Opens a held blob to serve it, or `None` to answer as for a blob not held.
/// An open file stays readable even if it is replaced meanwhile.
///
/// The hot path costs one `fstat` of the open file: its size and identity
/// must be those recorded when it was verified. A file that differs (or is
/// gone) is never served as it is: it is re-hashed on the blocking pool (one
/// re-check per blob at a time, later readers wait for it), served if its
/// bytes are still right, and quarantined otherwise, so the next sync fetches
/// it again ([`catalog::store::OpenedBlob`]).
pub(crate) async fn open_blob(
    store: &Arc<Store>,
    blob: &Hash,
) -> Option<(Arc<std::fs::File>, u64)> {
    match store.open_blob(blob) {
        Ok(OpenedBlob::Verified { file, len }) => return Some((Arc::new(file), len)),
        Ok(OpenedBlob::NotHeld) => return None,
        Ok(OpenedBlob::Changed) => {}
        Err(err) => {
            warn!(blob = %blob, cause = %err, "cannot open a held blob; answering as if not held");
            return None;
        }
    }
    let (store, blob) = (store.clone(), *blob);
    match blocking(move || store.recheck_blob(&blob)).await {
        Some(Ok(Some((file, len)))) => {
            info!(blob = %blob, "a blob's file changed but its bytes are right; serving it");
            Some((Arc::new(file), len))
        }
        Some(Ok(None)) => None,
        Some(Err(err)) => {
            warn!(blob = %blob, cause = %err, "re-checking a changed blob failed; answering as if not held");
            None
        }
        None => None,
    }
}

async fn lesson_file(
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

async fn course_file(
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
    let placed = match state.places.cached(&key) {
        Some(placed) => placed,
        None => {
            let classroom = state.clone();
            blocking(move || classroom.places.look_up(&classroom.store, &key))
                .await
                .flatten()
        }
    };
    let Some(placed) = placed else {
        return not_found("that file");
    };
    if let Some(page) = lesson_html::serve(&state, &placed, &uri, &method, &headers).await {
        return page;
    }
    if let Some((file, len)) = open_blob(&state.store, &placed.blob).await {
        state.metrics.cache_hits.inc();
        let held = Held {
            file,
            len,
            blob: placed.blob,
            media: &placed.media,
        };
        return serve_blob(&state, held, REVALIDATE, &method, &headers).await;
    }
    let store = state.store.clone();
    let manifest_hash = placed.manifest;
    match blocking(move || store.manifest(&manifest_hash)).await {
        Some(Ok(manifest)) => {
            serve_read_through(&state, manifest_hash, manifest, &uri, &method, &headers).await
        }
        _ => not_found("that file"),
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
        format!("this file is not available offline yet: {why}\n"),
    )
        .into_response()
}

fn content_type_of(media: &str) -> String {
    if media.starts_with("text/") {
        format!("{media}; charset=utf-8")
    } else {
        media.to_owned()
    }
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
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| etag_matches(Some(v), &etag));
    let ranges = if if_range_ok {
        range::parse(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            len,
        )
    } else {
        Ranges::Full
    };
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

/// Whether an `If-None-Match` or `If-Range` value names this ETag.
fn etag_matches(value: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// A held, verified blob, opened.
struct Held<'a> {
    file: Arc<std::fs::File>,
    len: u64,
    blob: Hash,
    media: &'a str,
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

fn header_value(text: &str) -> HeaderValue {
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
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| etag_matches(Some(v), &etag));
    let ranges = if if_range_ok {
        range::parse(range_header, len)
    } else {
        Ranges::Full
    };
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

/// Answers from a held blob.
async fn serve_blob(
    state: &Classroom,
    held: Held<'_>,
    cache: &'static str,
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
        AnswerBody::Region { start, end } => response.body(Body::from_stream(counted(
            read_stream(file, start, end),
            state.metrics.clone(),
        ))),
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
                let read = blocking(move || reader.read_exact_at(&mut bytes, at).map(|()| bytes));
                match read.await {
                    Some(Ok(bytes)) => body.extend_from_slice(&bytes),
                    _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

/// `/` and unreserved characters stay; everything else is percent-encoded.
pub fn url_path(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Serialize)]
struct ApiCourse {
    id: String,
    version: u64,
    title: catalog::LocalizedText,
    description: catalog::LocalizedText,
    subject: Option<String>,
    grade: Option<String>,
    languages: Vec<String>,
    tags: Vec<String>,
    total_size: u64,
    lessons: Vec<ApiLesson>,
}

#[derive(Serialize)]
struct ApiLesson {
    id: String,
    title: catalog::LocalizedText,
    summary: catalog::LocalizedText,
    entry: String,
    tags: Vec<String>,
    duration_secs: Option<u32>,
    files: Vec<ApiFile>,
}

#[derive(Serialize)]
struct ApiFile {
    path: String,
    size: u64,
    blake3: Hash,
    media_type: String,
    url: String,
    held: bool,
}

fn api_course_of(store: &Store, course: Course, total_size: u64, with_files: bool) -> ApiCourse {
    let mut lessons = Vec::new();
    for lesson_ref in &course.lessons {
        let Some(lesson) = lesson(store, &course, &lesson_ref.id) else {
            continue;
        };
        let files = if with_files {
            lesson
                .files
                .iter()
                .map(|file| ApiFile {
                    path: file.path.clone(),
                    size: file.size,
                    blake3: file.blob,
                    media_type: store
                        .manifest(&file.manifest)
                        .map(|m| m.media_type)
                        .unwrap_or_default(),
                    url: url_path(&format!(
                        "/courses/{}/{}/{}",
                        course.id, lesson.id, file.path
                    )),
                    held: store.has_blob(&file.blob).unwrap_or(false),
                })
                .collect()
        } else {
            Vec::new()
        };
        lessons.push(ApiLesson {
            id: lesson.id,
            title: lesson.title,
            summary: lesson.summary,
            entry: lesson.entry,
            tags: lesson.tags,
            duration_secs: lesson.duration_secs,
            files,
        });
    }
    ApiCourse {
        id: course.id,
        version: course.version,
        title: course.title,
        description: course.description,
        subject: course.subject,
        grade: course.grade,
        languages: course.languages,
        tags: course.tags,
        total_size,
        lessons,
    }
}

async fn api_courses(State(state): State<Arc<Classroom>>) -> Response {
    let store = state.store.clone();
    let courses = blocking(move || {
        let catalog = catalog(&store)?;
        Some(
            catalog
                .courses
                .iter()
                .filter_map(|(id, entry)| {
                    Some(api_course_of(
                        &store,
                        course(&store, &catalog, id)?,
                        entry.total_size,
                        false,
                    ))
                })
                .collect::<Vec<_>>(),
        )
    })
    .await
    .flatten()
    .unwrap_or_default();
    Json(courses).into_response()
}

async fn api_course(State(state): State<Arc<Classroom>>, Path(id): Path<String>) -> Response {
    let store = state.store.clone();
    let found = blocking(move || {
        let catalog = catalog(&store)?;
        let total = catalog.courses.get(&id)?.total_size;
        Some(api_course_of(
            &store,
            course(&store, &catalog, &id)?,
            total,
            true,
        ))
    })
    .await
    .flatten();
    match found {
        Some(course) => Json(course).into_response(),
        None => not_found("that course"),
    }
}

async fn api_status(State(state): State<Arc<Classroom>>) -> Response {
    match state.status().await {
        Ok(status) => Json(status).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

async fn api_search(
    State(state): State<Arc<Classroom>>,
    Query(params): Query<SearchParams>,
) -> Response {
    let limit = params.limit.unwrap_or(20).min(200);
    Json(state.search(params.q, limit).await).into_response()
}

async fn metrics(State(state): State<Arc<Classroom>>) -> Response {
    let status = state.status().await.ok();
    let live = status
        .as_ref()
        .and_then(|s| s.live.clone())
        .unwrap_or_else(|| state.live.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(status.as_ref(), &live),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            url_path("/courses/数学/01 a/b.mp4"),
            "/courses/%E6%95%B0%E5%AD%A6/01%20a/b.mp4"
        );
        assert_eq!(url_path("/a-b_c.d~e"), "/a-b_c.d~e");
    }
}
