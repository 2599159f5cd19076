//! Chunk packs (issue 13): how an origin keeps a superseded version without
//! keeping its files whole.
//!
//! Edges fetch chunks by hash, never whole files, so an origin needs whole
//! files only for the catalog in force (served as files, checked by `shanlu
//! verify`). An older catalog it keeps for edges still syncing from it needs
//! only the chunks no current file holds. `shanlu origin gc` copies those
//! into packs — ordinary blobs whose manifest lists the chunks they hold,
//! marked by [`PACK_MEDIA_TYPE`] — and then collects the superseded files, so
//! four kept versions of a course with small weekly edits cost about one
//! version plus the edits, not four versions.
//!
//! A pack is a blob like any other: named by its BLAKE3, moved into place
//! before its index records are committed, re-hashed by a scrub, its chunk
//! rows moved to it by a collection (`locate_chunks` reads its manifest). A
//! crash while packing leaves at worst a pack nothing needs, which the next
//! collection removes.

use std::io::Write;

use redb::ReadableTable;

use super::batch::{ImportBatch, PendingBlob};
use super::index::{self, BLOBS, OBJECTS};
use super::{BlobInfo, Store, StoreError};
use crate::chunker::ChunkingProfile;
use crate::hash::{Hash, Hasher};
use crate::object::{ChunkRef, FileManifest, Object};

/// The media type that marks a blob as a pack of chunks.
pub const PACK_MEDIA_TYPE: &str = "application/vnd.shanlu.chunk-pack";
/// A pack is closed once it holds this many bytes, so no pack file is huge
/// and a collection can free space one pack at a time.
pub const MAX_PACK_BYTES: u64 = 256 * 1024 * 1024;

/// A pack the store holds: its blob, its manifest and the chunks in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    pub blob: Hash,
    pub manifest: Hash,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

impl Store {
    /// Every pack the store holds.
    pub fn packs(&self) -> Result<Vec<Pack>, StoreError> {
        let txn = self.read()?;
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        let mut packs = Vec::new();
        for entry in blobs.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let info = index::decode_blob(value.value());
            let Some(bytes) = objects
                .get(info.manifest.as_bytes())
                .map_err(StoreError::index)?
            else {
                continue;
            };
            // Packs are found by media type; a damaged manifest is the
            // scrub's to report, not a pack.
            if let Ok(Object::Manifest(manifest)) = Object::decode(bytes.value())
                && manifest.media_type == PACK_MEDIA_TYPE
            {
                packs.push(Pack {
                    blob: Hash::from_bytes(*key.value()),
                    manifest: info.manifest,
                    size: info.size,
                    chunks: manifest.chunks,
                });
            }
        }
        Ok(packs)
    }

    /// Copies `chunks` (each read from where the index holds it and checked
    /// against its hash) into new packs of at most [`MAX_PACK_BYTES`], and
    /// commits them. `progress` gets the bytes of each chunk copied. A chunk
    /// the store does not hold is an error: nothing is committed.
    pub fn write_packs(
        &self,
        chunks: &[ChunkRef],
        progress: &mut dyn FnMut(u64),
    ) -> Result<Vec<Pack>, StoreError> {
        let mut batch = ImportBatch::new();
        let mut packs = Vec::new();
        let mut open: Option<OpenPack> = None;
        let filled = self.fill_packs(chunks, &mut open, &mut batch, &mut packs, progress);
        if let Err(err) = filled {
            // The pack being written goes; those closed go with the batch.
            if let Some(pack) = open {
                let _ = std::fs::remove_file(&pack.path);
            }
            return Err(err);
        }
        if !packs.is_empty() {
            self.commit_batch(batch)?;
        }
        Ok(packs)
    }
}

impl Store {
    /// Puts a whole file back together from chunks the store holds, in packs
    /// or in other files: `shanlu publish --revert` of a version whose files
    /// `origin gc` packed. A chunk the store does not hold is an error
    /// ([`StoreError::MissingChunk`]) and leaves nothing behind.
    pub fn rebuild_blob(
        &self,
        manifest_hash: Hash,
        manifest: FileManifest,
    ) -> Result<(), StoreError> {
        if self.has_blob(&manifest.blob)? {
            return Ok(());
        }
        let mut partial = self.partial(manifest_hash, manifest)?;
        partial.reuse_local()?;
        if let Some(&index) = partial.missing().first() {
            let chunk = partial.manifest().chunks[index].hash;
            partial.discard()?;
            return Err(StoreError::MissingChunk { chunk });
        }
        partial.finish().map(|_| ())
    }

    fn fill_packs(
        &self,
        chunks: &[ChunkRef],
        open: &mut Option<OpenPack>,
        batch: &mut ImportBatch,
        packs: &mut Vec<Pack>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        for chunk in chunks {
            if !seen.insert(chunk.hash) {
                continue;
            }
            let bytes = self
                .chunk_bytes(&chunk.hash)?
                .ok_or(StoreError::MissingChunk { chunk: chunk.hash })?;
            let full = open
                .as_ref()
                .is_some_and(|pack| pack.size + bytes.len() as u64 > MAX_PACK_BYTES);
            if full && let Some(pack) = open.take() {
                packs.push(pack.close(self, batch)?);
            }
            let pack = match open {
                Some(pack) => pack,
                None => open.insert(OpenPack::create(self)?),
            };
            pack.append(chunk.hash, &bytes)?;
            progress(bytes.len() as u64);
        }
        if let Some(pack) = open.take() {
            packs.push(pack.close(self, batch)?);
        }
        Ok(())
    }
}

/// A pack being written to a temporary file.
struct OpenPack {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    hasher: Hasher,
    size: u64,
    chunks: Vec<(Hash, u64, u32)>,
}

impl OpenPack {
    fn create(store: &Store) -> Result<OpenPack, StoreError> {
        let path = store.tmp_path();
        let file = std::fs::File::create(&path)
            .map_err(|cause| StoreError::io("creating", &path, cause))?;
        Ok(OpenPack {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            path,
            hasher: Hasher::new(),
            size: 0,
            chunks: Vec::new(),
        })
    }

    fn append(&mut self, hash: Hash, bytes: &[u8]) -> Result<(), StoreError> {
        self.out
            .write_all(bytes)
            .map_err(|cause| StoreError::io("writing", &self.path, cause))?;
        self.hasher.update(bytes);
        // A chunk is at most a few MiB (the chunking profile's maximum).
        self.chunks.push((hash, self.size, bytes.len() as u32));
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Makes the file durable and adds it to `batch` as a blob with its manifest.
    fn close(self, store: &Store, batch: &mut ImportBatch) -> Result<Pack, StoreError> {
        let file = self
            .out
            .into_inner()
            .map_err(|err| StoreError::io("writing", &self.path, err.into_error()))?;
        file.sync_all()
            .map_err(|cause| StoreError::io("syncing", &self.path, cause))?;
        let blob = self.hasher.finalize();
        let manifest = FileManifest {
            size: self.size,
            blob,
            media_type: PACK_MEDIA_TYPE.to_owned(),
            chunking: ChunkingProfile::DEFAULT,
            chunks: self
                .chunks
                .iter()
                .map(|&(hash, _, len)| ChunkRef { hash, len })
                .collect(),
        };
        let pack_chunks = manifest.chunks.clone();
        let manifest_hash = batch.add_manifest(manifest);
        batch.new_bytes += self.size;
        if store.has_blob(&blob)? {
            // The same chunks in the same order were packed before (a rerun
            // after a crash): the pack is already there.
            let _ = std::fs::remove_file(&self.path);
        } else {
            batch.blobs.push(PendingBlob {
                blob,
                info: BlobInfo {
                    size: self.size,
                    manifest: manifest_hash,
                },
                tmp: self.path,
                chunks: self.chunks,
            });
        }
        Ok(Pack {
            blob,
            manifest: manifest_hash,
            size: self.size,
            chunks: pack_chunks,
        })
    }
}
