//! The classroom HTTP server: lesson files and the JSON API, from the edge's store.
//!
//! - `GET|HEAD /files/<blake3>`: a file by content; immutable.
//! - `GET|HEAD /courses/<course>/<lesson>/<path>`: a lesson's file by its place,
//!   so a lesson's HTML finds its images and videos by relative links.
//! - `GET|HEAD /assets/<course>/<path>`: a course-level file (cover, syllabus).
//! - `GET /api/v1/courses`, `/api/v1/courses/<id>`, `/api/v1/status`: JSON.
//!
//! Files support single and multiple byte ranges, `ETag` (the BLAKE3 of the
//! file), `If-None-Match` and `If-Range`. A file is served only once it is
//! complete and verified in `blobs/`; partial files are never visible.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use catalog::{Catalog, Course, FileEntry, Hash, Lesson, Object, Store};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::range::{self, Ranges};

/// What the handlers share.
pub struct Classroom {
    pub store: Arc<Store>,
    pub data_dir: PathBuf,
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Lesson paths can point at new content after a sync; revalidate with the ETag.
const REVALIDATE: &str = "no-cache";
/// Most bytes assembled in memory for a multi-range answer.
const MAX_MULTIPART_BYTES: u64 = 16 * 1024 * 1024;

pub fn router(state: Arc<Classroom>) -> Router {
    Router::new()
        .route("/files/{hash}", get(file_by_hash))
        .route("/courses/{course}/{lesson}/{*path}", get(lesson_file))
        .route("/assets/{course}/{*path}", get(course_file))
        .route("/api/v1/courses", get(api_courses))
        .route("/api/v1/courses/{id}", get(api_course))
        .route("/api/v1/status", get(api_status))
        .with_state(state)
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} is not here\n")).into_response()
}

/// The catalog in force (verified when it was synced).
fn catalog(store: &Store) -> Option<Catalog> {
    let signed = store.signed_catalog().ok()??;
    Object::decode(&signed.catalog).ok()?.into_catalog().ok()
}

fn course(store: &Store, catalog: &Catalog, id: &str) -> Option<Course> {
    let entry = catalog.courses.get(id)?;
    store.object(&entry.hash).ok()??.into_course().ok()
}

fn lesson(store: &Store, course: &Course, id: &str) -> Option<Lesson> {
    let lesson_ref = course.lessons.iter().find(|l| l.id == id)?;
    store.object(&lesson_ref.hash).ok()??.into_lesson().ok()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
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
    let store = state.store.clone();
    let media = blocking(move || {
        let info = store.blob_info(&blob).ok()??;
        store.manifest(&info.manifest).ok().map(|m| m.media_type)
    })
    .await
    .flatten();
    match media {
        Some(media) => serve_blob(&state, blob, &media, IMMUTABLE, &method, &headers).await,
        None => not_found("that file"),
    }
}

async fn lesson_file(
    State(state): State<Arc<Classroom>>,
    Path((course_id, lesson_id, path)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    serve_placed(
        state,
        method,
        headers,
        move |store, course| {
            let lesson = lesson(store, course, &lesson_id)?;
            lesson.files.into_iter().find(|f| f.path == path)
        },
        course_id,
    )
    .await
}

async fn course_file(
    State(state): State<Arc<Classroom>>,
    Path((course_id, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    serve_placed(
        state,
        method,
        headers,
        move |_, course| course.files.iter().find(|f| f.path == path).cloned(),
        course_id,
    )
    .await
}

/// Serves the file `find` picks out of a course in the catalog in force.
async fn serve_placed(
    state: Arc<Classroom>,
    method: Method,
    headers: HeaderMap,
    find: impl FnOnce(&Store, &Course) -> Option<FileEntry> + Send + 'static,
    course_id: String,
) -> Response {
    let store = state.store.clone();
    let found = blocking(move || {
        let catalog = catalog(&store)?;
        let course = course(&store, &catalog, &course_id)?;
        media_of(&store, find(&store, &course)?)
    })
    .await
    .flatten();
    match found {
        Some((blob, media)) => {
            serve_blob(&state, blob, &media, REVALIDATE, &method, &headers).await
        }
        None => not_found("that file"),
    }
}

fn media_of(store: &Store, file: FileEntry) -> Option<(Hash, String)> {
    let manifest = store.manifest(&file.manifest).ok()?;
    Some((file.blob, manifest.media_type))
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

async fn serve_blob(
    state: &Classroom,
    blob: Hash,
    media: &str,
    cache: &'static str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let path = state.store.blob_path(&blob);
    // Opening the file keeps it readable even if it is evicted meanwhile.
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this file is not available offline yet\n",
        )
            .into_response();
    };
    let Ok(meta) = file.metadata().await else {
        return not_found("that file");
    };
    let len = meta.len();
    let etag = format!("\"{blob}\"");
    let content_type = if media.starts_with("text/") {
        format!("{media}; charset=utf-8")
    } else {
        media.to_owned()
    };
    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ACCEPT_RANGES, "bytes");

    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
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
    let built = match ranges {
        Ranges::Unsatisfiable => response
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty()),
        Ranges::Parts(parts) if parts.len() == 1 => {
            let part = parts[0].clone();
            response = response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_TYPE, &content_type)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{len}", part.start, part.end - 1),
                )
                .header(header::CONTENT_LENGTH, part.end - part.start);
            if head {
                response.body(Body::empty())
            } else {
                if file
                    .seek(std::io::SeekFrom::Start(part.start))
                    .await
                    .is_err()
                {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                response.body(Body::from_stream(tokio_util::io::ReaderStream::new(
                    file.take(part.end - part.start),
                )))
            }
        }
        Ranges::Parts(parts)
            if parts.iter().map(|p| p.end - p.start).sum::<u64>() <= MAX_MULTIPART_BYTES =>
        {
            let boundary = format!("shanlu-{}", blob.fmt_short());
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
                let mut bytes = vec![0u8; (part.end - part.start) as usize];
                if file
                    .seek(std::io::SeekFrom::Start(part.start))
                    .await
                    .is_err()
                    || file.read_exact(&mut bytes).await.is_err()
                {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                body.extend_from_slice(&bytes);
            }
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            response = response
                .status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                )
                .header(header::CONTENT_LENGTH, body.len());
            response.body(if head {
                Body::empty()
            } else {
                Body::from(body)
            })
        }
        Ranges::Full | Ranges::Parts(_) => {
            response = response
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, &content_type)
                .header(header::CONTENT_LENGTH, len);
            if head {
                response.body(Body::empty())
            } else {
                response.body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
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
    let dir = state.data_dir.clone();
    match blocking(move || crate::status::status(&dir)).await {
        Some(Ok(status)) => Json(status).into_response(),
        Some(Err(err)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
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
