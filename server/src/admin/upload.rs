//! The upload half of a remote publish (issue 15): file manifests, chunks
//! and lesson objects sent by an administrator's machine.
//!
//! Requests are checked here, on the blocking pool (manifests decoded in
//! their canonical encoding and within the limits, every chunk hashed
//! against its manifest entry), and written by the one upload writer
//! (`writer`), which assembles large files in the store's partial blobs
//! (`partial/<blob>`, kept open across requests and connections) and
//! stores files sent whole in one request the way a local publish does. A
//! plan is answered from what the writer holds, so an upload cut off and
//! resumed is asked only for the rest.
//!
//! Goals: only the chunks the origin lacks travel (chunks held in other
//! files are copied on the origin at planning); chunks sent again are
//! counted (`again=` in the log). A changed chunk of a file whose previous
//! version the origin holds may travel as a delta against it instead
//! (`bases`, `delta`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use catalog::store::{ImportBatch, Store, VerifiedChunkBuf};
use catalog::{ChunkingProfile, Object, limits};

use super::writer::{CheckedFile, Writer};
use super::{AdminRequest, AdminResponse, Desk, FileChunks};
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

/// Uploads in progress: the writing thread, chunks counted per admin.
#[derive(Default)]
pub(super) struct Uploads {
    writer: Mutex<Option<Arc<Writer>>>,
    received: Mutex<HashMap<String, Received>>,
}

impl Uploads {
    /// The writing thread, started on first use.
    pub(super) fn writer(&self, desk: &Desk) -> Result<Arc<Writer>, String> {
        let mut held = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(writer) = &*held {
            return Ok(writer.clone());
        }
        let writer = Arc::new(Writer::start(desk.held()?)?);
        *held = Some(writer.clone());
        Ok(writer)
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

/// Answers [`AdminRequest::PlanFiles`], [`AdminRequest::PutChunks`],
/// [`AdminRequest::PutObjects`], [`AdminRequest::Bases`] and
/// [`AdminRequest::PutDeltas`] from `admin`.
pub async fn answer(request: AdminRequest, admin: &str, state: &Arc<State>) -> Response {
    let admin = admin.to_owned();
    super::on_desk(state, move |desk| match request {
        AdminRequest::PlanFiles { manifests } => plan_files(desk, &manifests),
        AdminRequest::PutChunks { files } => put_chunks(desk, &admin, files),
        AdminRequest::PutObjects { objects } => put_objects(desk, &objects),
        AdminRequest::Bases { course, wants } => super::bases::bases(desk, &course, &wants),
        AdminRequest::PutDeltas { chunks } => super::bases::put_deltas(desk, &admin, chunks),
        _ => Err("not an upload request".to_owned()),
    })
    .await
}

pub(crate) fn store_error(doing: &str, err: impl std::fmt::Display) -> String {
    format!(
        "{doing} failed on the origin: {err}; try again, and see the origin's log if it persists"
    )
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
pub(crate) fn plan_files(desk: &Desk, manifests: &[Vec<u8>]) -> Result<AdminResponse, String> {
    if manifests.len() > limits::MAX_FILES {
        return Err(format!(
            "{} files in one plan; at most {} (a course's limit)",
            manifests.len(),
            limits::MAX_FILES
        ));
    }
    let held = desk.held()?;
    let store = held.store();
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
    let files = desk.uploads.writer(desk)?.plan(checked)?;
    Ok(AdminResponse::Needed { files })
}

/// Checks chunks of planned files against their manifests (here, in
/// parallel with other requests), then has the writer write them.
pub(crate) fn put_chunks(
    desk: &Desk,
    admin: &str,
    files: Vec<FileChunks>,
) -> Result<AdminResponse, String> {
    if files.len() > MAX_PUT_FILES {
        return Err(format!(
            "{} files in one request; at most {MAX_PUT_FILES}",
            files.len()
        ));
    }
    let held = desk.held()?;
    let store = held.store();
    let mut checked: Vec<CheckedFile> = Vec::with_capacity(files.len());
    let mut refused = None;
    'files: for (manifest_hash, chunks) in files {
        let manifest = match store.object(&manifest_hash) {
            Ok(Some(Object::Manifest(manifest))) => manifest,
            Ok(_) => {
                refused = Some(format!(
                    "chunks for manifest {manifest_hash}, which the origin was not sent: send the plan first"
                ));
                break;
            }
            Err(err) => return Err(store_error("reading a manifest", err)),
        };
        let blob = manifest.blob;
        let mut verified = Vec::with_capacity(chunks.len());
        for super::IndexedChunk(index, bytes) in chunks {
            let Some(entry) = manifest.chunks.get(index as usize) else {
                refused = Some(format!(
                    "chunk {index} of file {blob}, which has {} chunks",
                    manifest.chunks.len()
                ));
                break 'files;
            };
            match VerifiedChunkBuf::check(entry.hash, bytes) {
                Ok(chunk) => verified.push(chunk),
                Err(_) => {
                    refused = Some(format!(
                        "chunk {index} of file {blob} does not match its manifest: the file changed on the \
                         administrator's machine after it was read; publish again"
                    ));
                    break 'files;
                }
            }
        }
        checked.push((manifest_hash, manifest, verified));
    }
    let blobs = checked.len();
    let (received, complete, failed) = desk.uploads.writer(desk)?.put(checked);
    // Counted even when the rest is refused: what was written is kept.
    desk.uploads.count(admin, received);
    tracing::info!(
        %admin,
        files = blobs,
        chunks = received.chunks,
        bytes = received.bytes,
        again = received.again,
        complete,
        "upload received chunks"
    );
    if let Some(message) = failed.or(refused) {
        return Err(message);
    }
    Ok(AdminResponse::ChunksStored {
        stored: received.chunks as u32,
        complete,
    })
}

/// Keeps lesson objects whose files the origin holds whole.
fn put_objects(desk: &Desk, objects: &[Vec<u8>]) -> Result<AdminResponse, String> {
    desk.uploads.writer(desk)?.settle()?;
    let held = desk.held()?;
    let store = held.store();
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
pub(crate) fn check_files_held(
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
