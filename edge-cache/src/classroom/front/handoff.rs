//! Requests the front door does not answer itself go to hyper and the
//! router — one request at a time. Hyper gets the connection with the bytes
//! already read put back in front ([`Rewind`]); as soon as the router has
//! produced the answer's head, hyper is asked to finish that answer and stop
//! (a graceful shutdown that does not close the socket), and the connection,
//! with whatever hyper read past the request, comes back to the front door
//! for its next head. So a browser's connection that once asked for a page
//! or the API still gets its later lesson files by `sendfile` (issue 12).
//!
//! The connection is closed instead when the request asked for it
//! (`Connection: close`, HTTP/1.0), when hyper closed it (a malformed
//! request, an error, the client gone), when hyper took a second request
//! before it stopped (a pipelining client), or on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, Version, header};
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{Limits, MAX_HEAD, stalled};

/// How a request handed to hyper ended.
pub(super) enum Handed {
    /// Answered; the connection carries on: its stream, and the bytes already
    /// read past the request.
    KeepAlive(TcpStream, BytesMut),
    /// The connection is closed.
    Closed,
}

/// What the one-request service saw.
#[derive(Default)]
struct Seen {
    /// Requests hyper handed to the router.
    requests: AtomicUsize,
    /// A request asked for the connection to close after its answer.
    close: AtomicBool,
    /// The router has produced an answer's head.
    answered: tokio::sync::Notify,
}

/// The router, telling [`serve_one`] what it saw.
#[derive(Clone)]
struct OneRequest {
    router: TowerToHyperService<Router>,
    seen: Arc<Seen>,
    peer: Option<std::net::IpAddr>,
}

/// The client's address, as a request extension for handlers that count
/// per client (the teachers' login lockout).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

impl hyper::service::Service<Request<Incoming>> for OneRequest {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.seen.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(Peer(peer));
        }
        if wants_close(&request) {
            self.seen.close.store(true, Ordering::Relaxed);
        }
        let answer = self.router.call(request);
        let seen = self.seen.clone();
        Box::pin(async move {
            let response = answer.await;
            seen.answered.notify_one();
            response
        })
    }
}

/// Whether a request's connection ends with its answer: HTTP/1.0 (even with
/// `keep-alive`: the front door reads only HTTP/1.1 heads itself), or
/// `Connection: close`.
fn wants_close<B>(request: &Request<B>) -> bool {
    request.version() != Version::HTTP_11
        || request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// Serves one request from `stream` with hyper, `read` (the bytes already
/// read, the request's head first) put back in front.
pub(super) async fn serve_one(
    stream: TcpStream,
    read: Bytes,
    limits: Limits,
    router: Router,
    shutdown: &CancellationToken,
) -> Handed {
    let peer = stream.peer_addr().ok().map(|addr| addr.ip());
    let io = TokioIo::new(Rewind {
        read,
        stream,
        stall: limits.send,
        stalled: None,
    });
    let seen = Arc::new(Seen::default());
    let service = OneRequest {
        router: TowerToHyperService::new(router),
        seen: seen.clone(),
        peer,
    };
    let mut served = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        // The head is here already; this bounds a head hyper would wait for.
        .header_read_timeout(limits.head)
        // Its read buffer, so a head is held to about MAX_HEAD here too
        // (hyper answers 431 beyond it), and memory per connection bounded.
        .max_buf_size(2 * MAX_HEAD)
        .serve_connection(io, service);
    let (mut stopping, mut stopped_for_shutdown) = (false, false);
    let ended = loop {
        tokio::select! {
            ended = &mut served => break ended,
            () = seen.answered.notified(), if !stopping => {
                // The answer's head is written with keep-alive; hyper now
                // finishes its body, then stops without closing the socket.
                Pin::new(&mut served).graceful_shutdown();
                stopping = true;
            }
            () = shutdown.cancelled(), if !stopping => {
                Pin::new(&mut served).graceful_shutdown();
                (stopping, stopped_for_shutdown) = (true, true);
            }
        }
    };
    let parts = served.into_parts();
    let Rewind {
        read: unread,
        mut stream,
        ..
    } = parts.io.into_inner();
    let carry_on = ended.is_ok()
        && stopping
        && !stopped_for_shutdown
        && seen.requests.load(Ordering::Relaxed) == 1
        && !seen.close.load(Ordering::Relaxed);
    if !carry_on {
        let _ = tokio::time::timeout(limits.send, stream.shutdown()).await;
        return Handed::Closed;
    }
    let mut buffer = BytesMut::with_capacity(parts.read_buf.len() + unread.len() + 4096);
    buffer.extend_from_slice(&parts.read_buf);
    buffer.extend_from_slice(&unread);
    Handed::KeepAlive(stream, buffer)
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

    /// Hyper shuts its connection down when it stops after one request; the
    /// socket stays open for the front door, which closes it itself when the
    /// connection is over.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
}
