//! `shanlu origin add-edge|revoke|edges --origin …` (issue 15): enrolling
//! and revoking schools from an administrator's own machine. The origin
//! does the work as on its own machine and logs it with the token's name.

use anyhow::{Context, bail};
use server::admin::{AdminRequest, AdminResponse};

use super::{RemoteArgs, ask, runtime};

/// Asks the origin behind `remote` one request about edges.
fn request(
    remote: &RemoteArgs,
    request: AdminRequest,
    what: &str,
) -> anyhow::Result<AdminResponse> {
    runtime()?.block_on(async {
        let admin = remote.connect().await?;
        let answer = ask(&admin.client, request)
            .await
            .with_context(|| format!("{what} at {}", admin.origin));
        admin.client.close().await;
        answer
    })
}

/// A new edge's token and, when the origin knows its public addresses, its join code.
pub fn add_edge(
    remote: &RemoteArgs,
    name: &str,
    county: Option<&str>,
) -> anyhow::Result<(String, Option<String>)> {
    let asked = AdminRequest::AddEdge {
        name: name.to_owned(),
        county: county.map(str::to_owned),
    };
    match request(remote, asked, &format!("adding edge {name}"))? {
        AdminResponse::EdgeAdded { token, join_code } => Ok((token, join_code)),
        other => bail!("the origin answered {other:?} to adding an edge"),
    }
}

/// Revokes edge `name`; false if it was revoked already.
pub fn revoke(remote: &RemoteArgs, name: &str) -> anyhow::Result<bool> {
    let asked = AdminRequest::RevokeEdge {
        name: name.to_owned(),
    };
    match request(remote, asked, &format!("revoking edge {name}"))? {
        AdminResponse::EdgeRevoked { already } => Ok(!already),
        other => bail!("the origin answered {other:?} to a revocation"),
    }
}

/// The edges as `origin edges --json` prints them.
pub fn list(remote: &RemoteArgs) -> anyhow::Result<String> {
    match request(remote, AdminRequest::ListEdges, "listing the edges")? {
        AdminResponse::Edges { json } => Ok(json),
        other => bail!("the origin answered {other:?} to listing the edges"),
    }
}
