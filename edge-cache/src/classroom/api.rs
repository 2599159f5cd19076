//! The JSON API (`/api/v1/courses`, `/api/v1/courses/<id>`,
//! `/api/v1/search`, `/api/v1/status`), `/metrics`, and the search hits the
//! API and the search page share. A store read that fails is a 500 with its
//! cause logged ([`ReadError::answer`]), never an empty list (issue 12).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Json, Response};
use catalog::{Catalog, Course, Hash, LocalizedText, Store};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::classroom::error::{ReadError, chain};
use crate::classroom::media;
use crate::classroom::search::{Doc, DocKey, SearchIndex};
use crate::classroom::{Classroom, catalog, course, lesson, not_found, read, url_path};

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
    /// Courses and lessons matching `query`, best first.
    pub async fn search(&self, query: String, limit: usize) -> Result<Vec<SearchHit>, ReadError> {
        let store = self.store.clone();
        let cached = crate::lock(&self.search).clone();
        let found = read(move || {
            let Some(catalog) = catalog(&store)? else {
                return Ok(None);
            };
            // The school's own course changes without a new catalog.
            let local = crate::teachers::shelf::local_catalog(&store)
                .map_err(|err| ReadError::Catalog(Box::new(err)))?
                .map(|(hash, _)| hash);
            let index = match cached {
                Some(cached) if cached.fresh(catalog.sequence, local) => cached,
                _ => Arc::new(Indexed {
                    sequence: catalog.sequence,
                    local,
                    built: Instant::now(),
                    index: build_index(&store, &catalog)?,
                }),
            };
            let mut hits = Vec::new();
            for hit in index.index.search(&query, limit) {
                let Some(course) = course(&store, &catalog, &hit.key.course)? else {
                    continue;
                };
                let (title, summary) = match &hit.key.lesson {
                    Some(id) => match lesson(&store, &course, id)? {
                        Some(lesson) => (lesson.title, lesson.summary),
                        None => continue,
                    },
                    None => (course.title.clone(), course.description.clone()),
                };
                hits.push(SearchHit {
                    url: crate::classroom::ui::hit_url(&hit.key),
                    key: hit.key,
                    score: hit.score,
                    title,
                    summary,
                    course_title: course.title,
                });
            }
            Ok(Some((index, hits)))
        })
        .await?;
        let Some((index, hits)) = found else {
            return Ok(Vec::new());
        };
        *crate::lock(&self.search) = Some(index);
        Ok(hits)
    }
}

/// The search index of one catalog, as the classroom keeps it.
pub(crate) struct Indexed {
    sequence: u64,
    /// The school's own catalog it was built with.
    local: Option<Hash>,
    built: Instant,
    index: Built,
}

/// An index, and whether every subtitle file was held when it was built.
struct Built {
    index: SearchIndex,
    complete: bool,
}

impl Built {
    fn search(&self, query: &str, limit: usize) -> Vec<crate::classroom::search::Hit> {
        self.index.search(query, limit)
    }
}

/// How long an index built before every subtitle file arrived is kept
/// before it is built again with what has arrived since.
const REINDEX_INCOMPLETE: Duration = Duration::from_secs(60);

impl Indexed {
    /// Whether it may answer for catalog `sequence`.
    fn fresh(&self, sequence: u64, local: Option<Hash>) -> bool {
        self.sequence == sequence
            && self.local == local
            && (self.index.complete || self.built.elapsed() < REINDEX_INCOMPLETE)
    }
}

/// The words of a held subtitle file (at most [`media::MAX_CUE_TEXT`] of
/// it read); `None` when it is not held.
fn subtitle_text(store: &Store, blob: &Hash) -> Result<Option<String>, ReadError> {
    use std::io::Read as _;
    let opened = store.open_blob(blob).map_err(ReadError::open_blob(*blob))?;
    let catalog::store::OpenedBlob::Verified { file, .. } = opened else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(media::MAX_CUE_TEXT as u64)
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::ReadBlob {
            blob: *blob,
            source,
        })?;
    Ok(Some(media::cue_text(&String::from_utf8_lossy(&bytes))))
}

/// Every course and lesson of the catalog, as search documents.
fn build_index(store: &Store, catalog: &Catalog) -> Result<Built, ReadError> {
    let mut complete = true;
    let texts = |text: &LocalizedText| text.iter().map(|(_, t)| t.to_owned()).collect::<Vec<_>>();
    let mut docs = Vec::new();
    for id in catalog.courses.keys() {
        let Some(course) = course(store, catalog, id)? else {
            continue;
        };
        for lesson_ref in &course.lessons {
            if let Some(lesson) = lesson(store, &course, &lesson_ref.id)? {
                let mut spoken = Vec::new();
                for file in lesson.files.iter().filter(|f| media::is_subtitles(&f.path)) {
                    match subtitle_text(store, &file.blob)? {
                        Some(text) => spoken.push(text),
                        None => complete = false,
                    }
                }
                docs.push(Doc {
                    spoken,
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
            spoken: Vec::new(),
        });
    }
    Ok(Built {
        index: SearchIndex::build(docs),
        complete,
    })
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct ApiLesson {
    id: String,
    title: catalog::LocalizedText,
    summary: catalog::LocalizedText,
    entry: String,
    tags: Vec<String>,
    duration_secs: Option<u32>,
    files: Vec<ApiFile>,
}

#[derive(Debug, Serialize)]
struct ApiFile {
    path: String,
    size: u64,
    blake3: Hash,
    media_type: String,
    url: String,
    held: bool,
}

fn api_course_of(
    store: &Store,
    course: Course,
    total_size: u64,
    with_files: bool,
) -> Result<ApiCourse, ReadError> {
    let mut lessons = Vec::new();
    for lesson_ref in &course.lessons {
        let Some(lesson) = lesson(store, &course, &lesson_ref.id)? else {
            continue;
        };
        let mut files = Vec::new();
        if with_files {
            for file in &lesson.files {
                let manifest = store
                    .manifest(&file.manifest)
                    .map_err(ReadError::object("manifest", file.manifest))?;
                let held = store
                    .has_blob(&file.blob)
                    .map_err(ReadError::object("the record of held file", file.blob))?;
                files.push(ApiFile {
                    path: file.path.clone(),
                    size: file.size,
                    blake3: file.blob,
                    media_type: manifest.media_type,
                    url: url_path(&format!(
                        "/courses/{}/{}/{}",
                        course.id, lesson.id, file.path
                    )),
                    held,
                });
            }
        }
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
    Ok(ApiCourse {
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
    })
}

/// Every course of the catalog in force (none before the first sync).
fn all_courses(store: &Store) -> Result<Vec<ApiCourse>, ReadError> {
    let Some(catalog) = catalog(store)? else {
        return Ok(Vec::new());
    };
    let mut courses = Vec::new();
    for (id, entry) in &catalog.courses {
        if let Some(course) = course(store, &catalog, id)? {
            courses.push(api_course_of(store, course, entry.total_size, false)?);
        }
    }
    Ok(courses)
}

pub(crate) async fn list_courses(State(state): State<Arc<Classroom>>, uri: Uri) -> Response {
    let store = state.store.clone();
    let courses = read(move || all_courses(&store)).await;
    match courses {
        Ok(courses) => Json(courses).into_response(),
        Err(err) => err.answer(uri.path()),
    }
}

pub(crate) async fn one_course(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    uri: Uri,
) -> Response {
    let store = state.store.clone();
    let found = read(move || {
        let Some(catalog) = catalog(&store)? else {
            return Ok(None);
        };
        let Some(total) = catalog.courses.get(&id).map(|entry| entry.total_size) else {
            return Ok(None);
        };
        match course(&store, &catalog, &id)? {
            Some(course) => api_course_of(&store, course, total, true).map(Some),
            None => Ok(None),
        }
    })
    .await;
    match found {
        Ok(Some(course)) => Json(course).into_response(),
        Ok(None) => not_found("that course"),
        Err(err) => err.answer(uri.path()),
    }
}

pub(crate) async fn status_json(State(state): State<Arc<Classroom>>, uri: Uri) -> Response {
    match state.status().await {
        Ok(status) => Json(status).into_response(),
        Err(err) => err.answer(uri.path()),
    }
}

#[derive(Deserialize)]
pub(crate) struct SearchParams {
    #[serde(default)]
    q: String,
    limit: Option<usize>,
}

pub(crate) async fn search_json(
    State(state): State<Arc<Classroom>>,
    Query(params): Query<SearchParams>,
    uri: Uri,
) -> Response {
    let limit = params.limit.unwrap_or(20).min(200);
    match state.search(params.q, limit).await {
        Ok(hits) => Json(hits).into_response(),
        Err(err) => err.answer(uri.path()),
    }
}

/// The metrics; a status that cannot be read leaves its gauges out (and is
/// logged) rather than failing the scrape, so the counters still arrive.
pub(crate) async fn metrics(State(state): State<Arc<Classroom>>) -> Response {
    let status = match state.status().await {
        Ok(status) => Some(status),
        Err(err) => {
            warn!(cause = %chain(&err), "the metrics leave out the edge's status");
            None
        }
    };
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
    use std::collections::BTreeMap;
    use std::error::Error as _;

    use catalog::{CatalogEntry, ChunkingProfile, Object, SignedCatalog};

    use super::*;

    fn signed(catalog_bytes: Vec<u8>) -> SignedCatalog {
        SignedCatalog {
            catalog: catalog_bytes,
            signature: vec![0; 64],
            roots: Vec::new(),
        }
    }

    /// Issue 12: a store whose catalog or course cannot be read gave the API
    /// an empty list, a 200 that said "no courses". It is an error now (the
    /// handler answers 500 with it), with its cause kept as a `source()`.
    #[test]
    fn a_store_that_cannot_be_read_is_an_error_not_an_empty_list_issue_12() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("store");
        assert!(all_courses(&store).expect("no catalog yet").is_empty());

        store
            .set_signed_catalog(&signed(b"not a catalog".to_vec()))
            .expect("set");
        let err = all_courses(&store).expect_err("a catalog that does not decode");
        assert!(matches!(err, ReadError::BadCatalog(_)), "{err:?}");
        assert!(err.source().is_some(), "the decode error is kept");

        let missing = Hash::of(b"a course object never stored");
        let catalog = Catalog {
            sequence: 7,
            published_at: 0,
            chunking: ChunkingProfile::default(),
            courses: BTreeMap::from([(
                "math".to_owned(),
                CatalogEntry {
                    hash: missing,
                    version: 1,
                    total_size: 10,
                },
            )]),
            expires_at: 0,
            withdrawn: BTreeMap::new(),
        };
        store
            .set_signed_catalog(&signed(Object::Catalog(catalog).encode()))
            .expect("set");
        let err = all_courses(&store).expect_err("a course named but not stored");
        assert!(
            matches!(err, ReadError::MissingObject { hash, .. } if hash == missing),
            "{err:?}"
        );
        assert!(err.to_string().contains(&missing.to_string()), "{err}");
    }
}
