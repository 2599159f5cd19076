//! The origin's fleet (issue 15): where edges' reports land, and what the
//! bureau's dashboard reads.
//!
//! - this file: [`Fleet`], the origin's [`ReportSink`]: the sender looked up
//!   in `edges.toml` (revoked senders refused), the seal checked, the report
//!   filed under the edge that made it (a county's child under
//!   `county/child`), applied once per (edge, sequence);
//! - `store`: `DIR/fleet/fleet.redb` and its writer thread (group commit);
//! - `model`: an edge's record and the usage window;
//! - `view`: what the pages show, computed from memory: the edges' rows,
//!   course adoption, the most-opened lessons, CSV and JSON;
//! - `metrics`: Prometheus `/metrics`;
//! - `dashboard`: `origin serve --admin ADDR`, the pages and their login;
//! - `inbox`: reports that came on USB sticks, filed by `bundle create`
//!   while `origin serve` holds the fleet, and drained into it;
//! - `shared`: on a bucket (issue 16), reports filed there by each origin
//!   process and taken in by all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use catalog::Hash;

pub mod dashboard;
pub mod inbox;
pub mod metrics;
pub mod model;
pub mod shared;
pub mod store;
pub mod view;

#[cfg(test)]
mod tests;

pub use model::{EdgeRecord, Status};
pub use store::{FleetError, Item};

use crate::report::{Envelope, ReportSink, report_key};
use crate::tokens::{Book, TokenError};

/// The origin's record of its edges, fed by their reports.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    jobs: Mutex<Option<SyncSender<store::Job>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    mirror: Arc<RwLock<store::Mirror>>,
    senders: Mutex<Senders>,
}

/// `edges.toml` as last read: the edges that may send, not revoked.
#[derive(Default)]
struct Senders {
    modified: Option<SystemTime>,
    read: bool,
    edges: HashMap<String, (Hash, Option<String>)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer, which closes the database.
        drop(self.jobs.lock().map(|mut jobs| jobs.take()));
        if let Ok(mut writer) = self.writer.lock()
            && let Some(writer) = writer.take()
        {
            let _ = writer.join();
        }
    }
}

/// Why a report was refused (the sender is told the message).
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error(
        "{sender:?} is not an edge of this origin (or was revoked); reports are taken only from the edges in edges.toml"
    )]
    UnknownSender { sender: String },
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    #[error("the origin cannot read its edges' tokens: {0}")]
    Tokens(#[source] TokenError),
    #[error("{0}")]
    Keep(String),
    #[error("the origin's fleet is shutting down; send the report again later")]
    Closed,
    #[error(
        "the forwarded report names {name:?} below {sender:?}, which is not an edge name; the county edge must forward only its own edges' reports"
    )]
    BadPath { sender: String, name: String },
    #[error(
        "the origin's fleet already knows {MAX_EDGES} edges; a report of a new edge ({edge:?}) is refused"
    )]
    TooManyEdges { edge: String },
}

/// Most edges the fleet keeps (a county edge cannot make up endless children).
pub const MAX_EDGES: usize = 100_000;
/// Longest course or lesson id kept from a report's usage, in bytes.
pub const MAX_USAGE_ID_BYTES: usize = 128;

impl Fleet {
    /// Opens the fleet of the origin in `dir` (`DIR/fleet/`).
    pub fn open(dir: &Path) -> Result<Fleet, FleetError> {
        let (db, mirror, path) = store::open(dir)?;
        let mirror = Arc::new(RwLock::new(mirror));
        let (jobs, receiver) = store::channel();
        let writer = store::spawn_writer(db, path, mirror.clone(), receiver)?;
        Ok(Fleet {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                jobs: Mutex::new(Some(jobs)),
                writer: Mutex::new(Some(writer)),
                mirror,
                senders: Mutex::new(Senders::default()),
            }),
        })
    }

    /// The origin folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The key and county of `sender`, re-reading `edges.toml` when it changed.
    fn sender(&self, sender: &str) -> Result<(Hash, Option<String>), AcceptError> {
        let path = Book::Edges.path(&self.inner.dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut senders = self.inner.senders.lock().unwrap_or_else(|p| p.into_inner());
        if !senders.read || senders.modified != modified {
            let listed =
                crate::tokens::list(&self.inner.dir, Book::Edges).map_err(AcceptError::Tokens)?;
            senders.edges = listed
                .into_iter()
                .filter(|record| record.revoked_at.is_none())
                .map(|record| (record.name, (record.token_b3, record.county)))
                .collect();
            senders.modified = modified;
            senders.read = true;
        }
        senders
            .edges
            .get(sender)
            .cloned()
            .ok_or_else(|| AcceptError::UnknownSender {
                sender: sender.to_owned(),
            })
    }

    /// Checks one sealed envelope from `sender` and makes it an [`Item`].
    pub fn check(&self, sender: &str, envelope: &[u8], arrived: u64) -> Result<Item, AcceptError> {
        let (token_b3, county) = self.sender(sender)?;
        let envelope = Envelope::decode(envelope)?;
        let mut report = envelope.open(&report_key(&token_b3), sender)?;
        if let Some(name) = envelope
            .path
            .iter()
            .find(|name| crate::edge_name::EdgeName::parse(name).is_err())
        {
            return Err(AcceptError::BadPath {
                sender: sender.to_owned(),
                name: name.clone(),
            });
        }
        report.trim();
        for usage in &mut report.usage {
            crate::report::truncate(&mut usage.course, MAX_USAGE_ID_BYTES);
            crate::report::truncate(&mut usage.lesson, MAX_USAGE_ID_BYTES);
        }
        let edge = envelope.origin_name(sender);
        let known =
            self.read(|mirror| mirror.edges.len() < MAX_EDGES || mirror.edges.contains_key(&edge));
        if !known {
            return Err(AcceptError::TooManyEdges { edge });
        }
        let forwarded = !envelope.path.is_empty();
        // A county's child is in the county's county, or else under the
        // county edge's own name.
        let county = match (county, forwarded) {
            (Some(county), _) => Some(county),
            (None, true) => Some(sender.to_owned()),
            (None, false) => None,
        };
        Ok(Item {
            edge,
            county,
            report,
            arrived,
        })
    }

    /// Applies checked reports in one group commit; per item, whether it
    /// was new. Returns once they are durable. The bulk entry point: the
    /// benchmark loads a year of reports through it, and reports carried
    /// on a USB stick come in through [`Fleet::accept_many`].
    pub fn apply(&self, items: Vec<Item>) -> Result<Vec<bool>, AcceptError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let jobs = self
            .inner
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(AcceptError::Closed)?;
        jobs.send(store::Job { items, reply })
            .map_err(|_| AcceptError::Closed)?;
        answer
            .recv()
            .map_err(|_| AcceptError::Closed)?
            .map_err(AcceptError::Keep)
    }

    /// Checks and applies many envelopes (a USB stick's), in commits of at
    /// most [`store::MAX_BATCH`]; per envelope, Ok(new) or why it was refused.
    pub fn accept_many(&self, envelopes: &[(String, Vec<u8>)]) -> Vec<Result<bool, AcceptError>> {
        let arrived = model::now();
        let mut out = Vec::with_capacity(envelopes.len());
        for group in envelopes.chunks(store::MAX_BATCH) {
            let mut items = Vec::new();
            let mut slots = Vec::new();
            for (sender, envelope) in group {
                match self.check(sender, envelope, arrived) {
                    Ok(item) => {
                        slots.push(Ok(items.len()));
                        items.push(item);
                    }
                    Err(err) => slots.push(Err(err)),
                }
            }
            match self.apply(items) {
                Ok(flags) => out.extend(slots.into_iter().map(|slot| slot.map(|at| flags[at]))),
                Err(err) => {
                    let message = err.to_string();
                    out.extend(
                        slots
                            .into_iter()
                            .map(|slot| slot.and_then(|_| Err(AcceptError::Keep(message.clone())))),
                    );
                }
            }
        }
        out
    }

    /// Whether report `seq` of `edge` (full name) is held: for the receipts
    /// a USB bundle carries back.
    pub fn holds(&self, edge: &str, seq: u64) -> bool {
        self.read(|mirror| mirror.edges.get(edge).is_some_and(|r| r.holds(seq)))
    }

    /// One edge's record.
    pub fn edge(&self, edge: &str) -> Option<EdgeRecord> {
        self.read(|mirror| mirror.edges.get(edge).cloned())
    }

    /// Reads the in-memory fleet.
    pub fn read<T>(&self, f: impl FnOnce(&store::Mirror) -> T) -> T {
        f(&self.inner.mirror.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ReportSink for Fleet {
    fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String> {
        let item = self
            .check(sender, envelope, model::now())
            .map_err(|err| err.to_string())?;
        self.apply(vec![item]).map_err(|err| err.to_string())?;
        Ok(())
    }
}
