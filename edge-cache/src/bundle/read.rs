//! Reading a bundle's packs on a thread of their own (issue 14), while the
//! importing thread writes: reading and hashing overlap the writes, the
//! syncs and the store's commits.
//!
//! The reading thread parses each pack and checks every record: the catalog
//! record must be the index's, every object is hashed and decoded, every
//! chunk is hashed ([`VerifiedChunkBuf`], once) and, when a missing file
//! wants it, feeds the files' in-order hashers ([`InOrder`]) and goes to the
//! writer, which only writes it. At most [`IN_FLIGHT_BYTES`] of records wait.
//!
//! A pack is not hashed whole: every byte of it is the checked header, a
//! record head (its kind known, its hash the one its bytes are checked
//! against, its length walked to exactly the pack's end) or a record's
//! checked bytes. A pack all of whose records were checked and used, and
//! whose size is the index's, is whole; only then is it remembered (by the
//! index's BLAKE3, as its name for resuming).

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Condvar, Mutex};

use catalog::store::VerifiedChunkBuf;
use catalog::{Hash, Object};
use indicatif::ProgressBar;

use super::PackEntry;
use super::import::ImportError;
use super::order::InOrder;
use super::pack::{Kind, PackReader, RECORD_HEAD};

/// Record bytes read and not yet used by the writer, at most (a single
/// record larger than this still passes, alone).
const IN_FLIGHT_BYTES: u64 = 32 * 1024 * 1024;
/// Batches waiting, at most.
const IN_FLIGHT_BATCHES: usize = 64;
/// Records are passed on in batches of about this many bytes (one wakeup
/// of the writer each, not one a record).
const BATCH_BYTES: u64 = 1024 * 1024;
/// Records in a batch, at most.
const BATCH_RECORDS: usize = 256;

/// Chunk buffers kept for reuse, at most, each of [`SPARE_CAPACITY`]
/// (allocating and faulting in fresh ones cost more than the copy).
const SPARES: usize = 64;
/// Every chunk and the next record's head fit (chunks are at most 256 KiB;
/// a bigger record grows it).
const SPARE_CAPACITY: usize = 256 * 1024 + RECORD_HEAD as usize;

/// Items of packs (by their place in the list) and their record bytes.
type Batch = (u64, Vec<(usize, Item)>);

/// What the reading thread passes on, per pack, in pack order.
enum Item {
    /// A metadata object, hashed and decoded.
    Object(Hash, Vec<u8>),
    /// A wanted chunk, hashed, and the files its bytes completed in order,
    /// with their BLAKE3.
    Chunk(VerifiedChunkBuf, Vec<(usize, Hash)>),
    /// The pack is over: `Err` says why (the rest of it was not read).
    End(Result<(), String>),
}

/// What the reading thread is reading for.
pub(super) enum Phase {
    /// Metadata: objects are passed on; chunks are not looked at, and a pack
    /// holding chunks is left once its counted objects were read.
    Metadata,
    /// Chunks for the missing files these hashers are for.
    Chunks(InOrder),
}

/// The importing thread's side: what it does with the records of a pack.
pub(super) trait Writer {
    /// A checked object. `Err`: why the rest of the pack is not used.
    fn object(&mut self, hash: Hash, bytes: Vec<u8>) -> Result<(), String>;
    /// A wanted chunk, hashed, to write.
    fn chunk(&mut self, chunk: &VerifiedChunkBuf, whole: Vec<(usize, Hash)>) -> Result<(), String>;
    /// A chunk of a pack the writer already gave up: not used.
    fn unused(&mut self, hash: &Hash);
    /// The pack is over: `Ok` when every record was checked and used.
    fn end(&mut self, pack: &PackEntry, result: Result<(), String>) -> Result<(), ImportError>;
}

/// Reads `packs` in order on a second thread; `writer` gets their records.
/// Stops at the writer's first `Err` from [`Writer::end`].
pub(super) fn read_packs(
    folder: &Path,
    packs: &[&PackEntry],
    catalog_bytes: &[u8],
    phase: Phase,
    progress: &ProgressBar,
    writer: &mut dyn Writer,
) -> Result<(), ImportError> {
    let budget = Budget::default();
    let (tx, rx) = sync_channel(IN_FLIGHT_BATCHES);
    std::thread::scope(|scope| {
        let reading = Reading {
            folder,
            catalog_bytes,
            progress,
            budget: &budget,
            tx,
            batch: Vec::new(),
            batch_bytes: 0,
        };
        let reader = std::thread::Builder::new()
            .name("bundle-read".into())
            .spawn_scoped(scope, move || reading.all(packs, phase))
            .map_err(|source| ImportError::Io {
                path: folder.to_owned(),
                source,
            })?;
        let result = write_all(folder, packs, &rx, &budget, writer);
        // Unblocks and stops the reader if the writer stopped early.
        budget.close();
        drop(rx);
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
        result
    })
}

fn write_all(
    folder: &Path,
    packs: &[&PackEntry],
    rx: &Receiver<Batch>,
    budget: &Budget,
    writer: &mut dyn Writer,
) -> Result<(), ImportError> {
    let mut failed: Option<String> = None;
    // Bounded: the reader sends a bounded number of items per pack and stops.
    for (bytes, batch) in rx.iter() {
        for (pack, item) in batch {
            match item {
                Item::Object(hash, bytes) => {
                    if failed.is_none() {
                        failed = writer.object(hash, bytes).err();
                    }
                }
                Item::Chunk(chunk, whole) => {
                    if failed.is_some() {
                        writer.unused(&chunk.chunk().hash());
                    } else if let Err(reason) = writer.chunk(&chunk, whole) {
                        let path = folder.join(&packs[pack].name);
                        failed = Some(damaged(&path.display().to_string(), &reason));
                    }
                    budget.give_back(chunk.into_bytes());
                }
                Item::End(result) => {
                    let result = match failed.take() {
                        Some(reason) => Err(reason),
                        None => result,
                    };
                    writer.end(packs[pack], result)?;
                }
            }
        }
        budget.release(bytes);
    }
    Ok(())
}

/// Why a pack was not used, for the report and the log.
pub(super) fn damaged(path: &str, reason: &str) -> String {
    format!(
        "{path} is damaged: {reason}; copy the bundle onto the stick again (or make it again) and rerun the import, which keeps what was imported"
    )
}

/// The reading thread.
struct Reading<'a> {
    folder: &'a Path,
    catalog_bytes: &'a [u8],
    progress: &'a ProgressBar,
    budget: &'a Budget,
    tx: SyncSender<Batch>,
    batch: Vec<(usize, Item)>,
    batch_bytes: u64,
}

/// The writer is gone: stop reading.
struct Closed;

impl Reading<'_> {
    fn all(mut self, packs: &[&PackEntry], mut phase: Phase) {
        for (index, pack) in packs.iter().enumerate() {
            let Ok(result) = self.pack(index, pack, &mut phase) else {
                return;
            };
            self.batch.push((index, Item::End(result)));
            if self.flush().is_err() {
                return;
            }
        }
    }

    fn push(&mut self, index: usize, item: Item, bytes: usize) -> Result<(), Closed> {
        self.batch.push((index, item));
        self.batch_bytes += bytes as u64;
        if self.batch_bytes >= BATCH_BYTES || self.batch.len() >= BATCH_RECORDS {
            self.flush()?;
        }
        Ok(())
    }

    /// Passes the batch on, once the writer has room for its bytes.
    fn flush(&mut self) -> Result<(), Closed> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.batch_bytes);
        if !self.budget.take(bytes) {
            return Err(Closed);
        }
        let batch = std::mem::take(&mut self.batch);
        self.tx.send((bytes, batch)).map_err(|_| Closed)
    }

    /// One pack: `Ok(Err(why))` when it is damaged or unreadable.
    fn pack(
        &mut self,
        index: usize,
        pack: &PackEntry,
        phase: &mut Phase,
    ) -> Result<Result<(), String>, Closed> {
        let path = self.folder.join(&pack.name);
        let shown = path.display().to_string();
        let mut records = match PackReader::open(&path) {
            Ok(records) => records,
            Err(err) => {
                return Ok(Err(format!(
                    "{}; copy the bundle onto the stick again and rerun the import",
                    catalog::format::error_chain(&err)
                )));
            }
        };
        let metadata = pack.catalogs.saturating_add(pack.objects);
        let mut metadata_seen = 0u64;
        // Bounded: each record takes at least a record head of the pack's bytes.
        loop {
            if matches!(phase, Phase::Metadata) && pack.chunks > 0 && metadata_seen >= metadata {
                // The rest is chunks, read in the chunk phase.
                return Ok(Ok(()));
            }
            let record = match phase {
                Phase::Chunks(_) => records.next_record_in(self.budget.spare()),
                Phase::Metadata => records.next_record(),
            };
            let record = match record {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(err) => {
                    let reason = catalog::format::error_chain(&err);
                    return Ok(Err(damaged(&shown, &reason)));
                }
            };
            self.progress.inc(RECORD_HEAD + record.bytes.len() as u64);
            match record.kind {
                Kind::Catalog if record.bytes == self.catalog_bytes => metadata_seen += 1,
                Kind::Catalog => {
                    return Ok(Err(damaged(
                        &shown,
                        "it holds another catalog than its index",
                    )));
                }
                Kind::Object => {
                    metadata_seen += 1;
                    if let Err(err) = Object::decode_verified(&record.hash, &record.bytes) {
                        let reason = format!("object {} was refused: {err}", record.hash);
                        return Ok(Err(damaged(&shown, &reason)));
                    }
                    if matches!(phase, Phase::Metadata) {
                        let len = record.bytes.len();
                        self.push(index, Item::Object(record.hash, record.bytes), len)?;
                    }
                }
                Kind::Chunk => {
                    let Phase::Chunks(order) = phase else {
                        continue;
                    };
                    // Every chunk is checked, wanted or not, so a pack is
                    // remembered only when all of it is sound.
                    let hash = record.hash;
                    let held = record.bytes.capacity();
                    let Ok(chunk) = VerifiedChunkBuf::check(hash, record.bytes) else {
                        let reason = format!("chunk {hash} does not match its hash");
                        return Ok(Err(damaged(&shown, &reason)));
                    };
                    if order.wants(&hash) {
                        let bytes = chunk.chunk().bytes();
                        let whole = order.feed(&hash, bytes);
                        self.push(index, Item::Chunk(chunk, whole), held)?;
                    } else {
                        self.budget.give_back(chunk.into_bytes());
                    }
                }
            }
        }
        if records.len() != pack.size || records.position() != pack.size {
            let reason = format!("{} bytes, the index says {}", records.len(), pack.size);
            return Ok(Err(damaged(&shown, &reason)));
        }
        Ok(Ok(()))
    }
}

/// Record bytes in flight between the threads, bounded, and the chunk
/// buffers the writer is done with.
#[derive(Default)]
struct Budget {
    /// Bytes in flight, and whether the writer is gone.
    state: Mutex<(u64, bool)>,
    freed: Condvar,
    spares: Mutex<Vec<Vec<u8>>>,
}

impl Budget {
    /// A buffer for the next chunk.
    fn spare(&self) -> Vec<u8> {
        let spare = self.spares.lock().ok().and_then(|mut spares| spares.pop());
        spare.unwrap_or_else(|| Vec::with_capacity(SPARE_CAPACITY))
    }

    /// A chunk buffer done with: kept if there is room (and it is one of ours).
    fn give_back(&self, bytes: Vec<u8>) {
        if bytes.capacity() == SPARE_CAPACITY
            && let Ok(mut spares) = self.spares.lock()
            && spares.len() < SPARES
        {
            spares.push(bytes);
        }
    }

    /// Waits for room for `bytes`; `false` once the writer is gone.
    fn take(&self, bytes: u64) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        // Bounded: each wait ends when the writer frees bytes or closes.
        while !state.1 && state.0 > 0 && state.0 + bytes > IN_FLIGHT_BYTES {
            state = match self.freed.wait(state) {
                Ok(state) => state,
                Err(_) => return false,
            };
        }
        state.0 += bytes;
        !state.1
    }

    fn release(&self, bytes: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.0 = state.0.saturating_sub(bytes);
        }
        self.freed.notify_one();
    }

    fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = true;
        }
        self.freed.notify_one();
    }
}
