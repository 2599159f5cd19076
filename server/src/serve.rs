//! `shanlu origin serve`: the sync protocol over QUIC and the same objects over HTTP.
//!
//! Both listeners read the store through a fresh index transaction per request,
//! so a course published into the running origin's folder is served at once.
//! Store work (index reads, file reads, hashing) runs in `spawn_blocking`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catalog::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::pace::TokenBucket;
use crate::protocol::{self, FrameError, Request, Response};
pub use crate::since::current_catalog;
use crate::tls::TlsIdentity;
use crate::tokens::EdgeTokens;
use crate::transport::Congestion;

/// Connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 1024;
/// How long a new connection has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the origin could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Origin(#[from] crate::origin::OriginError),
    #[error(transparent)]
    Store(#[from] catalog::store::StoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("listening for QUIC on {addr}: {cause}")]
    BindQuic {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("listening for HTTP on {addr}: {cause}")]
    BindHttp {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("listening for HTTPS on {addr}: {cause}")]
    BindHttps {
        addr: SocketAddr,
        cause: std::io::Error,
    },
}

/// What every connection handler shares.
pub struct State {
    pub store: Store,
    pub tokens: EdgeTokens,
    pub stats: Stats,
}

/// Counters of what the origin served.
#[derive(Default)]
pub struct Stats {
    pub chunks_served: AtomicU64,
    pub chunk_bytes_served: AtomicU64,
    pub objects_served: AtomicU64,
    pub refused_connections: AtomicU64,
}

/// Where and how `origin serve` listens.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// The sync protocol over QUIC (UDP).
    pub quic: SocketAddr,
    /// The same over plain HTTP (TCP), for tools and a caching proxy.
    pub http: SocketAddr,
    /// The same over HTTPS with the origin's pinned certificate: the edges'
    /// fallback when UDP is blocked.
    pub https: Option<SocketAddr>,
    /// The QUIC congestion controller for what the origin sends.
    pub congestion: Congestion,
}

impl Listen {
    /// QUIC, HTTP and HTTPS on `addr`, with the ports left to the system.
    pub fn on(addr: SocketAddr) -> Listen {
        Listen {
            quic: addr,
            http: addr,
            https: Some(addr),
            congestion: Congestion::default(),
        }
    }
}

/// An origin with its listeners bound, ready to run.
pub struct Bound {
    endpoint: quinn::Endpoint,
    /// The QUIC settings, given per connection to resume from the link
    /// model remembered for its address (with the `rural` controller).
    server_config: quinn::ServerConfig,
    congestion: Congestion,
    http: tokio::net::TcpListener,
    https: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    state: Arc<State>,
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub cert_fingerprint: String,
}

/// Opens the origin in `dir` and binds its listeners.
pub async fn bind(dir: &Path, listen: &Listen) -> Result<Bound, ServeError> {
    let Listen {
        quic,
        http,
        https,
        congestion,
    } = *listen;
    // Opening checks the folder is an initialized origin.
    crate::origin::Origin::open(dir)?;
    let identity = TlsIdentity::load_or_create(dir)?;
    let store = Store::open_existing(dir.join("store"))?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(identity.server_config()?)
        .map_err(|err| crate::tls::TlsError::Config(err.to_string()))?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server_config.transport_config(crate::transport::transport_config_with(congestion));
    // The stateless-reset key is derived from the certificate key, so an origin
    // restarted on the same address tells edges at once that their old
    // connections are gone, instead of leaving them to time out.
    let reset_secret = ring::digest::digest(
        &ring::digest::SHA256,
        &[
            b"shanlu quic stateless reset\0".as_slice(),
            &identity.key_der,
        ]
        .concat(),
    );
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_secret.as_ref());
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
    // Connection IDs are checked with a key that must also survive a restart.
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&reset_secret.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    let socket = std::net::UdpSocket::bind(quic)
        .map_err(|cause| ServeError::BindQuic { addr: quic, cause })?;
    let runtime = quinn::default_runtime().ok_or_else(|| ServeError::BindQuic {
        addr: quic,
        cause: std::io::Error::other("no async runtime"),
    })?;
    let endpoint = quinn::Endpoint::new(
        endpoint_config,
        Some(server_config.clone()),
        socket,
        runtime,
    )
    .map_err(|cause| ServeError::BindQuic { addr: quic, cause })?;
    let http_listener = tokio::net::TcpListener::bind(http)
        .await
        .map_err(|cause| ServeError::BindHttp { addr: http, cause })?;
    let https = match https {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| ServeError::BindHttps { addr, cause })?;
            Some((listener, Arc::new(identity.https_config()?)))
        }
        None => None,
    };
    let https_addr = match &https {
        Some((listener, _)) => {
            Some(
                listener
                    .local_addr()
                    .map_err(|cause| ServeError::BindHttps {
                        addr: listen.https.unwrap_or(http),
                        cause,
                    })?,
            )
        }
        None => None,
    };
    Ok(Bound {
        quic_addr: endpoint
            .local_addr()
            .map_err(|cause| ServeError::BindQuic { addr: quic, cause })?,
        http_addr: http_listener
            .local_addr()
            .map_err(|cause| ServeError::BindHttp { addr: http, cause })?,
        https_addr,
        cert_fingerprint: identity.fingerprint(),
        endpoint,
        server_config,
        congestion,
        http: http_listener,
        https,
        state: Arc::new(State {
            store,
            tokens: {
                let tokens = EdgeTokens::new(dir);
                tokens.log_if_broken();
                tokens
            },
            stats: Stats::default(),
        }),
    })
}

impl Bound {
    /// Serves until `shutdown` is cancelled, then closes connections and waits for them.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        let http = tokio::spawn(crate::http::run(
            self.http,
            self.state.clone(),
            shutdown.clone(),
        ));
        let https = self.https.map(|(listener, tls)| {
            tokio::spawn(crate::http::run_tls(
                listener,
                tls,
                self.state.clone(),
                shutdown.clone(),
            ))
        });
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let memory = Arc::new(crate::congestion::LinkMemory::default());
        loop {
            let incoming = tokio::select! {
                incoming = self.endpoint.accept() => incoming,
                () = shutdown.cancelled() => break,
            };
            let Some(incoming) = incoming else { break };
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let state = self.state.clone();
            let remote = incoming.remote_address();
            let config = (self.congestion == Congestion::Rural).then(|| {
                let mut config = self.server_config.clone();
                config.transport_config(crate::transport::transport_config_resuming(
                    memory.clone(),
                    remote.ip(),
                ));
                Arc::new(config)
            });
            tracker.spawn(
                async move {
                    if let Err(err) = handle_connection(incoming, config, state).await {
                        debug!(cause = %err, "connection ended");
                    }
                    drop(permit);
                }
                .instrument(info_span!("connection", %remote)),
            );
        }
        self.endpoint.close(
            quinn::VarInt::from_u32(protocol::CLOSE_DONE),
            b"origin shutting down",
        );
        tracker.close();
        tracker.wait().await;
        self.endpoint.wait_idle().await;
        let _ = http.await;
        if let Some(https) = https {
            let _ = https.await;
        }
        let stats = &self.state.stats;
        info!(
            chunks = stats.chunks_served.load(Ordering::Relaxed),
            chunk_bytes = stats.chunk_bytes_served.load(Ordering::Relaxed),
            objects = stats.objects_served.load(Ordering::Relaxed),
            "origin stopped"
        );
    }
}

/// Why a connection was closed early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("handshake: {0}")]
    Handshake(#[from] quinn::ConnectionError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error("the first request was not a hello")]
    NoHello,
}

async fn handle_connection(
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
            warn!(%remote, cause = %err, "malformed hello; closing the connection");
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
        tokio::task::spawn_blocking(move || state.tokens.check(&token)).await
    };
    let edge = match checked {
        Ok(Ok(Some(name))) => name,
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
            // The edge's token is not at fault: say so, and log the origin's fault (issue 11).
            warn!(%remote, "refused an edge: its token cannot be checked");
            state.tokens.log_broken(&err);
            connection.close(
                quinn::VarInt::from_u32(protocol::CLOSE_ORIGIN_CONFIG),
                crate::tokens::BROKEN_CONFIG.as_bytes(),
            );
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
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
    info!(%remote, %edge, "edge connected");

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
        let id = send.id();
        streams.spawn(
            async move {
                match handle_stream(send, recv, &state, pace.as_deref()).await {
                    Ok(()) => {}
                    // The edge abandoned the request (it gave up waiting, its
                    // disk filled, it went away): nothing was malformed.
                    Err(
                        err @ (FrameError::Write(_) | FrameError::Read(_) | FrameError::Truncated),
                    ) => {
                        debug!(cause = %err, "the edge abandoned a request");
                    }
                    Err(err) => {
                        warn!(cause = %err, "bad request; closing the connection");
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

/// Answers one request. A frame error is returned (the connection is then
/// closed); anything else is answered on the stream.
async fn handle_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    state: &Arc<State>,
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    let Some(request) = protocol::read_frame::<Request>(&mut recv, protocol::MAX_REQUEST).await?
    else {
        return Ok(());
    };
    answer(request, state, &mut send, pace).await?;
    let _ = send.finish();
    Ok(())
}

/// Writes the answers to one request (not a hello) to `send`, over QUIC or
/// in an HTTP body, each paid for from `pace` first when the edge asked for
/// one. Fails only if `send` fails.
pub async fn answer(
    request: Request,
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    match request {
        Request::Pace { .. } => {
            protocol::write_frame(
                send,
                &Response::Error {
                    message: "a pace is sent with the hello, not on its own".into(),
                },
            )
            .await?;
        }
        Request::Hello { .. } => {
            protocol::write_frame(
                send,
                &Response::Error {
                    message: "already welcomed".into(),
                },
            )
            .await?;
        }
        Request::GetCatalog { have_sequence } => {
            let state = state.clone();
            let signed =
                tokio::task::spawn_blocking(move || current_catalog(&state.store, have_sequence))
                    .await
                    .unwrap_or_else(|_| Err("the catalog reader panicked".into()));
            let response = match signed {
                Ok(signed) => Response::Catalog { signed },
                Err(message) => Response::Error { message },
            };
            protocol::write_frame(send, &response).await?;
        }
        Request::GetObjects { hashes } if hashes.len() > protocol::MAX_HASHES => {
            let message = format!(
                "{} hashes in one request; the limit is {}",
                hashes.len(),
                protocol::MAX_HASHES
            );
            protocol::write_frame(send, &Response::Error { message }).await?;
        }
        Request::GetChunks { wants }
            if wants.len() > protocol::MAX_HASHES
                || wants.iter().any(|w| w.bases.len() > protocol::MAX_BASES) =>
        {
            let message = format!(
                "{} chunks in one request (limit {}), or more than {} bases for one",
                wants.len(),
                protocol::MAX_HASHES,
                protocol::MAX_BASES
            );
            protocol::write_frame(send, &Response::Error { message }).await?;
        }
        Request::GetObjects { hashes } => {
            for hash in hashes {
                let state2 = state.clone();
                let found =
                    tokio::task::spawn_blocking(move || state2.store.object_bytes(&hash)).await;
                let response = match found {
                    Ok(Ok(Some(bytes))) => {
                        state.stats.objects_served.fetch_add(1, Ordering::Relaxed);
                        Response::Object { hash, bytes }
                    }
                    Ok(Ok(None)) => Response::Missing { hash },
                    Ok(Err(err)) => {
                        warn!(%hash, cause = %err, "cannot read an object");
                        Response::Missing { hash }
                    }
                    Err(_) => Response::Missing { hash },
                };
                protocol::write_frame_paced(send, &response, pace).await?;
            }
        }
        Request::GetChunks { wants } => {
            for want in wants {
                let hash = want.hash;
                let state2 = state.clone();
                let found =
                    tokio::task::spawn_blocking(move || encoded_chunk(&state2.store, &want)).await;
                let response = match found {
                    Ok(Ok(Some((encoding, bytes)))) => {
                        state.stats.chunks_served.fetch_add(1, Ordering::Relaxed);
                        state
                            .stats
                            .chunk_bytes_served
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        Response::Chunk {
                            hash,
                            encoding,
                            bytes,
                        }
                    }
                    Ok(Ok(None)) => Response::Missing { hash },
                    Ok(Err(err)) => {
                        // Damaged data is never sent; the edge will report the chunk missing.
                        tracing::error!(%hash, cause = %err, "refusing to serve a damaged chunk");
                        Response::Missing { hash }
                    }
                    Err(_) => Response::Missing { hash },
                };
                protocol::write_frame_paced(send, &response, pace).await?;
            }
        }
        Request::CatalogSince {
            have_sequence,
            have_courses,
        } => {
            crate::since::answer(have_sequence, have_courses, state, send, pace).await?;
        }
        Request::ReportStatus { status } => {
            info!(status = %status, "edge status");
            protocol::write_frame(send, &Response::Ok).await?;
        }
    }
    Ok(())
}

/// A chunk in its smallest encoding: a delta against the requested bases if
/// the origin holds them all, else zstd or raw.
fn encoded_chunk(
    store: &Store,
    want: &protocol::ChunkWant,
) -> Result<Option<(crate::codec::Encoding, Vec<u8>)>, catalog::store::StoreError> {
    let Some(raw) = store.chunk_bytes(&want.hash)? else {
        return Ok(None);
    };
    let mut dictionary = Vec::new();
    for base in &want.bases {
        match store.chunk_bytes(base) {
            Ok(Some(bytes)) => dictionary.extend_from_slice(&bytes),
            _ => {
                dictionary.clear();
                break;
            }
        }
    }
    let usable = !want.bases.is_empty() && !dictionary.is_empty();
    Ok(Some(crate::codec::encode(
        &raw,
        usable.then_some(dictionary.as_slice()),
    )))
}
