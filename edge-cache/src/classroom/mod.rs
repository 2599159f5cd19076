//! The classroom HTTP server: lesson files and the JSON API, from the edge's store.
//!
//! Every route is in one table, [`routes::ROUTES`], read by the router built
//! here and by the sendfile front door alike:
//!
//! - `GET|HEAD /files/<blake3>`: a file by content; immutable.
//! - `GET|HEAD /courses/<course>/<lesson>/<path>`: a lesson's file by its place,
//!   so a lesson's HTML finds its images and videos by relative links.
//! - `GET|HEAD /assets/<course>/<path>`: a course-level file (cover, syllabus).
//! - `GET /api/v1/courses`, `/api/v1/courses/<id>`, `/api/v1/search?q=`,
//!   `/api/v1/status`: JSON.
//! - `GET /metrics`: Prometheus.
//! - The pages people read: see [`ui`].
//!
//! # Modules
//! - [`routes`]: the route table, path matching and decoding, and the
//!   percent-encoding of the links the classroom writes.
//! - [`front`]: the HTTP/1.1 front door — held files by `sendfile`, every
//!   other request by hyper and the router, one request at a time, so a
//!   connection that once went to hyper still gets `sendfile` later;
//!   [`front::gate`]: its connection limits.
//! - [`serve`]: the file routes — held files from disk, the rest read
//!   through from the origin ([`crate::sync::readthrough`]); [`answer`]: the
//!   status, headers and body range of an answer for a held file (ranges,
//!   `ETag`, conditionals), shared by both doors; [`range`]: `Range` parsing.
//! - [`files`]: where lesson files are (bounded caches) and reading them in
//!   recycled blocks.
//! - [`api`]: the JSON API, `/metrics`, and search hits for the API and pages;
//!   [`search`]: the search index.
//! - [`ui`]: the pages; [`i18n`]: their labels in four languages.
//! - [`error`]: store and I/O failures, answered 500 with their cause logged.
//!
//! Requests whose path is over [`MAX_PATH_LEN`] bytes, or whose path and
//! query are over [`MAX_TARGET_LEN`], are answered 414 before any route looks
//! at them (issue 11), and every cache the classroom keeps is bounded (see
//! [`files`]).
//!
//! Files support single and multiple byte ranges, `ETag` (the BLAKE3 of the
//! file), `If-None-Match` and `If-Range`. A file is served from disk only once
//! it is complete and verified in `blobs/`; partial files are never visible.
//! A lesson file not held yet is read through from the origin, each chunk
//! verified before it is sent. A store or disk failure is a 500 with its
//! cause logged, never an empty answer (issue 12).

pub mod answer;
pub mod api;
pub mod error;
pub mod files;
pub mod front;
pub mod i18n;
pub mod lesson_html;
pub mod media;
pub mod range;
pub mod routes;
pub mod search;
pub mod serve;
pub mod ui;

use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, head, post};
use catalog::{Catalog, Course, Lesson, Object, Store};

use crate::classroom::error::ReadError;
use crate::classroom::files::{Buffers, Places};
use crate::classroom::routes::{Kind, Route};
use crate::config::EdgeConfig;
use crate::metrics::{Metrics, RequestLabels};
use crate::status::{EdgeStatus, Live};
use crate::sync::SyncError;
use crate::sync::readthrough::ReadThrough;
use crate::teachers::pages as teach;

pub use crate::classroom::routes::url_path;

/// What the handlers share.
pub struct Classroom {
    pub store: Arc<Store>,
    pub data_dir: PathBuf,
    pub config: EdgeConfig,
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub read_through: Arc<ReadThrough>,
    /// Lesson opens and bytes served, per lesson per day (issue 15).
    pub usage: Arc<crate::report::Usage>,
    pub(crate) places: Places,
    /// Spare buffers for reading files.
    pub(crate) buffers: Arc<Buffers>,
    /// The search index and the catalog sequence it was built for.
    search: Mutex<Option<Arc<api::Indexed>>>,
    /// Teachers' logins and uploads (issue 17).
    pub teachers: Arc<crate::teachers::Teachers>,
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
            usage: Arc::new(crate::report::Usage::new(dir)),
            places: Places::default(),
            buffers: Arc::default(),
            search: Mutex::new(None),
            teachers: Arc::new(
                crate::teachers::Teachers::open(dir, 64 << 20)
                    .map_err(|err| SyncError::Teachers(Box::new(err)))?,
            ),
        })
    }

    /// The edge's status, with what `edge run` knows live.
    pub async fn status(&self) -> Result<EdgeStatus, ReadError> {
        let (dir, config, store) = (
            self.data_dir.clone(),
            self.config.clone(),
            self.store.clone(),
        );
        let mut status = read(move || {
            crate::status::status_of(&dir, &config, &store)
                .map_err(|err| ReadError::Status(Box::new(err)))
        })
        .await?;
        status.live = Some(self.live.snapshot());
        Ok(status)
    }
}

pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Lesson paths can point at new content after a sync; revalidate with the ETag.
pub(crate) const REVALIDATE: &str = "no-cache";
/// Most bytes assembled in memory for a multi-range answer.
pub(crate) const MAX_MULTIPART_BYTES: u64 = 16 * 1024 * 1024;
/// Longest request path looked at, in bytes as sent (percent-encoded). A
/// lesson file's URL is its course id, lesson id and path: 2 KiB holds 220
/// Chinese characters once encoded, far more than any folder name, while a
/// request for a missing path can no longer make the edge hold 60 KB.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest path and query together: room for a long search and a way back.
pub const MAX_TARGET_LEN: usize = 8192;

/// The classroom's router: every route of [`routes::ROUTES`] with its handler.
pub fn router(state: Arc<Classroom>) -> Router {
    routes::table_router(handler)
        .layer(middleware::from_fn(refuse_long_targets))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The handler of a route.
fn handler(route: &Route) -> MethodRouter<Arc<Classroom>> {
    match route.kind {
        Kind::FileByHash => get(serve::file_by_hash),
        Kind::LessonFile => get(serve::lesson_file),
        Kind::CourseFile => get(serve::course_file),
        Kind::ApiCourses => get(api::list_courses),
        Kind::ApiCourse => get(api::one_course),
        Kind::ApiSearch => get(api::search_json),
        Kind::ApiStatus => get(api::status_json),
        Kind::Metrics => get(api::metrics),
        Kind::HomePage => get(ui::pages::home),
        Kind::CoursePage => get(ui::pages::course_page),
        Kind::LessonPage => get(ui::lesson::lesson_page),
        Kind::SearchPage => get(ui::pages::search_page),
        Kind::StatusPage => get(ui::status::status_page),
        Kind::SyncNow => post(ui::status::sync_now),
        Kind::Language => get(ui::lang::set_language),
        Kind::Style => get(ui::lang::style),
        Kind::Font => get(ui::lang::font),
        Kind::Teach => get(teach::home),
        Kind::TeachLogin => post(teach::login),
        Kind::TeachLogout => post(teach::logout),
        Kind::TeachUploads => post(teach::create_upload),
        Kind::TeachUpload => head(teach::upload_offset)
            .patch(teach::append_upload)
            .delete(teach::delete_upload),
        // A form's files stream to disk; the limit is the upload limit's.
        Kind::TeachLessons => post(teach::create_lesson).layer(DefaultBodyLimit::disable()),
        Kind::TeachLesson => post(teach::change_lesson),
    }
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

pub(crate) fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("{what} is not here\n")).into_response()
}

/// The catalog in force (verified when it was synced) with the school's own
/// course added ([`crate::teachers::shelf`]); `None` before the first sync.
pub(crate) fn catalog(store: &Store) -> Result<Option<Catalog>, ReadError> {
    let Some(signed) = store
        .signed_catalog()
        .map_err(|err| ReadError::Catalog(Box::new(err)))?
    else {
        return Ok(None);
    };
    let catalog = Object::decode(&signed.catalog)
        .and_then(Object::into_catalog)
        .map_err(ReadError::BadCatalog)?;
    crate::teachers::shelf::merge(store, catalog)
        .map(Some)
        .map_err(|err| ReadError::Catalog(Box::new(err)))
}

/// The chunking profile of the catalog in force, for files stored at the
/// edge itself (so they share chunks with what the origin sent).
pub(crate) fn catalog_profile(store: &Store) -> Option<catalog::ChunkingProfile> {
    let signed = store.signed_catalog().ok()??;
    let catalog = Object::decode(&signed.catalog).ok()?.into_catalog().ok()?;
    Some(catalog.chunking)
}

/// An object the catalog in force names: it must be in the store.
fn named_object(
    store: &Store,
    what: &'static str,
    hash: catalog::Hash,
) -> Result<Object, ReadError> {
    store
        .object(&hash)
        .map_err(ReadError::object(what, hash))?
        .ok_or(ReadError::MissingObject { what, hash })
}

/// The course `id` of `catalog`; `None` if the catalog has no such course.
pub(crate) fn course(
    store: &Store,
    catalog: &Catalog,
    id: &str,
) -> Result<Option<Course>, ReadError> {
    let Some(entry) = catalog.courses.get(id) else {
        return Ok(None);
    };
    let hash = entry.hash;
    named_object(store, "course", hash)?
        .into_course()
        .map(Some)
        .map_err(|source| ReadError::WrongKind {
            what: "course",
            hash,
            source,
        })
}

/// The lesson `id` of `course`; `None` if the course has no such lesson.
pub(crate) fn lesson(
    store: &Store,
    course: &Course,
    id: &str,
) -> Result<Option<Lesson>, ReadError> {
    let Some(lesson_ref) = course.lessons.iter().find(|l| l.id == id) else {
        return Ok(None);
    };
    let hash = lesson_ref.hash;
    named_object(store, "lesson", hash)?
        .into_lesson()
        .map(Some)
        .map_err(|source| ReadError::WrongKind {
            what: "lesson",
            hash,
            source,
        })
}

/// Runs a store read on the blocking pool.
pub(crate) async fn read<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| ReadError::Stopped)?
}
