//! The same objects over plain HTTP, for edges whose UDP is blocked and for
//! HTTP caches or a CDN in front of the origin.
//!
//! - `GET /v1/catalog`: the encoded signed catalog (changes with each publish).
//! - `GET /v1/objects/<hash>`: a metadata object, immutable.
//! - `GET /v1/chunks/<hash>`: a chunk, immutable.
//!
//! Every request needs `Authorization: Bearer <edge token>`. Whatever path the
//! bytes take, the edge checks them against hashes and the signature.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::serve::{State, current_catalog};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Serves HTTP on `listener` until `shutdown` is cancelled.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let app = router(state);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(err) = served {
        warn!(cause = %err, "HTTP server stopped");
    }
}

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/catalog", get(catalog))
        .route("/v1/objects/{hash}", get(object))
        .route("/v1/chunks/{hash}", get(chunk))
        .with_state(state)
}

/// The edge's name, or a 401 response.
async fn authorize(state: &Arc<State>, headers: &HeaderMap) -> Result<String, Response> {
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
    let state = state.clone();
    match tokio::task::spawn_blocking(move || state.tokens.check(&token)).await {
        Ok(Ok(Some(edge))) => Ok(edge),
        Ok(Ok(None)) => {
            warn!("refused an HTTP request with an unknown edge token");
            Err((StatusCode::UNAUTHORIZED, "unknown edge token\n").into_response())
        }
        _ => Err((
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
    if let Err(response) = authorize(&state, headers).await {
        return response;
    }
    let Ok(hash) = hash.parse::<catalog::Hash>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("a {kind} is named by 64 hex digits\n"),
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || read(&state.store, &hash)).await {
        Ok(Ok(Some(bytes))) => bytes_response(bytes, IMMUTABLE, Some(hash.to_hex())),
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
