//! The dashboard's pages (maud), one style sheet inline, no scripts.

use catalog::format::bytes;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::i18n::{Lang, Strings};
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

fn enc(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn layout(lang: Lang, title: &str, head: Markup, body: Markup) -> Markup {
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

fn header(frame: &Frame<'_>, t: &Strings) -> Markup {
    html! {
        header {
            strong { (t.title) }
            a href="/" { (t.edges) }
            a href="/courses" { (t.courses) }
            a href="/lessons" { (t.lessons) }
            a href="/edges.csv" { "CSV" }
            a href="/edges.json" { "JSON" }
            span {
                @for lang in Lang::ALL {
                    @if lang == frame.lang { b { (lang.name()) } " " }
                    @else { a href={ "?lang=" (lang.code()) } lang=(lang.code()) { (lang.name()) } " " }
                }
            }
            span { (t.signed_in_as) ": " b id="admin" { (frame.admin) } }
            form method="post" action="/logout" {
                input type="hidden" name="csrf" value=(frame.csrf);
                button type="submit" { (t.logout) }
            }
        }
    }
}

pub fn login(lang: Lang, refused: bool) -> Markup {
    let t = lang.t();
    let head = html! { header { strong { (t.title) } span {
        @for other in Lang::ALL { a href={ "/login?lang=" (other.code()) } { (other.name()) } " " }
    } } };
    layout(
        lang,
        t.login,
        head,
        html! {
            h1 { (t.login) }
            @if refused { p id="refused" style="color:#b91c1c" { (t.login_refused) } }
            form method="post" action="/login" {
                label { (t.token) " " input type="password" name="token" autocomplete="off" required; }
                " "
                button type="submit" id="login" { (t.login) }
            }
            p { (t.login_help) }
        },
    )
}

/// "3 h ago" in the reader's language.
fn ago(t: &Strings, then: u64, now: u64) -> String {
    if then == 0 {
        return t.never.to_owned();
    }
    let secs = now.saturating_sub(then);
    match secs {
        0..60 => format!("{secs} {}", t.ago_s),
        60..3600 => format!("{} {}", secs / 60, t.ago_m),
        3600..172_800 => format!("{} {}", secs / 3600, t.ago_h),
        _ => format!("{} {}", secs / 86_400, t.ago_d),
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
    let t = frame.lang.t();
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
        t.edges,
        header(frame, t),
        html! {
            p.sum {
                span { (t.catalog_in_force) ": " b id="catalog-sequence" { @if let Some(s) = catalog.sequence { (s) } @else { "—" } } }
                span { (t.edges) ": " b { (summary.edges) } }
                span.flag.behind { (t.behind) ": " (summary.behind) }
                span.flag.failing { (t.failing) ": " (summary.failing) }
                span.flag.silent { (t.silent) ": " (summary.silent) }
            }
            form.filter method="get" action="/" {
                label { (t.county) " "
                    select name="county" id="county" {
                        option value="*" { (t.all_counties) }
                        @for county in counties {
                            option value=(county) selected[query.county.as_deref() == Some(county.as_str())] {
                                @if county.is_empty() { "—" } @else { (county) }
                            }
                        }
                    }
                }
                " "
                label { (t.name) " " input type="search" name="q" value=(query.name.as_deref().unwrap_or("")); }
                " "
                label { input type="checkbox" name="flagged" value="1" checked[query.flagged]; " " (t.only_flagged) }
                input type="hidden" name="sort" value=(query.sort.code());
                @if query.desc { input type="hidden" name="desc" value="1"; }
                " "
                button type="submit" id="filter" { (t.filter) }
            }
            table id="edges" {
                thead { tr {
                    (column(t.name, Sort::Name))
                    (column(t.county, Sort::County))
                    (column(t.last_seen, Sort::LastSeen))
                    (column(t.reports, Sort::Reports))
                    th { (t.version) }
                    (column(t.catalog_lag, Sort::Lag))
                    (column(t.held, Sort::Held))
                    (column(t.free, Sort::Free))
                    th { (t.flags) }
                } }
                tbody {
                    @for row in shown {
                        tr data-edge=(row.name) {
                            td { (row.name) }
                            td { (row.county) }
                            td title=(row.last_seen) { (ago(t, row.last_seen, now)) }
                            td.n { (row.reports) }
                            td { (row.version) }
                            td.n { @if let Some(lag) = row.catalog_lag { (lag) } @else { "—" } }
                            td.n { (bytes(row.bytes_held)) }
                            td.n { (bytes(row.bytes_free)) }
                            td title=[row.last_failure.as_deref()] {
                                @if row.behind { span.flag.behind { (t.behind) } }
                                @if row.failing { span.flag.failing { (t.failing) } }
                                @if row.silent { span.flag.silent { (t.silent) } }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { (t.none_yet) } }
            nav.pages {
                @if page > 1 { a href=(list_link(query, query.sort, query.desc, page - 1)) { (t.previous) } }
                span { (page) " / " (pages) " " (t.page) " (" (rows.len()) ")" }
                " "
                @if page < pages { a href=(list_link(query, query.sort, query.desc, page + 1)) { (t.next) } }
            }
        },
    )
}

pub fn courses(frame: &Frame<'_>, catalog: &CatalogView, adoption: &[Adoption]) -> Markup {
    let t = frame.lang.t();
    layout(
        frame.lang,
        t.courses,
        header(frame, t),
        html! {
            h1 { (t.courses) }
            p { (t.catalog_in_force) ": " @if let Some(s) = catalog.sequence { (s) } @else { "—" } }
            table id="courses" {
                thead { tr {
                    th { (t.course) } th { (t.grade) } th { (t.current_version) }
                    th { (t.complete) } th { (t.partial) } th { (t.older) }
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
            @if adoption.is_empty() { p { (t.none_yet) } }
        },
    )
}

fn title(lang: Lang, course: &crate::fleet::view::CourseInfo) -> &str {
    let title = match lang {
        Lang::Zh => course.title_zh.as_deref(),
        Lang::En => course.title_en.as_deref(),
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
    let t = frame.lang.t();
    layout(
        frame.lang,
        t.lessons,
        header(frame, t),
        html! {
            h1 { (t.lessons) " (" (t.window) ")" }
            form.filter method="get" action="/lessons" {
                label { (t.county) " " select name="county" {
                    option value="*" { (t.all_counties) }
                    @for c in counties { option value=(c) selected[county == Some(c.as_str())] { @if c.is_empty() { "—" } @else { (c) } } }
                } }
                " "
                label { (t.grade) " " select name="grade" {
                    option value="*" { (t.all_grades) }
                    @for g in grades { option value=(g) selected[grade == Some(g.as_str())] { @if g.is_empty() { "—" } @else { (g) } } }
                } }
                " "
                button type="submit" { (t.filter) }
            }
            table id="lessons" {
                thead { tr { th { (t.county) } th { (t.grade) } th { (t.course) } th { (t.lesson) } th { (t.opens) } } }
                tbody {
                    @for row in rows {
                        tr {
                            td { (row.county) }
                            td { (row.grade) }
                            td { @if let Some(course) = catalog.courses.get(&row.course) { (title(frame.lang, course)) } @else { (row.course) } }
                            td { (row.lesson) }
                            td.n { (row.opens) }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { (t.none_yet) } }
        },
    )
}
