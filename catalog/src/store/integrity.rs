//! File identity: what keeps a changed or damaged blob file from being served.
//!
//! When a blob is put in place, the index records the identity of its file
//! (device, inode, size, modification and change times) beside the blob's
//! record. Before a blob is served, [`Store::open_blob`] opens it and compares
//! one `fstat` of the open file with that identity (kept in memory after the
//! first look). A file that differs is not served: [`Store::recheck_blob`]
//! re-hashes it, one re-check per blob at a time, and either records the new
//! identity (the bytes are still right) or quarantines the blob.
//!
//! Quarantining a blob is the `quarantine` module's part.
//!
//! A sync notices what is gone or quarantined with [`Store::check_held`] (one
//! open and `fstat` per held blob, no re-hash unless the identity changed) and
//! fetches it again; putting it back in place clears its quarantine record and
//! removes the quarantined copy.
//!
//! Blobs put in place before identities were recorded have none; the first
//! look adopts the file as it is if its size is right (what was trusted before).
//! The identity cannot see a change made within the same timestamp tick as the
//! rename that put the file in place, nor bit rot that leaves the metadata
//! alone: a scrub or `shanlu verify` finds those.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::PoisonError;

use redb::ReadableTable;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use tracing::warn;

use super::index::{self, BLOBS, IDENTITIES};
use super::quarantine::QuarantineReason;
use super::{Store, StoreError};
use crate::hash::{Hash, Hasher};

/// Identities remembered in memory; beyond this the memory starts again empty.
const REMEMBERED: usize = 65_536;
/// Bytes read at a time when re-hashing a blob.
const READ_BLOCK: usize = 1024 * 1024;

/// What the file system says about a blob's file: if none of it changed since
/// the file was verified, neither did the file (short of bit rot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Seconds and nanoseconds.
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A blob opened for serving.
#[derive(Debug)]
pub enum OpenedBlob {
    /// Held, and the open file is the one that was verified.
    Verified { file: File, len: u64 },
    /// Held, but its file is gone or is not the one that was verified:
    /// not to be served before [`Store::recheck_blob`].
    Changed,
    /// Not held.
    NotHeld,
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The blob's place under the store root: `blobs/ab/cd/<hash>`.
pub(super) fn blob_relative(blob: &Hash) -> PathBuf {
    let hex = blob.to_hex();
    Path::new("blobs")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(hex.as_str())
}

/// The slot of the one re-check of a blob running; freed when dropped.
struct RecheckSlot<'s> {
    store: &'s Store,
    blob: Hash,
}

impl Drop for RecheckSlot<'_> {
    fn drop(&mut self) {
        let mut busy = self
            .store
            .integrity
            .rechecks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        busy.remove(&self.blob);
        self.store.integrity.recheck_done.notify_all();
    }
}

/// In-memory state of the checks: verified identities, re-checks running.
#[derive(Default)]
pub(crate) struct Integrity {
    verified: std::sync::Mutex<HashMap<Hash, FileIdentity>>,
    rechecks: std::sync::Mutex<HashSet<Hash>>,
    recheck_done: std::sync::Condvar,
}

impl Store {
    /// Opens `relative` under the store root without following a symlink at
    /// any level and without leaving the root.
    pub(crate) fn open_beneath(&self, relative: &Path, flags: OFlags) -> io::Result<File> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.root_dir, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(File::from(fd)),
            // No openat2 (old kernel, a seccomp filter) or a rename raced with
            // the lookup: walk one directory at a time instead.
            Err(Errno::NOSYS | Errno::PERM | Errno::AGAIN) => self.open_walking(relative, flags),
            Err(errno) => Err(errno.into()),
        }
    }

    fn open_walking(&self, relative: &Path, flags: OFlags) -> io::Result<File> {
        let mut names = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => names.push(name),
                _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
            }
        }
        let Some((last, dirs)) = names.split_last() else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let mut dir: Option<OwnedFd> = None;
        for name in dirs {
            let next = match &dir {
                Some(dir) => rustix::fs::openat(dir, *name, dir_flags, Mode::empty()),
                None => rustix::fs::openat(&self.root_dir, *name, dir_flags, Mode::empty()),
            }?;
            dir = Some(next);
        }
        let fd = match &dir {
            Some(dir) => rustix::fs::openat(dir, *last, flags, Mode::empty()),
            None => rustix::fs::openat(&self.root_dir, *last, flags, Mode::empty()),
        }?;
        Ok(File::from(fd))
    }

    fn remembered(&self, blob: &Hash) -> Option<FileIdentity> {
        lock(&self.integrity.verified).get(blob).copied()
    }

    fn remember(&self, blob: Hash, identity: FileIdentity) {
        let mut verified = lock(&self.integrity.verified);
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(blob, identity);
    }

    pub(super) fn forget(&self, blob: &Hash) {
        lock(&self.integrity.verified).remove(blob);
    }

    /// The identity recorded for the blob's file when it was last verified.
    pub fn blob_identity(&self, blob: &Hash) -> Result<Option<FileIdentity>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(IDENTITIES).map_err(StoreError::index)?;
        let value = table.get(blob.as_bytes()).map_err(StoreError::index)?;
        Ok(value.map(|v| index::decode_identity(v.value())))
    }

    /// Records that the blob's file, as it is now, was verified.
    pub(crate) fn record_identity(
        &self,
        blob: &Hash,
        identity: &FileIdentity,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
            // A blob quarantined meanwhile stays quarantined.
            if blobs
                .get(blob.as_bytes())
                .map_err(StoreError::index)?
                .is_none()
            {
                return Ok(());
            }
            let mut table = txn.open_table(IDENTITIES).map_err(StoreError::index)?;
            table
                .insert(blob.as_bytes(), index::encode_identity(identity).as_slice())
                .map_err(StoreError::index)?;
            Ok(())
        })?;
        self.remember(*blob, *identity);
        Ok(())
    }

    /// Opens a blob for serving and checks, with one `fstat` of the open file,
    /// that it is the file that was verified. Anything but
    /// [`OpenedBlob::Verified`] must not be served as it is.
    pub fn open_blob(&self, blob: &Hash) -> Result<OpenedBlob, StoreError> {
        let relative = blob_relative(blob);
        let file = match self.open_beneath(&relative, OFlags::RDONLY) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(if self.has_blob(blob)? {
                    OpenedBlob::Changed
                } else {
                    OpenedBlob::NotHeld
                });
            }
            Err(cause) => return Err(StoreError::io("opening", &self.root.join(relative), cause)),
        };
        let meta = file
            .metadata()
            .map_err(|cause| StoreError::io("checking", &self.root.join(&relative), cause))?;
        let identity = FileIdentity::of(&meta);
        if let Some(known) = self.remembered(blob) {
            return Ok(if known == identity {
                OpenedBlob::Verified {
                    file,
                    len: identity.size,
                }
            } else {
                OpenedBlob::Changed
            });
        }
        let Some(info) = self.blob_info(blob)? else {
            return Ok(OpenedBlob::NotHeld);
        };
        match self.blob_identity(blob)? {
            Some(recorded) if recorded == identity => {}
            Some(_) => return Ok(OpenedBlob::Changed),
            // Put in place before identities were recorded: adopted as it is.
            None if info.size == identity.size => self.record_identity(blob, &identity)?,
            None => return Ok(OpenedBlob::Changed),
        }
        self.remember(*blob, identity);
        Ok(OpenedBlob::Verified {
            file,
            len: identity.size,
        })
    }

    /// Re-checks a held blob whose file changed (or vanished): re-hashes it,
    /// records its new identity and returns it opened if its bytes are still
    /// right, quarantines it otherwise. One re-check of a blob runs at a time;
    /// a caller arriving during one waits for it and takes its outcome. Blocks.
    pub fn recheck_blob(&self, blob: &Hash) -> Result<Option<(File, u64)>, StoreError> {
        let _slot = self.recheck_slot(*blob);
        self.forget(blob);
        let Some(info) = self.blob_info(blob)? else {
            return Ok(None);
        };
        let relative = blob_relative(blob);
        let path = self.root.join(&relative);
        let file = match self.open_beneath(&relative, OFlags::RDONLY) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.quarantine_blob(blob, QuarantineReason::Missing)?;
                return Ok(None);
            }
            Err(cause) => return Err(StoreError::io("opening", &path, cause)),
        };
        let identity_now = |file: &File| {
            file.metadata()
                .map(|meta| FileIdentity::of(&meta))
                .map_err(|cause| StoreError::io("checking", &path, cause))
        };
        let before = identity_now(&file)?;
        // Someone else re-checked or fetched it again meanwhile.
        if self.blob_identity(blob)? == Some(before) {
            self.remember(*blob, before);
            return Ok(Some((file, before.size)));
        }
        if before.size != info.size {
            self.quarantine_blob(blob, QuarantineReason::WrongSize)?;
            return Ok(None);
        }
        let actual = hash_file(&file, &path, before.size)?;
        if actual != Some(*blob) {
            self.quarantine_blob(blob, QuarantineReason::Damaged)?;
            return Ok(None);
        }
        if identity_now(&file)? != before {
            // Being written to as it was read: not served until it settles.
            warn!(blob = %blob, path = %path.display(), "a blob's file changed while it was re-checked");
            return Ok(None);
        }
        self.record_identity(blob, &before)?;
        Ok(Some((file, before.size)))
    }

    fn recheck_slot(&self, blob: Hash) -> RecheckSlot<'_> {
        let mut busy = self
            .integrity
            .rechecks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while busy.contains(&blob) {
            busy = self
                .integrity
                .recheck_done
                .wait(busy)
                .unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(blob);
        RecheckSlot { store: self, blob }
    }

    /// Whether the blob is held with its verified file in place: one open and
    /// `fstat`, and a re-hash only if the file changed. A blob whose file is
    /// gone or bad is quarantined here, so a sync fetches it again. Blocks.
    pub fn check_held(&self, blob: &Hash) -> Result<bool, StoreError> {
        match self.open_blob(blob)? {
            OpenedBlob::Verified { .. } => Ok(true),
            OpenedBlob::NotHeld => Ok(false),
            OpenedBlob::Changed => Ok(self.recheck_blob(blob)?.is_some()),
        }
    }
}

/// BLAKE3 of the first `size` bytes of `file`; `None` if it has fewer.
fn hash_file(file: &File, path: &Path, size: u64) -> Result<Option<Hash>, StoreError> {
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; READ_BLOCK];
    let mut offset = 0u64;
    while offset < size {
        let len = buffer.len().min((size - offset) as usize);
        match file.read_exact_at(&mut buffer[..len], offset) {
            Ok(()) => {}
            // Shorter than it was a moment ago.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(cause) => return Err(StoreError::io("reading", path, cause)),
        }
        hasher.update_parallel(&buffer[..len]);
        offset += len as u64;
    }
    Ok(Some(hasher.finalize()))
}
