//! Where chunks come from: the [`ChunkSource`] trait, and its implementation
//! over a connection to the origin (QUIC or the HTTPS fallback, both a
//! [`Client`]). A parent edge, a USB bundle or a LAN peer are more sources:
//! the download engine ([`super::engine`]) asks them in order and checks every
//! chunk's BLAKE3 itself, so a source need not be trusted.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog::Hash;
use futures_util::future::BoxFuture;
use server::codec::Encoding;
use server::protocol::{FileWants, Request, Response};
use tokio::sync::mpsc;

use crate::config::{EdgeConfig, Peer};
use crate::lock;
use crate::sync::client::{Cause, Client, ClientError};
use crate::sync::memory::TransportMemory;

/// One answer from a source for one chunk.
#[derive(Debug)]
pub enum Delivery {
    /// The chunk as it travelled (maybe a delta against the want's bases).
    Chunk {
        hash: Hash,
        encoding: Encoding,
        bytes: Vec<u8>,
    },
    /// The source does not have this chunk.
    Missing { hash: Hash },
}

/// Why a source could not answer a request; the cause (for the origin, a
/// [`ClientError`]) is kept as `source()`. The message names the cause's
/// chain too: the engine logs this error on its own line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The link failed; asking again (maybe after reconnecting) may work.
    #[error("{source_name}: {}", crate::sync::error_chain(&**.cause))]
    Transient {
        source_name: String,
        #[source]
        cause: Cause,
    },
    /// Asking this source again will not help (credentials, protocol).
    #[error("{source_name}: {}", crate::sync::error_chain(&**.cause))]
    Permanent {
        source_name: String,
        #[source]
        cause: Cause,
    },
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transient { .. })
    }

    /// Why, without the source's name (for a report that names it).
    pub fn cause_text(&self) -> String {
        match self {
            SourceError::Transient { cause, .. } | SourceError::Permanent { cause, .. } => {
                crate::sync::error_chain(&**cause)
            }
        }
    }
}

/// Something that can give chunks by hash.
pub trait ChunkSource: Send + Sync + 'static {
    /// A name for logs: `origin 10.0.0.1:7443 (quic)`, `usb /media/…`.
    fn name(&self) -> String;
    /// Asks for `wants` (grouped by the file they are for) and sends each
    /// answer to `sink` as it arrives. Ends `Ok` when every want was answered
    /// (a chunk or [`Delivery::Missing`]); the engine asks again for what did
    /// not arrive.
    fn fetch(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<(), SourceError>>;

    /// Like [`ChunkSource::fetch`]; with `relay`, a source that lacks a
    /// chunk may fetch it from its own upstream. The upstream of a lane (a
    /// county edge) always may; a LAN peer is asked so only for chunks this
    /// edge's upstream already refused (issue 14): otherwise two peers
    /// fetching one new file at once would each wait on the other.
    fn fetch_relayed(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
        relay: bool,
    ) -> BoxFuture<'_, Result<(), SourceError>> {
        let _ = relay;
        self.fetch(wants, sink)
    }
}

/// How long a LAN peer may take to answer a QUIC handshake.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The sources of a lane: the LAN peers of `edge.toml` (issue 14), in the
/// order listed, then `upstream`, which is asked for whatever they lack.
pub fn with_peers(
    config: &EdgeConfig,
    upstream: Arc<dyn ChunkSource>,
) -> Vec<Arc<dyn ChunkSource>> {
    let mut sources: Vec<Arc<dyn ChunkSource>> = config
        .peers
        .iter()
        .map(|peer| Arc::new(OriginSource::peer(config, peer)) as Arc<dyn ChunkSource>)
        .collect();
    sources.push(upstream);
    sources
}

/// Makes a connection to the origin; `attempt` counts failures in a row
/// (0 the first time), for backoff.
pub type Connector =
    Arc<dyn Fn(u32) -> BoxFuture<'static, Result<Client, ConnectError>> + Send + Sync>;

/// Why a [`Connector`] has no connection to give.
#[derive(Debug)]
pub enum ConnectError {
    Client(ClientError),
    /// Known to be down (a recent attempt failed); why.
    Offline(Cause),
}

impl From<ClientError> for ConnectError {
    fn from(err: ClientError) -> ConnectError {
        ConnectError::Client(err)
    }
}

/// What a connection is to this edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The origin, or a county edge: told which file each chunk is for, so
    /// it can fetch from its own upstream what it lacks.
    Upstream,
    /// A LAN peer (issue 14): asked only for what it holds.
    Peer,
}

impl Role {
    /// How names begin: `origin 10.0.0.1:7443 (quic)`, `peer …`.
    fn word(self) -> &'static str {
        match self {
            Role::Upstream => "origin",
            Role::Peer => "peer",
        }
    }
}

/// What went wrong with a peer, said of a peer: the client's messages speak
/// of the origin and of what its administrator should do.
fn peer_says(err: &ClientError) -> String {
    match err {
        ClientError::Unauthorized { .. } => "it refused this edge's token; on the peer, issue a new one (`shanlu edge add-edge`) and give it to `shanlu edge add-peer` here".into(),
        ClientError::OriginConfig { .. } => "it cannot check tokens (its downstream/edges.toml is broken); its log names the fault".into(),
        other => crate::sync::error_chain(other).replace("the origin at ", "the peer at "),
    }
}

/// The origin, through a connection made on demand and re-made when lost.
pub struct OriginSource {
    connect: Connector,
    /// The connection in use and its number: a failed request drops it only
    /// if no other request has replaced it meanwhile.
    client: tokio::sync::Mutex<Option<(u64, Client)>>,
    generation: std::sync::atomic::AtomicU64,
    /// Given a connection at the start: every later one is a reconnection.
    started_connected: bool,
    /// Failed requests or connections in a row.
    failures: AtomicU32,
    reconnects: AtomicU32,
    /// The last error of the link, for the report of a pass that gives up.
    last_error: Mutex<Option<ClientError>>,
    /// The origin (or a county edge) above, or a LAN peer.
    role: Role,
    /// Why connecting ahead of time ([`OriginSource::warm`]) failed, until
    /// a request is told.
    warm_failed: Mutex<Option<SourceError>>,
    name: Mutex<String>,
}

impl OriginSource {
    /// A source that starts on `client` (if any) and calls `connect` when it
    /// has none or lost it.
    pub fn new(client: Option<Client>, connect: Connector) -> OriginSource {
        let name = client.as_ref().map_or_else(
            || "the origin".to_owned(),
            |c| format!("origin {} ({})", c.addr(), c.transport_name()),
        );
        OriginSource::named(Role::Upstream, name, client, connect)
    }

    /// A LAN peer (issue 14): another edge serving the sync protocol, asked
    /// before the upstream. Its connection is made when first asked, within
    /// [`PEER_CONNECT_TIMEOUT`] for QUIC (then its fallback, if any): a peer
    /// that is off costs the pass seconds, not the origin's timeouts.
    pub fn peer(config: &EdgeConfig, peer: &Peer) -> OriginSource {
        let config = Arc::new(config.peer_config(peer));
        // Its own memory of which transport works: the origin's says nothing of it.
        let memory = Arc::new(TransportMemory::new());
        let connect: Connector = Arc::new(move |_attempt| {
            let (config, memory) = (config.clone(), memory.clone());
            Box::pin(async move {
                Ok(Client::connect_within(&config, PEER_CONNECT_TIMEOUT, &memory).await?)
            })
        });
        OriginSource::named(Role::Peer, peer.to_string(), None, connect)
    }

    fn named(role: Role, name: String, client: Option<Client>, connect: Connector) -> OriginSource {
        let started_connected = client.is_some();
        OriginSource {
            connect,
            client: tokio::sync::Mutex::new(client.map(|c| (0, c))),
            generation: std::sync::atomic::AtomicU64::new(0),
            started_connected,
            failures: AtomicU32::new(0),
            reconnects: AtomicU32::new(0),
            last_error: Mutex::new(None),
            role,
            warm_failed: Mutex::new(None),
            name: Mutex::new(name),
        }
    }

    /// Connections re-made after one was lost.
    pub fn reconnects(&self) -> u32 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// The last link error, taken.
    pub fn take_last_error(&self) -> Option<ClientError> {
        lock(&self.last_error).take()
    }

    /// The connection in use, if any.
    pub async fn current(&self) -> Option<Client> {
        self.client.lock().await.as_ref().map(|(_, c)| c.clone())
    }

    /// Connects now, ahead of the first request (a peer, while the pass
    /// fetches the catalog upstream): a peer that is off costs the pass its
    /// connect timeout in parallel, not in series. A failure is kept for the
    /// first request, which fails with it at once.
    pub async fn warm(&self) {
        let mut cached = self.client.lock().await;
        if let Err(err) = self.connect_locked(&mut cached).await {
            *lock(&self.warm_failed) = Some(err);
        }
    }

    async fn client(&self) -> Result<(u64, Client), SourceError> {
        let mut cached = self.client.lock().await;
        if let Some(err) = lock(&self.warm_failed).take() {
            return Err(err);
        }
        self.connect_locked(&mut cached).await
    }

    /// The connection in `cached`, or a new one.
    async fn connect_locked(
        &self,
        cached: &mut Option<(u64, Client)>,
    ) -> Result<(u64, Client), SourceError> {
        if let Some((n, client)) = cached.as_ref().filter(|(_, c)| !c.is_closed()) {
            return Ok((*n, client.clone()));
        }
        *cached = None;
        let client = match (self.connect)(self.failures.load(Ordering::Relaxed)).await {
            Ok(client) => client,
            Err(ConnectError::Client(err)) => return Err(self.failed(err)),
            Err(ConnectError::Offline(cause)) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err(SourceError::Transient {
                    source_name: self.name(),
                    cause,
                });
            }
        };
        let n = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if n > 1 || self.started_connected {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.name) = format!(
            "{} {} ({})",
            self.role.word(),
            client.addr(),
            client.transport_name()
        );
        *cached = Some((n, client.clone()));
        Ok((n, client))
    }

    fn failed(&self, err: ClientError) -> SourceError {
        let source_name = self.name();
        let transient = err.is_transient();
        *lock(&self.last_error) = Some(err.clone());
        let cause = match self.role {
            Role::Upstream => Cause::new(err),
            Role::Peer => Cause::message(peer_says(&err)),
        };
        if transient {
            self.failures.fetch_add(1, Ordering::Relaxed);
            SourceError::Transient { source_name, cause }
        } else {
            SourceError::Permanent { source_name, cause }
        }
    }

    async fn fetch_inner(
        &self,
        files: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
        relay: bool,
    ) -> Result<(), SourceError> {
        let (generation, client) = self.client().await?;
        let mut remaining: std::collections::HashSet<Hash> = files
            .iter()
            .flat_map(|file| &file.wants)
            .map(|want| want.hash)
            .collect();
        let asked = remaining.len();
        // A server of revision 3 learns which file each chunk is for: a
        // county edge fetches upstream what it does not hold yet. A peer is
        // not told (issue 14) unless this edge's upstream refused these
        // chunks: it answers from its store alone, so two peers fetching the
        // same new file at once never wait on each other.
        let relayed = relay || self.role == Role::Upstream;
        let request = if relayed && client.origin_revision >= server::protocol::REVISION_FILE_CHUNKS
        {
            Request::GetFileChunks { files }
        } else {
            Request::GetChunks {
                wants: FileWants::flatten(files),
            }
        };
        let mut responses = match client.request(&request).await {
            Ok(responses) => responses,
            Err(err) => {
                self.drop_client(generation).await;
                return Err(self.failed(err));
            }
        };
        loop {
            let delivery = match responses.next().await {
                Ok(Some(Response::Chunk {
                    hash,
                    encoding,
                    bytes,
                })) => Delivery::Chunk {
                    hash,
                    encoding,
                    bytes,
                },
                Ok(Some(Response::Missing { hash })) => Delivery::Missing { hash },
                Ok(Some(other)) => {
                    return Err(self.failed(crate::sync::client::unexpected(client.addr(), &other)));
                }
                Ok(None) => break,
                Err(err) => {
                    self.drop_client(generation).await;
                    return Err(self.failed(err));
                }
            };
            let hash = match &delivery {
                Delivery::Chunk { hash, .. } | Delivery::Missing { hash } => *hash,
            };
            if !remaining.remove(&hash) {
                continue; // not asked for: ignored
            }
            if remaining.len() + 1 == asked {
                tracing::debug!(
                    asked,
                    received = client.received_bytes(),
                    "first chunk answer"
                );
            }
            self.failures.store(0, Ordering::Relaxed);
            if sink.send(delivery).await.is_err() {
                return Ok(());
            }
        }
        tracing::debug!(
            asked,
            missing = remaining.len(),
            received = client.received_bytes(),
            "chunk answer ended"
        );
        if remaining.is_empty() {
            Ok(())
        } else {
            Err(self.failed(ClientError::Ended {
                addr: client.addr(),
                what: "the source ended a chunk answer early",
            }))
        }
    }

    /// Forgets connection `generation` if it is still the one in use: the
    /// next request connects again.
    async fn drop_client(&self, generation: u64) {
        let mut cached = self.client.lock().await;
        if cached.as_ref().is_some_and(|(n, _)| *n == generation) {
            *cached = None;
        }
    }
}

impl ChunkSource for OriginSource {
    fn name(&self) -> String {
        lock(&self.name).clone()
    }

    fn fetch(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(self.fetch_inner(wants, sink, false))
    }

    fn fetch_relayed(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
        relay: bool,
    ) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(self.fetch_inner(wants, sink, relay))
    }
}
