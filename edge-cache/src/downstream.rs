//! Serving edges below this one (issue 14): a county edge is the upstream of
//! village edges, speaking the origin's own sync protocol (`edge run
//! --serve-edges ADDR`: QUIC, and the HTTPS fallback on the same port).
//!
//! - What it serves is its store as it is: the signed catalog in force,
//!   forwarded untouched (the edges below pin the **origin's** key, so a
//!   county edge can relay but never forge), every metadata object that
//!   catalog reaches (an edge holds them all), and chunks.
//! - A chunk it does not hold yet is fetched upstream through this edge's one
//!   download engine, by read-through of the file the asking edge named
//!   (protocol revision 3): every child asking for the same file at once
//!   waits on one fetch, and what arrives is kept, so it leaves the origin
//!   once. A child that predates revision 3 gets such a chunk as missing and
//!   asks again on its next pass.
//! - Its own tokens (`shanlu edge add-edge`, BLAKE3 only, in
//!   `DIR/downstream/edges.toml`, re-read when it changes) and its own
//!   certificate (`DIR/downstream/tls/`), which the children pin.
//!
//! - The children's reports (issue 15): [`crate::report::forward`] checks
//!   each with the child's key, seals it again under this edge's with the
//!   child's name in its path, and queues it to go upstream with its own.
//!
//! - The children's teachers' proposals (issue 17): a desk over this
//!   edge's store ([`server::admin::Desk::for_store`]) takes them exactly
//!   as the origin does (plan, the chunks this edge lacks, submit) into
//!   `DIR/downstream/review/queue.json`; this edge's sync pass forwards
//!   them upstream under the child's name and brings the verdicts back
//!   ([`crate::teachers::propose`]). Their files are kept from collection
//!   and eviction until the bureau decides.
//!
//! Non-goals: serving anything outside the catalog in force.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use catalog::store::StoreError;
use catalog::{Hash, Object, Store};
use server::serve::{Bound, Listen, Served};
use server::tls::TlsIdentity;
use server::tokens::EdgeTokens;
use tokio::sync::mpsc;

use crate::sync::readthrough::ReadThrough;

/// The folder under the data folder holding the tokens and the certificate.
pub const DOWNSTREAM_DIR: &str = "downstream";
/// The longest one request of an edge below waits for the chunks fetched
/// upstream for it; what has not arrived by then is answered missing, and
/// the edge asks again (the fetch goes on meanwhile).
const RELAY_WAIT: Duration = Duration::from_secs(60);

/// Why edges below cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("creating {path}")]
    Create {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("the certificate edges below pin, in {dir}")]
    Tls {
        dir: PathBuf,
        #[source]
        cause: server::tls::TlsError,
    },
    #[error("serving edges on {addr}; is another program (or another `edge run`) using that port?")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        cause: Box<server::serve::ServeError>,
    },
    #[error("issuing a token for an edge below this one")]
    Token(#[source] server::tokens::TokenError),
}

/// Where this edge serves edges below it.
#[derive(Debug, Clone)]
pub struct Serving {
    pub quic: std::net::SocketAddr,
    pub https: Option<std::net::SocketAddr>,
    /// The certificate's SHA-256 fingerprint, for `edge init --origin-cert` below.
    pub fingerprint: String,
}

/// What collection and eviction keep for the proposals of the edges below
/// (issue 17) until the bureau decides: their lesson and manifest objects,
/// and their files, whole or being uploaded ([`server::review::kept`]).
/// Empty on an edge that serves none. `store` is the edge's (`DIR/store`).
pub fn waiting_below(store: &Store) -> Result<(Vec<Hash>, HashSet<Hash>), StoreError> {
    let Some(data) = store.root().parent() else {
        return Ok(Default::default());
    };
    let below = data.join(DOWNSTREAM_DIR);
    if !below.join("review").is_dir() {
        return Ok(Default::default());
    }
    server::review::kept(&below, store).map_err(|err| {
        StoreError::io(
            "reading the proposals of the edges below in",
            &below,
            std::io::Error::other(err.to_string()),
        )
    })
}

/// `DIR/downstream`, created if missing.
fn downstream_dir(data: &Path) -> Result<PathBuf, DownstreamError> {
    let dir = data.join(DOWNSTREAM_DIR);
    std::fs::create_dir_all(&dir).map_err(|cause| DownstreamError::Create {
        path: dir.clone(),
        cause,
    })?;
    Ok(dir)
}

/// The certificate edges below pin, made on first use.
pub fn identity(data: &Path) -> Result<TlsIdentity, DownstreamError> {
    let dir = downstream_dir(data)?;
    TlsIdentity::load_or_create(&dir).map_err(|cause| DownstreamError::Tls { dir, cause })
}

/// `shanlu edge add-edge`: a token for an edge below this one (shown once;
/// only its BLAKE3 is kept), and the certificate fingerprint it must pin.
pub fn add_edge(data: &Path, name: &str) -> Result<(String, String), DownstreamError> {
    let fingerprint = identity(data)?.fingerprint();
    let token =
        server::tokens::add_edge(&downstream_dir(data)?, name).map_err(DownstreamError::Token)?;
    Ok((token, fingerprint))
}

/// Binds the listeners serving edges below on `addr` (QUIC and HTTPS on the
/// same port number), over this edge's `store`, fetching what it lacks
/// through `read_through`.
pub async fn bind(
    data: &Path,
    addr: std::net::SocketAddr,
    store: Arc<Store>,
    read_through: Arc<ReadThrough>,
    stats: Arc<server::serve::Stats>,
    token: &str,
) -> Result<(Bound, Serving), DownstreamError> {
    let identity = identity(data)?;
    let dir = downstream_dir(data)?;
    let served = Served {
        store: store.clone(),
        tokens: EdgeTokens::new(&dir),
        identity,
        upstream: Some(Arc::new(Relay { read_through })),
        stats,
        admins: None,
        // Issue 15: the children's reports, forwarded upstream.
        reports: Some(Arc::new(crate::report::forward::Forwarder::new(
            data, token,
        ))),
        bucket: None,
        // Issue 17: the children's proposals wait here to go upstream.
        proposals: Some(server::admin::Desk::for_store(&dir, store.clone())),
    };
    // QUIC and HTTPS on the same port number (with port 0, each its own).
    let listen = Listen {
        quic: addr,
        http: None,
        https: Some(addr),
        congestion: server::transport::Congestion::default(),
        bucket_cache: 0,
    };
    let bound = server::serve::bind_served(served, &listen)
        .await
        .map_err(|cause| DownstreamError::Bind {
            addr,
            cause: Box::new(cause),
        })?;
    let serving = Serving {
        quic: bound.quic_addr,
        https: bound.https_addr,
        fingerprint: bound.cert_fingerprint.clone(),
    };
    Ok((bound, serving))
}

/// The county edge's upstream, as the server sees it: read-through.
struct Relay {
    read_through: Arc<ReadThrough>,
}

impl server::serve::Upstream for Relay {
    fn chunks(
        &self,
        file: Hash,
        wanted: Vec<Hash>,
        sink: mpsc::Sender<(Hash, Vec<u8>)>,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let read_through = self.read_through.clone();
        Box::pin(async move {
            if let Err(why) = relay(&read_through, file, wanted, sink).await {
                tracing::info!(%file, cause = %why, "could not fetch chunks for an edge below");
            }
        })
    }
}

/// Fetches the chunks `wanted` of file `file` (a manifest this edge holds)
/// through read-through and sends each as it is verified.
async fn relay(
    read_through: &Arc<ReadThrough>,
    file: Hash,
    wanted: Vec<Hash>,
    sink: mpsc::Sender<(Hash, Vec<u8>)>,
) -> Result<(), String> {
    let store = read_through.store().clone();
    let object = tokio::task::spawn_blocking(move || store.object(&file))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| crate::sync::error_chain(&err))?;
    let Some(Object::Manifest(manifest)) = object else {
        return Err("not a file manifest this edge holds".into());
    };
    read_through
        .make_room(&manifest)
        .await
        .map_err(|err| err.to_string())?;
    let fetch = read_through
        .start(file, manifest)
        .map_err(|err| crate::sync::error_chain(&err))?;
    let send_all = async {
        for hash in wanted {
            let bytes = fetch
                .clone()
                .chunk(hash)
                .await
                .map_err(|err| crate::sync::error_chain(&err))?;
            let Some(bytes) = bytes else { continue };
            if sink.send((hash, bytes)).await.is_err() {
                break;
            }
        }
        Ok(())
    };
    tokio::time::timeout(RELAY_WAIT, send_all)
        .await
        .map_err(|_| format!("not all chunks arrived within {} s", RELAY_WAIT.as_secs()))?
}
