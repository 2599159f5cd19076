//! The one thread that writes uploaded files (issue 15): it owns the
//! partial blobs being assembled, so a file's chunks arriving in many
//! requests, on several connections, go into one open partial.
//!
//! Chunks arrive already checked against their hashes (on the blocking
//! pool, in parallel). A partial records its chunks (data synced first) every
//! [`FLUSH_BYTES`], when it is evicted, and when no job came for [`IDLE`]: a
//! cut connection loses nothing (the partial stays open here, and a plan
//! answers from it), an origin killed loses at most what was not recorded,
//! which is sent again. Whole files are checked and moved into the store in
//! groups, one filesystem sync and one index commit per group, and before
//! lessons or a course that name them are taken ([`Writer::settle`]).
//! Bounded: at most [`MAX_OPEN`] open partials; jobs queue [`QUEUE`] deep.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use catalog::store::{ImportBatch, PartialBlob, Store, StoreError, VerifiedChunkBuf};
use catalog::{FileManifest, Hash};

use super::upload::Received;

/// Unrecorded bytes of one partial after which it records them.
const FLUSH_BYTES: u64 = 64 * 1024 * 1024;
/// With no job for this long, everything is recorded and whole files finished.
const IDLE: Duration = Duration::from_secs(1);
/// Open partial blobs at most; the least recently used is closed first.
const MAX_OPEN: usize = 64;
/// Bytes of chunks kept, across files, because they arrived ahead of their
/// file's order (see `InOrder`).
const MAX_EARLY: usize = 64 * 1024 * 1024;
/// Whole files waiting to be finished at most (and their bytes).
const MAX_WHOLE: usize = 256;
const MAX_WHOLE_BYTES: u64 = 256 * 1024 * 1024;
/// Files up to this size sent whole in one request skip the partial blobs.
const SMALL_WHOLE: u64 = 4 * 1024 * 1024;
/// Jobs waiting at most.
const QUEUE: usize = 16;

/// Chunks for one file, checked: manifest object, manifest, chunks.
pub(super) type CheckedFile = (Hash, FileManifest, Vec<VerifiedChunkBuf>);

enum Job {
    Plan {
        files: Vec<(Hash, FileManifest)>,
        reply: mpsc::Sender<Result<Vec<Vec<u32>>, String>>,
    },
    Put {
        files: Vec<CheckedFile>,
        reply: mpsc::Sender<(Received, u32, Option<String>)>,
    },
    Settle {
        reply: mpsc::Sender<Result<(), String>>,
    },
}

/// The handle to the writing thread.
pub(super) struct Writer {
    jobs: SyncSender<Job>,
}

const STOPPED: &str = "the origin's upload writer stopped (see the origin's log); try again";

impl Writer {
    pub(super) fn start(origin: super::Held) -> Result<Writer, String> {
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("upload-writer".into())
            .spawn(move || run(&origin, queue))
            .map_err(|e| format!("starting the upload writer: {e}"))?;
        Ok(Writer { jobs })
    }

    /// The chunk indices each file still lacks.
    pub(super) fn plan(&self, files: Vec<(Hash, FileManifest)>) -> Result<Vec<Vec<u32>>, String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job::Plan { files, reply })
            .map_err(|_| STOPPED.to_owned())?;
        answer.recv().map_err(|_| STOPPED.to_owned())?
    }

    /// Writes checked chunks: what was written, files made whole, and why
    /// the rest was refused.
    pub(super) fn put(&self, files: Vec<CheckedFile>) -> (Received, u32, Option<String>) {
        let (reply, answer) = mpsc::channel();
        if self.jobs.send(Job::Put { files, reply }).is_err() {
            return (Received::default(), 0, Some(STOPPED.to_owned()));
        }
        answer
            .recv()
            .unwrap_or((Received::default(), 0, Some(STOPPED.to_owned())))
    }

    /// Records everything and finishes whole files.
    pub(super) fn settle(&self) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job::Settle { reply })
            .map_err(|_| STOPPED.to_owned())?;
        answer.recv().map_err(|_| STOPPED.to_owned())?
    }
}

fn store_error(doing: &str, err: impl std::fmt::Display) -> String {
    format!(
        "{doing} failed on the origin: {err}; try again, and see the origin's log if it persists"
    )
}

/// A partial being assembled, when it was last used, and the BLAKE3 of
/// its chunks written so far in file order from the first: kept while the
/// file was begun empty here, so a whole file need not be read back to be
/// checked.
struct Open<'s> {
    partial: PartialBlob<'s>,
    used: Instant,
    in_order: Option<InOrder>,
}

/// A file's BLAKE3 taken in file order as its chunks are written. Chunks
/// that arrive ahead of the next one (requests in flight together may be
/// written in any order) are kept until the gap is filled, within
/// [`MAX_EARLY`] across all files; past it the file is read back instead.
struct InOrder {
    /// The next chunk in file order to hash.
    next: usize,
    hasher: blake3::Hasher,
    early: HashMap<Hash, Vec<u8>>,
    early_bytes: usize,
}

impl Open<'_> {
    fn hashing() -> Option<InOrder> {
        Some(InOrder {
            next: 0,
            hasher: blake3::Hasher::new(),
            early: HashMap::new(),
            early_bytes: 0,
        })
    }

    /// Bytes kept ahead of the file order.
    fn early_bytes(&self) -> usize {
        self.in_order.as_ref().map_or(0, |state| state.early_bytes)
    }

    /// Hashes in file order what can be after `chunk` was written: it, and
    /// chunks kept from before; keeps `chunk` if it came early and this
    /// file may keep `room` bytes, else gives up hashing it as it comes.
    fn hash_in_order(&mut self, chunk: VerifiedChunkBuf, room: usize) {
        let Some(state) = self.in_order.as_mut() else {
            return;
        };
        let chunks = &self.partial.manifest().chunks;
        let hash = chunk.chunk().hash();
        let mut used = false;
        while let Some(entry) = chunks.get(state.next) {
            if entry.hash == hash {
                state.hasher.update(chunk.chunk().bytes());
                used = true;
            } else if let Some(bytes) = state.early.remove(&entry.hash) {
                state.hasher.update(&bytes);
                state.early_bytes -= bytes.len();
            } else {
                break;
            }
            state.next += 1;
        }
        if used || state.next == chunks.len() {
            return;
        }
        let bytes = chunk.into_owned();
        if state.early_bytes + bytes.len() > room {
            self.in_order = None;
            return;
        }
        state.early_bytes += bytes.len();
        if let Some(replaced) = state.early.insert(hash, bytes) {
            state.early_bytes -= replaced.len();
        }
    }

    /// The file's BLAKE3 if every chunk was hashed in order.
    fn whole_hash(&self) -> Option<Hash> {
        let state = self.in_order.as_ref()?;
        (state.next == self.partial.manifest().chunks.len())
            .then(|| Hash::from_bytes(*state.hasher.finalize().as_bytes()))
    }
}

/// The partials of one writing thread.
struct Files<'s> {
    store: &'s Store,
    open: HashMap<Hash, Open<'s>>,
    /// Whole files to finish, each with the BLAKE3 taken of its chunks as
    /// they were written in order (none: the file is read back to check it).
    whole: Vec<(PartialBlob<'s>, Option<Hash>)>,
    whole_bytes: u64,
    /// Files made whole so far.
    completed: u64,
    /// Small files stored whole, committed when settling (or when it grows).
    batch: ImportBatch,
    batched: std::collections::HashSet<Hash>,
}

impl<'s> Files<'s> {
    fn new(store: &'s Store) -> Files<'s> {
        Files {
            store,
            open: HashMap::new(),
            whole: Vec::new(),
            whole_bytes: 0,
            completed: 0,
            batch: ImportBatch::new(),
            batched: std::collections::HashSet::new(),
        }
    }
}

fn run(origin: &super::Held, queue: Receiver<Job>) {
    let mut desk = Files::new(origin.store());
    loop {
        match queue.recv_timeout(IDLE) {
            Ok(Job::Plan { files, reply }) => {
                let _ = reply.send(desk.plan(files));
            }
            Ok(Job::Put { files, reply }) => {
                let _ = reply.send(desk.put(files));
            }
            Ok(Job::Settle { reply }) => {
                let _ = reply.send(desk.settle());
            }
            Err(RecvTimeoutError::Timeout) => {
                let (chunks, files) = desk.unrecorded();
                match desk.settle() {
                    Err(message) => tracing::error!(cause = %message, "recording uploaded chunks"),
                    // What an origin killed from now on keeps (and a test waits for).
                    Ok(()) if chunks + files > 0 => {
                        tracing::info!(chunks, files, "upload recorded chunks")
                    }
                    Ok(()) => {}
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = desk.settle();
                return;
            }
        }
    }
}

impl<'s> Files<'s> {
    fn plan(&mut self, files: Vec<(Hash, FileManifest)>) -> Result<Vec<Vec<u32>>, String> {
        let mut needed = Vec::with_capacity(files.len());
        for (hash, manifest) in files {
            let blob = manifest.blob;
            if manifest.chunks.is_empty() {
                // An empty file: nothing to send, stored at once.
                if !self.batched.contains(&blob)
                    && !self
                        .store
                        .check_held(&blob)
                        .map_err(|e| store_error("checking a file", e))?
                {
                    self.import_whole(hash, &manifest, &[])?;
                }
                needed.push(Vec::new());
                continue;
            }
            let missing = self
                .still_needed(hash, manifest)
                .map_err(|e| store_error(&format!("planning file {blob}"), e))?;
            needed.push(missing);
        }
        Ok(needed)
    }

    /// The chunk indices of a file the store still lacks (none if it holds
    /// it, or will once finished), after copying chunks held elsewhere.
    fn still_needed(&mut self, hash: Hash, manifest: FileManifest) -> Result<Vec<u32>, StoreError> {
        let blob = manifest.blob;
        if let Some(open) = self.open.get_mut(&blob) {
            open.used = Instant::now();
            return Ok(open
                .partial
                .missing()
                .into_iter()
                .map(|i| i as u32)
                .collect());
        }
        if self.batched.contains(&blob)
            || self.whole.iter().any(|(p, _)| p.manifest().blob == blob)
            || self.store.check_held(&blob)?
        {
            return Ok(Vec::new());
        }
        // Nothing begun and no chunk held elsewhere: all of it, no partial file yet.
        if !self.store.partial_path(&blob).exists() {
            let mut any_held = false;
            for chunk in &manifest.chunks {
                if self.store.chunk_location(&chunk.hash)?.is_some() {
                    any_held = true;
                    break;
                }
            }
            if !any_held {
                return Ok((0..manifest.chunks.len() as u32).collect());
            }
        }
        let mut open = self.open_partial(hash, manifest)?;
        if open.partial.reuse_local()? > 0 {
            open.in_order = None;
        }
        let missing: Vec<u32> = open
            .partial
            .missing()
            .into_iter()
            .map(|i| i as u32)
            .collect();
        self.keep(open)?;
        Ok(missing)
    }

    fn open_partial(&mut self, hash: Hash, manifest: FileManifest) -> Result<Open<'s>, StoreError> {
        while self.open.len() >= MAX_OPEN {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, open)| open.used)
                .map(|(blob, _)| *blob);
            let Some(oldest) = oldest else { break };
            if let Some(mut open) = self.open.remove(&oldest) {
                open.partial.flush()?;
            }
        }
        let mut partial = self.store.partial(hash, manifest)?;
        partial.set_flush_bytes(FLUSH_BYTES);
        // Begun empty (not resumed from disk): its chunks can be hashed as they come.
        let in_order = if partial.bytes_present() == 0 {
            Open::hashing()
        } else {
            None
        };
        Ok(Open {
            partial,
            used: Instant::now(),
            in_order,
        })
    }

    /// Keeps a partial open, or queues it to finish when it is whole.
    fn keep(&mut self, mut open: Open<'s>) -> Result<(), StoreError> {
        if open.partial.missing().is_empty() {
            self.completed += 1;
            self.whole_bytes += open.partial.manifest().size;
            let hash = open.whole_hash();
            self.whole.push((open.partial, hash));
            if self.whole.len() >= MAX_WHOLE || self.whole_bytes >= MAX_WHOLE_BYTES {
                self.finish_whole()?;
            }
        } else {
            open.used = Instant::now();
            self.open.insert(open.partial.manifest().blob, open);
        }
        Ok(())
    }

    fn put(&mut self, files: Vec<CheckedFile>) -> (Received, u32, Option<String>) {
        let mut received = Received::default();
        let before = self.completed;
        let mut refused = None;
        // Files whole in this request and not begun: stored as a local
        // publish stores them, many with one sync and one index commit.
        for (hash, manifest, chunks) in files {
            let done = match self.whole_in_request(&manifest, &chunks) {
                Some(data) => self.import_whole(hash, &manifest, &data).map(|()| {
                    received.chunks += chunks.len() as u64;
                    received.bytes += chunks
                        .iter()
                        .map(|c| c.chunk().bytes().len() as u64)
                        .sum::<u64>();
                    self.completed += 1;
                }),
                None => self.put_file(hash, manifest, chunks, &mut received),
            };
            if let Err(message) = done {
                refused = Some(message);
                break;
            }
        }
        let full = self.batch.new_bytes() >= MAX_WHOLE_BYTES || self.batch.new_blobs() >= MAX_WHOLE;
        if full && let Err(err) = self.commit_batch() {
            refused.get_or_insert(store_error("storing uploaded files", err));
        }
        let complete = (self.completed - before) as u32;
        (received, complete, refused)
    }

    /// The file's bytes, if this request carries every chunk of a file
    /// nobody began (no partial, open or on disk) and the store lacks.
    fn whole_in_request(
        &self,
        manifest: &FileManifest,
        chunks: &[VerifiedChunkBuf],
    ) -> Option<Vec<u8>> {
        let blob = manifest.blob;
        if manifest.size > SMALL_WHOLE
            || self.batched.contains(&blob)
            || self.open.contains_key(&blob)
            || self.whole.iter().any(|(p, _)| p.manifest().blob == blob)
            || self.store.partial_path(&blob).exists()
        {
            return None;
        }
        let by_hash: HashMap<Hash, &[u8]> = chunks
            .iter()
            .map(|c| (c.chunk().hash(), c.chunk().bytes()))
            .collect();
        let mut data = Vec::with_capacity(manifest.size as usize);
        for entry in &manifest.chunks {
            let bytes = by_hash.get(&entry.hash)?;
            if bytes.len() != entry.len as usize {
                return None;
            }
            data.extend_from_slice(bytes);
        }
        Some(data)
    }

    /// Stores a whole file through the store's import (into `batch`).
    fn import_whole(
        &mut self,
        hash: Hash,
        manifest: &FileManifest,
        data: &[u8],
    ) -> Result<(), String> {
        let blob = manifest.blob;
        let failed = |e: StoreError| store_error(&format!("storing file {blob}"), e);
        // Straight from memory: no staging file written, read back, hashed
        // again and deleted per file, and none left behind by a crash.
        let imported = self
            .store
            .import_bytes(
                data,
                manifest.chunking,
                &manifest.media_type,
                &mut self.batch,
            )
            .map_err(failed)?;
        if imported.manifest_hash != hash {
            return Err(format!(
                "file {blob}: the origin cuts it into other chunks than the manifest sent says; publish it on the origin machine"
            ));
        }
        self.batched.insert(blob);
        Ok(())
    }

    /// Commits the small files stored whole.
    fn commit_batch(&mut self) -> Result<(), StoreError> {
        if self.batched.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.batched.clear();
        self.store.commit_batch(batch)
    }

    fn put_file(
        &mut self,
        hash: Hash,
        manifest: FileManifest,
        chunks: Vec<VerifiedChunkBuf>,
        received: &mut Received,
    ) -> Result<(), String> {
        let blob = manifest.blob;
        let failed = |e: StoreError| store_error(&format!("writing file {blob}"), e);
        let mut open = match self.open.remove(&blob) {
            Some(open) => open,
            None => {
                if self.batched.contains(&blob)
                    || self.whole.iter().any(|(p, _)| p.manifest().blob == blob)
                    || self.store.check_held(&blob).map_err(failed)?
                {
                    received.again += chunks.len() as u64;
                    return Ok(());
                }
                self.open_partial(hash, manifest).map_err(failed)?
            }
        };
        let mut result = Ok(());
        // Room to keep chunks that came ahead of their file's order.
        let room = MAX_EARLY.saturating_sub(self.open.values().map(Open::early_bytes).sum());
        for chunk in chunks {
            let written = open.partial.write_verified(&chunk.chunk());
            match written {
                Ok(0) => received.again += 1,
                Ok(_) => {
                    received.chunks += 1;
                    received.bytes += chunk.chunk().bytes().len() as u64;
                    open.hash_in_order(chunk, room);
                }
                Err(err) => {
                    result = Err(failed(err));
                    break;
                }
            }
        }
        self.keep(open).map_err(failed)?;
        result
    }

    /// Chunks written to open partials and not recorded, and whole files
    /// not yet finished or committed.
    fn unrecorded(&self) -> (usize, usize) {
        let chunks = self
            .open
            .values()
            .map(|open| open.partial.unrecorded_chunks())
            .sum();
        (chunks, self.whole.len() + self.batched.len())
    }

    /// Records every open partial and finishes the whole files.
    fn settle(&mut self) -> Result<(), String> {
        for open in self.open.values_mut() {
            open.partial
                .flush()
                .map_err(|e| store_error("recording uploaded chunks", e))?;
        }
        self.finish_whole()
            .map_err(|e| store_error("finishing uploaded files", e))?;
        self.commit_batch()
            .map_err(|e| store_error("storing uploaded files", e))
    }

    fn finish_whole(&mut self) -> Result<(), StoreError> {
        if self.whole.is_empty() {
            return Ok(());
        }
        let whole = std::mem::take(&mut self.whole);
        self.whole_bytes = 0;
        let count = whole.len();
        for result in self.store.finish_partials_hashed(whole)? {
            if let Err(err) = result {
                // Discarded by the check: planned again, it is sent again.
                tracing::warn!(cause = %err, "an uploaded file did not verify whole; it will be asked for again");
            }
        }
        tracing::debug!(files = count, "uploaded files finished");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;
    use catalog::{ChunkingProfile, Object};
    use std::sync::Arc;

    fn manifest_of(data: &[u8]) -> (Hash, FileManifest) {
        let manifest = catalog::manifest::manifest_of(
            data,
            ChunkingProfile::DEFAULT,
            "application/octet-stream",
            &mut |_| {},
        )
        .expect("manifest");
        (Object::Manifest(manifest.clone()).hash(), manifest)
    }

    fn chunks(data: &[u8], manifest: &FileManifest, indices: &[u32]) -> Vec<VerifiedChunkBuf> {
        let offsets: Vec<u64> = manifest.chunk_offsets().map(|(o, _)| o).collect();
        indices
            .iter()
            .map(|&i| {
                let (at, len) = (
                    offsets[i as usize] as usize,
                    manifest.chunks[i as usize].len,
                );
                VerifiedChunkBuf::check(
                    manifest.chunks[i as usize].hash,
                    data[at..at + len as usize].to_vec(),
                )
                .expect("verified")
            })
            .collect()
    }

    /// Issue 15: a large file sent in two requests is asked for only the
    /// rest the second time, and is held once settled; a small file sent
    /// whole is held once settled; nothing counts as sent twice.
    #[test]
    fn files_are_assembled_across_requests_and_only_the_rest_is_asked_for_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        Origin::init(dir.path()).expect("init");
        let origin = Arc::new(Origin::open(dir.path()).expect("open"));
        let writer = Writer::start(crate::admin::Held::Origin(origin.clone())).expect("writer");
        let big = catalog::testdata::generated(6 * 1024 * 1024, 15);
        let small = catalog::testdata::generated(300_000, 16);
        let (big_hash, big_manifest) = manifest_of(&big);
        let (small_hash, small_manifest) = manifest_of(&small);
        for (hash, manifest) in [(big_hash, &big_manifest), (small_hash, &small_manifest)] {
            origin
                .store()
                .commit_batch({
                    let mut batch = ImportBatch::new();
                    assert_eq!(batch.add_object(&Object::Manifest(manifest.clone())), hash);
                    batch
                })
                .expect("manifest kept");
        }
        let needed = writer
            .plan(vec![
                (big_hash, big_manifest.clone()),
                (small_hash, small_manifest.clone()),
            ])
            .expect("plan");
        assert_eq!(needed[0].len(), big_manifest.chunks.len());
        assert_eq!(needed[1].len(), small_manifest.chunks.len());
        let (first, rest) = needed[0].split_at(needed[0].len() / 2);
        let (received, _, refused) = writer.put(vec![(
            big_hash,
            big_manifest.clone(),
            chunks(&big, &big_manifest, first),
        )]);
        assert_eq!(
            (received.chunks, received.again, refused),
            (first.len() as u64, 0, None)
        );
        let again = writer
            .plan(vec![(big_hash, big_manifest.clone())])
            .expect("plan");
        assert_eq!(again[0], rest.to_vec());
        let (received, complete, refused) = writer.put(vec![
            (
                big_hash,
                big_manifest.clone(),
                chunks(&big, &big_manifest, rest),
            ),
            (
                small_hash,
                small_manifest.clone(),
                chunks(&small, &small_manifest, &needed[1]),
            ),
        ]);
        assert_eq!(refused, None);
        assert_eq!(complete, 2);
        assert_eq!(received.again, 0);
        writer.settle().expect("settle");
        for blob in [big_manifest.blob, small_manifest.blob] {
            assert!(
                origin.store().check_held(&blob).expect("check"),
                "{blob} held"
            );
        }
        let done = writer
            .plan(vec![(big_hash, big_manifest), (small_hash, small_manifest)])
            .expect("plan");
        assert!(done.iter().all(Vec::is_empty), "{done:?}");
    }

    /// Issue 15: chunks written in file order into a file begun empty are
    /// hashed as they come, so the whole file is not read back; out of
    /// order, or resumed, it is read back (and checked) instead.
    #[test]
    fn a_file_written_in_order_is_hashed_as_it_comes_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        Origin::init(dir.path()).expect("init");
        let origin = Origin::open(dir.path()).expect("open");
        let data = catalog::testdata::generated(3 * 1024 * 1024, 17);
        let (hash, manifest) = manifest_of(&data);
        let all: Vec<u32> = (0..manifest.chunks.len() as u32).collect();
        assert!(all.len() >= 8, "{} chunks", all.len());
        let mut files = Files::new(origin.store());
        let mut write_all = |order: Vec<VerifiedChunkBuf>, room: usize| {
            let mut open = files.open_partial(hash, manifest.clone()).expect("partial");
            let mut most_kept = 0;
            for chunk in order {
                open.partial.write_verified(&chunk.chunk()).expect("write");
                open.hash_in_order(chunk, room);
                most_kept = most_kept.max(open.early_bytes());
            }
            (open, most_kept)
        };
        // In order: hashed as written, nothing kept.
        let (in_order, kept) = write_all(chunks(&data, &manifest, &all), MAX_EARLY);
        assert_eq!(in_order.whole_hash(), Some(manifest.blob));
        assert_eq!(kept, 0);
        in_order.partial.discard().expect("discard");

        // Requests written out of order (the second half first): the early
        // chunks are kept and hashed when the gap fills; nothing read back.
        let half = all.len() / 2;
        let mut swapped = chunks(&data, &manifest, &all[half..]);
        swapped.extend(chunks(&data, &manifest, &all[..half]));
        let (swapped, kept) = write_all(swapped, MAX_EARLY);
        assert_eq!(swapped.whole_hash(), Some(manifest.blob));
        assert_eq!(swapped.early_bytes(), 0, "all used");
        assert!(
            kept > 0,
            "the second half was kept while the first was missing"
        );
        swapped.partial.discard().expect("discard");

        // Past the room for early chunks: read back instead, and still right.
        let reversed_order = chunks(&data, &manifest, &all).into_iter().rev().collect();
        let (reversed, kept) = write_all(reversed_order, 256 * 1024);
        assert!(kept <= 256 * 1024, "kept {kept}");
        assert_eq!(reversed.whole_hash(), None, "read back instead");
        let held = origin
            .store()
            .finish_partials_hashed(vec![(reversed.partial, None)])
            .expect("finish");
        assert_eq!(held[0].as_ref().ok(), Some(&manifest.blob));
    }
}
