//! Scrub: re-hash every blob and object the index names.

use std::path::PathBuf;

use redb::ReadableTable;

use super::index::{self, BLOBS, OBJECTS};
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

    /// Re-hashes every blob and object; `progress` gets byte counts as blobs are read.
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
            let mut file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    report
                        .problems
                        .push(ScrubProblem::MissingBlob { blob, path });
                    continue;
                }
                Err(source) => return Err(StoreError::io("opening", &path, source)),
            };
            let mut hasher = Hasher::new();
            let mut size = 0u64;
            loop {
                let read = std::io::Read::read(&mut file, &mut buffer)
                    .map_err(|source| StoreError::io("reading", &path, source))?;
                if read == 0 {
                    break;
                }
                hasher.update_parallel(&buffer[..read]);
                size += read as u64;
                progress(read as u64);
            }
            report.bytes_checked += size;
            let actual = hasher.finalize();
            if size != info.size {
                report.problems.push(ScrubProblem::WrongSize {
                    blob,
                    path,
                    expected: info.size,
                    actual: size,
                });
            } else if actual != blob {
                report
                    .problems
                    .push(ScrubProblem::BadBlob { blob, path, actual });
            }
        }
        Ok(report)
    }
}
