//! Garbage collection (issue 13): removing the metadata objects, blobs,
//! partial files and catalog history that the kept catalogs no longer reach.
//!
//! The order makes a `kill -9` at any point harmless:
//!
//! 1. one index write transaction removes every row naming what is condemned
//!    (objects, blob records, chunk locations inside condemned blobs — moved to
//!    a kept blob holding the same chunk, or dropped —, file identities, source
//!    stamps, partial progress, quarantine records, old catalogs) and records
//!    the files to delete in the `doomed` table;
//! 2. the files are deleted (and the deletions made durable);
//! 3. a second transaction clears the `doomed` rows.
//!
//! A file is deleted only once no index row points at it, so a crash after 1
//! leaves files nobody serves, which [`Store::open`] deletes. A file the index
//! holds again (published anew since) is never deleted. Collection and the
//! finishing of an interrupted one hold `collect.lock` in the store; a publish
//! that moves blobs into place holds it shared, so neither deletes a file a
//! publish has just put back.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redb::ReadableTable;
use tracing::{info, warn};

use super::index::{
    self, BLOBS, CATALOGS, CHUNKS, DOOMED, IDENTITIES, OBJECTS, PARTIALS, QUARANTINE, SOURCES,
};
use super::{ChunkLocation, Store, StoreError};
use crate::hash::Hash;
use crate::object::{Catalog, Object};

/// Test hook only: `SHANLU_TEST_GC_ABORT_AFTER=index|files` aborts the process
/// (`std::process::abort`, like `kill -9`) right after that step of a
/// collection, so tests can check that a crash there is harmless.
const TEST_ABORT_AFTER: &str = "SHANLU_TEST_GC_ABORT_AFTER";

/// The kinds of file a `doomed` row names.
const DOOMED_BLOB: u8 = 0;
const DOOMED_PARTIAL: u8 = 1;
const DOOMED_QUARANTINED: u8 = 2;

/// What the kept catalogs reach: the metadata objects and the blobs to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reachable {
    pub objects: HashSet<Hash>,
    pub blobs: HashSet<Hash>,
}

/// Walks from decoded catalogs (whose object hashes are `catalogs`' first
/// element) through courses and lessons to the files' manifests and blobs.
/// `lookup` returns the object a hash names; a missing or mistyped object is
/// an error, so a collection never runs on a partial view.
pub fn reachable<E>(
    catalogs: &[(Hash, Catalog)],
    mut lookup: impl FnMut(&Hash) -> Result<Option<Object>, E>,
    missing: impl Fn(Hash) -> E,
) -> Result<Reachable, E> {
    let mut keep = Reachable::default();
    let keep_files = |keep: &mut Reachable, files: &[crate::object::FileEntry]| {
        for file in files {
            keep.objects.insert(file.manifest);
            keep.blobs.insert(file.blob);
        }
    };
    for (hash, catalog) in catalogs {
        keep.objects.insert(*hash);
        for entry in catalog.courses.values() {
            if !keep.objects.insert(entry.hash) {
                continue;
            }
            let Some(Object::Course(course)) = lookup(&entry.hash)? else {
                return Err(missing(entry.hash));
            };
            keep_files(&mut keep, &course.files);
            for lesson in &course.lessons {
                if !keep.objects.insert(lesson.hash) {
                    continue;
                }
                let Some(Object::Lesson(found)) = lookup(&lesson.hash)? else {
                    return Err(missing(lesson.hash));
                };
                keep_files(&mut keep, &found.files);
            }
        }
    }
    Ok(keep)
}

/// One catalog of the history: its sequence (`None` for the catalog in
/// force of a store from before the history) and the signed catalog's bytes.
pub type HistoryEntry = (Option<u64>, Vec<u8>);

/// What a collection removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectReport {
    pub objects: u64,
    pub object_bytes: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub partials: u64,
    /// Chunk index rows dropped (chunks no kept blob holds).
    pub chunks_dropped: u64,
    /// Chunk index rows moved to a kept blob holding the same chunk.
    pub chunks_moved: u64,
    pub catalogs: u64,
    pub kept_blobs: u64,
    pub kept_objects: u64,
    pub elapsed: Duration,
}

/// What step 1 condemns.
#[derive(Default)]
struct Condemned {
    blobs: HashMap<Hash, u64>,
    objects: Vec<Hash>,
    partials: Vec<Hash>,
    quarantined: Vec<Hash>,
}

impl Store {
    /// The origin's catalog history, oldest first: every signed catalog it
    /// published (encoded), by sequence. A store from before the history
    /// table: the catalog in force, under sequence `None`.
    pub fn catalog_history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CATALOGS).map_err(StoreError::index)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            out.push((Some(key.value()), value.value().to_vec()));
        }
        drop(table);
        drop(txn);
        if out.is_empty()
            && let Some(bytes) = self.signed_catalog_bytes()?
        {
            out.push((None, bytes));
        }
        Ok(out)
    }

    /// Removes everything `keep` does not reach, and the history catalogs
    /// with a sequence below `keep_from_sequence`. `progress` gets the bytes
    /// of each file deleted. The caller keeps new blobs from arriving that no
    /// catalog names yet (an origin holds its publish lock).
    pub fn collect(
        &self,
        keep: &Reachable,
        keep_from_sequence: u64,
        dry_run: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<CollectReport, StoreError> {
        let started = Instant::now();
        let lock = self.collect_lock()?;
        lock.lock()
            .map_err(|cause| StoreError::io("locking", &self.collect_lock_path(), cause))?;
        let mut keep_objects = keep.objects.clone();
        let mut report = CollectReport::default();
        let condemned = self.condemn(keep, &mut keep_objects, &mut report)?;
        report.kept_objects = keep_objects.len() as u64;
        report.kept_blobs = keep.blobs.len() as u64;
        {
            let txn = self.read()?;
            let table = txn.open_table(CATALOGS).map_err(StoreError::index)?;
            report.catalogs = table
                .range(..keep_from_sequence)
                .map_err(StoreError::index)?
                .count() as u64;
        }
        let (moved, orphans) = self.new_chunk_homes(keep, &condemned.blobs)?;
        if dry_run {
            // What step 1 would do to the chunk rows, without doing it.
            report.chunks_moved = moved.len() as u64;
            report.chunks_dropped = orphans - moved.len() as u64;
            report.elapsed = started.elapsed();
            return Ok(report);
        }
        self.write(|txn| self.unindex(txn, &condemned, &moved, keep_from_sequence, &mut report))?;
        for blob in condemned.blobs.keys() {
            self.forget(blob);
        }
        test_abort_after("index");
        self.delete_doomed(progress)?;
        test_abort_after("files");
        self.write(|txn| {
            let mut doomed = txn.open_table(DOOMED).map_err(StoreError::index)?;
            doomed.retain(|_, _| false).map_err(StoreError::index)
        })?;
        report.elapsed = started.elapsed();
        info!(
            blobs = report.blobs,
            blob_bytes = report.blob_bytes,
            objects = report.objects,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "collection finished"
        );
        Ok(report)
    }

    fn collect_lock_path(&self) -> std::path::PathBuf {
        self.root.join("collect.lock")
    }

    /// `collect.lock`, held shared: what adds blobs (a batch commit, a
    /// partial blob finished, a file adopted) holds it until the blob is
    /// recorded, so a collection never deletes a blob just put in place.
    pub(crate) fn collect_lock_shared(&self) -> Result<std::fs::File, StoreError> {
        let file = self.collect_lock()?;
        file.lock_shared()
            .map_err(|cause| StoreError::io("locking", &self.collect_lock_path(), cause))?;
        Ok(file)
    }

    /// The file whose lock collections hold exclusively and publishes shared.
    pub(crate) fn collect_lock(&self) -> Result<std::fs::File, StoreError> {
        let path = self.collect_lock_path();
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|cause| StoreError::io("opening", &path, cause))
    }

    /// Streams over the tables and picks what `keep` does not reach. The
    /// manifests kept blobs are recorded with join `keep_objects`.
    fn condemn(
        &self,
        keep: &Reachable,
        keep_objects: &mut HashSet<Hash>,
        report: &mut CollectReport,
    ) -> Result<Condemned, StoreError> {
        let mut condemned = Condemned::default();
        let txn = self.read()?;
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        for entry in blobs.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            let info = index::decode_blob(value.value());
            if keep.blobs.contains(&blob) {
                keep_objects.insert(info.manifest);
            } else {
                condemned.blobs.insert(blob, info.size);
                report.blobs += 1;
                report.blob_bytes += info.size;
            }
        }
        // A kept blob's partial progress and quarantine record name a
        // manifest: kept too.
        let manifest_of = |value: &[u8]| {
            value
                .get(..32)
                .and_then(|head| <[u8; 32]>::try_from(head).ok())
                .map(Hash::from_bytes)
        };
        let partials = txn.open_table(PARTIALS).map_err(StoreError::index)?;
        for entry in partials.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            if keep.blobs.contains(&blob) {
                keep_objects.extend(manifest_of(value.value()));
            } else {
                condemned.partials.push(blob);
                report.partials += 1;
            }
        }
        let quarantine = txn.open_table(QUARANTINE).map_err(StoreError::index)?;
        for entry in quarantine.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let blob = Hash::from_bytes(*key.value());
            if keep.blobs.contains(&blob) {
                let record = index::decode_quarantine(value.value());
                keep_objects.insert(record.info.manifest);
            } else {
                condemned.quarantined.push(blob);
            }
        }
        let objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        for entry in objects.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            let hash = Hash::from_bytes(*key.value());
            if !keep_objects.contains(&hash) {
                condemned.objects.push(hash);
                report.objects += 1;
                report.object_bytes += value.value().len() as u64;
            }
        }
        Ok(condemned)
    }

    /// For chunks whose index row points into a condemned blob, a place in a
    /// kept blob holding the same chunk (read from the kept blobs' manifests);
    /// and how many rows point into a condemned blob.
    fn new_chunk_homes(
        &self,
        keep: &Reachable,
        condemned: &HashMap<Hash, u64>,
    ) -> Result<(HashMap<Hash, ChunkLocation>, u64), StoreError> {
        let txn = self.read()?;
        let chunks = txn.open_table(CHUNKS).map_err(StoreError::index)?;
        let mut orphans = HashSet::new();
        for entry in chunks.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            if condemned.contains_key(&index::decode_chunk(value.value()).blob) {
                orphans.insert(Hash::from_bytes(*key.value()));
            }
        }
        let count = orphans.len() as u64;
        if orphans.is_empty() {
            return Ok((HashMap::new(), 0));
        }
        let blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        let found =
            index::locate_chunks(&blobs, &objects, keep.blobs.iter().copied(), &mut orphans)?;
        Ok((found, count))
    }

    /// Step 1: every index row naming what is condemned goes, and the files
    /// to delete are recorded, in one transaction.
    fn unindex(
        &self,
        txn: &redb::WriteTransaction,
        condemned: &Condemned,
        moved: &HashMap<Hash, ChunkLocation>,
        keep_from_sequence: u64,
        report: &mut CollectReport,
    ) -> Result<(), StoreError> {
        let mut doomed = txn.open_table(DOOMED).map_err(StoreError::index)?;
        let mut blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
        let mut identities = txn.open_table(IDENTITIES).map_err(StoreError::index)?;
        let gone: Vec<Hash> = condemned.blobs.keys().copied().collect();
        super::opened::forget(txn, &gone)?;
        for blob in condemned.blobs.keys() {
            blobs.remove(blob.as_bytes()).map_err(StoreError::index)?;
            identities
                .remove(blob.as_bytes())
                .map_err(StoreError::index)?;
            doomed
                .insert(blob.as_bytes(), DOOMED_BLOB)
                .map_err(StoreError::index)?;
        }
        let mut chunks = txn.open_table(CHUNKS).map_err(StoreError::index)?;
        let (mut dropped, mut rehomed) = (0, 0);
        let mut updates = Vec::new();
        for entry in chunks.iter().map_err(StoreError::index)? {
            let (key, value) = entry.map_err(StoreError::index)?;
            if condemned
                .blobs
                .contains_key(&index::decode_chunk(value.value()).blob)
            {
                updates.push(Hash::from_bytes(*key.value()));
            }
        }
        for chunk in updates {
            match moved.get(&chunk) {
                Some(location) => {
                    rehomed += 1;
                    chunks
                        .insert(chunk.as_bytes(), &index::encode_chunk(location))
                        .map(|_| ())
                }
                None => {
                    dropped += 1;
                    chunks.remove(chunk.as_bytes()).map(|_| ())
                }
            }
            .map_err(StoreError::index)?;
        }
        report.chunks_dropped = dropped;
        report.chunks_moved = rehomed;
        let mut objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
        for hash in &condemned.objects {
            objects.remove(hash.as_bytes()).map_err(StoreError::index)?;
        }
        for (table, rows, kind) in [
            (PARTIALS, &condemned.partials, DOOMED_PARTIAL),
            (QUARANTINE, &condemned.quarantined, DOOMED_QUARANTINED),
        ] {
            let mut table = txn.open_table(table).map_err(StoreError::index)?;
            for blob in rows {
                table.remove(blob.as_bytes()).map_err(StoreError::index)?;
                // A condemned blob's own row already names its file.
                if !condemned.blobs.contains_key(blob) {
                    doomed
                        .insert(blob.as_bytes(), kind)
                        .map_err(StoreError::index)?;
                }
            }
        }
        let mut sources = txn.open_table(SOURCES).map_err(StoreError::index)?;
        sources
            .retain(|_, value| !condemned.blobs.contains_key(&index::decode_source(value).1))
            .map_err(StoreError::index)?;
        let mut catalogs = txn.open_table(CATALOGS).map_err(StoreError::index)?;
        catalogs
            .retain_in(..keep_from_sequence, |_, _| false)
            .map_err(StoreError::index)?;
        Ok(())
    }

    /// Step 2: deletes the files the `doomed` table names, unless the index
    /// holds them again, and makes the deletions durable.
    fn delete_doomed(&self, progress: &mut dyn FnMut(u64)) -> Result<u64, StoreError> {
        let doomed: Vec<(Hash, u8)> = {
            let txn = self.read()?;
            let table = txn.open_table(DOOMED).map_err(StoreError::index)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(StoreError::index)? {
                let (key, value) = entry.map_err(StoreError::index)?;
                out.push((Hash::from_bytes(*key.value()), value.value()));
            }
            out
        };
        let mut deleted = 0;
        // Every file under a doomed name that the index does not hold (a
        // blob might also have a partial or a quarantined copy); the row's
        // kind says which one the collection condemned.
        for (blob, _kind) in &doomed {
            let files = [
                (!self.has_blob(blob)?).then(|| self.blob_path(blob)),
                (!self.partial_held(blob)?).then(|| self.partial_path(blob)),
                (!self.is_quarantined(blob)?)
                    .then(|| self.root.join("quarantine").join(blob.to_hex())),
            ];
            for path in files.into_iter().flatten() {
                let size = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
                match std::fs::remove_file(&path) {
                    Ok(()) => deleted += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(cause) => return Err(StoreError::io("deleting", &path, cause)),
                }
                progress(size);
            }
        }
        if !doomed.is_empty() {
            self.sync_files()?;
        }
        Ok(deleted)
    }

    pub(crate) fn partial_held(&self, blob: &Hash) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(PARTIALS).map_err(StoreError::index)?;
        Ok(table
            .get(blob.as_bytes())
            .map_err(StoreError::index)?
            .is_some())
    }

    /// Finishes a collection a crash interrupted: deletes the files it had
    /// taken out of the index. Skipped while another process collects.
    pub(crate) fn finish_collection(&self) -> Result<(), StoreError> {
        let pending = {
            let txn = self.read()?;
            let table = txn.open_table(DOOMED).map_err(StoreError::index)?;
            redb::ReadableTableMetadata::len(&table).map_err(StoreError::index)?
        };
        if pending == 0 {
            return Ok(());
        }
        let lock = self.collect_lock()?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            Err(std::fs::TryLockError::Error(cause)) => {
                return Err(StoreError::io("locking", &self.collect_lock_path(), cause));
            }
        }
        let deleted = self.delete_doomed(&mut |_| {})?;
        self.write(|txn| {
            let mut doomed = txn.open_table(DOOMED).map_err(StoreError::index)?;
            doomed.retain(|_, _| false).map_err(StoreError::index)
        })?;
        warn!(
            files = deleted,
            "finished a garbage collection interrupted by a crash"
        );
        Ok(())
    }
}

/// The test hook: see [`TEST_ABORT_AFTER`].
fn test_abort_after(step: &str) {
    if std::env::var(TEST_ABORT_AFTER).is_ok_and(|value| value == step) {
        eprintln!("{TEST_ABORT_AFTER}={step}: aborting as a test asked");
        std::process::abort();
    }
}
