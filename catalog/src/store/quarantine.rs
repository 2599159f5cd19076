//! Quarantine: taking a blob found bad or gone out of service.
//!
//! A blob found bad — by a re-check, a scrub or `shanlu verify`, a chunk read
//! that fails its hash — is quarantined at once: its file is moved from
//! `blobs/` to `quarantine/<hash>` (a rename between directory handles on the
//! same filesystem), and only then does the index stop calling it held (its
//! record moves to the quarantine table; chunk locations inside it move to
//! another blob holding the same chunk, or are dropped). Moving first makes a
//! `kill -9` between the two harmless: a blob whose file is not in `blobs/` is
//! never served, and [`Store::open`] finishes the index part.
//!
//! Putting a blob back in place clears its quarantine record and removes the
//! quarantined copy.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;

use redb::ReadableTable;
use rustix::fs::OFlags;
use rustix::io::Errno;
use tracing::warn;

use super::index::{self, BLOBS, CHUNKS, IDENTITIES, OBJECTS, QUARANTINE};
use super::integrity::blob_relative;
use super::{BlobInfo, ChunkLocation, Store, StoreError};
use crate::hash::Hash;
use crate::object::Object;

/// Why a blob was quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineReason {
    /// Its file was gone.
    Missing,
    /// Its file had another size than the blob.
    WrongSize,
    /// Its bytes no longer hash to its name.
    Damaged,
}

impl QuarantineReason {
    pub(crate) fn code(self) -> u8 {
        match self {
            QuarantineReason::Missing => 1,
            QuarantineReason::WrongSize => 2,
            QuarantineReason::Damaged => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> QuarantineReason {
        match code {
            1 => QuarantineReason::Missing,
            2 => QuarantineReason::WrongSize,
            _ => QuarantineReason::Damaged,
        }
    }
}

impl std::fmt::Display for QuarantineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QuarantineReason::Missing => "its file is missing",
            QuarantineReason::WrongSize => "its file has the wrong size",
            QuarantineReason::Damaged => "its bytes do not hash to its name",
        })
    }
}

/// A quarantined blob's record: what it was, when and why it was taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineRecord {
    pub info: BlobInfo,
    /// Unix seconds.
    pub at: u64,
    pub reason: QuarantineReason,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Takes a blob found bad or gone out of service: moves its file to
    /// `quarantine/`, then records it as quarantined, not held. Returns whether
    /// it was held. Safe to repeat; a crash between the two steps is finished
    /// by [`Store::open`].
    pub fn quarantine_blob(
        &self,
        blob: &Hash,
        reason: QuarantineReason,
    ) -> Result<bool, StoreError> {
        self.forget(blob);
        // Not held: already quarantined, or being put in place right now.
        let Some(info) = self.blob_info(blob)? else {
            return Ok(false);
        };
        let moved = self.move_to_quarantine(blob)?;
        self.record_quarantine(blob, info, reason)?;
        warn!(
            blob = %blob,
            %reason,
            moved,
            "blob quarantined; it is no longer served and will be fetched again"
        );
        Ok(true)
    }

    /// The index part of a quarantine: the blob is no longer held, its chunks
    /// are found elsewhere or not at all.
    fn record_quarantine(
        &self,
        blob: &Hash,
        info: BlobInfo,
        reason: QuarantineReason,
    ) -> Result<(), StoreError> {
        let chunks: Vec<Hash> = match self.object(&info.manifest) {
            Ok(Some(Object::Manifest(manifest))) => {
                manifest.chunks.iter().map(|chunk| chunk.hash).collect()
            }
            _ => Vec::new(),
        };
        let elsewhere = self.other_locations(blob, &chunks)?;
        let record = QuarantineRecord {
            info,
            at: now_secs(),
            reason,
        };
        self.write(|txn| {
            let mut blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
            blobs.remove(blob.as_bytes()).map_err(StoreError::index)?;
            let mut identities = txn.open_table(IDENTITIES).map_err(StoreError::index)?;
            identities
                .remove(blob.as_bytes())
                .map_err(StoreError::index)?;
            let mut quarantine = txn.open_table(QUARANTINE).map_err(StoreError::index)?;
            quarantine
                .insert(
                    blob.as_bytes(),
                    index::encode_quarantine(&record).as_slice(),
                )
                .map_err(StoreError::index)?;
            let mut table = txn.open_table(CHUNKS).map_err(StoreError::index)?;
            for chunk in &chunks {
                let current = table
                    .get(chunk.as_bytes())
                    .map_err(StoreError::index)?
                    .map(|v| index::decode_chunk(v.value()));
                if current.is_none_or(|location| location.blob != *blob) {
                    continue;
                }
                match elsewhere.get(chunk) {
                    Some(location) => table
                        .insert(chunk.as_bytes(), &index::encode_chunk(location))
                        .map(|_| ()),
                    None => table.remove(chunk.as_bytes()).map(|_| ()),
                }
                .map_err(StoreError::index)?;
            }
            Ok(())
        })
    }

    /// For chunks of `blob`, a place in another held blob, found by reading
    /// the manifests of the held blobs (quarantines are rare; no reverse index).
    fn other_locations(
        &self,
        blob: &Hash,
        chunks: &[Hash],
    ) -> Result<HashMap<Hash, ChunkLocation>, StoreError> {
        let mut orphans: HashSet<Hash> = HashSet::new();
        {
            let txn = self.read()?;
            let table = txn.open_table(CHUNKS).map_err(StoreError::index)?;
            for chunk in chunks {
                let location = table.get(chunk.as_bytes()).map_err(StoreError::index)?;
                if location.is_some_and(|v| index::decode_chunk(v.value()).blob == *blob) {
                    orphans.insert(*chunk);
                }
            }
        }
        if orphans.is_empty() {
            return Ok(HashMap::new());
        }
        let txn = self.read()?;
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        let mut others = Vec::new();
        for entry in blobs.iter().map_err(StoreError::index)? {
            let other = Hash::from_bytes(*entry.map_err(StoreError::index)?.0.value());
            if other != *blob {
                others.push(other);
            }
        }
        index::locate_chunks(&blobs, &objects, others, &mut orphans)
    }

    /// Moves the blob's file, if there, to `quarantine/<hash>` and makes the
    /// move durable. Returns whether there was a file.
    fn move_to_quarantine(&self, blob: &Hash) -> Result<bool, StoreError> {
        let relative = blob_relative(blob);
        let path = self.root.join(&relative);
        let Some(parent) = relative.parent() else {
            return Ok(false);
        };
        let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY;
        let from = match self.open_beneath(parent, dir_flags) {
            Ok(dir) => dir,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(cause) => return Err(StoreError::io("opening", &self.root.join(parent), cause)),
        };
        let quarantine = Path::new("quarantine");
        let to = self
            .open_beneath(quarantine, dir_flags)
            .map_err(|cause| StoreError::io("opening", &self.root.join(quarantine), cause))?;
        let name = blob.to_hex();
        match rustix::fs::renameat(&from, name.as_str(), &to, name.as_str()) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(false),
            Err(errno) => return Err(StoreError::io("quarantining", &path, errno.into())),
        }
        // The move reaches the disk before the index says the blob is gone.
        for dir in [&from, &to] {
            dir.sync_all()
                .map_err(|cause| StoreError::io("syncing the quarantine of", &path, cause))?;
        }
        Ok(true)
    }

    /// Removes the quarantined copy of a blob that is held again.
    pub(crate) fn drop_quarantined_copy(&self, blob: &Hash) {
        let path = self.root.join("quarantine").join(blob.to_hex());
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(cause) => {
                warn!(path = %path.display(), %cause, "could not remove a quarantined copy")
            }
        }
    }

    /// Blobs in quarantine, with their records.
    pub fn quarantined(&self) -> Result<Vec<(Hash, QuarantineRecord)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE).map_err(StoreError::index)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            out.push((
                Hash::from_bytes(*key.value()),
                index::decode_quarantine(value.value()),
            ));
        }
        Ok(out)
    }

    /// Whether the blob is in quarantine (found bad or gone, not fetched again yet).
    pub fn is_quarantined(&self, blob: &Hash) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(QUARANTINE).map_err(StoreError::index)?;
        Ok(table
            .get(blob.as_bytes())
            .map_err(StoreError::index)?
            .is_some())
    }

    /// Finishes quarantines a crash interrupted: a file moved to `quarantine/`
    /// whose blob the index still holds, with no file in `blobs/`.
    pub(crate) fn finish_quarantines(&self) -> Result<(), StoreError> {
        let dir = self.root.join("quarantine");
        let entries =
            std::fs::read_dir(&dir).map_err(|cause| StoreError::io("reading", &dir, cause))?;
        for entry in entries.flatten() {
            let Some(blob) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<Hash>().ok())
            else {
                continue;
            };
            let Some(info) = self.blob_info(&blob)? else {
                continue;
            };
            match self.open_beneath(&blob_relative(&blob), OFlags::RDONLY) {
                // Fetched again after the quarantine: the copy is stale.
                Ok(_) => self.drop_quarantined_copy(&blob),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    self.record_quarantine(&blob, info, QuarantineReason::Damaged)?;
                    warn!(blob = %blob, "finished a quarantine interrupted by a crash");
                }
                Err(_) => {}
            }
        }
        Ok(())
    }
}
