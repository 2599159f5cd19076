//! The same objects over plain HTTP, for edges whose UDP is blocked and for
//! HTTP caches or a CDN in front of the origin.
//!
//! - `GET /v1/catalog`: the encoded signed catalog (changes with each publish).
//! - `GET /v1/objects/<hash>`: a metadata object, immutable.
//! - `GET /v1/chunks/<hash>`: a chunk, immutable.
//! - `POST /v1/sync`: the sync protocol itself, for an edge that cannot use
//!   QUIC. The body is one request frame (as on a QUIC stream) and the answer
//!   is the stream of response frames QUIC would carry. A hello is answered
//!   with a welcome; the token travels in the header.
//!
//! Every request needs `Authorization: Bearer <edge token>`. Whatever path the
//! bytes take, the edge checks them against hashes and the signature. The same
//! router is served over plain HTTP (`--http`, for tools and caching proxies)
//! and over HTTPS with the origin's pinned certificate (`--https`, what edges
//! fall back to, so the token never crosses the network in clear).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use catalog::format::error_chain;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::protocol::{self, Request};
use crate::serve::{Caller, State, current_catalog};

/// The media type of a body of protocol frames.
pub const FRAMES: &str = "application/x-shanlu-frames";

/// Bytes of answer buffered between the store and a slow HTTP client.
const ANSWER_BUFFER: usize = 256 * 1024;

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Connections served at once on one listener (HTTP or HTTPS); more are
/// closed at once, so a flood cannot take the descriptors the store needs.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a request head may take to arrive. Hyper starts the timer as
/// soon as it waits for a head, so it also ends a kept-alive connection
/// idle this long (an edge's fallback client opens a new one).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves HTTP on `listener` until `shutdown` is cancelled, then lets
/// answers in progress finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    serve(listener, None, state, shutdown).await;
}

/// Serves HTTPS on `listener` with `tls` until `shutdown` is cancelled, then
/// lets answers in progress finish.
pub async fn run_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve(listener, Some(acceptor), state, shutdown).await;
}

/// The accept loop of both: at most [`MAX_CONNECTIONS`] at once.
async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let app = router(state);
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shed = Shed::default();
    let connections = TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    shed.accept_failed(&err);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            shed.refused();
            continue;
        };
        let app = app.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _place = place;
            let Some(acceptor) = tls else {
                return serve_connection(stream, app, remote, shutdown).await;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_connection(tls, app, remote, shutdown).await,
                Ok(Err(err)) => debug!(%remote, cause = %err, "TLS handshake failed"),
                Err(_) => debug!(%remote, "TLS handshake timed out"),
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection, over TCP or TLS, until it ends or `shutdown`.
async fn serve_connection<Io>(
    io: Io,
    app: Router,
    remote: std::net::SocketAddr,
    shutdown: CancellationToken,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(err) = served {
                debug!(%remote, cause = %err, "HTTP connection ended");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Connections refused or failed to accept, logged one line a second at most.
#[derive(Default)]
struct Shed {
    refused: u64,
    accept_errors: u64,
    last_line: Option<tokio::time::Instant>,
}

impl Shed {
    fn refused(&mut self) {
        self.refused += 1;
        self.log(None);
    }

    fn accept_failed(&mut self, err: &std::io::Error) {
        self.accept_errors += 1;
        self.log(Some(err));
    }

    fn log(&mut self, err: Option<&std::io::Error>) {
        let now = tokio::time::Instant::now();
        if self
            .last_line
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        warn!(
            refused = self.refused,
            accept_errors = self.accept_errors,
            cause = err.map(ToString::to_string).unwrap_or_default(),
            max_connections = MAX_CONNECTIONS,
            "HTTP connections refused or failed since the last such line"
        );
        (self.refused, self.accept_errors, self.last_line) = (0, 0, Some(now));
    }
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/catalog", get(catalog))
        .route("/v1/objects/{hash}", get(object))
        .route("/v1/chunks/{hash}", get(chunk))
        .route(
            "/v1/sync",
            // The body is read after the token says how much it may be.
            post(sync).layer(DefaultBodyLimit::disable()),
        )
        .with_state(state)
}

/// `POST /v1/sync`: one request of the sync protocol, answered as frames.
async fn sync(AxumState(state): AxumState<Arc<State>>, headers: HeaderMap, body: Body) -> Response {
    let caller = match authorize(&state, &headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let (place, limit) = caller.place_for(declared.saturating_sub(4)).await;
    let limit = limit + 4;
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        let message = format!("the body must be one request frame of at most {limit} bytes\n");
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    };
    let edge = caller.name().to_owned();
    let request = match body
        .get(..4)
        .map(|len| u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize)
    {
        Some(len) if len == body.len() - 4 => protocol::decode::<Request>(&body[4..]),
        _ => Err(protocol::FrameError::Truncated),
    };
    let request = match request {
        Ok(request) => request,
        Err(err) => {
            warn!(%edge, cause = %error_chain(&err), "malformed sync request over HTTP");
            let message = format!(
                "the body must be one request frame: {}\n",
                error_chain(&err)
            );
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    if !caller.allows(body.len() - 4, &request) {
        let message = format!(
            "a request of {} bytes; only a proposed lesson's chunks may be over {}\n",
            body.len() - 4,
            caller.request_limit()
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    let (reader, mut writer) = tokio::io::duplex(ANSWER_BUFFER);
    match request {
        Request::Hello { version, .. } if version != protocol::VERSION => {
            warn!(%edge, version, "edge speaks another protocol version");
            let message = format!(
                "this origin speaks shanlu protocol version {}, not {version}\n",
                protocol::VERSION
            );
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
        Request::Hello { .. } => {
            debug!(%edge, "edge connected over HTTP");
            let welcome = protocol::Response::Welcome {
                version: protocol::REVISION,
                edge_name: edge,
            };
            return frames_response(Body::from(protocol::encode(&welcome)));
        }
        request => {
            // The answer streams through a pipe; a client that goes away
            // breaks the pipe and ends the task.
            tokio::spawn(async move {
                // The request stays in memory until it is answered.
                let _place = place;
                let answered = crate::serve::answer(request, &caller, &state, &mut writer, None);
                if let Err(err) = answered.await {
                    debug!(%edge, cause = %error_chain(&err), "HTTP answer cut short");
                }
            });
        }
    }
    frames_response(Body::from_stream(tokio_util::io::ReaderStream::new(reader)))
}

fn frames_response(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FRAMES));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Who the bearer token belongs to, or a 401 response.
/// The header a CDN or caching proxy sends the origin's CDN secret in (issue 16).
pub const CDN_SECRET_HEADER: &str = "x-shanlu-cdn";

/// Whether the request carries the origin's CDN secret. Compared as BLAKE3
/// hashes, so the time taken says nothing about the secret.
fn is_cdn(state: &State, headers: &HeaderMap) -> bool {
    let (Some(secret), Some(given)) = (&state.cdn_secret, headers.get(CDN_SECRET_HEADER)) else {
        return false;
    };
    catalog::Hash::of(given.as_bytes()) == catalog::Hash::of(secret.as_bytes())
}

async fn authorize(state: &Arc<State>, headers: &HeaderMap) -> Result<Caller, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "send the edge token as `Authorization: Bearer <token>`\n",
        )
            .into_response());
    };
    let checker = state.clone();
    match tokio::task::spawn_blocking(move || checker.check_token(&token)).await {
        Ok(Ok(Some(caller))) => Ok(caller),
        Ok(Ok(None)) => {
            warn!("refused an HTTP request with an unknown edge token");
            Err((StatusCode::UNAUTHORIZED, "unknown edge token\n").into_response())
        }
        Ok(Err(_)) => {
            // The edge's token is not at fault: say so; the origin's fault
            // was logged (issue 11).
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", crate::tokens::BROKEN_CONFIG),
            )
                .into_response())
        }
        Err(_) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "the origin cannot check tokens\n",
        )
            .into_response()),
    }
}

fn bytes_response(bytes: Vec<u8>, cache: &'static str, etag: Option<String>) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(etag) = etag.and_then(|tag| HeaderValue::from_str(&format!("\"{tag}\"")).ok()) {
        headers.insert(header::ETAG, etag);
    }
    response
}

async fn catalog(AxumState(state): AxumState<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&state, &headers).await {
        return response;
    }
    let store_state = state.clone();
    match tokio::task::spawn_blocking(move || current_catalog(&store_state.store, None)).await {
        Ok(Ok(Some(bytes))) => bytes_response(bytes, "no-cache", None),
        Ok(Ok(None)) => {
            (StatusCode::NOT_FOUND, "no catalog has been published yet\n").into_response()
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the catalog\n",
        )
            .into_response(),
    }
}

async fn object(
    AxumState(state): AxumState<Arc<State>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    immutable(state, &hash, &headers, "object", |store, hash| {
        store.object_bytes(hash)
    })
    .await
}

async fn chunk(
    AxumState(state): AxumState<Arc<State>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    immutable(state, &hash, &headers, "chunk", |store, hash| {
        store.chunk_bytes(hash)
    })
    .await
}

/// Reads one content-addressed thing from the store, checked against its hash.
type ReadFn =
    fn(&catalog::Store, &catalog::Hash) -> Result<Option<Vec<u8>>, catalog::store::StoreError>;

/// Serves one content-addressed thing (`kind`) read by `read`.
async fn immutable(
    state: Arc<State>,
    hash: &str,
    headers: &HeaderMap,
    kind: &'static str,
    read: ReadFn,
) -> Response {
    // A CDN or caching proxy in front (issue 16) shows the shared secret
    // instead of an edge's token: what it fetches, it serves to any edge.
    if !is_cdn(&state, headers)
        && let Err(response) = authorize(&state, headers).await
    {
        return response;
    }
    let Ok(hash) = hash.parse::<catalog::Hash>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("a {kind} is named by 64 hex digits\n"),
        )
            .into_response();
    };
    let state2 = state.clone();
    let found = match tokio::task::spawn_blocking(move || read(&state2.store, &hash)).await {
        // An origin on a bucket (issue 16) holds its chunks there.
        Ok(Ok(None)) if kind == "chunk" && state.bucket.is_some() => {
            let chunks = state.bucket.clone().expect("checked");
            Ok(Ok(chunks.chunk(hash).await.map(Vec::from)))
        }
        found => found,
    };
    match found {
        Ok(Ok(Some(bytes))) => {
            let stats = &state.stats;
            if kind == "chunk" {
                stats.chunks_served.fetch_add(1, Ordering::Relaxed);
                stats
                    .chunk_bytes_served
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            } else {
                stats.objects_served.fetch_add(1, Ordering::Relaxed);
            }
            bytes_response(bytes, IMMUTABLE, Some(hash.to_hex()))
        }
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, format!("no such {kind}\n")).into_response(),
        Ok(Err(err)) => {
            // Damaged data is never sent.
            tracing::error!(%hash, cause = %err, "refusing to serve a damaged {kind}");
            (
                StatusCode::NOT_FOUND,
                format!("this {kind} is damaged on the origin\n"),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the {kind}\n"),
        )
            .into_response(),
    }
}
