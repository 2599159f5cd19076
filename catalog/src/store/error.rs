use std::io;
use std::path::{Path, PathBuf};

use crate::hash::Hash;
use crate::object::DecodeError;

/// What a person can do about an I/O error, as a clause to append to its
/// message (empty when there is nothing better to say than the error).
/// Issue 11: a full disk or a name too long must not read as a permissions
/// problem or a malformed request.
pub fn remedy(cause: &io::Error) -> &'static str {
    match cause.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            "; the disk holding it is full: free some space and run again (what was stored before is kept)"
        }
        io::ErrorKind::InvalidFilename => {
            "; the name or path is too long for the file system: shorten it"
        }
        io::ErrorKind::PermissionDenied => "; check its permissions and owner",
        io::ErrorKind::ReadOnlyFilesystem => "; the file system is read-only",
        io::ErrorKind::NotFound => "; it is not there (moved or deleted meanwhile?)",
        _ => "",
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {cause}{}", remedy(cause))]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("{path} is not a shanlu store (no index.redb); check the --data folder")]
    NotAStore { path: PathBuf },
    #[error("opening the store index {path}: {reason}")]
    OpenIndex { path: PathBuf, reason: String },
    #[error("store index: {0}")]
    Index(String),
    #[error("object {hash} is not in the store")]
    MissingObject { hash: Hash },
    #[error("object {hash} in the store hashed to {actual}: the index is damaged")]
    CorruptObject { hash: Hash, actual: Hash },
    #[error("object {hash}: {cause}")]
    BadObject { hash: Hash, cause: DecodeError },
    #[error("the stored signed catalog is damaged: {reason}")]
    BadCatalog { reason: String },
    #[error(
        "chunk {index} of blob {blob} should be {expected} ({expected_len} bytes) but hashed to {actual} ({actual_len} bytes)"
    )]
    ChunkMismatch {
        blob: Hash,
        index: usize,
        expected: Hash,
        expected_len: u32,
        actual: Hash,
        actual_len: usize,
    },
    #[error(
        "chunk {chunk} is damaged in blob {blob} ({path}); run `shanlu verify` on this data folder"
    )]
    CorruptChunk {
        chunk: Hash,
        blob: Hash,
        path: PathBuf,
    },
    #[error("blob {expected} was assembled but hashed to {actual}; its chunks were discarded")]
    BlobMismatch { expected: Hash, actual: Hash },
    #[error("blob {blob} is missing {missing} chunks; fetch them before finishing")]
    Incomplete { blob: Hash, missing: usize },
    #[error(
        "{path} changed while it was being stored; publish again once it is no longer being written"
    )]
    ChangedWhileReading { path: PathBuf },
    #[error(
        "manifest for blob {blob} is inconsistent: chunk lengths do not add up to {size} bytes"
    )]
    BadManifest { blob: Hash, size: u64 },
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, cause: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_owned(),
            cause,
        }
    }

    pub(crate) fn index(err: impl Into<redb::Error>) -> Self {
        StoreError::Index(err.into().to_string())
    }

    pub(crate) fn open_index(path: &Path, err: redb::DatabaseError) -> Self {
        let reason = match err {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                "another program holds it exclusively; stop it and try again".to_owned()
            }
            other => other.to_string(),
        };
        StoreError::OpenIndex {
            path: path.to_owned(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 11: each I/O failure says what happened, not "check its permissions".
    #[test]
    fn io_errors_say_what_happened() {
        let io_error = |kind: io::ErrorKind| StoreError::Io {
            action: "writing",
            path: PathBuf::from("/data/store/tmp/1"),
            cause: io::Error::from(kind),
        };
        let full = io_error(io::ErrorKind::StorageFull).to_string();
        assert!(full.contains("the disk holding it is full"), "{full}");
        assert!(!full.contains("permissions"), "{full}");
        let long = StoreError::Io {
            action: "opening",
            path: PathBuf::from("x"),
            cause: io::Error::from_raw_os_error(36),
        }
        .to_string();
        assert!(long.contains("too long"), "{long}");
        let denied = io_error(io::ErrorKind::PermissionDenied).to_string();
        assert!(denied.contains("permissions"), "{denied}");
        let other = io_error(io::ErrorKind::Other).to_string();
        assert!(other.ends_with("other error"), "{other}");
    }
}
