//! Reports on USB sticks (issue 15). The have list carries an edge's
//! queued reports to the origin; `bundle create --for` hands each to the
//! origin's [`ReportSink`] and writes, for those it kept, a [`Receipt`]
//! sealed with that edge's key into the bundle (`receipts.json`). `edge
//! import` verifies each receipt with its own key and drops the reports it
//! names from its queue; a receipt for another edge, or with a bad seal, is
//! ignored with a log line, never an import failure.

use std::collections::BTreeMap;
use std::path::Path;

use server::report::{Envelope, Receipt, ReportSink, report_key};
use server::tokens::{self, Book as TokenBook};
use tracing::{info, warn};

use super::have::HaveList;

/// The receipts file in a bundle folder.
pub const RECEIPTS: &str = "receipts.json";

/// Hands the have list's reports to `sink` as coming from the edge it
/// names (known in the `edges.toml` in `data`: the origin's, or a county
/// edge's `downstream/`); returns a receipt
/// per edge named in the reports (the sender, or a county's child), sealed
/// with the sender's key. Reports the sink refuses get no receipt (the
/// edge keeps them).
pub fn take_reports(data: &Path, have: &HaveList, sink: &dyn ReportSink) -> Vec<Receipt> {
    let Some(sender) = have.edge.as_deref() else {
        if !have.reports.is_empty() {
            warn!(
                reports = have.reports.len(),
                "the have list's reports name no edge (it never synced); left on the edge"
            );
        }
        return Vec::new();
    };
    let record = match tokens::list(data, TokenBook::Edges) {
        Ok(records) => records.into_iter().find(|r| r.name == sender),
        Err(err) => {
            warn!(cause = %err, "cannot read the origin's edges to take the stick's reports");
            return Vec::new();
        }
    };
    let Some(record) = record else {
        warn!(edge = %sender, "the have list's edge is not among the edges this origin or county edge serves; its reports are left on the edge");
        return Vec::new();
    };
    let mut taken: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for bytes in &have.reports {
        let Ok(envelope) = Envelope::decode(bytes) else {
            warn!(edge = %sender, "a report on the stick does not decode; skipped");
            continue;
        };
        let Ok(report) = server::report::EdgeReport::decode(&envelope.report) else {
            warn!(edge = %sender, "a report on the stick does not decode; skipped");
            continue;
        };
        match sink.accept(sender, bytes) {
            Ok(()) => taken
                .entry(envelope.origin_name(sender))
                .or_default()
                .push(report.seq),
            Err(why) => {
                warn!(edge = %sender, seq = report.seq, cause = %why, "a report on the stick was refused")
            }
        }
    }
    let key = report_key(&record.token_b3);
    (taken.into_iter())
        .map(|(edge, seqs)| {
            info!(%edge, reports = seqs.len(), "took reports from the stick");
            Receipt::seal(&key, edge, seqs)
        })
        .collect()
}

/// Reads the bundle's receipts and applies those for this edge (see the
/// module's tour). Returns how many queued reports were dropped; never an
/// error (each problem is logged).
pub fn apply(folder: &Path, data: &Path, token: &str) -> u64 {
    let path = folder.join(RECEIPTS);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(err) => {
            warn!(path = %path.display(), cause = %err, "cannot read the bundle's receipts; ignored");
            return 0;
        }
    };
    let receipts: Vec<Receipt> = match serde_json::from_slice(&bytes) {
        Ok(receipts) => receipts,
        Err(err) => {
            warn!(path = %path.display(), cause = %err, "the bundle's receipts do not read; ignored");
            return 0;
        }
    };
    let mut dropped = 0;
    for receipt in receipts.iter().take(crate::bundle::have::MAX_REPORTS) {
        match crate::report::apply_receipt(data, token, receipt) {
            Ok(n) => dropped += n as u64,
            Err(err) => warn!(cause = %crate::sync::error_chain(&err), "applying a receipt"),
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use server::report::{EdgeReport, report_key_of_token};

    use super::*;
    use crate::report::Book;
    use crate::report::make::make;
    use crate::report::usage::UsageTable;

    /// Keeps what it is handed; refuses sequence 2.
    #[derive(Default)]
    struct Sink(Mutex<Vec<(String, usize)>>);

    impl ReportSink for Sink {
        fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
            let report = Envelope::decode(envelope).map_err(|e| e.to_string())?;
            let report = EdgeReport::decode(&report.report).map_err(|e| e.to_string())?;
            if report.seq == 2 {
                return Err("not now".into());
            }
            self.0
                .lock()
                .expect("lock")
                .push((sender.to_owned(), envelope.len()));
            Ok(())
        }
    }

    /// Issue 15: a stick's reports reach the sink; the receipts come back
    /// in the bundle and the edge drops exactly the reports kept; a
    /// receipt sealed for another edge changes nothing.
    #[test]
    fn issue_15_stick_reports_are_taken_and_receipts_applied() {
        let origin = tempfile::tempdir().expect("tempdir");
        let edge = tempfile::tempdir().expect("tempdir");
        let token = server::tokens::add_edge(origin.path(), "school-7").expect("adds");
        let book = Book::new(edge.path());
        let key = report_key_of_token(&token);
        for _ in 0..3 {
            make(&book, &key, &EdgeReport::default(), &UsageTable::default()).expect("makes");
        }
        let mut open = book.open().expect("opens");
        open.ledger.name = Some("school-7".into());
        open.commit().expect("commits");
        drop(open);
        let mut have = HaveList::default();
        have.add_reports(edge.path()).expect("reads the queue");
        assert_eq!(
            (have.edge.as_deref(), have.reports.len()),
            (Some("school-7"), 3)
        );
        let sink = Sink::default();
        let receipts = take_reports(origin.path(), &have, &sink);
        assert_eq!(sink.0.lock().expect("lock").len(), 2);
        assert_eq!(receipts.len(), 1);
        assert_eq!(receipts[0].seqs, vec![1, 3]);
        // A foreign receipt first: ignored.
        let folder = tempfile::tempdir().expect("tempdir");
        let foreign = Receipt::seal(&report_key_of_token("x"), "school-7".into(), vec![2]);
        let write = |receipts: &[Receipt]| {
            std::fs::write(
                folder.path().join(RECEIPTS),
                serde_json::to_vec(receipts).expect("json"),
            )
            .expect("writes");
        };
        write(&[foreign]);
        assert_eq!(apply(folder.path(), edge.path(), &token), 0);
        write(&receipts);
        assert_eq!(apply(folder.path(), edge.path(), &token), 2);
        assert_eq!(book.status().pending, 1, "the refused report stays");
        std::fs::write(folder.path().join(RECEIPTS), b"not json").expect("writes");
        assert_eq!(apply(folder.path(), edge.path(), &token), 0);
    }
}
