//! The sync plan: which blobs are missing, the file jobs of a pass, and the
//! delta bases a changed file can be rebuilt from.

use super::SyncError;
use crate::config::EdgeConfig;
use catalog::store::StoreError;
use catalog::{Catalog, FileManifest, Hash, Store};
use server::protocol::MAX_BASES;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One file to assemble.
#[derive(Clone)]
pub(super) struct FileJob {
    pub(super) label: String,
    pub(super) manifest_hash: Hash,
    pub(super) manifest: FileManifest,
    /// The previous version of this file, held locally: changed chunks can
    /// travel as deltas against its chunks.
    pub(super) previous: Option<FileManifest>,
}

/// What a pass must fetch.
#[derive(Default)]
pub(super) struct Missing {
    /// Blobs not held with their verified file in place.
    pub(super) blobs: HashSet<Hash>,
    /// Those of them in quarantine: held once, found damaged or gone.
    pub(super) repairs: HashSet<Hash>,
}

/// Which of `blobs` are not held with their verified file in place. The index
/// alone is not enough (a file can be deleted or changed behind its back): each
/// held blob's file is opened and `fstat`ed, and only one whose identity
/// changed is re-hashed; one gone or bad is quarantined, so it counts as a
/// repair. On the blocking pool.
pub(super) async fn missing_blobs(
    store: &Arc<Store>,
    blobs: &[Hash],
) -> Result<Missing, SyncError> {
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

/// Every file of every subscribed course, in course and lesson order.
pub(super) fn file_jobs(
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

/// For each missing chunk of `new`, the chunks of the `old` version it most
/// likely replaces: found by aligning on the nearest unchanged chunk before it,
/// so an insertion that shifts the rest of the file still finds its old bytes.
pub(super) fn delta_bases(
    new: &FileManifest,
    old: &FileManifest,
    missing: &[usize],
) -> Vec<Vec<Hash>> {
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
