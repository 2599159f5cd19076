//! The blobs readers have open, and when blobs were opened (issue 13).
//!
//! The classroom calls [`opened`] with each held blob it opens to serve. It
//! keeps a weak reference to the open file: while any answer still streams
//! from it (the body or the `sendfile` loop holds the `Arc`), the blob
//! counts as open and the quota never evicts it ([`open_blobs`]). This is
//! in-process: `edge run` serves and syncs in one process. A manual `edge
//! sync` in another process does not see it and relies on unlink semantics
//! instead: a reader that has the file open keeps reading it to the end
//! after a collection deletes its name.
//!
//! Opens are batched in a bounded map and written to the store's
//! `blob_opened` table at most every [`FLUSH_EVERY`] (and before a plan, by
//! [`flush`]): never a write transaction per request.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use catalog::store::StoreError;
use catalog::{Hash, Store};
use tracing::warn;

use crate::lock;

/// Opens are written to the store at most this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// Opens kept in memory between writes; more are dropped until the next
/// write (an eviction order a few seconds stale is harmless).
const MAX_PENDING: usize = 10_000;
/// Open files tracked; above this, the closed ones are swept.
const SWEEP_ABOVE: usize = 4_096;

struct Registry {
    open: HashMap<Hash, Vec<Weak<File>>>,
    pending: HashMap<Hash, u64>,
    last_flush: Option<Instant>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        open: HashMap::new(),
        pending: HashMap::new(),
        last_flush: None,
    })
});

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The classroom opened `blob` (as `file`) to serve it: it counts as open
/// while `file` lives, and its open time is recorded (batched).
pub fn opened(store: &Arc<Store>, blob: Hash, file: &Arc<File>) {
    let due = {
        let mut registry = lock(&REGISTRY);
        if registry.open.len() > SWEEP_ABOVE {
            registry.open.retain(|_, files| {
                files.retain(|f| f.strong_count() > 0);
                !files.is_empty()
            });
        }
        let files = registry.open.entry(blob).or_default();
        files.retain(|f| f.strong_count() > 0);
        files.push(Arc::downgrade(file));
        if registry.pending.len() < MAX_PENDING || registry.pending.contains_key(&blob) {
            registry.pending.insert(blob, now_secs());
        }
        let due = registry
            .last_flush
            .is_none_or(|at| at.elapsed() >= FLUSH_EVERY);
        if due {
            registry.last_flush = Some(Instant::now());
            std::mem::take(&mut registry.pending)
        } else {
            HashMap::new()
        }
    };
    if due.is_empty() {
        return;
    }
    let store = store.clone();
    let write = move || {
        let opens: Vec<(Hash, u64)> = due.into_iter().collect();
        if let Err(err) = store.record_opens(&opens) {
            warn!(error = %crate::sync::error_chain(&err), "could not record which files were opened");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(write);
        }
        Err(_) => write(),
    }
}

/// Blobs a reader has open now.
pub fn open_blobs() -> HashSet<Hash> {
    lock(&REGISTRY)
        .open
        .iter()
        .filter(|(_, files)| files.iter().any(|f| f.strong_count() > 0))
        .map(|(blob, _)| *blob)
        .collect()
}

/// Writes the opens batched so far (before a plan reads them).
pub fn flush(store: &Store) -> Result<(), StoreError> {
    let pending = {
        let mut registry = lock(&REGISTRY);
        registry.last_flush = Some(Instant::now());
        std::mem::take(&mut registry.pending)
    };
    let opens: Vec<(Hash, u64)> = pending.into_iter().collect();
    store.record_opens(&opens)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: a blob counts as open exactly while a reader holds its file.
    #[test]
    fn issue_13_a_blob_is_open_while_its_file_is_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(dir.path().join("store")).expect("store"));
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        let blob = Hash::of(b"issue 13 open reader");
        let file = Arc::new(File::open(&path).expect("open"));
        opened(&store, blob, &file);
        assert!(open_blobs().contains(&blob));
        let second = file.clone();
        drop(file);
        assert!(
            open_blobs().contains(&blob),
            "another answer still reads it"
        );
        drop(second);
        assert!(!open_blobs().contains(&blob));
    }
}
