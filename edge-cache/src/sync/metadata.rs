//! Fetching the metadata objects a new catalog names.

use super::link::Link;
use super::{SyncError, SyncReport};
use catalog::{Catalog, Hash, Object, Store};
use std::collections::HashSet;
use std::sync::Arc;

/// Fetches courses, then lessons, then manifests the store lacks.
pub(super) async fn fetch_metadata(
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

pub(super) async fn fetch_objects(
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
