//! A county edge's report sink (issue 15): a child's envelope is checked
//! with the child's key (the BLAKE3 of its token, in
//! `DIR/downstream/edges.toml`), sealed again under the county's own key
//! with the child's name added to its path, and queued durably beside the
//! county's own reports, to go upstream with them. A full queue refuses
//! (the child keeps its report and sends it again later).

use std::path::{Path, PathBuf};

use server::report::{Envelope, MAX_PATH, ReportSink, report_key, report_key_of_token};
use server::tokens::{self, Book as TokenBook};
use tracing::info;

use super::book::Book;

/// Forwards the reports of the edges below a county edge.
pub struct Forwarder {
    /// The county edge's data folder.
    data: PathBuf,
    /// Where its children's tokens are (`DIR/downstream`).
    tokens_dir: PathBuf,
    /// The county's own report key.
    key: [u8; 32],
}

impl Forwarder {
    /// The forwarder of the edge in `data`, whose own token is `token`.
    pub fn new(data: &Path, token: &str) -> Forwarder {
        Forwarder {
            data: data.to_owned(),
            tokens_dir: data.join("downstream"),
            key: report_key_of_token(token),
        }
    }
}

impl ReportSink for Forwarder {
    fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
        let records = tokens::list(&self.tokens_dir, TokenBook::Edges)
            .map_err(|err| format!("the county edge cannot read its edges: {err}"))?;
        let Some(record) = records
            .iter()
            .find(|r| r.name == sender && r.revoked_at.is_none())
        else {
            return Err(format!("edge {sender:?} is not known to this county edge"));
        };
        let envelope = Envelope::decode(envelope).map_err(|err| err.to_string())?;
        let report = envelope
            .open(&report_key(&record.token_b3), sender)
            .map_err(|err| err.to_string())?;
        let mut path = envelope.path;
        path.push(sender.to_owned());
        if path.len() > MAX_PATH {
            return Err(format!(
                "the report has come through {} edges; the limit is {MAX_PATH}",
                path.len()
            ));
        }
        let sealed = Envelope::seal_encoded(&self.key, path, envelope.report)
            .encode()
            .map_err(|err| err.to_string())?;
        let mut open = Book::new(&self.data)
            .open()
            .map_err(|err| crate::sync::error_chain(&err))?;
        open.put_forwarded(&sealed)
            .map_err(|err| crate::sync::error_chain(&err))?;
        info!(edge = %sender, seq = report.seq, "queued a report from an edge below, to forward");
        Ok(())
    }
}
