//! The edge's one download engine: an actor that owns every file being
//! assembled, fed by one priority queue, taking chunks from whatever sources
//! can give them ([`ChunkSource`]). Read-through and the sync pass both go
//! through it, so a file started by one and finished by the other is fetched
//! once, and a chunk two files share is asked for once.
//!
//! - **One queue**: a reader waiting on a byte range ([`Priority::Reader`]) >
//!   a lesson opened in class > the first [`HEAD_BYTES`] of every video in
//!   the prefetch > the rest of the prefetch, in course order > cleanup.
//!   Within a priority, first asked, first fetched.
//! - **Lanes**: who asked, with which sources, bandwidth cap and stop token
//!   ([`Lane`]). The sync pass's lane is paced and stopped at a window's end;
//!   read-through's is not. A chunk is asked of its lane's sources in order:
//!   a chunk whose BLAKE3 differs (or that a source lacks) is never written,
//!   and is asked of the next source, or again.
//! - **Disk** work runs on one blocking thread ([`super::writer`]) that owns
//!   the partial blobs: progress is in the store's index and survives `kill -9`.
//! - **Bounded**: [`REQUESTS_IN_FLIGHT`] requests of at most
//!   [`CHUNKS_PER_REQUEST`] chunks, the last [`RESERVED_FOR_CLASS`] of them
//!   for classes and readers, a request other than a reader's at most
//!   [`BACKGROUND_REQUEST_BYTES`]; bounded inboxes; callers keep at most a
//!   few hundred files open at once.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use catalog::{FileManifest, Hash, Store};
use server::codec::Encoding;
use server::protocol::{ChunkWant, FileWants};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::plan::FileJob;
use super::source::{ChunkSource, Delivery, SourceError};
use super::writer::{self, ChunkWrite, Opened, WriterCommand, WriterEvent, WrittenChunk};

/// Chunks asked for in one request.
pub const CHUNKS_PER_REQUEST: usize = 64;
/// Chunk requests in flight at once, over all lanes.
pub const REQUESTS_IN_FLIGHT: usize = 8;
/// Request slots only a class or a reader may use (the last of them only a
/// reader): a reader's range is asked for at once, however busy the rest.
pub const RESERVED_FOR_CLASS: usize = 2;
/// Most chunk bytes in one request other than a reader's: little is
/// committed ahead, so what a reader needs next is not stuck behind it.
pub const BACKGROUND_REQUEST_BYTES: u64 = 2 * 1024 * 1024;
/// The start of a video fetched before the rest of any video.
pub const HEAD_BYTES: u64 = 4 * 1024 * 1024;
/// How often written chunks are made durable.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// The request number of a chunk copied from another file being assembled.
pub(super) const COPY: u64 = u64::MAX;
/// Times a lane's upstream refuses a chunk before the files wanting it give
/// up (a peer's refusals do not count: it is optional).
const MAX_CHUNK_TRIES: u32 = 4;

/// Why a chunk was not taken from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The source does not hold it.
    Missing,
    /// Its bytes failed their BLAKE3 or length check.
    Bad,
}

/// Who waits for a chunk, most urgent last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Removing old versions (nothing to fetch yet; kept for order).
    Cleanup,
    /// The rest of a subscribed lesson, in course order.
    Prefetch,
    /// The first [`HEAD_BYTES`] of a video in the prefetch.
    PrefetchHead,
    /// A lesson a teacher opened in class.
    OpenedInClass,
    /// A reader waiting on a byte range.
    Reader,
}

/// Why a file could not be had; the cause (a [`SourceError`], a writer's
/// error, or a description) is shared by every asker of the file.
///
/// [`SourceError`]: crate::sync::source::SourceError
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The sources could not be reached.
    #[error(transparent)]
    Offline(crate::sync::client::Cause),
    /// A source refused, or the file or a chunk was bad.
    #[error(transparent)]
    Failed(crate::sync::client::Cause),
}

/// How a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Held, verified; `assembled`: by this engine now (not already held).
    Done {
        assembled: bool,
    },
    Failed(JobError),
    /// Every lane that wanted it stopped; what arrived is kept.
    Stopped,
}

/// A file's progress, as its askers see it.
#[derive(Debug, Clone, Default)]
pub struct JobState {
    /// Set once the file is open: the partial file (or the held blob).
    pub file: Option<Arc<std::fs::File>>,
    /// Which chunks are written and verified.
    pub arrived: Vec<bool>,
    /// Bytes copied from blobs held here instead of fetched.
    pub reused: u64,
    /// Bytes of chunks that travelled as deltas, less what travelled: not
    /// fetched thanks to the previous version (issue 15's usage).
    pub delta_saved: u64,
    pub outcome: Option<Outcome>,
}

/// The engine, to ask it for files.
#[derive(Clone)]
pub struct Engine {
    inbox: mpsc::Sender<Command>,
}

enum Command {
    Want {
        job: Box<FileJob>,
        priority: Priority,
        lane: Arc<Lane>,
        state: watch::Sender<JobState>,
    },
    Urgent {
        blob: Hash,
        chunks: Range<usize>,
        lane: Arc<Lane>,
    },
    StopLane {
        lane: Arc<Lane>,
    },
}

impl Command {
    /// Asking for `job`, and the receiver that follows its progress.
    fn want(
        job: FileJob,
        priority: Priority,
        lane: &Arc<Lane>,
    ) -> (Command, watch::Receiver<JobState>) {
        let (state, receiver) = watch::channel(JobState::default());
        let command = Command::Want {
            job: Box::new(job),
            priority,
            lane: lane.clone(),
            state,
        };
        (command, receiver)
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

/// Why the engine could not take a request.
#[derive(Debug, thiserror::Error)]
#[error("the download engine has stopped; restart `shanlu edge run`")]
pub struct EngineStopped;

impl Engine {
    /// Starts the engine over `store`: its actor task and its writer thread.
    /// It runs until every handle is dropped.
    pub fn start(store: Arc<Store>) -> Engine {
        let (inbox, commands) = mpsc::channel(64);
        let (to_writer, writer_inbox) = mpsc::channel(64);
        let (writer_events, from_writer) = mpsc::unbounded_channel();
        tokio::task::spawn_blocking(move || writer::run(store, writer_inbox, writer_events));
        let (deliveries, delivered) = mpsc::channel(64);
        let actor = Actor {
            to_writer,
            deliveries,
            jobs: HashMap::new(),
            holders: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            in_flight: HashMap::new(),
            requests: HashMap::new(),
            next_request: 0,
            tries: HashMap::new(),
            checking: HashMap::new(),
        };
        tokio::spawn(actor.run(commands, delivered, from_writer));
        Engine { inbox }
    }

    /// Asks for a file; the receiver follows its progress to its outcome.
    pub async fn want(
        &self,
        job: FileJob,
        priority: Priority,
        lane: &Arc<Lane>,
    ) -> Result<watch::Receiver<JobState>, EngineStopped> {
        let (command, receiver) = Command::want(job, priority, lane);
        self.inbox.send(command).await.map_err(|_| EngineStopped)?;
        Ok(receiver)
    }

    /// Like [`Engine::want`], without waiting: for a request handler. With
    /// the inbox full, the request waits in a task of its own.
    pub fn want_now(
        &self,
        job: FileJob,
        priority: Priority,
        lane: &Arc<Lane>,
    ) -> Result<watch::Receiver<JobState>, EngineStopped> {
        let (command, receiver) = Command::want(job, priority, lane);
        match self.inbox.try_send(command) {
            Ok(()) => Ok(receiver),
            Err(mpsc::error::TrySendError::Full(command)) => {
                let inbox = self.inbox.clone();
                tokio::spawn(async move { inbox.send(command).await });
                Ok(receiver)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EngineStopped),
        }
    }

    /// A reader waits on `chunks` of `blob`: they jump the queue.
    pub async fn urgent(&self, blob: Hash, chunks: Range<usize>, lane: &Arc<Lane>) {
        let lane = lane.clone();
        let _ = self
            .inbox
            .send(Command::Urgent { blob, chunks, lane })
            .await;
    }

    /// `lane` is done (its stop token was cancelled, or its pass ended):
    /// files only it wanted are put aside, keeping what arrived.
    pub async fn stop_lane(&self, lane: &Arc<Lane>) {
        let lane = lane.clone();
        let _ = self.inbox.send(Command::StopLane { lane }).await;
    }
}

/// One queued chunk of one file.
struct Entry {
    priority: Priority,
    seq: u64,
    blob: Hash,
    index: usize,
    lane: Arc<Lane>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Higher priority first, then lower sequence (first asked) first.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Missing,
    InFlight,
    Present,
}

struct Job {
    job: FileJob,
    manifest: Arc<FileManifest>,
    /// Everyone following the file's progress.
    watchers: Vec<watch::Sender<JobState>>,
    chunks: Vec<ChunkState>,
    /// The want (with delta bases) to send for a chunk, by index.
    wants: HashMap<usize, ChunkWant>,
    by_hash: HashMap<Hash, Vec<usize>>,
    /// Who wants the file, with how much urgency.
    lanes: Vec<(Priority, Arc<Lane>)>,
    /// Reader ranges asked for before the file was open.
    early: Vec<(Range<usize>, Arc<Lane>)>,
    /// Chunks in the first [`HEAD_BYTES`] of the file.
    head_chunks: usize,
    opened: bool,
    finishing: bool,
    /// See [`JobState::delta_saved`]; told with the chunks' arrival.
    delta_saved: u64,
}

impl Job {
    /// Changes the file's state and tells every watcher.
    fn publish(&self, change: impl FnOnce(&mut JobState)) {
        let Some((first, rest)) = self.watchers.split_first() else {
            return;
        };
        first.send_modify(change);
        if rest.is_empty() {
            return;
        }
        let now = first.borrow().clone();
        for watcher in rest {
            watcher.send_replace(now.clone());
        }
    }

    fn best(&self) -> Option<(Priority, Arc<Lane>)> {
        self.lanes
            .iter()
            .filter(|(_, lane)| !lane.stop.is_cancelled())
            .max_by_key(|(priority, _)| *priority)
            .map(|(p, l)| (*p, l.clone()))
    }

    /// The priority of chunk `index` for an asker at `priority`.
    fn chunk_priority(&self, index: usize, priority: Priority) -> Priority {
        if priority == Priority::Prefetch
            && self.manifest.media_type.starts_with("video/")
            && index < self.head_chunks
        {
            Priority::PrefetchHead
        } else {
            priority
        }
    }
}

/// How many leading chunks of `manifest` start in its first [`HEAD_BYTES`].
fn head_chunks(manifest: &FileManifest) -> usize {
    let mut offset = 0u64;
    manifest
        .chunks
        .iter()
        .take_while(|chunk| {
            let starts_in_head = offset < HEAD_BYTES;
            offset += u64::from(chunk.len);
            starts_in_head
        })
        .count()
}

struct InFlightRequest {
    lane: Arc<Lane>,
    source: usize,
    wants: Vec<Hash>,
    received: HashSet<Hash>,
    /// Chunks (not "missing" answers) among them.
    chunks: usize,
    /// Each chunk's place in the queue, to put it back if it does not arrive.
    queued: HashMap<Hash, (Priority, u64, Hash, usize)>,
}

/// Where a chunk being checked came from, to ask elsewhere if it is bad.
struct Asked {
    lane: Arc<Lane>,
    source: usize,
    /// Its bytes as they travelled.
    bytes: u64,
    /// Its place in the queue.
    queued: Option<(Priority, u64, Hash, usize)>,
}

enum Event {
    /// What arrived of a request since the actor last looked (one or more).
    Delivered {
        request: u64,
        deliveries: Vec<Delivery>,
    },
    Done {
        request: u64,
        result: Result<(), SourceError>,
    },
}

struct Actor {
    to_writer: mpsc::Sender<WriterCommand>,
    deliveries: mpsc::Sender<Event>,
    jobs: HashMap<Hash, Job>,
    /// Chunk hash → the open files that contain it: what a chunk touches is
    /// found without looking at every file.
    holders: HashMap<Hash, Vec<Hash>>,
    heap: BinaryHeap<Entry>,
    seq: u64,
    /// Chunk hash → the request carrying it (or whose answer is being checked).
    in_flight: HashMap<Hash, u64>,
    requests: HashMap<u64, InFlightRequest>,
    next_request: u64,
    /// Chunk hash → (times the upstream refused it, next source index).
    tries: HashMap<Hash, (u32, usize)>,
    /// Chunks on their way to the disk, checked there: where they came from.
    checking: HashMap<Hash, Asked>,
}

impl Actor {
    /// Starts following `blob`, indexing its chunks.
    fn insert_job(&mut self, blob: Hash, job: Job) {
        for hash in job.by_hash.keys() {
            self.holders.entry(*hash).or_default().push(blob);
        }
        self.jobs.insert(blob, job);
    }

    /// Stops following `blob`; its chunks leave the index.
    fn remove_job(&mut self, blob: &Hash) -> Option<Job> {
        let job = self.jobs.remove(blob)?;
        for hash in job.by_hash.keys() {
            if let Some(holders) = self.holders.get_mut(hash) {
                holders.retain(|held| held != blob);
                if holders.is_empty() {
                    self.holders.remove(hash);
                }
            }
        }
        Some(job)
    }

    /// The open files containing chunk `hash`.
    fn holders_of(&self, hash: &Hash) -> Vec<Hash> {
        self.holders.get(hash).cloned().unwrap_or_default()
    }
}

#[path = "engine_actor.rs"]
mod actor;
#[path = "engine_lane.rs"]
mod lane;
pub use lane::{Counter, Lane, PEER_RETRY, SourceUse};
#[path = "engine_written.rs"]
mod written;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
