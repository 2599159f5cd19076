//! Administrators' requests about edges (issue 15): add, revoke, list.

use crate::protocol::{self, FrameError, Response};

use super::{AdminRequest, Desk};

/// Answers [`AdminRequest::AddEdge`], [`AdminRequest::RevokeEdge`] and
/// [`AdminRequest::ListEdges`] from `admin`.
pub async fn answer(
    request: AdminRequest,
    admin: &str,
    desk: &Desk,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> Result<(), FrameError> {
    let _ = (request, admin, desk);
    let message = "not answered yet".to_owned();
    protocol::write_frame(send, &Response::Error { message }).await
}
