//! `shanlu origin serve`: the sync protocol over QUIC and the same objects over HTTP.
//!
//! Both listeners read the store through a fresh index transaction per request,
//! so a course published into the running origin's folder is served at once.
//! Store work (index reads, file reads, hashing) runs in `spawn_blocking`.
//!
//! - this file: binding the listeners ([`bind`]) and the accept loop ([`Bound::run`]);
//! - `connection`: one edge's connection, its hello handshake and its request streams;
//! - `answers`: answering one request, shared with the HTTP listeners.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catalog::{Hash, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span};

mod answers;
mod connection;

use crate::bucket::chunks::{BucketChunks, DEFAULT_CACHE_BYTES};
use crate::protocol;
use crate::report::ReportSink;
pub use crate::since::current_catalog;
use crate::tls::TlsIdentity;
use crate::tokens::{EdgeTokens, Tokens};
use crate::transport::Congestion;
pub use answers::answer;

/// How often an origin process on a bucket looks for a new catalog head
/// (issue 16): a HEAD request for the head's ETag, and a GET of each token
/// book (small); the head itself is read only when its ETag changed.
const FOLLOW_EVERY: Duration = Duration::from_secs(2);

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
    pub store: Arc<Store>,
    pub tokens: EdgeTokens,
    pub stats: Arc<Stats>,
    /// Where a county edge gets the chunks it does not hold; `None` on the origin.
    pub upstream: Option<Arc<dyn Upstream>>,
    /// Administrators' tokens (issue 15): on the origin only.
    pub admins: Option<Tokens>,
    /// Where administrators' requests are answered: on the origin only.
    pub desk: Option<crate::admin::Desk>,
    /// Where edges' reports go (issue 15): the origin's fleet, or a county
    /// edge's queue to forward; `None` answers them with an error.
    pub reports: Option<Arc<dyn ReportSink>>,
    /// An origin on a bucket (issue 16): chunks not held locally are read from it.
    pub bucket: Option<Arc<BucketChunks>>,
    /// The secret a CDN or caching proxy in front shows to fetch objects
    /// and chunks (issue 16), instead of an edge token.
    pub cdn_secret: Option<String>,
}

/// Who a connection's hello authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An edge, by its name in `edges.toml`.
    Edge(String),
    /// An administrator, by the name in `admins.toml` (issue 15).
    Admin(String),
}

impl Caller {
    pub fn name(&self) -> &str {
        match self {
            Caller::Edge(name) | Caller::Admin(name) => name,
        }
    }

    /// The largest request frame this caller may send after its hello.
    pub fn request_limit(&self) -> usize {
        match self {
            Caller::Edge(_) => protocol::MAX_REQUEST,
            Caller::Admin(_) => protocol::MAX_ADMIN_REQUEST,
        }
    }
}

/// Administrators' requests (up to [`protocol::MAX_ADMIN_REQUEST`] each)
/// read and answered at once, over every connection: 8 × 8 MiB in memory at
/// most, whatever number of streams or connections they open.
static ADMIN_REQUESTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Edges' requests carrying chunks of a teacher's proposed lesson (issue
/// 17; up to [`crate::review::MAX_PROPOSAL_REQUEST`] each) read at once,
/// over every edge: 8 × 1 MiB in memory at most.
static PROPOSAL_REQUESTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);
/// Edges' plans of one large file (a manifest of up to 12 MiB) read at
/// once, over every edge: 2 × 13 MiB in memory at most.
static PROPOSAL_PLANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

impl Caller {
    /// A place among the administrators' requests in memory (none needed
    /// for an edge's, which are small); held until the request is answered.
    pub async fn request_place(&self) -> Option<tokio::sync::SemaphorePermit<'static>> {
        match self {
            Caller::Edge(_) => None,
            Caller::Admin(_) => ADMIN_REQUESTS.acquire().await.ok(),
        }
    }

    /// The place and limit for a request frame of `len` bytes: an edge's
    /// larger than [`protocol::MAX_REQUEST`] (a proposal's chunks, or the
    /// plan of a large file) waits for one of the few places such
    /// requests have.
    pub async fn place_for(
        &self,
        len: usize,
    ) -> (Option<tokio::sync::SemaphorePermit<'static>>, usize) {
        use crate::review::{MAX_PROPOSAL_PLAN, MAX_PROPOSAL_REQUEST};
        match self {
            Caller::Edge(_) if len > protocol::MAX_REQUEST && len <= MAX_PROPOSAL_REQUEST => {
                (PROPOSAL_REQUESTS.acquire().await.ok(), MAX_PROPOSAL_REQUEST)
            }
            Caller::Edge(_) if len > MAX_PROPOSAL_REQUEST && len <= MAX_PROPOSAL_PLAN => {
                (PROPOSAL_PLANS.acquire().await.ok(), MAX_PROPOSAL_PLAN)
            }
            _ => (self.request_place().await, self.request_limit()),
        }
    }

    /// Whether `request`, read from a frame of `len` bytes, is within
    /// this caller's limit: beyond [`Caller::request_limit`] only a
    /// proposal's chunks (up to [`crate::review::MAX_PROPOSAL_REQUEST`])
    /// and its plan (up to [`crate::review::MAX_PROPOSAL_PLAN`]) are.
    pub fn allows(&self, len: usize, request: &crate::protocol::Request) -> bool {
        use crate::protocol::Request::Propose;
        use crate::review::{MAX_PROPOSAL_PLAN, MAX_PROPOSAL_REQUEST, ProposeRequest};
        len <= self.request_limit()
            || match request {
                Propose(ProposeRequest::Chunks { .. }) => len <= MAX_PROPOSAL_REQUEST,
                Propose(ProposeRequest::Plan { manifests }) => {
                    len <= MAX_PROPOSAL_PLAN && manifests.len() == 1
                }
                _ => false,
            }
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Edge(name) => write!(f, "edge {name}"),
            Caller::Admin(name) => write!(f, "administrator {name}"),
        }
    }
}

impl State {
    /// Who `token` belongs to: an edge first, then an administrator. An
    /// error means a token file cannot be read (logged here).
    pub fn check_token(&self, token: &str) -> Result<Option<Caller>, crate::tokens::TokenError> {
        let checked = self
            .tokens
            .check(token)
            .inspect_err(|err| self.tokens.log_broken(err))?;
        if let Some(name) = checked {
            return Ok(Some(Caller::Edge(name)));
        }
        let Some(admins) = &self.admins else {
            return Ok(None);
        };
        let checked = admins
            .check(token)
            .inspect_err(|err| admins.log_broken(err))?;
        Ok(checked.map(Caller::Admin))
    }
}

/// Chunks a serving edge does not hold, fetched from its own upstream
/// (issue 14): a county edge serving village edges.
pub trait Upstream: Send + Sync + 'static {
    /// Fetches the chunks `wanted` of the file whose manifest is `file`, and
    /// sends each to `sink` as raw bytes, checked against its BLAKE3, as it
    /// arrives. Ends when each was sent or cannot be had; a chunk not sent is
    /// answered missing. The same file asked for by several edges at once is
    /// fetched once.
    fn chunks(
        &self,
        file: Hash,
        wanted: Vec<Hash>,
        sink: tokio::sync::mpsc::Sender<(Hash, Vec<u8>)>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;
}

/// What a server of the sync protocol serves: the origin's folder, or an
/// edge's store (a county edge serving edges below it).
pub struct Served {
    pub store: Arc<Store>,
    /// Who may connect.
    pub tokens: EdgeTokens,
    /// The certificate edges pin.
    pub identity: TlsIdentity,
    pub upstream: Option<Arc<dyn Upstream>>,
    /// Counted into as edges are served (an edge's metrics show them).
    pub stats: Arc<Stats>,
    /// Administrators' tokens and their desk (issue 15): the origin only.
    pub admins: Option<(Tokens, crate::admin::Desk)>,
    /// Where edges' reports go (issue 15).
    pub reports: Option<Arc<dyn ReportSink>>,
    /// An origin on a bucket (issue 16): where chunks not held locally are read.
    pub bucket: Option<Arc<BucketChunks>>,
    /// A county edge's desk for its children's proposals (issue 17), which
    /// it forwards upstream; the origin's desk is the one in `admins`.
    pub proposals: Option<crate::admin::Desk>,
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
    pub http: Option<SocketAddr>,
    /// The same over HTTPS with the origin's pinned certificate: the edges'
    /// fallback when UDP is blocked.
    pub https: Option<SocketAddr>,
    /// The QUIC congestion controller for what the origin sends.
    pub congestion: Congestion,
    /// On a bucket (issue 16): the most bytes of chunks kept in memory.
    pub bucket_cache: u64,
}

impl Listen {
    /// QUIC, HTTP and HTTPS on `addr`, with the ports left to the system.
    pub fn on(addr: SocketAddr) -> Listen {
        Listen {
            quic: addr,
            http: Some(addr),
            https: Some(addr),
            congestion: Congestion::default(),
            bucket_cache: DEFAULT_CACHE_BYTES,
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
    http: Option<tokio::net::TcpListener>,
    https: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
    state: Arc<State>,
    pub quic_addr: SocketAddr,
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    pub cert_fingerprint: String,
    /// An origin on a bucket follows its head while it serves (issue 16).
    follower: Option<Follower>,
}

/// Opens the origin in `dir` and binds its listeners; edges' reports go
/// to `reports`.
pub async fn bind(
    dir: &Path,
    listen: &Listen,
    reports: Option<Arc<dyn ReportSink>>,
) -> Result<Bound, ServeError> {
    // Opening checks the folder is an initialized origin.
    let origin = crate::origin::Origin::open(dir)?;
    let follower = match origin.bucket().cloned() {
        Some(bucket) => Some(first_follow(origin, bucket).await?),
        None => None,
    };
    let bucket = follower
        .as_ref()
        .map(|f| Arc::new(BucketChunks::new(f.bucket.clone(), listen.bucket_cache)));
    let served = Served {
        identity: TlsIdentity::load_or_create(dir)?,
        store: Arc::new(Store::open_existing(dir.join("store"))?),
        tokens: EdgeTokens::new(dir),
        upstream: bucket
            .clone()
            .map(|chunks| Arc::new(chunks) as Arc<dyn Upstream>),
        stats: Arc::default(),
        admins: Some((Tokens::admins(dir), crate::admin::Desk::new(dir))),
        reports,
        bucket,
        proposals: None,
    };
    let mut bound = bind_served(served, listen).await?;
    bound.follower = follower;
    Ok(bound)
}

/// What an origin process on a bucket needs to follow its head.
struct Follower {
    bucket: crate::bucket::Bucket,
    key: catalog::PublicKey,
    /// The origin's folder, where the bucket's token books are mirrored.
    dir: std::path::PathBuf,
}

/// Brings the origin's local copy to the bucket's head before serving. If
/// the bucket cannot be reached, a process holding a catalog serves it
/// (and keeps trying); one that has none cannot start.
async fn first_follow(
    origin: crate::origin::Origin,
    bucket: crate::bucket::Bucket,
) -> Result<Follower, ServeError> {
    let follower = Follower {
        bucket,
        key: origin.public_key(),
        dir: origin.dir().to_owned(),
    };
    let dir = follower.dir.clone();
    let followed = tokio::task::spawn_blocking(move || {
        if let Err(err) = follower.mirror_books() {
            tracing::warn!(cause = %catalog::format::error_chain(&err), "cannot copy the bucket's edge and admin tokens yet; using this folder's");
        }
        let followed = origin.follow();
        let held = origin.store().signed_catalog().map(|held| held.is_some());
        (followed, held, follower)
    })
    .await;
    match followed {
        Ok((Ok(_), _, follower)) => Ok(follower),
        Ok((Err(err), held, follower)) => {
            if !held? {
                return Err(err.into());
            }
            tracing::warn!(cause = %catalog::format::error_chain(&err), "cannot follow the bucket's catalog head yet; serving the catalog this process holds and trying again");
            Ok(follower)
        }
        Err(err) => Err(ServeError::Origin(crate::origin::OriginError::Io {
            action: "following the bucket's catalog head for",
            path: dir,
            cause: std::io::Error::other(err),
        })),
    }
}

impl Follower {
    /// Copies the bucket's token books into the folder (blocking).
    fn mirror_books(&self) -> Result<(), crate::tokens::TokenError> {
        for book in [crate::tokens::Book::Edges, crate::tokens::Book::Admins] {
            if crate::tokens::mirror(&self.bucket, &self.dir, book)? {
                info!(book = ?book, "took the bucket's changed token book");
            }
        }
        Ok(())
    }

    /// Follows the bucket's head every [`FOLLOW_EVERY`] until `shutdown`.
    async fn run(self, store: Arc<Store>, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut failing = false;
        // The head's ETag when this process last followed it.
        let mut followed_tag: Option<String> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
            let (this2, store2) = (this.clone(), store.clone());
            let known = followed_tag.clone();
            let followed = tokio::task::spawn_blocking(move || {
                this2
                    .mirror_books()
                    .map_err(|err| catalog::format::error_chain(&err))?;
                let tag = crate::bucket::block(this2.bucket.head_tag())
                    .map_err(|err| catalog::format::error_chain(&err))?;
                if tag.is_some() && tag == known {
                    return Ok(tag);
                }
                crate::bucket::follow::follow(&this2.bucket, &store2, &this2.key)
                    .map(|followed| followed.version.e_tag)
                    .map_err(|err| catalog::format::error_chain(&err))
            })
            .await;
            if let Ok(Ok(tag)) = &followed {
                followed_tag.clone_from(tag);
            }
            match followed {
                Ok(Ok(_)) if failing => {
                    info!("following the bucket's catalog head again");
                    failing = false;
                }
                Ok(Ok(_)) => {}
                Ok(Err(cause)) if !failing => {
                    tracing::warn!(%cause, "cannot follow the bucket's catalog head and tokens; serving what this process holds");
                    failing = true;
                }
                Ok(Err(_)) | Err(_) => {}
            }
        }
    }
}

/// Binds the listeners of a server of `served`.
pub async fn bind_served(served: Served, listen: &Listen) -> Result<Bound, ServeError> {
    let Listen {
        quic,
        http,
        https,
        congestion,
        bucket_cache: _,
    } = *listen;
    let Served {
        store,
        tokens,
        identity,
        upstream,
        stats,
        admins,
        reports,
        bucket,
        proposals,
    } = served;
    let (admins, desk) = admins.unzip();
    let desk = desk.or(proposals);
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(identity.server_config()?)
        .map_err(crate::tls::TlsError::Quic)?;
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
    let socket = crate::transport::udp_socket(quic, false)
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
    let http_listener = match http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| ServeError::BindHttp { addr, cause })?,
        ),
        None => None,
    };
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
                        addr: listen.https.unwrap_or(quic),
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
        http_addr: match &http_listener {
            Some(listener) => {
                Some(
                    listener
                        .local_addr()
                        .map_err(|cause| ServeError::BindHttp {
                            addr: http.unwrap_or(quic),
                            cause,
                        })?,
                )
            }
            None => None,
        },
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
                tokens.log_if_broken();
                tokens
            },
            stats,
            upstream,
            admins: admins.inspect(Tokens::log_if_broken),
            desk,
            reports,
            bucket,
            cdn_secret: None,
        }),
        follower: None,
    })
}

/// The shortest CDN secret taken: 128 bits as hex.
pub const MIN_CDN_SECRET: usize = 32;

impl Bound {
    /// Lets a CDN or caching proxy showing `secret` in the `X-Shanlu-Cdn`
    /// header fetch objects and chunks over HTTP (issue 16). Call before [`Bound::run`].
    pub fn allow_cdn(&mut self, secret: String) {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.cdn_secret = Some(secret);
        }
    }

    /// The counters of what this server sends (the dashboard's `/metrics`).
    pub fn stats(&self) -> Arc<Stats> {
        self.state.stats.clone()
    }

    /// The store it serves (the dashboard reads the catalog in force from it).
    pub fn store(&self) -> Arc<Store> {
        self.state.store.clone()
    }

    /// Serves until `shutdown` is cancelled, then closes connections and waits for them.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        if let Some(follower) = self.follower.take() {
            tracker.spawn(follower.run(self.state.store.clone(), shutdown.clone()));
        }
        let http = self.http.map(|listener| {
            tokio::spawn(crate::http::run(
                listener,
                self.state.clone(),
                shutdown.clone(),
            ))
        });
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
                    if let Err(err) = connection::handle_connection(incoming, config, state).await {
                        debug!(cause = %catalog::format::error_chain(&err), "connection ended");
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
        if let Some(http) = http {
            let _ = http.await;
        }
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
