//! Assembling a blob from chunks that arrive in any order, across restarts.
//!
//! The file grows in `partial/<blob>`; which chunks are in it is recorded in
//! the index in batches, always after the file data is synced, so a killed
//! process loses at most the chunks written since the last [`PartialBlob::flush`].
//! Chunks the store already holds in other blobs are copied locally instead of
//! fetched ([`PartialBlob::reuse_local`]).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::index::{self, PARTIALS};
use super::integrity::FileIdentity;
use super::quarantine::QuarantineReason;
use super::{BlobInfo, Store, StoreError};
use crate::hash::{Hash, Hasher};
use crate::object::FileManifest;

/// Unflushed bytes after which [`PartialBlob::write_chunk`] flushes by itself.
const AUTO_FLUSH_BYTES: u64 = 8 * 1024 * 1024;

/// A blob being assembled.
pub struct PartialBlob<'s> {
    store: &'s Store,
    manifest_hash: Hash,
    manifest: FileManifest,
    offsets: Vec<u64>,
    file: std::fs::File,
    /// Chunks present and recorded durable.
    have: Vec<bool>,
    /// Chunks written since the last flush, as a list and as flags.
    pending: Vec<usize>,
    pending_flags: Vec<bool>,
    pending_bytes: u64,
    /// Chunk indices by hash, built on first use.
    by_hash: HashMap<Hash, Vec<usize>>,
    /// Unflushed bytes after which a write flushes by itself.
    flush_bytes: u64,
}

/// A blob moved into `blobs/` whose index record is still to be written.
struct FinishedBlob {
    blob: Hash,
    manifest_hash: Hash,
    chunks: Vec<(Hash, u64, u32)>,
    manifest_bytes: Vec<u8>,
    info: BlobInfo,
    /// The file as it was put in place.
    identity: FileIdentity,
}

/// Hashes the first `size` bytes of `file` and checks they are `blob`.
fn check_whole(
    file: &std::fs::File,
    path: &std::path::Path,
    size: u64,
    blob: Hash,
) -> Result<(), StoreError> {
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut offset = 0u64;
    while offset < size {
        let len = buffer.len().min((size - offset) as usize);
        file.read_exact_at(&mut buffer[..len], offset)
            .map_err(|cause| StoreError::io("reading", path, cause))?;
        hasher.update_parallel(&buffer[..len]);
        offset += len as u64;
    }
    let actual = hasher.finalize();
    if actual != blob {
        return Err(StoreError::BlobMismatch {
            expected: blob,
            actual,
        });
    }
    Ok(())
}

/// Moves a checked file into `blobs/`. Made durable by the caller's
/// filesystem sync, before the index record.
fn move_checked(
    store: &Store,
    path: &std::path::Path,
    manifest_hash: Hash,
    manifest: &FileManifest,
) -> Result<FinishedBlob, StoreError> {
    let target = store.blob_path(&manifest.blob);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|cause| StoreError::io("creating", parent, cause))?;
    }
    std::fs::rename(path, &target)
        .map_err(|cause| StoreError::io("moving a blob into", &target, cause))?;
    let identity = std::fs::symlink_metadata(&target)
        .map(|meta| FileIdentity::of(&meta))
        .map_err(|cause| StoreError::io("checking", &target, cause))?;
    Ok(FinishedBlob {
        identity,
        blob: manifest.blob,
        manifest_hash,
        chunks: manifest
            .chunk_offsets()
            .map(|(offset, chunk)| (chunk.hash, offset, chunk.len))
            .collect(),
        manifest_bytes: crate::object::Object::Manifest(manifest.clone()).encode(),
        info: BlobInfo {
            size: manifest.size,
            manifest: manifest_hash,
        },
    })
}

impl Store {
    /// Finishes several partial blobs with one filesystem sync and one index
    /// commit: each is checked whole and moved into the store. Returns one
    /// result per blob, in order; an error of the store itself stops everything.
    pub fn finish_partials(
        &self,
        partials: Vec<PartialBlob<'_>>,
    ) -> Result<Vec<Result<Hash, StoreError>>, StoreError> {
        self.finish_partials_hashed(partials.into_iter().map(|p| (p, None)).collect())
    }

    /// [`Store::finish_partials`]; `Some`: the BLAKE3 the caller took of the
    /// very bytes it wrote, in order, used instead of reading the file back
    /// (it must still be the manifest's, else the blob is discarded).
    pub fn finish_partials_hashed(
        &self,
        partials: Vec<(PartialBlob<'_>, Option<Hash>)>,
    ) -> Result<Vec<Result<Hash, StoreError>>, StoreError> {
        // A collection (issue 13) must not delete a blob between its move
        // into `blobs/` and its record: held shared until both are done.
        let _collect_lock = self.collect_lock_shared()?;
        let mut results = Vec::with_capacity(partials.len());
        let mut finished = Vec::new();
        for (partial, whole) in partials {
            match partial.move_into_store(whole) {
                Ok(done) => {
                    results.push(Ok(done.blob));
                    finished.push(done);
                }
                Err(err @ (StoreError::BlobMismatch { .. } | StoreError::Incomplete { .. })) => {
                    results.push(Err(err))
                }
                Err(err) => return Err(err),
            }
        }
        self.record_finished(&finished)?;
        Ok(results)
    }

    /// Adopts a whole file assembled outside the store (in `staging`, on the
    /// store's filesystem): checks it against `manifest`, moves it into
    /// `blobs/` and records it. A blob already held is left as it is.
    pub fn adopt_blob(
        &self,
        staging: &std::path::Path,
        manifest_hash: Hash,
        manifest: &FileManifest,
    ) -> Result<Hash, StoreError> {
        let blob = manifest.blob;
        let _collect_lock = self.collect_lock_shared()?;
        // Held with its file in place, that is: a blob whose file is gone or
        // bad is quarantined by the check and taken from `staging` instead.
        if self.check_held(&blob)? {
            std::fs::remove_file(staging)
                .map_err(|source| StoreError::io("removing", staging, source))?;
            return Ok(blob);
        }
        let file = std::fs::File::open(staging)
            .map_err(|source| StoreError::io("opening", staging, source))?;
        check_whole(&file, staging, manifest.size, blob)?;
        let done = move_checked(self, staging, manifest_hash, manifest)?;
        self.record_finished(&[done])?;
        Ok(blob)
    }

    /// Makes moved blobs durable, then writes their records in one commit.
    fn record_finished(&self, finished: &[FinishedBlob]) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        // The renames and directories reach the disk before the records that name them.
        self.sync_files()?;
        let mut repaired = Vec::new();
        self.write(|txn| {
            let mut objects = txn.open_table(index::OBJECTS).map_err(StoreError::index)?;
            for done in finished {
                objects
                    .insert(
                        done.manifest_hash.as_bytes(),
                        done.manifest_bytes.as_slice(),
                    )
                    .map_err(StoreError::index)?;
            }
            drop(objects);
            for done in finished {
                if index::put_blob(
                    txn,
                    &done.blob,
                    &done.info,
                    Some(&done.identity),
                    &done.chunks,
                )? {
                    repaired.push(done.blob);
                }
            }
            let mut partials = txn.open_table(PARTIALS).map_err(StoreError::index)?;
            for done in finished {
                partials
                    .remove(done.blob.as_bytes())
                    .map_err(StoreError::index)?;
            }
            let added: Vec<Hash> = finished.iter().map(|done| done.blob).collect();
            super::opened::record_added(txn, &added)
        })?;
        for blob in &repaired {
            self.drop_quarantined_copy(blob);
        }
        Ok(())
    }

    /// Starts or resumes assembling the blob that `manifest` describes.
    pub fn partial(
        &self,
        manifest_hash: Hash,
        manifest: FileManifest,
    ) -> Result<PartialBlob<'_>, StoreError> {
        if !manifest.is_consistent() {
            return Err(StoreError::BadManifest {
                blob: manifest.blob,
                size: manifest.size,
            });
        }
        let path = self.partial_path(&manifest.blob);
        let count = manifest.chunks.len();
        let existed = path.is_file();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::io("opening", &path, source))?;
        // One writer per partial file, across processes (`edge run` and a
        // manual `edge sync` on one data folder): held until it is closed.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::PartialBusy {
                    blob: manifest.blob,
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::io("locking", &path, source));
            }
        }
        let mut have = vec![false; count];
        let record = {
            let txn = self.read()?;
            let table = txn.open_table(PARTIALS).map_err(StoreError::index)?;
            table
                .get(manifest.blob.as_bytes())
                .map_err(StoreError::index)?
                .map(|v| v.value().to_vec())
        };
        // A record made under another manifest of the same blob is reused
        // only if that manifest cuts it into the same chunks (the same file
        // under another media type does; another chunking does not).
        let resumable = record
            .filter(|bytes| {
                bytes.len() == 32 + count.div_ceil(8)
                    && (bytes[..32] == manifest_hash.as_bytes()[..]
                        || self.same_chunks(&bytes[..32], &manifest))
            })
            .filter(|_| existed);
        if let Some(bytes) = resumable {
            for (index, present) in have.iter_mut().enumerate() {
                *present = bytes[32 + index / 8] & (1 << (index % 8)) != 0;
            }
        }
        file.set_len(manifest.size)
            .map_err(|source| StoreError::io("sizing", &path, source))?;
        let offsets = manifest.chunk_offsets().map(|(offset, _)| offset).collect();
        Ok(PartialBlob {
            store: self,
            manifest_hash,
            manifest,
            offsets,
            file,
            pending_flags: vec![false; have.len()],
            have,
            pending: Vec::new(),
            pending_bytes: 0,
            by_hash: HashMap::new(),
            flush_bytes: AUTO_FLUSH_BYTES,
        })
    }
}

impl Store {
    /// Whether the manifest object `recorded` (a partial's record) cuts the
    /// same blob into the same chunks as `manifest`.
    fn same_chunks(&self, recorded: &[u8], manifest: &FileManifest) -> bool {
        let Ok(recorded) = <[u8; 32]>::try_from(recorded) else {
            return false;
        };
        match self.object(&Hash::from_bytes(recorded)) {
            Ok(Some(crate::Object::Manifest(other))) => {
                other.blob == manifest.blob
                    && other.size == manifest.size
                    && other.chunks == manifest.chunks
            }
            _ => false,
        }
    }
}

/// A chunk's bytes whose BLAKE3 was checked once: files being assembled
/// take it without hashing it again.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedChunk<'a> {
    hash: Hash,
    bytes: &'a [u8],
}

impl<'a> VerifiedChunk<'a> {
    /// The bytes, if their BLAKE3 is `hash`.
    pub fn check(hash: Hash, bytes: &'a [u8]) -> Option<VerifiedChunk<'a>> {
        (Hash::of(bytes) == hash).then_some(VerifiedChunk { hash, bytes })
    }

    pub fn hash(&self) -> Hash {
        self.hash
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A chunk's owned bytes whose BLAKE3 was checked once: checked on one
/// thread (the USB bundle import's reader), written on another.
#[derive(Debug)]
pub struct VerifiedChunkBuf {
    hash: Hash,
    bytes: Bytes,
}

impl VerifiedChunkBuf {
    /// The bytes, if their BLAKE3 is `hash`; else they are handed back.
    pub fn check(hash: Hash, bytes: impl Into<Bytes>) -> Result<VerifiedChunkBuf, Bytes> {
        let bytes = bytes.into();
        if Hash::of(&bytes) == hash {
            Ok(VerifiedChunkBuf { hash, bytes })
        } else {
            Err(bytes)
        }
    }

    /// The checked chunk, to write.
    pub fn chunk(&self) -> VerifiedChunk<'_> {
        VerifiedChunk {
            hash: self.hash,
            bytes: &self.bytes,
        }
    }

    /// The buffer, to read another chunk into (not copied when this chunk
    /// is its only user, as a buffer read into is).
    pub fn into_bytes(self) -> Vec<u8> {
        Vec::from(self.bytes)
    }

    /// The bytes, kept on their own: a copy if they are a slice of
    /// something larger (a chunk decoded in place in a request), which
    /// would otherwise stay alive as long as they do.
    pub fn into_owned(self) -> Vec<u8> {
        self.bytes.to_vec()
    }
}

impl PartialBlob<'_> {
    pub fn manifest(&self) -> &FileManifest {
        &self.manifest
    }

    /// The file being assembled, for reading chunks already written (a
    /// reader waiting on a range). It stays valid after [`Store::finish_partials`]
    /// moves it into `blobs/`: the rename keeps the same file.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// Unflushed bytes after which a write flushes (an fdatasync and a
    /// commit) by itself: 8 MiB, or more for a caller that flushes itself.
    pub fn set_flush_bytes(&mut self, bytes: u64) {
        self.flush_bytes = bytes;
    }

    /// Which chunks are present (durable or written since the last flush).
    pub fn present(&self) -> Vec<bool> {
        (0..self.have.len()).map(|i| self.is_present(i)).collect()
    }

    fn is_present(&self, index: usize) -> bool {
        self.have[index] || self.pending_flags[index]
    }

    /// Indices of chunks not yet written.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.have.len())
            .filter(|&i| !self.is_present(i))
            .collect()
    }

    /// Chunks written since the last flush (not yet recorded).
    pub fn unrecorded_chunks(&self) -> usize {
        self.pending.len()
    }

    /// Bytes already present (durable or pending).
    pub fn bytes_present(&self) -> u64 {
        (0..self.have.len())
            .filter(|&i| self.is_present(i))
            .map(|i| u64::from(self.manifest.chunks[i].len))
            .sum()
    }

    /// Copies every missing chunk the store holds in another blob; returns the bytes copied.
    pub fn reuse_local(&mut self) -> Result<u64, StoreError> {
        let mut copied = 0;
        let mut open_blobs: HashMap<Hash, Option<std::fs::File>> = HashMap::new();
        for index in self.missing() {
            let chunk = self.manifest.chunks[index];
            let Some(location) = self.store.chunk_location(&chunk.hash)? else {
                continue;
            };
            if location.len != chunk.len {
                continue;
            }
            let store = self.store;
            let source = open_blobs.entry(location.blob).or_insert_with(|| {
                let path = store.blob_path(&location.blob);
                let relative = path.strip_prefix(store.root()).unwrap_or(&path);
                store
                    .open_beneath(relative, rustix::fs::OFlags::RDONLY)
                    .ok()
            });
            let Some(file) = source.as_ref() else {
                continue;
            };
            let mut bytes = vec![0u8; chunk.len as usize];
            // A damaged local copy is not reused (the chunk will be fetched)
            // and the blob it is in is taken out of service.
            let damaged = match file.read_exact_at(&mut bytes, location.offset) {
                Ok(()) => match self.write_chunk(index, &bytes) {
                    Ok(()) => {
                        copied += u64::from(chunk.len);
                        false
                    }
                    Err(StoreError::ChunkMismatch { .. }) => true,
                    Err(err) => return Err(err),
                },
                Err(_) => true,
            };
            if damaged {
                *source = None;
                self.store
                    .quarantine_blob(&location.blob, QuarantineReason::Damaged)?;
            }
        }
        Ok(copied)
    }

    /// Writes chunk `index` after checking its bytes against the manifest.
    pub fn write_chunk(&mut self, index: usize, bytes: &[u8]) -> Result<(), StoreError> {
        let expected = self.manifest.chunks[index];
        let actual = Hash::of(bytes);
        if actual != expected.hash || bytes.len() != expected.len as usize {
            return Err(StoreError::ChunkMismatch {
                blob: self.manifest.blob,
                index,
                expected: expected.hash,
                expected_len: expected.len,
                actual,
                actual_len: bytes.len(),
            });
        }
        self.write_checked(index, bytes)
    }

    /// Writes chunk `index`, whose bytes were checked against its hash.
    fn write_checked(&mut self, index: usize, bytes: &[u8]) -> Result<(), StoreError> {
        if self.is_present(index) {
            return Ok(());
        }
        let path = self.store.partial_path(&self.manifest.blob);
        self.file
            .write_all_at(bytes, self.offsets[index])
            .map_err(|source| StoreError::io("writing", &path, source))?;
        self.pending.push(index);
        self.pending_flags[index] = true;
        self.pending_bytes += bytes.len() as u64;
        if self.pending_bytes >= self.flush_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes a checked chunk to every place of the blob that has its hash
    /// and lacks it (hashing it once, not once per file); returns how many.
    pub fn write_verified(&mut self, chunk: &VerifiedChunk<'_>) -> Result<usize, StoreError> {
        if self.by_hash.is_empty() {
            for (index, entry) in self.manifest.chunks.iter().enumerate() {
                self.by_hash.entry(entry.hash).or_default().push(index);
            }
        }
        let indices: Vec<usize> = self
            .by_hash
            .get(&chunk.hash)
            .map(|indices| {
                indices
                    .iter()
                    .copied()
                    .filter(|&i| !self.is_present(i))
                    .collect()
            })
            .unwrap_or_default();
        for &index in &indices {
            let expected = self.manifest.chunks[index];
            if chunk.bytes.len() != expected.len as usize {
                return Err(StoreError::ChunkMismatch {
                    blob: self.manifest.blob,
                    index,
                    expected: expected.hash,
                    expected_len: expected.len,
                    actual: chunk.hash,
                    actual_len: chunk.bytes.len(),
                });
            }
            self.write_checked(index, chunk.bytes)?;
        }
        Ok(indices.len())
    }

    /// Makes the written chunks durable and records them: data first, then the record.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.store.partial_path(&self.manifest.blob);
        self.file
            .sync_data()
            .map_err(|source| StoreError::io("syncing", &path, source))?;
        for index in std::mem::take(&mut self.pending) {
            self.have[index] = true;
            self.pending_flags[index] = false;
        }
        self.pending_bytes = 0;
        let mut record = self.manifest_hash.as_bytes().to_vec();
        record.resize(32 + self.have.len().div_ceil(8), 0);
        for (index, _) in self
            .have
            .iter()
            .enumerate()
            .filter(|(_, present)| **present)
        {
            record[32 + index / 8] |= 1 << (index % 8);
        }
        self.store.write(|txn| {
            let mut table = txn.open_table(PARTIALS).map_err(StoreError::index)?;
            table
                .insert(self.manifest.blob.as_bytes(), record.as_slice())
                .map_err(StoreError::index)?;
            Ok(())
        })
    }

    /// Verifies the whole blob and moves it into the store. On a mismatch the
    /// partial file and its record are discarded.
    pub fn finish(self) -> Result<Hash, StoreError> {
        let store = self.store;
        let mut results = store.finish_partials(vec![self])?;
        results.pop().unwrap_or(Err(StoreError::stopped(
            "finishing a blob (it gave no result)",
            None,
        )))
    }

    /// Checks the whole blob and moves it into `blobs/`; the index record is
    /// written by the caller once the data is durable.
    fn move_into_store(mut self, whole: Option<Hash>) -> Result<FinishedBlob, StoreError> {
        let missing = self.missing().len();
        if missing > 0 {
            self.flush()?;
            return Err(StoreError::Incomplete {
                blob: self.manifest.blob,
                missing,
            });
        }
        let path = self.store.partial_path(&self.manifest.blob);
        let checked = match whole {
            Some(actual) if actual != self.manifest.blob => Err(StoreError::BlobMismatch {
                expected: self.manifest.blob,
                actual,
            }),
            Some(_) => Ok(()),
            None => check_whole(&self.file, &path, self.manifest.size, self.manifest.blob),
        };
        if let Err(err) = checked {
            if matches!(err, StoreError::BlobMismatch { .. }) {
                self.discard()?;
            }
            return Err(err);
        }
        move_checked(self.store, &path, self.manifest_hash, &self.manifest)
    }

    /// Forgets this partial blob: its file and its record.
    pub fn discard(self) -> Result<(), StoreError> {
        let blob = self.manifest.blob;
        let path = self.store.partial_path(&blob);
        drop(self.file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StoreError::io("removing", &path, source)),
        }
        self.store.write(|txn| {
            let mut table = txn.open_table(PARTIALS).map_err(StoreError::index)?;
            table.remove(blob.as_bytes()).map_err(StoreError::index)?;
            Ok(())
        })
    }
}
