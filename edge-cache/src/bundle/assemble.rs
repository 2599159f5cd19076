//! The missing files of subscribed courses, assembled from a bundle's
//! chunks (issue 14): each chunk arrives hashed ([`VerifiedChunk`]), goes
//! into every missing file holding it, and whole files are finished (hashed
//! whole, moved into the store) in batches of [`FINISH_BATCH`].

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

/// The files being assembled: which missing file holds which chunk.
pub(super) struct Files<'s> {
    store: &'s Store,
    jobs: Vec<FileJob>,
    by_chunk: HashMap<Hash, Vec<usize>>,
    open: HashMap<usize, (PartialBlob<'s>, usize)>,
    done: HashSet<usize>,
    /// Whole files waiting to be finished together.
    ready: Vec<(usize, PartialBlob<'s>)>,
    /// Files a chunk was written into.
    touched: HashSet<usize>,
    /// Chunks and bytes written since the last [`Files::close_all`].
    written: (u64, u64),
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
            error: None,
        })
    }

    /// One chunk record: hashed, then written into every missing file holding it.
    pub(super) fn chunk(&mut self, record: &super::pack::Record) -> Result<(), String> {
        let Some(files) = self.by_chunk.get(&record.hash).cloned() else {
            return Ok(());
        };
        let verified = VerifiedChunk::check(record.hash, &record.bytes).ok_or_else(|| {
            format!(
                "chunk {} does not match its hash; the rest of this pack was not used",
                record.hash
            )
        })?;
        let mut wrote = false;
        for file in files {
            if self.done.contains(&file) {
                continue;
            }
            match self.write(file, &verified) {
                Ok(count) => wrote |= count > 0,
                Err(err) => {
                    let message = catalog::format::error_chain(&err);
                    self.error = Some(err);
                    return Err(message);
                }
            }
        }
        if wrote {
            self.written.0 += 1;
            self.written.1 += record.bytes.len() as u64;
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
            let partial = self
                .store
                .partial(job.manifest_hash, job.manifest.clone())?;
            let left = partial.missing().len();
            self.open.insert(file, (partial, left));
        }
        let Some((partial, left)) = self.open.get_mut(&file) else {
            return Ok(0);
        };
        let count = partial.write_verified(chunk)?;
        *left = left.saturating_sub(count);
        if *left == 0
            && let Some((partial, _)) = self.open.remove(&file)
        {
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
        let (files, partials): (Vec<usize>, Vec<PartialBlob<'s>>) = partials.into_iter().unzip();
        for (file, result) in files.into_iter().zip(self.store.finish_partials(partials)?) {
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
        for (_, (mut partial, _)) in self.open.drain() {
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
