//! The dashboard's pages (maud), one style sheet inline, no scripts.

use catalog::format::bytes;
use catalog::i18n::{SLOT, split_at_slot};
use catalog::tr;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::i18n::Lang;
use crate::fleet::view::{
    Adoption, CatalogView, EdgeQuery, EdgeRow, LessonOpens, PER_PAGE, Sort, Summary,
};

const STYLE: &str = "body{font-family:system-ui,'Noto Sans CJK SC',sans-serif;margin:0;color:#222}\
header{background:#1d4e89;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}\
header a{color:#fff}header form{margin:0}main{padding:1em}table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;font-size:.9em}th a{color:inherit}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.flag{padding:0 .3em;border-radius:3px;margin-right:.2em}\
.behind{background:#fde68a}.failing{background:#fca5a5}.silent{background:#d1d5db}form.filter{margin-bottom:1em}\
nav.pages a{margin-right:.5em}.sum span{margin-right:1.5em}";

pub struct Frame<'a> {
    pub lang: Lang,
    pub admin: &'a str,
    pub csrf: &'a str,
}

pub(super) fn enc(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

pub(super) fn layout(lang: Lang, title: &str, head: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (head) main { (body) } }
        }
    }
}

pub(super) fn header(frame: &Frame<'_>) -> Markup {
    let lang = frame.lang;
    html! {
        header {
            strong { (tr!(lang, "title")) }
            a href="/" { (tr!(lang, "edges")) }
            a href="/courses" { (tr!(lang, "courses")) }
            a href="/lessons" { (tr!(lang, "lessons")) }
            a href="/review" { (tr!(lang, "review")) }
            a href="/edges.csv" { "CSV" }
            a href="/edges.json" { "JSON" }
            span {
                @for other in Lang::all() {
                    @if other == lang { b { (other.name()) } " " }
                    @else { a href={ "?lang=" (other.code()) } lang=(other.code()) { (other.name()) } " " }
                }
            }
            span { (sentence(&tr!(lang, "signed-in-as", admin = SLOT), html! { b id="admin" { (frame.admin) } })) }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(frame.csrf);
                button type="submit" { (tr!(lang, "logout")) }
            }
        }
    }
}

pub fn login(lang: Lang, refused: bool) -> Markup {
    let head = html! { header { strong { (tr!(lang, "title")) } span {
        @for other in Lang::all() { a href={ "/login?lang=" (other.code()) } { (other.name()) } " " }
    } } };
    layout(
        lang,
        &tr!(lang, "login"),
        head,
        html! {
            h1 { (tr!(lang, "login")) }
            @if refused { p id="refused" style="color:#b91c1c" { (tr!(lang, "login-refused")) } }
            form method="post" action="/login" {
                label { (tr!(lang, "token")) " " input type="password" name="token" autocomplete="off" required; }
                " "
                button type="submit" id="login" { (tr!(lang, "login")) }
            }
            p { (tr!(lang, "login-help")) }
        },
    )
}

/// "3 h ago" in the reader's language.
pub(super) fn ago(lang: Lang, then: u64, now: u64) -> String {
    if then == 0 {
        return tr!(lang, "never").into_owned();
    }
    let secs = now.saturating_sub(then);
    let (count, unit) = match secs {
        0..60 => (secs, "s"),
        60..3600 => (secs / 60, "m"),
        3600..172_800 => (secs / 3600, "h"),
        _ => (secs / 86_400, "d"),
    };
    tr!(lang, "ago", count = count, unit = unit).into_owned()
}

/// A translated sentence with `piece` where it holds [`SLOT`].
fn sentence(text: &str, piece: Markup) -> Markup {
    match split_at_slot(text) {
        Some((before, after)) => html! { (before) (piece) (after) },
        None => html! { (text) " " (piece) },
    }
}

fn list_link(query: &EdgeQuery, sort: Sort, desc: bool, page: usize) -> String {
    let mut link = format!("/?sort={}&page={page}", sort.code());
    if desc {
        link.push_str("&desc=1");
    }
    if let Some(county) = &query.county {
        link.push_str(&format!("&county={}", enc(county)));
    }
    if let Some(name) = &query.name {
        link.push_str(&format!("&q={}", enc(name)));
    }
    if query.flagged {
        link.push_str("&flagged=1");
    }
    link
}

#[allow(clippy::too_many_arguments)]
pub fn edges(
    frame: &Frame<'_>,
    catalog: &CatalogView,
    summary: &Summary,
    counties: &[String],
    query: &EdgeQuery,
    rows: &[&EdgeRow],
    page: usize,
    now: u64,
) -> Markup {
    let lang = frame.lang;
    let pages = rows.len().div_ceil(PER_PAGE).max(1);
    let page = page.min(pages);
    let shown = rows.iter().skip((page - 1) * PER_PAGE).take(PER_PAGE);
    let column = |label: &str, sort: Sort| {
        let desc = query.sort == sort && !query.desc;
        let mark = if query.sort == sort {
            if query.desc { " ▼" } else { " ▲" }
        } else {
            ""
        };
        html! { th { a href=(list_link(query, sort, desc, 1)) { (label) (mark) } } }
    };
    layout(
        frame.lang,
        &tr!(lang, "edges"),
        header(frame),
        html! {
            p.sum {
                span { (sentence(&tr!(lang, "catalog-in-force", sequence = SLOT), html! { b id="catalog-sequence" { @if let Some(s) = catalog.sequence { (s) } @else { "—" } } })) }
                span { (sentence(&tr!(lang, "edges-count", count = SLOT), html! { b { (summary.edges) } })) }
                span.flag.behind { (tr!(lang, "behind-count", count = summary.behind)) }
                span.flag.failing { (tr!(lang, "failing-count", count = summary.failing)) }
                span.flag.silent { (tr!(lang, "silent-count", count = summary.silent)) }
            }
            form.filter method="get" action="/" {
                label { (tr!(lang, "county")) " "
                    select name="county" id="county" {
                        option value="*" { (tr!(lang, "all-counties")) }
                        @for county in counties {
                            option value=(county) selected[query.county.as_deref() == Some(county.as_str())] {
                                @if county.is_empty() { "—" } @else { (county) }
                            }
                        }
                    }
                }
                " "
                label { (tr!(lang, "name")) " " input type="search" name="q" value=(query.name.as_deref().unwrap_or("")); }
                " "
                label { input type="checkbox" name="flagged" value="1" checked[query.flagged]; " " (tr!(lang, "only-flagged")) }
                input type="hidden" name="sort" value=(query.sort.code());
                @if query.desc { input type="hidden" name="desc" value="1"; }
                " "
                button type="submit" id="filter" { (tr!(lang, "filter")) }
            }
            table id="edges" {
                thead { tr {
                    (column(&tr!(lang, "name"), Sort::Name))
                    (column(&tr!(lang, "county"), Sort::County))
                    (column(&tr!(lang, "last-seen"), Sort::LastSeen))
                    (column(&tr!(lang, "reports"), Sort::Reports))
                    th { (tr!(lang, "version")) }
                    (column(&tr!(lang, "catalog-lag"), Sort::Lag))
                    (column(&tr!(lang, "held"), Sort::Held))
                    (column(&tr!(lang, "free"), Sort::Free))
                    th { (tr!(lang, "flags")) }
                } }
                tbody {
                    @for row in shown {
                        tr data-edge=(row.name) {
                            td { (row.name) }
                            td { (row.county) }
                            td title=(row.last_seen) { (ago(lang, row.last_seen, now)) }
                            td.n { (row.reports) }
                            td { (row.version) }
                            td.n { @if let Some(lag) = row.catalog_lag { (lag) } @else { "—" } }
                            td.n { (bytes(row.bytes_held)) }
                            td.n { (bytes(row.bytes_free)) }
                            td title=[row.last_failure.as_deref()] {
                                @if row.behind { span.flag.behind { (tr!(lang, "behind")) } }
                                @if row.failing { span.flag.failing { (tr!(lang, "failing")) } }
                                @if row.silent { span.flag.silent { (tr!(lang, "silent")) } }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { (tr!(lang, "none-yet")) } }
            nav.pages {
                @if page > 1 { a href=(list_link(query, query.sort, query.desc, page - 1)) { (tr!(lang, "previous")) } }
                span { (tr!(lang, "page-of", page = page, pages = pages, rows = rows.len())) }
                " "
                @if page < pages { a href=(list_link(query, query.sort, query.desc, page + 1)) { (tr!(lang, "next")) } }
            }
        },
    )
}

pub fn courses(frame: &Frame<'_>, catalog: &CatalogView, adoption: &[Adoption]) -> Markup {
    let lang = frame.lang;
    layout(
        frame.lang,
        &tr!(lang, "courses"),
        header(frame),
        html! {
            h1 { (tr!(lang, "courses")) }
            p { (tr!(lang, "catalog-in-force", sequence = catalog.sequence.map_or_else(|| "—".to_owned(), |s| s.to_string()))) }
            table id="courses" {
                thead { tr {
                    th { (tr!(lang, "course")) } th { (tr!(lang, "grade")) } th { (tr!(lang, "current-version")) }
                    th { (tr!(lang, "complete")) } th { (tr!(lang, "partial")) } th { (tr!(lang, "older")) }
                } }
                tbody {
                    @for row in adoption {
                        tr data-course=(row.course.id) {
                            td { (title(frame.lang, &row.course)) " " small { (row.course.id) } }
                            td { (row.course.grade.as_deref().unwrap_or("")) }
                            td.n { (row.course.version) }
                            td.n { (row.complete) }
                            td.n { (row.partial) }
                            td.n { (row.older) }
                        }
                    }
                }
            }
            @if adoption.is_empty() { p { (tr!(lang, "none-yet")) } }
        },
    )
}

fn title(lang: Lang, course: &crate::fleet::view::CourseInfo) -> &str {
    let title = match lang.code() {
        "en" => course.title_en.as_deref().or(course.title_zh.as_deref()),
        _ => course.title_zh.as_deref().or(course.title_en.as_deref()),
    };
    title.unwrap_or(&course.id)
}

pub fn lessons(
    frame: &Frame<'_>,
    catalog: &CatalogView,
    rows: &[&LessonOpens],
    counties: &[String],
    grades: &[String],
    county: Option<&str>,
    grade: Option<&str>,
) -> Markup {
    let lang = frame.lang;
    layout(
        frame.lang,
        &tr!(lang, "lessons"),
        header(frame),
        html! {
            h1 { (tr!(lang, "lessons-window")) }
            form.filter method="get" action="/lessons" {
                label { (tr!(lang, "county")) " " select name="county" {
                    option value="*" { (tr!(lang, "all-counties")) }
                    @for c in counties { option value=(c) selected[county == Some(c.as_str())] { @if c.is_empty() { "—" } @else { (c) } } }
                } }
                " "
                label { (tr!(lang, "grade")) " " select name="grade" {
                    option value="*" { (tr!(lang, "all-grades")) }
                    @for g in grades { option value=(g) selected[grade == Some(g.as_str())] { @if g.is_empty() { "—" } @else { (g) } } }
                } }
                " "
                button type="submit" { (tr!(lang, "filter")) }
            }
            table id="lessons" {
                thead { tr { th { (tr!(lang, "county")) } th { (tr!(lang, "grade")) } th { (tr!(lang, "course")) } th { (tr!(lang, "lesson")) } th { (tr!(lang, "opens")) } } }
                tbody {
                    @for row in rows {
                        tr {
                            td { (row.county) }
                            td { (row.grade) }
                            td { @if let Some(course) = catalog.courses.get(&row.course) { (title(frame.lang, course)) }
                                @else if row.course.starts_with('~') { i { (tr!(lang, "own-lessons")) } }
                                @else { (row.course) } }
                            td { (row.lesson) }
                            td.n { (row.opens) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { (tr!(lang, "none-yet")) } }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: opens of lessons teachers made at their schools (the
    /// edges' `~school` course) are named as such, not by the raw id.
    #[test]
    fn issue_17_a_schools_own_lessons_are_named_on_the_lessons_page() {
        let row = LessonOpens {
            county: "昭觉县".into(),
            course: "~school".into(),
            lesson: "t1-ab".into(),
            grade: String::new(),
            opens: 3,
        };
        let frame = Frame {
            lang: Lang::from_code("en").expect("English"),
            admin: "bureau",
            csrf: "x",
        };
        let page = lessons(
            &frame,
            &CatalogView::default(),
            &[&row],
            &[],
            &[],
            None,
            None,
        )
        .into_string();
        assert!(
            page.contains("A school&#39;s own lessons") || page.contains("A school's own lessons"),
            "{page}"
        );
        assert!(!page.contains(">~school<"), "{page}");
    }
}
