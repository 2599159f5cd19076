//! What administrators ask of the origin over the sync protocol (issue 15):
//! a connection whose hello carries an admin token (`admins.toml`) may send
//! [`AdminRequest`]s; every action is logged with the token's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{self, FrameError, Response};
use crate::serve::State;

/// An administrator's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// Who the origin takes this token for.
    Whoami,
}

/// The origin's answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminResponse {
    Whoami { name: String },
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
    _desk: &Desk,
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
    }
}
