//! `shanlu edge run`: sync on a timer and serve the classroom, until asked to stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::Store;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::classroom::{self, Classroom};
use crate::config;
use crate::metrics::Metrics;
use crate::status::Live;
use crate::sync::SyncError;

/// Serves the classroom on `listener` and syncs every `interval`, until `shutdown`.
pub async fn run(
    dir: &Path,
    listener: tokio::net::TcpListener,
    interval: Duration,
    shutdown: CancellationToken,
) -> Result<(), SyncError> {
    let store = Arc::new(Store::open(config::store_path(dir))?);
    let live = Arc::new(Live::default());
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(Classroom::new(dir, store, live.clone(), metrics.clone())?);
    let syncing = tokio::spawn(sync_task(
        dir.to_owned(),
        interval,
        live,
        metrics,
        shutdown.clone(),
    ));
    let stop = shutdown.clone();
    crate::front::serve(listener, state.clone(), classroom::router(state), stop).await;
    shutdown.cancel();
    let _ = syncing.await;
    Ok(())
}

/// Runs a sync pass now and then every `interval`; logs each outcome and
/// keeps `live` and `metrics` up to date for the status page.
async fn sync_task(
    dir: PathBuf,
    interval: Duration,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    loop {
        live.set_syncing(true);
        let pass = crate::sync::sync_once(&dir, &live.progress);
        let result = tokio::select! {
            result = pass => result,
            () = shutdown.cancelled() => return,
        };
        live.set_syncing(false);
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
                warn!(cause = %err, "sync failed; will try again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
