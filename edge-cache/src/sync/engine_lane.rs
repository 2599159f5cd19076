//! A lane: one asker's sources, in order, and what became of each (issue 14).
//!
//! The last source of a lane is its upstream (the origin, or the county
//! edge above): it is never dropped, and its refusals and failures count as
//! before (`MAX_CHUNK_TRIES`, the lane's `max_failures`). Every source before
//! it (a LAN peer) is optional: a peer that sends one chunk failing its check
//! is dropped for the lane's life (a sync pass) and never asked again; one
//! that cannot be reached, or refuses the request, is dropped too (for
//! [`PEER_RETRY`] when the failure may pass), and neither counts against
//! the lane. Until an optional source has given one verified chunk (or
//! answered a whole request with "missing"), it has at most one request in
//! flight: a peer that lies from the start is asked once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::*;
use crate::lock;

/// How long a peer that could not be reached is left out before it is
/// tried again (a long-lived lane: read-through; a long pass).
pub const PEER_RETRY: Duration = Duration::from_secs(5 * 60);

/// One asker's way to fetch: its sources, in order, and its limits.
pub struct Lane {
    pub name: &'static str,
    pub(super) sources: Vec<Arc<dyn ChunkSource>>,
    /// What became of each source, by index.
    used: Vec<SourceState>,
    /// Failed requests in a row (no chunk arriving) before its files give up.
    pub(super) max_failures: u32,
    pub(super) failures: AtomicU32,
    /// Requests up to this number were in flight at the last counted failure.
    pub(super) fail_mark: AtomicU64,
    /// Cancelled: requests in flight are dropped, chunks received are kept.
    pub stop: CancellationToken,
    /// Chunk bytes received as they travelled, and chunks.
    pub bytes: AtomicU64,
    pub chunks: AtomicU64,
    /// Told the bytes of each chunk as it arrives (a progress bar, a metric).
    pub(super) counted: Option<Counter>,
}

/// Told the bytes of each chunk as it arrives.
pub type Counter = Box<dyn Fn(u64) + Send + Sync>;

#[derive(Default)]
struct SourceState {
    /// Verified chunks taken from it, and their bytes as they travelled.
    chunks: AtomicU64,
    bytes: AtomicU64,
    /// It gave a verified chunk, or answered a whole request.
    proven: AtomicBool,
    dropped: Mutex<Option<Dropped>>,
}

struct Dropped {
    why: String,
    /// When it may be asked again; never, for a source that lied.
    until: Option<Instant>,
}

/// What a lane took from one source, for the sync report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUse {
    /// `peer 192.168.1.20:7450 (quic)`, `origin 10.0.0.1:7443 (quic)`.
    pub name: String,
    /// A LAN peer (not the upstream).
    pub peer: bool,
    /// Verified chunks taken from it, and their bytes as they travelled.
    pub chunks: u64,
    pub bytes: u64,
    /// Why it was left out, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<String>,
}

impl Lane {
    pub fn new(
        name: &'static str,
        sources: Vec<Arc<dyn ChunkSource>>,
        max_failures: u32,
        stop: CancellationToken,
        counted: Option<Counter>,
    ) -> Arc<Lane> {
        Arc::new(Lane {
            name,
            used: sources.iter().map(|_| SourceState::default()).collect(),
            sources,
            max_failures,
            failures: AtomicU32::new(0),
            fail_mark: AtomicU64::new(0),
            stop,
            bytes: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            counted,
        })
    }

    /// Source `index` is the upstream: the last, never dropped.
    pub(super) fn is_upstream(&self, index: usize) -> bool {
        index + 1 >= self.sources.len()
    }

    /// Source `index` may be asked now. A peer left out for a while is let
    /// back in once its time is up.
    pub(super) fn usable(&self, index: usize) -> bool {
        let Some(state) = self.used.get(index) else {
            return false;
        };
        let mut dropped = lock(&state.dropped);
        match &*dropped {
            None => true,
            Some(Dropped {
                until: Some(until), ..
            }) if Instant::now() >= *until => {
                info!(lane = self.name, source = %self.sources[index].name(), "asking a peer again");
                *dropped = None;
                true
            }
            Some(_) => false,
        }
    }

    /// The first source that may be asked, from `from` on (wrapping).
    pub(super) fn pick(&self, from: usize) -> Option<usize> {
        let count = self.sources.len();
        (0..count)
            .map(|step| (from + step) % count)
            .find(|&index| self.usable(index))
    }

    /// Whether source `index` is an optional one not yet proven: it may
    /// have only one request in flight.
    pub(super) fn on_probation(&self, index: usize) -> bool {
        !self.is_upstream(index)
            && self
                .used
                .get(index)
                .is_some_and(|state| !state.proven.load(Ordering::Relaxed))
    }

    /// Source `index` answered well: as many requests as the others.
    pub(super) fn proven(&self, index: usize) {
        if let Some(state) = self.used.get(index) {
            state.proven.store(true, Ordering::Relaxed);
        }
    }

    /// A verified chunk of `bytes` (as it travelled) came from source `index`.
    pub(super) fn took(&self, index: usize, bytes: u64) {
        if let Some(state) = self.used.get(index) {
            state.chunks.fetch_add(1, Ordering::Relaxed);
            state.bytes.fetch_add(bytes, Ordering::Relaxed);
            state.proven.store(true, Ordering::Relaxed);
        }
    }

    /// Leaves optional source `index` out, for `retry` or for the lane's
    /// life; logged once. The upstream is never left out.
    pub(super) fn drop_source(&self, index: usize, why: String, retry: Option<Duration>) {
        if self.is_upstream(index) {
            return;
        }
        let Some(state) = self.used.get(index) else {
            return;
        };
        let mut dropped = lock(&state.dropped);
        if dropped.as_ref().is_some_and(|d| d.until.is_none()) {
            return; // already out for good
        }
        let source = self.sources[index].name();
        match retry {
            None => warn!(lane = self.name, %source, cause = %why, "not asking this peer again"),
            Some(after) => warn!(
                lane = self.name,
                %source,
                cause = %why,
                retry_after_s = after.as_secs(),
                "leaving this peer out for a while"
            ),
        }
        state.proven.store(false, Ordering::Relaxed);
        *dropped = Some(Dropped {
            why,
            until: retry.map(|after| Instant::now() + after),
        });
    }

    /// What the lane took from each source, and which it left out.
    pub fn sources_used(&self) -> Vec<SourceUse> {
        self.sources
            .iter()
            .zip(&self.used)
            .enumerate()
            .map(|(index, (source, state))| SourceUse {
                name: source.name(),
                peer: !self.is_upstream(index),
                chunks: state.chunks.load(Ordering::Relaxed),
                bytes: state.bytes.load(Ordering::Relaxed),
                dropped: lock(&state.dropped).as_ref().map(|d| d.why.clone()),
            })
            .collect()
    }
}
