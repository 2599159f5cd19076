//! Edges' reports shared by the origin processes on one bucket (issue 16).
//!
//! An edge sends its reports to whichever process it reached. That process
//! checks the report and keeps it in its own fleet as always, then files it
//! in the bucket under the hour it arrived (`v1/reports/<hour>/<hash>`,
//! written once; the same report filed twice is one object). Every process
//! looks at the filed reports of the last two hours every [`PULL_EVERY`]
//! and takes in those it has not seen, so each one's dashboard shows the
//! whole fleet. A process that was stopped catches up from the hour it last
//! took in, and a new one from [`CATCH_UP_HOURS`] back (the fleet's usage
//! window). Taking a report twice changes nothing: the fleet applies each
//! (edge, sequence) once.
//!
//! Filed reports stay in the bucket, an archive of the fleet's reports;
//! nothing removes them yet.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use crate::bucket::{Bucket, BucketError, block};
use crate::report::ReportSink;

use super::{AcceptError, Fleet};

/// How often each process takes in what the others filed.
pub const PULL_EVERY: Duration = Duration::from_secs(5);
/// How far back a process that was stopped catches up: thirty days.
pub const CATCH_UP_HOURS: u64 = 30 * 24;

/// One filed report: who sent it, and the sealed envelope as it came.
#[derive(serde::Serialize, serde::Deserialize)]
struct Filed {
    sender: String,
    #[serde(with = "serde_bytes")]
    envelope: Vec<u8>,
}

/// The fleet of an origin process on a bucket: its [`ReportSink`].
pub struct SharedReports {
    fleet: Fleet,
    bucket: Bucket,
    /// Names taken in (or filed here), per hour; the last hours only.
    seen: Mutex<BTreeMap<u64, HashSet<String>>>,
    /// The hour whose reports were all taken in, kept across restarts.
    cursor: PathBuf,
}

fn hour_now() -> u64 {
    crate::origin::now_secs() / 3600
}

impl SharedReports {
    pub fn new(fleet: Fleet, bucket: Bucket) -> SharedReports {
        let cursor = fleet.dir().join("fleet").join("shared-hour");
        SharedReports {
            fleet,
            bucket,
            seen: Mutex::new(BTreeMap::new()),
            cursor,
        }
    }

    /// Takes in the reports other processes filed since the last pull (the
    /// last two hours; after a restart, since the hour recorded). Returns
    /// how many were new to this fleet.
    pub fn pull(&self) -> Result<usize, BucketError> {
        let now = hour_now();
        // A new process (no cursor yet) starts with the last thirty days,
        // the fleet's usage window.
        let earliest = now.saturating_sub(CATCH_UP_HOURS);
        let from = std::fs::read_to_string(&self.cursor)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(earliest)
            .clamp(earliest, now.saturating_sub(1));
        let mut taken = 0;
        for hour in from..=now {
            taken += self.pull_hour(hour)?;
        }
        // The hour before this one is complete but for a slow clock
        // elsewhere; it is looked at again next time.
        let _ = std::fs::write(&self.cursor, format!("{}\n", now.saturating_sub(1)));
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|hour, _| *hour + 1 >= now);
        Ok(taken)
    }

    fn pull_hour(&self, hour: u64) -> Result<usize, BucketError> {
        let names = block(self.bucket.list_reports(hour))?;
        let fresh: Vec<String> = {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let held = seen.get(&hour);
            names
                .into_iter()
                .filter(|name| held.is_none_or(|held| !held.contains(name)))
                .collect()
        };
        let mut envelopes = Vec::with_capacity(fresh.len());
        let mut named = Vec::with_capacity(fresh.len());
        for name in fresh {
            let Some(bytes) = block(self.bucket.get_report(hour, &name))? else {
                continue;
            };
            match postcard::from_bytes::<Filed>(&bytes) {
                Ok(filed) => {
                    envelopes.push((filed.sender, filed.envelope));
                    named.push(name);
                }
                Err(_) => {
                    tracing::warn!(hour, %name, "a report filed in the bucket does not read; skipped");
                    self.mark(hour, name);
                }
            }
        }
        let mut taken = 0;
        for (name, outcome) in named.into_iter().zip(self.fleet.accept_many(&envelopes)) {
            match outcome {
                Ok(new) => taken += usize::from(new),
                // Tried again at the next pull.
                Err(AcceptError::Keep(_) | AcceptError::Closed) => continue,
                Err(err) => {
                    tracing::warn!(hour, %name, cause = %err, "a report another origin process filed was refused here")
                }
            }
            self.mark(hour, name);
        }
        if taken > 0 {
            tracing::info!(
                reports = taken,
                "took reports other origin processes received"
            );
        }
        Ok(taken)
    }

    fn mark(&self, hour: u64, name: String) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.entry(hour).or_default().insert(name);
    }
}

impl ReportSink for SharedReports {
    fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
        self.fleet.accept(sender, envelope)?;
        let filed = Filed {
            sender: sender.to_owned(),
            envelope: envelope.to_vec(),
        };
        let bytes = postcard::to_stdvec(&filed).map_err(|err| err.to_string())?;
        let name = catalog::Hash::of(&bytes).to_hex();
        let hour = hour_now();
        block(self.bucket.put_report(hour, &name, bytes.into())).map_err(|err| {
            format!(
                "the report is kept by this origin process but could not be shared with the others \
                 ({}); send it again",
                catalog::format::error_chain(&err)
            )
        })?;
        self.mark(hour, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn sealed(token: &str, seq: u64) -> Vec<u8> {
        crate::fleet::tests::sealed_seq(token, seq)
    }

    /// Issue 16: a report one process took is filed in the bucket and
    /// taken in by the other at its next pull, once; a forged one is not filed.
    #[test]
    fn issue_16_a_report_taken_by_one_process_reaches_the_others_fleet() {
        let memory: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let bucket = Bucket::new(memory, "province");
        let (a, b) = (
            tempfile::tempdir().expect("a"),
            tempfile::tempdir().expect("b"),
        );
        crate::Origin::init(a.path()).expect("init");
        std::fs::create_dir_all(b.path()).expect("mkdir");
        let token = crate::tokens::add_edge(a.path(), "school-1").expect("add");
        std::fs::copy(a.path().join("edges.toml"), b.path().join("edges.toml")).expect("copy");
        let first = SharedReports::new(Fleet::open(a.path()).expect("fleet"), bucket.clone());
        let second = SharedReports::new(Fleet::open(b.path()).expect("fleet"), bucket.clone());

        first.accept("school-1", &sealed(&token, 1)).expect("taken");
        first
            .accept("school-1", &sealed(&token, 1))
            .expect("taken again");
        let forged = first.accept("school-1", &sealed("another token", 2));
        assert!(forged.is_err());
        let filed = block(bucket.list_reports(hour_now())).expect("list");
        assert_eq!(
            filed.len(),
            1,
            "the same report is filed once; a forged one never"
        );

        assert!(!second.fleet.holds("school-1", 1));
        assert_eq!(second.pull().expect("pull"), 1);
        assert!(second.fleet.holds("school-1", 1));
        assert_eq!(second.pull().expect("pull"), 0, "taken once");
        // The first process does not take its own report again.
        assert_eq!(first.pull().expect("pull"), 0);
        assert_eq!(second.fleet.edge("school-1").expect("record").reports, 1);
    }
}
