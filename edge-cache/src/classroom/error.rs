//! Why a classroom request failed on the edge's side. Every such failure —
//! the store's index, a held file that cannot be opened or read, a blocking
//! task that stopped — is answered `500 Internal Server Error` and logged
//! with its whole cause chain and the request path, never turned into an
//! empty list or a `200` with no body (issue 12). "Not found" is not an
//! error here: it is an `Ok(None)` and a 404.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use catalog::Hash;
use catalog::object::DecodeError;
use catalog::store::StoreError;
use tracing::error;

/// A read of the edge's store that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the catalog in force from the store")]
    Catalog(#[source] Box<StoreError>),
    #[error(
        "the catalog in force in the store does not decode; `shanlu edge sync` fetches it again"
    )]
    BadCatalog(#[source] DecodeError),
    #[error("reading {what} {hash} from the store")]
    Object {
        what: &'static str,
        hash: Hash,
        #[source]
        source: Box<StoreError>,
    },
    #[error(
        "{what} {hash} named by the catalog in force is not in the store; `shanlu edge sync` fetches it again"
    )]
    MissingObject { what: &'static str, hash: Hash },
    #[error("{what} {hash} in the store is another kind of object")]
    WrongKind {
        what: &'static str,
        hash: Hash,
        #[source]
        source: DecodeError,
    },
    #[error("opening held file {blob}")]
    OpenBlob {
        blob: Hash,
        #[source]
        source: Box<StoreError>,
    },
    #[error("reading held file {blob}")]
    ReadBlob {
        blob: Hash,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the edge's status")]
    Status(#[source] Box<crate::sync::SyncError>),
    #[error("reading the school's own lessons")]
    Shelf(#[source] Box<crate::teachers::shelf::ShelfError>),
    #[error("a blocking read of the store stopped before it finished")]
    Stopped,
}

impl ReadError {
    /// The answer to a request for `path` that failed with this error: a
    /// 500 whose body names what failed, and a log line with the path and the
    /// whole chain of causes.
    pub fn answer(&self, path: &str) -> Response {
        let cause = self.log(path);
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the edge could not answer {path}: {cause}\n"),
        )
            .into_response()
    }
}

impl ReadError {
    /// A failed read of `what` named `hash`, for `map_err`.
    pub(crate) fn object(what: &'static str, hash: Hash) -> impl FnOnce(StoreError) -> ReadError {
        move |source| ReadError::Object {
            what,
            hash,
            source: Box::new(source),
        }
    }

    /// A held file that could not be opened, for `map_err`.
    pub(crate) fn open_blob(blob: Hash) -> impl FnOnce(StoreError) -> ReadError {
        move |source| ReadError::OpenBlob {
            blob,
            source: Box::new(source),
        }
    }

    /// Logs this error as the cause of a 500 for `path`; returns the cause chain.
    pub fn log(&self, path: &str) -> String {
        let cause = chain(self);
        error!(path, cause = %cause, "a classroom request failed on the edge's side; answering 500");
        cause
    }
}

/// An error and its causes, outermost first, as `{err:#}` prints them with anyhow.
pub use catalog::format::error_chain as chain;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    /// Issue 12: the cause is kept as a `source()`, not flattened, and the
    /// 500's body and log name it whole.
    #[tokio::test]
    async fn errors_keep_their_cause_and_answer_500_issue_12() {
        let io = std::io::Error::new(std::io::ErrorKind::NotADirectory, "Not a directory");
        let blob = Hash::of(b"x");
        let err = ReadError::ReadBlob { blob, source: io };
        let source = err.source().expect("a source");
        assert_eq!(source.to_string(), "Not a directory");
        let response = err.answer("/files/x");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .expect("a body");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("/files/x"), "{body}");
        assert!(
            body.contains(&format!("reading held file {blob}: Not a directory")),
            "{body}"
        );
    }
}
