//! The classroom's pages: server-rendered HTML that works without scripts,
//! on a 360-px phone and on an old desktop browser.
//!
//! - `/`: the courses, filtered by subject, grade and language; `/course/<id>`:
//!   a course and its lessons; `/search?q=`: courses and lessons matching in
//!   any of the four languages ([`pages`]).
//! - `/course/<id>/<lesson>`: a lesson: its HTML in a frame (so its relative
//!   links work), players for video and audio, links for other files
//!   ([`lesson`]).
//! - `/status`: for the school's IT teacher; its "sync now" button posts to
//!   `/status/sync-now` (POST only, and only with an `Origin` or `Referer`
//!   naming this edge, so other sites' pages cannot start syncs) ([`status`]).
//! - `/lang/<code>`: remembers the reader's language in a cookie and goes
//!   back to a path on this edge ([`lang::safe_back`]), never elsewhere;
//!   `/static/…`: the style sheet and the Yi and Tibetan fonts ([`lang`]).
//!
//! The routes themselves are in [`crate::classroom::routes`]. Titles are
//! shown in the reader's language with a fallback, each marked with the
//! `lang` it is really in, so browsers pick the right font. A page whose
//! store read fails is a 500 page naming the cause, never an empty page
//! (issue 12).

pub mod lang;
pub mod lesson;
pub mod pages;
pub mod status;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use catalog::format;
use catalog::tr;
use catalog::{Course, LocalizedText};
use maud::{DOCTYPE, Markup, html};

use crate::classroom::error::ReadError;
use crate::classroom::i18n::Lang;
use crate::classroom::routes::query_value;
use crate::classroom::search::DocKey;
use crate::classroom::url_path;
use crate::sync::readthrough::Unavailable;

pub(crate) const STYLE: &str = include_str!("../../../assets/style.css");
pub(crate) const FONT_YI: &[u8] = include_bytes!("../../../assets/fonts/NotoSansYi-Regular.ttf");
pub(crate) const FONT_TIBETAN: &[u8] =
    include_bytes!("../../../assets/fonts/NotoSerifTibetan-Regular.ttf");

pub(crate) use catalog::i18n::SLOT;

/// A translated sentence with `piece` where the sentence holds [`SLOT`], so
/// each language puts it where its word order wants it.
pub(crate) fn sentence(text: &str, piece: Markup) -> Markup {
    match catalog::i18n::split_at_slot(text) {
        Some((before, after)) => html! { (before) (piece) (after) },
        None => html! { (text) " " (piece) },
    }
}

/// A text in the reader's language or the nearest fallback, with the
/// language it is actually in.
pub(crate) fn pick(text: &LocalizedText, lang: Lang) -> Option<(&str, &str)> {
    for code in lang.fallbacks() {
        if let Some(found) = text.exact(code) {
            return Some((found, code));
        }
    }
    text.iter().next().map(|(code, found)| (found, code))
}

/// `text` in the reader's language, or `id` when the catalog has none.
pub(crate) fn titled(text: &LocalizedText, lang: Lang, id: &str) -> Markup {
    match pick(text, lang) {
        Some((found, code)) => html! { span lang=(code) { (found) } },
        None => html! { span { (id) } },
    }
}

pub(crate) fn page(lang: Lang, here: &str, title: &str, body: Markup) -> Response {
    page_with_status(StatusCode::OK, lang, here, title, body)
}

pub(crate) fn page_with_status(
    status: StatusCode,
    lang: Lang,
    here: &str,
    title: &str,
    body: Markup,
) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (tr!(lang, "site")) }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                a.skip href="#main" { (tr!(lang, "skip-to-content")) }
                header {
                    a.site href="/" { (tr!(lang, "site")) }
                    nav {
                        a href="/" { (tr!(lang, "courses")) }
                        a href="/status" { (tr!(lang, "status")) }
                        a href="/teach" { (tr!(lang, "teach-nav")) }
                    }
                    form action="/search" method="get" role="search" {
                        input type="search" name="q" placeholder=(tr!(lang, "search-placeholder")) aria-label=(tr!(lang, "search"));
                        button type="submit" { (tr!(lang, "search")) }
                    }
                    div.langs {
                        @for other in Lang::all() {
                            a lang=(other.code()) hreflang=(other.code())
                                class=[(other == lang).then_some("current")]
                                href=(format!("/lang/{}?back={}", other.code(), query_value(here))) {
                                (other.name())
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
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

pub(crate) fn not_found_page(lang: Lang, here: &str) -> Response {
    page_with_status(
        StatusCode::NOT_FOUND,
        lang,
        here,
        &tr!(lang, "not-found"),
        html! {
            h1 { (tr!(lang, "not-found")) }
            p { a href="/" { (tr!(lang, "back-to-courses")) } }
        },
    )
}

/// The page a reader gets instead of a file that cannot be fetched now.
pub fn unavailable_page(headers: &HeaderMap, here: &str, why: &Unavailable) -> Response {
    let lang = Lang::of_request(headers);
    page_with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        lang,
        here,
        &tr!(lang, "unavailable-title"),
        unavailable_notice(lang, why),
    )
}

pub(crate) fn unavailable_notice(lang: Lang, why: &Unavailable) -> Markup {
    html! {
        div.notice #offline role="alert" {
            strong { (tr!(lang, "unavailable-title")) }
            p { (tr!(lang, "unavailable-body")) }
            p.meta { (crate::sync::error_chain(why)) }
        }
    }
}

/// The page a reader gets when the edge cannot read what the page needs:
/// a 500 naming the cause, which is logged with the path.
pub(crate) fn error_page(lang: Lang, here: &str, err: &ReadError) -> Response {
    let cause = err.log(here);
    page_with_status(
        StatusCode::INTERNAL_SERVER_ERROR,
        lang,
        here,
        &tr!(lang, "status"),
        html! { div.notice #edge-error role="alert" { p { (cause) } } },
    )
}

pub(crate) fn held_badge(lang: Lang, held: bool) -> Markup {
    if held {
        html! { span.badge.held { (tr!(lang, "offline-ready")) } }
    } else {
        html! { span.badge.remote { (tr!(lang, "not-yet-offline")) } }
    }
}

pub(crate) fn course_meta(lang: Lang, course: &Course) -> Markup {
    html! {
        span.meta {
            @if let Some(subject) = &course.subject { (tr!(lang, "course-subject", subject = subject.as_str())) " · " }
            @if let Some(grade) = &course.grade { (tr!(lang, "course-grade", grade = grade.as_str())) " · " }
            (tr!(lang, "lesson-count", count = course.lessons.len())) " · "
            (format::bytes(course.total_size()))
        }
    }
}

/// Who is reading, and where: the language they chose (or their browser's)
/// and this page's path and query, the language switch's way back.
pub(crate) struct Reader {
    pub(crate) lang: Lang,
    pub(crate) here: String,
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

pub fn hit_url(key: &DocKey) -> String {
    match &key.lesson {
        Some(lesson) => url_path(&format!("/course/{}/{lesson}", key.course)),
        None => url_path(&format!("/course/{}", key.course)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(code: &str) -> Lang {
        Lang::from_code(code).expect("a compiled-in language")
    }

    #[test]
    fn titles_fall_back_and_say_their_language() {
        let mut text = LocalizedText::new();
        text.insert("zh", "数到二十");
        text.insert("en", "Counting to twenty");
        assert_eq!(pick(&text, lang("en")), Some(("Counting to twenty", "en")));
        assert_eq!(pick(&text, lang("ii")), Some(("数到二十", "zh")));
        text.insert("ii", "ꊰꐚ");
        assert_eq!(pick(&text, lang("ii")), Some(("ꊰꐚ", "ii")));
        assert_eq!(pick(&LocalizedText::new(), Lang::ZH), None);
    }
}
