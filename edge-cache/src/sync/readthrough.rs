//! Read-through: a lesson file the edge does not hold yet (its course is not
//! subscribed, or the prefetch has not reached it) is fetched from the origin
//! the moment a classroom asks for it, and streamed while it arrives.
//!
//! - One [`Fetch`] per file, shared by every reader of it: forty tablets
//!   opening the same video cost one download.
//! - Chunks are fetched in file order, except that a reader's position jumps
//!   the queue, so a seek is answered from the chunks it needs first.
//! - Chunks the edge already holds in other files are copied, not fetched.
//! - Each chunk is checked against its BLAKE3 before a reader sees it; the
//!   whole file is checked again before it joins the store, so the next
//!   reader is served from disk.
//! - Its own connection, separate from the background sync, so a teacher in
//!   class does not wait behind the prefetch queue; not paced by the sync's
//!   bandwidth cap and not held to its windows ([`crate::sync::throttle`],
//!   [`crate::sync::schedule`]): a class is waiting, and only files someone opened
//!   are fetched.
//! - With the origin unreachable, readers get [`Unavailable::Offline`] within
//!   [`CONNECT_TIMEOUT`] (QUIC), or at most three times that when the edge
//!   also tries its HTTPS fallback, and later requests fail at once for
//!   [`RETRY_AFTER_FAILURE`]: nothing hangs. Read-through uses the fallback
//!   like the sync does (see [`crate::sync::client`]).
//!
//! Files are assembled in `store/readthrough/`, emptied at start.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catalog::store::StoreError;
use catalog::{FileManifest, Hash, Store};
use futures_util::Stream;
use server::codec;
use server::protocol::{ChunkWant, Request, Response};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::config::EdgeConfig;
use crate::lock;
use crate::metrics::Metrics;
use crate::status::Live;
use crate::sync::client::Client;

/// How long a reader waits for the origin to answer a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connection, how long requests fail at once.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);
/// How long a reader waits for the first chunk it needs once connected.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
const CHUNKS_PER_REQUEST: usize = 16;
const REQUESTS_IN_FLIGHT: usize = 4;
/// Failed requests tolerated per file before giving up on it.
const MAX_FAILED_REQUESTS: u32 = 3;

/// Why a file could not be read through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    #[error("the origin cannot be reached: {0}")]
    Offline(String),
    #[error("{0}")]
    Failed(String),
}

/// Read-through for one edge.
pub struct ReadThrough {
    config: EdgeConfig,
    store: Arc<Store>,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    staging: PathBuf,
    client: tokio::sync::Mutex<Option<Client>>,
    fetches: Mutex<HashMap<Hash, Arc<Fetch>>>,
    /// Set after a failed connection: until when to fail at once, and why.
    down: Mutex<Option<(Instant, String)>>,
}

/// One file being fetched.
pub struct Fetch {
    manifest_hash: Hash,
    manifest: FileManifest,
    offsets: Vec<u64>,
    path: PathBuf,
    file: std::fs::File,
    state: watch::Sender<FetchState>,
    /// Chunk indices readers are waiting for, served before file order.
    urgent: Mutex<VecDeque<usize>>,
    wake: Notify,
}

#[derive(Debug, Clone)]
struct FetchState {
    arrived: Vec<bool>,
    failed: Option<Unavailable>,
}

impl ReadThrough {
    pub fn new(
        config: EdgeConfig,
        store: Arc<Store>,
        live: Arc<Live>,
        metrics: Arc<Metrics>,
    ) -> Result<ReadThrough, StoreError> {
        let staging = store.root().join("readthrough");
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::io("emptying", &staging, source)),
        }
        std::fs::create_dir_all(&staging)
            .map_err(|source| StoreError::io("creating", &staging, source))?;
        Ok(ReadThrough {
            config,
            store,
            live,
            metrics,
            staging,
            client: tokio::sync::Mutex::new(None),
            fetches: Mutex::new(HashMap::new()),
            down: Mutex::new(None),
        })
    }

    /// The fetch of this file, started now unless one is under way.
    pub fn start(
        self: &Arc<Self>,
        manifest_hash: Hash,
        manifest: FileManifest,
    ) -> Result<Arc<Fetch>, Unavailable> {
        if let Some((until, why)) = lock(&self.down).as_ref()
            && Instant::now() < *until
        {
            return Err(Unavailable::Offline(why.clone()));
        }
        let mut fetches = lock(&self.fetches);
        if let Some(fetch) = fetches.get(&manifest.blob) {
            return Ok(fetch.clone());
        }
        let path = self.staging.join(manifest.blob.to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|file| file.set_len(manifest.size).map(|()| file))
            .map_err(|err| Unavailable::Failed(format!("creating {}: {err}", path.display())))?;
        let count = manifest.chunks.len();
        let fetch = Arc::new(Fetch {
            manifest_hash,
            offsets: manifest.chunk_offsets().map(|(offset, _)| offset).collect(),
            manifest,
            path,
            file,
            state: watch::Sender::new(FetchState {
                arrived: vec![false; count],
                failed: None,
            }),
            urgent: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        });
        fetches.insert(fetch.manifest.blob, fetch.clone());
        self.metrics.cache_misses.inc();
        tokio::spawn(self.clone().run(fetch.clone()));
        Ok(fetch)
    }

    /// Whether the origin answers (a cached connection counts).
    pub async fn check(&self) -> Result<(), Unavailable> {
        self.client().await.map(|_| ())
    }

    /// The cached connection, or a new one within [`CONNECT_TIMEOUT`].
    async fn client(&self) -> Result<Client, Unavailable> {
        let mut cached = self.client.lock().await;
        if let Some(client) = cached.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        if let Some((until, why)) = lock(&self.down).as_ref()
            && Instant::now() < *until
        {
            return Err(Unavailable::Offline(why.clone()));
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
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!(
                "no answer from {} within {} s",
                self.config.origin,
                (3 * CONNECT_TIMEOUT).as_secs()
            ),
        };
        self.live.upstream_seen(Err(failure.clone()));
        *lock(&self.down) = Some((Instant::now() + RETRY_AFTER_FAILURE, failure.clone()));
        *cached = None;
        Err(Unavailable::Offline(failure))
    }

    /// Fetches every chunk of `fetch`, then moves the file into the store.
    async fn run(self: Arc<Self>, fetch: Arc<Fetch>) {
        let label = fetch.manifest.blob.fmt_short();
        let outcome = match self.fill(&fetch).await {
            Ok(fetched) => {
                let (store, path, hash, manifest) = (
                    self.store.clone(),
                    fetch.path.clone(),
                    fetch.manifest_hash,
                    fetch.manifest.clone(),
                );
                match tokio::task::spawn_blocking(move || store.adopt_blob(&path, hash, &manifest))
                    .await
                {
                    Ok(Ok(_)) => {
                        info!(blob = %label, bytes = fetched, "read-through complete; file held");
                        Ok(())
                    }
                    Ok(Err(err)) => Err(Unavailable::Failed(err.to_string())),
                    Err(_) => Err(Unavailable::Failed("storing the file stopped".into())),
                }
            }
            Err(err) => Err(err),
        };
        if let Err(err) = outcome {
            warn!(blob = %label, cause = %err, "read-through failed");
            let _ = std::fs::remove_file(&fetch.path);
            fetch.state.send_modify(|state| state.failed = Some(err));
        }
        lock(&self.fetches).remove(&fetch.manifest.blob);
    }

    /// Fills the staging file; returns the bytes that came from the origin.
    async fn fill(&self, fetch: &Arc<Fetch>) -> Result<u64, Unavailable> {
        let reused = self.copy_local(fetch).await;
        let mut fetched = 0u64;
        let mut failures = 0;
        let mut in_flight: HashSet<usize> = HashSet::new();
        let mut next = 0usize;
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let arrived = fetch.state.borrow().arrived.clone();
            if arrived.iter().all(|&have| have) {
                info!(blob = %fetch.manifest.blob.fmt_short(), reused, "read-through: all chunks here");
                return Ok(fetched);
            }
            while tasks.len() < REQUESTS_IN_FLIGHT {
                let batch = fetch.next_batch(&arrived, &in_flight, &mut next);
                if batch.is_empty() {
                    break;
                }
                in_flight.extend(&batch);
                let client = self.client().await?;
                tasks.spawn(request(client, fetch.clone(), batch));
            }
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok((batch, result))) => {
                        for index in &batch {
                            in_flight.remove(index);
                        }
                        match result {
                            Ok(bytes) => {
                                fetched += bytes;
                                self.metrics.read_through_bytes.inc_by(bytes);
                            }
                            Err(err @ Unavailable::Failed(_)) => return Err(err),
                            Err(Unavailable::Offline(why)) => {
                                failures += 1;
                                *self.client.lock().await = None;
                                if failures >= MAX_FAILED_REQUESTS {
                                    return Err(Unavailable::Offline(why));
                                }
                                // The unreceived chunks are picked again from `next`.
                                next = 0;
                            }
                        }
                    }
                    Some(Err(_)) => return Err(Unavailable::Failed("a chunk request stopped".into())),
                    None => {}
                },
                () = fetch.wake.notified() => {}
            }
        }
    }

    /// Copies the chunks held in other files; returns how many bytes.
    async fn copy_local(&self, fetch: &Arc<Fetch>) -> u64 {
        let (store, fetch) = (self.store.clone(), fetch.clone());
        tokio::task::spawn_blocking(move || {
            let mut copied = 0;
            for (index, chunk) in fetch.manifest.chunks.iter().enumerate() {
                if let Ok(Some(bytes)) = store.chunk_bytes(&chunk.hash)
                    && fetch.put(index, &bytes).is_ok()
                {
                    copied += bytes.len() as u64;
                }
            }
            copied
        })
        .await
        .unwrap_or(0)
    }
}

/// One chunk request; returns the batch and the chunk bytes received.
async fn request(
    client: Client,
    fetch: Arc<Fetch>,
    batch: Vec<usize>,
) -> (Vec<usize>, Result<u64, Unavailable>) {
    let result = request_inner(&client, &fetch, &batch).await;
    (batch, result)
}

async fn request_inner(
    client: &Client,
    fetch: &Fetch,
    batch: &[usize],
) -> Result<u64, Unavailable> {
    let mut wanted: HashMap<Hash, Vec<usize>> = HashMap::new();
    for &index in batch {
        wanted
            .entry(fetch.manifest.chunks[index].hash)
            .or_default()
            .push(index);
    }
    // In file order, so the chunk a reader waits for comes first.
    let mut asked = HashSet::new();
    let wants = batch
        .iter()
        .map(|&index| fetch.manifest.chunks[index].hash)
        .filter(|hash| asked.insert(*hash))
        .map(|hash| ChunkWant {
            hash,
            bases: Vec::new(),
        })
        .collect();
    let offline = |err: crate::sync::client::ClientError| Unavailable::Offline(err.to_string());
    let mut responses = client
        .request(&Request::GetChunks { wants })
        .await
        .map_err(offline)?;
    let mut received = 0u64;
    while let Some(response) = responses.next().await.map_err(offline)? {
        match response {
            Response::Chunk {
                hash,
                encoding,
                bytes,
            } => {
                let Some(indices) = wanted.remove(&hash) else {
                    continue;
                };
                received += bytes.len() as u64;
                let len = fetch.manifest.chunks[indices[0]].len as usize;
                let data = codec::decode(encoding, bytes, None, len).map_err(|err| {
                    Unavailable::Failed(format!("chunk {hash} from the origin: {err}"))
                })?;
                if Hash::of(&data) != hash {
                    return Err(Unavailable::Failed(format!(
                        "chunk {hash} from the origin is damaged (its BLAKE3 differs)"
                    )));
                }
                for index in indices {
                    fetch.put(index, &data).map_err(Unavailable::Failed)?;
                }
            }
            Response::Missing { hash } => {
                return Err(Unavailable::Failed(format!(
                    "the origin does not hold chunk {hash} of file {}",
                    fetch.manifest.blob
                )));
            }
            other => {
                return Err(Unavailable::Failed(format!(
                    "unexpected answer to a chunk request: {}",
                    format!("{other:?}").chars().take(80).collect::<String>()
                )));
            }
        }
    }
    if wanted.is_empty() {
        Ok(received)
    } else {
        Err(Unavailable::Offline(
            "the origin ended a chunk answer early".into(),
        ))
    }
}

impl Fetch {
    /// Writes a verified chunk and tells the readers.
    fn put(&self, index: usize, bytes: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(bytes, self.offsets[index])
            .map_err(|err| format!("writing {}: {err}", self.path.display()))?;
        self.state.send_modify(|state| state.arrived[index] = true);
        Ok(())
    }

    /// Up to [`CHUNKS_PER_REQUEST`] chunks neither here nor asked for:
    /// readers' wants first, then file order from `next`.
    fn next_batch(
        &self,
        arrived: &[bool],
        in_flight: &HashSet<usize>,
        next: &mut usize,
    ) -> Vec<usize> {
        let open = |index: usize| !arrived[index] && !in_flight.contains(&index);
        let mut batch = Vec::new();
        {
            let mut urgent = lock(&self.urgent);
            while batch.len() < CHUNKS_PER_REQUEST {
                let Some(index) = urgent.pop_front() else {
                    break;
                };
                if open(index) && !batch.contains(&index) {
                    batch.push(index);
                }
            }
        }
        if let Some(&first) = batch.first() {
            // Carry on from the reader's position.
            *next = (*next).max(first);
        }
        while batch.len() < CHUNKS_PER_REQUEST && *next < arrived.len() {
            if open(*next) && !batch.contains(next) {
                batch.push(*next);
            }
            *next += 1;
        }
        if batch.is_empty() {
            // Earlier chunks whose request failed.
            batch.extend(
                (0..arrived.len())
                    .filter(|&index| open(index))
                    .take(CHUNKS_PER_REQUEST),
            );
        }
        batch
    }

    /// The chunks covering bytes `start..end`.
    fn chunk_span(&self, start: u64, end: u64) -> std::ops::Range<usize> {
        let first = self
            .offsets
            .partition_point(|&offset| offset <= start)
            .saturating_sub(1);
        let last = self.offsets.partition_point(|&offset| offset < end);
        first..last
    }

    /// Waits until chunk `index` is here; asks for it first if it is not.
    async fn wait_for(&self, index: usize) -> Result<(), Unavailable> {
        let mut state = self.state.subscribe();
        if !state.borrow().arrived[index] {
            lock(&self.urgent).push_back(index);
            self.wake.notify_one();
        }
        let seen = state
            .wait_for(|state| state.arrived[index] || state.failed.is_some())
            .await
            .map_err(|_| Unavailable::Failed("the fetch stopped".into()))?;
        if seen.arrived[index] {
            Ok(())
        } else {
            Err(seen
                .failed
                .clone()
                .unwrap_or_else(|| Unavailable::Failed("the fetch stopped".into())))
        }
    }

    /// Bytes `start..end` as they arrive. Waits for the first of them here,
    /// so a file that cannot be fetched is reported before any answer starts.
    pub async fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, Unavailable>
    {
        let span = self.chunk_span(start, end);
        if !span.is_empty() {
            match tokio::time::timeout(FIRST_BYTES_TIMEOUT, self.wait_for(span.start)).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Unavailable::Offline(format!(
                        "no data from the origin within {} s",
                        FIRST_BYTES_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        Ok(futures_util::stream::unfold(
            (self, span.start, span.end),
            move |(fetch, index, last)| async move {
                if index >= last {
                    return None;
                }
                if let Err(err) = fetch.wait_for(index).await {
                    let err = std::io::Error::other(err.to_string());
                    return Some((Err(err), (fetch, last, last)));
                }
                let chunk_start = fetch.offsets[index];
                let chunk_end = chunk_start + u64::from(fetch.manifest.chunks[index].len);
                let (from, to) = (chunk_start.max(start), chunk_end.min(end));
                let mut bytes = vec![0u8; (to - from) as usize];
                let read = fetch.file.read_exact_at(&mut bytes, from);
                let item = read.map(|()| Bytes::from(bytes));
                Some((item, (fetch, index + 1, last)))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::{ChunkRef, ChunkingProfile};

    fn fetch_of(lens: &[u32]) -> Fetch {
        let chunks: Vec<ChunkRef> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| ChunkRef {
                hash: Hash::of(&[i as u8]),
                len,
            })
            .collect();
        let manifest = FileManifest {
            size: lens.iter().map(|&l| u64::from(l)).sum(),
            blob: Hash::of(b"file"),
            media_type: "video/mp4".into(),
            chunking: ChunkingProfile::default(),
            chunks,
        };
        let file = tempfile::tempfile().expect("temp file");
        Fetch {
            manifest_hash: Hash::of(b"manifest"),
            offsets: manifest.chunk_offsets().map(|(offset, _)| offset).collect(),
            state: watch::Sender::new(FetchState {
                arrived: vec![false; lens.len()],
                failed: None,
            }),
            manifest,
            path: PathBuf::from("test"),
            file,
            urgent: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        }
    }

    #[test]
    fn spans_cover_exactly_the_chunks_of_a_range() {
        let fetch = fetch_of(&[10, 10, 10, 10]);
        assert_eq!(fetch.chunk_span(0, 1), 0..1);
        assert_eq!(fetch.chunk_span(9, 11), 0..2);
        assert_eq!(fetch.chunk_span(10, 20), 1..2);
        assert_eq!(fetch.chunk_span(35, 40), 3..4);
        assert_eq!(fetch.chunk_span(0, 40), 0..4);
    }

    #[test]
    fn a_readers_position_jumps_the_queue() {
        let fetch = fetch_of(&[1; 40]);
        let arrived = vec![false; 40];
        let mut next = 0;
        let first = fetch.next_batch(&arrived, &HashSet::new(), &mut next);
        assert_eq!(first, (0..16).collect::<Vec<_>>());
        lock(&fetch.urgent).push_back(30);
        let in_flight: HashSet<usize> = first.into_iter().collect();
        let second = fetch.next_batch(&arrived, &in_flight, &mut next);
        assert_eq!(second[0], 30);
        assert_eq!(second[1..], (31..40).collect::<Vec<_>>());
        // Then back to what nobody has asked for yet.
        let in_flight: HashSet<usize> = in_flight.into_iter().chain(second).collect();
        let third = fetch.next_batch(&arrived, &in_flight, &mut next);
        assert_eq!(third, (16..30).collect::<Vec<_>>());
    }
}
