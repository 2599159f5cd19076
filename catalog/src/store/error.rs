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
    #[error("opening the store index {path}{}", already_open_hint(cause))]
    OpenIndex {
        path: PathBuf,
        #[source]
        cause: redb::DatabaseError,
    },
    /// The index database failed; the cause says how.
    #[error("the store index (redb) failed")]
    Database {
        #[source]
        cause: redb::Error,
    },
    /// A worker (a thread, a blocking task) stopped before it answered;
    /// `what` names it and the step, and `cause` is why when there is one
    /// (a panic carries none that is an error).
    #[error("{what} stopped before it finished")]
    Stopped {
        what: &'static str,
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("object {hash} is not in the store")]
    MissingObject { hash: Hash },
    #[error(
        "chunk {chunk} is not held in any blob of this store; run `shanlu verify` on this data folder"
    )]
    MissingChunk { chunk: Hash },
    #[error("object {hash} in the store hashed to {actual}: the index is damaged")]
    CorruptObject { hash: Hash, actual: Hash },
    #[error("object {hash}: {cause}")]
    BadObject { hash: Hash, cause: DecodeError },
    #[error("the stored signed catalog is damaged")]
    BadCatalog {
        #[source]
        cause: crate::sign::CatalogError,
    },
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
    /// Another process using the same data folder is assembling this file.
    #[error(
        "file {blob} is being fetched by another shanlu process using this data folder ({path}); \
         it is left to that one and taken up by a later pass if still missing"
    )]
    PartialBusy { blob: Hash, path: PathBuf },
}

impl StoreError {
    pub fn io(action: &'static str, path: &Path, cause: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.to_owned(),
            cause,
        }
    }

    /// A worker that stopped: a panicked thread (no `cause`) or a task
    /// whose join failed.
    pub fn stopped(
        what: &'static str,
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Stopped { what, cause }
    }

    pub(crate) fn index(err: impl Into<redb::Error>) -> Self {
        StoreError::Database { cause: err.into() }
    }

    pub(crate) fn open_index(path: &Path, cause: redb::DatabaseError) -> Self {
        StoreError::OpenIndex {
            path: path.to_owned(),
            cause,
        }
    }
}

/// What to do when the index is held by another program.
fn already_open_hint(cause: &redb::DatabaseError) -> &'static str {
    match cause {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            ": another program holds it exclusively; stop it and try again"
        }
        _ => "",
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

    /// Issue 12: index and catalog errors keep their cause as `source()`
    /// instead of a string.
    #[test]
    fn issue_12_index_and_catalog_errors_keep_their_source() {
        use std::error::Error;
        let open = StoreError::open_index(
            Path::new("/data/store/index.redb"),
            redb::DatabaseError::DatabaseAlreadyOpen,
        );
        assert!(
            open.to_string().contains("another program holds it"),
            "{open}"
        );
        let source = open.source().expect("a source");
        assert!(
            source.downcast_ref::<redb::DatabaseError>().is_some(),
            "{source:?}"
        );

        let damaged = crate::SignedCatalog::decode(b"\xff\xff").expect_err("garbage");
        let err = StoreError::BadCatalog { cause: damaged };
        let source = err.source().expect("a source");
        let catalog = source
            .downcast_ref::<crate::sign::CatalogError>()
            .expect("the catalog error");
        assert!(
            catalog.source().is_some(),
            "postcard's error is kept: {catalog:?}"
        );
    }

    /// Issue 12: a stopped worker keeps the reason it stopped as `source()`,
    /// and the message names the worker.
    #[test]
    fn stopped_worker_keeps_its_cause_issue_12() {
        let cause = std::io::Error::other("the runtime shut down");
        let err = StoreError::stopped("checking which files are held", Some(Box::new(cause)));
        assert_eq!(
            err.to_string(),
            "checking which files are held stopped before it finished"
        );
        let source = std::error::Error::source(&err).expect("the cause is kept");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
        assert!(std::error::Error::source(&StoreError::stopped("the sync thread", None)).is_none());
    }
}
