//! The course list (`/`), a course (`/course/<id>`) and search results
//! (`/search?q=`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use catalog::tr;
use catalog::{Catalog, Course, Hash, Lesson, Store};
use maud::{Markup, html};
use serde::Deserialize;

use crate::classroom::error::ReadError;
use crate::classroom::i18n::Lang;
use crate::classroom::media;
use crate::classroom::ui::{
    Reader, SLOT, course_meta, error_page, held_badge, hit_url, not_found_page, page, pick,
    sentence, titled,
};
use crate::classroom::{self, Classroom, read, url_path};

/// Whether the store holds a blob.
pub(crate) fn has_blob(store: &Store, blob: &Hash) -> Result<bool, ReadError> {
    store
        .has_blob(blob)
        .map_err(ReadError::object("the record of held file", *blob))
}

/// A course with its lessons, as the pages need it.
struct Shelf {
    course: Course,
    /// Each lesson, and whether every file of it is held.
    lessons: Vec<(Lesson, bool)>,
    files: usize,
    files_held: usize,
}

impl Shelf {
    fn load(store: &Store, catalog: &Catalog, id: &str) -> Result<Option<Shelf>, ReadError> {
        let Some(course) = classroom::course(store, catalog, id)? else {
            return Ok(None);
        };
        let (mut files, mut files_held) = (0, 0);
        for file in &course.files {
            files += 1;
            files_held += usize::from(has_blob(store, &file.blob)?);
        }
        let mut lessons = Vec::new();
        for lesson_ref in &course.lessons {
            let Some(lesson) = classroom::lesson(store, &course, &lesson_ref.id)? else {
                continue;
            };
            let mut all_held = true;
            for file in &lesson.files {
                let held = has_blob(store, &file.blob)?;
                files += 1;
                files_held += usize::from(held);
                all_held &= held;
            }
            lessons.push((lesson, all_held));
        }
        Ok(Some(Shelf {
            course,
            lessons,
            files,
            files_held,
        }))
    }

    fn held(&self) -> bool {
        self.files_held == self.files
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Filters {
    subject: Option<String>,
    grade: Option<String>,
    language: Option<String>,
}

fn chosen(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

pub(crate) async fn home(
    State(state): State<Arc<Classroom>>,
    Query(filters): Query<Filters>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let store = state.store.clone();
    let shelves = read(move || {
        let Some(catalog) = classroom::catalog(&store)? else {
            return Ok(Vec::new());
        };
        let mut shelves = Vec::new();
        for id in catalog.courses.keys() {
            shelves.extend(Shelf::load(&store, &catalog, id)?);
        }
        Ok(shelves)
    })
    .await;
    let shelves = match shelves {
        Ok(shelves) => shelves,
        Err(err) => return error_page(lang, here, &err),
    };
    let subjects: BTreeSet<&str> = shelves
        .iter()
        .filter_map(|shelf| shelf.course.subject.as_deref())
        .collect();
    let grades: BTreeSet<&str> = shelves
        .iter()
        .filter_map(|shelf| shelf.course.grade.as_deref())
        .collect();
    let languages: BTreeSet<&str> = shelves
        .iter()
        .flat_map(|shelf| shelf.course.languages.iter().map(String::as_str))
        .collect();
    let shown: Vec<&Shelf> = shelves
        .iter()
        .filter(|shelf| {
            let course = &shelf.course;
            chosen(&filters.subject).is_none_or(|v| course.subject.as_deref() == Some(v))
                && chosen(&filters.grade).is_none_or(|v| course.grade.as_deref() == Some(v))
                && chosen(&filters.language).is_none_or(|v| course.languages.iter().any(|l| l == v))
        })
        .collect();
    let body = html! {
        h1 { (tr!(lang, "courses")) }
        form.filters action="/" method="get" {
            (filter_select(lang, "subject", &tr!(lang, "subject"), &subjects, chosen(&filters.subject)))
            (filter_select(lang, "grade", &tr!(lang, "grade"), &grades, chosen(&filters.grade)))
            (filter_select(lang, "language", &tr!(lang, "language"), &languages, chosen(&filters.language)))
            button type="submit" { (tr!(lang, "filter")) }
        }
        @if shown.is_empty() {
            p { (tr!(lang, "no-courses")) }
        }
        ul.cards #courses {
            @for shelf in &shown {
                li.card data-course=(shelf.course.id) {
                    @if let Some(cover) = media::cover(shelf.course.files.iter().map(|f| f.path.as_str())) {
                        img.cover src=(url_path(&format!("/assets/{}/{cover}", shelf.course.id))) alt="" loading="lazy";
                    }
                    h2 { a href=(url_path(&format!("/course/{}", shelf.course.id))) {
                        (titled(&shelf.course.title, lang, &shelf.course.id))
                    } }
                    @if let Some((text, code)) = pick(&shelf.course.description, lang) {
                        p lang=(code) { (text) }
                    }
                    (course_meta(lang, &shelf.course)) " "
                    (held_badge(lang, shelf.held()))
                    @if shelf.course.id == crate::teachers::shelf::COURSE_ID {
                        " " span.badge.school { (tr!(lang, "this-school")) }
                    }
                }
            }
        }
    };
    page(lang, here, &tr!(lang, "courses"), body)
}

/// One filter of the course list, with "all" first.
fn filter_select(
    lang: Lang,
    name: &str,
    label: &str,
    values: &BTreeSet<&str>,
    current: Option<&str>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { (tr!(lang, "all")) }
                @for value in values {
                    option value=(value) selected[current == Some(*value)] {
                        @match Lang::from_code(value).filter(|_| name == "language") {
                            Some(lang) => { (lang.name()) },
                            None => { (value) },
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn course_page(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let store = state.store.clone();
    let shelf = read(move || match classroom::catalog(&store)? {
        Some(catalog) => Shelf::load(&store, &catalog, &id),
        None => Ok(None),
    })
    .await;
    let shelf = match shelf {
        Ok(Some(shelf)) => shelf,
        Ok(None) => return not_found_page(lang, here),
        Err(err) => return error_page(lang, here, &err),
    };
    let course = &shelf.course;
    let title = pick(&course.title, lang).map_or(course.id.as_str(), |(t, _)| t);
    let body = html! {
        h1 { (titled(&course.title, lang, &course.id)) }
        @if let Some((text, code)) = pick(&course.description, lang) {
            p lang=(code) { (text) }
        }
        p { (course_meta(lang, course)) " " (held_badge(lang, shelf.held())) }
        h2 { (tr!(lang, "lessons-heading")) }
        ol.cards #lessons {
            @for (lesson, held) in &shelf.lessons {
                li.card data-lesson=(lesson.id) {
                    @if let Some(picture) = media::lesson_picture(lesson.files.iter().map(|f| f.path.as_str())) {
                        img.cover src=(url_path(&format!("/courses/{}/{}/{picture}", course.id, lesson.id))) alt="" loading="lazy";
                    }
                    h3 { a href=(url_path(&format!("/course/{}/{}", course.id, lesson.id))) {
                        (titled(&lesson.title, lang, &lesson.id))
                    } }
                    @if let Some((text, code)) = pick(&lesson.summary, lang) {
                        p lang=(code) { (text) }
                    }
                    @if let Some(secs) = lesson.duration_secs {
                        span.meta { (tr!(lang, "duration-minutes", minutes = secs / 60)) " " }
                    }
                    (held_badge(lang, *held))
                }
            }
        }
    };
    page(lang, here, title, body)
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(crate) async fn search_page(
    State(state): State<Arc<Classroom>>,
    Query(query): Query<SearchQuery>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let hits = match state.search(query.q.clone(), 50).await {
        Ok(hits) => hits,
        Err(err) => return error_page(lang, here, &err),
    };
    let body = html! {
        h1 { (sentence(&tr!(lang, "results-for", query = SLOT), html! { q lang=(catalog::text::guess_language(&query.q)) { (query.q) } })) }
        @if hits.is_empty() {
            p #no-results { (tr!(lang, "no-results")) }
        }
        ol.cards #results {
            @for hit in &hits {
                li.card {
                    h2 { a href=(hit_url(&hit.key)) { (titled(&hit.title, lang, &hit.key.course)) } }
                    @if hit.key.lesson.is_some() {
                        p.meta { (titled(&hit.course_title, lang, &hit.key.course)) }
                    }
                    @if let Some((text, code)) = pick(&hit.summary, lang) {
                        p lang=(code) { (text) }
                    }
                }
            }
        }
    };
    page(lang, here, &tr!(lang, "search"), body)
}
