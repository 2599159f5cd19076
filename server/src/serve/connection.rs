//! One edge's QUIC connection: the hello handshake (version, token, an
//! optional pace, the Welcome), then one task per request stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use catalog::format::error_chain;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Caller, HELLO_TIMEOUT, State, answer};
use crate::buffers::BufferPool;
use crate::pace::TokenBucket;
use crate::protocol::{self, FrameError, Request, Response};

/// Why a connection was closed early.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConnectionError {
    #[error("the QUIC connection failed")]
    Handshake(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error("the first request was not a hello")]
    NoHello,
}

pub(super) async fn handle_connection(
    incoming: quinn::Incoming,
    config: Option<Arc<quinn::ServerConfig>>,
    state: Arc<State>,
) -> Result<(), ConnectionError> {
    let connection = match config {
        Some(config) => incoming.accept_with(config)?.await?,
        None => incoming.await?,
    };
    let remote = connection.remote_address();
    let (mut send, mut recv) =
        match tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi()).await {
            Ok(streams) => streams?,
            Err(_) => {
                connection.close(
                    quinn::VarInt::from_u32(protocol::CLOSE_PROTOCOL),
                    b"no hello",
                );
                return Err(ConnectionError::HelloTimeout);
            }
        };
    let hello = match protocol::read_frame::<Request>(&mut recv, protocol::MAX_REQUEST).await {
        Ok(Some(request)) => request,
        Ok(None) => return Err(ConnectionError::NoHello),
        Err(err) => {
            warn!(%remote, cause = %error_chain(&err), "malformed hello; closing the connection");
            connection.close(
                quinn::VarInt::from_u32(protocol::CLOSE_PROTOCOL),
                b"malformed frame",
            );
            return Err(err.into());
        }
    };
    let Request::Hello { version, token } = hello else {
        connection.close(
            quinn::VarInt::from_u32(protocol::CLOSE_PROTOCOL),
            b"hello first",
        );
        return Err(ConnectionError::NoHello);
    };
    if version != protocol::VERSION {
        warn!(%remote, version, "edge speaks another protocol version");
        connection.close(
            quinn::VarInt::from_u32(protocol::CLOSE_VERSION),
            b"unsupported protocol version",
        );
        return Ok(());
    }
    let checked = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.check_token(&token)).await
    };
    let caller = match checked {
        Ok(Ok(Some(caller))) => caller,
        Ok(Ok(None)) => {
            state
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            warn!(%remote, "refused a connection with an unknown edge token");
            connection.close(
                quinn::VarInt::from_u32(protocol::CLOSE_UNAUTHORIZED),
                b"unknown edge token",
            );
            return Ok(());
        }
        Ok(Err(err)) => {
            // The edge's token is not at fault: say so; the origin's fault
            // was logged (issue 11).
            warn!(%remote, cause = %error_chain(&err), "refused an edge: its token cannot be checked");
            connection.close(
                quinn::VarInt::from_u32(protocol::CLOSE_ORIGIN_CONFIG),
                crate::tokens::BROKEN_CONFIG.as_bytes(),
            );
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    let edge = caller.name().to_owned();
    // A capped edge sends its pace on the hello stream, then finishes it.
    let pace = match tokio::time::timeout(
        HELLO_TIMEOUT,
        protocol::read_frame::<Request>(&mut recv, protocol::MAX_REQUEST),
    )
    .await
    {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(Request::Pace { bytes_per_second }))) => {
            debug!(%remote, %edge, bytes_per_second, "edge asked for a paced connection");
            Some(Arc::new(TokenBucket::new(bytes_per_second)))
        }
        Ok(Ok(Some(_))) | Ok(Err(_)) | Err(_) => {
            warn!(%remote, %edge, "the hello stream carried something other than a pace; closing the connection");
            connection.close(
                quinn::VarInt::from_u32(protocol::CLOSE_PROTOCOL),
                b"only a pace may follow the hello",
            );
            return Err(ConnectionError::NoHello);
        }
    };
    protocol::write_frame(
        &mut send,
        &Response::Welcome {
            version: protocol::REVISION,
            edge_name: edge.clone(),
        },
    )
    .await?;
    if pace.is_some() {
        // Tells the edge that this origin paces, so it need not pace again.
        protocol::write_frame(&mut send, &Response::Ok).await?;
    }
    let _ = send.finish();
    match &caller {
        Caller::Edge(edge) => info!(%remote, %edge, "edge connected"),
        Caller::Admin(admin) => info!(%remote, %admin, "administrator connected"),
    }

    let streams = TaskTracker::new();
    loop {
        let (send, recv) = match connection.accept_bi().await {
            Ok(streams) => streams,
            Err(
                quinn::ConnectionError::ApplicationClosed(_)
                | quinn::ConnectionError::LocallyClosed,
            ) => break,
            Err(err) => {
                debug!(%edge, cause = %err, "connection lost");
                break;
            }
        };
        let state = state.clone();
        let connection = connection.clone();
        let pace = pace.clone();
        let caller = caller.clone();
        let id = send.id();
        streams.spawn(
            async move {
                match handle_stream(send, recv, &caller, &state, pace.as_deref()).await {
                    Ok(()) => {}
                    // The edge abandoned the request (it gave up waiting, its
                    // disk filled, it went away): nothing was malformed.
                    Err(
                        err @ (FrameError::Write(_) | FrameError::Read(_) | FrameError::Truncated),
                    ) => {
                        debug!(cause = %error_chain(&err), "the edge abandoned a request");
                    }
                    Err(err) => {
                        warn!(cause = %error_chain(&err), "bad request; closing the connection");
                        connection.close(
                            quinn::VarInt::from_u32(protocol::CLOSE_PROTOCOL),
                            b"malformed request",
                        );
                    }
                }
            }
            .instrument(info_span!("stream", %id)),
        );
    }
    streams.close();
    streams.wait().await;
    info!(%remote, %edge, "edge disconnected");
    Ok(())
}

/// Buffers of administrators' requests kept for the next ones: at most
/// 4 × 8 MiB, after an upload (see [`crate::buffers`]).
static ADMIN_BUFFERS: BufferPool = BufferPool::new(4);

/// Answers one request. A frame error is returned (the connection is then
/// closed); anything else is answered on the stream.
async fn handle_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    caller: &Caller,
    state: &Arc<State>,
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    // The length first: it decides the limit, and the place a large one waits for.
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match recv.read(&mut header[filled..]).await {
            Ok(None) if filled == 0 => return Ok(()),
            Ok(None) => return Err(FrameError::Truncated),
            Ok(Some(n)) => filled += n,
            Err(err) => return Err(FrameError::Read(err.into())),
        }
    }
    let len = u32::from_le_bytes(header) as usize;
    let (_place, limit) = caller.place_for(len).await;
    let mut framed = tokio::io::AsyncReadExt::chain(&header[..], &mut recv);
    let read = match caller {
        Caller::Admin(_) => {
            protocol::read_frame_pooled::<Request>(&mut framed, limit, &ADMIN_BUFFERS).await
        }
        Caller::Edge(_) => protocol::read_frame::<Request>(&mut framed, limit).await,
    };
    let Some(request) = read? else {
        return Ok(());
    };
    if !caller.allows(len, &request) {
        return Err(FrameError::TooLarge {
            len,
            limit: caller.request_limit(),
        });
    }
    answer(request, caller, state, &mut send, pace).await?;
    let _ = send.finish();
    Ok(())
}
