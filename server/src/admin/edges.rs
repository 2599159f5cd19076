//! Administrators' requests about edges (issue 15): add, revoke, list.
//!
//! The same blocking steps serve `shanlu origin add-edge/revoke/edges` on
//! the origin machine (as [`super::log::LOCAL`]) and an administrator's
//! remote requests (as the admin token's name): each action is checked
//! before anything changes, done, then logged in `admin.log`.

use std::path::Path;

use serde::Serialize;

use crate::join::{JoinCode, JoinError};
use crate::origin::PublicAddresses;
use crate::protocol::{self, FrameError, Response};
use crate::tokens::{self, Book, TokenError};

use super::log::{self, LogError};
use super::{AdminRequest, AdminResponse, Desk};

/// Why an action on edges or administrators failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgesError {
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error("cannot make the join code")]
    Join(#[from] JoinError),
    #[error("the action was done but not logged")]
    Log(#[from] LogError),
}

/// A new edge's credentials.
#[derive(Debug)]
pub struct Added {
    /// Shown once; the origin keeps only its hash.
    pub token: String,
    /// `None` when the origin knows no QUIC address edges reach it at.
    pub join: Option<JoinCode>,
}

/// One name in `edges.toml` or `admins.toml`, as `origin edges --json`
/// prints it (no token hash: it keys the edge's reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub name: String,
    pub county: Option<String>,
    /// Unix seconds.
    pub added_at: u64,
    pub revoked: bool,
    /// Unix seconds.
    pub revoked_at: Option<u64>,
}

/// Adds edge `name` (in `county`) to the origin in `dir` for `admin`. The
/// join code uses `addresses` where given, else `origin.toml`'s; they and
/// the origin's key and certificate are checked before the token is made.
pub fn add_edge(
    dir: &Path,
    admin: &str,
    name: &str,
    county: Option<&str>,
    addresses: &PublicAddresses,
) -> Result<Added, EdgesError> {
    let stored = crate::origin::public_addresses(dir).map_err(JoinError::from)?;
    let addresses = PublicAddresses {
        quic: addresses.quic.clone().or(stored.quic),
        https: addresses.https.clone().or(stored.https),
    };
    // Checked with a stand-in token, so nothing is issued for a code that cannot be made.
    let mut join = JoinCode::for_origin(dir, &addresses, &"0".repeat(64))?;
    let token = tokens::add(dir, Book::Edges, name, county)?;
    if let Some(join) = &mut join {
        hex::decode_to_slice(&token, &mut join.token).map_err(|_| JoinError::Token)?;
    }
    let detail = match county {
        Some(county) => format!("county {county}"),
        None => String::new(),
    };
    log::record(dir, admin, "add-edge", name, &detail)?;
    Ok(Added { token, join })
}

/// Adds administrator `name` for `admin`; returns the token (shown once).
pub fn add_admin(dir: &Path, admin: &str, name: &str) -> Result<String, EdgesError> {
    let token = tokens::add(dir, Book::Admins, name, None)?;
    log::record(dir, admin, "add-admin", name, "")?;
    Ok(token)
}

/// Revokes `name` in `book` for `admin`: its token is refused from the
/// next connection. Returns false if it was revoked already.
pub fn revoke(dir: &Path, admin: &str, book: Book, name: &str) -> Result<bool, EdgesError> {
    let newly = tokens::revoke(dir, book, name)?;
    let action = match book {
        Book::Edges => "revoke",
        Book::Admins => "revoke-admin",
    };
    let detail = if newly { "" } else { "already revoked" };
    log::record(dir, admin, action, name, detail)?;
    Ok(newly)
}

/// Every name in `book`, revoked ones included, sorted by name.
pub fn list(dir: &Path, book: Book) -> Result<Vec<Listed>, EdgesError> {
    Ok(tokens::list(dir, book)?
        .into_iter()
        .map(|record| Listed {
            revoked: record.revoked_at.is_some(),
            name: record.name,
            county: record.county,
            added_at: record.added_at,
            revoked_at: record.revoked_at,
        })
        .collect())
}

/// The JSON `origin edges --json` prints: `{"edges": [...]}`.
pub fn list_json(dir: &Path) -> Result<String, EdgesError> {
    let edges = list(dir, Book::Edges)?;
    Ok(serde_json::json!({ "edges": edges }).to_string())
}

/// Answers [`AdminRequest::AddEdge`], [`AdminRequest::RevokeEdge`] and
/// [`AdminRequest::ListEdges`] from `admin`. A refusal is answered as
/// [`Response::Error`] naming the cause, and logged.
pub async fn answer(
    request: AdminRequest,
    admin: &str,
    desk: &Desk,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<(), FrameError> {
    let dir = desk.dir().to_owned();
    let who = admin.to_owned();
    let done = tokio::task::spawn_blocking(move || act(&dir, &who, request)).await;
    let response = match done {
        Ok(Ok(response)) => Response::Admin(response),
        Ok(Err(message)) => Response::Error { message },
        Err(panicked) => {
            tracing::error!(%panicked, admin, "an administrator's request about edges failed");
            Response::Error {
                message: "the origin failed while answering; its log says why".to_owned(),
            }
        }
    };
    protocol::write_frame(send, &response).await
}

/// The blocking part of [`answer`]: the response, or the refusal's message.
fn act(dir: &Path, admin: &str, request: AdminRequest) -> Result<AdminResponse, String> {
    let (action, subject) = match &request {
        AdminRequest::AddEdge { name, .. } => ("add-edge", name.clone()),
        AdminRequest::RevokeEdge { name } => ("revoke", name.clone()),
        _ => ("list-edges", String::new()),
    };
    let result = match request {
        AdminRequest::AddEdge { name, county } => add_edge(
            dir,
            admin,
            &name,
            county.as_deref(),
            &PublicAddresses::default(),
        )
        .map(|added| AdminResponse::EdgeAdded {
            token: added.token,
            join_code: added.join.map(|join| join.encode()),
        }),
        AdminRequest::RevokeEdge { name } => revoke(dir, admin, Book::Edges, &name)
            .map(|newly| AdminResponse::EdgeRevoked { already: !newly }),
        AdminRequest::ListEdges => list_json(dir).map(|json| AdminResponse::Edges { json }),
        // The dispatcher sends only the requests above here.
        _ => return Err("not a request about edges".to_owned()),
    };
    result.map_err(|err| {
        let message = catalog::format::error_chain(&err);
        // A listing changes nothing: only refused changes are logged.
        if action != "list-edges"
            && let Err(log_err) =
                log::record(dir, admin, action, &subject, &format!("refused: {message}"))
        {
            tracing::warn!(cause = %catalog::format::error_chain(&log_err), "cannot log a refusal");
        }
        message
    })
}

#[cfg(test)]
#[path = "edges_tests.rs"]
mod tests;
