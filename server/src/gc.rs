//! `shanlu origin gc` (issue 13): keep the last N catalogs of the origin's
//! history and everything they reach; remove older catalogs and whatever only
//! they reached. The collection itself (crash-safe) is
//! [`catalog::Store::collect`]; this holds the publish lock so no publish adds
//! blobs that no catalog names yet while it runs, and it is safe beside a
//! running `origin serve` (which only serves the catalog in force).

use std::collections::HashSet;
use std::time::Duration;

use catalog::object::ChunkRef;
use catalog::store::{CollectReport, Pack, StoreError, reachable};
use catalog::{Catalog, Hash, Object, SignedCatalog, Store};
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
        "catalog {sequence} in the history of {origin} is damaged; nothing was removed (run `shanlu verify {origin}`)"
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
    #[error("reading the review queue of {origin}; nothing was removed")]
    Review {
        origin: std::path::PathBuf,
        #[source]
        cause: Box<crate::review::ReviewError>,
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
    /// Chunks of superseded versions copied into packs (none in a dry run,
    /// which says how many it would copy).
    pub packed_chunks: u64,
    pub pack_bytes: u64,
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
        // A catalog signed before `origin rotate-key` does not verify with
        // today's key; the history is the origin's own record, so it is
        // decoded, and its hash still names it.
        let catalog = match signed.verify(&public) {
            Ok(catalog) => catalog,
            Err(_) => Object::decode(&signed.catalog)
                .and_then(Object::into_catalog)
                .map_err(|err| bad(catalog::sign::CatalogError::Object(err)))?,
        };
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
    let walk = |catalogs: &[(Hash, Catalog)]| {
        reachable(
            catalogs,
            |hash: &Hash| store.object(hash),
            |hash| StoreError::MissingObject { hash },
        )
    };
    let mut keep = walk(&kept).map_err(walk_error)?;
    // The catalog in force: the newest kept (it was added last when the
    // history did not end with it).
    let in_force = kept.iter().max_by_key(|(_, c)| c.sequence).cloned();
    let current = walk(in_force.as_slice()).map_err(walk_error)?;
    let thinning = plan_thinning(store, &keep, &current).map_err(walk_error)?;
    let keep_from = kept.iter().map(|(_, c)| c.sequence).min().unwrap_or(0);
    let blob_bytes_before = store.blob_bytes().map_err(walk_error)?;
    let collect_error = |cause| GcError::Collect {
        origin: dir.clone(),
        cause: Box::new(cause),
    };
    let pack_bytes = thinning.pack_bytes();
    let packs = if dry_run || thinning.to_pack.is_empty() {
        Vec::new()
    } else {
        progress.set_message("packing");
        progress.set_length(pack_bytes);
        let packs = store
            .write_packs(&thinning.to_pack, &mut |n| progress.inc(n))
            .map_err(collect_error)?;
        progress.set_position(0);
        progress.set_message("collecting");
        packs
    };
    thinning.apply(&mut keep, &packs);
    // Lessons waiting in the review queue (issue 17) keep their files
    // whole, and proposals being uploaded what arrived of theirs.
    let (objects, blobs) = crate::review::kept(&dir, store).map_err(|err| GcError::Review {
        origin: dir.clone(),
        cause: Box::new(err),
    })?;
    keep.objects.extend(objects);
    keep.blobs.extend(blobs);
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
        packed_chunks: thinning.to_pack.len() as u64,
        pack_bytes,
        elapsed: started.elapsed(),
    })
}

/// What `gc` does to the superseded versions it keeps: their files go, and
/// the chunks that no file of the catalog in force holds are kept in packs.
#[derive(Debug, Default)]
struct Thinning {
    /// Blobs of kept catalogs that the catalog in force does not name.
    superseded: HashSet<Hash>,
    /// Packs to keep as they are.
    kept_packs: Vec<Pack>,
    /// Chunks to copy into new packs, in a stable order.
    to_pack: Vec<ChunkRef>,
}

impl Thinning {
    fn pack_bytes(&self) -> u64 {
        self.to_pack.iter().map(|c| u64::from(c.len)).sum()
    }

    /// Keeps the files of the catalog in force and the packs, not the
    /// superseded files.
    fn apply(&self, keep: &mut catalog::store::Reachable, new_packs: &[Pack]) {
        keep.blobs.retain(|blob| !self.superseded.contains(blob));
        for pack in self.kept_packs.iter().chain(new_packs) {
            keep.blobs.insert(pack.blob);
            keep.objects.insert(pack.manifest);
        }
    }
}

/// A pack less than this share live is copied afresh (its live chunks into
/// a new pack), so dead chunks do not pile up in packs over the years.
const REPACK_BELOW_LIVE: f64 = 0.5;

/// A superseded file whose own chunks are at least this share of it is kept
/// whole instead of packed.
const KEEP_WHOLE_ABOVE: f64 = 0.9;

/// Works out the [`Thinning`] of `keep`, whose newest catalog reaches `current`.
fn plan_thinning(
    store: &Store,
    keep: &catalog::store::Reachable,
    current: &catalog::store::Reachable,
) -> Result<Thinning, StoreError> {
    let mut current_chunks = HashSet::new();
    let mut old_manifests = Vec::new();
    for hash in &keep.objects {
        let is_current = current.objects.contains(hash);
        if let Some(Object::Manifest(manifest)) = store.object(hash)? {
            if is_current {
                current_chunks.extend(manifest.chunks.iter().map(|c| c.hash));
            } else {
                old_manifests.push(manifest);
            }
        }
    }
    // The chunks only superseded files hold, in file order of a stable walk.
    old_manifests.sort_by_key(|m| m.blob);
    let mut needed: Vec<ChunkRef> = Vec::new();
    let mut needed_set = HashSet::new();
    for manifest in &old_manifests {
        for chunk in &manifest.chunks {
            if !current_chunks.contains(&chunk.hash) && needed_set.insert(chunk.hash) {
                needed.push(*chunk);
            }
        }
    }
    let mut thinning = Thinning {
        superseded: keep.blobs.difference(&current.blobs).copied().collect(),
        ..Thinning::default()
    };
    let mut located = HashSet::new();
    // A superseded file made mostly of chunks only it holds stays whole: a
    // pack of them would be about as large.
    for manifest in &old_manifests {
        let own: u64 = manifest
            .chunks
            .iter()
            .filter(|c| needed_set.contains(&c.hash))
            .map(|c| u64::from(c.len))
            .sum();
        if own as f64 >= manifest.size as f64 * KEEP_WHOLE_ABOVE
            && thinning.superseded.contains(&manifest.blob)
            && store.has_blob(&manifest.blob)?
        {
            thinning.superseded.remove(&manifest.blob);
            located.extend(manifest.chunks.iter().map(|c| c.hash));
        }
    }
    let mut packs = store.packs()?;
    packs.sort_by_key(|p| p.blob);
    for pack in packs {
        let live: u64 = pack
            .chunks
            .iter()
            .filter(|c| needed_set.contains(&c.hash))
            .map(|c| u64::from(c.len))
            .sum();
        if live > 0 && live as f64 >= pack.size as f64 * REPACK_BELOW_LIVE {
            located.extend(pack.chunks.iter().map(|c| c.hash));
            thinning.kept_packs.push(pack);
        }
    }
    thinning.to_pack = needed
        .into_iter()
        .filter(|c| !located.contains(&c.hash))
        .collect();
    Ok(thinning)
}
