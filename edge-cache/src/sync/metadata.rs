//! Fetching the metadata objects a new catalog names.

use super::link::Link;
use super::plan::metadata_wanted;
use super::{SyncError, SyncReport};
use catalog::{Catalog, Hash, Object, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Fetches courses, then lessons, then manifests the store lacks: each
/// round asks for what the pure plan ([`metadata_wanted`]) says is still
/// missing, one level deeper than the round before. Objects that came with
/// the catalog (`prefetched`, from
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
    // Course, lesson, manifest: three levels, then nothing is wanted.
    for _level in 0..METADATA_LEVELS {
        let wanted = metadata_wanted(catalog, &**store)?;
        if wanted.is_empty() {
            return Ok(());
        }
        fetch_objects(link, store, &wanted, &mut prefetched, report).await?;
    }
    Ok(())
}

/// Rounds of the metadata walk: courses, lessons, manifests, and the check
/// that nothing more is wanted.
const METADATA_LEVELS: usize = 4;

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
        Object::decode_verified(&hash, &bytes)
            .map_err(|source| SyncError::BadObject { hash, source })?;
        verified.push((hash, bytes));
    }
    report.objects_fetched += verified.len() as u64;
    store.put_objects(&verified)?;
    Ok(())
}
