//! What administrators ask of the origin over the sync protocol (issue 15):
//! a connection whose hello carries an admin token (`admins.toml`) may send
//! [`AdminRequest`]s; every action is logged with the token's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{self, FrameError, Response};
use crate::serve::State;

pub mod edges;
pub mod log;

/// An administrator's request. New variants go at the end (postcard
/// numbers variants by position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Who the origin takes this token for.
    Whoami,
    /// `shanlu origin add-edge --origin …`: a token (and join code) for a new edge.
    AddEdge {
        name: String,
        county: Option<String>,
    },
    /// `shanlu origin revoke NAME --origin …`.
    RevokeEdge { name: String },
    /// `shanlu origin edges --origin …`.
    ListEdges,
}

/// The origin's answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    Whoami {
        name: String,
    },
    EdgeAdded {
        token: String,
        /// `None` when the origin does not know the addresses edges reach it at.
        join_code: Option<String>,
    },
    EdgeRevoked {
        /// It was revoked already.
        already: bool,
    },
    /// The edges as JSON (what `shanlu origin edges --json` prints).
    Edges {
        json: String,
    },
}

/// The origin's side of administrators' requests: its data folder.
pub struct Desk {
    dir: PathBuf,
}

impl Desk {
    pub fn new(dir: &Path) -> Desk {
        Desk {
            dir: dir.to_owned(),
        }
    }

    /// The origin's data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Answers one administrator's request from `admin` (the token's name).
pub async fn answer(
    request: AdminRequest,
    admin: &str,
    desk: &Desk,
    _state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<(), FrameError> {
    match request {
        AdminRequest::Whoami => {
            let response = Response::Admin(AdminResponse::Whoami {
                name: admin.to_owned(),
            });
            protocol::write_frame(send, &response).await
        }
        request @ (AdminRequest::AddEdge { .. }
        | AdminRequest::RevokeEdge { .. }
        | AdminRequest::ListEdges) => edges::answer(request, admin, desk, send).await,
    }
}
