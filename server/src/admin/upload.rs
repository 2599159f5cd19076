//! The upload half of a remote publish (issue 15): file manifests, chunks
//! and lesson objects sent by an administrator's machine.
//!
//! Files are assembled in the store's partial blobs (`partial/<blob>`), so
//! what was verified survives a cut connection or an origin restart: each
//! [`AdminRequest::PutChunks`] opens the file's partial blob, writes the
//! chunks that hash to the manifest's entries, makes them durable and
//! records them before it answers, and closes it again. Nothing stays open
//! between requests, so open partials and their memory are bounded by the
//! requests in flight (each at most `MAX_ADMIN_REQUEST`). One request at a
//! time writes a given file; others for it wait.
//!
//! Goals: only the chunks the origin lacks travel (chunks held in other
//! files are copied locally at planning); a chunk sent twice is counted.
//! Non-goals: deltas of changed chunks (edges get those; an upload is new
//! bytes by definition).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use catalog::store::{ImportBatch, Store, StoreError};
use catalog::{ChunkingProfile, FileManifest, Hash, Object, limits};

use super::{AdminRequest, AdminResponse, Desk};
use crate::protocol::Response;
use crate::serve::State;

/// What one administrator uploaded since their last publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub chunks: u64,
    pub bytes: u64,
    /// Chunks sent that the origin held already (sent twice).
    pub again: u64,
}

/// Most files one [`AdminRequest::PutChunks`] may carry (each is open
/// while the request is written).
pub const MAX_PUT_FILES: usize = 256;

/// Uploads in progress.
#[derive(Default)]
pub(super) struct Uploads {
    /// One writer per blob: partial files are locked by their writer.
    writers: Mutex<HashMap<Hash, Arc<Mutex<()>>>>,
    received: Mutex<HashMap<String, Received>>,
}

impl Uploads {
    /// Runs `work` as the only writer of these blobs' partial files (taken
    /// in order, so two requests never wait on each other).
    fn writing<T>(&self, blobs: &[Hash], work: impl FnOnce() -> T) -> T {
        let mut sorted = blobs.to_vec();
        sorted.sort();
        sorted.dedup();
        let locks: Vec<Arc<Mutex<()>>> = {
            let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
            sorted
                .iter()
                .map(|blob| writers.entry(*blob).or_default().clone())
                .collect()
        };
        let result = {
            let _only: Vec<_> = locks
                .iter()
                .map(|lock| lock.lock().unwrap_or_else(|e| e.into_inner()))
                .collect();
            work()
        };
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        for (blob, lock) in sorted.iter().zip(&locks) {
            // The map holds one, `locks` another: nobody else waits for it.
            if Arc::strong_count(lock) == 2 {
                writers.remove(blob);
            }
        }
        result
    }

    fn count(&self, admin: &str, add: Received) {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let entry = received.entry(admin.to_owned()).or_default();
        entry.chunks += add.chunks;
        entry.bytes += add.bytes;
        entry.again += add.again;
    }

    /// What `admin` uploaded since the last call, and starts counting again.
    pub(super) fn take(&self, admin: &str) -> Received {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(admin)
            .unwrap_or_default()
    }
}

/// Answers [`AdminRequest::PlanFiles`], [`AdminRequest::PutChunks`] and
/// [`AdminRequest::PutObjects`] from `admin`.
pub async fn answer(request: AdminRequest, admin: &str, state: &Arc<State>) -> Response {
    let admin = admin.to_owned();
    super::on_desk(state, move |desk| match request {
        AdminRequest::PlanFiles { manifests } => plan_files(desk, &manifests),
        AdminRequest::PutChunks { files } => put_chunks(desk, &admin, files),
        AdminRequest::PutObjects { objects } => put_objects(desk, &objects),
        _ => Err("not an upload request".to_owned()),
    })
    .await
}

fn store_error(doing: &str, err: impl std::fmt::Display) -> String {
    format!("{doing} failed on the origin: {err}; try again, and see the origin's log if it persists")
}

/// Decodes an object, which must be in its one canonical encoding.
fn decode_canonical(bytes: &[u8]) -> Result<Object, String> {
    let object =
        Object::decode(bytes).map_err(|err| format!("an object sent does not decode: {err}"))?;
    if object.encode() != bytes {
        return Err("an object sent is not in its canonical encoding".to_owned());
    }
    Ok(object)
}

/// Checks and keeps the manifests; answers the chunks each file still lacks,
/// after copying those the origin holds in other files.
fn plan_files(desk: &Desk, manifests: &[Vec<u8>]) -> Result<AdminResponse, String> {
    if manifests.len() > limits::MAX_FILES {
        return Err(format!(
            "{} files in one plan; at most {} (a course's limit)",
            manifests.len(),
            limits::MAX_FILES
        ));
    }
    let origin = desk.origin().map_err(|e| store_error("opening the origin", e))?;
    let store = origin.store();
    let mut checked = Vec::with_capacity(manifests.len());
    let mut batch = ImportBatch::new();
    for bytes in manifests {
        let Object::Manifest(manifest) = decode_canonical(bytes)? else {
            return Err("a plan carries file manifests only".to_owned());
        };
        limits::check_manifest(&manifest)
            .map_err(|err| format!("file {}: {err}", manifest.blob))?;
        if !manifest.is_consistent() || manifest.chunking != ChunkingProfile::DEFAULT {
            return Err(format!(
                "file {}: its manifest's chunks do not add up to its size, or it is not cut with the default chunking",
                manifest.blob
            ));
        }
        let hash = batch.add_object(&Object::Manifest(manifest.clone()));
        checked.push((hash, manifest));
    }
    store
        .commit_batch(batch)
        .map_err(|e| store_error("keeping the manifests", e))?;
    let mut files = Vec::with_capacity(checked.len());
    for (hash, manifest) in checked {
        let blob = manifest.blob;
        let needed = desk
            .uploads
            .writing(&[blob], || still_needed(store, hash, manifest))
            .map_err(|e| store_error(&format!("planning file {blob}"), e))?;
        files.push(needed);
    }
    Ok(AdminResponse::Needed { files })
}

/// The chunk indices of a file the store still lacks (none if it holds the
/// blob), after copying chunks it holds elsewhere into its partial blob.
fn still_needed(store: &Store, hash: Hash, manifest: FileManifest) -> Result<Vec<u32>, StoreError> {
    if store.check_held(&manifest.blob)? {
        return Ok(Vec::new());
    }
    // Nothing begun and no chunk held elsewhere: all of it, without a partial file yet.
    if !store.partial_path(&manifest.blob).exists() {
        let mut any_held = false;
        for chunk in &manifest.chunks {
            if store.chunk_location(&chunk.hash)?.is_some() {
                any_held = true;
                break;
            }
        }
        if !any_held {
            return Ok((0..manifest.chunks.len() as u32).collect());
        }
    }
    let mut partial = store.partial(hash, manifest)?;
    partial.set_flush_bytes(u64::MAX);
    partial.reuse_local()?;
    partial.flush()?;
    let missing = partial.missing();
    if missing.is_empty() {
        partial.finish()?;
        return Ok(Vec::new());
    }
    Ok(missing.into_iter().map(|i| i as u32).collect())
}

/// Chunks for one file: its manifest object, the manifest, the chunks.
type FileChunks = (Hash, FileManifest, Vec<(u32, Vec<u8>)>);

/// Writes chunks of planned files; finishes (with one sync and one index
/// commit) those that are whole, and makes the rest durable.
fn put_chunks(
    desk: &Desk,
    admin: &str,
    files: Vec<(Hash, Vec<(u32, Vec<u8>)>)>,
) -> Result<AdminResponse, String> {
    if files.len() > MAX_PUT_FILES {
        return Err(format!(
            "{} files in one request; at most {MAX_PUT_FILES}",
            files.len()
        ));
    }
    let origin = desk.origin().map_err(|e| store_error("opening the origin", e))?;
    let store = origin.store();
    let mut planned: Vec<FileChunks> = Vec::with_capacity(files.len());
    for (manifest_hash, chunks) in files {
        let manifest = match store.object(&manifest_hash) {
            Ok(Some(Object::Manifest(manifest))) => manifest,
            Ok(_) => {
                return Err(format!(
                    "chunks for manifest {manifest_hash}, which the origin was not sent: send the plan first"
                ));
            }
            Err(err) => return Err(store_error("reading a manifest", err)),
        };
        if planned.iter().any(|(_, m, _)| m.blob == manifest.blob) {
            return Err(format!("file {} twice in one request", manifest.blob));
        }
        planned.push((manifest_hash, manifest, chunks));
    }
    let blobs: Vec<Hash> = planned.iter().map(|(_, m, _)| m.blob).collect();
    let (received, complete, refused) = desk
        .uploads
        .writing(&blobs, || write_files(store, planned));
    // Counted even when refused: what was verified is kept.
    desk.uploads.count(admin, received);
    tracing::info!(
        %admin,
        files = blobs.len(),
        chunks = received.chunks,
        bytes = received.bytes,
        again = received.again,
        complete,
        "upload received chunks"
    );
    if let Some(message) = refused {
        return Err(message);
    }
    Ok(AdminResponse::ChunksStored {
        stored: received.chunks as u32,
        complete,
    })
}

/// Writes the chunks; the files made whole are finished together.
fn write_files(store: &Store, files: Vec<FileChunks>) -> (Received, u32, Option<String>) {
    let mut received = Received::default();
    let mut whole = Vec::new();
    let mut refused = None;
    for (manifest_hash, manifest, chunks) in files {
        let blob = manifest.blob;
        let failed = |e: StoreError| store_error(&format!("writing file {blob}"), e);
        let held = match store.check_held(&blob) {
            Ok(held) => held,
            Err(err) => {
                refused = Some(failed(err));
                break;
            }
        };
        if held {
            received.again += chunks.len() as u64;
            continue;
        }
        let mut partial = match store.partial(manifest_hash, manifest) {
            Ok(partial) => partial,
            Err(err) => {
                refused = Some(failed(err));
                break;
            }
        };
        partial.set_flush_bytes(u64::MAX);
        if let Err(message) = write_into(&mut partial, chunks, &mut received) {
            refused = Some(message);
        }
        if refused.is_none() && partial.missing().is_empty() {
            whole.push(partial);
        } else if let Err(err) = partial.flush() {
            // What was verified is kept, even when the rest is refused.
            refused.get_or_insert(failed(err));
        }
        if refused.is_some() {
            break;
        }
    }
    let count = whole.len() as u32;
    let finished = store.finish_partials(whole);
    let mut complete = 0;
    match finished {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(_) => complete += 1,
                    Err(err) => {
                        refused.get_or_insert(format!(
                            "a file sent does not verify whole ({err}); publish again"
                        ));
                    }
                }
            }
        }
        Err(err) => {
            refused.get_or_insert(store_error(&format!("finishing {count} files"), err));
        }
    }
    (received, complete, refused)
}

/// Writes chunks into one partial blob; counts them.
fn write_into(
    partial: &mut catalog::store::PartialBlob<'_>,
    chunks: Vec<(u32, Vec<u8>)>,
    received: &mut Received,
) -> Result<(), String> {
    let blob = partial.manifest().blob;
    let count = partial.manifest().chunks.len();
    let mut present = partial.present();
    for (index, bytes) in chunks {
        let index = index as usize;
        if index >= count {
            return Err(format!(
                "chunk {index} of file {blob}, which has {count} chunks"
            ));
        }
        if present[index] {
            received.again += 1;
            continue;
        }
        match partial.write_chunk(index, &bytes) {
            Ok(()) => {
                present[index] = true;
                received.chunks += 1;
                received.bytes += bytes.len() as u64;
            }
            Err(StoreError::ChunkMismatch { .. }) => {
                return Err(format!(
                    "chunk {index} of file {blob} does not match its manifest: the file changed on the \
                     administrator's machine after it was read; publish again"
                ));
            }
            Err(err) => return Err(store_error(&format!("writing file {blob}"), err)),
        }
    }
    Ok(())
}

/// Keeps lesson objects whose files the origin holds whole.
fn put_objects(desk: &Desk, objects: &[Vec<u8>]) -> Result<AdminResponse, String> {
    let origin = desk.origin().map_err(|e| store_error("opening the origin", e))?;
    let store = origin.store();
    let mut batch = ImportBatch::new();
    for bytes in objects {
        let Object::Lesson(lesson) = decode_canonical(bytes)? else {
            return Err("only lesson objects are sent this way".to_owned());
        };
        limits::check_lesson(&lesson).map_err(|err| format!("lesson {}: {err}", lesson.id))?;
        check_files_held(store, &lesson.files, &format!("lesson {}", lesson.id))?;
        batch.add_object(&Object::Lesson(lesson));
    }
    store
        .commit_batch(batch)
        .map_err(|e| store_error("keeping the lessons", e))?;
    Ok(AdminResponse::ObjectsStored {
        count: objects.len() as u32,
    })
}

/// Every file's manifest is held and matches, and its blob is whole.
pub(super) fn check_files_held(
    store: &Store,
    files: &[catalog::FileEntry],
    owner: &str,
) -> Result<(), String> {
    for file in files {
        let manifest = match store.object(&file.manifest) {
            Ok(Some(Object::Manifest(manifest))) => manifest,
            Ok(_) => {
                return Err(format!(
                    "{owner}: {} names a manifest the origin was not sent; upload its files first",
                    file.path
                ));
            }
            Err(err) => return Err(store_error("reading a manifest", err)),
        };
        if manifest.blob != file.blob || manifest.size != file.size {
            return Err(format!(
                "{owner}: {} does not match its manifest",
                file.path
            ));
        }
        let held = store
            .check_held(&file.blob)
            .map_err(|e| store_error("checking a file", e))?;
        if !held {
            return Err(format!(
                "{owner}: {} ({}) is not whole on the origin yet; upload its chunks first",
                file.path, file.blob
            ));
        }
    }
    Ok(())
}
