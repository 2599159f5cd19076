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

pub mod accept;
pub mod cdn;
mod chunks;
pub mod client;
pub mod engine;
pub mod fallback;
mod link;
pub mod memory;
mod metadata;
pub mod plan;
pub mod readthrough;
pub mod schedule;
pub mod source;
pub mod throttle;
pub mod window;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use catalog::store::StoreError;
use catalog::{FileManifest, Hash, Store};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;

use chunks::fetch_files;
use engine::Engine;
use link::Link;
use metadata::fetch_metadata;
use plan::{PlanError, file_jobs, todo_jobs};

use crate::config::{self, EdgeConfig};
use crate::quota;
use crate::sync::client::{ClientError, SinceAsk, Transport};
use crate::sync::throttle::{Rate, TokenBucket};

/// Files handed to the download engine at once: up to this many bytes, or files.
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
    /// Chunk bytes received (from the origin and LAN peers).
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
    /// The catalog in force has expired (issue 13): the warning to show.
    #[serde(default)]
    pub expired: Option<String>,
    /// The quota's plan, what it evicted, what did not fit, and the
    /// collection after the pass (issue 13).
    #[serde(default)]
    pub quota: Option<crate::quota::QuotaReport>,
    /// Where the pass's chunks came from (issue 14): each LAN peer of
    /// `edge.toml`, then the upstream; verified chunks and their bytes.
    #[serde(default)]
    pub sources: Vec<engine::SourceUse>,
    /// The peers the pass stopped asking, each with why (`peer …: why`).
    #[serde(default)]
    pub peers_dropped: Vec<String>,
    /// Bytes each file (by label) did not fetch: reused chunks and what
    /// deltas spared, for the usage counts (issue 15). Not shown.
    #[serde(skip)]
    pub(crate) saved_by_file: Vec<(String, u64)>,
}

impl SyncReport {
    /// Counts what a lane took from each source, by name.
    fn add_sources(&mut self, used: Vec<engine::SourceUse>) {
        for source in used {
            if let Some(why) = &source.dropped {
                self.peers_dropped.push(format!("{}: {why}", source.name));
            }
            match self
                .sources
                .iter_mut()
                .find(|s| s.name == source.name && s.peer == source.peer)
            {
                Some(known) => {
                    known.chunks += source.chunks;
                    known.bytes += source.bytes;
                    known.dropped = known.dropped.take().or(source.dropped);
                }
                None => self.sources.push(source),
            }
        }
    }

    /// What `edge sync` prints about peers (issue 14): where the chunks came
    /// from and which peers were left out; nothing for an edge without peers.
    pub fn peer_lines(&self) -> Vec<String> {
        if !self.sources.iter().any(|s| s.peer) {
            return Vec::new();
        }
        let mut lines: Vec<String> = (self.sources.iter())
            .map(|s| {
                let bytes = catalog::format::bytes(s.bytes);
                format!("from {}: {} chunks, {bytes}", s.name, s.chunks)
            })
            .collect();
        lines.extend(
            self.peers_dropped
                .iter()
                .map(|why| format!("dropped {why}")),
        );
        lines
    }
}

/// How a sync pass runs, beyond what `edge.toml` says.
#[derive(Clone, Default)]
pub struct SyncOptions {
    /// The bandwidth cap; overrides `max_rate` in `edge.toml`.
    pub max_rate: Option<Rate>,
    /// QUIC, the fallback, or either; overrides `transport` in `edge.toml`.
    pub transport: Option<Transport>,
    /// Cancelled when the sync window closes: the pass stops fetching, keeps
    /// what it received and ends (see [`SyncReport::stopped_at_window_end`]).
    pub stop: CancellationToken,
    /// Which transport worked lately: the edge's, shared by its passes and
    /// read-through; a fresh one for a one-off pass.
    pub transport_memory: Arc<memory::TransportMemory>,
    /// The edge's download engine, shared with read-through (`edge run`);
    /// a pass without one starts its own.
    pub engine: Option<Engine>,
    /// `--max-store` and `--min-free`; override `edge.toml` (issue 13).
    pub quota: crate::quota::QuotaOverrides,
    /// The edge's usage counters (issue 15), shared with the classroom
    /// (`edge run`); a pass without them counts into its own.
    pub usage: Option<Arc<crate::report::Usage>>,
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
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] engine::EngineStopped),
    #[error(transparent)]
    Quota(#[from] crate::quota::QuotaError),
    #[error("opening the teachers' uploads")]
    Teachers(#[source] Box<crate::teachers::uploads::UploadError>),
    #[error("refused {which}; nothing was stored")]
    BadCatalog {
        /// Which catalog: the one the origin offered, or the one held locally.
        which: &'static str,
        #[source]
        source: catalog::sign::CatalogError,
    },
    #[error(
        "refused the origin's catalog: its sequence {offered} is lower than the {held} this edge holds (a rollback); nothing was stored. If the origin was restored from a backup, run `shanlu origin renew --min-sequence {}` on it",
        .held + 1
    )]
    Rollback { offered: u64, held: u64 },
    #[error(
        "refused the origin's catalog: it is signed by a key retired by rotation (key root version {version}; this edge has accepted version {accepted}); nothing was stored. Only the origin's current key can sign"
    )]
    RetiredKey { version: u64, accepted: u64 },
    #[error("the origin has no catalog yet; publish a course on the origin first")]
    NoCatalog,
    #[error(
        "the origin does not hold object {hash} that its catalog names; ask the administrator to run `shanlu verify` on the origin"
    )]
    MissingObject { hash: Hash },
    #[error("object {hash} from the origin was refused")]
    BadObject {
        hash: Hash,
        #[source]
        source: catalog::object::DecodeError,
    },
    #[error(
        "another sync is already running on {path}; let it finish (this one stops without touching anything)"
    )]
    Busy { path: std::path::PathBuf },
    #[error("taking {path}: {cause}")]
    Lock {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "the disk holding the edge's data folder {dir} is full ({detail}); free some space on it, or lower max_store or raise min_free in edge.toml so the edge leaves room for other programs; what was stored is kept and the next pass resumes where this one stopped"
    )]
    DiskFull {
        dir: std::path::PathBuf,
        detail: String,
    },
    #[error("gave up after {attempts} attempts to reach the origin")]
    Unreachable {
        attempts: u32,
        #[source]
        last: ClientError,
    },
}

impl SyncError {
    /// The catalog this edge holds no longer verifies.
    pub fn held_catalog(source: catalog::sign::CatalogError) -> SyncError {
        SyncError::BadCatalog {
            which: "the catalog held locally",
            source,
        }
    }

    /// The catalog the origin offered does not decode or verify.
    fn offered_catalog(source: catalog::sign::CatalogError) -> SyncError {
        SyncError::BadCatalog {
            which: "the origin's catalog",
            source,
        }
    }
}

/// An error and every cause under it, as one line (`a: b: c`), for the
/// sync report that the status page and `/api/v1/status` show.
pub use catalog::format::error_chain;

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
    let usage = (options.usage.clone()).unwrap_or_else(|| Arc::new(crate::report::Usage::new(dir)));
    let mut link = None;
    let mut early = None;
    let result = run(
        &config,
        &store,
        progress,
        options,
        &mut report,
        (&mut link, &mut early),
        &usage,
    )
    .await;
    if let Some(early) = early {
        crate::report::finish_early(early).await;
    }
    let result = quota::disk_full(dir, result, &report);
    report.finished_at = server::origin::now_secs();
    if let Err(err) = &result {
        report.error = Some(error_chain(err));
        report.complete = false;
    }
    // Issue 15: every pass, reached or not, makes a report and sends the
    // queue (not once the sync window has closed: the next pass will).
    let client = (link.as_ref())
        .filter(|_| !options.stop.is_cancelled())
        .map(|link: &Link| &link.client);
    crate::report::after_pass(dir, &config, &store, &usage, &report, client).await;
    // Issue 17: teachers' lessons proposed to the bureau go up the same way.
    if let Some(client) = client {
        crate::teachers::propose::send(&store, client, dir, &options.stop).await;
    }
    if let Some(link) = link {
        if link.client.origin_revision < server::protocol::REVISION_BUREAU {
            let status = serde_json::json!({
                "edge": link.client.edge_name,
                "sequence": report.sequence,
                "files_held": report.files_held,
                "files_missing": report.files_missing,
            });
            let _ = link.client.report_status(status.to_string()).await;
        }
        link.client.close().await;
    }
    // Last, so a pass seen ended (status, `edge run`'s metrics) is wholly over.
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
    (slot, early): (
        &mut Option<Link>,
        &mut Option<tokio::task::JoinHandle<crate::report::Sent>>,
    ),
    usage: &Arc<crate::report::Usage>,
) -> Result<(), SyncError> {
    let key = config.origin_key;
    let bucket = report
        .max_rate
        .map(|rate| Arc::new(TokenBucket::new(rate.bytes_per_second())));
    if let Some(rate) = report.max_rate {
        info!(%rate, "bandwidth cap");
    }
    let transport = options.transport.unwrap_or(config.transport);
    let peers = chunks::warm_peers(config);

    // 1. The catalog, asked with the hello: with it come the metadata
    // objects it adds (issue 12).
    let held = accept::held(store, &key)?;
    let held_sequence = held.as_ref().map(|c| c.sequence);
    let ask = SinceAsk {
        have: held_sequence,
        courses: Arc::new(
            held.iter()
                .flat_map(|c| c.courses.values().map(|e| e.hash))
                .collect(),
        ),
    };
    let (link, first) = Link::connect_asking(
        config,
        bucket,
        transport,
        options.transport_memory.clone(),
        &ask,
    )
    .await?;
    let link = slot.insert(link);
    info!(
        transport = link.client.transport_name(),
        origin = %link.client.addr(),
        "connected to the origin"
    );
    // Issue 15: reports left from earlier passes go up while this one runs.
    *early = Some(crate::report::send_early(usage.dir(), &link.client));
    let (offered, prefetched) = link
        .retry_after(Some(first), |client| {
            let ask = ask.clone();
            async move { client.catalog_since(ask.have, &ask.courses).await }
        })
        .await?;
    let (catalog, new_signed) = match offered {
        Some(bytes) => {
            let accepted = accept::offered(store, &key, &bytes, held_sequence)?;
            (accepted.catalog.clone(), Some(accepted))
        }
        None => (held.clone().ok_or(SyncError::NoCatalog)?, None),
    };
    report.expired = accept::expiry_warning(&catalog, server::origin::now_secs());
    report.sequence = catalog.sequence;
    let subscribed = |id: &str| config.subscribe.includes(id);
    // The files of the catalog held until now, by place, for deltas.
    let mut previous: HashMap<String, FileManifest> = HashMap::new();
    // Only a new catalog can replace files; otherwise this walk would find nothing to use.
    if let (Some(held), Some(_)) = (&held, &new_signed) {
        for job in file_jobs(held, subscribed, &**store)? {
            if store.has_blob(&job.manifest.blob)? {
                previous.insert(job.label, job.manifest);
            }
        }
    }

    // 2. Metadata, level by level.
    fetch_metadata(link, store, &catalog, prefetched, report).await?;
    if let Some(accepted) = new_signed {
        accept::put_in_force(store, &accepted)?;
        report.catalog_updated = true;
        info!(sequence = catalog.sequence, "new catalog in force");
    }

    // 3. Files of subscribed courses.
    let jobs = file_jobs(&catalog, subscribed, &**store)?;
    let all_blobs: Vec<Hash> = jobs.iter().map(|job| job.manifest.blob).collect();
    let missing = missing_blobs(store, &all_blobs).await?;
    let pinned = quota::pinned(&jobs, &config.subscribe);
    let mut todo = todo_jobs(jobs, &missing.blobs, previous);
    // The plan before fetching (issue 13): evict cached files to make room,
    // or fetch in priority order what fits.
    let limits = quota::Limits::of(config, options.quota);
    let mut quota_report = report.quota.take().unwrap_or_default();
    let fetch =
        quota::before_fetch(store, &catalog, limits, pinned, &todo, &mut quota_report).await?;
    report.quota = Some(quota_report.clone());
    todo.retain(|job| fetch.contains(&job.manifest.blob));
    for job in &mut todo {
        if job
            .previous
            .as_ref()
            .is_some_and(|old| !matches!(store.has_blob(&old.blob), Ok(true)))
        {
            job.previous = None;
        }
    }
    progress.set_length(todo.iter().map(|job| job.manifest.size).sum());
    progress.set_message(format!("{} file(s)", todo.len()));
    let engine = match &options.engine {
        Some(engine) => engine.clone(),
        None => Engine::start(store.clone()),
    };
    let failed_blobs =
        fetch_files(&engine, link, peers, todo, progress, &options.stop, report).await;
    let saved = std::mem::take(&mut report.saved_by_file);
    crate::report::usage::count_saved(usage, &catalog, &**store, saved)?;
    let failed_blobs = failed_blobs?;
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
    quota::after_pass(store, &catalog, &mut quota_report).await?;
    report.quota = Some(quota_report);
    if report.stopped_at_window_end {
        info!(
            missing = report.files_missing,
            "the sync window closed; the pass stopped early"
        );
    }
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
        SyncError::Store(StoreError::stopped(
            "checking which files are held",
            Some(Box::new(err)),
        ))
    })?
}

/// Holds `DIR/sync.lock` for the pass: two syncs of one edge would fetch the
/// same chunks into the same partial files.
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File, SyncError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::sign::CatalogError;

    /// Issue 12: a refused catalog keeps why as its `source()`, and the sync
    /// report (what the status page shows) says the whole chain.
    #[test]
    fn issue_12_a_refused_catalog_keeps_its_cause_and_the_report_names_it() {
        let err = SyncError::offered_catalog(CatalogError::BadSignature { key: "ab12".into() });
        let source = std::error::Error::source(&err).expect("the cause is kept");
        assert!(source.to_string().contains("does not verify"), "{source}");
        assert_eq!(
            error_chain(&err),
            "refused the origin's catalog; nothing was stored: \
             catalog signature does not verify against the pinned origin key ab12"
        );
        let held = SyncError::held_catalog(CatalogError::TrailingBytes { extra: 3 });
        assert!(error_chain(&held).starts_with("refused the catalog held locally"));
        assert!(
            error_chain(&held).ends_with("3 bytes after its end"),
            "{}",
            error_chain(&held)
        );
    }
}
