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
//!
//! # Bounds (issue 11)
//!
//! One client must not lock the classroom out, so every connection is held
//! to [`Limits`]:
//!
//! - Its place comes from the [`gate`]: a cap on all connections and a share
//!   per client address; when full, the oldest connection still waiting for
//!   a request head gives way to the newcomer, else the newcomer gets a 503.
//! - A request head must be complete within [`Limits::head`] (5 s) of the
//!   connection's start, or of its first byte after a keep-alive pause; a
//!   keep-alive connection idle [`Limits::idle`] (30 s) is closed. On the
//!   connections handed to hyper, hyper's header-read timeout is
//!   [`Limits::head`] and starts as soon as it waits for the next head, so
//!   their keep-alive pause is at most that.
//! - A head longer than [`MAX_HEAD`] is answered 431, a request target longer
//!   than [`MAX_TARGET`] 414, and the connection closed.
//! - An answer whose writes make no progress for [`Limits::send`] is cut.
//! - What is shed is logged as one summary line a second at most.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
use tracing::{debug, info};

use crate::classroom::files::PlaceKey;
use crate::classroom::{self, AnswerBody, Classroom};
use crate::metrics::RequestLabels;

pub(crate) mod gate;

use gate::{Gate, Ticket};

/// Largest request head; a longer one is answered 431 and the connection closed.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request target (path and query); a longer one is answered 414.
pub const MAX_TARGET: usize = crate::classroom::MAX_TARGET_LEN;
const MAX_HEADERS: usize = 48;
/// Bytes handed to one `sendfile` call.
pub const SENDFILE_BLOCK: usize = 512 * 1024;
/// How long open answers may run on after shutdown is asked for.
const GRACE: Duration = Duration::from_secs(5);
/// Descriptors kept back from the connection cap for the store, the sync and logs.
const RESERVED_FILES: u64 = 256;
/// The connection cap when the open-file limit allows it.
const MAX_CONNECTIONS: usize = 4096;
/// The least any client's share may be: a classroom of forty tablets behind one address.
const MIN_SHARE: usize = 64;

/// How many connections the front door holds, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, every client together.
    pub connections: usize,
    /// Connections open at once from one client address.
    pub per_client: usize,
    /// A request head must be complete this long after the connection opens,
    /// or after its first byte following a keep-alive pause.
    pub head: Duration,
    /// A keep-alive connection that sends nothing this long is closed.
    pub idle: Duration,
    /// An answer whose writes make no progress this long is cut.
    pub send: Duration,
}

impl Limits {
    /// Limits for a process allowed `open_files` descriptors (`None`: no
    /// limit). Each connection may hold two: its socket and the lesson file
    /// being sent.
    pub fn for_open_files(open_files: Option<u64>) -> Limits {
        let spare = open_files.map_or(u64::MAX, |limit| limit.saturating_sub(RESERVED_FILES));
        let connections = usize::try_from(spare / 2)
            .unwrap_or(usize::MAX)
            .clamp(16, MAX_CONNECTIONS);
        Limits {
            connections,
            per_client: (connections / 4).max(MIN_SHARE).min(connections),
            head: Duration::from_secs(5),
            idle: Duration::from_secs(30),
            send: Duration::from_secs(60),
        }
    }
}

/// Connections the kernel queues before `accept` (Linux caps it at
/// `net.core.somaxconn`). A flood of connects overflowing a short queue
/// makes the kernel drop or reset a classroom's connections before the gate
/// can see them (issue 11); tokio's `bind` queues 1,024.
pub const BACKLOG: u32 = 4096;

/// Binds the classroom listener on `addr` with a [`BACKLOG`] queue. Call
/// inside the runtime.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` (whose state is `state`) on `listener` within `limits` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<Classroom>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    info!(
        connections = limits.connections,
        per_client = limits.per_client,
        head_secs = limits.head.as_secs(),
        idle_secs = limits.idle.as_secs(),
        "classroom connection limits"
    );
    let gate = Arc::new(Gate::new(limits.connections, limits.per_client));
    let reporting = tokio::spawn(gate::report_task(gate.clone(), shutdown.clone()));
    let connections = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Some(ticket) = gate.admit(remote.ip()) else {
                        refuse_busy(&stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    connections.spawn(connection(
                        stream,
                        ticket,
                        gate.clone(),
                        limits,
                        state.clone(),
                        router.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(err) => {
                    // Out of file descriptors, usually: wait rather than spin,
                    // and leave the logging to the summary line.
                    gate.shed.accept_failed(&err);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = shutdown.cancelled() => break,
        }
    }
    let _ = reporting.await;
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
    /// Refused here with this status (414, 431), the connection then closed.
    TooLong(u16),
}

fn parse_head(buffer: &[u8]) -> Head {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let parsed = request.parse(buffer);
    // The request line: method, target and version take a few bytes more than the target.
    let line_len = buffer.iter().position(|&byte| byte == b'\n');
    if request.path.is_some_and(|path| path.len() > MAX_TARGET)
        || line_len.unwrap_or(buffer.len()) > MAX_TARGET + 32
    {
        return Head::TooLong(414);
    }
    let head_len = match parsed {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => return Head::TooLong(431),
        Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => return Head::Partial,
        Ok(httparse::Status::Partial) => return Head::TooLong(431),
        // More headers than parsed here: still a head to finish (within
        // MAX_HEAD and the head timeout) before hyper may have it.
        Err(httparse::Error::TooManyHeaders) if !buffer.windows(4).any(|w| w == b"\r\n\r\n") => {
            return if buffer.len() < MAX_HEAD {
                Head::Partial
            } else {
                Head::TooLong(431)
            };
        }
        Err(_) => return Head::Other,
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
    // A path over the router's limit is refused there, with its message.
    let path_len = target.split('?').next().map_or(0, str::len);
    if path_len > crate::classroom::MAX_PATH_LEN {
        return Head::Other;
    }
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
            if classroom::lesson_html::wants_fonts(&placed.media) {
                return None; // served with the fonts inserted, by hyper
            }
            (placed.blob, placed.media, classroom::REVALIDATE, route_name)
        }
    };
    let (file, len) = classroom::open_blob(&state.store, &blob).await?;
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

/// Sends `start..end` of `file` with `sendfile`; gives up when the socket
/// takes nothing for `stall`.
async fn send_region(
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

fn stalled(stall: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("the client took nothing for {} s", stall.as_secs()),
    )
}

/// A connection the gate had no place for: a 503 if the socket takes it at
/// once, then closed.
fn refuse_busy(stream: &TcpStream) {
    let _ = stream.try_write(BUSY);
}

/// What [`refuse_busy`] sends.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
    content-length: 52\r\nretry-after: 2\r\nconnection: close\r\n\r\n\
    the classroom server is full; try again in a moment\n";

/// Answers a head refused for its length and closes the connection, reading
/// (and dropping) what the client still sends for a moment so that the
/// answer is not lost to a reset.
async fn refuse_too_long(mut stream: TcpStream, status: u16) {
    let (reason, message) = match status {
        414 => ("URI Too Long", crate::classroom::too_long_message()),
        _ => (
            "Request Header Fields Too Large",
            format!("the request head is longer than {MAX_HEAD} bytes\n"),
        ),
    };
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{message}",
        message.len()
    );
    let linger = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        for _ in 0..64 {
            if stream.read(&mut sink).await? == 0 {
                break;
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), linger).await;
}

/// Why waiting for a request head ended without one.
enum NoHead {
    /// The client closed, or the connection failed, or shutdown.
    Gone,
    /// Part of a head, not completed in time.
    Timeout,
    /// Nothing sent in time.
    Silent,
}

async fn connection(
    mut stream: TcpStream,
    mut ticket: Ticket,
    gate: Arc<Gate>,
    limits: Limits,
    state: Arc<Classroom>,
    router: Router,
    shutdown: CancellationToken,
) {
    let mut buffer = BytesMut::with_capacity(4096);
    let mut answered = false;
    loop {
        ticket.waiting();
        // A new connection owes a whole head within `head`; a kept-alive one
        // may pause up to `idle`, then owes the rest within `head`.
        let mut head_due =
            (!answered || !buffer.is_empty()).then(|| tokio::time::Instant::now() + limits.head);
        let idle_due = tokio::time::Instant::now() + limits.idle;
        let request = loop {
            match parse_head(&buffer) {
                Head::Plain(request) => break Ok(Some(request)),
                Head::Other => break Ok(None),
                Head::TooLong(status) => {
                    gate.shed.oversized.fetch_add(1, Ordering::Relaxed);
                    drop(ticket);
                    return refuse_too_long(stream, status).await;
                }
                Head::Partial => {}
            }
            let due = head_due.unwrap_or(idle_due);
            let read = tokio::select! {
                read = tokio::time::timeout_at(due, stream.read_buf(&mut buffer)) => read,
                () = ticket.evicted() => break Err(NoHead::Gone),
                () = shutdown.cancelled(), if buffer.is_empty() => break Err(NoHead::Gone),
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => break Err(NoHead::Gone),
                Err(_) if buffer.is_empty() => break Err(NoHead::Silent),
                Err(_) => break Err(NoHead::Timeout),
                Ok(Ok(_)) => {
                    head_due.get_or_insert_with(|| tokio::time::Instant::now() + limits.head);
                }
            }
        };
        let request = match request {
            Ok(request) => request,
            Err(NoHead::Gone) => return,
            Err(NoHead::Silent) => {
                if !answered {
                    gate.shed.silent.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(NoHead::Timeout) => {
                debug!(client = %ticket.ip(), "closing a connection whose request head did not arrive in time");
                gate.shed.head_timeouts.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if !ticket.busy() {
            return;
        }
        let fast = match &request {
            Some(request) => plan(&state, request).await,
            None => None,
        };
        let (Some(request), Some(fast)) = (request, fast) else {
            return to_hyper(stream, buffer.freeze(), ticket, limits, router, shutdown).await;
        };
        answered = true;
        buffer.advance(request.head_len);
        match tokio::time::timeout(limits.send, stream.write_all(&fast.head)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
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
            match send_region(&stream, &fast.file, start, end, limits.send).await {
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

/// Serves the rest of the connection with hyper, the bytes already read
/// first; the connection keeps its `ticket` (its place) until it ends.
async fn to_hyper(
    stream: TcpStream,
    read: Bytes,
    ticket: Ticket,
    limits: Limits,
    router: Router,
    shutdown: CancellationToken,
) {
    let io = TokioIo::new(Rewind {
        read,
        stream,
        stall: limits.send,
        stalled: None,
    });
    let service = TowerToHyperService::new(router);
    // Hyper starts its header-read timer as soon as it waits for a head, the
    // next one on a kept-alive connection included: it bounds both.
    let served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.head)
        // Its read buffer, so a later head is held to about MAX_HEAD too
        // (hyper answers 431 beyond it), and memory per connection bounded.
        .max_buf_size(2 * MAX_HEAD)
        .serve_connection(io, service);
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => {}
        () = shutdown.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
    drop(ticket);
}

/// A connection with bytes already read put back in front, whose writes
/// fail when the client takes nothing for `stall`.
struct Rewind {
    read: Bytes,
    stream: TcpStream,
    stall: Duration,
    /// Running while a write waits for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Rewind {
    /// `poll` (a write) on the stream, with the stall timer.
    fn poll_stall<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.stall;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(stalled(stall))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
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
        self.poll_stall(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_stall(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
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
/// hyper or refused for its length, else `(head_len, target, close, whether the target routes to a file)`.
#[doc(hidden)]
pub fn fuzz_parse_head(buffer: &[u8]) -> Option<Option<(usize, String, bool, bool)>> {
    match parse_head(buffer) {
        Head::Partial => None,
        Head::Other | Head::TooLong(_) => Some(None),
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

    /// Issue 11: long targets and heads are refused here, not handed on.
    #[test]
    fn oversized_targets_and_heads_are_refused_issue_11() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(MAX_TARGET)
        );
        assert!(matches!(
            parse_head(long_target.as_bytes()),
            Head::TooLong(414)
        ));
        // A request line still arriving but already too long.
        let partial_line = format!("GET /{}", "a".repeat(MAX_TARGET + 64));
        assert!(matches!(
            parse_head(partial_line.as_bytes()),
            Head::TooLong(414)
        ));
        let filler = "X-Filler: 0123456789abcdef0123456789abcdef\r\n".repeat(MAX_HEAD / 40);
        let partial_head = format!("GET / HTTP/1.1\r\n{filler}");
        assert!(matches!(
            parse_head(partial_head.as_bytes()),
            Head::TooLong(431)
        ));
        let few_long = format!("GET / HTTP/1.1\r\nX-Big: {}", "b".repeat(MAX_HEAD));
        assert!(matches!(
            parse_head(few_long.as_bytes()),
            Head::TooLong(431)
        ));
        // Many headers still arriving are waited for, a finished head goes to hyper.
        let many = "X-A: b\r\n".repeat(MAX_HEADERS + 1);
        assert!(matches!(
            parse_head(format!("GET / HTTP/1.1\r\n{many}").as_bytes()),
            Head::Partial
        ));
        assert!(matches!(
            parse_head(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Head::Other
        ));
        // A target within the limit whose path is over the router's limit
        // goes to the router, which answers 414 with its message.
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET - 1));
        assert!(matches!(parse_head(at_limit.as_bytes()), Head::Other));
        let longest_path = format!(
            "GET /{}?{} HTTP/1.1\r\n\r\n",
            "a".repeat(crate::classroom::MAX_PATH_LEN - 1),
            "q".repeat(MAX_TARGET - crate::classroom::MAX_PATH_LEN - 1)
        );
        assert!(matches!(
            parse_head(longest_path.as_bytes()),
            Head::Plain(_)
        ));
    }

    #[test]
    fn limits_follow_the_open_file_limit_issue_11() {
        let default_soft = Limits::for_open_files(Some(1024));
        assert_eq!(default_soft.connections, 384);
        assert_eq!(default_soft.per_client, 96);
        let raised = Limits::for_open_files(Some(65536));
        assert_eq!((raised.connections, raised.per_client), (4096, 1024));
        assert_eq!(Limits::for_open_files(None).connections, 4096);
        assert_eq!(Limits::for_open_files(Some(10)).connections, 16);
        assert!(raised.head <= Duration::from_secs(5) && raised.idle <= Duration::from_secs(30));
    }

    #[test]
    fn the_busy_answer_says_its_length() {
        let text = std::str::from_utf8(BUSY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.contains(&format!("content-length: {}", body.len())));
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
