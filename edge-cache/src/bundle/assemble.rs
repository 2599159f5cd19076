//! The missing files of subscribed courses, assembled from a bundle's
//! chunks (issue 14): each chunk arrives hashed by the reading thread
//! ([`catalog::store::VerifiedChunkBuf`]), goes
//! into every missing file holding it, and whole files are finished (moved
//! into the store) in batches of [`FINISH_BATCH`]. A file whose BLAKE3 the
//! reading thread took as its chunks went by in order ([`super::order`]) is
//! not read back: that hash, over exactly the verified bytes written, must
//! be the manifest's. Any other file is hashed whole from its file.

use std::collections::{HashMap, HashSet};

use catalog::store::{PartialBlob, StoreError, VerifiedChunk};
use catalog::{Hash, Store};
use tracing::warn;

use super::import::ImportReport;
use crate::sync::plan::FileJob;

/// Partial files open at once; past this they are flushed and closed.
const MAX_OPEN: usize = 256;
/// Whole files finished with one sync and one index commit.
const FINISH_BATCH: usize = 128;
/// Bytes written into a file after which its writeback is started.
const WRITEBACK_BYTES: u64 = 16 * 1024 * 1024;
/// A whole file's last bytes get their writeback started if at least this many.
const WRITEBACK_MIN_BYTES: u64 = 256 * 1024;

/// The files being assembled: which missing file holds which chunk.
pub(super) struct Files<'s> {
    store: &'s Store,
    jobs: Vec<FileJob>,
    by_chunk: HashMap<Hash, Vec<usize>>,
    /// Open files: the file, chunks left, bytes written since its writeback started.
    open: HashMap<usize, (PartialBlob<'s>, usize, u64)>,
    done: HashSet<usize>,
    /// Whole files waiting to be finished together.
    ready: Vec<(usize, PartialBlob<'s>)>,
    /// Files a chunk was written into.
    touched: HashSet<usize>,
    /// Chunks and bytes written since the last [`Files::close_all`].
    written: (u64, u64),
    /// Whole-file BLAKE3s from the reading thread, for files not finished yet.
    hashes: HashMap<usize, Hash>,
    writeback: Writeback,
    /// Files whose in-order hash took a record not verified and written
    /// here: hashed from their file instead.
    tainted: HashSet<usize>,
    error: Option<StoreError>,
}

impl<'s> Files<'s> {
    /// The files of `jobs` not held whose blob is `wanted` (the quota's choice).
    pub(super) fn new(
        store: &'s Store,
        jobs: &[FileJob],
        wanted: &HashSet<Hash>,
    ) -> Result<Files<'s>, StoreError> {
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for job in jobs {
            if wanted.contains(&job.manifest.blob)
                && seen.insert(job.manifest.blob)
                && !store.check_held(&job.manifest.blob)?
            {
                missing.push(job.clone());
            }
        }
        let mut by_chunk: HashMap<Hash, Vec<usize>> = HashMap::new();
        for (index, job) in missing.iter().enumerate() {
            for chunk in &job.manifest.chunks {
                let files = by_chunk.entry(chunk.hash).or_default();
                if files.last() != Some(&index) {
                    files.push(index);
                }
            }
        }
        Ok(Files {
            store,
            jobs: missing,
            by_chunk,
            open: HashMap::new(),
            done: HashSet::new(),
            ready: Vec::new(),
            touched: HashSet::new(),
            written: (0, 0),
            hashes: HashMap::new(),
            tainted: HashSet::new(),
            writeback: Writeback::start(),
            error: None,
        })
    }

    /// The reading thread's in-order hashers for these files.
    pub(super) fn in_order(&self) -> super::order::InOrder {
        super::order::InOrder::new(&self.jobs)
    }

    /// A record the reading thread fed to hashers was not used (its pack
    /// failed): the files holding it are hashed from their file instead.
    pub(super) fn taint(&mut self, hash: &Hash) {
        if let Some(files) = self.by_chunk.get(hash) {
            self.tainted.extend(files.iter().copied());
        }
    }

    /// One checked chunk, written into every missing file holding it.
    /// `whole`: files the reading thread completed with it, and their BLAKE3.
    pub(super) fn chunk(
        &mut self,
        verified: &VerifiedChunk<'_>,
        whole: Vec<(usize, Hash)>,
    ) -> Result<(), String> {
        self.hashes.extend(whole);
        let hash = verified.hash();
        let Some(files) = self.by_chunk.get(&hash).cloned() else {
            return Ok(());
        };
        let mut wrote = false;
        for file in files {
            if self.done.contains(&file) {
                continue;
            }
            match self.write(file, verified) {
                Ok(count) => wrote |= count > 0,
                Err(err) => {
                    self.taint(&hash);
                    let message = catalog::format::error_chain(&err);
                    self.error = Some(err);
                    return Err(message);
                }
            }
        }
        if wrote {
            self.written.0 += 1;
            self.written.1 += verified.bytes().len() as u64;
        }
        Ok(())
    }

    fn write(&mut self, file: usize, chunk: &VerifiedChunk<'_>) -> Result<usize, StoreError> {
        if !self.open.contains_key(&file) {
            if self.open.len() >= MAX_OPEN {
                self.flush_open()?;
            }
            self.touched.insert(file);
            let job = &self.jobs[file];
            let mut partial = self
                .store
                .partial(job.manifest_hash, job.manifest.clone())?;
            // Flushed after each pack (`close_all`), its unit of resuming.
            partial.set_flush_bytes(u64::MAX);
            let left = partial.missing().len();
            self.open.insert(file, (partial, left, 0));
        }
        let Some((partial, left, unsynced)) = self.open.get_mut(&file) else {
            return Ok(0);
        };
        let count = partial.write_verified(chunk)?;
        *left = left.saturating_sub(count);
        *unsynced += (count * chunk.bytes().len()) as u64;
        if *unsynced >= WRITEBACK_BYTES {
            self.writeback.kick(partial.file());
            *unsynced = 0;
        }
        if *left == 0
            && let Some((partial, _, unsynced)) = self.open.remove(&file)
        {
            // Small files are left to the store's sync: a kick costs more.
            if unsynced >= WRITEBACK_MIN_BYTES {
                self.writeback.kick(partial.file());
            }
            self.ready.push((file, partial));
            if self.ready.len() >= FINISH_BATCH {
                self.finish_ready()?;
            }
        }
        Ok(count)
    }

    /// Finishes the whole files waiting, with one sync and one index commit.
    fn finish_ready(&mut self) -> Result<(), StoreError> {
        let partials = std::mem::take(&mut self.ready);
        let mut files = Vec::with_capacity(partials.len());
        let mut hashed = Vec::with_capacity(partials.len());
        for (file, partial) in partials {
            let whole = self.hashes.remove(&file);
            let whole = whole.filter(|_| !self.tainted.contains(&file));
            files.push(file);
            hashed.push((partial, whole));
        }
        let results = self.store.finish_partials_hashed(hashed)?;
        for (file, result) in files.into_iter().zip(results) {
            match result {
                Ok(_) => {
                    self.done.insert(file);
                }
                Err(err) => warn!(file = %self.jobs[file].label, cause = %err, "file not finished"),
            }
        }
        Ok(())
    }

    /// Makes every open file's chunks durable and closes it.
    fn flush_open(&mut self) -> Result<(), StoreError> {
        for (_, (mut partial, _, _)) in self.open.drain() {
            partial.flush()?;
        }
        Ok(())
    }

    /// After a pack: everything written is durable, the files closed.
    pub(super) fn close_all(&mut self, report: &mut ImportReport) -> Result<(), StoreError> {
        if let Some(err) = self.error.take() {
            self.open.clear();
            return Err(err);
        }
        self.flush_open()?;
        self.finish_ready()?;
        report.chunks_written += self.written.0;
        report.bytes_written += self.written.1;
        self.written = (0, 0);
        Ok(())
    }

    /// Files the bundle did not complete: chunks held in other blobs are
    /// copied in, and each file whole is finished.
    pub(super) fn top_up(&mut self, report: &mut ImportReport) -> Result<(), StoreError> {
        for file in 0..self.jobs.len() {
            if self.done.contains(&file) {
                continue;
            }
            let job = &self.jobs[file];
            // Only files this import wrote to or whose chunks are held
            // elsewhere: no empty partial file for the rest.
            let mut local = job.manifest.chunks.is_empty();
            for chunk in &job.manifest.chunks {
                if self.store.chunk_location(&chunk.hash)?.is_some() {
                    local = true;
                    break;
                }
            }
            if !local && !self.touched.contains(&file) {
                continue;
            }
            let mut partial = self
                .store
                .partial(job.manifest_hash, job.manifest.clone())?;
            if !partial.missing().is_empty() {
                report.bytes_reused += partial.reuse_local()?;
            }
            if partial.missing().is_empty() {
                self.ready.push((file, partial));
                if self.ready.len() >= FINISH_BATCH {
                    self.finish_ready()?;
                }
            } else {
                partial.flush()?;
            }
        }
        self.finish_ready()?;
        report.files_completed = self.done.len() as u64;
        Ok(())
    }
}

/// Starts writing files' dirty pages to the disk on a thread of its own,
/// without waiting, so the sync that makes them durable (a flush, or the
/// store's sync when files are finished) finds little left to write while
/// the importing thread went on. Only a hint: a file it has no room for, or
/// an error, changes nothing but when the bytes reach the disk.
pub(super) struct Writeback {
    tx: Option<std::sync::mpsc::SyncSender<std::fs::File>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Files waiting for their writeback to be started, at most (each an open
/// descriptor; a kick with no room is dropped).
const WRITEBACK_QUEUE: usize = 64;

impl Writeback {
    pub(super) fn start() -> Writeback {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::fs::File>(WRITEBACK_QUEUE);
        let thread = std::thread::Builder::new()
            .name("bundle-writeback".into())
            .spawn(move || {
                // Bounded: ends when the sender is dropped.
                for file in rx {
                    // POSIX_FADV_DONTNEED starts writeback of the dirty
                    // pages (and drops pages already clean).
                    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
                }
            })
            .ok();
        Writeback {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    fn kick(&self, file: &std::fs::File) {
        if let Some(tx) = &self.tx
            && let Ok(file) = file.try_clone()
        {
            let _ = tx.try_send(file);
        }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::Object;
    use catalog::store::VerifiedChunkBuf;

    fn job(chunks: &[&[u8]]) -> FileJob {
        let manifest = catalog::testdata::manifest_of_chunks(chunks, "application/octet-stream");
        FileJob {
            label: "math/l1/video.mp4".into(),
            manifest_hash: Object::Manifest(manifest.clone()).hash(),
            manifest,
            previous: None,
        }
    }

    /// Writes `chunks` in order, handing `whole` with the last one, as the
    /// reading thread does; returns whether the store then holds the file.
    fn assemble(chunks: &[&[u8]], whole: Option<Hash>) -> (bool, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("store");
        let jobs = vec![job(chunks)];
        let blob = jobs[0].manifest.blob;
        let mut files = Files::new(&store, &jobs, &HashSet::from([blob])).expect("files");
        for (i, bytes) in chunks.iter().enumerate() {
            let chunk = VerifiedChunkBuf::check(Hash::of(bytes), bytes.to_vec()).expect("checked");
            let given = match whole {
                Some(hash) if i + 1 == chunks.len() => vec![(0, hash)],
                _ => Vec::new(),
            };
            files.chunk(&chunk.chunk(), given).expect("written");
        }
        files
            .close_all(&mut ImportReport::default())
            .expect("closed");
        let held = store.has_blob(&blob).expect("index");
        let bytes = std::fs::read(store.blob_path(&blob)).unwrap_or_default();
        (held, bytes)
    }

    /// Issue 14: a file finished with the reading thread's in-order hash is
    /// kept only when that hash is the manifest's; a wrong one (a chunk fed
    /// that was not the one written) discards it, and with no hash the file
    /// is hashed whole from its file, as before.
    #[test]
    fn issue_14_a_file_is_kept_only_when_its_whole_hash_is_the_manifests() {
        let (a, b) = (vec![1u8; 5000], vec![2u8; 3000]);
        let chunks = [a.as_slice(), b.as_slice()];
        let data = chunks.concat();
        assert_eq!(
            assemble(&chunks, Some(Hash::of(&data))),
            (true, data.clone())
        );
        assert_eq!(assemble(&chunks, None), (true, data.clone()));
        assert_eq!(
            assemble(&chunks, Some(Hash::of(b"not the file"))),
            (false, Vec::new())
        );
        // Bytes that are not the chunk never become one.
        assert!(VerifiedChunkBuf::check(Hash::of(&a), b.clone()).is_err());
    }
}
