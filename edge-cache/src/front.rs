//! The classroom's HTTP/1.1 front door: lesson files the edge holds go out
//! with `sendfile`, straight from the page cache to the socket; everything
//! else is served by hyper and the [`crate::classroom`] router.
//!
//! Forty tablets seeking in the same lesson video are nearly all range
//! requests for held files. Copying those bytes through user space costs
//! the edge three to four times the CPU per GiB of a kernel-side copy, and on
//! a two-core school server that CPU is the limit. So each connection starts
//! here:
//!
//! - A request head is read and parsed ([`httparse`]). A plain `GET`/`HEAD`
//!   over HTTP/1.1 without a body, for `/files/…`, `/courses/…` or
//!   `/assets/…`, naming a held blob, is answered here: the same headers and
//!   range logic as the router ([`classroom::answer_held`]), the body by
//!   `sendfile`. Keep-alive and pipelining work as usual.
//! - Anything else — pages, the API, read-through, several ranges, HTTP/1.0,
//!   a malformed head — hands the connection, with the bytes already read,
//!   to hyper for the rest of its life.
//!
//! `sendfile` of a block not in the page cache waits for the disk on a
//! runtime thread; blocks are at most [`SENDFILE_BLOCK`] so one slow read
//! holds the others up only briefly.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use bytes::{Buf, Bytes, BytesMut};
use catalog::Hash;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::classroom::{self, AnswerBody, Classroom};
use crate::files::PlaceKey;
use crate::metrics::RequestLabels;

/// Largest request head handled here; larger ones go to hyper, which refuses them.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 48;
/// Bytes handed to one `sendfile` call.
pub const SENDFILE_BLOCK: usize = 512 * 1024;
/// A keep-alive connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(120);
/// How long open answers may run on after shutdown is asked for.
const GRACE: Duration = Duration::from_secs(5);

/// Serves `router` (whose state is `state`) on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Classroom>,
    router: Router,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(stream, state.clone(), router.clone(), shutdown.clone()));
                }
                Err(err) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    warn!(cause = %err, "accepting a classroom connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    connections.close();
    if tokio::time::timeout(GRACE, connections.wait())
        .await
        .is_err()
    {
        debug!("closing classroom connections still open after the grace period");
    }
}

/// A request this front answers itself.
struct Plain {
    head_len: usize,
    method: Method,
    target: String,
    headers: HeaderMap,
    close: bool,
}

enum Head {
    Plain(Plain),
    Partial,
    /// Anything hyper should see.
    Other,
}

fn parse_head(buffer: &[u8]) -> Head {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let head_len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => return Head::Partial,
        _ => return Head::Other,
    };
    let method = match request.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Other,
    };
    if request.version != Some(1) {
        return Head::Other;
    }
    let Some(target) = request.path.map(str::to_owned) else {
        return Head::Other;
    };
    let mut headers = HeaderMap::new();
    let mut close = false;
    for slot in request.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(slot.name.as_bytes()),
            HeaderValue::from_bytes(slot.value),
        ) else {
            return Head::Other;
        };
        if name == header::CONTENT_LENGTH && value.as_bytes() != b"0"
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Head::Other;
        }
        if name == header::CONNECTION
            && value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        {
            close = true;
        }
        headers.append(name, value);
    }
    Head::Plain(Plain {
        head_len,
        method,
        target,
        headers,
        close,
    })
}

/// Percent-decodes one path piece; `None` if it is not UTF-8.
fn decode(piece: &str) -> Option<String> {
    let bytes = piece.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (
                (bytes[i + 1] as char).to_digit(16),
                (bytes[i + 2] as char).to_digit(16),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a file route names, and its route pattern for the metrics.
enum Named {
    Blob(Hash),
    Place(PlaceKey, &'static str),
}

fn route(target: &str) -> Option<Named> {
    let path = target.split(['?', '#']).next()?;
    if let Some(hash) = path.strip_prefix("/files/") {
        return hash.parse().ok().map(Named::Blob);
    }
    if let Some(rest) = path.strip_prefix("/courses/") {
        let mut pieces = rest.splitn(3, '/');
        let (course, lesson, file) = (pieces.next()?, pieces.next()?, pieces.next()?);
        if course.is_empty() || lesson.is_empty() || file.is_empty() {
            return None;
        }
        let key = PlaceKey {
            course: decode(course)?,
            lesson: Some(decode(lesson)?),
            path: decode(file)?,
        };
        return Some(Named::Place(key, "/courses/{course}/{lesson}/{*path}"));
    }
    if let Some(rest) = path.strip_prefix("/assets/") {
        let (course, file) = rest.split_once('/')?;
        if course.is_empty() || file.is_empty() {
            return None;
        }
        let key = PlaceKey {
            course: decode(course)?,
            lesson: None,
            path: decode(file)?,
        };
        return Some(Named::Place(key, "/assets/{course}/{*path}"));
    }
    None
}

/// A held file answered here: the head to write and the region to send.
struct Fast {
    head: Vec<u8>,
    file: Arc<std::fs::File>,
    region: Option<(u64, u64)>,
    route: &'static str,
    status: u16,
}

async fn plan(state: &Arc<Classroom>, request: &Plain) -> Option<Fast> {
    let (blob, media, cache, route_name) = match route(&request.target)? {
        Named::Blob(blob) => (
            blob,
            classroom::media_of_blob(state, blob).await?,
            classroom::IMMUTABLE,
            "/files/{hash}",
        ),
        Named::Place(key, route_name) => {
            let placed = match state.places.cached(&key) {
                Some(placed) => placed?,
                None => {
                    let classroom = state.clone();
                    classroom::blocking(move || classroom.places.look_up(&classroom.store, &key))
                        .await??
                }
            };
            (placed.blob, placed.media, classroom::REVALIDATE, route_name)
        }
    };
    let (file, len) = classroom::open_blob(&state.store, &blob)?;
    let answer =
        classroom::answer_held(len, blob, &media, cache, &request.method, &request.headers);
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
        route: route_name,
        status: answer.status.as_u16(),
    })
}

/// Sends `start..end` of `file` with `sendfile`.
async fn send_region(
    stream: &TcpStream,
    file: &std::fs::File,
    start: u64,
    end: u64,
) -> io::Result<u64> {
    let mut offset = start;
    while offset < end {
        stream.writable().await?;
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

async fn connection(
    mut stream: TcpStream,
    state: Arc<Classroom>,
    router: Router,
    shutdown: CancellationToken,
) {
    let mut buffer = BytesMut::with_capacity(4096);
    loop {
        let request = loop {
            match parse_head(&buffer) {
                Head::Plain(request) => break Some(request),
                Head::Other => break None,
                Head::Partial => {}
            }
            let read = tokio::select! {
                read = tokio::time::timeout(IDLE, stream.read_buf(&mut buffer)) => read,
                () = shutdown.cancelled(), if buffer.is_empty() => return,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
        };
        let fast = match &request {
            Some(request) => plan(&state, request).await,
            None => None,
        };
        let (Some(request), Some(fast)) = (request, fast) else {
            return to_hyper(stream, buffer.freeze(), router, shutdown).await;
        };
        buffer.advance(request.head_len);
        if stream.write_all(&fast.head).await.is_err() {
            return;
        }
        state.metrics.cache_hits.inc();
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: fast.route.to_owned(),
                status: fast.status,
            })
            .inc();
        if let Some((start, end)) = fast.region {
            match send_region(&stream, &fast.file, start, end).await {
                Ok(sent) => {
                    state.metrics.bytes_served.inc_by(sent);
                }
                Err(err) => {
                    debug!(cause = %err, "a classroom connection ended mid-answer");
                    return;
                }
            }
        }
        if request.close || shutdown.is_cancelled() {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Serves the rest of the connection with hyper, the bytes already read first.
async fn to_hyper(stream: TcpStream, read: Bytes, router: Router, shutdown: CancellationToken) {
    let io = TokioIo::new(Rewind { read, stream });
    let service = TowerToHyperService::new(router);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

/// A connection with bytes already read put back in front.
struct Rewind {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The head parser and the file router, reachable for the fuzz targets in
/// `tools/fuzz`: `None` for a partial head, `Some(None)` for one handed to
/// hyper, else `(head_len, target, close, whether the target routes to a file)`.
#[doc(hidden)]
pub fn fuzz_parse_head(buffer: &[u8]) -> Option<Option<(usize, String, bool, bool)>> {
    match parse_head(buffer) {
        Head::Partial => None,
        Head::Other => Some(None),
        Head::Plain(p) => Some(Some((
            p.head_len,
            p.target.clone(),
            p.close,
            route(&p.target).is_some(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_requests_stay_here() {
        let plain = b"GET /courses/a/b/c.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\nGET";
        let Head::Plain(request) = parse_head(plain) else {
            panic!("a plain GET is answered here");
        };
        assert_eq!(request.head_len, plain.len() - 3);
        assert_eq!(
            request.headers.get(header::RANGE).map(|v| v.as_bytes()),
            Some(&b"bytes=0-1"[..])
        );
        assert!(!request.close);
        assert!(matches!(
            parse_head(b"GET /files/ab HTTP/1.1\r\nHost"),
            Head::Partial
        ));
        for other in [
            &b"POST /files/ab HTTP/1.1\r\n\r\n"[..],
            b"GET /files/ab HTTP/1.0\r\n\r\n",
            b"GET /files/ab HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /files/ab HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /files/ab HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"GARBAGE\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(other), Head::Other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        let Head::Plain(closing) =
            parse_head(b"HEAD /x HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n")
        else {
            panic!("HEAD is answered here");
        };
        assert!(closing.close);
    }

    #[test]
    fn routes_decode_like_the_router() {
        let Some(Named::Place(key, route_name)) =
            route("/courses/%E6%95%B0%E5%AD%A6/01/video/a%20b.mp4?x=1")
        else {
            panic!("a lesson file");
        };
        assert_eq!(key.course, "数学");
        assert_eq!(key.lesson.as_deref(), Some("01"));
        assert_eq!(key.path, "video/a b.mp4");
        assert_eq!(route_name, "/courses/{course}/{lesson}/{*path}");
        let Some(Named::Place(key, _)) = route("/assets/c/cover.png") else {
            panic!("a course file");
        };
        assert_eq!(
            (key.course.as_str(), key.lesson, key.path.as_str()),
            ("c", None, "cover.png")
        );
        assert!(route("/courses/a/b").is_none());
        assert!(route("/courses/a/b/%FF").is_none(), "not UTF-8");
        assert!(route("/files/not-a-hash").is_none());
        assert!(route("/status").is_none());
        assert_eq!(decode("%2e%2E/x%"), Some("../x%".into()));
    }
}
