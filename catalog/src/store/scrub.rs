//! Scrub: re-hash every blob and object the index names. A blob found bad or
//! gone is quarantined at once ([`super::integrity`]): never served again, and
//! fetched again by the next sync.
//!
//! Two ways in: [`Store::scrub`] checks everything in one go (`shanlu verify`);
//! [`Store::held_blobs_after`] and [`Store::scrub_one`] let a caller check one
//! blob at a time in hash order, pace each block it reads, stop anywhere and
//! carry on later from the last blob it finished (the edge's background
//! scrub, issue 13).

use std::path::PathBuf;

use redb::ReadableTable;

use super::index::{self, BLOBS, OBJECTS};
use super::integrity::FileIdentity;
use super::quarantine::QuarantineReason;
use super::{Store, StoreError};
use crate::hash::{Hash, Hasher};
use crate::object::Object;

/// One thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrubProblem {
    /// The file of a blob the index records is gone.
    MissingBlob { blob: Hash, path: PathBuf },
    /// The blob's bytes no longer hash to its name.
    BadBlob {
        blob: Hash,
        path: PathBuf,
        actual: Hash,
    },
    /// The blob's size differs from the recorded one.
    WrongSize {
        blob: Hash,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// A stored object's bytes no longer hash to its name, or do not decode.
    BadObject { hash: Hash, reason: String },
    /// Reading the blob's file failed part-way (a failing disk).
    Unreadable {
        blob: Hash,
        path: PathBuf,
        /// The read error, as text: a finding is reported, not propagated.
        cause: String,
    },
}

impl std::fmt::Display for ScrubProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScrubProblem::MissingBlob { blob, path } => {
                write!(
                    f,
                    "blob {blob} is missing: {} does not exist",
                    path.display()
                )
            }
            ScrubProblem::BadBlob { blob, path, actual } => {
                write!(
                    f,
                    "blob {blob} is damaged: {} hashes to {actual}",
                    path.display()
                )
            }
            ScrubProblem::WrongSize {
                blob,
                path,
                expected,
                actual,
            } => write!(
                f,
                "blob {blob} is damaged: {} is {actual} bytes, expected {expected}",
                path.display()
            ),
            ScrubProblem::BadObject { hash, reason } => {
                write!(f, "object {hash} is damaged: {reason}")
            }
            ScrubProblem::Unreadable { blob, path, cause } => write!(
                f,
                "blob {blob} is unreadable: reading {} failed: {cause}",
                path.display()
            ),
        }
    }
}

/// What a scrub checked and found.
#[derive(Debug, Default)]
pub struct ScrubReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub objects_checked: u64,
    pub problems: Vec<ScrubProblem>,
    /// Blobs taken out of service: moved to `quarantine/`, no longer held.
    pub quarantined: Vec<Hash>,
}

impl ScrubProblem {
    /// The blob this problem takes out of service, and why.
    fn quarantine(&self) -> Option<(Hash, QuarantineReason)> {
        match self {
            ScrubProblem::MissingBlob { blob, .. } => Some((*blob, QuarantineReason::Missing)),
            ScrubProblem::WrongSize { blob, .. } => Some((*blob, QuarantineReason::WrongSize)),
            ScrubProblem::BadBlob { blob, .. } | ScrubProblem::Unreadable { blob, .. } => {
                Some((*blob, QuarantineReason::Damaged))
            }
            ScrubProblem::BadObject { .. } => None,
        }
    }
}

impl Store {
    /// Total bytes of complete blobs: the work a scrub will do.
    pub fn blob_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let mut total = 0;
        for entry in table.iter().map_err(StoreError::index)? {
            let (_, value) = entry.map_err(StoreError::index)?;
            total += index::decode_blob(value.value()).size;
        }
        Ok(total)
    }

    /// Re-hashes every blob and object; `progress` gets byte counts as blobs
    /// are read. A bad or missing blob is quarantined as soon as it is found.
    pub fn scrub(&self, progress: &mut dyn FnMut(u64)) -> Result<ScrubReport, StoreError> {
        let mut report = ScrubReport::default();
        let txn = self.read()?;
        let objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        for entry in objects.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let hash = Hash::from_bytes(*key.value());
            report.objects_checked += 1;
            if let Err(err) = Object::decode_verified(&hash, value.value()) {
                report.problems.push(ScrubProblem::BadObject {
                    hash,
                    reason: err.to_string(),
                });
            }
        }
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let mut buffer = vec![0u8; 1024 * 1024];
        for entry in blobs.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            let info = index::decode_blob(value.value());
            report.blobs_checked += 1;
            let mut read = |n| {
                progress(n);
                true
            };
            let (bytes, outcome) = self.check_blob(blob, info.size, &mut buffer, &mut read)?;
            report.bytes_checked += bytes;
            if let Outcome::Bad(problem) = outcome {
                if let Some((blob, reason)) = problem.quarantine()
                    && self.quarantine_blob(&blob, reason)?
                {
                    report.quarantined.push(blob);
                }
                report.problems.push(problem);
            }
        }
        Ok(report)
    }

    /// Up to `limit` held blobs whose hashes come after `after` (from the
    /// first when `None`), in hash order, with their sizes: the next work of
    /// a scrub that remembers only the last blob it finished.
    pub fn held_blobs_after(
        &self,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<(Hash, u64)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let range = match after {
            Some(after) => table.range::<&[u8; 32]>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => table.range::<&[u8; 32]>(..),
        }
        .map_err(StoreError::index)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in range.take(limit) {
            let (key, value) = entry.map_err(StoreError::index)?;
            out.push((
                Hash::from_bytes(*key.value()),
                index::decode_blob(value.value()).size,
            ));
        }
        Ok(out)
    }

    /// Re-hashes one held blob in full against its name, reading `buffer`'s
    /// length at a time; `read(n)` is called after each block and stops the
    /// check when it returns `false` (pacing sleeps in it; a shutdown or a
    /// sync pass starting stops it). A blob found bad (another hash or size,
    /// gone, unreadable) is quarantined before this returns.
    pub fn scrub_one(
        &self,
        blob: &Hash,
        buffer: &mut [u8],
        read: &mut dyn FnMut(u64) -> bool,
    ) -> Result<BlobCheck, StoreError> {
        let Some(info) = self.blob_info(blob)? else {
            return Ok(BlobCheck::NotHeld);
        };
        let (bytes, outcome) = self.check_blob(*blob, info.size, buffer, read)?;
        Ok(match outcome {
            Outcome::Good => BlobCheck::Good { bytes },
            Outcome::Stopped => BlobCheck::Stopped { bytes },
            Outcome::Bad(problem) => {
                let quarantined = match problem.quarantine() {
                    Some((blob, reason)) => self.quarantine_blob(&blob, reason)?,
                    None => false,
                };
                // Not held any more: collected or quarantined meanwhile, so
                // what was read is no finding.
                if !quarantined && !self.has_blob(blob)? {
                    return Ok(BlobCheck::NotHeld);
                }
                BlobCheck::Bad {
                    bytes,
                    problem,
                    quarantined,
                }
            }
        })
    }

    /// Opens and re-hashes one blob: the bytes read and what was found.
    fn check_blob(
        &self,
        blob: Hash,
        expected: u64,
        buffer: &mut [u8],
        read: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(u64, Outcome), StoreError> {
        let path = self.blob_path(&blob);
        let relative = path.strip_prefix(&self.root).unwrap_or(&path);
        match self.open_beneath(relative, rustix::fs::OFlags::RDONLY) {
            Ok(file) => self.scrub_blob(blob, expected, &path, file, buffer, read),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Ok((0, Outcome::Bad(ScrubProblem::MissingBlob { blob, path })))
            }
            Err(source) => Err(StoreError::io("opening", &path, source)),
        }
    }

    /// Hashes one blob's open file; records its identity when it is good.
    fn scrub_blob(
        &self,
        blob: Hash,
        expected: u64,
        path: &std::path::Path,
        mut file: std::fs::File,
        buffer: &mut [u8],
        read_more: &mut dyn FnMut(u64) -> bool,
    ) -> Result<(u64, Outcome), StoreError> {
        let before = file
            .metadata()
            .map(|meta| FileIdentity::of(&meta))
            .map_err(|source| StoreError::io("checking", path, source))?;
        let mut hasher = Hasher::new();
        let mut size = 0u64;
        loop {
            let read = match std::io::Read::read(&mut file, buffer) {
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    let problem = ScrubProblem::Unreadable {
                        blob,
                        path: path.to_owned(),
                        cause: err.to_string(),
                    };
                    return Ok((size, Outcome::Bad(problem)));
                }
            };
            if read == 0 {
                break;
            }
            hasher.update_parallel(&buffer[..read]);
            size += read as u64;
            if !read_more(read as u64) {
                return Ok((size, Outcome::Stopped));
            }
        }
        let actual = hasher.finalize();
        let path = path.to_owned();
        if size != expected {
            let problem = ScrubProblem::WrongSize {
                blob,
                path,
                expected,
                actual: size,
            };
            return Ok((size, Outcome::Bad(problem)));
        }
        if actual != blob {
            return Ok((
                size,
                Outcome::Bad(ScrubProblem::BadBlob { blob, path, actual }),
            ));
        }
        // Verified just now: a file whose identity changed harmlessly (a
        // copy, a restore) need not be re-hashed before it is served.
        let after = file
            .metadata()
            .map(|meta| FileIdentity::of(&meta))
            .map_err(|source| StoreError::io("checking", &path, source))?;
        if after == before && self.blob_identity(&blob)? != Some(after) {
            self.record_identity(&blob, &after)?;
        }
        Ok((size, Outcome::Good))
    }
}

/// What re-hashing one blob ([`Store::scrub_one`]) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobCheck {
    /// Its bytes hash to its name.
    Good { bytes: u64 },
    /// Found bad; `quarantined`: taken out of service by this check.
    Bad {
        bytes: u64,
        problem: ScrubProblem,
        quarantined: bool,
    },
    /// Asked to stop before the end: nothing concluded, check it again later.
    Stopped { bytes: u64 },
    /// Not held (any more): quarantined or collected; nothing to check.
    NotHeld,
}

/// What one blob's re-hash found, before any quarantine.
enum Outcome {
    Good,
    Bad(ScrubProblem),
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunker::tests::generated;

    /// A store holding `count` blobs of `len` bytes; their hashes in hash order.
    fn store_with(count: u64, len: usize) -> (tempfile::TempDir, Store, Vec<Hash>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("open store");
        let mut blobs = Vec::new();
        for seed in 0..count {
            let path = dir.path().join(format!("file-{seed}"));
            let imported =
                crate::testdata::store_file(&store, &path, &generated(len, 2 * seed + 60));
            blobs.push(imported.manifest.blob);
        }
        blobs.sort_by_key(|blob| *blob.as_bytes());
        (dir, store, blobs)
    }

    /// Issue 13: a background scrub that remembers only the last blob it
    /// finished visits every held blob once, in order, in bounded batches,
    /// and carries on from any point.
    #[test]
    fn issue_13_the_resume_cursor_visits_every_blob_once() {
        let (_dir, store, blobs) = store_with(5, 10_000);
        let mut seen = Vec::new();
        let mut cursor: Option<Hash> = None;
        for _ in 0..10 {
            let next = store
                .held_blobs_after(cursor.as_ref(), 2)
                .expect("next blobs");
            assert!(next.len() <= 2);
            let Some((last, _)) = next.last().copied() else {
                break;
            };
            seen.extend(next.iter().map(|(blob, size)| {
                assert_eq!(*size, 10_000);
                *blob
            }));
            cursor = Some(last);
        }
        assert_eq!(seen, blobs);
        // Resuming after the third blob (a restart) finds the last two.
        let rest = store
            .held_blobs_after(Some(&blobs[2]), 100)
            .expect("next blobs");
        let rest: Vec<Hash> = rest.into_iter().map(|(blob, _)| blob).collect();
        assert_eq!(rest, blobs[3..]);
    }

    /// Issue 13: checking one blob reads it whole in blocks, can be stopped
    /// part-way without a verdict, and quarantines a same-size corruption.
    #[test]
    fn issue_13_scrub_one_checks_stops_and_quarantines() {
        let (_dir, store, blobs) = store_with(2, 100_000);
        let mut buffer = vec![0u8; 16 * 1024];
        let mut calls = 0;
        let good = store
            .scrub_one(&blobs[0], &mut buffer, &mut |n| {
                assert!(n <= 16 * 1024);
                calls += 1;
                true
            })
            .expect("scrub one");
        assert_eq!(good, BlobCheck::Good { bytes: 100_000 });
        assert_eq!(calls, 7, "100 000 bytes in 16 KiB blocks");

        let stopped = store
            .scrub_one(&blobs[0], &mut buffer, &mut |_| false)
            .expect("scrub one");
        assert_eq!(stopped, BlobCheck::Stopped { bytes: 16 * 1024 });
        assert!(store.has_blob(&blobs[0]).expect("index"));

        let path = store.blob_path(&blobs[1]);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[70_000] ^= 0x08;
        std::fs::write(&path, bytes).expect("write");
        let bad = store
            .scrub_one(&blobs[1], &mut buffer, &mut |_| true)
            .expect("scrub one");
        match bad {
            BlobCheck::Bad {
                bytes: 100_000,
                problem: ScrubProblem::BadBlob { blob, .. },
                quarantined: true,
            } => assert_eq!(blob, blobs[1]),
            other => panic!("{other:?}"),
        }
        assert!(store.is_quarantined(&blobs[1]).expect("index"));
        assert_eq!(
            store
                .scrub_one(&blobs[1], &mut buffer, &mut |_| true)
                .expect("scrub one"),
            BlobCheck::NotHeld
        );
        let left: Vec<Hash> = store
            .held_blobs_after(None, 10)
            .expect("held")
            .into_iter()
            .map(|(blob, _)| blob)
            .collect();
        assert_eq!(left, vec![blobs[0]]);
    }
}
