//! The on-disk store shared by the origin and the edges.
//!
//! ```text
//! STORE/
//!   blobs/ab/cd/<blob hash>   whole, verified files; `b3sum` prints their names
//!   partial/<blob hash>       files being assembled from chunks
//!   tmp/                      files being written, renamed into blobs/ when complete
//!   quarantine/<blob hash>    files found damaged, out of service until fetched again
//!   index.redb                the index: chunks, blobs, partial progress, objects, catalog
//! ```
//!
//! Durability rule: file data is made durable before the index record that
//! points at it is committed. A crash therefore leaves at worst a file that no
//! record names (rewritten or ignored later), never a record naming a file that
//! is not there. The index is opened in redb's multi-writer mode, so a publish
//! can commit while a server process reads the same store.
//!
//! - [`index`]: the redb tables and their encodings.
//! - [`import`]: storing whole files (publishing) with chunk accounting.
//! - [`batch`]: a publish's work gathered, then committed in one index transaction.
//! - [`partial`]: assembling a blob from chunks in any order, resumably.
//! - [`scrub`]: re-hashing blobs and objects.
//! - [`integrity`]: file identities checked before serving.
//! - [`collect`]: garbage collection: removing what the kept catalogs no longer reach.
//! - [`pack`]: chunk packs: superseded versions kept as the chunks they alone hold.
//! - [`opened`]: when each blob was last opened, for the edge's eviction order (issue 13).
//! - [`quarantine`]: taking a blob found bad or gone out of service, and finishing that after a crash.

mod batch;
mod collect;
mod error;
mod import;
mod index;
mod integrity;
mod opened;
mod pack;
mod partial;
mod quarantine;
mod scrub;
mod syncer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableDatabase, ReadableTableMetadata};

pub use batch::ImportBatch;
pub use collect::{CollectReport, HistoryEntry, Reachable, reachable};
pub use error::{StoreError, remedy};
pub use import::{ImportMode, Imported};
pub use integrity::{FileIdentity, OpenedBlob};
pub use opened::HeldBlob;
pub use pack::{MAX_PACK_BYTES, PACK_MEDIA_TYPE, Pack};
pub use partial::{PartialBlob, VerifiedChunk, VerifiedChunkBuf};
pub use quarantine::{QuarantineReason, QuarantineRecord};
pub use scrub::{BlobCheck, ScrubProblem, ScrubReport};

use crate::hash::Hash;
use crate::object::{FileManifest, Object};
use crate::sign::SignedCatalog;

/// A content-addressed store of blobs and objects with its redb index.
pub struct Store {
    root: PathBuf,
    /// The root, opened: blobs are opened and moved relative to it.
    root_dir: std::os::fd::OwnedFd,
    db: redb::Database,
    tmp_counter: AtomicU64,
    integrity: integrity::Integrity,
}

/// Where a chunk can be read locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    pub blob: Hash,
    pub offset: u64,
    pub len: u32,
}

/// What the index records for a complete blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    /// A manifest describing the blob's chunks.
    pub manifest: Hash,
}

impl Store {
    /// Opens the store at `root`, creating it if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for dir in ["blobs", "partial", "tmp", "quarantine"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(|source| StoreError::io("creating", &path, source))?;
        }
        let index_path = root.join("index.redb");
        let db = redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .create(&index_path)
            .map_err(|source| StoreError::open_index(&index_path, source))?;
        let root_dir = rustix::fs::open(
            &root,
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|errno| StoreError::io("opening", &root, errno.into()))?;
        let store = Store {
            root,
            root_dir,
            db,
            tmp_counter: AtomicU64::new(0),
            integrity: integrity::Integrity::default(),
        };
        // A commit syncs the index file; only a new store (or one from before
        // the newest table) needs one here.
        let has_tables = store
            .read()
            .and_then(|txn| {
                txn.open_table(index::DOOMED)
                    .map(|_| ())
                    .map_err(StoreError::index)
            })
            .is_ok();
        if !has_tables {
            store.write(index::create_tables)?;
        }
        store.remove_stale_tmp();
        store.finish_quarantines()?;
        store.finish_collection()?;
        Ok(store)
    }

    /// Opens an existing store, refusing to create one.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        if !root.join("index.redb").is_file() {
            return Err(StoreError::NotAStore { path: root });
        }
        Store::open(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a complete blob lives (whether or not it is there).
    pub fn blob_path(&self, blob: &Hash) -> PathBuf {
        let hex = blob.to_hex();
        self.root
            .join("blobs")
            .join(&hex[..2])
            .join(&hex[2..4])
            .join(hex)
    }

    pub fn partial_path(&self, blob: &Hash) -> PathBuf {
        self.root.join("partial").join(blob.to_hex())
    }

    /// A fresh temporary path on the store's filesystem, named for this process.
    pub fn tmp_path(&self) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()))
    }

    /// Removes temporary files left by processes that are no longer running.
    fn remove_stale_tmp(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .unwrap_or("");
            if !Path::new("/proc").join(pid).exists() || pid.is_empty() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Makes every file written so far durable (one `syncfs` for the whole filesystem).
    pub(crate) fn sync_files(&self) -> Result<(), StoreError> {
        let dir = std::fs::File::open(&self.root)
            .map_err(|source| StoreError::io("opening", &self.root, source))?;
        rustix::fs::syncfs(&dir)
            .map_err(|errno| StoreError::io("syncing", &self.root, errno.into()))
    }

    pub(crate) fn write<T>(
        &self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(StoreError::index)?;
        let value = body(&txn)?;
        txn.commit().map_err(StoreError::index)?;
        Ok(value)
    }

    pub(crate) fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.db.begin_read().map_err(StoreError::index)
    }

    /// The complete blob's record, if the store holds it.
    pub fn blob_info(&self, blob: &Hash) -> Result<Option<BlobInfo>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::BLOBS).map_err(StoreError::index)?;
        let info = table.get(blob.as_bytes()).map_err(StoreError::index)?;
        Ok(info.map(|v| index::decode_blob(v.value())))
    }

    /// Whether a complete, verified copy of the blob is held.
    pub fn has_blob(&self, blob: &Hash) -> Result<bool, StoreError> {
        Ok(self.blob_info(blob)?.is_some())
    }

    /// Number of complete blobs held.
    pub fn blob_count(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::BLOBS).map_err(StoreError::index)?;
        table.len().map_err(StoreError::index)
    }

    /// Number of distinct chunks in the chunk index.
    pub fn chunk_count(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::CHUNKS).map_err(StoreError::index)?;
        table.len().map_err(StoreError::index)
    }

    /// Where a chunk is held locally, if anywhere.
    pub fn chunk_location(&self, chunk: &Hash) -> Result<Option<ChunkLocation>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::CHUNKS).map_err(StoreError::index)?;
        let found = table.get(chunk.as_bytes()).map_err(StoreError::index)?;
        Ok(found.map(|v| index::decode_chunk(v.value())))
    }

    /// Whether the index holds this object (without reading or checking it).
    pub fn has_object(&self, hash: &Hash) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::OBJECTS).map_err(StoreError::index)?;
        Ok(table
            .get(hash.as_bytes())
            .map_err(StoreError::index)?
            .is_some())
    }

    /// The raw bytes of an object, checked against its hash.
    pub fn object_bytes(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::OBJECTS).map_err(StoreError::index)?;
        let Some(bytes) = table.get(hash.as_bytes()).map_err(StoreError::index)? else {
            return Ok(None);
        };
        let bytes = bytes.value().to_vec();
        let actual = Hash::of(&bytes);
        if actual != *hash {
            return Err(StoreError::CorruptObject {
                hash: *hash,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// A decoded object, checked against its hash.
    pub fn object(&self, hash: &Hash) -> Result<Option<Object>, StoreError> {
        match self.object_bytes(hash)? {
            None => Ok(None),
            Some(bytes) => {
                Object::decode(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::BadObject {
                        hash: *hash,
                        cause: source,
                    })
            }
        }
    }

    /// Like [`Store::object`], but a missing object is an error naming it.
    pub fn require_object(&self, hash: &Hash) -> Result<Object, StoreError> {
        self.object(hash)?
            .ok_or(StoreError::MissingObject { hash: *hash })
    }

    /// The manifest object named `hash`.
    pub fn manifest(&self, hash: &Hash) -> Result<FileManifest, StoreError> {
        self.require_object(hash)?
            .into_manifest()
            .map_err(|source| StoreError::BadObject {
                hash: *hash,
                cause: source,
            })
    }

    /// Stores objects that arrived from elsewhere, each checked against its hash.
    pub fn put_objects(&self, objects: &[(Hash, Vec<u8>)]) -> Result<(), StoreError> {
        for (hash, bytes) in objects {
            Object::decode_verified(hash, bytes).map_err(|source| StoreError::BadObject {
                hash: *hash,
                cause: source,
            })?;
        }
        self.write(|txn| {
            let mut table = txn.open_table(index::OBJECTS).map_err(StoreError::index)?;
            for (hash, bytes) in objects {
                table
                    .insert(hash.as_bytes(), bytes.as_slice())
                    .map_err(StoreError::index)?;
            }
            Ok(())
        })
    }

    /// The signed catalog currently in force, if any.
    pub fn signed_catalog(&self) -> Result<Option<SignedCatalog>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::META).map_err(StoreError::index)?;
        let Some(bytes) = table.get(index::META_CATALOG).map_err(StoreError::index)? else {
            return Ok(None);
        };
        SignedCatalog::decode(bytes.value())
            .map(Some)
            .map_err(|cause| StoreError::BadCatalog { cause })
    }

    /// The encoded signed catalog in force, as it travels.
    pub fn signed_catalog_bytes(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::META).map_err(StoreError::index)?;
        let value = table.get(index::META_CATALOG).map_err(StoreError::index)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// The bytes of a chunk held locally, read from the blob that holds it and
    /// checked against the chunk's hash: damaged data is never handed out.
    /// (The blob is left for a scrub or `shanlu verify` to quarantine: on an
    /// origin, its other chunks stay servable.)
    pub fn chunk_bytes(&self, chunk: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        use std::os::unix::fs::FileExt;
        let Some(location) = self.chunk_location(chunk)? else {
            return Ok(None);
        };
        let path = self.blob_path(&location.blob);
        let relative = path.strip_prefix(&self.root).unwrap_or(&path);
        let file = match self.open_beneath(relative, rustix::fs::OFlags::RDONLY) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::CorruptChunk {
                    chunk: *chunk,
                    blob: location.blob,
                    path,
                });
            }
            Err(cause) => return Err(StoreError::io("opening", &path, cause)),
        };
        let mut bytes = vec![0u8; location.len as usize];
        if file.read_exact_at(&mut bytes, location.offset).is_err() || Hash::of(&bytes) != *chunk {
            return Err(StoreError::CorruptChunk {
                chunk: *chunk,
                blob: location.blob,
                path,
            });
        }
        Ok(Some(bytes))
    }

    /// A small named value kept in the index (status records and the like).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::META).map_err(StoreError::index)?;
        let value = table.get(name).map_err(StoreError::index)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Sets a named value; `catalog` is reserved for [`Store::set_signed_catalog`].
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        debug_assert_ne!(name, index::META_CATALOG);
        self.write(|txn| {
            let mut table = txn.open_table(index::META).map_err(StoreError::index)?;
            table.insert(name, value).map_err(StoreError::index)?;
            Ok(())
        })
    }

    /// Replaces the catalog in force. The caller has verified it; its object is stored too.
    pub fn set_signed_catalog(&self, signed: &SignedCatalog) -> Result<(), StoreError> {
        self.write(|txn| index::put_catalog(txn, signed, false))
    }
}

#[cfg(test)]
mod tests;
