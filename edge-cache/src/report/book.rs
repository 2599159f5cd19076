//! The report book (issue 15): the edge's durable ledger and report queue
//! in `DIR/reports/`.
//!
//! ```text
//! reports/
//!   lock                      held (flock) by whatever changes the book
//!   ledger.json               next report number, queue entry number,
//!                             last made/sent, usage not reported yet
//!   queue/<entry>-<seq>.own   this edge's sealed reports, one envelope each
//!   queue/<entry>.fwd         children's reports a county edge forwards
//!   set-aside/<queue name>    reports the upstream refused
//!                             [`SET_ASIDE_AFTER`] times: kept for the
//!                             operator, not sent again
//! ```
//!
//! The ledger is the commit point: a report is made by writing its
//! envelope file (synced), then the ledger with the next sequence and the
//! usage it took removed (synced, renamed). A crash before the rename
//! leaves an envelope whose entry number the ledger has not reached: it is
//! deleted when the book is next opened, and its usage is still in the
//! ledger. So taking usage into a report is one atomic step, and a
//! sequence number the ledger has passed is never made again.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use server::report::{DayUsage, EdgeReport, Envelope};

use super::usage::UsageTable;

/// Most of this edge's own reports queued; past it usage keeps counting in
/// the ledger and goes into a later report.
pub const MAX_OWN: usize = 64;
/// Most children's reports a county edge holds to forward.
pub const MAX_FORWARDED: usize = 64;
/// Refusals by the upstream (an answer, not a failed link) after which a
/// report is set aside instead of being sent with every pass.
pub const SET_ASIDE_AFTER: u32 = 5;
/// Most reports kept set aside; the oldest go first.
pub const MAX_SET_ASIDE: usize = 64;
/// The folder, beside `queue/`, of reports set aside.
const SET_ASIDE: &str = "set-aside";

/// Why the report book could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("{action} {path}; check the edge's data folder is writable and the disk is not full")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not read as the report ledger; move it aside and the edge starts a new one"
    )]
    Ledger {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the county edge already holds {MAX_FORWARDED} reports to forward; keep this one and send it again after the county's next sync"
    )]
    ForwardFull,
}

/// The ledger: what must survive a crash besides the queued envelopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The sequence of the next report (the first is 1).
    pub next_seq: u64,
    /// The number of the next queue entry.
    pub next_entry: u64,
    /// When the last report was made / sent, unix seconds.
    pub last_made: Option<u64>,
    pub last_sent: Option<u64>,
    /// This edge's name at its upstream (from the welcome).
    pub name: Option<String>,
    /// Usage not yet taken into a report.
    pub usage: Vec<DayUsage>,
    /// Queued reports the upstream refused, by queue name: how many times.
    #[serde(default)]
    pub refused: std::collections::BTreeMap<String, u32>,
}

/// A queued envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its file name in `queue/`.
    pub name: String,
    pub entry: u64,
    /// The encoded envelope.
    pub bytes: Vec<u8>,
    /// A child's report forwarded by this county edge.
    pub forwarded: bool,
}

/// What `edge status` shows of the reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportsStatus {
    /// Envelopes queued to send: this edge's and forwarded ones.
    pub pending: usize,
    /// Of them, children's reports forwarded by this county edge.
    pub forwarded: usize,
    pub last_made: Option<u64>,
    pub last_sent: Option<u64>,
    /// Lessons counted but not yet in a report.
    pub usage_rows: usize,
    /// Reports the upstream kept refusing, set aside in `reports/set-aside/`.
    pub set_aside: usize,
}

/// The report book of the edge in a data folder.
#[derive(Debug, Clone)]
pub struct Book {
    dir: PathBuf,
}

/// The book while its lock is held.
pub struct Open {
    dir: PathBuf,
    _lock: File,
    pub ledger: Ledger,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BookError {
    let path = path.to_owned();
    move |source| BookError::Io {
        action,
        path,
        source,
    }
}

/// Writes `bytes` to `path` durably: a temporary file, synced, renamed,
/// the folder synced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), BookError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io("creating", &tmp))?;
    file.write_all(bytes).map_err(io("writing", &tmp))?;
    file.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming", &tmp))?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io("syncing", parent))?;
    }
    Ok(())
}

/// The entry number of a queue file name, and whether it is forwarded.
fn parse_name(name: &str) -> Option<(u64, bool)> {
    if let Some(stem) = name.strip_suffix(".fwd") {
        return Some((stem.parse().ok()?, true));
    }
    let stem = name.strip_suffix(".own")?;
    let (entry, seq) = stem.split_once('-')?;
    seq.parse::<u64>().ok()?;
    Some((entry.parse().ok()?, false))
}

impl Book {
    /// The book of the edge whose data folder is `data`.
    pub fn new(data: &Path) -> Book {
        Book {
            dir: data.join("reports"),
        }
    }

    fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    fn ledger_path(&self) -> PathBuf {
        self.dir.join("ledger.json")
    }

    /// Takes the lock, reads the ledger and deletes envelopes the ledger
    /// never committed (a crash mid-make). Blocking.
    pub fn open(&self) -> Result<Open, BookError> {
        let queue = self.queue_dir();
        std::fs::create_dir_all(&queue).map_err(io("creating", &queue))?;
        let lock_path = self.dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        lock.lock().map_err(io("locking", &lock_path))?;
        let path = self.ledger_path();
        let mut ledger = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| BookError::Ledger { path, source })?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ledger::default(),
            Err(err) => return Err(io("reading", &path)(err)),
        };
        ledger.next_seq = ledger.next_seq.max(1);
        let open = Open {
            dir: self.dir.clone(),
            _lock: lock,
            ledger,
        };
        for (name, entry, _) in open.list()? {
            if entry >= open.ledger.next_entry {
                tracing::info!(file = %name, "dropping a report the edge did not finish making");
                let path = queue.join(&name);
                std::fs::remove_file(&path).map_err(io("removing", &path))?;
            }
        }
        Ok(open)
    }

    /// Adds flushed usage to the ledger. Blocking.
    pub fn add_usage(&self, usage: &UsageTable) -> Result<(), BookError> {
        let mut open = self.open()?;
        let mut table = UsageTable::from_rows(std::mem::take(&mut open.ledger.usage));
        table.merge(usage.clone());
        open.ledger.usage = table.to_rows();
        open.commit()
    }

    /// What `edge status` shows. Blocking; reads without the lock.
    pub fn status(&self) -> ReportsStatus {
        let ledger: Ledger = std::fs::read(self.ledger_path())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let mut status = ReportsStatus {
            last_made: ledger.last_made,
            last_sent: ledger.last_sent,
            usage_rows: ledger.usage.len(),
            ..ReportsStatus::default()
        };
        status.set_aside = std::fs::read_dir(self.dir.join(SET_ASIDE))
            .map(|entries| entries.flatten().count())
            .unwrap_or(0);
        if let Ok(entries) = std::fs::read_dir(self.queue_dir()) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if let Some((number, forwarded)) = name.to_str().and_then(parse_name)
                    && number < ledger.next_entry
                {
                    status.pending += 1;
                    status.forwarded += usize::from(forwarded);
                }
            }
        }
        status
    }
}

impl Open {
    fn queue_dir(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// Queue files, oldest first: (name, entry, forwarded).
    fn list(&self) -> Result<Vec<(String, u64, bool)>, BookError> {
        let queue = self.queue_dir();
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&queue).map_err(io("listing", &queue))? {
            let entry = entry.map_err(io("listing", &queue))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((number, forwarded)) = parse_name(&name) {
                found.push((name, number, forwarded));
            }
        }
        found.sort_by_key(|(_, number, _)| *number);
        Ok(found)
    }

    /// Writes the ledger: the commit point of every change.
    pub fn commit(&self) -> Result<(), BookError> {
        let bytes = serde_json::to_vec(&self.ledger).map_err(|source| BookError::Ledger {
            path: self.dir.join("ledger.json"),
            source,
        })?;
        write_durably(&self.dir.join("ledger.json"), &bytes)
    }

    /// The queued envelopes, oldest first.
    pub fn queued(&self) -> Result<Vec<Queued>, BookError> {
        let mut out = Vec::new();
        for (name, entry, forwarded) in self.list()? {
            let path = self.queue_dir().join(&name);
            let bytes = std::fs::read(&path).map_err(io("reading", &path))?;
            out.push(Queued {
                name,
                entry,
                bytes,
                forwarded,
            });
        }
        Ok(out)
    }

    /// How many own and forwarded envelopes are queued.
    pub fn counts(&self) -> Result<(usize, usize), BookError> {
        let list = self.list()?;
        let forwarded = list.iter().filter(|(_, _, f)| *f).count();
        Ok((list.len() - forwarded, forwarded))
    }

    /// Queues an envelope (not committed until [`Open::commit`]).
    fn put(&mut self, bytes: &[u8], seq: Option<u64>) -> Result<(), BookError> {
        let entry = self.ledger.next_entry;
        let name = match seq {
            Some(seq) => format!("{entry:012}-{seq}.own"),
            None => format!("{entry:012}.fwd"),
        };
        write_durably(&self.queue_dir().join(name), bytes)?;
        self.ledger.next_entry += 1;
        Ok(())
    }

    /// Queues this edge's sealed report `seq` (not committed until
    /// [`Open::commit`]).
    pub fn put_own(&mut self, seq: u64, bytes: &[u8]) -> Result<(), BookError> {
        self.put(bytes, Some(seq))
    }

    /// Queues and commits a child's envelope, re-sealed by this county edge.
    pub fn put_forwarded(&mut self, bytes: &[u8]) -> Result<(), BookError> {
        if self.counts()?.1 >= MAX_FORWARDED {
            return Err(BookError::ForwardFull);
        }
        self.put(bytes, None)?;
        self.commit()
    }

    /// Counts one refusal of the queued envelope `name` by the upstream;
    /// at the [`SET_ASIDE_AFTER`]th it moves to `set-aside/` (at most
    /// [`MAX_SET_ASIDE`] kept there) and `true` is returned. Not committed
    /// until [`Open::commit`].
    pub fn refused(&mut self, name: &str) -> Result<bool, BookError> {
        let queue = self.queue_dir();
        // Counts of envelopes no longer queued (sent since) are dropped.
        self.ledger
            .refused
            .retain(|queued, _| queue.join(queued).exists());
        if !queue.join(name).exists() {
            return Ok(false); // acknowledged meanwhile (a stick's receipt)
        }
        let count = self.ledger.refused.entry(name.to_owned()).or_default();
        *count += 1;
        if *count < SET_ASIDE_AFTER {
            return Ok(false);
        }
        self.ledger.refused.remove(name);
        let aside = self.dir.join(SET_ASIDE);
        std::fs::create_dir_all(&aside).map_err(io("creating", &aside))?;
        let from = queue.join(name);
        let to = aside.join(name);
        std::fs::rename(&from, &to).map_err(io("moving", &from))?;
        let mut kept: Vec<String> = std::fs::read_dir(&aside)
            .map_err(io("listing", &aside))?
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        kept.sort();
        for old in kept.iter().take(kept.len().saturating_sub(MAX_SET_ASIDE)) {
            let path = aside.join(old);
            std::fs::remove_file(&path).map_err(io("removing", &path))?;
        }
        Ok(true)
    }

    /// Removes a queued envelope (sent, or acknowledged by a receipt).
    pub fn remove(&self, name: &str) -> Result<(), BookError> {
        let path = self.queue_dir().join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(io("removing", &path)(err)),
        }
    }
}

/// The report a queued envelope carries, and the path below this edge it
/// came from (read without checking the seal: this edge sealed it).
pub fn peek(bytes: &[u8]) -> Option<(Vec<String>, EdgeReport)> {
    let envelope = Envelope::decode(bytes).ok()?;
    let report = EdgeReport::decode(&envelope.report).ok()?;
    Some((envelope.path, report))
}
