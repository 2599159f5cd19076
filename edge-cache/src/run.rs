//! `shanlu edge run`: sync on a timer within the sync windows, or now when
//! asked, and serve the classroom, until asked to stop.
//!
//! The sync loop:
//!
//! - Starts a pass at start-up, then `interval` after each pass ends, if the
//!   local time is inside a sync window (or no windows are set). Outside them
//!   it waits for the next window to open, reading the clock at least every
//!   [`RECHECK`] (a school box without a battery clock may set its time late).
//! - A pass started inside a window is stopped when the window closes: the
//!   chunk requests in flight are dropped, every chunk received is kept, and
//!   the next window carries on from there.
//! - "Sync now" — the status page's button ([`Live::request_sync`]) or
//!   `shanlu edge sync-now`, which leaves [`SYNC_NOW_FILE`] in the data
//!   folder — wakes the loop at once and runs one whole pass, windows or not,
//!   not stopped at a window's end. Asked during a pass, the next pass starts
//!   right after it.
//! - The bandwidth cap applies to every pass, asked for or not.
//! - Beside the loop, the background scrub ([`crate::scrub`]) re-hashes held
//!   blobs at `scrub_rate`, inside the same windows, paused during a pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::classroom::{self, Classroom};
use crate::config::{self, EdgeConfig};
use crate::metrics::Metrics;
use crate::status::Live;
use crate::sync::client::Transport;
use crate::sync::engine::Engine;
use crate::sync::schedule::{Now, Schedule, Window};
use crate::sync::throttle::Rate;
use crate::sync::{SyncError, SyncOptions};

/// The file `shanlu edge sync-now` leaves in the data folder; `edge run`
/// takes it away and starts a pass.
pub const SYNC_NOW_FILE: &str = "sync-now";
/// How often the loop looks for [`SYNC_NOW_FILE`].
pub const REQUEST_POLL: Duration = Duration::from_secs(1);
/// The longest the loop trusts a computed wait before reading the clock again.
pub const RECHECK: Duration = Duration::from_secs(60);

/// How `edge run` syncs. What is given here overrides `edge.toml`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time from the end of one pass to the start of the next.
    pub interval: Duration,
    /// Overrides `max_rate` in `edge.toml`.
    pub max_rate: Option<Rate>,
    /// Overrides `windows` in `edge.toml` when not empty.
    pub windows: Vec<Window>,
    /// Overrides `transport` in `edge.toml`.
    pub transport: Option<Transport>,
    /// Override `max_store` and `min_free` in `edge.toml` (issue 13).
    pub quota: crate::quota::QuotaOverrides,
    /// Serve edges below this one on this address (issue 14: a county edge).
    pub serve_edges: Option<std::net::SocketAddr>,
}

/// Why `edge run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] catalog::store::StoreError),
    #[error(transparent)]
    Downstream(#[from] crate::downstream::DownstreamError),
}

impl RunOptions {
    pub fn every(interval: Duration) -> RunOptions {
        RunOptions {
            interval,
            max_rate: None,
            windows: Vec::new(),
            transport: None,
            quota: Default::default(),
            serve_edges: None,
        }
    }
}

/// Serves the classroom on `listener` and syncs as `options` say, until
/// `shutdown`. With `options.serve_edges`, also serves edges below this one;
/// `serving` is told where once that is bound.
pub async fn run(
    dir: &Path,
    listener: tokio::net::TcpListener,
    options: RunOptions,
    shutdown: CancellationToken,
    serving: impl FnOnce(&crate::downstream::Serving),
) -> Result<(), RunError> {
    let config = EdgeConfig::load(dir)?;
    let (scrub_rate, scrub_every) = crate::scrub::settings(&config);
    let max_rate = options.max_rate.or(config.max_rate);
    let windows = if options.windows.is_empty() {
        config.windows
    } else {
        options.windows
    };
    let store = Arc::new(Store::open(config::store_path(dir))?);
    let live = Arc::new(Live::default());
    live.set_plan(max_rate, windows.clone());
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(Classroom::new(
        dir,
        store.clone(),
        live.clone(),
        metrics.clone(),
    )?);
    state.read_through.set_quota(options.quota);
    let downstream = match options.serve_edges {
        Some(addr) => {
            let (bound, served) = crate::downstream::bind(
                dir,
                addr,
                store.clone(),
                state.read_through.clone(),
                metrics.edges_below.clone(),
                &config.token,
            )
            .await?;
            serving(&served);
            info!(quic = %served.quic, https = ?served.https, "serving edges below this one");
            Some(tokio::spawn(bound.run(shutdown.clone())))
        }
        None => None,
    };
    // The background scrub (issue 13): paced, inside the same windows.
    let scrubbing = tokio::spawn(crate::scrub::scrub_task(
        store,
        crate::scrub::ScrubPlan {
            rate: scrub_rate,
            every: scrub_every,
            schedule: Schedule::new(windows.clone()),
        },
        live.clone(),
        shutdown.clone(),
    ));
    let requests = tokio::spawn(watch_requests(
        dir.join(SYNC_NOW_FILE),
        live.clone(),
        shutdown.clone(),
    ));
    // Usage counts (issue 15) reach the disk every few seconds and at the end.
    let flushing = tokio::spawn(state.usage.clone().flush_task(shutdown.clone()));
    // One download engine for read-through and the sync passes.
    let engine = state.read_through.engine().clone();
    let syncing = tokio::spawn(sync_task(
        dir.to_owned(),
        Plan {
            interval: options.interval,
            max_rate,
            schedule: Schedule::new(windows),
            transport: options.transport,
            engine,
            quota: options.quota,
            usage: state.usage.clone(),
        },
        live,
        metrics,
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    let limits = crate::classroom::front::Limits::for_open_files(open_file_limit());
    crate::classroom::front::serve(
        listener,
        state.clone(),
        classroom::router(state),
        limits,
        stop,
    )
    .await;
    shutdown.cancel();
    let _ = syncing.await;
    let _ = requests.await;
    let _ = scrubbing.await;
    let _ = flushing.await;
    if let Some(downstream) = downstream {
        let _ = downstream.await;
    }
    Ok(())
}

/// The process's open-file limit (the soft one, which `shanlu` raises to the
/// hard one at start); `None` when unlimited.
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// What the sync loop keeps to, resolved from the options and `edge.toml`.
struct Plan {
    interval: Duration,
    max_rate: Option<Rate>,
    schedule: Schedule,
    transport: Option<Transport>,
    engine: Engine,
    quota: crate::quota::QuotaOverrides,
    usage: Arc<crate::report::Usage>,
}

/// Runs sync passes as [`Plan`] says; logs each outcome and keeps `live`
/// and `metrics` up to date for the status page.
async fn sync_task(
    dir: PathBuf,
    plan: Plan,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    // The first pass is due at once.
    let mut due = tokio::time::Instant::now();
    loop {
        let Some(asked) = wait_for_turn(&plan.schedule, &live, due, &shutdown).await else {
            return;
        };
        live.set_waiting(None);
        if asked {
            info!("sync pass asked for (sync now)");
        }
        // A pass asked for runs to its end; one in a window stops when it closes.
        let closes = match plan.schedule.now() {
            Now::Open { closes } if !asked => closes,
            _ => None,
        };
        let options = SyncOptions {
            max_rate: plan.max_rate,
            transport: plan.transport,
            stop: CancellationToken::new(),
            transport_memory: live.transport.clone(),
            engine: Some(plan.engine.clone()),
            quota: plan.quota,
            usage: Some(plan.usage.clone()),
        };
        live.set_syncing(true);
        let pass = crate::sync::sync_once(&dir, &live.progress, &options);
        tokio::pin!(pass);
        let result = loop {
            let check = closes
                .as_ref()
                .filter(|_| !options.stop.is_cancelled())
                .map(|closes| closes.from_now().min(RECHECK));
            tokio::select! {
                result = &mut pass => break result,
                () = tokio::time::sleep(check.unwrap_or(RECHECK)), if check.is_some() => {
                    if matches!(plan.schedule.now(), Now::Closed { .. }) {
                        info!("the sync window closed; stopping the pass");
                        options.stop.cancel();
                    }
                }
                () = shutdown.cancelled() => return,
            }
        };
        live.set_syncing(false);
        record(&result, &live, &metrics);
        due = tokio::time::Instant::now() + plan.interval;
    }
}

/// Waits until a pass is `due` and the schedule is open, keeping the
/// status's "next window opens at" current meanwhile. `Some(true)`: woken
/// by "sync now" instead; `None`: shut down.
async fn wait_for_turn(
    schedule: &Schedule,
    live: &Live,
    due: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> Option<bool> {
    let mut announced = None;
    loop {
        let until_due = due.saturating_duration_since(tokio::time::Instant::now());
        let nap = match schedule.now() {
            Now::Open { closes } => {
                live.set_waiting(None);
                if until_due.is_zero() {
                    return Some(false);
                }
                closes.map_or(until_due, |closes| until_due.min(closes.from_now()))
            }
            Now::Closed { opens } => {
                live.set_waiting(Some(&opens));
                let text = opens.to_string();
                if announced.as_ref() != Some(&text) {
                    info!(opens = %text, "outside the sync windows; waiting");
                    announced = Some(text);
                }
                if until_due.is_zero() {
                    opens.from_now()
                } else {
                    until_due.min(opens.from_now())
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(nap.min(RECHECK)) => {}
            () = live.sync_now.notified() => return Some(true),
            () = shutdown.cancelled() => return None,
        }
    }
}

fn record(result: &Result<crate::SyncReport, SyncError>, live: &Live, metrics: &Metrics) {
    match result {
        Ok(report) => {
            live.upstream_seen(Ok(()));
            if report.complete {
                metrics.sync_outcome("complete");
                info!(
                    sequence = report.sequence,
                    bytes = report.bytes_fetched,
                    "sync complete"
                );
            } else if report.stopped_at_window_end {
                metrics.sync_outcome("incomplete");
                info!(
                    missing = report.files_missing,
                    "sync stopped at the end of the window; the next window carries on"
                );
            } else {
                metrics.sync_outcome("incomplete");
                warn!(
                    missing = report.files_missing,
                    "sync finished with files missing"
                );
            }
        }
        Err(err) => {
            if matches!(err, SyncError::Client(_) | SyncError::Unreachable { .. }) {
                live.upstream_seen(Err(err.to_string()));
            }
            metrics.sync_outcome("failed");
            warn!(cause = %crate::sync::error_chain(&err), "sync failed; will try again");
        }
    }
}

/// Turns [`SYNC_NOW_FILE`] into a "sync now", looking every [`REQUEST_POLL`].
async fn watch_requests(path: PathBuf, live: Arc<Live>, shutdown: CancellationToken) {
    let mut failing = false;
    loop {
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                info!("sync asked for with `shanlu edge sync-now`");
                live.request_sync();
                failing = false;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => failing = false,
            Err(err) => {
                if !failing {
                    warn!(path = %path.display(), cause = %err, "cannot take the sync-now request");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(REQUEST_POLL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Why `shanlu edge sync-now` could not ask.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("writing {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "no `shanlu edge run` on {dir} took the request within {secs} s; is it running (`systemctl status shanlu-edge`)? For one pass without it, run `shanlu edge sync --data {dir}`"
    )]
    NotTaken { dir: PathBuf, secs: u64 },
}

/// Asks the `edge run` serving `dir` for a pass now: leaves
/// [`SYNC_NOW_FILE`] and waits up to `wait` for the loop to take it. Blocks.
pub fn request_sync(dir: &Path, wait: Duration) -> Result<(), RequestError> {
    EdgeConfig::load(dir)?;
    let path = dir.join(SYNC_NOW_FILE);
    std::fs::write(&path, b"sync now\n").map_err(|cause| RequestError::Write {
        path: path.clone(),
        cause,
    })?;
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if !path.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match std::fs::remove_file(&path) {
        // Taken at the last moment.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        _ => Err(RequestError::NotTaken {
            dir: dir.to_owned(),
            secs: wait.as_secs(),
        }),
    }
}
