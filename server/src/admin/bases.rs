//! Uploads as deltas, the origin's side (issue 15): bases for chunks it
//! lacks ([`AdminRequest::Bases`](super::AdminRequest::Bases)) and chunks
//! rebuilt from deltas against them
//! ([`AdminRequest::PutDeltas`](super::AdminRequest::PutDeltas)).
//!
//! A chunk's base is the previous version of its file (same course, same
//! lesson and path, in the catalog in force): the old chunks overlapping the
//! new chunk's byte range, at most [`MAX_BASE_BYTES`]. A rebuilt chunk is
//! checked against its manifest entry here, and then written exactly as a
//! chunk sent whole (`upload::put_chunks`): a wrong rebuild is refused and
//! nothing of its request is written.

use std::collections::HashMap;

use catalog::store::Store;
use catalog::{FileManifest, Hash, Object};

use super::delta::{
    self, Base, DeltaChunk, MAX_BASE_BYTES, MAX_BASE_CHUNKS, MAX_DELTA_CHUNKS, MAX_SIGNATURE_REPLY,
    MAX_WANTS, WantBase,
};
use super::upload::{put_chunks, store_error};
use super::{AdminResponse, Desk, FileChunks, IndexedChunk};

/// A file of the course in force: its lesson (`None`: a course file) and path.
type Place = (Option<String>, String);

/// Answers the bases of `wants`, chunks of course `course`.
pub(super) fn bases(
    desk: &Desk,
    course: &str,
    wants: &[WantBase],
) -> Result<AdminResponse, String> {
    if wants.len() > MAX_WANTS {
        return Err(format!(
            "{} chunks asked about in one request; at most {MAX_WANTS}",
            wants.len()
        ));
    }
    let origin = desk
        .origin()
        .map_err(|e| store_error("opening the origin", e))?;
    let store = origin.store();
    let old = previous_files(&origin, course)?;
    let mut bases = Vec::with_capacity(wants.len());
    let mut reply = 0usize;
    let mut manifests: HashMap<Hash, Option<FileManifest>> = HashMap::new();
    for want in wants {
        let base = if reply >= MAX_SIGNATURE_REPLY {
            None
        } else {
            let place = (want.lesson.clone(), want.path.clone());
            match old.get(&place) {
                Some(&old_manifest) if old_manifest != want.manifest => {
                    let new = manifest(store, &mut manifests, want.manifest)?;
                    let old = manifest(store, &mut manifests, old_manifest)?;
                    match (new, old) {
                        (Some(new), Some(old)) => base_of(store, &new, &old, want.index)?,
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        if let Some(base) = &base {
            reply += base.signature.len() + base.chunks.len() * 32;
        }
        bases.push(base);
    }
    let found = bases.iter().filter(|b| b.is_some()).count();
    tracing::debug!(%course, asked = wants.len(), found, signature_bytes = reply, "upload bases");
    Ok(AdminResponse::Bases { bases })
}

/// The manifest of every file of `course` in the catalog in force, by place.
fn previous_files(origin: &crate::Origin, course: &str) -> Result<HashMap<Place, Hash>, String> {
    let store = origin.store();
    let catalog = crate::publish::current_catalog(origin)
        .map_err(|e| store_error("reading the catalog in force", e))?;
    let mut files = HashMap::new();
    let Some(entry) = catalog.courses.get(course) else {
        return Ok(files);
    };
    let Ok(Some(Object::Course(held))) = store.object(&entry.hash) else {
        return Ok(files);
    };
    for file in held.files {
        files.insert((None, file.path), file.manifest);
    }
    for lesson in held.lessons {
        if let Ok(Some(Object::Lesson(lesson))) = store.object(&lesson.hash) {
            for file in lesson.files {
                files.insert((Some(lesson.id.clone()), file.path), file.manifest);
            }
        }
    }
    Ok(files)
}

/// A manifest held in the store, read once per request.
fn manifest(
    store: &Store,
    held: &mut HashMap<Hash, Option<FileManifest>>,
    hash: Hash,
) -> Result<Option<FileManifest>, String> {
    if let Some(manifest) = held.get(&hash) {
        return Ok(manifest.clone());
    }
    let manifest = match store.object(&hash) {
        Ok(Some(Object::Manifest(manifest))) => Some(manifest),
        Ok(_) => None,
        Err(err) => return Err(store_error("reading a manifest", err)),
    };
    held.insert(hash, manifest.clone());
    Ok(manifest)
}

/// The old chunks overlapping chunk `index` of `new`, and their signature.
fn base_of(
    store: &Store,
    new: &FileManifest,
    old: &FileManifest,
    index: u32,
) -> Result<Option<Base>, String> {
    let Some((start, chunk)) = new.chunk_offsets().nth(index as usize) else {
        return Ok(None);
    };
    let end = start + u64::from(chunk.len);
    let mut chunks = Vec::new();
    let mut bytes = Vec::new();
    for (offset, old_chunk) in old.chunk_offsets() {
        if offset >= end {
            break;
        }
        if offset + u64::from(old_chunk.len) <= start {
            continue;
        }
        if chunks.len() >= MAX_BASE_CHUNKS || bytes.len() + old_chunk.len as usize > MAX_BASE_BYTES
        {
            break;
        }
        match store.chunk_bytes(&old_chunk.hash) {
            Ok(Some(read)) => bytes.extend_from_slice(&read),
            // Not held whole (or damaged): no base; the chunk travels whole.
            Ok(None) | Err(_) => return Ok(None),
        }
        chunks.push(old_chunk.hash);
    }
    if bytes.len() < delta::BLOCK {
        return Ok(None);
    }
    Ok(Some(Base {
        chunks,
        signature: delta::signature(&bytes),
    }))
}

/// Rebuilds chunks from their deltas, checks each against its manifest, and
/// writes them as chunks sent whole.
pub(super) fn put_deltas(
    desk: &Desk,
    admin: &str,
    chunks: Vec<DeltaChunk>,
) -> Result<AdminResponse, String> {
    if chunks.len() > MAX_DELTA_CHUNKS {
        return Err(format!(
            "{} deltas in one request; at most {MAX_DELTA_CHUNKS}",
            chunks.len()
        ));
    }
    let origin = desk
        .origin()
        .map_err(|e| store_error("opening the origin", e))?;
    let store = origin.store();
    let mut manifests: HashMap<Hash, Option<FileManifest>> = HashMap::new();
    let mut files: Vec<FileChunks> = Vec::new();
    for chunk in chunks {
        let Some(manifest) = manifest(store, &mut manifests, chunk.manifest)? else {
            return Err(format!(
                "a delta for manifest {}, which the origin was not sent: send the plan first",
                chunk.manifest
            ));
        };
        let blob = manifest.blob;
        let Some(entry) = manifest.chunks.get(chunk.index as usize) else {
            return Err(format!(
                "a delta for chunk {} of file {blob}, which has {} chunks",
                chunk.index,
                manifest.chunks.len()
            ));
        };
        if chunk.base.len() > MAX_BASE_CHUNKS {
            return Err(format!(
                "the delta for chunk {} of file {blob} names {} base chunks; at most {MAX_BASE_CHUNKS}",
                chunk.index,
                chunk.base.len()
            ));
        }
        let mut base = Vec::new();
        for hash in &chunk.base {
            match store.chunk_bytes(hash) {
                Ok(Some(bytes)) if base.len() + bytes.len() <= MAX_BASE_BYTES => {
                    base.extend_from_slice(&bytes)
                }
                Ok(Some(_)) => {
                    return Err(format!(
                        "the delta for chunk {} of file {blob} has a base over {MAX_BASE_BYTES} bytes",
                        chunk.index
                    ));
                }
                Ok(None) | Err(_) => {
                    return Err(format!(
                        "the delta for chunk {} of file {blob} is against chunk {hash}, which the origin \
                         does not hold whole: publish again (it is sent whole then)",
                        chunk.index
                    ));
                }
            }
        }
        let rebuilt = delta::apply(&base, &chunk.ops, entry.len as usize)
            .ok()
            .filter(|bytes| Hash::of(bytes) == entry.hash);
        let Some(rebuilt) = rebuilt else {
            tracing::warn!(%admin, %blob, index = chunk.index, "a delta rebuilt other bytes than its manifest names");
            return Err(format!(
                "the delta for chunk {} of file {blob} does not rebuild the chunk its manifest names: \
                 refused, nothing of this request was written; publish again",
                chunk.index
            ));
        };
        match files.last_mut() {
            Some((hash, chunks)) if *hash == chunk.manifest => {
                chunks.push(IndexedChunk(chunk.index, rebuilt.into()));
            }
            _ => files.push((
                chunk.manifest,
                vec![IndexedChunk(chunk.index, rebuilt.into())],
            )),
        }
    }
    put_chunks(desk, admin, files)
}
