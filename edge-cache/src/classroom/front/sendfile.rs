//! The front door's own answers: a plain `GET`/`HEAD` of a file route
//! ([`routes::held_file`]) naming a held blob is answered with the router's
//! headers and range logic ([`crate::classroom::answer`]) and a body sent by
//! `sendfile`, straight from the page cache to the socket.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::head::Plain;
use super::{SENDFILE_BLOCK, stalled};
use crate::classroom::answer::{AnswerBody, answer_held};
use crate::classroom::routes::{self, Named};
use crate::classroom::serve::{media_of_blob, open_blob};
use crate::classroom::{self, Classroom, read};

/// A held file answered here: the head to write and the region to send.
pub(super) struct Fast {
    pub(super) head: Vec<u8>,
    pub(super) file: Arc<std::fs::File>,
    pub(super) region: Option<(u64, u64)>,
    pub(super) route: &'static str,
    pub(super) status: u16,
    /// The course and lesson (empty: the course's own file) it belongs to,
    /// for the usage counts (issue 15); `None` for a file by hash.
    pub(super) place: Option<(String, String)>,
}

/// How the front door answers `request`, or `None` to hand it to hyper:
/// not a file route, not held, several ranges, or a store read that failed
/// (the router then answers it, and logs the failure with its 500).
pub(super) async fn plan(state: &Arc<Classroom>, request: &Plain) -> Option<Fast> {
    let (route, named) = routes::held_file(&request.target)?;
    let place = match &named {
        Named::Place(key) => Some((key.course.clone(), key.lesson.clone().unwrap_or_default())),
        Named::Blob(_) => None,
    };
    // A teacher's own lesson runs sandboxed (see `serve::TEACHERS_SANDBOX`).
    let sandboxed = place
        .as_ref()
        .is_some_and(|(course, _)| course.starts_with('~'));
    let (blob, media, cache) = match named {
        Named::Blob(blob) => (
            blob,
            media_of_blob(state, blob).await.ok()??,
            classroom::IMMUTABLE,
        ),
        Named::Place(key) => {
            let placed = match state.places.cached(&key) {
                Some(placed) => placed?,
                None => {
                    let classroom = state.clone();
                    read(move || classroom.places.look_up(&classroom.store, &key))
                        .await
                        .ok()??
                }
            };
            if classroom::lesson_html::wants_fonts(&placed.media) {
                return None; // served with the fonts inserted, by hyper
            }
            (placed.blob, placed.media, classroom::REVALIDATE)
        }
    };
    let (file, len) = open_blob(&state.store, &blob).await.ok()??;
    let mut answer = answer_held(len, blob, &media, cache, &request.method, &request.headers);
    if sandboxed {
        classroom::serve::sandboxed(&mut answer.headers);
    } else if place.is_none() && classroom::serve::is_active(&media) {
        answer.headers.insert(
            header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(classroom::serve::TEACHERS_SANDBOX),
        );
    }
    let region = match answer.body {
        AnswerBody::Empty => None,
        AnswerBody::Region { start, end } => Some((start, end)),
        AnswerBody::Parts { .. } => return None,
    };
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            answer.status.as_u16(),
            answer.status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    // Every answer but a 304 says where its body ends (a 304 has none by definition).
    if !answer.headers.contains_key(header::CONTENT_LENGTH)
        && answer.status != axum::http::StatusCode::NOT_MODIFIED
    {
        head.extend_from_slice(b"content-length: 0\r\n");
    }
    for (name, value) in &answer.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"date: ");
    head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    head.extend_from_slice(b"\r\n");
    if request.close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Some(Fast {
        head,
        file,
        region,
        route: route.pattern,
        status: answer.status.as_u16(),
        place,
    })
}

/// Sends `start..end` of `file` with `sendfile`; gives up when the socket
/// takes nothing for `stall`.
pub(super) async fn send_region(
    stream: &TcpStream,
    file: &std::fs::File,
    start: u64,
    end: u64,
    stall: Duration,
) -> io::Result<u64> {
    let mut offset = start;
    while offset < end {
        tokio::time::timeout(stall, stream.writable())
            .await
            .map_err(|_| stalled(stall))??;
        let count = ((end - offset) as usize).min(SENDFILE_BLOCK);
        match stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut offset), count).map_err(io::Error::from)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its length",
                ));
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(end - start)
}
