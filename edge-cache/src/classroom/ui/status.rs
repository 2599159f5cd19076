//! `/status` for the school's IT teacher, and its "sync now" button.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use catalog::format;
use catalog::tr;
use maud::{Markup, html};

use crate::classroom::i18n::{self, Lang};
use crate::classroom::ui::{Reader, SLOT, error_page, page, sentence};
use crate::classroom::{Classroom, url_path};

pub(crate) async fn status_page(State(state): State<Arc<Classroom>>, reader: Reader) -> Response {
    let lang = reader.lang;
    let status = match state.status().await {
        Ok(status) => status,
        Err(err) => return error_page(lang, "/status", &err),
    };
    let live = status.live.clone().unwrap_or_else(|| state.live.snapshot());
    let downloading: Vec<_> = status
        .courses
        .iter()
        .filter(|course| course.subscribed && course.files_held < course.files)
        .collect();
    let body = html! {
        h1 { (tr!(lang, "status")) }
        table #status {
            tr { th { (tr!(lang, "catalog")) } td #catalog-sequence {
                @match status.catalog_sequence { Some(seq) => { "#" (seq) }, None => { (tr!(lang, "never")) } }
                @if let Some(at) = status.catalog_published_at { " · " (tr!(lang, "published", at = format::time(at))) }
                @if let Some(warning) = &status.catalog_warning { div.notice #catalog-expired { (warning) } }
                @for gone in &status.withdrawn {
                    div.notice.withdrawn { (tr!(lang, "withdrawn", course = gone.id.as_str(), at = format::time(gone.withdrawn_at))) @if !gone.reason.is_empty() { " · " (gone.reason) } }
                }
            } }
            tr { th { (tr!(lang, "last-sync")) } td #last-sync {
                @match &status.last_sync {
                    None => { (tr!(lang, "never")) },
                    Some(report) => {
                        (format::time(report.finished_at)) " · "
                        @if report.error.is_some() { (tr!(lang, "result-failed")) }
                        @else if report.complete { (tr!(lang, "result-ok")) }
                        @else if report.stopped_at_window_end { (tr!(lang, "stopped-at-window-end")) }
                        @else { (tr!(lang, "result-incomplete")) }
                        @if let Some(transport) = &report.transport {
                            " · " (sentence(&tr!(lang, "sync-over", transport = SLOT), html! { span #sync-transport { (transport.to_uppercase()) } }))
                        }
                        @if let Some(reason) = &report.fallback_reason {
                            div.notice #fallback-used { (tr!(lang, "fallback-used")) div.meta { (reason) } }
                        }
                        @if let Some(err) = &report.error { div.meta { (err) } }
                        @for failure in report.failures.iter().take(5) { div.meta { (failure) } }
                    },
                }
                @if live.syncing { div { (tr!(lang, "sync-running")) } }
                form #sync-now method="post" action="/status/sync-now" {
                    button type="submit" { (tr!(lang, "sync-now")) }
                    @if live.sync_requested { " " span.meta #sync-requested { (tr!(lang, "sync-requested")) } }
                }
            } }
            tr { th { (tr!(lang, "schedule")) } td #schedule {
                @if live.schedule.windows.is_empty() {
                    (tr!(lang, "any-time"))
                } @else {
                    @for (n, window) in live.schedule.windows.iter().enumerate() {
                        @if n > 0 { ", " }
                        (window)
                    }
                    " " (tr!(lang, "local-time"))
                }
                " · " (tr!(lang, "max-rate")) ": "
                @match live.schedule.max_rate {
                    Some(rate) => { (rate) "/s (" (format::bytes(rate.bytes_per_second())) "/s)" },
                    None => { (tr!(lang, "no-cap")) },
                }
                @if let (Some(opens), false) = (&live.schedule.next_window_opens, live.syncing) {
                    div #next-window { (tr!(lang, "next-window", at = opens.to_string())) }
                }
            } }
            tr { th { (tr!(lang, "bytes-held")) } td #bytes-held {
                (format::bytes(status.bytes_held))
                // Issue 13: the quota, and what did not fit.
                @if let Some(quota) = status.last_sync.as_ref().and_then(|r| r.quota.as_ref()) {
                    @if let Some(max) = quota.max_store { " / " span #max-store { (format::bytes(max)) } " (max_store)" }
                    @if let Some(line) = quota.shortfall() { div.notice #quota-shortfall { (line) } }
                }
            } }
            (crate::scrub::page::row(lang, status.scrub.as_ref(), status.bytes_held))
            (crate::report::page::row(lang, &status.reports))
            tr { th { (tr!(lang, "disk-free")) } td #disk-free {
                @match (status.disk_free, status.disk_total) {
                    (Some(free), Some(total)) => { (format::bytes(free)) " / " (format::bytes(total)) },
                    _ => { (tr!(lang, "unknown")) },
                }
            } }
            (languages_row(lang))
            tr { th { (tr!(lang, "upstream")) } td #upstream {
                (status.origin) " · "
                @match live.upstream.reachable {
                    Some(true) => { (tr!(lang, "reachable")) },
                    Some(false) => { (tr!(lang, "unreachable")) },
                    None => { (tr!(lang, "unknown")) },
                }
                @if let Some(at) = live.upstream.checked_at { " (" (format::time(at)) ")" }
                @if let Some(err) = &live.upstream.error { div.meta { (err) } }
            } }
        }
        h2 { (tr!(lang, "downloading")) }
        @if live.syncing && live.sync_bytes_total > 0 {
            p {
                progress #sync-progress max=(live.sync_bytes_total) value=(live.sync_bytes_done) {}
                (format::bytes(live.sync_bytes_done)) " / " (format::bytes(live.sync_bytes_total))
            }
        }
        @if downloading.is_empty() {
            p #downloading { (tr!(lang, "nothing-downloading")) }
        } @else {
            table #downloading {
                @for course in &downloading {
                    tr {
                        td { a href=(url_path(&format!("/course/{}", course.id))) { (course.id) } }
                        td { (tr!(lang, "files-held", held = course.files_held, total = course.files)) }
                        td.meta { (format::bytes(course.total_size)) }
                    }
                }
            }
        }
    };
    page(lang, "/status", &tr!(lang, "status"), body)
}

/// `tr#languages-row`: which languages are incomplete (their missing labels
/// show in Chinese) or drafts waiting for review.
fn languages_row(lang: Lang) -> Markup {
    let words = i18n::words();
    let notes: Vec<Markup> = Lang::all()
        .filter_map(|other| {
            let index = words.index(other.code())?;
            let missing = words.missing(index).len();
            let name = html! { span lang=(other.code()) { (other.name()) } };
            if missing > 0 {
                let text = tr!(lang, "language-incomplete", language = SLOT, missing = missing, total = words.used());
                Some(html! { div.language-incomplete data-lang=(other.code()) { (sentence(&text, name)) } })
            } else if words.needs_review(index) {
                let text = tr!(lang, "language-needs-review", language = SLOT);
                Some(html! { div.language-draft data-lang=(other.code()) { (sentence(&text, name)) } })
            } else {
                None
            }
        })
        .collect();
    html! {
        tr #languages-row { th { (tr!(lang, "languages")) } td {
            @if notes.is_empty() { (tr!(lang, "languages-complete")) }
            @for note in &notes { (note) }
        } }
    }
}

/// "Sync now" from the status page: asks the sync loop for a pass, then
/// goes back to the page. Only a form on this edge's own pages may ask (see
/// [`from_this_edge`]), so a page elsewhere cannot start syncs; scripts use
/// `shanlu edge sync-now`.
pub(crate) async fn sync_now(State(state): State<Arc<Classroom>>, headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
