//! Read-through: a lesson file the edge does not hold yet (its course is not
//! subscribed, or the prefetch has not reached it) is fetched from the origin
//! the moment a classroom asks for it, and streamed while it arrives.
//!
//! - It goes through the edge's one download engine ([`super::engine`]): a
//!   file being prefetched and opened in class at once is fetched once, and
//!   forty tablets opening the same video cost one download.
//! - A lesson opened in class comes before the prefetch; a reader's byte
//!   range comes before everything, so a seek is answered from the chunks
//!   it needs first.
//! - Chunks the edge already holds in other files are copied, not fetched.
//! - Each chunk is checked against its BLAKE3 before a reader sees it; the
//!   whole file is checked again before it joins the store, so the next
//!   reader is served from disk.
//! - The file is assembled as a partial blob of the store: progress survives
//!   a restart, even `kill -9`, and no verified chunk is fetched twice.
//! - Its own connection, separate from the background sync, so a teacher in
//!   class does not wait behind the prefetch's link; not paced by the sync's
//!   bandwidth cap and not held to its windows ([`crate::sync::throttle`],
//!   [`crate::sync::schedule`]): a class is waiting, and only files someone
//!   opened are fetched.
//! - With the origin unreachable, readers get [`Unavailable::Offline`] within
//!   [`CONNECT_TIMEOUT`] (QUIC), or at most three times that when the edge
//!   also tries its HTTPS fallback, and later requests fail at once for
//!   [`RETRY_AFTER_FAILURE`]: nothing hangs. Read-through uses the fallback
//!   like the sync does (see [`crate::sync::client`]).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catalog::store::StoreError;
use catalog::{FileManifest, Hash, Store};
use futures_util::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::EdgeConfig;
use crate::lock;
use crate::metrics::Metrics;
use crate::quota::room::NoRoom;
use crate::status::Live;
use crate::sync::client::{Cause, Client, timed_out};
use crate::sync::engine::{Engine, JobError, JobState, Lane, Outcome, Priority};
use crate::sync::plan::FileJob;
use crate::sync::source::{ChunkSource, ConnectError, Connector, OriginSource};

/// How long a reader waits for the origin to answer a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connection, how long requests fail at once.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);
/// How long a reader waits for the first chunk it needs once connected.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed requests in a row tolerated before readers are told the origin is offline.
const MAX_FAILED_REQUESTS: u32 = 3;

/// Why a file could not be read through; the cause is kept as `source()`
/// (show it with [`error_chain`](crate::sync::error_chain)).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("the origin cannot be reached")]
    Offline(#[source] Cause),
    #[error(transparent)]
    Failed(Cause),
}

/// Read-through for one edge.
pub struct ReadThrough {
    upstream: Arc<Upstream>,
    /// The store, for the quota's room (issue 13).
    store: Arc<Store>,
    /// `edge run`'s `--max-store` and `--min-free`, set once at start.
    quota: std::sync::OnceLock<crate::quota::QuotaOverrides>,
    engine: Engine,
    lane: Arc<Lane>,
    metrics: Arc<Metrics>,
    /// Files being read through, shared by their readers.
    fetches: Mutex<HashMap<Hash, Arc<Fetch>>>,
}

/// The read-through connection to the origin, and the memory of a failure.
struct Upstream {
    config: EdgeConfig,
    live: Arc<Live>,
    client: tokio::sync::Mutex<Option<Client>>,
    /// Set after a failed connection: until when to fail at once, and why.
    down: Mutex<Option<(Instant, Cause)>>,
}

/// One file being fetched, as its readers see it.
pub struct Fetch {
    manifest: FileManifest,
    offsets: Vec<u64>,
    state: watch::Receiver<JobState>,
    engine: Engine,
    lane: Arc<Lane>,
}

impl ReadThrough {
    /// Read-through over `store`, with the edge's download engine (started here).
    pub fn new(
        config: EdgeConfig,
        store: Arc<Store>,
        live: Arc<Live>,
        metrics: Arc<Metrics>,
    ) -> Result<ReadThrough, StoreError> {
        // Files assembled here before issue 12; their progress was never kept.
        let staging = store.root().join("readthrough");
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::io("emptying", &staging, source)),
        }
        let upstream = Arc::new(Upstream {
            config,
            live,
            client: tokio::sync::Mutex::new(None),
            down: Mutex::new(None),
        });
        let for_source = upstream.clone();
        let connect: Connector = Arc::new(move |_attempt| {
            let upstream = for_source.clone();
            Box::pin(async move { upstream.connect().await })
        });
        let sources: Vec<Arc<dyn ChunkSource>> = crate::sync::source::with_peers(
            &upstream.config,
            Arc::new(OriginSource::new(None, connect)),
        );
        let lane = Lane::new(
            "read-through",
            sources,
            MAX_FAILED_REQUESTS,
            CancellationToken::new(),
            Some(Box::new({
                let metrics = metrics.clone();
                move |bytes| {
                    metrics.read_through_bytes.inc_by(bytes);
                }
            })),
        );
        Ok(ReadThrough {
            upstream,
            store: store.clone(),
            quota: std::sync::OnceLock::new(),
            engine: Engine::start(store),
            lane,
            metrics,
            fetches: Mutex::new(HashMap::new()),
        })
    }

    /// The download engine, for the sync passes of `edge run` to share.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The edge's store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The fetch of this file, started now unless one is under way; asked
    /// for as a lesson opened in class.
    pub fn start(
        self: &Arc<Self>,
        manifest_hash: Hash,
        manifest: FileManifest,
    ) -> Result<Arc<Fetch>, Unavailable> {
        if let Some(why) = self.upstream.down_now() {
            return Err(Unavailable::Offline(why));
        }
        let blob = manifest.blob;
        let mut fetches = lock(&self.fetches);
        if let Some(fetch) = fetches.get(&blob)
            && fetch.state.borrow().outcome.is_none()
        {
            return Ok(fetch.clone());
        }
        let job = FileJob {
            label: format!("read-through {}", blob.fmt_short()),
            manifest_hash,
            manifest: manifest.clone(),
            previous: None,
        };
        let state = self
            .engine
            .want_now(job, Priority::OpenedInClass, &self.lane)
            .map_err(|err| Unavailable::Failed(Cause::new(err)))?;
        let fetch = Arc::new(Fetch {
            offsets: manifest.chunk_offsets().map(|(offset, _)| offset).collect(),
            manifest,
            state,
            engine: self.engine.clone(),
            lane: self.lane.clone(),
        });
        fetches.retain(|_, f| f.state.borrow().outcome.is_none());
        fetches.insert(blob, fetch.clone());
        self.metrics.cache_misses.inc();
        Ok(fetch)
    }

    /// Makes room for a file about to be read through (issue 13): cached
    /// files are evicted least recently opened first if needed; a file that
    /// cannot fit at all is refused with [`NoRoom`] rather than filling the
    /// disk. A failure to plan is logged and the file fetched anyway (the
    /// disk itself still refuses to overfill).
    pub async fn make_room(&self, manifest: &FileManifest) -> Result<(), NoRoom> {
        // A file being fetched had its room made when it started: forty
        // readers (or edges below) of one file plan once.
        if lock(&self.fetches)
            .get(&manifest.blob)
            .is_some_and(|fetch| fetch.state.borrow().outcome.is_none())
        {
            return Ok(());
        }
        let (store, config, manifest) = (
            self.store.clone(),
            self.upstream.config.clone(),
            manifest.clone(),
        );
        let overrides = self.quota.get().copied().unwrap_or_default();
        let blob = manifest.blob;
        let planned = tokio::task::spawn_blocking(move || {
            crate::quota::room::make_room(&store, &config, overrides, &manifest)
        })
        .await;
        match planned {
            Ok(Ok(room)) => room,
            Ok(Err(err)) => {
                tracing::warn!(%blob, error = %crate::sync::error_chain(&err), "could not plan room for a read-through file");
                Ok(())
            }
            Err(_) => Ok(()),
        }
    }

    /// `edge run`'s flags overriding `max_store` and `min_free` (issue 13).
    pub fn set_quota(&self, overrides: crate::quota::QuotaOverrides) {
        let _ = self.quota.set(overrides);
    }

    /// Whether the origin answers (a cached connection counts).
    pub async fn check(&self) -> Result<(), Unavailable> {
        self.upstream.client().await.map(|_| ())
    }
}

impl Upstream {
    fn down_now(&self) -> Option<Cause> {
        lock(&self.down)
            .as_ref()
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, why)| why.clone())
    }

    async fn connect(&self) -> Result<Client, ConnectError> {
        self.client().await.map_err(|err| match err {
            Unavailable::Offline(why) | Unavailable::Failed(why) => ConnectError::Offline(why),
        })
    }

    /// The cached connection, or a new one within [`CONNECT_TIMEOUT`].
    async fn client(&self) -> Result<Client, Unavailable> {
        let mut cached = self.client.lock().await;
        if let Some(client) = cached.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        if let Some(why) = self.down_now() {
            return Err(Unavailable::Offline(why));
        }
        // QUIC gets CONNECT_TIMEOUT; an edge with a fallback then tries it,
        // and the whole attempt stays bounded.
        let attempt = tokio::time::timeout(
            3 * CONNECT_TIMEOUT,
            Client::connect_within(&self.config, CONNECT_TIMEOUT, &self.live.transport),
        )
        .await;
        let failure = match attempt {
            Ok(Ok(client)) => {
                self.live.upstream_seen(Ok(()));
                *lock(&self.down) = None;
                *cached = Some(client.clone());
                return Ok(client);
            }
            Ok(Err(err)) => Cause::new(err),
            Err(_) => timed_out(format!(
                "no answer from {} within {} s",
                self.config.origin,
                (3 * CONNECT_TIMEOUT).as_secs()
            )),
        };
        self.live
            .upstream_seen(Err(crate::sync::error_chain(&*failure)));
        *lock(&self.down) = Some((Instant::now() + RETRY_AFTER_FAILURE, failure.clone()));
        *cached = None;
        Err(Unavailable::Offline(failure))
    }
}

impl Fetch {
    /// The chunks covering bytes `start..end`.
    fn chunk_span(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        chunk_span(&self.offsets, start, end)
    }

    /// Waits until chunk `index` is here.
    async fn wait_for(&self, index: usize) -> Result<Arc<std::fs::File>, Unavailable> {
        let mut state = self.state.clone();
        let seen = state
            .wait_for(|state| {
                state.arrived.get(index).copied().unwrap_or(false) || state.outcome.is_some()
            })
            .await
            .map_err(|_| Unavailable::Failed(Cause::message("the fetch stopped")))?;
        if seen.arrived.get(index).copied().unwrap_or(false)
            && let Some(file) = &seen.file
        {
            return Ok(file.clone());
        }
        Err(match &seen.outcome {
            Some(Outcome::Failed(JobError::Offline(why))) => Unavailable::Offline(why.clone()),
            Some(Outcome::Failed(JobError::Failed(why))) => Unavailable::Failed(why.clone()),
            _ => Unavailable::Failed(Cause::message("the fetch stopped")),
        })
    }

    /// Chunk `hash` of this file, once it is here and verified; it jumps the
    /// queue. `None` if the file has no such chunk. For an edge below this
    /// one (issue 14: [`crate::downstream`]).
    pub async fn chunk(self: Arc<Self>, hash: Hash) -> Result<Option<Vec<u8>>, Unavailable> {
        let Some(index) = self.manifest.chunks.iter().position(|c| c.hash == hash) else {
            return Ok(None);
        };
        self.engine
            .urgent(self.manifest.blob, index..index + 1, &self.lane)
            .await;
        let file = self.wait_for(index).await?;
        let (offset, len) = (self.offsets[index], self.manifest.chunks[index].len);
        tokio::task::spawn_blocking(move || {
            let mut bytes = vec![0u8; len as usize];
            file.read_exact_at(&mut bytes, offset).map(|()| bytes)
        })
        .await
        .unwrap_or_else(|err| Err(std::io::Error::other(err)))
        .map(Some)
        .map_err(|err| Unavailable::Failed(Cause::new(err)))
    }

    /// Bytes `start..end` as they arrive; their chunks jump the queue. Waits
    /// for the first of them here, so a file that cannot be fetched is
    /// reported before any answer starts.
    pub async fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, Unavailable>
    {
        let span = self.chunk_span(start, end);
        if !span.is_empty() {
            self.engine
                .urgent(self.manifest.blob, span.clone(), &self.lane)
                .await;
            match tokio::time::timeout(FIRST_BYTES_TIMEOUT, self.wait_for(span.start)).await {
                Ok(result) => result.map(|_| ())?,
                Err(_) => {
                    return Err(Unavailable::Offline(timed_out(format!(
                        "no data from the origin within {} s",
                        FIRST_BYTES_TIMEOUT.as_secs()
                    ))));
                }
            }
        }
        Ok(futures_util::stream::unfold(
            (self, span.start, span.end),
            move |(fetch, index, last)| async move {
                if index >= last {
                    return None;
                }
                let file = match fetch.wait_for(index).await {
                    Ok(file) => file,
                    Err(err) => {
                        let err = std::io::Error::other(err);
                        return Some((Err(err), (fetch, last, last)));
                    }
                };
                let chunk_start = fetch.offsets[index];
                let chunk_end = chunk_start + u64::from(fetch.manifest.chunks[index].len);
                let (from, to) = (chunk_start.max(start), chunk_end.min(end));
                let read = tokio::task::spawn_blocking(move || {
                    let mut bytes = vec![0u8; (to - from) as usize];
                    file.read_exact_at(&mut bytes, from)
                        .map(|()| Bytes::from(bytes))
                })
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err)));
                Some((read, (fetch, index + 1, last)))
            },
        ))
    }
}

/// The chunks (by index, given their `offsets`) covering bytes `start..end`.
fn chunk_span(offsets: &[u64], start: u64, end: u64) -> std::ops::Range<usize> {
    let first = offsets
        .partition_point(|&offset| offset <= start)
        .saturating_sub(1);
    let last = offsets.partition_point(|&offset| offset < end);
    first..last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_exactly_the_chunks_of_a_range() {
        let offsets = [0, 10, 20, 30];
        assert_eq!(chunk_span(&offsets, 0, 1), 0..1);
        assert_eq!(chunk_span(&offsets, 9, 11), 0..2);
        assert_eq!(chunk_span(&offsets, 10, 20), 1..2);
        assert_eq!(chunk_span(&offsets, 35, 40), 3..4);
        assert_eq!(chunk_span(&offsets, 0, 40), 0..4);
    }
}
