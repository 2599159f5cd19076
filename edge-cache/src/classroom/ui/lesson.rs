//! A lesson's page, `/course/<id>/<lesson>`: its HTML in a frame (so its
//! relative links work), players for video and audio, a table of its files.
//! Files not held yet are asked for at once, ahead of the prefetch.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use catalog::store::OpenedBlob;
use catalog::{FileEntry, Hash, Store};
use catalog::{format, tr};
use maud::html;

use crate::classroom::error::ReadError;
use crate::classroom::lesson_html::track_label;
use crate::classroom::media;
use crate::classroom::ui::pages::has_blob;
use crate::classroom::ui::{
    Reader, error_page, held_badge, not_found_page, page_with_status, pick, titled,
    unavailable_notice,
};
use crate::classroom::{self, Classroom, read, url_path};

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

pub(crate) async fn lesson_page(
    State(state): State<Arc<Classroom>>,
    Path((course_id, lesson_id)): Path<(String, String)>,
    reader: Reader,
) -> Response {
    let (lang, here) = (reader.lang, reader.here.as_str());
    let store = state.store.clone();
    let loaded = read({
        let (course_id, lesson_id) = (course_id.clone(), lesson_id.clone());
        move || {
            let Some(catalog) = classroom::catalog(&store)? else {
                return Ok(None);
            };
            let Some(course) = classroom::course(&store, &catalog, &course_id)? else {
                return Ok(None);
            };
            let Some(lesson) = classroom::lesson(&store, &course, &lesson_id)? else {
                return Ok(None);
            };
            let mut files = Vec::new();
            for file in &lesson.files {
                let manifest = store
                    .manifest(&file.manifest)
                    .map_err(ReadError::object("manifest", file.manifest))?;
                let held = has_blob(&store, &file.blob)?;
                files.push((file.clone(), manifest, held));
            }
            // Files the lesson's own HTML shows are left to it.
            let entry_text = files
                .iter()
                .find(|(file, manifest, held)| {
                    file.path == lesson.entry && *held && manifest.media_type == "text/html"
                })
                .map(|(file, _, _)| read_verified_text(&store, &file.blob))
                .transpose()?
                .flatten();
            Ok(Some((course, lesson, files, entry_text)))
        }
    })
    .await;
    let (course, lesson, files, entry_text) = match loaded {
        Ok(Some(loaded)) => loaded,
        Ok(None) => return not_found_page(lang, here),
        Err(err) => return error_page(lang, here, &err),
    };
    // Issue 15: one open of this lesson today (no reader is recorded).
    state.usage.opened(&course_id, &lesson_id);
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
    let path_url = |path: &str| url_path(&format!("/courses/{}/{}/{path}", course.id, lesson.id));
    let file_url = |file: &FileEntry| path_url(&file.path);
    let paths = || files.iter().map(|(file, _, _)| file.path.as_str());
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
            (unavailable_notice(lang, err))
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
                        @let tracks = media::tracks(&file.path, paths());
                        @let chosen = tracks.iter().position(|t| t.lang.as_deref() == Some(lang.code())).unwrap_or(0);
                        figure {
                            video controls preload="metadata" src=(file_url(file)) data-path=(file.path)
                                poster=[media::poster(&file.path, paths()).map(path_url)] {
                                @for (n, track) in tracks.iter().enumerate() {
                                    track kind="subtitles" src=(path_url(&track.path)) srclang=[track.lang.as_deref()]
                                        label=(track_label(track)) default[n == chosen];
                                }
                                a href=(file_url(file)) { (tr!(lang, "download")) }
                            }
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
        h2 { (tr!(lang, "files")) }
        table #files {
            @for (file, manifest, held) in &files {
                tr {
                    td { a href=(file_url(file)) { (file.path) } }
                    td.meta { (format::bytes(manifest.size)) }
                    td { (held_badge(lang, *held)) }
                    td {
                        a href=(file_url(file)) target="_blank" { (tr!(lang, "open")) }
                        " · "
                        a href=(file_url(file)) download=(file.path.rsplit('/').next().unwrap_or(&file.path)) { (tr!(lang, "download")) }
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

/// left out here, and the frame's own request re-checks it.
/// A file that cannot be opened or read is an error; one that is not UTF-8 is
/// left out too.
fn read_verified_text(store: &Store, blob: &Hash) -> Result<Option<String>, ReadError> {
    use std::io::Read as _;
    let opened = store.open_blob(blob).map_err(ReadError::open_blob(*blob))?;
    let OpenedBlob::Verified { mut file, len } = opened else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(usize::MAX).min(1 << 20));
    file.read_to_end(&mut bytes)
        .map_err(|source| ReadError::ReadBlob {
            blob: *blob,
            source,
        })?;
    Ok(String::from_utf8(bytes).ok())
}
