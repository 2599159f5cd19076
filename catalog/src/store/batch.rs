//! A publish's work gathered before it is committed: new objects, new blobs
//! in temporary files, source stamps. [`Store::commit_batch_with_catalog`]
//! renames the temporary files into place, syncs the filesystem once, then
//! commits the index records (and the new catalog) in one transaction; a
//! batch dropped uncommitted removes its temporary files.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use redb::ReadableTable;

use super::import::SourceStamp;
use super::index;
use super::integrity::FileIdentity;
use super::syncer::Syncer;
use super::{BlobInfo, Store, StoreError};
use crate::hash::Hash;
use crate::object::{FileManifest, Object};
use crate::sign::SignedCatalog;

pub(super) struct PendingBlob {
    pub(super) blob: Hash,
    pub(super) info: BlobInfo,
    pub(super) tmp: PathBuf,
    pub(super) chunks: Vec<(Hash, u64, u32)>,
}

/// Work not yet committed to the store.
#[derive(Default)]
pub struct ImportBatch {
    pub(super) objects: Vec<(Hash, Vec<u8>)>,
    pub(super) object_set: HashSet<Hash>,
    pub(super) blobs: Vec<PendingBlob>,
    /// Blobs and manifests added by this batch.
    pub(super) blob_manifests: HashMap<Hash, Hash>,
    pub(super) manifests: HashMap<Hash, FileManifest>,
    /// Chunks added by this batch.
    pub(super) seen_chunks: HashSet<Hash>,
    /// Background syncs of large new blobs, started on the first one.
    pub(super) syncer: Option<Syncer>,
    /// Source stamps to record: path → (stamp, blob).
    pub(super) sources: Vec<(String, SourceStamp, Hash)>,
    pub(super) new_bytes: u64,
}

impl ImportBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of new blobs waiting to be committed.
    pub fn new_bytes(&self) -> u64 {
        self.new_bytes
    }

    /// New blobs waiting to be committed.
    pub fn new_blobs(&self) -> usize {
        self.blobs.len()
    }

    /// Adds an object; returns its hash.
    pub fn add_object(&mut self, object: &Object) -> Hash {
        let bytes = object.encode();
        let hash = Hash::of(&bytes);
        if self.object_set.insert(hash) {
            self.objects.push((hash, bytes));
        }
        hash
    }

    pub(super) fn add_manifest(&mut self, manifest: FileManifest) -> Hash {
        let hash = self.add_object(&Object::Manifest(manifest.clone()));
        self.manifests.insert(hash, manifest);
        hash
    }
}

impl Store {
    /// Commits a batch: blobs into place, one filesystem sync, then the index.
    pub fn commit_batch(&self, batch: ImportBatch) -> Result<(), StoreError> {
        self.commit_batch_with_catalog(batch, |_| Ok::<_, StoreError>(None))
            .map(|_| ())
    }

    /// Commits a batch and, in the same index transaction, replaces the catalog
    /// in force with what `update` returns for the current one (`None` keeps it).
    /// Either all of it is committed or none of the index changes are.
    pub fn commit_batch_with_catalog<E: From<StoreError>>(
        &self,
        mut batch: ImportBatch,
        update: impl FnOnce(Option<SignedCatalog>) -> Result<Option<SignedCatalog>, E>,
    ) -> Result<Option<SignedCatalog>, E> {
        // Held shared while blobs move into place and are recorded, so a
        // collection never deletes a blob this commit puts back (issue 13).
        let collect_lock = if batch.blobs.is_empty() {
            None
        } else {
            let file = self.collect_lock()?;
            file.lock_shared().map_err(|cause| {
                StoreError::io("locking", &self.root.join("collect.lock"), cause)
            })?;
            Some(file)
        };
        let mut identities = Vec::with_capacity(batch.blobs.len());
        for pending in &batch.blobs {
            let target = self.blob_path(&pending.blob);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|source| StoreError::io("creating", parent, source))?;
            }
            std::fs::rename(&pending.tmp, &target)
                .map_err(|source| StoreError::io("moving a blob into", &target, source))?;
            let identity = std::fs::symlink_metadata(&target)
                .map(|meta| FileIdentity::of(&meta))
                .map_err(|source| StoreError::io("checking", &target, source))?;
            identities.push(identity);
        }
        if let Some(syncer) = batch.syncer.take() {
            syncer.finish()?;
        }
        if !batch.blobs.is_empty() {
            // Small blobs, directories and renames: one sync for the whole filesystem.
            self.sync_files()?;
        }
        let txn = self.db.begin_write().map_err(StoreError::index)?;
        {
            let mut objects = txn.open_table(index::OBJECTS).map_err(StoreError::index)?;
            for (hash, bytes) in &batch.objects {
                objects
                    .insert(hash.as_bytes(), bytes.as_slice())
                    .map_err(StoreError::index)?;
            }
        }
        let mut repaired = Vec::new();
        for (pending, identity) in batch.blobs.iter().zip(&identities) {
            if index::put_blob(
                &txn,
                &pending.blob,
                &pending.info,
                Some(identity),
                &pending.chunks,
            )? {
                repaired.push(pending.blob);
            }
        }
        {
            let mut sources = txn.open_table(index::SOURCES).map_err(StoreError::index)?;
            for (key, stamp, blob) in &batch.sources {
                sources
                    .insert(key.as_str(), index::encode_source(stamp, blob).as_slice())
                    .map_err(StoreError::index)?;
            }
        }
        let current = {
            let meta = txn.open_table(index::META).map_err(StoreError::index)?;
            let current = meta.get(index::META_CATALOG).map_err(StoreError::index)?;
            match current {
                Some(bytes) => Some(
                    SignedCatalog::decode(bytes.value())
                        .map_err(|cause| StoreError::BadCatalog { cause })?,
                ),
                None => None,
            }
        };
        let replacement = update(current)?;
        if let Some(signed) = &replacement {
            index::put_catalog(&txn, signed, true)?;
        }
        txn.commit().map_err(StoreError::index)?;
        drop(collect_lock);
        for blob in &repaired {
            self.drop_quarantined_copy(blob);
        }
        Ok(replacement)
    }
}

impl Drop for ImportBatch {
    /// An abandoned batch leaves no temporary files behind.
    fn drop(&mut self) {
        for pending in &self.blobs {
            let _ = std::fs::remove_file(&pending.tmp);
        }
    }
}
