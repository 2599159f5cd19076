//! One sync pass: catalog, metadata, then the files of subscribed courses.
//!
//! 1. Fetch the signed catalog if the origin has a newer one; verify it against
//!    the pinned key; refuse a lower sequence than the one held.
//! 2. Fetch every metadata object the edge lacks (courses, lessons, manifests of
//!    every course, subscribed or not, so teachers can browse the catalog), each
//!    checked against its hash; then make the new catalog the one in force.
//! 3. For every file of a subscribed course not yet held: copy the chunks the
//!    store already holds, fetch the rest with several requests in flight, check
//!    each chunk against its hash before it is written, check the whole file,
//!    then move it into the store.
//!
//! Files are assembled by an actor on a blocking thread that owns the partial
//! blobs; the network side feeds it chunks through a bounded channel. A lost
//! connection is re-made with backoff and only the chunks not yet received are
//! asked for again. Chunks recorded in a partial blob's index record are never
//! fetched again, even after a `kill -9`.
//!
//! With a bandwidth cap ([`SyncOptions::max_rate`], else `max_rate` in
//! `edge.toml`), one [`TokenBucket`] paces every answer of the pass, across
//! reconnections. When [`SyncOptions::stop`] is cancelled (the sync window
//! closed), the chunk requests in flight are dropped, every chunk already
//! received is kept, and the pass ends early with what it has.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use catalog::store::StoreError;
use catalog::{Catalog, FileManifest, Hash, Object, SignedCatalog, Store};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use server::codec::{self, Encoding};
use server::protocol::{ChunkWant, MAX_BASES, Request, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::{Client, ClientError, Transport};
use crate::config::{self, EdgeConfig};
use crate::throttle::{Rate, TokenBucket};

/// Chunks asked for in one request.
const CHUNKS_PER_REQUEST: usize = 64;
/// Chunk requests in flight at once.
const REQUESTS_IN_FLIGHT: usize = 8;
/// Files assembled together: up to this many bytes still to fetch, or files.
const SET_BYTES: u64 = 64 * 1024 * 1024;
const SET_FILES: usize = 512;
/// Connection attempts in a row without progress before a sync gives up.
const MAX_ATTEMPTS: u32 = 8;
/// Attempts to make the first connection of a pass.
const MAX_CONNECT_ATTEMPTS: u32 = 3;
/// Where the last sync's outcome is kept in the store.
pub const LAST_SYNC: &str = "edge.last_sync";

/// What a sync pass did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncReport {
    /// The catalog sequence in force afterwards.
    pub sequence: u64,
    pub catalog_updated: bool,
    pub objects_fetched: u64,
    /// Chunk bytes received from the origin.
    pub bytes_fetched: u64,
    pub chunks_fetched: u64,
    /// Bytes copied from blobs the edge already held instead of fetched.
    pub bytes_reused: u64,
    /// Files completed and verified in this pass.
    pub files_completed: u64,
    /// Files of subscribed courses held (verified) after this pass.
    pub files_held: u64,
    /// Files of subscribed courses not held after this pass.
    pub files_missing: u64,
    /// Files found damaged or missing (quarantined by this pass's check, by
    /// `shanlu verify` or by a failed check while serving) and fetched again
    /// in this pass.
    #[serde(default)]
    pub files_repaired: u64,
    /// One line per file that could not be completed, naming it and why.
    pub failures: Vec<String>,
    pub reconnects: u32,
    /// Everything subscribed is held and verified.
    pub complete: bool,
    pub finished_at: u64,
    /// Set when the pass stopped on an error.
    pub error: Option<String>,
    /// The bandwidth cap the pass kept to, if any.
    #[serde(default)]
    pub max_rate: Option<Rate>,
    /// The sync window closed before the pass was done; the rest follows in
    /// the next window.
    #[serde(default)]
    pub stopped_at_window_end: bool,
    /// What carried the pass at its end: `quic`, `https` or `http`.
    #[serde(default)]
    pub transport: Option<String>,
    /// Why the pass used the fallback instead of QUIC.
    #[serde(default)]
    pub fallback_reason: Option<String>,
}

/// How a sync pass runs, beyond what `edge.toml` says.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// The bandwidth cap; overrides `max_rate` in `edge.toml`.
    pub max_rate: Option<Rate>,
    /// QUIC, the fallback, or either; overrides `transport` in `edge.toml`.
    pub transport: Option<Transport>,
    /// Cancelled when the sync window closes: the pass stops fetching, keeps
    /// what it received and ends (see [`SyncReport::stopped_at_window_end`]).
    pub stop: CancellationToken,
}

/// Why a sync pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("refused the origin's catalog: {0}; nothing was stored")]
    BadCatalog(String),
    #[error(
        "refused the origin's catalog: its sequence {offered} is lower than the {held} this edge holds (a rollback); nothing was stored"
    )]
    Rollback { offered: u64, held: u64 },
    #[error("the origin has no catalog yet; publish a course on the origin first")]
    NoCatalog,
    #[error(
        "the origin does not hold object {hash} that its catalog names; ask the administrator to run `shanlu verify` on the origin"
    )]
    MissingObject { hash: Hash },
    #[error("object {hash} from the origin was refused: {reason}")]
    BadObject { hash: Hash, reason: String },
    #[error(
        "another sync is already running on {path}; let it finish (this one stops without touching anything)"
    )]
    Busy { path: std::path::PathBuf },
    #[error("taking {path}: {cause}")]
    Lock {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error("gave up after {attempts} attempts to reach the origin: {last}")]
    Unreachable { attempts: u32, last: ClientError },
}

/// One file to assemble.
#[derive(Clone)]
struct FileJob {
    label: String,
    manifest_hash: Hash,
    manifest: FileManifest,
    /// The previous version of this file, held locally: changed chunks can
    /// travel as deltas against its chunks.
    previous: Option<FileManifest>,
}

/// Runs one sync pass for the edge in `dir`. `progress` shows bytes fetched.
pub async fn sync_once(
    dir: &Path,
    progress: &ProgressBar,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let config = EdgeConfig::load(dir)?;
    let _lock = lock(dir)?;
    let store = Arc::new(Store::open(config::store_path(dir))?);
    let mut report = SyncReport {
        max_rate: options.max_rate.or(config.max_rate),
        ..SyncReport::default()
    };
    let result = run(&config, &store, progress, options, &mut report).await;
    report.finished_at = server::origin::now_secs();
    if let Err(err) = &result {
        report.error = Some(err.to_string());
        report.complete = false;
    }
    if let Ok(json) = serde_json::to_vec(&report) {
        let _ = store.set_meta(LAST_SYNC, &json);
    }
    result.map(|()| report)
}

async fn run(
    config: &EdgeConfig,
    store: &Arc<Store>,
    progress: &ProgressBar,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let key = config.public_key()?;
    let bucket = report
        .max_rate
        .map(|rate| Arc::new(TokenBucket::new(rate.bytes_per_second())));
    if let Some(rate) = report.max_rate {
        info!(%rate, "bandwidth cap");
    }
    let transport = options.transport.unwrap_or(config.transport);
    let mut link = Link::connect(config, bucket, transport).await?;
    info!(
        transport = link.client.transport_name(),
        origin = %link.client.addr(),
        "connected to the origin"
    );

    // 1. The catalog.
    let held =
        match store.signed_catalog()? {
            Some(signed) => Some(signed.verify(&key).map_err(|err| {
                SyncError::BadCatalog(format!("the catalog held locally: {err}"))
            })?),
            None => None,
        };
    let held_sequence = held.as_ref().map(|c| c.sequence);
    let offered = link
        .retry(|client| async move { client.catalog(held_sequence).await })
        .await?;
    let (catalog, new_signed) = match offered {
        Some(bytes) => {
            let signed = SignedCatalog::decode(&bytes)
                .map_err(|err| SyncError::BadCatalog(err.to_string()))?;
            let catalog = signed
                .verify(&key)
                .map_err(|err| SyncError::BadCatalog(err.to_string()))?;
            if let Some(held) = held_sequence
                && catalog.sequence < held
            {
                return Err(SyncError::Rollback {
                    offered: catalog.sequence,
                    held,
                });
            }
            (catalog, Some(signed))
        }
        None => (held.clone().ok_or(SyncError::NoCatalog)?, None),
    };
    report.sequence = catalog.sequence;
    // The files of the catalog held until now, by place, for deltas.
    let mut previous: HashMap<String, FileManifest> = HashMap::new();
    // Only a new catalog can replace files; otherwise this walk would find nothing to use.
    if let (Some(held), Some(_)) = (&held, &new_signed) {
        for job in file_jobs(store, held, config)? {
            if store.has_blob(&job.manifest.blob)? {
                previous.insert(job.label, job.manifest);
            }
        }
    }

    // 2. Metadata, level by level.
    fetch_metadata(&mut link, store, &catalog, report).await?;
    if let Some(signed) = new_signed {
        store.set_signed_catalog(&signed)?;
        report.catalog_updated = true;
        info!(sequence = catalog.sequence, "new catalog in force");
    }

    // 3. Files of subscribed courses.
    let jobs = file_jobs(store, &catalog, config)?;
    let all_blobs: Vec<Hash> = jobs.iter().map(|job| job.manifest.blob).collect();
    let missing = missing_blobs(store, &all_blobs).await?;
    let mut todo: Vec<FileJob> = Vec::new();
    let mut seen = HashSet::new();
    for mut job in jobs {
        if !missing.blobs.contains(&job.manifest.blob) || !seen.insert(job.manifest.blob) {
            continue;
        }
        job.previous = previous.remove(&job.label);
        todo.push(job);
    }
    progress.set_length(todo.iter().map(|job| job.manifest.size).sum());
    let mut failed_blobs = HashSet::new();
    let mut queue: VecDeque<FileJob> = todo.into();
    while !queue.is_empty() {
        if options.stop.is_cancelled() {
            report.stopped_at_window_end = true;
            break;
        }
        let mut set = Vec::new();
        let mut set_bytes = 0;
        while let Some(job) = queue.pop_front() {
            set_bytes += job.manifest.size;
            set.push(job);
            if set_bytes >= SET_BYTES || set.len() >= SET_FILES {
                break;
            }
        }
        let course = set[0]
            .label
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        progress.set_message(format!(
            "{course}: {} file(s), {} left",
            set.len(),
            queue.len()
        ));
        let outcome = assemble_set(&mut link, store, set, progress, &options.stop, report).await?;
        failed_blobs.extend(outcome);
    }
    report.reconnects = link.reconnects;
    report.transport = Some(link.client.transport_name().to_owned());
    report.fallback_reason = link.client.fallback_reason.clone();
    for blob in &all_blobs {
        if store.has_blob(blob)? {
            report.files_held += 1;
        } else {
            report.files_missing += 1;
        }
    }
    for blob in &missing.repairs {
        if store.has_blob(blob)? {
            report.files_repaired += 1;
        }
    }
    if !missing.repairs.is_empty() {
        info!(
            repaired = report.files_repaired,
            quarantined = missing.repairs.len(),
            "damaged or missing files fetched again"
        );
    }
    report.complete = report.files_missing == 0 && failed_blobs.is_empty();
    if report.stopped_at_window_end {
        info!(
            missing = report.files_missing,
            "the sync window closed; the pass stopped early"
        );
    }
    let status = serde_json::json!({
        "edge": link.client.edge_name,
        "sequence": report.sequence,
        "files_held": report.files_held,
        "files_missing": report.files_missing,
    });
    let _ = link.client.report_status(status.to_string()).await;
    link.client.close().await;
    Ok(())
}

/// What a pass must fetch.
#[derive(Default)]
struct Missing {
    /// Blobs not held with their verified file in place.
    blobs: HashSet<Hash>,
    /// Those of them in quarantine: held once, found damaged or gone.
    repairs: HashSet<Hash>,
}

/// Which of `blobs` are not held with their verified file in place. The index
/// alone is not enough (a file can be deleted or changed behind its back): each
/// held blob's file is opened and `fstat`ed, and only one whose identity
/// changed is re-hashed; one gone or bad is quarantined, so it counts as a
/// repair. On the blocking pool.
async fn missing_blobs(store: &Arc<Store>, blobs: &[Hash]) -> Result<Missing, SyncError> {
    let (store, blobs) = (store.clone(), blobs.to_vec());
    tokio::task::spawn_blocking(move || {
        let mut missing = Missing::default();
        let mut seen = HashSet::new();
        for blob in blobs {
            if !seen.insert(blob) || store.check_held(&blob)? {
                continue;
            }
            if store.is_quarantined(&blob)? {
                missing.repairs.insert(blob);
            }
            missing.blobs.insert(blob);
        }
        Ok::<_, SyncError>(missing)
    })
    .await
    .map_err(|err| {
        SyncError::Store(StoreError::Index(format!(
            "checking which files are held stopped: {err}"
        )))
    })?
}

/// Holds `DIR/sync.lock` for the pass: two syncs of one edge would fetch the
/// same chunks into the same partial files.
fn lock(dir: &Path) -> Result<std::fs::File, SyncError> {
    let path = dir.join("sync.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|cause| SyncError::Lock {
            path: path.clone(),
            cause,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SyncError::Busy {
            path: dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(cause)) => Err(SyncError::Lock { path, cause }),
    }
}

/// Fetches courses, then lessons, then manifests the store lacks.
async fn fetch_metadata(
    link: &mut Link,
    store: &Arc<Store>,
    catalog: &Catalog,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let course_hashes: Vec<Hash> = catalog.courses.values().map(|entry| entry.hash).collect();
    fetch_objects(link, store, &course_hashes, report).await?;
    let mut lesson_hashes = Vec::new();
    let mut manifest_hashes = Vec::new();
    for hash in &course_hashes {
        let course =
            store
                .require_object(hash)?
                .into_course()
                .map_err(|err| SyncError::BadObject {
                    hash: *hash,
                    reason: err.to_string(),
                })?;
        lesson_hashes.extend(course.lessons.iter().map(|l| l.hash));
        manifest_hashes.extend(course.files.iter().map(|f| f.manifest));
    }
    fetch_objects(link, store, &lesson_hashes, report).await?;
    for hash in &lesson_hashes {
        let lesson =
            store
                .require_object(hash)?
                .into_lesson()
                .map_err(|err| SyncError::BadObject {
                    hash: *hash,
                    reason: err.to_string(),
                })?;
        manifest_hashes.extend(lesson.files.iter().map(|f| f.manifest));
    }
    fetch_objects(link, store, &manifest_hashes, report).await
}

async fn fetch_objects(
    link: &mut Link,
    store: &Arc<Store>,
    hashes: &[Hash],
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut wanted = Vec::new();
    let mut seen = HashSet::new();
    for hash in hashes {
        if seen.insert(*hash) && !store.has_object(hash)? {
            wanted.push(*hash);
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let wanted = Arc::new(wanted);
    let found = link
        .retry(|client| {
            let wanted = wanted.clone();
            async move { client.objects(&wanted).await }
        })
        .await?;
    let mut verified = Vec::with_capacity(found.len());
    for (hash, bytes) in found {
        let bytes = bytes.ok_or(SyncError::MissingObject { hash })?;
        Object::decode_verified(&hash, &bytes).map_err(|err| SyncError::BadObject {
            hash,
            reason: err.to_string(),
        })?;
        verified.push((hash, bytes));
    }
    report.objects_fetched += verified.len() as u64;
    store.put_objects(&verified)?;
    Ok(())
}

/// Every file of every subscribed course, in course and lesson order.
fn file_jobs(
    store: &Store,
    catalog: &Catalog,
    config: &EdgeConfig,
) -> Result<Vec<FileJob>, SyncError> {
    let mut jobs = Vec::new();
    for (id, entry) in &catalog.courses {
        if !config.subscribe.includes(id) {
            continue;
        }
        let course = store
            .require_object(&entry.hash)?
            .into_course()
            .map_err(|err| SyncError::BadObject {
                hash: entry.hash,
                reason: err.to_string(),
            })?;
        let mut files: Vec<(String, catalog::FileEntry)> = course
            .files
            .iter()
            .map(|f| (format!("{id}/{}", f.path), f.clone()))
            .collect();
        for lesson_ref in &course.lessons {
            let lesson = store
                .require_object(&lesson_ref.hash)?
                .into_lesson()
                .map_err(|err| SyncError::BadObject {
                    hash: lesson_ref.hash,
                    reason: err.to_string(),
                })?;
            files.extend(
                lesson
                    .files
                    .iter()
                    .map(|f| (format!("{id}/{}/{}", lesson.id, f.path), f.clone())),
            );
        }
        for (label, file) in files {
            let manifest = store.manifest(&file.manifest)?;
            jobs.push(FileJob {
                label,
                manifest_hash: file.manifest,
                manifest,
                previous: None,
            });
        }
    }
    Ok(jobs)
}

/// Messages to the assembler actor.
enum ToAssembler {
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
struct Opened {
    needed: Vec<ChunkWant>,
    reused: u64,
}

/// Assembles one set of files; returns the blobs that failed.
async fn assemble_set(
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

struct SetOutcome {
    completed: u64,
    failed: Vec<(Hash, String, String)>,
}

/// The actor: owns the set's partial blobs, writes verified chunks, finishes files.
fn assembler(
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
struct Fetched {
    bytes: u64,
    chunks: u64,
    /// Chunks the origin does not hold.
    missing: Vec<Hash>,
    /// `stop` was cancelled: the requests in flight were dropped.
    stopped: bool,
}

/// Fetches chunks with several requests in flight, re-connecting as needed,
/// until all are here or `stop` is cancelled.
async fn fetch_chunks(
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
async fn fetch_batch(
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

/// For each missing chunk of `new`, the chunks of the `old` version it most
/// likely replaces: found by aligning on the nearest unchanged chunk before it,
/// so an insertion that shifts the rest of the file still finds its old bytes.
fn delta_bases(new: &FileManifest, old: &FileManifest, missing: &[usize]) -> Vec<Vec<Hash>> {
    const MARGIN: u64 = 16 * 1024;
    const LOOK_BACK: usize = 64;
    let old_offsets: Vec<u64> = old.chunk_offsets().map(|(offset, _)| offset).collect();
    let new_offsets: Vec<u64> = new.chunk_offsets().map(|(offset, _)| offset).collect();
    let old_index: HashMap<Hash, usize> = old
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash, i))
        .collect();
    missing
        .iter()
        .map(|&index| {
            let anchor = (index.saturating_sub(LOOK_BACK)..index)
                .rev()
                .find_map(|j| old_index.get(&new.chunks[j].hash).map(|&old_j| (j, old_j)));
            let start = match anchor {
                Some((j, old_j)) => old_offsets[old_j] + (new_offsets[index] - new_offsets[j]),
                None => new_offsets[index],
            };
            let (from, to) = (
                start.saturating_sub(MARGIN),
                start + u64::from(new.chunks[index].len) + MARGIN,
            );
            let first = old_offsets
                .partition_point(|&offset| offset <= from)
                .saturating_sub(1);
            (first..old.chunks.len())
                .take_while(|&i| old_offsets[i] < to)
                .filter(|&i| old_offsets[i] + u64::from(old.chunks[i].len) > from)
                .take(MAX_BASES)
                .map(|i| old.chunks[i].hash)
                .collect()
        })
        .collect()
}

/// The chunk's bytes from what travelled; a delta is expanded with the base
/// chunks this edge holds. The hash is checked later, before writing.
fn decode_chunk(
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

/// The connection to the origin, re-made with backoff when it drops.
struct Link {
    config: EdgeConfig,
    client: Client,
    /// The pass's bandwidth cap, kept across reconnections.
    bucket: Option<Arc<TokenBucket>>,
    transport: Transport,
    reconnects: u32,
}

impl Link {
    async fn connect(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        transport: Transport,
    ) -> Result<Link, SyncError> {
        let mut attempt = 0;
        loop {
            match Client::connect_paced(config, bucket.clone(), transport).await {
                Ok(client) => {
                    return Ok(Link {
                        config: config.clone(),
                        client,
                        bucket,
                        transport,
                        reconnects: 0,
                    });
                }
                Err(err) if err.is_transient() && attempt + 1 < MAX_CONNECT_ATTEMPTS => {
                    attempt += 1;
                    warn!(cause = %err, attempt, "cannot reach the origin; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) if err.is_transient() => {
                    return Err(SyncError::Unreachable {
                        attempts: attempt + 1,
                        last: err,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn reconnect(&mut self, attempt: u32) -> Result<(), SyncError> {
        tokio::time::sleep(backoff(attempt)).await;
        match Client::connect_paced(&self.config, self.bucket.clone(), self.transport).await {
            Ok(client) => {
                if client.transport_name() != self.client.transport_name() {
                    info!(
                        transport = client.transport_name(),
                        "reconnected over another transport"
                    );
                }
                self.client = client;
                self.reconnects += 1;
                Ok(())
            }
            Err(err) if err.is_transient() => {
                warn!(cause = %err, attempt, "reconnecting failed");
                Ok(()) // the next request fails fast and counts another attempt
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Runs a request, reconnecting and retrying on a lost connection.
    async fn retry<T, F, Fut>(&mut self, mut request: F) -> Result<T, SyncError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            match request(self.client.clone()).await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && attempt < MAX_ATTEMPTS => {
                    attempt += 1;
                    warn!(cause = %err, attempt, "request failed; reconnecting");
                    self.reconnect(attempt).await?;
                }
                Err(err) if err.is_transient() => {
                    return Err(SyncError::Unreachable {
                        attempts: attempt + 1,
                        last: err,
                    });
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// 0.5 s, 1 s, 2 s, … up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6).saturating_sub(1)))
        .min(Duration::from_secs(30))
}
