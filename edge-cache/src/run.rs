//! `shanlu edge run`: sync on a timer and serve the classroom, until asked to stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::Store;
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::classroom::{self, Classroom};
use crate::config::{self, EdgeConfig};
use crate::sync::SyncError;

/// Serves the classroom on `listener` and syncs every `interval`, until `shutdown`.
pub async fn run(
    dir: &Path,
    listener: tokio::net::TcpListener,
    interval: Duration,
    shutdown: CancellationToken,
) -> Result<(), SyncError> {
    EdgeConfig::load(dir)?;
    let store = Arc::new(Store::open(config::store_path(dir))?);
    let state = Arc::new(Classroom {
        store,
        data_dir: dir.to_owned(),
    });
    let syncing = tokio::spawn(sync_task(dir.to_owned(), interval, shutdown.clone()));
    let stop = shutdown.clone();
    let served = axum::serve(listener, classroom::router(state))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(err) = served {
        warn!(cause = %err, "classroom server stopped");
    }
    shutdown.cancel();
    let _ = syncing.await;
    Ok(())
}

/// Runs a sync pass now and then every `interval`; logs each outcome.
async fn sync_task(dir: PathBuf, interval: Duration, shutdown: CancellationToken) {
    let hidden = ProgressBar::hidden();
    loop {
        let pass = crate::sync::sync_once(&dir, &hidden);
        tokio::select! {
            result = pass => match result {
                Ok(report) if report.complete => info!(sequence = report.sequence, bytes = report.bytes_fetched, "sync complete"),
                Ok(report) => warn!(missing = report.files_missing, "sync finished with files missing"),
                Err(err) => warn!(cause = %err, "sync failed; will try again"),
            },
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
