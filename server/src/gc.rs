//! `shanlu origin gc` (issue 13): keep the last N catalogs of the origin's
//! history and everything they reach; remove older catalogs and whatever only
//! they reached. The collection itself (crash-safe) is
//! [`catalog::Store::collect`]; this holds the publish lock so no publish adds
//! blobs that no catalog names yet while it runs, and it is safe beside a
//! running `origin serve` (which only serves the catalog in force).

use std::time::Duration;

use catalog::store::{CollectReport, StoreError, reachable};
use catalog::{Hash, SignedCatalog};
use indicatif::ProgressBar;

use crate::origin::Origin;
use crate::publish::{self, PublishError};

/// How many catalogs `origin gc` keeps unless told otherwise: an edge that
/// last synced a few publishes ago still finds the objects of the catalog it
/// started from.
pub const DEFAULT_KEEP_VERSIONS: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error(
        "--keep-versions 0 would remove the catalog in force and everything in it; keep at least 1 (the default {DEFAULT_KEEP_VERSIONS} lets edges still syncing from an older catalog find its objects)"
    )]
    KeepNothing,
    #[error("the origin {origin} has no catalog yet: nothing to collect")]
    NoCatalog { origin: std::path::PathBuf },
    #[error(
        "catalog {sequence} in the history of {origin} does not verify with the origin's key; nothing was removed (run `shanlu verify {origin}`)"
    )]
    BadHistory {
        origin: std::path::PathBuf,
        sequence: String,
        #[source]
        cause: Box<catalog::sign::CatalogError>,
    },
    #[error("reading the objects the kept catalogs reach in {origin}; nothing was removed")]
    Walk {
        origin: std::path::PathBuf,
        #[source]
        cause: Box<StoreError>,
    },
    #[error("collecting garbage in the store of {origin}")]
    Collect {
        origin: std::path::PathBuf,
        #[source]
        cause: Box<StoreError>,
    },
    /// Waiting for the publish lock failed (boxed: a publish error is large).
    #[error(transparent)]
    Lock(Box<PublishError>),
}

/// What a collection kept and removed.
#[derive(Debug, Clone)]
pub struct GcReport {
    /// Sequences of the catalogs kept, oldest first.
    pub kept: Vec<u64>,
    pub dry_run: bool,
    pub removed: CollectReport,
    /// Bytes of complete blobs before the collection.
    pub blob_bytes_before: u64,
    pub elapsed: Duration,
}

/// Collects garbage in the origin's store, keeping the last `keep_versions`
/// catalogs. `progress` gets the bytes to delete as its length and advances
/// as files go.
pub fn gc(
    origin: &Origin,
    keep_versions: u64,
    dry_run: bool,
    progress: &ProgressBar,
) -> Result<GcReport, GcError> {
    if keep_versions == 0 {
        return Err(GcError::KeepNothing);
    }
    let started = std::time::Instant::now();
    let _lock = publish::lock(origin).map_err(|err| GcError::Lock(Box::new(err)))?;
    let store = origin.store();
    let dir = origin.dir().to_path_buf();
    let walk_error = |cause| GcError::Walk {
        origin: dir.clone(),
        cause: Box::new(cause),
    };
    let history = store.catalog_history().map_err(walk_error)?;
    let skip = history.len().saturating_sub(keep_versions as usize);
    let public = origin.public_key();
    let mut kept = Vec::new();
    for (sequence, bytes) in &history[skip..] {
        let bad = |cause| GcError::BadHistory {
            origin: dir.clone(),
            sequence: sequence.map_or("in force".into(), |s| s.to_string()),
            cause: Box::new(cause),
        };
        let signed = SignedCatalog::decode(bytes).map_err(bad)?;
        let catalog = signed.verify(&public).map_err(bad)?;
        kept.push((signed.catalog_hash(), catalog));
    }
    let Some((_, newest)) = kept.last() else {
        return Err(GcError::NoCatalog { origin: dir });
    };
    // The catalog in force is kept whatever the history says.
    if let Some(signed) = store.signed_catalog().map_err(walk_error)?
        && let Ok(catalog) = signed.verify(&public)
        && catalog.sequence != newest.sequence
    {
        kept.push((signed.catalog_hash(), catalog));
    }
    let keep = reachable(
        &kept,
        |hash: &Hash| store.object(hash),
        |hash| StoreError::MissingObject { hash },
    )
    .map_err(walk_error)?;
    let keep_from = kept.iter().map(|(_, c)| c.sequence).min().unwrap_or(0);
    let blob_bytes_before = store.blob_bytes().map_err(walk_error)?;
    let collect_error = |cause| GcError::Collect {
        origin: dir.clone(),
        cause: Box::new(cause),
    };
    let would = store
        .collect(&keep, keep_from, true, &mut |_| {})
        .map_err(collect_error)?;
    let removed = if dry_run {
        would
    } else {
        progress.set_length(would.blob_bytes);
        store
            .collect(&keep, keep_from, false, &mut |n| progress.inc(n))
            .map_err(collect_error)?
    };
    let mut kept: Vec<u64> = kept.iter().map(|(_, c)| c.sequence).collect();
    kept.sort_unstable();
    Ok(GcReport {
        kept,
        dry_run,
        removed,
        blob_bytes_before,
        elapsed: started.elapsed(),
    })
}
