//! `DIR/fleet/inbox/`: reports that reached the origin on a USB stick
//! (issue 15), waiting for the fleet.
//!
//! `bundle create --for HAVE` runs beside a running `origin serve`, which
//! holds the fleet's database. So it checks each report's seal against
//! `edges.toml` and files it here, durably, before the bundle's receipt
//! tells the edge it may forget the report; `origin serve` drains the inbox
//! into the fleet when it starts and every [`DRAIN_EVERY`] after. A report
//! filed twice (two sticks) is applied once, like any other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::report::{Envelope, ReportSink, report_key};
use crate::tokens::Book;

use super::{AcceptError, Fleet};

/// How often `origin serve` takes the inbox into the fleet.
pub const DRAIN_EVERY: Duration = Duration::from_secs(30);
/// Most reports waiting in the inbox; past this a stick's reports are
/// refused (they stay queued on the edge).
pub const MAX_WAITING: usize = 20_000;

/// The inbox of the origin in `dir`.
pub struct Inbox {
    dir: PathBuf,
    origin: PathBuf,
}

/// One waiting report: who sent it, and the sealed envelope.
#[derive(serde::Serialize, serde::Deserialize)]
struct Filed {
    sender: String,
    #[serde(with = "serde_bytes")]
    envelope: Vec<u8>,
}

impl Inbox {
    pub fn new(origin: &Path) -> Inbox {
        Inbox {
            dir: origin.join("fleet").join("inbox"),
            origin: origin.to_owned(),
        }
    }

    fn waiting(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "report"))
            .collect()
    }

    /// Files one report after checking its seal; durable when it returns.
    fn file(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
        let records = crate::tokens::list(&self.origin, Book::Edges).map_err(|e| e.to_string())?;
        let Some(record) = records
            .into_iter()
            .find(|r| r.name == sender && r.revoked_at.is_none())
        else {
            return Err(AcceptError::UnknownSender {
                sender: sender.to_owned(),
            }
            .to_string());
        };
        Envelope::decode(envelope)
            .and_then(|sealed| sealed.open(&report_key(&record.token_b3), sender))
            .map_err(|e| e.to_string())?;
        if self.waiting().len() >= MAX_WAITING {
            return Err(format!(
                "the origin's report inbox {} holds {MAX_WAITING} reports; start `origin serve` to take them in, then make the bundle again",
                self.dir.display()
            ));
        }
        let filed = Filed {
            sender: sender.to_owned(),
            envelope: envelope.to_vec(),
        };
        let bytes = postcard::to_stdvec(&filed).map_err(|e| e.to_string())?;
        let name = catalog::Hash::of(&bytes).to_hex();
        write_durably(&self.dir, &name, &bytes).map_err(|cause| {
            format!(
                "cannot file a report in {}: {cause}; check the disk",
                self.dir.display()
            )
        })
    }

    /// Takes every waiting report into `fleet`; returns how many were new.
    /// A report the fleet refuses for good (a revoked sender, a bad seal)
    /// is dropped with a log line; one it cannot keep now stays.
    pub fn drain(&self, fleet: &Fleet) -> usize {
        let mut taken = 0;
        let paths = self.waiting();
        for group in paths.chunks(super::store::MAX_BATCH) {
            let mut envelopes = Vec::with_capacity(group.len());
            let mut files = Vec::with_capacity(group.len());
            for path in group {
                let read = std::fs::read(path)
                    .ok()
                    .and_then(|bytes| postcard::from_bytes::<Filed>(&bytes).ok());
                match read {
                    Some(filed) => {
                        envelopes.push((filed.sender, filed.envelope));
                        files.push(path);
                    }
                    None => {
                        tracing::warn!(file = %path.display(), "a report in the inbox does not read; removed");
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
            for (path, outcome) in files.into_iter().zip(fleet.accept_many(&envelopes)) {
                match outcome {
                    Ok(new) => taken += usize::from(new),
                    Err(AcceptError::Keep(_) | AcceptError::Closed) => continue,
                    Err(err) => {
                        tracing::warn!(file = %path.display(), cause = %err, "a report from a USB stick was refused")
                    }
                }
                let _ = std::fs::remove_file(path);
            }
        }
        if taken > 0 {
            tracing::info!(reports = taken, "took reports that came on USB sticks");
        }
        taken
    }
}

impl ReportSink for Inbox {
    fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
        self.file(sender, envelope)
    }
}

/// Writes `bytes` to `dir/name.report` through a temporary file, synced
/// before and after the rename.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(format!("{name}.report")))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(token: &str, seq: u64) -> Vec<u8> {
        crate::fleet::tests::sealed_seq(token, seq)
    }

    /// Issue 15: a stick's reports are checked when filed, kept while the
    /// fleet is held by `origin serve`, and taken in once (twice filed,
    /// once counted).
    #[test]
    fn issue_15_reports_filed_from_a_stick_reach_the_fleet_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        crate::Origin::init(dir.path()).expect("init");
        let token = crate::tokens::add_edge(dir.path(), "school-1").expect("add");
        let inbox = Inbox::new(dir.path());
        inbox.accept("school-1", &sealed(&token, 1)).expect("filed");
        inbox
            .accept("school-1", &sealed(&token, 1))
            .expect("filed again");
        inbox.accept("school-1", &sealed(&token, 2)).expect("filed");
        let forged = inbox.accept("school-1", &sealed("not its token", 3));
        assert!(forged.expect_err("a bad seal").contains("seal"));
        let stranger = inbox.accept("nobody", &sealed(&token, 4));
        assert!(stranger.expect_err("unknown").contains("not an edge"));
        assert_eq!(inbox.waiting().len(), 2, "the same report is one file");

        let fleet = Fleet::open(dir.path()).expect("fleet");
        assert_eq!(inbox.drain(&fleet), 2);
        assert!(fleet.holds("school-1", 1) && fleet.holds("school-1", 2));
        assert!(inbox.waiting().is_empty());
        inbox.accept("school-1", &sealed(&token, 2)).expect("filed");
        assert_eq!(inbox.drain(&fleet), 0, "already held");
        assert_eq!(fleet.edge("school-1").expect("record").reports, 2);
    }
}
