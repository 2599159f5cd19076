use std::io;
use std::path::{Path, PathBuf};

use crate::hash::Hash;
use crate::object::DecodeError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{action} {path}: {cause}")]
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
