//! The edge's disk quota and garbage collection (issue 13).
//!
//! - [`limits`]: `max_store` (a size or a share of the disk) and `min_free`.
//! - [`plan`]: tiers, room, eviction order and what to fetch, as a pure function.
//! - [`room`]: room for a read-through file, or a clear refusal.
//! - [`readers`]: blobs the classroom has open (never evicted) and the
//!   batched record of when blobs were opened (the eviction order).
//!
//! A pass calls [`before_fetch`] once the catalog in force and its metadata
//! are held: it measures the store (bytes of blob files plus partial files,
//! from the index; the redb index and metadata are not counted), plans, and
//! evicts cached blobs by a collection when the pinned files need the room.
//! After fetching, [`after_pass`] collects what the catalog in force no
//! longer reaches (old course and lesson objects, partial files of
//! superseded versions) and measures the store again.
//!
//! Evicting is collecting: [`catalog::Store::collect`] keeps the objects
//! the catalog in force reaches, every held blob but the evicted ones, and
//! the blobs (and partial files) the catalog in force names. Its crash
//! safety and `collect.lock` are the store's.

pub mod limits;
pub mod plan;
pub mod readers;
pub mod room;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use catalog::store::{CollectReport, Reachable, StoreError, reachable};
use catalog::{Catalog, Hash, Store};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::config::{EdgeConfig, Subscription};
use crate::sync::plan::FileJob;
use limits::{DEFAULT_MIN_FREE, Size, StoreLimit};
use plan::{NotHeld, Plan, PlanInput, Wanted};

/// Flags that override `max_store` and `min_free` in `edge.toml`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuotaOverrides {
    pub max_store: Option<StoreLimit>,
    pub min_free: Option<Size>,
}

/// The limits a pass keeps to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_store: Option<StoreLimit>,
    pub min_free: Size,
}

impl Limits {
    pub fn of(config: &EdgeConfig, overrides: QuotaOverrides) -> Limits {
        Limits {
            max_store: overrides.max_store.or(config.max_store),
            min_free: overrides
                .min_free
                .or(config.min_free)
                .unwrap_or(DEFAULT_MIN_FREE),
        }
    }
}

/// What the quota did in a pass: shown by `edge sync`, `edge status`, the
/// status page and `/api/v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReport {
    /// `max_store` in bytes, if set.
    pub max_store: Option<u64>,
    pub min_free: u64,
    /// Bytes of blob and partial files before the pass.
    pub used_before: u64,
    /// Bytes of subscribed files not held before the pass.
    pub need: u64,
    /// The room before eviction: min(max_store − used, free − min_free).
    pub room: u64,
    /// Cached files evicted to make room.
    pub evicted_files: u64,
    pub evicted_bytes: u64,
    /// Subscribed lessons left out for lack of room (bounded list).
    pub not_held: Vec<NotHeld>,
    pub not_held_files: u64,
    pub not_held_bytes: u64,
    /// Bytes of blob and partial files after the pass.
    pub used_after: u64,
    /// The collection after the pass.
    pub collection: Option<CollectionSummary>,
}

impl QuotaReport {
    /// One line for people when something did not fit, naming what to do.
    pub fn shortfall(&self) -> Option<String> {
        if self.not_held_files == 0 {
            return None;
        }
        let lessons: Vec<String> = self
            .not_held
            .iter()
            .map(|l| format!("{} ({} file(s), {} bytes)", l.lesson, l.files, l.bytes))
            .collect();
        Some(format!(
            "not enough room: {} subscribed file(s) needing {} bytes are not held: {}{}; raise max_store, free disk space or subscribe to fewer courses",
            self.not_held_files,
            self.not_held_bytes,
            lessons.join(", "),
            if (self.not_held.len() as u64) < self.not_held_files && !lessons.is_empty() {
                " …"
            } else {
                ""
            }
        ))
    }
}

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSummary {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub objects: u64,
    pub partials: u64,
    pub millis: u64,
}

impl CollectionSummary {
    fn add(&mut self, report: &CollectReport) {
        self.blobs += report.blobs;
        self.blob_bytes += report.blob_bytes;
        self.objects += report.objects;
        self.partials += report.partials;
        self.millis += report.elapsed.as_millis() as u64;
    }
}

/// Why the quota could not plan or collect.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(
        "cannot tell how much room the filesystem holding {path} has; check that the data folder is mounted"
    )]
    Filesystem {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("collecting the edge's store {path} (files no longer kept)")]
    Collect {
        path: PathBuf,
        #[source]
        cause: Box<StoreError>,
    },
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error("the catalog held locally does not verify; run `shanlu edge sync` to fetch it again")]
    HeldCatalog {
        #[source]
        cause: Box<catalog::sign::CatalogError>,
    },
    #[error("listing the subscribed files")]
    Plan {
        #[source]
        cause: Box<crate::sync::plan::PlanError>,
    },
    #[error("the quota's worker stopped before it finished")]
    Stopped,
}

impl From<StoreError> for QuotaError {
    fn from(err: StoreError) -> QuotaError {
        QuotaError::Store(Box::new(err))
    }
}

/// Blob and partial bytes, from the index (files are their blobs' size).
fn used(store: &Store) -> Result<u64, StoreError> {
    let blobs: u64 = store.held_blobs()?.iter().map(|b| b.size).sum();
    let partials: u64 = store.partial_blobs()?.iter().map(|(_, s)| s).sum();
    Ok(blobs + partials)
}

/// The store and its filesystem, as a plan needs them.
pub(crate) struct Measured {
    /// Size of the filesystem holding the store, and its free bytes.
    pub fs_size: u64,
    pub free: u64,
    pub held: Vec<catalog::store::HeldBlob>,
    /// Partial files: blob and size.
    pub partials: Vec<(Hash, u64)>,
    /// Bytes of blob and partial files.
    pub used: u64,
}

/// Measures the store (from the index) and its filesystem.
pub(crate) fn measure(store: &Store) -> Result<Measured, QuotaError> {
    let root = store.root();
    let (fs_size, free) = limits::filesystem(root).map_err(|cause| QuotaError::Filesystem {
        path: root.to_owned(),
        cause,
    })?;
    let held = store.held_blobs()?;
    let partials = store.partial_blobs()?;
    let used =
        held.iter().map(|b| b.size).sum::<u64>() + partials.iter().map(|(_, s)| s).sum::<u64>();
    Ok(Measured {
        fs_size,
        free,
        held,
        partials,
        used,
    })
}

/// Pinned files in priority order: subscription order, then course order.
pub fn pinned(jobs: &[FileJob], subscription: &Subscription) -> Vec<Wanted> {
    let rank = |label: &str| {
        let course = label.split('/').next().unwrap_or(label);
        match subscription {
            Subscription::All => 0,
            Subscription::Courses(ids) => ids.iter().position(|id| id == course).unwrap_or(0),
        }
    };
    let mut wanted: Vec<(usize, Wanted)> = jobs
        .iter()
        .map(|job| {
            (
                rank(&job.label),
                Wanted {
                    blob: job.manifest.blob,
                    size: job.manifest.size,
                    label: job.label.clone(),
                },
            )
        })
        .collect();
    wanted.sort_by_key(|(rank, _)| *rank);
    wanted.into_iter().map(|(_, w)| w).collect()
}

/// Before a pass fetches: plans against the room, evicts what the plan
/// says, and returns the blobs to fetch. On the blocking pool.
pub async fn before_fetch(
    store: &Arc<Store>,
    catalog: &Catalog,
    limits: Limits,
    pinned: Vec<Wanted>,
    todo: &[FileJob],
    report: &mut QuotaReport,
) -> Result<HashSet<Hash>, QuotaError> {
    let delta_bases: HashSet<Hash> = todo
        .iter()
        .filter_map(|job| job.previous.as_ref().map(|old| old.blob))
        .collect();
    let (store, catalog) = (store.clone(), catalog.clone());
    let (plan, out) = tokio::task::spawn_blocking(move || {
        let mut out = QuotaReport::default();
        let plan = plan_and_evict(&store, &catalog, limits, pinned, delta_bases, &mut out)?;
        Ok::<_, QuotaError>((plan, out))
    })
    .await
    .map_err(|_| QuotaError::Stopped)??;
    *report = out;
    Ok(plan.fetch)
}

fn plan_and_evict(
    store: &Store,
    catalog: &Catalog,
    limits: Limits,
    pinned: Vec<Wanted>,
    delta_bases: HashSet<Hash>,
    report: &mut QuotaReport,
) -> Result<Plan, QuotaError> {
    readers::flush(store)?;
    let Measured {
        fs_size,
        free,
        held,
        partials,
        used,
    } = measure(store)?;
    let input = PlanInput {
        pinned,
        held,
        partials: partials.iter().map(|(b, _)| *b).collect(),
        // Blobs a reader has open and the school's own lessons' files
        // (pinned: never evicted, issue 17).
        open: {
            let mut keep = readers::open_blobs();
            keep.extend(crate::teachers::shelf::pinned_blobs(store).map_err(|err| {
                QuotaError::Collect {
                    path: store.root().to_owned(),
                    cause: Box::new(match err {
                        crate::teachers::shelf::ShelfError::Store(store_err) => store_err,
                        other => StoreError::io(
                            "reading the school's lessons in",
                            store.root(),
                            std::io::Error::other(other.to_string()),
                        ),
                    }),
                }
            })?);
            // And the files the edges below proposed, while they wait.
            keep.extend(
                crate::downstream::waiting_below(store)
                    .map_err(|cause| QuotaError::Collect {
                        path: store.root().to_owned(),
                        cause: Box::new(cause),
                    })?
                    .1,
            );
            keep
        },
        delta_bases,
        used,
        max_store: limits.max_store.map(|l| l.bytes(fs_size)),
        free,
        min_free: limits.min_free.0,
    };
    let plan = plan::plan(&input);
    *report = QuotaReport {
        max_store: input.max_store,
        min_free: input.min_free,
        used_before: used,
        need: plan.need,
        room: plan.room,
        evicted_files: plan.evict.len() as u64,
        evicted_bytes: plan.evict_bytes,
        not_held: plan.not_held.clone(),
        not_held_files: plan.not_held_files,
        not_held_bytes: plan.not_held_bytes,
        ..QuotaReport::default()
    };
    if !plan.evict.is_empty() {
        let evict: HashSet<Hash> = plan.evict.iter().copied().collect();
        let collected = collect(store, catalog, &evict)?;
        report
            .collection
            .get_or_insert_with(Default::default)
            .add(&collected);
        info!(
            files = plan.evict.len(),
            bytes = plan.evict_bytes,
            need = plan.need,
            "evicted cached files to make room"
        );
    }
    Ok(plan)
}

/// Collects everything the catalog in force does not reach, keeping every
/// held blob but `evict`.
fn collect(
    store: &Store,
    catalog: &Catalog,
    evict: &HashSet<Hash>,
) -> Result<CollectReport, QuotaError> {
    // The school's own lessons (issue 17) are kept as well; none is added
    // between this walk and the deletions.
    let _shelf = crate::lock(&crate::teachers::shelf::LOCK);
    let mut roots = vec![(Hash::of(b"edge catalog in force"), catalog.clone())];
    if let Some(local) = crate::teachers::shelf::local_catalog(store)? {
        roots.push(local);
    }
    let walk = reachable(
        &roots,
        |hash: &Hash| store.object(hash),
        |hash| StoreError::MissingObject { hash },
    )?;
    // The proposals of edges below a county edge (issue 17).
    let (below_objects, below_blobs) = crate::downstream::waiting_below(store)?;
    let mut objects = walk.objects;
    objects.extend(below_objects);
    let mut blobs = walk.blobs;
    blobs.extend(below_blobs);
    blobs.extend(store.held_blobs()?.into_iter().map(|b| b.blob));
    blobs.retain(|blob| !evict.contains(blob));
    let keep = Reachable { objects, blobs };
    store
        .collect(&keep, catalog.sequence, false, &mut |_| {})
        .map_err(|cause| QuotaError::Collect {
            path: store.root().to_owned(),
            cause: Box::new(cause),
        })
}

/// After a pass: collects what the catalog in force no longer reaches and
/// measures the store. On the blocking pool.
pub async fn after_pass(
    store: &Arc<Store>,
    catalog: &Catalog,
    report: &mut QuotaReport,
) -> Result<(), QuotaError> {
    let (store, catalog) = (store.clone(), catalog.clone());
    let (collected, used_after) = tokio::task::spawn_blocking(move || {
        let collected = collect(&store, &catalog, &HashSet::new())?;
        Ok::<_, QuotaError>((collected, used(&store)?))
    })
    .await
    .map_err(|_| QuotaError::Stopped)??;
    report
        .collection
        .get_or_insert_with(Default::default)
        .add(&collected);
    report.used_after = used_after;
    Ok(())
}

/// Below this many free bytes, a failed pass is taken for a full disk.
const NEARLY_FULL: u64 = 1 << 20;

/// Whether a message says a disk is full (an `ENOSPC` anywhere in it).
/// Whether an error's text says the disk is full (a store error's remedy,
/// or the operating system's words).
pub(crate) fn says_disk_full(text: &str) -> bool {
    text.contains("disk holding it is full") || text.contains("No space left on device")
}

/// A pass that failed, or whose files failed, because the disk filled up
/// (another program wrote to it) stops with [`SyncError::DiskFull`], which
/// names the data folder and what to do. Only chunks made durable were
/// recorded, so the next pass resumes.
pub fn disk_full(
    dir: &std::path::Path,
    result: Result<(), crate::sync::SyncError>,
    report: &crate::sync::SyncReport,
) -> Result<(), crate::sync::SyncError> {
    let chain = result
        .as_ref()
        .err()
        .map(|err| crate::sync::error_chain(err));
    // redb reports a write that failed for lack of space as a "previous I/O
    // error" later on: a failed pass on a disk with next to nothing free is
    // one that filled it.
    let nearly_full = || limits::filesystem(dir).is_ok_and(|(_, free)| free < NEARLY_FULL);
    let detail = chain
        .iter()
        .chain(&report.failures)
        .find(|text| says_disk_full(text))
        .cloned()
        .or_else(|| chain.filter(|_| nearly_full()));
    match detail {
        Some(detail) => Err(crate::sync::SyncError::DiskFull {
            dir: dir.to_owned(),
            detail,
        }),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(label: &str, n: u8) -> FileJob {
        let mut manifest = catalog::testdata::sample_manifest();
        manifest.blob = Hash::of(&[n]);
        FileJob {
            label: label.to_owned(),
            manifest_hash: Hash::of(&[n, n]),
            manifest,
            previous: None,
        }
    }

    /// Issue 13: pinned files come in subscription order, then in the
    /// course's own order.
    #[test]
    fn issue_13_pinned_files_follow_the_subscription_order() {
        let jobs = vec![
            job("art/01/a", 1),
            job("math/01/b", 2),
            job("art/02/c", 3),
            job("math/02/d", 4),
        ];
        let order = |subscription: &Subscription| -> Vec<String> {
            pinned(&jobs, subscription)
                .into_iter()
                .map(|w| w.label)
                .collect()
        };
        assert_eq!(
            order(&Subscription::Courses(vec!["math".into(), "art".into()])),
            ["math/01/b", "math/02/d", "art/01/a", "art/02/c"]
        );
        assert_eq!(
            order(&Subscription::All),
            ["art/01/a", "math/01/b", "art/02/c", "math/02/d"]
        );
    }

    /// Issue 13: the shortfall line names the lessons, the bytes and what to do.
    #[test]
    fn issue_13_the_shortfall_says_what_is_not_held_and_what_to_do() {
        let mut report = QuotaReport::default();
        assert_eq!(report.shortfall(), None);
        report.not_held = vec![NotHeld {
            lesson: "math/02".into(),
            files: 2,
            bytes: 1200,
        }];
        report.not_held_files = 3;
        report.not_held_bytes = 1500;
        let line = report.shortfall().expect("a line");
        assert!(
            line.contains("3 subscribed file(s) needing 1500 bytes"),
            "{line}"
        );
        assert!(line.contains("math/02 (2 file(s), 1200 bytes) …"), "{line}");
        assert!(line.contains("raise max_store"), "{line}");
    }
}
