//! Assembling files: the actor that owns partial blobs, and the chunk requests
//! that feed it.

use super::link::Link;
use super::plan::{FileJob, delta_bases};
use super::{CHUNKS_PER_REQUEST, MAX_ATTEMPTS, REQUESTS_IN_FLIGHT, SyncError, SyncReport};
use crate::sync::client::{Client, ClientError};
use catalog::store::StoreError;
use catalog::{Hash, Store};
use indicatif::ProgressBar;
use server::codec::{self, Encoding};
use server::protocol::{ChunkWant, Request, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Messages to the assembler actor.
pub(super) enum ToAssembler {
    Chunk {
        want: ChunkWant,
        encoding: Encoding,
        bytes: Vec<u8>,
    },
    /// No more chunks; `stopped`: the pass stopped early, so chunks that did
    /// not arrive are not a failure.
    Done { stopped: bool },
}

/// What the assembler found when it opened a set.
pub(super) struct Opened {
    pub(super) needed: Vec<ChunkWant>,
    pub(super) reused: u64,
}

/// Assembles one set of files; returns the blobs that failed.
pub(super) async fn assemble_set(
    link: &mut Link,
    store: &Arc<Store>,
    set: Vec<FileJob>,
    progress: &ProgressBar,
    stop: &CancellationToken,
    report: &mut SyncReport,
) -> Result<Vec<Hash>, SyncError> {
    let (to_assembler, inbox) = mpsc::channel::<ToAssembler>(64);
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel::<Result<Opened, StoreError>>();
    let actor_store = store.clone();
    let actor = tokio::task::spawn_blocking(move || assembler(&actor_store, set, inbox, opened_tx));
    let opened = match opened_rx.await {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => return Err(err.into()),
        Err(_) => {
            return Err(SyncError::Store(actor.await.map_or_else(
                |_| StoreError::Index("the assembler stopped".into()),
                |result| {
                    result
                        .err()
                        .unwrap_or_else(|| StoreError::Index("the assembler stopped".into()))
                },
            )));
        }
    };
    report.bytes_reused += opened.reused;
    progress.inc(opened.reused);

    let fetched = fetch_chunks(link, opened.needed, &to_assembler, progress, stop).await;
    let stopped = fetched.as_ref().is_ok_and(|fetched| fetched.stopped);
    let _ = to_assembler.send(ToAssembler::Done { stopped }).await;
    let outcome = actor
        .await
        .map_err(|_| StoreError::Index("the assembler panicked".into()))??;
    let Fetched {
        bytes,
        chunks,
        missing,
        stopped,
    } = fetched?;
    report.bytes_fetched += bytes;
    report.chunks_fetched += chunks;
    report.stopped_at_window_end |= stopped;
    report.files_completed += outcome.completed;
    for (blob, label, reason) in &outcome.failed {
        warn!(%blob, file = %label, "{reason}");
        report
            .failures
            .push(format!("{label} (blob {blob}): {reason}"));
    }
    for hash in missing {
        warn!(chunk = %hash, "the origin does not hold this chunk");
    }
    Ok(outcome
        .failed
        .into_iter()
        .map(|(blob, _, _)| blob)
        .collect())
}

pub(super) struct SetOutcome {
    pub(super) completed: u64,
    pub(super) failed: Vec<(Hash, String, String)>,
}

/// The actor: owns the set's partial blobs, writes verified chunks, finishes files.
pub(super) fn assembler(
    store: &Store,
    set: Vec<FileJob>,
    mut inbox: mpsc::Receiver<ToAssembler>,
    opened: tokio::sync::oneshot::Sender<Result<Opened, StoreError>>,
) -> Result<SetOutcome, StoreError> {
    let mut partials = Vec::with_capacity(set.len());
    let mut reused = 0;
    let mut lengths: HashMap<Hash, u32> = HashMap::new();
    let mut order = Vec::new();
    let open = (|| -> Result<(), StoreError> {
        for job in &set {
            let mut partial = store.partial(job.manifest_hash, job.manifest.clone())?;
            reused += partial.reuse_local()?;
            let missing = partial.missing();
            let bases = job
                .previous
                .as_ref()
                .map(|old| delta_bases(&job.manifest, old, &missing));
            for (n, index) in missing.iter().enumerate() {
                let chunk = job.manifest.chunks[*index];
                if lengths.insert(chunk.hash, chunk.len).is_none() {
                    let bases = bases.as_ref().map(|b| b[n].clone()).unwrap_or_default();
                    order.push(ChunkWant {
                        hash: chunk.hash,
                        bases,
                    });
                }
            }
            partials.push(partial);
        }
        Ok(())
    })();
    if let Err(err) = open {
        let _ = opened.send(Err(StoreError::Index(err.to_string())));
        return Err(err);
    }
    let _ = opened.send(Ok(Opened {
        needed: order,
        reused,
    }));

    // Which partials need each chunk.
    let mut wanted_by: HashMap<Hash, Vec<usize>> = HashMap::new();
    for (slot, partial) in partials.iter().enumerate() {
        for index in partial.missing() {
            wanted_by
                .entry(partial.manifest().chunks[index].hash)
                .or_default()
                .push(slot);
        }
    }
    let mut failed: Vec<Option<String>> = vec![None; partials.len()];
    let mut stopped = false;
    while let Some(message) = inbox.blocking_recv() {
        let (want, encoding, bytes) = match message {
            ToAssembler::Chunk {
                want,
                encoding,
                bytes,
            } => (want, encoding, bytes),
            ToAssembler::Done { stopped: early } => {
                stopped = early;
                break;
            }
        };
        let hash = want.hash;
        let expected_len = lengths.get(&hash).copied().unwrap_or(0) as usize;
        let bytes = match decode_chunk(store, &want, encoding, bytes, expected_len) {
            Ok(bytes) => bytes,
            Err(reason) => {
                for &slot in wanted_by.get(&hash).map(Vec::as_slice).unwrap_or(&[]) {
                    failed[slot].get_or_insert_with(|| {
                        format!("refused chunk {hash} from the origin: {reason}")
                    });
                }
                continue;
            }
        };
        for &slot in wanted_by.get(&hash).map(Vec::as_slice).unwrap_or(&[]) {
            if failed[slot].is_some() {
                continue;
            }
            match partials[slot].write_chunk_by_hash(&hash, &bytes) {
                Ok(_) => {}
                Err(err @ StoreError::ChunkMismatch { .. }) => {
                    failed[slot] = Some(format!("refused a chunk from the origin: {err}"));
                }
                Err(err) => return Err(err),
            }
        }
    }
    let mut outcome = SetOutcome {
        completed: 0,
        failed: Vec::new(),
    };
    let mut complete = Vec::new();
    let mut complete_jobs = Vec::new();
    for ((mut partial, job), failure) in partials.into_iter().zip(&set).zip(failed) {
        if let Some(reason) = failure {
            partial.flush()?;
            outcome
                .failed
                .push((job.manifest.blob, job.label.clone(), reason));
            continue;
        }
        let missing = partial.missing();
        if !missing.is_empty() && stopped {
            // Kept for the next pass, which fetches only what is missing.
            partial.flush()?;
            continue;
        }
        if !missing.is_empty() {
            partial.flush()?;
            let first = job.manifest.chunks[missing[0]].hash;
            outcome.failed.push((
                job.manifest.blob,
                job.label.clone(),
                format!(
                    "{} chunk(s) did not arrive, first {first}; the origin may hold a damaged copy (ask for `shanlu verify` there)",
                    missing.len()
                ),
            ));
            continue;
        }
        complete.push(partial);
        complete_jobs.push(job);
    }
    // One filesystem sync and one index commit for the whole set.
    for (result, job) in store
        .finish_partials(complete)?
        .into_iter()
        .zip(complete_jobs)
    {
        match result {
            Ok(_) => outcome.completed += 1,
            Err(err) => {
                outcome
                    .failed
                    .push((job.manifest.blob, job.label.clone(), err.to_string()))
            }
        }
    }
    Ok(outcome)
}

/// What [`fetch_chunks`] received.
pub(super) struct Fetched {
    pub(super) bytes: u64,
    pub(super) chunks: u64,
    /// Chunks the origin does not hold.
    pub(super) missing: Vec<Hash>,
    /// `stop` was cancelled: the requests in flight were dropped.
    pub(super) stopped: bool,
}

/// Fetches chunks with several requests in flight, re-connecting as needed,
/// until all are here or `stop` is cancelled.
pub(super) async fn fetch_chunks(
    link: &mut Link,
    needed: Vec<ChunkWant>,
    to_assembler: &mpsc::Sender<ToAssembler>,
    progress: &ProgressBar,
    stop: &CancellationToken,
) -> Result<Fetched, SyncError> {
    let bytes = Arc::new(AtomicU64::new(0));
    let chunks = Arc::new(AtomicU64::new(0));
    let mut missing = Vec::new();
    let mut pending: VecDeque<Vec<ChunkWant>> = needed
        .chunks(CHUNKS_PER_REQUEST)
        .map(<[ChunkWant]>::to_vec)
        .collect();
    let mut attempts = 0;
    let mut stopped = false;
    while !pending.is_empty() {
        if stop.is_cancelled() {
            stopped = true;
            break;
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut lost: Option<ClientError> = None;
        let before = chunks.load(Ordering::Relaxed);
        loop {
            while tasks.len() < REQUESTS_IN_FLIGHT && lost.is_none() {
                let Some(batch) = pending.pop_front() else {
                    break;
                };
                let client = link.client.clone();
                let sink = to_assembler.clone();
                let (bytes, chunks, progress) = (bytes.clone(), chunks.clone(), progress.clone());
                tasks.spawn(async move {
                    fetch_batch(client, batch, sink, bytes, chunks, progress).await
                });
            }
            let done = tokio::select! {
                biased;
                () = stop.cancelled() => {
                    // Chunks already handed on are kept; the rest wait for the next pass.
                    tasks.shutdown().await;
                    stopped = true;
                    break;
                }
                done = tasks.join_next() => done,
            };
            let Some(done) = done else {
                break;
            };
            match done {
                Ok(Ok(absent)) => missing.extend(absent),
                Ok(Err((unreceived, err))) => {
                    if !err.is_transient() {
                        return Err(err.into());
                    }
                    pending.push_back(unreceived);
                    lost.get_or_insert(err);
                }
                Err(_) => return Err(StoreError::Index("a fetch task panicked".into()).into()),
            }
        }
        if stopped {
            break;
        }
        if let Some(err) = lost {
            if chunks.load(Ordering::Relaxed) > before {
                attempts = 0;
            }
            attempts += 1;
            if attempts > MAX_ATTEMPTS {
                return Err(SyncError::Unreachable {
                    attempts: attempts - 1,
                    last: err,
                });
            }
            warn!(cause = %err, "connection to the origin lost; reconnecting");
            tokio::select! {
                reconnected = link.reconnect(attempts) => reconnected?,
                () = stop.cancelled() => {
                    stopped = true;
                    break;
                }
            }
        }
    }
    Ok(Fetched {
        bytes: bytes.load(Ordering::Relaxed),
        chunks: chunks.load(Ordering::Relaxed),
        missing,
        stopped,
    })
}

/// One chunk request. On a lost connection, returns the wants not yet received.
pub(super) async fn fetch_batch(
    client: Client,
    batch: Vec<ChunkWant>,
    sink: mpsc::Sender<ToAssembler>,
    bytes: Arc<AtomicU64>,
    chunks: Arc<AtomicU64>,
    progress: ProgressBar,
) -> Result<Vec<Hash>, (Vec<ChunkWant>, ClientError)> {
    let mut remaining: HashMap<Hash, ChunkWant> =
        batch.iter().map(|want| (want.hash, want.clone())).collect();
    let unreceived = |remaining: &HashMap<Hash, ChunkWant>| {
        batch
            .iter()
            .filter(|want| remaining.contains_key(&want.hash))
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut responses = match client
        .request(&Request::GetChunks {
            wants: batch.clone(),
        })
        .await
    {
        Ok(responses) => responses,
        Err(err) => return Err((batch.clone(), err)),
    };
    let mut absent = Vec::new();
    loop {
        match responses.next().await {
            Ok(Some(Response::Chunk {
                hash,
                encoding,
                bytes: data,
            })) => {
                let Some(want) = remaining.remove(&hash) else {
                    continue; // not asked for: ignored
                };
                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                chunks.fetch_add(1, Ordering::Relaxed);
                progress.inc(data.len() as u64);
                if sink
                    .send(ToAssembler::Chunk {
                        want,
                        encoding,
                        bytes: data,
                    })
                    .await
                    .is_err()
                {
                    return Ok(absent);
                }
            }
            Ok(Some(Response::Missing { hash })) => {
                remaining.remove(&hash);
                absent.push(hash);
            }
            Ok(Some(other)) => {
                let reason = format!("unexpected answer to a chunk request: {other:?}")
                    .chars()
                    .take(120)
                    .collect();
                return Err((
                    unreceived(&remaining),
                    ClientError::Protocol {
                        addr: client.addr(),
                        reason,
                    },
                ));
            }
            Ok(None) => break,
            Err(err) => return Err((unreceived(&remaining), err)),
        }
    }
    if !remaining.is_empty() {
        let err = ClientError::Lost {
            addr: client.addr(),
            reason: "the origin ended a chunk answer early".into(),
        };
        return Err((unreceived(&remaining), err));
    }
    Ok(absent)
}

/// The chunk's bytes from what travelled; a delta is expanded with the base
/// chunks this edge holds. The hash is checked later, before writing.
pub(super) fn decode_chunk(
    store: &Store,
    want: &ChunkWant,
    encoding: Encoding,
    bytes: Vec<u8>,
    expected_len: usize,
) -> Result<Vec<u8>, String> {
    let dictionary = if encoding == Encoding::ZstdDelta {
        let mut dictionary = Vec::new();
        for base in &want.bases {
            match store.chunk_bytes(base) {
                Ok(Some(base_bytes)) => dictionary.extend_from_slice(&base_bytes),
                _ => return Err(format!("base chunk {base} of a delta is not held here")),
            }
        }
        Some(dictionary)
    } else {
        None
    };
    codec::decode(encoding, bytes, dictionary.as_deref(), expected_len)
        .map_err(|err| err.to_string())
}
