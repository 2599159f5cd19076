//! Fetching the metadata objects a new catalog names.

use super::link::Link;
use super::{SyncError, SyncReport};
use catalog::{Catalog, Hash, Object, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Fetches courses, then lessons, then manifests the store lacks. Objects
/// that came with the catalog (`prefetched`, from
/// [`Client::catalog_since`](super::client::Client::catalog_since)) are
/// used first, so when they are all there this walk asks nothing; only the
/// ones the walk reaches are kept, each checked against its hash.
pub(super) async fn fetch_metadata(
    link: &mut Link,
    store: &Arc<Store>,
    catalog: &Catalog,
    prefetched: Vec<(Hash, Vec<u8>)>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut prefetched: HashMap<Hash, Vec<u8>> = prefetched.into_iter().collect();
    let prefetched = &mut prefetched;
    let course_hashes: Vec<Hash> = catalog.courses.values().map(|entry| entry.hash).collect();
    fetch_objects(link, store, &course_hashes, prefetched, report).await?;
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
    fetch_objects(link, store, &lesson_hashes, prefetched, report).await?;
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
    fetch_objects(link, store, &manifest_hashes, prefetched, report).await
}

pub(super) async fn fetch_objects(
    link: &mut Link,
    store: &Arc<Store>,
    hashes: &[Hash],
    prefetched: &mut HashMap<Hash, Vec<u8>>,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    let mut wanted = Vec::new();
    let mut found = Vec::new();
    let mut seen = HashSet::new();
    for hash in hashes {
        if seen.insert(*hash) && !store.has_object(hash)? {
            match prefetched.remove(hash) {
                Some(bytes) => found.push((*hash, Some(bytes))),
                None => wanted.push(*hash),
            }
        }
    }
    if !wanted.is_empty() {
        let wanted = Arc::new(wanted);
        found.extend(
            link.retry(|client| {
                let wanted = wanted.clone();
                async move { client.objects(&wanted).await }
            })
            .await?,
        );
    }
    if found.is_empty() {
        return Ok(());
    }
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
