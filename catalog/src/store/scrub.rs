//! Scrub: re-hash every blob and object the index names. A blob found bad or
//! gone is quarantined at once ([`super::integrity`]): never served again, and
//! fetched again by the next sync.

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
            ScrubProblem::BadBlob { blob, .. } => Some((*blob, QuarantineReason::Damaged)),
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
            let path = self.blob_path(&blob);
            report.blobs_checked += 1;
            let relative = path.strip_prefix(&self.root).unwrap_or(&path);
            let problem = match self.open_beneath(relative, rustix::fs::OFlags::RDONLY) {
                Ok(file) => self.scrub_blob(
                    blob,
                    info.size,
                    &path,
                    file,
                    &mut buffer,
                    progress,
                    &mut report,
                )?,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    Some(ScrubProblem::MissingBlob { blob, path })
                }
                Err(source) => return Err(StoreError::io("opening", &path, source)),
            };
            if let Some(problem) = problem {
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

    /// Hashes one blob's open file; records its identity when it is good.
    #[expect(clippy::too_many_arguments, reason = "internal step of the scrub loop")]
    fn scrub_blob(
        &self,
        blob: Hash,
        expected: u64,
        path: &std::path::Path,
        mut file: std::fs::File,
        buffer: &mut [u8],
        progress: &mut dyn FnMut(u64),
        report: &mut ScrubReport,
    ) -> Result<Option<ScrubProblem>, StoreError> {
        let before = file
            .metadata()
            .map(|meta| FileIdentity::of(&meta))
            .map_err(|source| StoreError::io("checking", path, source))?;
        let mut hasher = Hasher::new();
        let mut size = 0u64;
        loop {
            let read = std::io::Read::read(&mut file, buffer)
                .map_err(|source| StoreError::io("reading", path, source))?;
            if read == 0 {
                break;
            }
            hasher.update_parallel(&buffer[..read]);
            size += read as u64;
            progress(read as u64);
        }
        report.bytes_checked += size;
        let actual = hasher.finalize();
        let path = path.to_owned();
        if size != expected {
            return Ok(Some(ScrubProblem::WrongSize {
                blob,
                path,
                expected,
                actual: size,
            }));
        }
        if actual != blob {
            return Ok(Some(ScrubProblem::BadBlob { blob, path, actual }));
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
        Ok(None)
    }
}
