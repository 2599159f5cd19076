//! Lesson HTML as the classroom serves it: with the edge's Yi and Tibetan
//! fonts (issue 12).
//!
//! The classroom's own pages load Noto Sans Yi and Noto Serif Tibetan from
//! `/static/fonts/`, but a lesson's HTML is the publisher's, shown in a frame,
//! and on a tablet without those fonts its Yi and Tibetan came out as empty
//! boxes. So an HTML file served by its place (`/courses/…`, `/assets/…`)
//! gets [`FONT_STYLE`] inserted right after its `<head>` tag, before the
//! lesson's own styles:
//!
//! - `@font-face` rules naming the served fonts under their own family names
//!   (`"Noto Sans Yi"`, `"Noto Serif Tibetan"`, what lessons ask for; a font
//!   installed on the device is used first through `local()`), and under
//!   `shanlu-yi` / `shanlu-tibetan`, limited to their scripts' code points;
//! - `html { font-family: shanlu-yi, shanlu-tibetan, serif }`, so a lesson
//!   that names no font at all still gets them. A lesson's own rules come
//!   later and win, so its looks do not change.
//!
//! The store keeps the publisher's bytes; only the answer changes, so it has
//! its own ETag (the blob's hash with a `-fonts` suffix and a version) and
//! its own length, and ranges are taken on the served bytes. `/files/<hash>`
//! stays the exact bytes of its hash. HTML over [`MAX_HTML`] is served as it
//! is, since it is read whole to be changed. The sendfile front door hands
//! HTML places to hyper ([`wants_fonts`]), so it never bypasses this.

use std::os::unix::fs::FileExt;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::warn;

use crate::classroom::answer::{content_type_of, etag_matches, header_value, requested_ranges};
use crate::classroom::error::ReadError;
use crate::classroom::files::{PageSubtitles, Placed};
use crate::classroom::i18n::Lang;
use crate::classroom::media::{self, HtmlTrack};
use crate::classroom::range::Ranges;
use crate::classroom::{self, Classroom, serve};

/// Largest HTML file given the fonts; a larger one is served as it is.
pub const MAX_HTML: u64 = 4 * 1024 * 1024;

/// Changes whenever [`FONT_STYLE`] does, so browsers do not keep an old copy.
const VERSION: u32 = 1;

/// What is inserted after `<head>`.
pub const FONT_STYLE: &str = concat!(
    "<style id=\"shanlu-fonts\">",
    "@font-face{font-family:\"Noto Sans Yi\";src:local(\"Noto Sans Yi\"),",
    "url(\"/static/fonts/NotoSansYi-Regular.ttf\") format(\"truetype\");font-display:swap}",
    "@font-face{font-family:\"Noto Serif Tibetan\";src:local(\"Noto Serif Tibetan\"),",
    "url(\"/static/fonts/NotoSerifTibetan-Regular.ttf\") format(\"truetype\");font-display:swap}",
    "@font-face{font-family:\"shanlu-yi\";src:local(\"Noto Sans Yi\"),",
    "url(\"/static/fonts/NotoSansYi-Regular.ttf\") format(\"truetype\");",
    "unicode-range:U+A000-A4CF;font-display:swap}",
    "@font-face{font-family:\"shanlu-tibetan\";src:local(\"Noto Serif Tibetan\"),",
    "url(\"/static/fonts/NotoSerifTibetan-Regular.ttf\") format(\"truetype\");",
    "unicode-range:U+0F00-0FFF;font-display:swap}",
    "html{font-family:\"shanlu-yi\",\"shanlu-tibetan\",serif}",
    "</style>"
);

/// Whether a file of this media type is served with the fonts inserted
/// (and so must not go out by sendfile).
pub fn wants_fonts(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/html")
        || essence.eq_ignore_ascii_case("application/xhtml+xml")
}

/// The ETag of a blob served with the fonts, and with the subtitle tracks
/// of its lesson (which a new lesson version can change while the page's
/// bytes stay the same).
pub fn etag(blob: &catalog::Hash, subtitles: Option<&PageSubtitles>) -> String {
    match subtitles {
        None => format!("\"{blob}-fonts{VERSION}\""),
        Some(subtitles) => {
            let mut hasher = blake3::Hasher::new();
            for file in &subtitles.files {
                hasher.update(file.as_bytes()).update(b"\n");
            }
            let tracks = hasher.finalize().to_hex();
            format!("\"{blob}-fonts{VERSION}-{}\"", &tracks[..16])
        }
    }
}

/// The page with a `<track>` for each subtitle file beside each of its
/// videos (see [`media::add_tracks`]), the Chinese one first and shown by
/// default; as it is when there are none. (The page is the same for every
/// reader; the classroom's own player picks the reader's language.)
pub fn with_tracks(html: Vec<u8>, subtitles: &PageSubtitles) -> Vec<u8> {
    let page = subtitles.page.as_str();
    let files = || subtitles.files.iter().map(String::as_str);
    let added = media::add_tracks(&html, |src| {
        let Some(video) = media::resolve(page, src) else {
            return Vec::new();
        };
        let mut tracks = media::tracks(&video, files());
        // The first is the default: Chinese, which every school reads, when
        // there is a Chinese track.
        tracks.sort_by_key(|track| track.lang.as_deref() != Some(catalog::i18n::CHINESE));
        tracks
            .into_iter()
            .map(|track| HtmlTrack {
                src: media::relative_to(page, &track.path),
                label: track_label(&track),
                srclang: track.lang,
            })
            .collect()
    });
    added.unwrap_or(html)
}

/// A track's label: its language's name in itself, else its code, else its
/// file name.
pub fn track_label(track: &media::Track) -> String {
    match &track.lang {
        Some(code) => match Lang::from_code(code) {
            Some(lang) if lang.code().eq_ignore_ascii_case(code) => lang.name().into_owned(),
            _ => code.clone(),
        },
        None => track
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&track.path)
            .to_owned(),
    }
}

/// `raw` with [`FONT_STYLE`] after its `<head…>` tag; without one, after
/// `<html…>`; without that, after a leading `<!doctype…>`; else first.
pub fn with_fonts(raw: &[u8]) -> Vec<u8> {
    let at = end_of_tag(raw, b"<head")
        .or_else(|| end_of_tag(raw, b"<html"))
        .or_else(|| end_of_tag(raw, b"<!doctype"))
        .unwrap_or(0);
    let mut out = Vec::with_capacity(raw.len() + FONT_STYLE.len());
    out.extend_from_slice(&raw[..at]);
    out.extend_from_slice(FONT_STYLE.as_bytes());
    out.extend_from_slice(&raw[at..]);
    out
}

/// Where the first `name` tag (ASCII case-insensitive, followed by `>` or
/// white space, before the body starts) ends, just past its `>`.
fn end_of_tag(raw: &[u8], name: &[u8]) -> Option<usize> {
    // The head is near the top; do not scan a whole large page.
    let window = &raw[..raw.len().min(64 * 1024)];
    let mut from = 0;
    while let Some(found) = find_ascii_ci(&window[from..], name) {
        let start = from + found;
        let after = start + name.len();
        match window.get(after) {
            Some(b'>') => return Some(after + 1),
            Some(byte) if byte.is_ascii_whitespace() => {
                let close = window[after..].iter().position(|&b| b == b'>')?;
                return Some(after + close + 1);
            }
            Some(_) => from = after,
            None => return None,
        }
    }
    None
}

fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// Serves an HTML place with the fonts, held or read through; `None` when the
/// place is not HTML or too large, to be served as it is.
pub(crate) async fn serve(
    state: &Classroom,
    placed: &Placed,
    uri: &Uri,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response> {
    if !wants_fonts(&placed.media) {
        return None;
    }
    let subtitles = placed.subtitles.as_deref();
    let etag = etag(&placed.blob, subtitles);
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return Some(not_modified(&etag));
    }
    let opened = match serve::open_blob(&state.store, &placed.blob).await {
        Ok(opened) => opened,
        Err(err) => return Some(err.answer(uri.path())),
    };
    let raw = match opened {
        Some((file, len)) => {
            if len > MAX_HTML {
                return None;
            }
            state.metrics.cache_hits.inc();
            let read = tokio::task::spawn_blocking(move || {
                let mut bytes = vec![0u8; len as usize];
                file.read_exact_at(&mut bytes, 0).map(|()| bytes)
            })
            .await
            .ok();
            match read {
                Some(Ok(bytes)) => bytes,
                Some(Err(err)) => {
                    warn!(blob = %placed.blob, cause = %err, "reading a held lesson page failed");
                    return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
                }
                None => return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            }
        }
        None => match read_through(state, placed).await? {
            Ok(bytes) => bytes,
            Err(why) => return Some(serve::unavailable(headers, uri, &why)),
        },
    };
    let mut page = with_fonts(&raw);
    if let Some(subtitles) = subtitles {
        page = with_tracks(page, subtitles);
    }
    let served = Bytes::from(page);
    let response = answer(served, &etag, &placed.media, method, headers);
    Some(response)
}

/// A lesson page not held yet, read through whole; `None` when its
/// manifest is unreadable or it is too large to change.
async fn read_through(
    state: &Classroom,
    placed: &Placed,
) -> Option<Result<Vec<u8>, crate::sync::readthrough::Unavailable>> {
    let store = state.store.clone();
    let manifest_hash = placed.manifest;
    let manifest = classroom::read(move || {
        store
            .manifest(&manifest_hash)
            .map_err(ReadError::object("manifest", manifest_hash))
    })
    .await
    .ok()?;
    let len = manifest.size;
    if len > MAX_HTML {
        return None;
    }
    let fetch = match state.read_through.start(manifest_hash, manifest) {
        Ok(fetch) => fetch,
        Err(why) => return Some(Err(why)),
    };
    let stream = match fetch.stream(0, len).await {
        Ok(stream) => stream,
        Err(why) => return Some(Err(why)),
    };
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::with_capacity(len as usize);
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) if bytes.len() + piece.len() <= len as usize => {
                bytes.extend_from_slice(&piece);
            }
            Ok(_) => {
                return Some(Err(crate::sync::readthrough::Unavailable::Offline(
                    "the origin sent more than the page's size".into(),
                )));
            }
            Err(err) => {
                return Some(Err(crate::sync::readthrough::Unavailable::Offline(
                    crate::sync::client::Cause::new(err),
                )));
            }
        }
    }
    Some(Ok(bytes))
}

fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let out = response.headers_mut();
    out.insert(header::ETAG, header_value(etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(classroom::REVALIDATE),
    );
    response
}

/// The answer for the served bytes: one range at most (several get the
/// whole page, which is small), conditionals, HEAD.
fn answer(
    served: Bytes,
    etag: &str,
    media: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Response {
    let len = served.len() as u64;
    let ranges = requested_ranges(headers, etag, len);
    let mut out = HeaderMap::new();
    out.insert(header::ETAG, header_value(etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(classroom::REVALIDATE),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let (status, body) = match ranges {
        Ranges::Unsatisfiable => {
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{len}")),
            );
            (StatusCode::RANGE_NOT_SATISFIABLE, Bytes::new())
        }
        Ranges::Parts(parts) if parts.len() == 1 => {
            let part = parts[0].clone();
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{len}", part.start, part.end - 1)),
            );
            (
                StatusCode::PARTIAL_CONTENT,
                served.slice(part.start as usize..part.end as usize),
            )
        }
        Ranges::Full | Ranges::Parts(_) => (StatusCode::OK, served),
    };
    if status != StatusCode::RANGE_NOT_SATISFIABLE {
        out.insert(header::CONTENT_TYPE, header_value(&content_type_of(media)));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = out;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_12_the_font_style_goes_after_the_head_tag() {
        let page = b"<!doctype html>\n<html lang=\"zh\">\n<HEAD><meta charset=\"utf-8\"><title>x</title></HEAD><body>\xea\x8b\x8d</body>";
        let served = with_fonts(page);
        let text = String::from_utf8(served).expect("utf-8");
        let at = text.find("<style id=\"shanlu-fonts\">").expect("inserted");
        assert_eq!(&text[..at], "<!doctype html>\n<html lang=\"zh\">\n<HEAD>");
        assert!(
            text.ends_with(
                "</style><meta charset=\"utf-8\"><title>x</title></HEAD><body>ꋍ</body>"
            )
        );
        assert_eq!(text.len(), page.len() + FONT_STYLE.len());
    }

    #[test]
    fn issue_12_pages_without_a_head_still_get_the_fonts() {
        let with_attrs = with_fonts(b"<html\nlang=ii><p>x");
        assert!(with_attrs.starts_with(b"<html\nlang=ii><style id=\"shanlu-fonts\">"));
        // `<header>` is not `<head>`.
        let header_only = with_fonts(b"<!DOCTYPE html><header>h</header>");
        assert!(header_only.starts_with(b"<!DOCTYPE html><style id=\"shanlu-fonts\">"));
        let bare = with_fonts("<p>ꋍ</p>".as_bytes());
        assert!(bare.starts_with(FONT_STYLE.as_bytes()));
        assert!(bare.ends_with("<p>ꋍ</p>".as_bytes()));
    }

    #[test]
    fn issue_12_only_html_wants_fonts_and_its_etag_differs_from_the_blob() {
        assert!(wants_fonts("text/html"));
        assert!(wants_fonts("text/html; charset=utf-8"));
        assert!(wants_fonts("application/xhtml+xml"));
        assert!(!wants_fonts("text/css"));
        assert!(!wants_fonts("video/mp4"));
        let blob = catalog::Hash::of(b"page");
        assert_ne!(etag(&blob, None), format!("\"{blob}\""));
        assert!(etag(&blob, None).starts_with(&format!("\"{blob}")));
    }

    #[test]
    fn issue_17_the_etag_changes_with_the_lessons_subtitles() {
        let blob = catalog::Hash::of(b"page");
        let with = |files: &[&str]| PageSubtitles {
            page: "index.html".into(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        };
        let one = etag(&blob, Some(&with(&["clip.zh.vtt"])));
        let two = etag(&blob, Some(&with(&["clip.zh.vtt", "clip.en.vtt"])));
        assert!(one != two && one != etag(&blob, None), "{one} {two}");
        let page = with_tracks(
            b"<video src=\"clip.mp4\"></video>".to_vec(),
            &with(&["clip.zh.vtt", "clip.xx-bad-.vtt"]),
        );
        assert_eq!(
            String::from_utf8(page).expect("utf-8"),
            r#"<video src="clip.mp4"><track kind="subtitles" src="clip.zh.vtt" srclang="zh" label="中文" default></video>"#
        );
    }

    #[test]
    fn issue_12_ranges_are_taken_on_the_served_bytes() {
        let served = Bytes::from(with_fonts(b"<head></head>abc"));
        let len = served.len();
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=-3"));
        let response = answer(served.clone(), "\"e\"", "text/html", &Method::GET, &headers);
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            response.headers()[header::CONTENT_RANGE],
            format!("bytes {}-{}/{len}", len - 3, len - 1).as_str()
        );
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "3");
        let full = answer(
            served,
            "\"e\"",
            "text/html",
            &Method::HEAD,
            &HeaderMap::new(),
        );
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(
            full.headers()[header::CONTENT_LENGTH],
            len.to_string().as_str()
        );
        assert_eq!(
            full.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
    }
}
