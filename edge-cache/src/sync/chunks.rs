//! The files of a pass, through the download engine ([`super::engine`]):
//! handed over in course order, a bounded number at a time, as prefetch
//! (the first seconds of every video before the rest of any video), on the
//! pass's own lane: its connection (paced by the bandwidth cap, re-made with
//! backoff when lost) and its stop token (the sync window's end).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use catalog::Hash;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::engine::{Engine, JobError, JobState, Lane, Outcome, Priority};
use super::link::{Link, backoff};
use super::plan::FileJob;
use super::source::{ChunkSource, Connector, OriginSource};
use super::{MAX_ATTEMPTS, SET_BYTES, SET_FILES, SyncError, SyncReport};
use crate::sync::client::{Cause, Client, ClientError};

/// The sources for the LAN peers of `config` (issue 14), each connecting
/// now, in the background, while the pass asks its upstream for the catalog.
pub(super) fn warm_peers(config: &crate::config::EdgeConfig) -> Vec<Arc<OriginSource>> {
    let peers: Vec<Arc<OriginSource>> = (config.peers.iter())
        .map(|peer| Arc::new(OriginSource::peer(config, peer)))
        .collect();
    for peer in &peers {
        let peer = peer.clone();
        tokio::spawn(async move { peer.warm().await });
    }
    peers
}

/// Fetches `jobs` through `engine`, from `peers` (see [`warm_peers`]) and
/// then the origin; returns the blobs that failed.
pub(super) async fn fetch_files(
    engine: &Engine,
    link: &mut Link,
    peers: Vec<Arc<OriginSource>>,
    jobs: Vec<FileJob>,
    progress: &ProgressBar,
    stop: &CancellationToken,
    report: &mut SyncReport,
) -> Result<HashSet<Hash>, SyncError> {
    let (config, bucket, transport) = (link.config.clone(), link.bucket.clone(), link.transport);
    let memory = link.memory.clone();
    let connect: Connector = Arc::new(move |attempt| {
        let (config, bucket, memory) = (config.clone(), bucket.clone(), memory.clone());
        Box::pin(async move {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            Ok(Client::connect_paced(&config, bucket, transport, &memory).await?)
        })
    });
    let origin = Arc::new(OriginSource::new(Some(link.client.clone()), connect));
    // LAN peers first (issue 14): the origin is asked for what they lack.
    let mut sources: Vec<Arc<dyn ChunkSource>> = peers
        .iter()
        .map(|peer| peer.clone() as Arc<dyn ChunkSource>)
        .collect();
    sources.push(origin.clone());
    let lane = Lane::new(
        "sync",
        sources,
        MAX_ATTEMPTS,
        stop.clone(),
        Some(Box::new({
            let progress = progress.clone();
            move |bytes| progress.inc(bytes)
        })),
    );
    let result = run_jobs(engine, &lane, jobs, progress, stop, report).await;
    engine.stop_lane(&lane).await;
    report.bytes_fetched += lane.bytes.load(Ordering::Relaxed);
    report.chunks_fetched += lane.chunks.load(Ordering::Relaxed);
    report.add_sources(lane.sources_used());
    for peer in &peers {
        if let Some(client) = peer.current().await {
            client.close().await;
        }
    }
    link.reconnects += origin.reconnects();
    if let Some(client) = origin.current().await {
        link.client = client;
    }
    match result {
        Err(Gave::Up(why)) => {
            let last = origin.take_last_error().unwrap_or(ClientError::Lost {
                addr: link.client.addr(),
                cause: why,
            });
            if last.is_transient() {
                Err(SyncError::Unreachable {
                    attempts: MAX_ATTEMPTS,
                    last,
                })
            } else {
                Err(SyncError::Client(last))
            }
        }
        Err(Gave::Engine) => Err(SyncError::Engine(super::engine::EngineStopped)),
        Ok(failed) => Ok(failed),
    }
}

enum Gave {
    /// The origin could not be reached, MAX_ATTEMPTS times in a row.
    Up(Cause),
    Engine,
}

async fn run_jobs(
    engine: &Engine,
    lane: &Arc<Lane>,
    jobs: Vec<FileJob>,
    progress: &ProgressBar,
    stop: &CancellationToken,
    report: &mut SyncReport,
) -> Result<HashSet<Hash>, Gave> {
    let mut failed = HashSet::new();
    let mut queue = jobs.into_iter().peekable();
    let mut waiting = FuturesUnordered::new();
    let mut open_bytes = 0u64;
    loop {
        while waiting.len() < SET_FILES
            && (waiting.is_empty() || open_bytes < SET_BYTES)
            && !stop.is_cancelled()
        {
            let Some(job) = queue.next() else { break };
            let size = job.manifest.size;
            let label = job.label.clone();
            let blob = job.manifest.blob;
            let mut rx = engine
                .want(job, Priority::Prefetch, lane)
                .await
                .map_err(|_| Gave::Engine)?;
            open_bytes += size;
            waiting.push(async move {
                let state = rx
                    .wait_for(|state| state.outcome.is_some())
                    .await
                    .map(|state| state.clone())
                    .unwrap_or_else(|_| JobState {
                        outcome: Some(Outcome::Failed(JobError::Failed(
                            "the download engine stopped".into(),
                        ))),
                        ..JobState::default()
                    });
                (label, blob, size, state)
            });
        }
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            next = waiting.next() => next,
        };
        let Some((label, blob, size, state)) = next else {
            break;
        };
        open_bytes = open_bytes.saturating_sub(size);
        report.bytes_reused += state.reused;
        let saved = state.reused + state.delta_saved;
        if saved > 0 {
            report.saved_by_file.push((label.clone(), saved));
        }
        progress.inc(state.reused);
        match state.outcome {
            Some(Outcome::Done { assembled }) => {
                report.files_completed += u64::from(assembled);
            }
            Some(Outcome::Failed(JobError::Offline(why))) => return Err(Gave::Up(why)),
            Some(Outcome::Failed(JobError::Failed(why))) => {
                let why = super::error_chain(&*why);
                warn!(%blob, file = %label, "{why}");
                report
                    .failures
                    .push(format!("{label} (blob {blob}): {why}"));
                failed.insert(blob);
            }
            Some(Outcome::Stopped) | None => {}
        }
    }
    if stop.is_cancelled() && (queue.peek().is_some() || !waiting.is_empty()) {
        report.stopped_at_window_end = true;
    }
    Ok(failed)
}
