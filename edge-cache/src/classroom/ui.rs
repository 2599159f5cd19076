//! The classroom's pages: server-rendered HTML that works without scripts,
//! on a 360-px phone and on an old desktop browser.
//!
//! - `/`: the courses, filtered by subject, grade and language.
//! - `/course/<id>`: a course and its lessons.
//! - `/course/<id>/<lesson>`: a lesson: its HTML in a frame (so its relative
//!   links work), players for video and audio, links for other files.
//! - `/search?q=`: courses and lessons matching in any of the four languages.
//! - `/status`: for the school's IT teacher; its "sync now" button posts to
//!   `/status/sync-now` (POST only, and only with an `Origin` or `Referer`
//!   naming this edge, so other sites' pages cannot start syncs).
//! - `/lang/<code>`: remembers the reader's language in a cookie and goes
//!   back to a path on this edge ([`safe_back`]), never elsewhere.
//! - `/static/…`: the style sheet and the Yi and Tibetan fonts.
//!
//! Titles are shown in the reader's language with a fallback, each marked
//! with the `lang` it is really in, so browsers pick the right font.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use catalog::format;
use catalog::{Catalog, Course, FileEntry, Lesson, LocalizedText, Store};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::classroom::i18n::{self, Lang, Strings};
use crate::classroom::search::DocKey;
use crate::classroom::{self, Classroom, url_path};
use crate::sync::readthrough::Unavailable;

const STYLE: &str = include_str!("../../assets/style.css");
const FONT_YI: &[u8] = include_bytes!("../../assets/fonts/NotoSansYi-Regular.ttf");
const FONT_TIBETAN: &[u8] = include_bytes!("../../assets/fonts/NotoSerifTibetan-Regular.ttf");

pub fn router() -> Router<Arc<Classroom>> {
    Router::new()
        .route("/", get(home))
        .route("/course/{course}", get(course_page))
        .route("/course/{course}/{lesson}", get(lesson_page))
        .route("/search", get(search_page))
        .route("/status", get(status_page))
        .route("/status/sync-now", post(sync_now))
        .route("/lang/{code}", get(set_language))
        .route("/static/style.css", get(style))
        .route("/static/fonts/{name}", get(font))
}

/// A text in the reader's language or the nearest fallback, with the
/// language it is actually in.
fn pick(text: &LocalizedText, lang: Lang) -> Option<(&str, &str)> {
    for code in lang.fallbacks() {
        if let Some(found) = text.exact(code) {
            return Some((found, code));
        }
    }
    text.iter().next().map(|(code, found)| (found, code))
}

/// `text` in the reader's language, or `id` when the catalog has none.
fn titled(text: &LocalizedText, lang: Lang, id: &str) -> Markup {
    match pick(text, lang) {
        Some((found, code)) => html! { span lang=(code) { (found) } },
        None => html! { span { (id) } },
    }
}

fn page(lang: Lang, here: &str, title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, lang, here, title, body)
}

fn page_with_status(
    status: StatusCode,
    lang: Lang,
    here: &str,
    title: &str,
    body: Markup,
) -> Response {
    let s = lang.strings();
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (s.site) }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    a.site href="/" { (s.site) }
                    nav {
                        a href="/" { (s.courses) }
                        a href="/status" { (s.status) }
                    }
                    form action="/search" method="get" role="search" {
                        input type="search" name="q" placeholder=(s.search_placeholder) aria-label=(s.search);
                        button type="submit" { (s.search) }
                    }
                    div.langs {
                        @for other in Lang::ALL {
                            a lang=(other.code()) hreflang=(other.code())
                                class=[(other == lang).then_some("current")]
                                href=(format!("/lang/{}?back={}", other.code(), query_escape(here))) {
                                (other.name())
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_LANGUAGE, lang.code()),
            (header::VARY, "Cookie, Accept-Language"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// Percent-encodes a value for a query string.
fn query_escape(text: &str) -> String {
    url_path(text).replace('/', "%2F")
}

fn not_found_page(lang: Lang, here: &str) -> Response {
    let s = lang.strings();
    page_with_status(
        StatusCode::NOT_FOUND,
        lang,
        here,
        s.not_found,
        html! {
            h1 { (s.not_found) }
            p { a href="/" { (s.back_to_courses) } }
        },
    )
}

/// The page a reader gets instead of a file that cannot be fetched now.
pub fn unavailable_page(headers: &HeaderMap, here: &str, why: &Unavailable) -> Response {
    let lang = Lang::of_request(headers);
    let s = lang.strings();
    page_with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        here,
        s.unavailable_title,
        unavailable_notice(s, why),
    )
}

fn unavailable_notice(s: &Strings, why: &Unavailable) -> Markup {
    html! {
        div.notice #offline role="alert" {
            strong { (s.unavailable_title) }
            p { (s.unavailable_body) }
            p.meta { (why.to_string()) }
        }
    }
}

/// A course with its lessons, as the pages need it.
struct Shelf {
    course: Course,
    lessons: Vec<Lesson>,
    files: usize,
    files_held: usize,
}

impl Shelf {
    fn load(store: &Store, catalog: &Catalog, id: &str) -> Option<Shelf> {
        let course = classroom::course(store, catalog, id)?;
        let lessons: Vec<Lesson> = course
            .lessons
            .iter()
            .filter_map(|lesson_ref| classroom::lesson(store, &course, &lesson_ref.id))
            .collect();
        let all_files = course
            .files
            .iter()
            .chain(lessons.iter().flat_map(|lesson| lesson.files.iter()));
        let (mut files, mut files_held) = (0, 0);
        for file in all_files {
            files += 1;
            if store.has_blob(&file.blob).unwrap_or(false) {
                files_held += 1;
            }
        }
        Some(Shelf {
            course,
            lessons,
            files,
            files_held,
        })
    }

    fn held(&self) -> bool {
        self.files_held == self.files
    }
}

fn held_badge(s: &Strings, held: bool) -> Markup {
    if held {
        html! { span.badge.held { (s.offline_ready) } }
    } else {
        html! { span.badge.remote { (s.not_yet_offline) } }
    }
}

fn course_meta(s: &Strings, course: &Course) -> Markup {
    html! {
        span.meta {
            @if let Some(subject) = &course.subject { (s.subject) ": " (subject) " · " }
            @if let Some(grade) = &course.grade { (s.grade) ": " (grade) " · " }
            (course.lessons.len()) " " (s.lessons) " · "
            (format::bytes(course.total_size()))
        }
    }
}

#[derive(Deserialize, Default)]
struct Filters {
    subject: Option<String>,
    grade: Option<String>,
    language: Option<String>,
}

fn chosen(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

async fn home(
    State(state): State<Arc<Classroom>>,
    Query(filters): Query<Filters>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let s = lang.strings();
    let store = state.store.clone();
    let shelves = classroom::blocking(move || {
        let catalog = classroom::catalog(&store)?;
        Some(
            catalog
                .courses
                .keys()
                .filter_map(|id| Shelf::load(&store, &catalog, id))
                .collect::<Vec<_>>(),
        )
    })
    .await
    .flatten()
    .unwrap_or_default();
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
        h1 { (s.courses) }
        form.filters action="/" method="get" {
            (filter_select(s, "subject", s.subject, &subjects, chosen(&filters.subject)))
            (filter_select(s, "grade", s.grade, &grades, chosen(&filters.grade)))
            (filter_select(s, "language", s.language, &languages, chosen(&filters.language)))
            button type="submit" { (s.filter) }
        }
        @if shown.is_empty() {
            p { (s.no_courses) }
        }
        ul.cards #courses {
            @for shelf in &shown {
                li.card data-course=(shelf.course.id) {
                    h2 { a href=(url_path(&format!("/course/{}", shelf.course.id))) {
                        (titled(&shelf.course.title, lang, &shelf.course.id))
                    } }
                    @if let Some((text, code)) = pick(&shelf.course.description, lang) {
                        p lang=(code) { (text) }
                    }
                    (course_meta(s, &shelf.course)) " "
                    (held_badge(s, shelf.held()))
                }
            }
        }
    };
    page(lang, here, s.courses, body)
}

/// One filter of the course list, with "all" first.
fn filter_select(
    s: &Strings,
    name: &str,
    label: &str,
    values: &BTreeSet<&str>,
    current: Option<&str>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { (s.all) }
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

/// Who is reading, and where: the language they chose (or their browser's)
/// and this page's path and query, the language switch's way back.
struct Reader {
    lang: Lang,
    here: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Reader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Reader {
            lang: Lang::of_request(&parts.headers),
            here: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
        })
    }
}

async fn course_page(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let s = lang.strings();
    let store = state.store.clone();
    let Some(shelf) = classroom::blocking(move || {
        let catalog = classroom::catalog(&store)?;
        Shelf::load(&store, &catalog, &id)
    })
    .await
    .flatten() else {
        return not_found_page(lang, here);
    };
    let store = state.store.clone();
    let course = &shelf.course;
    let title = pick(&course.title, lang).map_or(course.id.as_str(), |(t, _)| t);
    let body = html! {
        h1 { (titled(&course.title, lang, &course.id)) }
        @if let Some((text, code)) = pick(&course.description, lang) {
            p lang=(code) { (text) }
        }
        p { (course_meta(s, course)) " " (held_badge(s, shelf.held())) }
        h2 { (s.lessons) }
        ol.cards #lessons {
            @for lesson in &shelf.lessons {
                li.card data-lesson=(lesson.id) {
                    h3 { a href=(url_path(&format!("/course/{}/{}", course.id, lesson.id))) {
                        (titled(&lesson.title, lang, &lesson.id))
                    } }
                    @if let Some((text, code)) = pick(&lesson.summary, lang) {
                        p lang=(code) { (text) }
                    }
                    @if let Some(secs) = lesson.duration_secs {
                        span.meta { (secs / 60) " " (s.minutes) " " }
                    }
                    (held_badge(s, lesson.files.iter().all(|f| store.has_blob(&f.blob).unwrap_or(false))))
                }
            }
        }
    };
    page(lang, here, title, body)
}

/// How a lesson page offers each of its files.
fn file_kind(media: &str) -> &'static str {
    if media.starts_with("video/") {
        "video"
    } else if media.starts_with("audio/") {
        "audio"
    } else if media.starts_with("image/") {
        "image"
    } else {
        "other"
    }
}

async fn lesson_page(
    State(state): State<Arc<Classroom>>,
    Path((course_id, lesson_id)): Path<(String, String)>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let s = lang.strings();
    let store = state.store.clone();
    let loaded = classroom::blocking({
        let (course_id, lesson_id) = (course_id.clone(), lesson_id.clone());
        move || {
            let catalog = classroom::catalog(&store)?;
            let course = classroom::course(&store, &catalog, &course_id)?;
            let lesson = classroom::lesson(&store, &course, &lesson_id)?;
            let mut files = Vec::new();
            for file in &lesson.files {
                let manifest = store.manifest(&file.manifest).ok()?;
                let held = store.has_blob(&file.blob).unwrap_or(false);
                files.push((file.clone(), manifest, held));
            }
            // Files the lesson's own HTML shows are left to it.
            let entry_text = files
                .iter()
                .find(|(file, manifest, held)| {
                    file.path == lesson.entry && *held && manifest.media_type == "text/html"
                })
                .and_then(|(file, _, _)| read_verified_text(&store, &file.blob));
            Some((course, lesson, files, entry_text))
        }
    })
    .await
    .flatten();
    let Some((course, lesson, files, entry_text)) = loaded else {
        return not_found_page(lang, here);
    };
    // Anything not held is fetched now, ahead of the background prefetch.
    let mut unavailable = None;
    if files.iter().any(|(_, _, held)| !held) {
        match state.read_through.check().await {
            Ok(()) => {
                for (file, manifest, held) in &files {
                    if !held
                        && let Err(err) = state.read_through.start(file.manifest, manifest.clone())
                    {
                        unavailable = Some(err);
                    }
                }
            }
            Err(err) => unavailable = Some(err),
        }
    }
    let file_url = |file: &FileEntry| {
        url_path(&format!(
            "/courses/{}/{}/{}",
            course.id, lesson.id, file.path
        ))
    };
    let shown_by_entry = |file: &FileEntry| {
        file.path != lesson.entry
            && entry_text
                .as_deref()
                .is_some_and(|text| text.contains(file.path.as_str()))
    };
    let entry = files.iter().find(|(file, _, _)| file.path == lesson.entry);
    let title = pick(&lesson.title, lang).map_or(lesson.id.as_str(), |(t, _)| t);
    let body = html! {
        p.meta {
            a href=(url_path(&format!("/course/{}", course.id))) { (titled(&course.title, lang, &course.id)) }
        }
        h1 { (titled(&lesson.title, lang, &lesson.id)) }
        @if let Some((text, code)) = pick(&lesson.summary, lang) {
            p lang=(code) { (text) }
        }
        @if let Some(err) = &unavailable {
            (unavailable_notice(s, err))
        }
        @if let Some((file, manifest, _)) = entry {
            @if manifest.media_type == "text/html" {
                iframe.lesson-frame #lesson-frame src=(file_url(file)) title=(title) {}
            }
        }
        @for (file, manifest, _) in &files {
            @if !shown_by_entry(file) {
                @match file_kind(&manifest.media_type) {
                    "video" => {
                        figure {
                            video controls preload="metadata" src=(file_url(file)) data-path=(file.path) {}
                            figcaption.meta { (file.path) }
                        }
                    },
                    "audio" => {
                        figure {
                            audio controls preload="metadata" src=(file_url(file)) data-path=(file.path) {}
                            figcaption.meta { (file.path) }
                        }
                    },
                    _ => {}
                }
            }
        }
        h2 { (s.files) }
        table #files {
            @for (file, manifest, held) in &files {
                tr {
                    td { a href=(file_url(file)) { (file.path) } }
                    td.meta { (format::bytes(manifest.size)) }
                    td { (held_badge(s, *held)) }
                    td {
                        a href=(file_url(file)) target="_blank" { (s.open) }
                        " · "
                        a href=(file_url(file)) download=(file.path.rsplit('/').next().unwrap_or(&file.path)) { (s.download) }
                    }
                }
            }
        }
    };
    let status = if unavailable.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    page_with_status(status, lang, here, title, body)
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_page(
    State(state): State<Arc<Classroom>>,
    Query(query): Query<SearchQuery>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let s = lang.strings();
    let hits = state.search(query.q.clone(), 50).await;
    let body = html! {
        h1 { (s.results_for) " " q lang=(catalog::text::guess_language(&query.q)) { (query.q) } }
        @if hits.is_empty() {
            p #no-results { (s.no_results) }
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
    page(lang, here, s.search, body)
}

pub fn hit_url(key: &DocKey) -> String {
    match &key.lesson {
        Some(lesson) => url_path(&format!("/course/{}/{lesson}", key.course)),
        None => url_path(&format!("/course/{}", key.course)),
    }
}

async fn status_page(State(state): State<Arc<Classroom>>, reader: Reader) -> Response {
    let lang = reader.lang;
    let s = lang.strings();
    let status = state.status().await;
    let Ok(status) = status else {
        let err = status.err().map(|e| e.to_string()).unwrap_or_default();
        return page_with_status(
            StatusCode::INTERNAL_SERVER_ERROR,
            lang,
            "/status",
            s.status,
            html! { h1 { (s.status) } div.notice { (err) } },
        );
    };
    let live = status.live.clone().unwrap_or_else(|| state.live.snapshot());
    let downloading: Vec<_> = status
        .courses
        .iter()
        .filter(|course| course.subscribed && course.files_held < course.files)
        .collect();
    let body = html! {
        h1 { (s.status) }
        table #status {
            tr { th { (s.catalog) } td #catalog-sequence {
                @match status.catalog_sequence { Some(seq) => { "#" (seq) }, None => { (s.never) } }
                @if let Some(at) = status.catalog_published_at { " · " (s.published) " " (format::time(at)) }
            } }
            tr { th { (s.last_sync) } td #last-sync {
                @match &status.last_sync {
                    None => { (s.never) },
                    Some(report) => {
                        (format::time(report.finished_at)) " · "
                        @if report.error.is_some() { (s.result_failed) }
                        @else if report.complete { (s.result_ok) }
                        @else if report.stopped_at_window_end { (s.stopped_at_window_end) }
                        @else { (s.result_incomplete) }
                        @if let Some(transport) = &report.transport {
                            " · " (s.transport) " " span #sync-transport { (transport.to_uppercase()) }
                        }
                        @if let Some(reason) = &report.fallback_reason {
                            div.notice #fallback-used { (s.fallback_used) div.meta { (reason) } }
                        }
                        @if let Some(err) = &report.error { div.meta { (err) } }
                        @for failure in report.failures.iter().take(5) { div.meta { (failure) } }
                    },
                }
                @if live.syncing { div { (s.sync_running) } }
                form #sync-now method="post" action="/status/sync-now" {
                    button type="submit" { (s.sync_now) }
                    @if live.sync_requested { " " span.meta #sync-requested { (s.sync_requested) } }
                }
            } }
            tr { th { (s.schedule) } td #schedule {
                @if live.schedule.windows.is_empty() {
                    (s.any_time)
                } @else {
                    @for (n, window) in live.schedule.windows.iter().enumerate() {
                        @if n > 0 { ", " }
                        (window)
                    }
                    " " (s.local_time)
                }
                " · " (s.max_rate) ": "
                @match live.schedule.max_rate {
                    Some(rate) => { (rate) "/s (" (format::bytes(rate.bytes_per_second())) "/s)" },
                    None => { (s.no_cap) },
                }
                @if let (Some(opens), false) = (&live.schedule.next_window_opens, live.syncing) {
                    div #next-window { (s.next_window) " " (opens) }
                }
            } }
            tr { th { (s.bytes_held) } td #bytes-held { (format::bytes(status.bytes_held)) } }
            tr { th { (s.disk_free) } td #disk-free {
                @match (status.disk_free, status.disk_total) {
                    (Some(free), Some(total)) => { (format::bytes(free)) " / " (format::bytes(total)) },
                    _ => { (s.unknown) },
                }
            } }
            tr { th { (s.upstream) } td #upstream {
                (status.origin) " · "
                @match live.upstream.reachable {
                    Some(true) => { (s.reachable) },
                    Some(false) => { (s.unreachable) },
                    None => { (s.unknown) },
                }
                @if let Some(at) = live.upstream.checked_at { " (" (format::time(at)) ")" }
                @if let Some(err) = &live.upstream.error { div.meta { (err) } }
            } }
        }
        h2 { (s.downloading) }
        @if live.syncing && live.sync_bytes_total > 0 {
            p {
                progress #sync-progress max=(live.sync_bytes_total) value=(live.sync_bytes_done) {}
                (format::bytes(live.sync_bytes_done)) " / " (format::bytes(live.sync_bytes_total))
            }
        }
        @if downloading.is_empty() {
            p #downloading { (s.nothing_downloading) }
        } @else {
            table #downloading {
                @for course in &downloading {
                    tr {
                        td { a href=(url_path(&format!("/course/{}", course.id))) { (course.id) } }
                        td { (course.files_held) " / " (course.files) " " (s.files) }
                        td.meta { (format::bytes(course.total_size)) }
                    }
                }
            }
        }
    };
    page(lang, "/status", s.status, body)
}

/// "Sync now" from the status page: asks the sync loop for a pass, then
/// goes back to the page. Only a form on this edge's own pages may ask (see
/// [`from_this_edge`]), so a page elsewhere cannot start syncs; scripts use
/// `shanlu edge sync-now`.
async fn sync_now(State(state): State<Arc<Classroom>>, headers: HeaderMap) -> Response {
    if !from_this_edge(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: a sync can be asked for only from this edge's own status page \
             (the request's Origin or Referer must name this edge); \
             on the edge itself, run `shanlu edge sync-now`\n",
        )
            .into_response();
    }
    state.live.request_sync();
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/status")]).into_response()
}

/// Whether a browser says this POST comes from a page of this edge: its
/// `Origin` is this host, or, from a browser too old to send `Origin` with
/// a form, its `Referer` is a page of this host. A request naming neither
/// is refused (issue 11: a cross-site `Referer` without `Origin` was let
/// through), as is one whose `Sec-Fetch-Site` says another site.
fn from_this_edge(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    let Some(host) = value(header::HOST) else {
        return false;
    };
    let same_host = |url: &str| {
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        authority.eq_ignore_ascii_case(host)
    };
    match value(header::ORIGIN) {
        // An origin is a scheme and a host, nothing after.
        Some(origin) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host)),
        None => value(header::REFERER).is_some_and(same_host),
    }
}

/// Longest way back kept; a longer one goes to `/`.
const MAX_BACK: usize = 2048;

/// Where the language switch may send the reader back to: `back` if a
/// browser reading it as a link on this edge's page stays on this edge, else
/// `/` — never an open redirect (issue 11).
///
/// A browser reads a link by the WHATWG URL Standard: it drops tabs and
/// newlines anywhere (`/\t/evil.example` is `//evil.example`, another host),
/// takes `\` as `/` in an http path (`/\evil.example` too), treats `//` as
/// the start of a host and `name:` as a scheme. So: a way back with any
/// control character goes to `/` (with CR or LF it could not even be a
/// header), and otherwise it must begin with `/` or `\` followed by neither;
/// then it can only be a path (and query) on this host. What is kept is
/// sent percent-encoded wherever a byte is not visible ASCII, and with `/`
/// for `\` in the path, as the browser would read it.
pub fn safe_back(back: &str) -> String {
    if back.len() > MAX_BACK || back.bytes().any(|b| b.is_ascii_control()) {
        return "/".into();
    }
    let (path, rest) = back.split_at(back.find(['?', '#']).unwrap_or(back.len()));
    let path = path.replace('\\', "/");
    if !path.starts_with('/') || path.starts_with("//") {
        return "/".into();
    }
    let mut out = String::with_capacity(back.len());
    for byte in path.bytes().chain(rest.bytes()) {
        if byte.is_ascii_graphic() && byte != b'\\' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}

/// Remembers the language for a year and goes back where the reader was.
async fn set_language(Path(code): Path<String>, Query(back): Query<Back>) -> Response {
    let Some(lang) = Lang::from_code(&code) else {
        return (StatusCode::NOT_FOUND, "no such language\n").into_response();
    };
    let back = back.back.as_deref().map_or_else(|| "/".into(), safe_back);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, back),
            (
                header::SET_COOKIE,
                format!(
                    "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                    i18n::COOKIE,
                    lang.code()
                ),
            ),
        ],
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

async fn font(Path(name): Path<String>) -> Response {
    let bytes = match name.as_str() {
        "NotoSansYi-Regular.ttf" => FONT_YI,
        "NotoSerifTibetan-Regular.ttf" => FONT_TIBETAN,
        _ => return (StatusCode::NOT_FOUND, "no such font\n").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "font/ttf"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response()
}

/// A held lesson page's text, read only through the same identity check as
/// serving (issue 11): a page whose file changed since it was verified is
/// left out here, and the frame's own request re-checks it.
fn read_verified_text(store: &catalog::Store, blob: &catalog::Hash) -> Option<String> {
    use std::io::Read as _;
    let catalog::store::OpenedBlob::Verified { mut file, len } = store.open_blob(blob).ok()? else {
        return None;
    };
    let mut text = String::with_capacity(usize::try_from(len).ok()?.min(1 << 20));
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_fall_back_and_say_their_language() {
        let mut text = LocalizedText::new();
        text.insert("zh", "数到二十");
        text.insert("en", "Counting to twenty");
        assert_eq!(pick(&text, Lang::En), Some(("Counting to twenty", "en")));
        assert_eq!(pick(&text, Lang::Ii), Some(("数到二十", "zh")));
        text.insert("ii", "ꊰꐚ");
        assert_eq!(pick(&text, Lang::Ii), Some(("ꊰꐚ", "ii")));
        assert_eq!(pick(&LocalizedText::new(), Lang::Zh), None);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, axum::http::HeaderValue::from_static(value));
        }
        map
    }

    /// Issue 11: a POST with a cross-site `Referer` and no `Origin` started a sync.
    #[test]
    fn issue_11_sync_now_needs_a_same_origin_origin_or_referer() {
        let host = ("host", "10.0.0.2:8080");
        let allowed = [
            vec![host, ("origin", "http://10.0.0.2:8080")],
            vec![host, ("origin", "https://10.0.0.2:8080")],
            vec![
                host,
                ("origin", "http://10.0.0.2:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
            vec![host, ("referer", "http://10.0.0.2:8080/status")],
            vec![host, ("referer", "http://10.0.0.2:8080")],
            vec![host, ("referer", "http://10.0.0.2:8080?x=1")],
            vec![("host", "Edge.School"), ("origin", "http://edge.school")],
        ];
        for case in &allowed {
            assert!(from_this_edge(&headers(case)), "{case:?}");
        }
        let refused = [
            vec![host],
            vec![],
            vec![("origin", "http://10.0.0.2:8080")],
            vec![host, ("referer", "http://evil.example/page")],
            vec![
                host,
                ("referer", "http://10.0.0.2:8080.evil.example/status"),
            ],
            vec![
                host,
                ("referer", "http://evil.example/http://10.0.0.2:8080/"),
            ],
            vec![host, ("referer", "http://10.0.0.2:8080@evil.example/")],
            vec![host, ("referer", "/status")],
            vec![host, ("referer", "ftp://10.0.0.2:8080/status")],
            vec![host, ("origin", "http://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://10.0.0.2:8080/")],
            vec![host, ("origin", "http://10.0.0.2")],
            vec![
                host,
                ("origin", "http://evil.example"),
                ("referer", "http://10.0.0.2:8080/status"),
            ],
            vec![
                host,
                ("origin", "http://10.0.0.2:8080"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![
                host,
                ("referer", "http://10.0.0.2:8080/status"),
                ("sec-fetch-site", "same-site"),
            ],
        ];
        for case in &refused {
            assert!(!from_this_edge(&headers(case)), "{case:?}");
        }
    }

    /// Issue 11: `/lang/en?back=/%09/evil.example` sent browsers to
    /// `http://evil.example/`. Each way back, as the query decodes it, and
    /// where the switch now sends the reader.
    #[test]
    fn issue_11_the_way_back_stays_on_this_edge() {
        let table: &[(&str, &str)] = &[
            // Paths on this edge are kept.
            ("/", "/"),
            ("/course/math3", "/course/math3"),
            ("/search?q=加法", "/search?q=%E5%8A%A0%E6%B3%95"),
            ("/search?q=a b#top", "/search?q=a%20b#top"),
            (
                "/course/math3/01-add?x=//evil.example",
                "/course/math3/01-add?x=//evil.example",
            ),
            ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
            ("/%09/evil.example", "/%09/evil.example"),
            ("/a\\b", "/a/b"),
            ("/a?b=\\c", "/a?b=%5Cc"),
            ("/./evil.example", "/./evil.example"),
            ("/ /evil.example", "/%20/evil.example"),
            ("/\u{ff0f}evil.example", "/%EF%BC%8Fevil.example"),
            // Tabs, newlines, CR and other controls, anywhere.
            ("/\t/evil.example", "/"),
            ("/\n/evil.example", "/"),
            ("/\r/evil.example", "/"),
            ("/\r\nSet-Cookie: x=1", "/"),
            ("\t//evil.example", "/"),
            ("//evil.example\t", "/"),
            ("/course\u{0}/x", "/"),
            ("/course\u{7f}", "/"),
            ("\u{b}//evil.example", "/"),
            // Another host.
            ("//evil.example", "/"),
            ("//evil.example/path", "/"),
            ("/\\evil.example", "/"),
            ("\\/evil.example", "/"),
            ("\\\\evil.example", "/"),
            ("///evil.example", "/"),
            (" //evil.example", "/"),
            ("http://evil.example/", "/"),
            ("https://evil.example", "/"),
            ("HTTP://evil.example", "/"),
            ("http:evil.example", "/"),
            ("http:/\\evil.example", "/"),
            ("//evil.example@10.0.0.2", "/"),
            // Schemes that run or show something.
            ("javascript:alert(1)", "/"),
            ("JavaScript:alert(1)", "/"),
            (" javascript:alert(1)", "/"),
            ("data:text/html,<script>alert(1)</script>", "/"),
            ("vbscript:msgbox", "/"),
            // Not a path at all.
            ("", "/"),
            ("evil.example", "/"),
            ("?q=1", "/"),
            ("#top", "/"),
            ("%2F%2Fevil.example", "/"),
            ("%2F", "/"),
        ];
        for (back, expected) in table {
            assert_eq!(safe_back(back), *expected, "back = {back:?}");
        }
        assert!(table.len() >= 30);
        assert_eq!(safe_back(&format!("/{}", "a".repeat(MAX_BACK))), "/");
        // Whatever comes in, what goes out is a valid header value.
        for (back, _) in table {
            assert!(axum::http::HeaderValue::from_str(&safe_back(back)).is_ok());
        }
    }

    #[test]
    fn the_way_back_is_escaped_whole() {
        assert_eq!(
            query_escape("/search?q=加法"),
            "%2Fsearch%3Fq%3D%E5%8A%A0%E6%B3%95"
        );
    }
}
