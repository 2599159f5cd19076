//! The language switch and the static files: `/lang/<code>` remembers the
//! reader's language and sends them back, only ever to a path on this edge
//! ([`safe_back`]); `/static/style.css` and `/static/fonts/…`.

use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;

use crate::classroom::i18n::{self, Lang};
use crate::classroom::ui::{FONT_TIBETAN, FONT_YI, STYLE};

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
    utf8_percent_encode(&format!("{path}{rest}"), BACK).to_string()
}

/// What a way back keeps as it is: visible ASCII but `\\`.
const BACK: &AsciiSet = &CONTROLS.add(b' ').add(b'\\');

#[derive(Deserialize)]
pub(crate) struct Back {
    back: Option<String>,
}

/// Remembers the language for a year and goes back where the reader was.
pub(crate) async fn set_language(Path(code): Path<String>, Query(back): Query<Back>) -> Response {
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

pub(crate) async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

pub(crate) async fn font(Path(name): Path<String>) -> Response {
    let bytes = match name.as_str() {
        "NotoSansYi-Regular.ttf" => FONT_YI,
        "NotoSerifTibetan-Regular.ttf" => FONT_TIBETAN,
        _ => return (StatusCode::NOT_FOUND, "no such font\n").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "font/ttf"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            // A teacher's sandboxed HTML lesson (an origin of its own)
            // loads them too, as another site's fonts.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classroom::routes::query_value;

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
            query_value("/search?q=加法"),
            "%2Fsearch%3Fq%3D%E5%8A%A0%E6%B3%95"
        );
    }
}
