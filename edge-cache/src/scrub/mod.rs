//! The background scrub: `edge run` re-hashes every held blob, one at a
//! time, so a disk that rots under a school's lessons is found out before a
//! pupil opens the damaged file (issue 13).
//!
//! - **Low priority.** Reads are paced to `scrub_rate` (default 8 MiB/s,
//!   [`pace`]); the scrub runs only inside the sync windows when windows are
//!   set (never during class), and stops within one block when a sync pass
//!   starts, carrying on once it ends.
//! - **Cycles.** A full cycle starts at most every `scrub_every` (default 7
//!   days), counted from the start of the last one, the first from the first
//!   `edge run` (what it holds was verified as it arrived); a cycle walks the
//!   held blobs in hash order ([`catalog::Store::held_blobs_after`]).
//! - **Resumable.** The cycle's start, the last blob finished (the cursor) and
//!   its counts are kept in the store's meta ([`STATE`]), saved at least every
//!   second and at once after a finding: a restart or a power cut carries on
//!   from there, re-reading at most a second's worth.
//! - **A finding** (another hash or size, gone, unreadable) is quarantined by
//!   [`catalog::Store::scrub_one`] before anything else: the classroom never
//!   serves it again. The scrub then asks `edge run` for a sync pass, which
//!   fetches every quarantined blob again.
//! - `shanlu edge scrub` runs [`scrub_all`]: every held blob now, recorded
//!   under [`STATE_NOW`], apart from a background cycle under way; the status
//!   shows the later of the two as the last scrub, and both's findings.
//!
//! Non-goals: metadata objects (small; `shanlu verify` checks them), partial
//! blobs (their chunks are verified as they arrive).

pub mod pace;
pub mod page;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog::store::{BlobCheck, StoreError};
use catalog::{Hash, Store};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::EdgeConfig;
use crate::status::Live;
use crate::sync::schedule::{Now, Schedule};
use crate::sync::throttle::Rate;
pub use pace::{Every, Pacer};

/// Where the background scrub's progress and findings are kept in the store's meta.
pub const STATE: &str = "edge.scrub";
/// Where `shanlu edge scrub` keeps its last result and findings, apart, so a
/// running `edge run` saving [`STATE`] cannot overwrite them.
pub const STATE_NOW: &str = "edge.scrub.now";
/// Findings kept for the status page, the newest last.
pub const MAX_FINDINGS: usize = 20;
/// Blobs listed from the index at once.
const BATCH: usize = 64;
/// Progress is saved at least this often while a cycle runs.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The longest a wait (for a window, a cycle, a sync pass) trusts the clock.
const RECHECK: Duration = Duration::from_secs(60);
/// How often a paused scrub looks whether the sync pass is over.
const POLL: Duration = Duration::from_secs(1);
/// The longest one pacing sleep, so a stop is seen quickly.
const NAP: Duration = Duration::from_millis(100);

/// The scrub's record in the store: the cycle under way and the last done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubState {
    /// When the cycle under way began (Unix seconds); `None` between cycles.
    pub cycle_started_at: Option<u64>,
    /// The last blob the cycle finished, in hash order.
    pub cursor: Option<Hash>,
    pub cycle_blobs_checked: u64,
    pub cycle_bytes_checked: u64,
    pub cycle_found: u64,
    /// When the last background cycle began: the next may start `scrub_every` later.
    pub last_cycle_started_at: Option<u64>,
    /// The last finished scrub, background or `edge scrub`.
    pub last: Option<ScrubSummary>,
    /// The latest findings, newest last, at most [`MAX_FINDINGS`].
    pub findings: Vec<Finding>,
}

/// A finished scrub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubSummary {
    pub started_at: u64,
    pub finished_at: u64,
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    /// Blobs found bad (each quarantined and fetched again by the next pass).
    pub found: u64,
    /// `background` (`edge run`) or `edge scrub`.
    pub by: String,
}

/// One blob found bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Unix seconds.
    pub at: u64,
    pub blob: Hash,
    /// What was wrong, naming the file.
    pub problem: String,
    /// Taken out of service by this finding.
    pub quarantined: bool,
}

/// The scrub as `edge status`, the status page and `/api/v1/status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct ScrubStatus {
    #[serde(flatten)]
    pub state: ScrubState,
    /// The read rate, bytes per second.
    pub rate: u64,
    /// `scrub_every`, e.g. `7d`.
    pub every: Every,
    /// When the next cycle may start (Unix seconds), between cycles.
    pub next_cycle_at: Option<u64>,
}

/// Why a scrub could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("scrubbing the edge's store in {path}")]
    Store {
        path: PathBuf,
        #[source]
        cause: Box<StoreError>,
    },
    #[error("the scrub's worker thread stopped")]
    Worker(#[source] tokio::task::JoinError),
}

impl ScrubError {
    fn store(store: &Store) -> impl FnOnce(StoreError) -> ScrubError + '_ {
        move |cause| ScrubError::Store {
            path: store.root().to_owned(),
            cause: Box::new(cause),
        }
    }
}

/// The read rate and cycle length of `config`, defaults filled in.
pub fn settings(config: &EdgeConfig) -> (Rate, Every) {
    (
        config
            .scrub_rate
            .unwrap_or(Rate::from_bytes_per_second(pace::DEFAULT_RATE)),
        config.scrub_every.unwrap_or(pace::DEFAULT_EVERY),
    )
}

/// The background scrub's record; a damaged one is logged and started afresh.
pub fn load(store: &Store) -> Result<ScrubState, StoreError> {
    load_key(store, STATE)
}

fn load_key(store: &Store, key: &str) -> Result<ScrubState, StoreError> {
    let Some(bytes) = store.meta(key)? else {
        return Ok(ScrubState::default());
    };
    Ok(serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        warn!(cause = %err, "the scrub's progress record is unreadable; a new cycle starts");
        ScrubState::default()
    }))
}

fn save(store: &Store, state: &ScrubState) -> Result<(), StoreError> {
    save_key(store, STATE, state)
}

fn save_key(store: &Store, key: &str, state: &ScrubState) -> Result<(), StoreError> {
    // A struct of numbers, strings and hashes always serializes.
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    store.set_meta(key, &bytes)
}

/// The scrub's status for `config`'s edge.
pub fn status(store: &Store, config: &EdgeConfig) -> Result<ScrubStatus, StoreError> {
    let mut state = load(store)?;
    // `edge scrub`'s result joins the background's: the later last scrub,
    // and the newest findings of both.
    let now = load_key(store, STATE_NOW)?;
    let finished = |last: &Option<ScrubSummary>| last.as_ref().map(|last| last.finished_at);
    if finished(&now.last) > finished(&state.last) {
        state.last = now.last;
    }
    state.findings.extend(now.findings);
    state.findings.sort_by_key(|finding| finding.at);
    let extra = state.findings.len().saturating_sub(MAX_FINDINGS);
    state.findings.drain(..extra);
    let (rate, every) = settings(config);
    let next_cycle_at = match (state.cycle_started_at, state.last_cycle_started_at) {
        (None, Some(started)) => Some(started.saturating_add(every.duration().as_secs())),
        _ => None,
    };
    Ok(ScrubStatus {
        state,
        rate: rate.bytes_per_second(),
        every,
        next_cycle_at,
    })
}

fn now_secs() -> u64 {
    server::origin::now_secs()
}

impl ScrubState {
    /// Records a finding, keeping the newest [`MAX_FINDINGS`].
    fn found(&mut self, blob: Hash, problem: String, quarantined: bool) {
        if self.findings.len() >= MAX_FINDINGS {
            self.findings.remove(0);
        }
        self.findings.push(Finding {
            at: now_secs(),
            blob,
            problem,
            quarantined,
        });
    }

    /// How long until a background cycle may start; `None`: now.
    fn cycle_due(&self, every: Every, now: u64) -> Option<Duration> {
        let due = self
            .last_cycle_started_at?
            .saturating_add(every.duration().as_secs());
        (due > now).then(|| Duration::from_secs(due - now))
    }
}

/// What the background scrub keeps to.
#[derive(Debug, Clone)]
pub struct ScrubPlan {
    pub rate: Rate,
    pub every: Every,
    /// The sync windows: the scrub runs only inside them.
    pub schedule: Schedule,
}

/// Scrubs in the background as `plan` says until `shutdown`; errors are
/// logged and the scrub tries again a minute later.
pub async fn scrub_task(
    store: Arc<Store>,
    plan: ScrubPlan,
    live: Arc<Live>,
    shutdown: CancellationToken,
) {
    loop {
        let nap = match scrub_step(&store, &plan, &live, &shutdown).await {
            Ok(nap) => nap,
            Err(err) => {
                warn!(cause = %crate::sync::error_chain(&err), "the scrub failed; trying again in a minute");
                RECHECK
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        if !nap.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(nap) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// One turn of the background scrub: wait (returned), or one batch of blobs.
async fn scrub_step(
    store: &Arc<Store>,
    plan: &ScrubPlan,
    live: &Arc<Live>,
    shutdown: &CancellationToken,
) -> Result<Duration, ScrubError> {
    if live.is_syncing() {
        return Ok(POLL);
    }
    let window_closes = match plan.schedule.now() {
        Now::Closed { opens } => return Ok(opens.from_now().clamp(POLL, RECHECK)),
        Now::Open { closes } => closes.map(|closes| Instant::now() + closes.from_now()),
    };
    let (store, plan, live, shutdown) =
        (store.clone(), plan.clone(), live.clone(), shutdown.clone());
    tokio::task::spawn_blocking(move || {
        let stop = || {
            shutdown.is_cancelled()
                || live.is_syncing()
                || window_closes.is_some_and(|closes| Instant::now() >= closes)
        };
        background_batch(&store, &plan, &live, &stop).map_err(ScrubError::store(&store))
    })
    .await
    .map_err(ScrubError::Worker)?
}

/// Starts a due cycle, or scrubs up to [`BATCH`] blobs of the one under way
/// until `stop`, saving progress; returns how long to wait before the next turn.
fn background_batch(
    store: &Store,
    plan: &ScrubPlan,
    live: &Live,
    stop: &dyn Fn() -> bool,
) -> Result<Duration, StoreError> {
    let mut state = load(store)?;
    let now = now_secs();
    if state.cycle_started_at.is_none() && state.last_cycle_started_at.is_none() {
        // The first `edge run`: its files were verified as they arrived, so
        // the first cycle is due `scrub_every` from now (`edge scrub` checks
        // everything at once when wanted).
        state.last_cycle_started_at = Some(now);
        save(store, &state)?;
        return Ok(plan.every.duration().min(RECHECK));
    }
    if state.cycle_started_at.is_none() {
        if let Some(wait) = state.cycle_due(plan.every, now) {
            return Ok(wait.min(RECHECK));
        }
        // Nothing held yet (a new edge before its first pass): a cycle of
        // nothing would put off the first real one by `scrub_every`.
        if store.held_blobs_after(None, 1)?.is_empty() {
            return Ok(RECHECK);
        }
        info!(rate = %plan.rate, "scrub: a new cycle starts");
        state.cycle_started_at = Some(now);
        state.last_cycle_started_at = Some(now);
        state.cursor = None;
        state.cycle_blobs_checked = 0;
        state.cycle_bytes_checked = 0;
        state.cycle_found = 0;
        save(store, &state)?;
    }
    let blobs = store.held_blobs_after(state.cursor.as_ref(), BATCH)?;
    if blobs.is_empty() {
        let summary = ScrubSummary {
            started_at: state.cycle_started_at.unwrap_or(now),
            finished_at: now,
            blobs_checked: state.cycle_blobs_checked,
            bytes_checked: state.cycle_bytes_checked,
            found: state.cycle_found,
            by: "background".to_owned(),
        };
        info!(
            blobs = summary.blobs_checked,
            bytes = summary.bytes_checked,
            found = summary.found,
            "scrub: cycle finished"
        );
        state.last = Some(summary);
        state.cycle_started_at = None;
        state.cursor = None;
        save(store, &state)?;
        return Ok(Duration::ZERO);
    }
    let mut buffer = vec![0u8; pace::block_size(Some(plan.rate))];
    let mut saved = Instant::now();
    for (blob, _) in blobs {
        if stop() {
            break;
        }
        let mut pacer = Pacer::new(plan.rate, Instant::now());
        let check = store.scrub_one(&blob, &mut buffer, &mut |bytes| {
            paced_read(&mut pacer, bytes, stop)
        })?;
        let finding = match check {
            BlobCheck::Stopped { .. } => break,
            BlobCheck::NotHeld => false,
            BlobCheck::Good { bytes } => {
                state.cycle_blobs_checked += 1;
                state.cycle_bytes_checked += bytes;
                false
            }
            BlobCheck::Bad {
                bytes,
                problem,
                quarantined,
            } => {
                state.cycle_blobs_checked += 1;
                state.cycle_bytes_checked += bytes;
                state.cycle_found += 1;
                warn!(%blob, %problem, quarantined, "scrub: a held file is damaged; it is no longer served and the next sync pass fetches it again");
                state.found(blob, problem.to_string(), quarantined);
                true
            }
        };
        state.cursor = Some(blob);
        if finding || saved.elapsed() >= SAVE_EVERY {
            save(store, &state)?;
            saved = Instant::now();
        }
        if finding {
            // Inside a window (or with none): a pass fetches it again now.
            live.request_sync();
        }
    }
    save(store, &state)?;
    Ok(Duration::ZERO)
}

/// Charges a block to the pacer and sleeps its wait in short naps;
/// `false`: stop the check.
fn paced_read(pacer: &mut Pacer, bytes: u64, stop: &dyn Fn() -> bool) -> bool {
    let mut wait = pacer.wait_after(bytes, Instant::now());
    while !wait.is_zero() {
        if stop() {
            return false;
        }
        let nap = wait.min(NAP);
        std::thread::sleep(nap);
        wait -= nap;
    }
    !stop()
}

/// What `shanlu edge scrub` did.
#[derive(Debug, Clone, Serialize)]
pub struct ScrubAllReport {
    #[serde(flatten)]
    pub summary: ScrubSummary,
    pub findings: Vec<Finding>,
}

/// Scrubs every held blob now, at most at `rate` (`None`: as fast as the disk
/// reads); `progress` gets byte counts. Records the result as the last
/// scrub. Blocks: for the command line.
pub fn scrub_all(
    store: &Store,
    rate: Option<Rate>,
    progress: &dyn Fn(u64),
) -> Result<ScrubAllReport, ScrubError> {
    let started_at = now_secs();
    let mut summary = ScrubSummary {
        started_at,
        finished_at: started_at,
        blobs_checked: 0,
        bytes_checked: 0,
        found: 0,
        by: "edge scrub".to_owned(),
    };
    let mut findings = Vec::new();
    let mut buffer = vec![0u8; pace::block_size(rate)];
    let mut cursor: Option<Hash> = None;
    let never = || false;
    loop {
        let blobs = store
            .held_blobs_after(cursor.as_ref(), BATCH)
            .map_err(ScrubError::store(store))?;
        let Some((last, _)) = blobs.last().copied() else {
            break;
        };
        for (blob, _) in blobs {
            let mut pacer = rate.map(|rate| Pacer::new(rate, Instant::now()));
            let check = store
                .scrub_one(&blob, &mut buffer, &mut |bytes| {
                    progress(bytes);
                    pacer
                        .as_mut()
                        .is_none_or(|pacer| paced_read(pacer, bytes, &never))
                })
                .map_err(ScrubError::store(store))?;
            match check {
                BlobCheck::Good { bytes } => {
                    summary.blobs_checked += 1;
                    summary.bytes_checked += bytes;
                }
                BlobCheck::Bad {
                    bytes,
                    problem,
                    quarantined,
                } => {
                    summary.blobs_checked += 1;
                    summary.bytes_checked += bytes;
                    summary.found += 1;
                    findings.push(Finding {
                        at: now_secs(),
                        blob,
                        problem: problem.to_string(),
                        quarantined,
                    });
                }
                BlobCheck::Stopped { .. } | BlobCheck::NotHeld => {}
            }
        }
        cursor = Some(last);
    }
    summary.finished_at = now_secs();
    // Its own record: a running `edge run` rewrites [`STATE`] as it goes.
    let mut record = load_key(store, STATE_NOW).map_err(ScrubError::store(store))?;
    for finding in &findings {
        record.found(finding.blob, finding.problem.clone(), finding.quarantined);
    }
    record.last = Some(summary.clone());
    save_key(store, STATE_NOW, &record).map_err(ScrubError::store(store))?;
    Ok(ScrubAllReport { summary, findings })
}

#[cfg(test)]
mod tests;
