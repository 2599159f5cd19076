//! Bringing an origin process's local store to the bucket's head (issue 16).
//!
//! Every origin process on a bucket keeps a local store beside it: the signed
//! catalog in force, its history, and every metadata object the catalog
//! reaches (courses, lessons, file manifests). Chunks are not copied: they are
//! read from the bucket when an edge asks ([`super::chunks`]). Following the
//! head fetches what a new catalog reaches and the local store does not hold,
//! children first, so a course held locally always has its lessons and
//! manifests; then the catalog itself, in one index transaction.
//!
//! The head is verified with the origin's key (following key roots) before
//! anything it names is fetched, and every object against its hash.

use bytes::Bytes;
use catalog::store::{ImportBatch, StoreError};
use catalog::{Catalog, Hash, Object, PublicKey, SignedCatalog, Store};
use futures_util::{StreamExt, TryStreamExt};

use super::{Bucket, BucketError, Kind, UpdateVersion, block};

/// Objects fetched at once.
const FETCHING: usize = 16;

/// Where the local store stands after following the head.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The head's version: what a publish's compare-and-swap expects.
    pub version: UpdateVersion,
    /// The sequence of the catalog in force (the head's).
    pub sequence: u64,
    /// The catalog in force, decoded and verified.
    pub catalog: Catalog,
    /// Whether the local catalog changed.
    pub changed: bool,
    /// Metadata objects fetched from the bucket.
    pub fetched: usize,
}

/// Why the local store could not follow the bucket.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the bucket has no catalog head ({key}); make the origin with `shanlu origin init --store URL`, \
         or check the URL's prefix"
    )]
    NoHead { key: String },
    #[error(
        "the bucket's catalog head does not verify with this origin's key: it belongs to another \
         origin, or this folder's key is not the one the bucket's origin signs with"
    )]
    Key(#[source] catalog::sign::CatalogError),
    #[error(
        "the bucket's catalog (sequence {head}) is older than this process's ({local}): the bucket \
         was restored from an older copy or written by something else; restore the newer head, or \
         move this folder's store/ away to follow the bucket as it is"
    )]
    Behind { head: u64, local: u64 },
    #[error(
        "the bucket's catalog reaches {hash}, which the bucket does not hold: the bucket is \
         incomplete; run `shanlu verify --data DIR` on the origin that published it"
    )]
    Missing { hash: Hash },
    #[error("{hash} in the bucket is not the kind of object its parent names")]
    Mistyped { hash: Hash },
}

/// Brings `store` to the bucket's head, fetching what it lacks.
pub fn follow(bucket: &Bucket, store: &Store, key: &PublicKey) -> Result<Followed, FollowError> {
    let Some((bytes, version)) = block(bucket.head())? else {
        return Err(FollowError::NoHead {
            key: bucket.head_key().to_string(),
        });
    };
    let signed = SignedCatalog::decode(&bytes).map_err(FollowError::Key)?;
    let catalog = signed.verify(key).map_err(FollowError::Key)?;
    let followed = |changed, fetched| Followed {
        version: version.clone(),
        sequence: catalog.sequence,
        catalog: catalog.clone(),
        changed,
        fetched,
    };
    if store.signed_catalog_bytes()?.as_deref() == Some(&bytes[..]) {
        return Ok(followed(false, 0));
    }
    let mut fetched = 0;
    for entry in catalog.courses.values() {
        fetched += fetch_course(bucket, store, entry.hash)?;
    }
    let head = catalog.sequence;
    store.commit_batch_with_catalog(ImportBatch::new(), |held| {
        if let Some(held) = held {
            let local = Object::decode(&held.catalog)
                .and_then(Object::into_catalog)
                .map_err(|cause| StoreError::BadObject {
                    hash: held.catalog_hash(),
                    cause,
                })?
                .sequence;
            if local > head {
                return Err(FollowError::Behind { head, local });
            }
        }
        Ok(Some(signed))
    })?;
    tracing::info!(
        sequence = head,
        fetched,
        "followed the bucket's catalog head"
    );
    Ok(followed(true, fetched))
}

/// Fetches the course `hash` and what it reaches that `store` lacks,
/// children first; returns the number of objects fetched.
fn fetch_course(bucket: &Bucket, store: &Store, hash: Hash) -> Result<usize, FollowError> {
    if store.has_object(&hash)? {
        return Ok(0);
    }
    let [(_, bytes)] = <[_; 1]>::try_from(fetch(bucket, vec![hash])?)
        .map_err(|_| FollowError::Missing { hash })?;
    let Ok(Object::Course(course)) = Object::decode(&bytes) else {
        return Err(FollowError::Mistyped { hash });
    };
    let mut wanted_lessons = Vec::new();
    for lesson in &course.lessons {
        if !store.has_object(&lesson.hash)? {
            wanted_lessons.push(lesson.hash);
        }
    }
    let lessons = fetch(bucket, wanted_lessons)?;
    let mut manifests: Vec<Hash> = course.files.iter().map(|f| f.manifest).collect();
    for (hash, bytes) in &lessons {
        let Ok(Object::Lesson(lesson)) = Object::decode(bytes) else {
            return Err(FollowError::Mistyped { hash: *hash });
        };
        manifests.extend(lesson.files.iter().map(|f| f.manifest));
    }
    manifests.sort_unstable();
    manifests.dedup();
    let mut wanted_manifests = Vec::new();
    for manifest in manifests {
        if !store.has_object(&manifest)? {
            wanted_manifests.push(manifest);
        }
    }
    let manifests = fetch(bucket, wanted_manifests)?;
    for (hash, bytes) in &manifests {
        if !matches!(Object::decode(bytes), Ok(Object::Manifest(_))) {
            return Err(FollowError::Mistyped { hash: *hash });
        }
    }
    let count = 1 + lessons.len() + manifests.len();
    // Children first: a course held means its lessons and manifests are.
    for group in [manifests, lessons, vec![(hash, bytes)]] {
        let owned: Vec<(Hash, Vec<u8>)> = group.into_iter().map(|(h, b)| (h, b.into())).collect();
        for part in owned.chunks(1024) {
            store.put_objects(part)?;
        }
    }
    Ok(count)
}

/// Fetches the objects `hashes` (each checked against its hash); a missing one is an error.
fn fetch(bucket: &Bucket, hashes: Vec<Hash>) -> Result<Vec<(Hash, Bytes)>, FollowError> {
    block(
        futures_util::stream::iter(hashes)
            .map(|hash| async move {
                match bucket.get(Kind::Object, &hash).await? {
                    Some(bytes) => Ok((hash, bytes)),
                    None => Err(FollowError::Missing { hash }),
                }
            })
            .buffer_unordered(FETCHING)
            .try_collect(),
    )
}
