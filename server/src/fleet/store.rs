//! `DIR/fleet/fleet.redb` and the one thread that writes it.
//!
//! Reports are applied by a single writer thread in group commits: every
//! report waiting when a transaction starts goes into it (up to
//! [`MAX_BATCH`]), and each sender is answered once the commit is durable.
//! After the commit the in-memory mirror (every edge's record and the usage
//! window) is updated, so pages read memory, never the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, RwLock};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::model::{EdgeRecord, Window, day_of, now};
use crate::report::EdgeReport;

/// Every edge's record, postcard-encoded, by full name.
const EDGES: TableDefinition<&str, &[u8]> = TableDefinition::new("edges");
type UsageKey<'a> = (u32, &'a str, &'a str, &'a str);
type UsageSums = (u64, u64, u64);

/// Usage per (day, county, course, lesson): (opens, bytes served, bytes saved).
const USAGE: TableDefinition<UsageKey, UsageSums> = TableDefinition::new("usage");

/// redb's page cache (its default is 1 GiB).
const CACHE_BYTES: usize = 16 << 20;
/// Most reports in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Jobs waiting for the writer; senders block beyond this.
const QUEUE: usize = 256;

/// Why the fleet's file cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("creating the fleet folder {path}: {cause}")]
    Folder {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error(
        "opening the fleet database {path} (is another `origin serve` running on this folder?): {cause}"
    )]
    Open {
        path: PathBuf,
        #[source]
        cause: Box<redb::Error>,
    },
    #[error("reading the fleet database {path}: {cause}")]
    Read {
        path: PathBuf,
        #[source]
        cause: Box<redb::Error>,
    },
    #[error(
        "the fleet database {path} holds a record of {edge:?} that does not decode: {cause}; move the file aside to start the fleet afresh"
    )]
    Record {
        path: PathBuf,
        edge: String,
        #[source]
        cause: postcard::Error,
    },
    #[error("starting the fleet writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A report to apply, already checked.
#[derive(Debug, Clone)]
pub struct Item {
    /// The edge's full name at the origin.
    pub edge: String,
    pub county: Option<String>,
    pub report: EdgeReport,
    /// When it arrived, unix seconds.
    pub arrived: u64,
}

/// What the writer answers for a job: per item, whether it was new.
pub type Applied = Result<Vec<bool>, String>;

pub struct Job {
    pub items: Vec<Item>,
    pub reply: SyncSender<Applied>,
}

/// The fleet in memory, updated after each commit.
#[derive(Default)]
pub struct Mirror {
    pub edges: HashMap<String, EdgeRecord>,
    pub window: Window,
    /// Raised by each commit that changed something (pages cache on it).
    pub generation: u64,
    /// Reports applied since the origin started, and sent again (not applied).
    pub applied: u64,
    pub duplicates: u64,
}

fn redb_err(err: impl Into<redb::Error>) -> Box<redb::Error> {
    Box::new(err.into())
}

/// Opens (or creates) the fleet database in `dir` and reads it into memory.
pub fn open(dir: &Path) -> Result<(redb::Database, Mirror, PathBuf), FleetError> {
    let folder = dir.join("fleet");
    std::fs::create_dir_all(&folder).map_err(|cause| FleetError::Folder {
        path: folder.clone(),
        cause,
    })?;
    let path = folder.join("fleet.redb");
    let open_err = |cause: redb::Error| FleetError::Open {
        path: path.clone(),
        cause: Box::new(cause),
    };
    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(&path)
        .map_err(|e| open_err(e.into()))?;
    let txn = db.begin_write().map_err(|e| open_err(e.into()))?;
    txn.open_table(EDGES).map_err(|e| open_err(e.into()))?;
    txn.open_table(USAGE).map_err(|e| open_err(e.into()))?;
    txn.commit().map_err(|e| open_err(e.into()))?;
    let mirror = load(&db, &path)?;
    Ok((db, mirror, path))
}

fn load(db: &redb::Database, path: &Path) -> Result<Mirror, FleetError> {
    let read_err = |cause: redb::Error| FleetError::Read {
        path: path.to_owned(),
        cause: Box::new(cause),
    };
    let txn = db.begin_read().map_err(|e| read_err(e.into()))?;
    let mut mirror = Mirror::default();
    let edges = txn.open_table(EDGES).map_err(|e| read_err(e.into()))?;
    for entry in edges.iter().map_err(|e| read_err(e.into()))? {
        let (name, bytes) = entry.map_err(|e| read_err(e.into()))?;
        let record: EdgeRecord =
            postcard::from_bytes(bytes.value()).map_err(|cause| FleetError::Record {
                path: path.to_owned(),
                edge: name.value().to_owned(),
                cause,
            })?;
        mirror.edges.insert(name.value().to_owned(), record);
    }
    let today = day_of(now());
    let usage = txn.open_table(USAGE).map_err(|e| read_err(e.into()))?;
    let start = today.saturating_sub(super::model::WINDOW_DAYS + 1);
    for entry in usage
        .range((start, "", "", "")..)
        .map_err(|e| read_err(e.into()))?
    {
        let (key, value) = entry.map_err(|e| read_err(e.into()))?;
        let (day, county, course, lesson) = key.value();
        mirror
            .window
            .add(today, day, county, course, lesson, value.value().0);
    }
    Ok(mirror)
}

/// Starts the writer thread; it ends when every sender of `jobs` is gone.
pub fn spawn_writer(
    db: redb::Database,
    path: PathBuf,
    mirror: Arc<RwLock<Mirror>>,
    jobs: Receiver<Job>,
) -> Result<std::thread::JoinHandle<()>, FleetError> {
    std::thread::Builder::new()
        .name("fleet-writer".into())
        .spawn(move || writer(db, path, mirror, jobs))
        .map_err(FleetError::Thread)
}

/// A channel to the writer.
pub fn channel() -> (SyncSender<Job>, Receiver<Job>) {
    std::sync::mpsc::sync_channel(QUEUE)
}

fn writer(db: redb::Database, path: PathBuf, mirror: Arc<RwLock<Mirror>>, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut count = batch[0].items.len();
        while count < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    count += job.items.len();
                    batch.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        match commit(&db, &mirror, &batch) {
            Ok(applied) => {
                for (job, applied) in batch.into_iter().zip(applied) {
                    let _ = job.reply.send(Ok(applied));
                }
            }
            Err(cause) => {
                let message = format!(
                    "the origin could not keep the report in {}: {}; it is kept on the edge and sent again later",
                    path.display(),
                    catalog::format::error_chain(&*cause)
                );
                tracing::error!(%message, "fleet commit failed");
                for job in batch {
                    let _ = job.reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// Applies every job's reports in one durable transaction, then to memory.
fn commit(
    db: &redb::Database,
    mirror: &RwLock<Mirror>,
    batch: &[Job],
) -> Result<Vec<Vec<bool>>, Box<redb::Error>> {
    let mut changed: HashMap<String, EdgeRecord> = HashMap::new();
    let mut window_rows = Vec::new();
    let mut applied = Vec::with_capacity(batch.len());
    let mut duplicates = 0;
    let txn = db.begin_write().map_err(redb_err)?;
    {
        let mut edges = txn.open_table(EDGES).map_err(redb_err)?;
        let mut usage = txn.open_table(USAGE).map_err(redb_err)?;
        let held = mirror.read().unwrap_or_else(|p| p.into_inner());
        for job in batch {
            let mut flags = Vec::with_capacity(job.items.len());
            for item in &job.items {
                let record = changed.entry(item.edge.clone()).or_insert_with(|| {
                    held.edges
                        .get(&item.edge)
                        .cloned()
                        .unwrap_or_else(|| EdgeRecord::new(item.edge.clone(), None))
                });
                let new = record.apply(&item.report, item.arrived);
                flags.push(new);
                if !new {
                    duplicates += 1;
                    continue;
                }
                if item.county.is_some() {
                    record.county.clone_from(&item.county);
                }
                let county = record.county.clone().unwrap_or_default();
                for row in &item.report.usage {
                    let key = (
                        row.day,
                        county.as_str(),
                        row.course.as_str(),
                        row.lesson.as_str(),
                    );
                    let old = usage
                        .get(key)
                        .map_err(redb_err)?
                        .map_or((0, 0, 0), |v| v.value());
                    let sum = (
                        old.0.saturating_add(row.opens),
                        old.1.saturating_add(row.bytes_served),
                        old.2.saturating_add(row.bytes_saved),
                    );
                    usage.insert(key, sum).map_err(redb_err)?;
                    window_rows.push((
                        row.day,
                        county.clone(),
                        row.course.clone(),
                        row.lesson.clone(),
                        row.opens,
                    ));
                }
            }
            applied.push(flags);
        }
        drop(held);
        for (name, record) in &changed {
            let bytes = postcard::to_stdvec(record)
                .map_err(|e| redb_err(redb::StorageError::Io(std::io::Error::other(e))))?;
            edges
                .insert(name.as_str(), bytes.as_slice())
                .map_err(redb_err)?;
        }
    }
    txn.commit().map_err(redb_err)?;
    let today = day_of(now());
    let mut held = mirror.write().unwrap_or_else(|p| p.into_inner());
    let new_reports = applied.iter().flatten().filter(|new| **new).count() as u64;
    held.edges.extend(changed);
    for (day, county, course, lesson, opens) in window_rows {
        held.window
            .add(today, day, &county, &course, &lesson, opens);
    }
    held.applied += new_reports;
    held.duplicates += duplicates;
    held.generation += 1;
    Ok(applied)
}
