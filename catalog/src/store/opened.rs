//! When each blob was last opened (issue 13): the edge evicts the cached
//! blobs least recently opened first.
//!
//! The classroom does not write a transaction per request: it batches opens
//! in memory and hands them here every few seconds ([`Store::record_opens`]).
//! A blob gets its first time when it joins the store (finish or adopt); a
//! blob from before the table has none and counts from its file's mtime
//! (see [`Store::held_blobs`]).
//!
//! A store from before this table has no `blob_opened` table: reads treat it
//! as empty and the first write creates it, so opening a store never needs a
//! migration.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

use redb::{ReadableTable, TableError};

use super::index::{self, BLOBS, OPENED, PARTIALS};
use super::{Store, StoreError};
use crate::hash::Hash;

/// A held blob, as the edge's quota sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldBlob {
    pub blob: Hash,
    /// The file's size in bytes: what deleting it frees (blobs are whole
    /// files; a chunk two blobs share is stored in both).
    pub size: u64,
    /// When it was last opened or, never opened, added (unix seconds).
    pub last_opened: u64,
}

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Records that these blobs were opened at these times (the latest time
    /// wins), in one transaction. Blobs not held are skipped.
    pub fn record_opens(&self, opens: &[(Hash, u64)]) -> Result<(), StoreError> {
        if opens.is_empty() {
            return Ok(());
        }
        self.write(|txn| {
            let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
            let mut table = txn.open_table(OPENED).map_err(StoreError::index)?;
            for (blob, at) in opens {
                if blobs
                    .get(blob.as_bytes())
                    .map_err(StoreError::index)?
                    .is_none()
                {
                    continue;
                }
                let before = table
                    .get(blob.as_bytes())
                    .map_err(StoreError::index)?
                    .map_or(0, |v| v.value());
                if *at > before {
                    table
                        .insert(blob.as_bytes(), *at)
                        .map_err(StoreError::index)?;
                }
            }
            Ok(())
        })
    }

    /// Every held blob with its size and when it was last opened. A blob
    /// with no recorded time counts from its file's mtime (when it was
    /// written), else from now.
    pub fn held_blobs(&self) -> Result<Vec<HeldBlob>, StoreError> {
        let txn = self.read()?;
        let opened = match txn.open_table(OPENED) {
            Ok(table) => {
                let mut out = HashMap::new();
                for entry in table.iter().map_err(StoreError::index)? {
                    let (key, value) = entry.map_err(StoreError::index)?;
                    out.insert(Hash::from_bytes(*key.value()), value.value());
                }
                out
            }
            Err(TableError::TableDoesNotExist(_)) => HashMap::new(),
            Err(err) => return Err(StoreError::index(err)),
        };
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let mut out = Vec::new();
        for entry in blobs.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            let info = index::decode_blob(value.value());
            let last_opened = match opened.get(&blob) {
                Some(at) => *at,
                None => std::fs::metadata(self.blob_path(&blob))
                    .ok()
                    .and_then(|meta| u64::try_from(meta.mtime()).ok())
                    .unwrap_or_else(now_secs),
            };
            out.push(HeldBlob {
                blob,
                size: info.size,
                last_opened,
            });
        }
        Ok(out)
    }

    /// Every partial blob with its file's size (partial files are sized to
    /// the whole blob when they are started).
    pub fn partial_blobs(&self) -> Result<Vec<(Hash, u64)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PARTIALS).map_err(StoreError::index)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::index)? {
            let (key, _) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            let size = std::fs::metadata(self.partial_path(&blob)).map_or(0, |m| m.len());
            out.push((blob, size));
        }
        Ok(out)
    }
}

/// In the transaction that records finished blobs: they were added now.
pub(crate) fn record_added(txn: &redb::WriteTransaction, blobs: &[Hash]) -> Result<(), StoreError> {
    let mut table = txn.open_table(OPENED).map_err(StoreError::index)?;
    let now = now_secs();
    for blob in blobs {
        table
            .insert(blob.as_bytes(), now)
            .map_err(StoreError::index)?;
    }
    Ok(())
}

/// In a collection's transaction: forget when condemned blobs were opened.
pub(crate) fn forget(txn: &redb::WriteTransaction, blobs: &[Hash]) -> Result<(), StoreError> {
    let mut table = txn.open_table(OPENED).map_err(StoreError::index)?;
    for blob in blobs {
        table.remove(blob.as_bytes()).map_err(StoreError::index)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: a published blob counts from its file's mtime; an open later moves
    /// it forward, an older one does not move it back.
    #[test]
    fn issue_13_opens_are_recorded_and_the_latest_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("open");
        let src = dir.path().join("a.bin");
        let imported = crate::testdata::store_file(&store, &src, &[7u8; 10_000]);
        let blob = imported.manifest.blob;
        let held = store.held_blobs().expect("held");
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].size, 10_000);
        let added = held[0].last_opened;
        assert!(added > 1_700_000_000, "{added}");
        store
            .record_opens(&[(blob, added + 100), (Hash::of(b"not held"), 5)])
            .expect("record");
        store.record_opens(&[(blob, added + 50)]).expect("record");
        let held = store.held_blobs().expect("held");
        assert_eq!(held[0].last_opened, added + 100);
    }

    /// Issue 13: finishing a partial blob waits while a collection holds
    /// `collect.lock`, so the collection never deletes a blob just put in
    /// place; once finished, the blob's time is when it was added.
    #[test]
    fn issue_13_finishing_a_blob_waits_for_a_running_collection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin = Store::open(dir.path().join("origin")).expect("origin");
        let edge = std::sync::Arc::new(Store::open(dir.path().join("edge")).expect("edge"));
        let src = dir.path().join("a.bin");
        let bytes = crate::testdata::generated(300_000, 13);
        let imported = crate::testdata::store_file(&origin, &src, &bytes);
        let (hash, manifest) = (imported.manifest_hash, imported.manifest.clone());
        let blob = manifest.blob;

        let collection = edge.collect_lock().expect("lock file");
        collection.lock().expect("held as a collection holds it");
        let finisher = {
            let edge = edge.clone();
            std::thread::spawn(move || {
                let mut partial = edge.partial(hash, manifest.clone()).expect("partial");
                for (index, (offset, chunk)) in manifest.chunk_offsets().enumerate() {
                    let range = offset as usize..offset as usize + chunk.len as usize;
                    partial.write_chunk(index, &bytes[range]).expect("chunk");
                }
                partial.finish().expect("finish")
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !edge.has_blob(&blob).expect("index"),
            "waits for the collection"
        );
        drop(collection);
        assert_eq!(finisher.join().expect("thread"), blob);
        let held = edge.held_blobs().expect("held");
        assert_eq!(held.len(), 1);
        assert!(now_secs() - held[0].last_opened < 60);
    }
}
