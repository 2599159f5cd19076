//! Room for a read-through file (issue 13): before a file the edge does not
//! hold is fetched for a reader, the quota makes room the way a pass does —
//! evicting cached blobs least recently opened first, never a pinned one
//! nor one a reader has open — and refuses the file when it cannot fit at
//! all, instead of filling the disk.

use std::collections::HashSet;

use catalog::{FileManifest, Hash, Store};
use tracing::info;

use super::plan::{self, PlanInput, Wanted};
use super::{Limits, QuotaError, collect, readers};
use crate::config::EdgeConfig;
use crate::sync::plan::file_jobs;

/// A read-through file that cannot fit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this file ({size} bytes) does not fit on this edge: {room} bytes are free within max_store and min_free even after evicting every cached file; ask the administrator to raise max_store or free disk space"
)]
pub struct NoRoom {
    pub size: u64,
    pub room: u64,
}

/// Makes room for `manifest`'s blob, evicting cached blobs if it must.
/// `Ok(Err(NoRoom))` when it cannot fit. Blocking: call it on the blocking pool.
pub fn make_room(
    store: &Store,
    config: &EdgeConfig,
    overrides: super::QuotaOverrides,
    manifest: &FileManifest,
) -> Result<Result<(), NoRoom>, QuotaError> {
    let blob = manifest.blob;
    if store.has_blob(&blob)? {
        return Ok(Ok(()));
    }
    let super::Measured {
        fs_size,
        free,
        held,
        partials,
        used,
    } = super::measure(store)?;
    if partials.iter().any(|(b, _)| *b == blob) {
        // Held, or under way: its room was counted already.
        return Ok(Ok(()));
    }
    let limits = Limits::of(config, overrides);
    let max_store = limits.max_store.map(|l| l.bytes(fs_size));
    let room = plan::room(used, max_store, free, limits.min_free.0);
    if manifest.size <= room {
        return Ok(Ok(()));
    }
    // Needs eviction: which held blobs are pinned (never evicted)?
    let Some(signed) = store.signed_catalog()? else {
        return Ok(Err(NoRoom {
            size: manifest.size,
            room,
        }));
    };
    let catalog = signed
        .verify(&config.origin_key)
        .map_err(|cause| QuotaError::HeldCatalog {
            cause: Box::new(cause),
        })?;
    let held_set: HashSet<Hash> = held.iter().map(|b| b.blob).collect();
    let jobs = file_jobs(&catalog, |id| config.subscribe.includes(id), store).map_err(|cause| {
        QuotaError::Plan {
            cause: Box::new(cause),
        }
    })?;
    // Pinned blobs not held are the next pass's to plan; here only the
    // held ones matter (they must stay), and the file asked for.
    let mut pinned: Vec<Wanted> = jobs
        .iter()
        .filter(|job| held_set.contains(&job.manifest.blob))
        .map(|job| Wanted {
            blob: job.manifest.blob,
            size: job.manifest.size,
            label: job.label.clone(),
        })
        .collect();
    pinned.push(Wanted {
        blob,
        size: manifest.size,
        label: format!("read-through {}", blob.fmt_short()),
    });
    readers::flush(store)?;
    let input = PlanInput {
        pinned,
        held: store.held_blobs()?,
        partials: partials.iter().map(|(b, _)| *b).collect(),
        open: readers::open_blobs(),
        delta_bases: HashSet::new(),
        used,
        max_store,
        free,
        min_free: limits.min_free.0,
    };
    let plan = plan::plan(&input);
    if !plan.fetch.contains(&blob) {
        return Ok(Err(NoRoom {
            size: manifest.size,
            room: room + plan.evict_bytes,
        }));
    }
    if !plan.evict.is_empty() {
        let evict: HashSet<Hash> = plan.evict.iter().copied().collect();
        collect(store, &catalog, &evict)?;
        info!(
            files = plan.evict.len(),
            bytes = plan.evict_bytes,
            %blob,
            "evicted cached files to make room for a read-through file"
        );
    }
    Ok(Ok(()))
}
