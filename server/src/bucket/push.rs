//! Writing what a new catalog reaches into the bucket (issue 16).
//!
//! Order is the invariant: a chunk before the manifest naming it, manifests
//! before their lesson, lessons before their course, every course before the
//! head that names it. So an object found in the bucket vouches for
//! everything beneath it, a walk stops there, and a publish killed at any
//! point leaves only unreferenced (invisible) objects, which the next run
//! finds and does not send again: chunks are checked with a HEAD request
//! before they are sent.

use catalog::{Catalog, Course, Hash, Object, Store};
use futures_util::{StreamExt, TryStreamExt};

use super::{Bucket, BucketError, Kind, Put, block};
use catalog::store::StoreError;

/// Chunks checked and sent at once.
const SENDING: usize = 16;

/// What a push wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pushed {
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub objects: u64,
}

/// Told the bytes of each chunk checked or written, for a progress bar.
pub type Progress<'a> = &'a dyn Fn(u64);

/// Why a push failed; the head has not moved.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Bucket(#[from] BucketError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "{hash} is named by the catalog but this origin's store does not hold it; run `shanlu \
         verify --data DIR`"
    )]
    Missing { hash: Hash },
}

/// Writes into the bucket every course of `catalog` (and what it reaches)
/// the bucket lacks. Courses also in `held` (the head the bucket holds) are
/// there already.
pub fn push_catalog(
    bucket: &Bucket,
    store: &Store,
    catalog: &Catalog,
    held: Option<&Catalog>,
    progress: Progress<'_>,
) -> Result<Pushed, PushError> {
    let mut pushed = Pushed::default();
    for entry in catalog.courses.values() {
        let known = held.is_some_and(|held| held.courses.values().any(|h| h.hash == entry.hash));
        if !known {
            push_course(bucket, store, entry.hash, &mut pushed, progress)?;
        }
    }
    Ok(pushed)
}

/// Writes the course `hash`, its lessons, manifests and chunks, children
/// first, skipping whatever the bucket holds.
pub fn push_course(
    bucket: &Bucket,
    store: &Store,
    hash: Hash,
    pushed: &mut Pushed,
    progress: Progress<'_>,
) -> Result<(), PushError> {
    if block(bucket.has(Kind::Object, &hash))? {
        return Ok(());
    }
    let Some(Object::Course(course)) = store.object(&hash)? else {
        return Err(PushError::Missing { hash });
    };
    let content = push_content(bucket, store, &course, progress)?;
    pushed.chunks += content.chunks;
    pushed.chunk_bytes += content.chunk_bytes;
    pushed.objects += content.objects;
    push_object(bucket, store, hash, pushed)
}

/// Writes what `course` reaches (lessons, manifests, chunks) and the bucket
/// lacks, children first; not the course object itself.
pub fn push_content(
    bucket: &Bucket,
    store: &Store,
    course: &Course,
    progress: Progress<'_>,
) -> Result<Pushed, PushError> {
    let mut pushed = Pushed::default();
    let mut manifests: Vec<Hash> = course.files.iter().map(|f| f.manifest).collect();
    let mut lessons = Vec::new();
    for lesson in &course.lessons {
        if block(bucket.has(Kind::Object, &lesson.hash))? {
            continue;
        }
        let Some(Object::Lesson(found)) = store.object(&lesson.hash)? else {
            return Err(PushError::Missing { hash: lesson.hash });
        };
        manifests.extend(found.files.iter().map(|f| f.manifest));
        lessons.push(lesson.hash);
    }
    manifests.sort_unstable();
    manifests.dedup();
    for manifest in manifests {
        push_manifest(bucket, store, manifest, &mut pushed, progress)?;
    }
    for lesson in lessons {
        push_object(bucket, store, lesson, &mut pushed)?;
    }
    Ok(pushed)
}

/// Writes one file's chunks the bucket lacks, then its manifest.
fn push_manifest(
    bucket: &Bucket,
    store: &Store,
    hash: Hash,
    pushed: &mut Pushed,
    progress: Progress<'_>,
) -> Result<(), PushError> {
    if block(bucket.has(Kind::Object, &hash))? {
        progress(manifest_bytes(store, &hash)?);
        return Ok(());
    }
    let manifest = store.manifest(&hash)?;
    let mut chunks: Vec<(Hash, u64)> = manifest
        .chunks
        .iter()
        .map(|c| (c.hash, u64::from(c.len)))
        .collect();
    chunks.sort_unstable();
    chunks.dedup();
    let sent: Vec<Option<u64>> = block(
        futures_util::stream::iter(chunks)
            .map(|(chunk, len)| async move {
                if bucket.has(Kind::Chunk, &chunk).await? {
                    progress(len);
                    return Ok(None);
                }
                // A chunk is at most 16 MiB; SENDING of them in memory at once.
                let Some(bytes) = store.chunk_bytes(&chunk)? else {
                    return Err(PushError::Missing { hash: chunk });
                };
                let put = bucket.put_new(Kind::Chunk, &chunk, bytes.into()).await?;
                progress(len);
                Ok::<_, PushError>((put == Put::Created).then_some(len))
            })
            .buffer_unordered(SENDING)
            .try_collect(),
    )?;
    for len in sent.into_iter().flatten() {
        pushed.chunks += 1;
        pushed.chunk_bytes += len;
    }
    push_object(bucket, store, hash, pushed)
}

/// The bytes of the file a manifest describes (for progress).
fn manifest_bytes(store: &Store, hash: &Hash) -> Result<u64, PushError> {
    Ok(store.manifest(hash)?.size)
}

fn push_object(
    bucket: &Bucket,
    store: &Store,
    hash: Hash,
    pushed: &mut Pushed,
) -> Result<(), PushError> {
    let Some(bytes) = store.object_bytes(&hash)? else {
        return Err(PushError::Missing { hash });
    };
    if block(bucket.put_new(Kind::Object, &hash, bytes.into()))? == Put::Created {
        pushed.objects += 1;
    }
    Ok(())
}
