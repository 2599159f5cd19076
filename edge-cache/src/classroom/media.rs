//! What goes with a lesson's media, found by file name (issue 17): a
//! video's subtitles and poster, a course's cover and a lesson's picture.
//!
//! Publishers need no new metadata: the files sit beside the video.
//!
//! - Subtitles: `intro.vtt`, or `intro.<lang>.vtt` (`intro.zh.vtt`,
//!   `intro.ii.vtt`) beside `intro.mp4`, become `<track>`s of its player,
//!   in the classroom's own player and in a lesson's HTML ([`add_tracks`]),
//!   and their text is searchable ([`cue_text`]).
//! - A poster: `intro-poster.png` or `intro.png` (also `.jpg`, `.jpeg`,
//!   `.webp`) beside `intro.mp4`.
//! - A course's cover: `cover.<image>` at the top of the course folder; a
//!   lesson's picture: `poster.<image>` at the top of the lesson folder,
//!   else its first video's poster.

use catalog::i18n::embed::is_language_code;

/// Image endings a poster or cover may have.
const IMAGES: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// The most subtitle text of one file that search reads.
pub const MAX_CUE_TEXT: usize = 256 * 1024;

/// One subtitle file of a video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// The file's path in the lesson.
    pub path: String,
    /// Its language, from `intro.<lang>.vtt`; `None` for `intro.vtt`.
    pub lang: Option<String>,
}

/// `path` split into its folder (with the trailing `/`, or empty) and name.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(at) => path.split_at(at + 1),
        None => ("", path),
    }
}

/// A name without its last ending: `intro.mp4` → `intro`.
fn stem(name: &str) -> &str {
    name.rfind('.').map_or(name, |at| &name[..at])
}

/// Whether a lesson file is a video the classroom plays.
pub fn is_video(media_type: &str) -> bool {
    media_type.starts_with("video/")
}

/// Whether a lesson file is a subtitle file.
pub fn is_subtitles(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".vtt")
}

/// The subtitle files beside `video` among `files`, by path.
pub fn tracks<'a>(video: &str, files: impl IntoIterator<Item = &'a str>) -> Vec<Track> {
    let (folder, name) = split(video);
    let video_stem = stem(name);
    let mut found: Vec<Track> = files
        .into_iter()
        .filter_map(|path| {
            let (their_folder, their_name) = split(path);
            if their_folder != folder || !is_subtitles(their_name) {
                return None;
            }
            let rest = stem(their_name);
            if rest == video_stem {
                return Some(Track {
                    path: path.to_owned(),
                    lang: None,
                });
            }
            let lang = rest.strip_prefix(video_stem)?.strip_prefix('.')?;
            is_language_code(lang).then(|| Track {
                path: path.to_owned(),
                lang: Some(lang.to_owned()),
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// The poster beside `video` among `files`.
pub fn poster<'a>(
    video: &str,
    files: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    let (folder, name) = split(video);
    let video_stem = stem(name);
    [format!("{video_stem}-poster"), video_stem.to_owned()]
        .iter()
        .find_map(|wanted| image_named(folder, wanted, files.clone()))
}

/// `folder` + `name` + `.<image>` among `files`.
fn image_named<'a>(
    folder: &str,
    name: &str,
    files: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut found: Vec<&str> = files
        .into_iter()
        .filter(|path| {
            let (their_folder, their_name) = split(path);
            their_folder == folder
                && their_name.rsplit_once('.').is_some_and(|(base, ending)| {
                    base == name && IMAGES.contains(&ending.to_ascii_lowercase().as_str())
                })
        })
        .collect();
    found.sort_unstable();
    found.first().copied()
}

/// A course's cover among its course-level files.
pub fn cover<'a>(files: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    image_named("", "cover", files)
}

/// Endings of the videos whose posters may stand for their lesson.
const VIDEOS: [&str; 5] = ["mp4", "m4v", "webm", "ogv", "mov"];

/// A lesson's picture: `poster.<image>` at its top, else its first video's
/// poster, among the lesson's file paths.
pub fn lesson_picture<'a>(paths: impl IntoIterator<Item = &'a str> + Clone) -> Option<&'a str> {
    image_named("", "poster", paths.clone()).or_else(|| {
        let mut videos: Vec<&str> = paths
            .clone()
            .into_iter()
            .filter(|path| {
                path.rsplit_once('.').is_some_and(|(_, ending)| {
                    VIDEOS.contains(&ending.to_ascii_lowercase().as_str())
                })
            })
            .collect();
        videos.sort_unstable();
        videos
            .into_iter()
            .find_map(|video| poster(video, paths.clone()))
    })
}

/// The words of a WebVTT file, for search: the cues' text without the
/// header, cue names, timings, settings, notes and tags.
pub fn cue_text(vtt: &str) -> String {
    let mut out = String::new();
    let vtt = vtt.replace("\r\n", "\n").replace('\r', "\n");
    let mut blocks = vtt.split("\n\n").map(|block| block.trim_matches('\n'));
    // The first block is the `WEBVTT` header.
    blocks.next();
    for block in blocks {
        let mut lines = block.lines();
        let first = lines.clone().next().unwrap_or("");
        if first.starts_with("NOTE") || first.starts_with("STYLE") || first.starts_with("REGION") {
            continue;
        }
        // An optional cue name, then the timing line, then the text.
        if !lines.by_ref().any(|line| line.contains("-->")) {
            continue;
        }
        for line in lines {
            let mut in_tag = false;
            for c in line.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            out.push(' ');
            if out.len() >= MAX_CUE_TEXT {
                return out;
            }
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
}

/// A `<track>` to add to a video in a lesson's HTML: the `src` as the page
/// writes it, and the track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlTrack {
    pub src: String,
    pub srclang: Option<String>,
    pub label: String,
}

/// Videos of one page given tracks; later ones are left as they are, so a
/// page of thousands of `<video>` tags costs no more than this many scans.
pub const MAX_VIDEOS: usize = 64;

/// Lesson HTML with `<track>` elements added to each `<video src="…">`
/// whose file has subtitles beside it, unless the video already has
/// tracks. `tracks_for(src)` gives the tracks of a video as the page names
/// it (a path relative to the page). Videos named only by `<source>`
/// children are left as they are.
pub fn add_tracks(html: &[u8], tracks_for: impl Fn(&str) -> Vec<HtmlTrack>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(html.len() + 256);
    let mut from = 0;
    let mut changed = false;
    let mut videos = 0;
    while let Some(found) = find_ci(&html[from..], b"<video") {
        videos += 1;
        if videos > MAX_VIDEOS {
            break;
        }
        let start = from + found;
        let Some(end) = start_tag_end(html, start + 6) else {
            break;
        };
        out.extend_from_slice(&html[from..end]);
        from = end;
        let tag = String::from_utf8_lossy(&html[start..end]);
        let Some(src) = attribute(&tag, "src") else {
            continue;
        };
        let closing = find_ci(&html[end..], b"</video").map_or(html.len(), |at| end + at);
        if find_ci(&html[end..closing], b"<track").is_some() {
            continue;
        }
        for track in tracks_for(&src) {
            let escape = |text: &str| {
                text.replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
            };
            out.extend_from_slice(b"<track kind=\"subtitles\" src=\"");
            out.extend_from_slice(escape(&track.src).as_bytes());
            out.extend_from_slice(b"\"");
            if let Some(lang) = &track.srclang {
                out.extend_from_slice(format!(" srclang=\"{}\"", escape(lang)).as_bytes());
            }
            out.extend_from_slice(format!(" label=\"{}\"", escape(&track.label)).as_bytes());
            if !changed {
                out.extend_from_slice(b" default");
            }
            out.extend_from_slice(b">");
            changed = true;
        }
    }
    out.extend_from_slice(&html[from..]);
    changed.then_some(out)
}

/// Just past the `>` that ends a start tag whose name ends at `at`, minding
/// quoted attribute values; `None` if the tag never ends or `at` is not the
/// end of the name.
fn start_tag_end(html: &[u8], at: usize) -> Option<usize> {
    match html.get(at) {
        Some(b'>') => return Some(at + 1),
        Some(byte) if byte.is_ascii_whitespace() || *byte == b'/' => {}
        _ => return None,
    }
    let mut quote = None;
    for (offset, &byte) in html[at..].iter().enumerate() {
        match (quote, byte) {
            (None, b'"' | b'\'') => quote = Some(byte),
            (Some(q), _) if byte == q => quote = None,
            (None, b'>') => return Some(at + offset + 1),
            _ => {}
        }
    }
    None
}

/// The value of attribute `name` in a start tag, with the common entities
/// decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let before = lower[..at].chars().next_back();
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let rest = tag[from..].trim_start();
        let Some(rest) = rest.strip_prefix('=') else {
            continue;
        };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
            _ => rest
                .split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .unwrap_or(""),
        };
        return Some(value.replace("&amp;", "&"));
    }
    None
}

fn find_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

/// The lesson path a page's relative link names: `src` against the page's
/// folder, with `.` and `..` resolved; `None` for a link off the lesson
/// (absolute, with a scheme, a query or a fragment, or above its top).
pub fn resolve(page: &str, src: &str) -> Option<String> {
    if src.is_empty()
        || src.starts_with('/')
        || src.contains(['?', '#', '\\'])
        || src
            .split('/')
            .next()
            .is_some_and(|first| first.contains(':'))
    {
        return None;
    }
    let (folder, _) = split(page);
    let mut parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
    for part in src.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// `track` as a page at `page` names it: relative to the page's folder.
pub fn relative_to(page: &str, track: &str) -> String {
    let (folder, _) = split(page);
    let page_parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
    let track_parts: Vec<&str> = track.split('/').collect();
    let common = page_parts
        .iter()
        .zip(&track_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<&str> = vec![".."; page_parts.len() - common];
    out.extend(&track_parts[common..]);
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: [&str; 9] = [
        "index.html",
        "video/intro.mp4",
        "video/intro.zh.vtt",
        "video/intro.ii.vtt",
        "video/intro.vtt",
        "video/intro.notes.txt",
        "video/intro-poster.png",
        "video/intro.backup.vtt",
        "other/intro.en.vtt",
    ];

    #[test]
    fn subtitles_and_posters_are_found_beside_their_video() {
        let found = tracks("video/intro.mp4", FILES);
        let paths: Vec<_> = found
            .iter()
            .map(|t| (t.path.as_str(), t.lang.as_deref()))
            .collect();
        assert_eq!(
            paths,
            [
                ("video/intro.ii.vtt", Some("ii")),
                ("video/intro.vtt", None),
                ("video/intro.zh.vtt", Some("zh")),
            ]
        );
        assert_eq!(
            poster("video/intro.mp4", FILES),
            Some("video/intro-poster.png")
        );
        assert_eq!(
            poster("video/intro.mp4", ["video/intro.JPG"]),
            Some("video/intro.JPG")
        );
        assert_eq!(poster("intro.mp4", FILES), None);
        assert_eq!(cover(["cover.webp", "syllabus.pdf"]), Some("cover.webp"));
        assert_eq!(cover(["img/cover.png"]), None);
        let lesson = ["video/intro.mp4", "video/intro-poster.png"];
        assert_eq!(lesson_picture(lesson), Some("video/intro-poster.png"));
        let with_own = ["poster.jpg", "video/intro.mp4", "video/intro-poster.png"];
        assert_eq!(lesson_picture(with_own), Some("poster.jpg"));
        assert_eq!(lesson_picture(["intro.mp4", "other.png"]), None);
    }

    #[test]
    fn cue_text_keeps_only_what_is_said() {
        let vtt = "WEBVTT - counting\r\n\r\nNOTE made by hand\r\n\r\n1\r\n00:00.000 --> 00:02.000 align:start\r\n<v Teacher>一、二、<b>三</b>\r\n\r\n00:02.000 --> 00:04.000\r\nfour &amp; five\r\n";
        let text = cue_text(vtt);
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["一、二、三", "four", "&", "five"]
        );
        assert!(!text.contains("made by hand") && !text.contains("-->"));
    }

    #[test]
    fn tracks_go_into_each_video_with_subtitles_once() {
        let html = br#"<p><VIDEO controls title="a > b" src="video/intro.mp4">no video</VIDEO>
<video src='other.mp4'></video><video src="video/intro.mp4"><track src="x.vtt"></video>"#;
        let out = add_tracks(html, |src| {
            if src == "video/intro.mp4" {
                vec![HtmlTrack {
                    src: "video/intro.zh.vtt".into(),
                    srclang: Some("zh".into()),
                    label: "中文".into(),
                }]
            } else {
                Vec::new()
            }
        })
        .expect("changed");
        let out = String::from_utf8(out).expect("utf-8");
        assert_eq!(out.matches("<track kind=\"subtitles\"").count(), 1, "{out}");
        assert!(out.contains(r#"src="video/intro.mp4"><track kind="subtitles" src="video/intro.zh.vtt" srclang="zh" label="中文" default>no video"#), "{out}");
        assert!(add_tracks(b"<p>no video</p><videos>", |_| Vec::new()).is_none());
        // Past MAX_VIDEOS, videos are left alone (and the page kept whole).
        let many = "<video src=\"a.mp4\"></video>".repeat(MAX_VIDEOS + 5);
        let one = || {
            vec![HtmlTrack {
                src: "a.vtt".into(),
                srclang: None,
                label: "a.vtt".into(),
            }]
        };
        let out = String::from_utf8(add_tracks(many.as_bytes(), |_| one()).expect("changed"))
            .expect("utf-8");
        assert_eq!(out.matches("<track").count(), MAX_VIDEOS);
        assert_eq!(out.matches("<video").count(), MAX_VIDEOS + 5);
        assert!(add_tracks(b"<video src=\"a.mp4\"", |_| Vec::new()).is_none());
    }

    #[test]
    fn relative_links_resolve_within_the_lesson_only() {
        assert_eq!(
            resolve("index.html", "video/intro.mp4").as_deref(),
            Some("video/intro.mp4")
        );
        assert_eq!(
            resolve("pages/a.html", "../video/./intro.mp4").as_deref(),
            Some("video/intro.mp4")
        );
        for off in [
            "/x.mp4",
            "http://h/x.mp4",
            "../../x.mp4",
            "a.mp4?t=1",
            "",
            "data:video/mp4,x",
        ] {
            assert_eq!(resolve("pages/a.html", off), None, "{off}");
        }
        assert_eq!(
            relative_to("pages/a.html", "video/intro.vtt"),
            "../video/intro.vtt"
        );
        assert_eq!(
            relative_to("index.html", "video/intro.vtt"),
            "video/intro.vtt"
        );
    }
}
