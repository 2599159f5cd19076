//! `shanlu edge import`: a bundle into an edge, verified as the network is.
//!
//! 1. The index: format, the origin key it was made for (must be the pinned
//!    one), and the signed catalog, checked by [`crate::sync::accept`]
//!    (pinned key, key roots, never an older sequence; an equal one is fine).
//!    A refusal here leaves the edge untouched.
//! 2. The packs holding metadata: every object is hashed and decoded (on
//!    the reading thread, `bundle/read.rs`) before it is stored. Once the
//!    catalog's metadata is all held, the catalog is put in force.
//! 3. The chunk packs, read and checked on the reading thread while this
//!    one writes: every chunk is hashed once ([`VerifiedChunkBuf`]) and
//!    written into the partial blobs of the subscribed courses' files that
//!    are missing; a file moves into the store only whole, with its BLAKE3
//!    the manifest's (taken as its chunks went by in order, `bundle/order.rs`,
//!    or read back).
//! 4. Files not completed by the bundle are topped up from chunks held in
//!    other blobs (an update) and finished when whole.
//!
//! A pack with a record that fails its check, or not the index's size
//! (damaged stick, pulled mid-copy), is reported and skipped; the records
//! before the damage were each verified and are kept, the other packs are
//! still used. Each pack all of whose records were checked and used is
//! recorded by the index's BLAKE3 in the store's meta ([`IMPORTED`]) after
//! its data is durable, so a rerun does not read it. Packs are not hashed
//! whole: see `bundle/read.rs` for why every byte is still checked.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use catalog::store::{StoreError, VerifiedChunkBuf};
use catalog::{Hash, Store};
use indicatif::ProgressBar;
use serde::Serialize;
use tracing::{info, warn};

use super::assemble::Files;
use super::read::{Phase, Writer, read_packs};
use super::{BundleIndex, FORMAT, INDEX, MAX_INDEX_BYTES, MAX_PACKS, PackEntry, bundle_dir};
use crate::config::{self, EdgeConfig};
use crate::quota;
use crate::sync::plan::{FileJob, PlanError, file_jobs, metadata_wanted};
use crate::sync::{SyncError, accept};

/// The store meta key listing the packs (by BLAKE3, 32 bytes each) fully imported.
pub const IMPORTED: &str = "edge.bundle.imported";
/// Packs remembered in [`IMPORTED`]: the newest this many.
const MAX_REMEMBERED: usize = 4096;
/// Objects stored per index commit.
const OBJECT_BATCH: usize = 1024;

/// A pack that was not used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedPack {
    pub name: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub sequence: u64,
    pub catalog_updated: bool,
    pub objects_added: u64,
    pub chunks_written: u64,
    pub bytes_written: u64,
    /// Bytes copied from blobs the edge already held.
    pub bytes_reused: u64,
    pub files_completed: u64,
    pub files_held: u64,
    pub files_missing: u64,
    pub packs: u64,
    /// Packs read and used now.
    pub packs_read: u64,
    /// Packs a previous import used fully: not read again.
    pub packs_already_imported: u64,
    pub packs_skipped: Vec<SkippedPack>,
    /// Everything subscribed is held and verified.
    pub complete: bool,
    pub seconds: f64,
    /// The quota's plan (issue 13) before the files were written: what it
    /// evicted to make room and what did not fit (left for later).
    pub quota: Option<crate::quota::QuotaReport>,
    /// Queued reports the bundle's receipts acknowledged, dropped (issue 15).
    pub reports_acknowledged: u64,
    /// The bundle's answers to the teachers' proposals (issue 17).
    pub proposals: super::proposals::Heard,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Sync(Box<SyncError>),
    #[error(transparent)]
    Quota(#[from] crate::quota::QuotaError),
    #[error(
        "{folder} has no {INDEX}: the bundle is incomplete (was `shanlu bundle create` interrupted or the copy cut short?); make it again, nothing was imported"
    )]
    NoIndex { folder: PathBuf },
    #[error("{path} is not a bundle index this version reads ({detail}); nothing was imported")]
    BadIndex { path: PathBuf, detail: String },
    #[error(
        "the bundle in {folder} was made for origin key {bundle_key}, but this edge pins {pinned}; use a bundle from this edge's origin (or from an edge of it); nothing was imported"
    )]
    OtherOrigin {
        folder: PathBuf,
        bundle_key: String,
        pinned: String,
    },
    #[error("refused the bundle in {folder}; the edge is unchanged")]
    Refused {
        folder: PathBuf,
        #[source]
        source: Box<SyncError>,
    },
    #[error(
        "the bundle in {folder} lacks {count} metadata object(s) its catalog names (first {first}){skipped}; the catalog was not put in force. Copy the bundle again and rerun the import: what was verified is kept"
    )]
    MissingMetadata {
        folder: PathBuf,
        count: usize,
        first: Hash,
        skipped: String,
    },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<SyncError> for ImportError {
    fn from(err: SyncError) -> ImportError {
        ImportError::Sync(Box::new(err))
    }
}

/// Imports the bundle on `stick` into the edge in `data`; `progress` counts pack bytes.
pub fn import(
    data: &Path,
    stick: &Path,
    progress: &ProgressBar,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let config = EdgeConfig::load(data)?;
    let _lock = crate::sync::lock(data)?;
    let folder = bundle_dir(stick);
    let index = read_index(&folder)?;
    let key = config.origin_key;
    if index.origin_key != key.to_string() {
        return Err(ImportError::OtherOrigin {
            folder,
            bundle_key: index.origin_key,
            pinned: key.to_string(),
        });
    }
    let catalog_bytes = hex::decode(&index.catalog).map_err(|err| ImportError::BadIndex {
        path: folder.join(INDEX),
        detail: format!("its catalog is not hex: {err}"),
    })?;
    let store = Arc::new(Store::open(config::store_path(data))?);
    let held = accept::held(&store, &key)?;
    let held_sequence = held.as_ref().map(|c| c.sequence);
    let accepted =
        accept::offered(&store, &key, &catalog_bytes, held_sequence).map_err(|source| {
            ImportError::Refused {
                folder: folder.clone(),
                source: Box::new(source),
            }
        })?;
    let catalog = accepted.catalog.clone();
    let mut report = ImportReport {
        sequence: catalog.sequence,
        packs: index.packs.len() as u64,
        ..ImportReport::default()
    };
    let mut imported = remembered(&store)?;
    let todo: Vec<&PackEntry> = index
        .packs
        .iter()
        .filter(|pack| {
            let done = pack
                .blake3
                .parse::<Hash>()
                .is_ok_and(|hash| imported.contains(&hash));
            report.packs_already_imported += u64::from(done);
            !done
        })
        .collect();
    progress.set_length(
        todo.iter()
            .fold(0u64, |sum, pack| sum.saturating_add(pack.size)),
    );

    // 2. Metadata packs.
    let metadata_packs: Vec<&PackEntry> = todo
        .iter()
        .copied()
        .filter(|p| p.catalogs + p.objects > 0)
        .collect();
    let mut writer = Metadata {
        store: &store,
        objects: Vec::new(),
        imported: &mut imported,
        report: &mut report,
    };
    let phase = Phase::Metadata;
    read_packs(
        &folder,
        &metadata_packs,
        &catalog_bytes,
        phase,
        progress,
        &mut writer,
    )?;
    if let Some(first) = metadata_wanted(&catalog, &*store)?.first() {
        return Err(ImportError::MissingMetadata {
            folder,
            count: metadata_wanted(&catalog, &*store)?.len(),
            first: *first,
            skipped: skipped_names(&report),
        });
    }
    if held_sequence != Some(catalog.sequence) {
        accept::put_in_force(&store, &accepted)?;
        report.catalog_updated = true;
        info!(sequence = catalog.sequence, "new catalog in force");
    }

    // 3. Chunk packs, into the missing files of subscribed courses, read on
    // a second thread while this one writes.
    let jobs = file_jobs(&catalog, |id| config.subscribe.includes(id), &*store)?;
    let wanted = within_quota(&config, &store, &catalog, &jobs, &mut report)?;
    let files = Files::new(&store, &jobs, &wanted)?;
    let chunk_packs: Vec<&PackEntry> = todo.iter().copied().filter(|p| p.chunks > 0).collect();
    let phase = Phase::Chunks(files.in_order());
    let mut writer = Chunks {
        store: &store,
        files,
        imported: &mut imported,
        report: &mut report,
    };
    read_packs(
        &folder,
        &chunk_packs,
        &catalog_bytes,
        phase,
        progress,
        &mut writer,
    )?;
    let mut files = writer.files;

    // 4. Top up from chunks held elsewhere, then collect what the catalog
    // no longer reaches (objects a bundle carried beyond it, old files) as
    // a pass does, and count.
    files.top_up(&mut report)?;
    drop(files);
    let mut quota_report = report.quota.take().unwrap_or_default();
    block_on(
        &store,
        quota::after_pass(&store, &catalog, &mut quota_report),
    )?;
    report.quota = Some(quota_report);
    let mut seen = HashSet::new();
    for job in &jobs {
        if seen.insert(job.manifest.blob) {
            if store.has_blob(&job.manifest.blob)? {
                report.files_held += 1;
            } else {
                report.files_missing += 1;
            }
        }
    }
    report.complete = report.files_missing == 0 && report.packs_skipped.is_empty();
    // Issue 15: the origin's receipts for reports this edge's stick carried.
    report.reports_acknowledged = super::receipts::apply(&folder, data, &config.token);
    // Issue 17: the origin's answers to the teachers' proposals.
    report.proposals = super::proposals::apply(&folder, &store, &config.token);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The blobs of `jobs` the edge's quota (`max_store`, `min_free`) has room
/// for, in its priority order, after evicting cached files as a sync pass
/// would; the plan goes into the report.
fn within_quota(
    config: &EdgeConfig,
    store: &Arc<Store>,
    catalog: &catalog::Catalog,
    jobs: &[FileJob],
    report: &mut ImportReport,
) -> Result<HashSet<Hash>, ImportError> {
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for job in jobs {
        if seen.insert(job.manifest.blob) && !store.check_held(&job.manifest.blob)? {
            todo.push(job.clone());
        }
    }
    let pinned = quota::pinned(jobs, &config.subscribe);
    let limits = quota::Limits::of(config, quota::QuotaOverrides::default());
    let mut quota_report = quota::QuotaReport::default();
    let fetch = block_on(
        store,
        quota::before_fetch(store, catalog, limits, pinned, &todo, &mut quota_report),
    )?;
    report.quota = Some(quota_report);
    Ok(fetch)
}

/// Runs the quota's async steps (they use the blocking pool) to the end.
fn block_on<T>(
    store: &Store,
    work: impl std::future::Future<Output = Result<T, quota::QuotaError>>,
) -> Result<T, ImportError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|source| ImportError::Io {
            path: store.root().to_owned(),
            source,
        })?;
    Ok(runtime.block_on(work)?)
}

fn read_index(folder: &Path) -> Result<BundleIndex, ImportError> {
    let path = folder.join(INDEX);
    let bad = |detail: String| ImportError::BadIndex {
        path: path.clone(),
        detail,
    };
    let len = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImportError::NoIndex {
                folder: folder.to_owned(),
            });
        }
        Err(source) => return Err(ImportError::Io { path, source }),
    };
    if len > MAX_INDEX_BYTES {
        return Err(bad(format!("{len} bytes, more than {MAX_INDEX_BYTES}")));
    }
    let text = std::fs::read(&path).map_err(|source| ImportError::Io {
        path: path.clone(),
        source,
    })?;
    let index: BundleIndex = serde_json::from_slice(&text).map_err(|err| bad(err.to_string()))?;
    if index.format != FORMAT {
        return Err(bad(format!(
            "format {}, this shanlu reads {FORMAT}; update shanlu on this edge",
            index.format
        )));
    }
    if index.packs.len() > MAX_PACKS {
        return Err(bad(format!(
            "{} packs, more than {MAX_PACKS}",
            index.packs.len()
        )));
    }
    if let Some(pack) = index
        .packs
        .iter()
        .find(|pack| !super::is_pack_name(&pack.name))
    {
        return Err(bad(format!("a pack named {:?}", pack.name)));
    }
    Ok(index)
}

/// The packs fully imported before, by BLAKE3.
fn remembered(store: &Store) -> Result<Vec<Hash>, StoreError> {
    let bytes = store.meta(IMPORTED)?.unwrap_or_default();
    Ok(bytes
        .chunks_exact(32)
        .map(|hash| {
            let mut bytes = [0u8; 32];
            bytes.copy_from_slice(hash);
            Hash::from_bytes(bytes)
        })
        .collect())
}

/// Records `pack` as fully imported (its data is durable by now).
fn remember(store: &Store, imported: &mut Vec<Hash>, pack: &PackEntry) -> Result<(), StoreError> {
    let Ok(hash) = pack.blake3.parse::<Hash>() else {
        return Ok(());
    };
    imported.push(hash);
    if imported.len() > MAX_REMEMBERED {
        imported.drain(..imported.len() - MAX_REMEMBERED);
    }
    let bytes: Vec<u8> = imported.iter().flat_map(|h| *h.as_bytes()).collect();
    store.set_meta(IMPORTED, &bytes)
}

fn skip(report: &mut ImportReport, pack: &PackEntry, reason: String) {
    warn!(pack = %pack.name, %reason, "pack skipped");
    report.packs_skipped.push(SkippedPack {
        name: pack.name.clone(),
        reason,
    });
}

fn skipped_names(report: &ImportReport) -> String {
    if report.packs_skipped.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = report
        .packs_skipped
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    format!("; skipped: {}", names.join(", "))
}

/// The importing side of the metadata packs: objects stored in batches.
struct Metadata<'a> {
    store: &'a Store,
    objects: Vec<(Hash, Vec<u8>)>,
    imported: &'a mut Vec<Hash>,
    report: &'a mut ImportReport,
}

impl Metadata<'_> {
    fn put(&mut self) -> Result<(), String> {
        self.store
            .put_objects(&self.objects)
            .map_err(|err| catalog::format::error_chain(&err))?;
        self.report.objects_added += self.objects.len() as u64;
        self.objects.clear();
        Ok(())
    }
}

impl Writer for Metadata<'_> {
    fn object(&mut self, hash: Hash, bytes: Vec<u8>) -> Result<(), String> {
        if !self.store.has_object(&hash).map_err(|e| e.to_string())? {
            self.objects.push((hash, bytes));
        }
        if self.objects.len() >= OBJECT_BATCH {
            self.put()?;
        }
        Ok(())
    }

    fn chunk(&mut self, _: &VerifiedChunkBuf, _: Vec<(usize, Hash)>) -> Result<(), String> {
        Ok(())
    }

    fn unused(&mut self, _: &Hash) {}

    fn end(&mut self, pack: &PackEntry, result: Result<(), String>) -> Result<(), ImportError> {
        // Objects checked before the damage are kept: each was hashed.
        let result = result.and(self.put());
        match result {
            Ok(()) if pack.chunks == 0 => {
                self.report.packs_read += 1;
                remember(self.store, self.imported, pack)?;
            }
            Ok(()) => {}
            Err(reason) => skip(self.report, pack, reason),
        }
        Ok(())
    }
}

/// The importing side of the chunk packs: chunks hashed and written into
/// the missing files; a pack is remembered once its data is durable.
struct Chunks<'a, 's> {
    store: &'a Store,
    files: Files<'s>,
    imported: &'a mut Vec<Hash>,
    report: &'a mut ImportReport,
}

impl Writer for Chunks<'_, '_> {
    fn object(&mut self, _: Hash, _: Vec<u8>) -> Result<(), String> {
        Ok(())
    }

    fn chunk(&mut self, chunk: &VerifiedChunkBuf, whole: Vec<(usize, Hash)>) -> Result<(), String> {
        self.files.chunk(&chunk.chunk(), whole)
    }

    fn unused(&mut self, hash: &Hash) {
        self.files.taint(hash);
    }

    fn end(&mut self, pack: &PackEntry, result: Result<(), String>) -> Result<(), ImportError> {
        self.files.close_all(self.report)?;
        match result {
            Ok(()) => {
                self.report.packs_read += 1;
                remember(self.store, self.imported, pack)?;
            }
            Err(reason) => skip(self.report, pack, reason),
        }
        Ok(())
    }
}
