//! Background `fdatasync` of files being written, so the disk works while the
//! CPU chunks and hashes the next bytes, and the sync before an index commit
//! finds little left to do.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::StoreError;

/// Sync requests waiting at most; beyond this the writer waits for the disk.
const QUEUE: usize = 4;

pub(crate) struct Syncer {
    tx: Option<mpsc::SyncSender<(PathBuf, std::fs::File)>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Syncer {
    pub(crate) fn start() -> Syncer {
        let (tx, rx) = mpsc::sync_channel::<(PathBuf, std::fs::File)>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("shanlu-sync".into())
            .spawn(move || {
                let mut first_error = None;
                for (path, file) in rx {
                    if let Err(cause) = file.sync_data()
                        && first_error.is_none()
                    {
                        first_error = Some(StoreError::io("syncing", &path, cause));
                    }
                }
                first_error.map_or(Ok(()), Err)
            })
            .ok();
        Syncer {
            tx: Some(tx),
            thread,
        }
    }

    /// Asks for `file`'s data written so far to reach the disk; returns at once
    /// unless the queue is full. Without a sync thread, syncs here.
    pub(crate) fn sync(
        &self,
        path: &std::path::Path,
        file: &std::fs::File,
    ) -> Result<(), StoreError> {
        let clone = file
            .try_clone()
            .map_err(|cause| StoreError::io("syncing", path, cause))?;
        match (&self.tx, &self.thread) {
            (Some(tx), Some(_)) => {
                if tx.send((path.to_owned(), clone)).is_ok() {
                    return Ok(());
                }
                file.sync_data()
                    .map_err(|cause| StoreError::io("syncing", path, cause))
            }
            _ => file
                .sync_data()
                .map_err(|cause| StoreError::io("syncing", path, cause)),
        }
    }

    /// Waits until every requested sync is done; the first failure, if any.
    pub(crate) fn finish(mut self) -> Result<(), StoreError> {
        self.tx.take();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(StoreError::stopped("the store's sync thread", None))),
            None => Ok(()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
