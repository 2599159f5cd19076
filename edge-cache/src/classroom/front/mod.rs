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
//! - A request head is read and parsed ([`head`], with [`httparse`]). A
//!   plain `GET`/`HEAD` over HTTP/1.1 without a body, whose path takes a file
//!   route of the classroom's one route table ([`crate::classroom::routes`]),
//!   naming a held blob, is answered here ([`sendfile`]): the same headers and
//!   range logic as the router ([`crate::classroom::answer`]), the body by
//!   `sendfile`. Keep-alive and pipelining work as usual.
//! - Anything else — pages, the API, read-through, several ranges, HTTP/1.0,
//!   a malformed head — goes to hyper and the router, one request at a time
//!   ([`handoff`]): once its answer is sent, the connection comes back here
//!   for its next head, so a browser's kept-alive connection still gets
//!   `sendfile` for the lesson files it asks for after a page (issue 12).
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
//!   keep-alive connection idle [`Limits::idle`] (30 s) is closed; these
//!   hold for every head, as the front door reads every head itself.
//! - A head longer than [`MAX_HEAD`] is answered 431, a request target longer
//!   than [`MAX_TARGET`] 414, and the connection closed.
//! - An answer whose writes make no progress for [`Limits::send`] is cut.
//! - What is shed is logged as one summary line a second at most.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::classroom::Classroom;
use crate::metrics::RequestLabels;

pub(crate) mod gate;
mod handoff;
pub use handoff::Peer;
mod head;
mod sendfile;

use gate::{Gate, Ticket};
use handoff::Handed;
use head::{Head, parse_head};

/// Largest request head; a longer one is answered 431 and the connection closed.
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request target (path and query); a longer one is answered 414.
pub const MAX_TARGET: usize = crate::classroom::MAX_TARGET_LEN;
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
            Some(request) => sendfile::plan(&state, request).await,
            None => None,
        };
        let (Some(request), Some(fast)) = (request, fast) else {
            match handoff::serve_one(stream, buffer.freeze(), limits, router.clone(), &shutdown)
                .await
            {
                Handed::KeepAlive(kept, rest) => {
                    (stream, buffer) = (kept, rest);
                    answered = true;
                    continue;
                }
                Handed::Closed => return,
            }
        };
        answered = true;
        buffer.advance(request.head_len);
        match tokio::time::timeout(limits.send, stream.write_all(&fast.head)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        state.metrics.cache_hits.inc();
        state.metrics.sendfile_responses.inc();
        state
            .metrics
            .requests
            .get_or_create(&RequestLabels {
                route: fast.route.to_owned(),
                status: fast.status,
            })
            .inc();
        if let Some((start, end)) = fast.region {
            match sendfile::send_region(&stream, &fast.file, start, end, limits.send).await {
                Ok(sent) => {
                    state.metrics.bytes_served.inc_by(sent);
                    if let Some((course, lesson)) = &fast.place {
                        state.usage.served(course, lesson, sent);
                    }
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
            crate::classroom::routes::held_file(&p.target).is_some(),
        ))),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

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
}
