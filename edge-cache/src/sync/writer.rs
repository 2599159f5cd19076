//! The download engine's disk side: one blocking thread that owns every
//! partial blob ([`catalog::store::PartialBlob`]) being assembled, decodes and
//! checks each chunk's BLAKE3 before writing it, records progress in the
//! store's index (so it survives `kill -9`), and finishes whole files.
//!
//! Progress is made durable on every [`WriterCommand::Tick`] (the engine sends
//! one every [`super::engine::FLUSH_EVERY`]) and every 8 MiB of a file, so a
//! killed edge loses at most the chunks of the last half second.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use catalog::format::error_chain;
use catalog::store::{PartialBlob, StoreError, VerifiedChunk};
use catalog::{FileManifest, Hash, Store};
use server::codec::{self, Encoding};
use server::protocol::ChunkWant;
use tokio::sync::mpsc;
use tracing::warn;

use super::plan::{ChunkPlan, chunk_plan};

/// Finished files committed together (one filesystem sync, one index commit).
const FINISH_BATCH: usize = 64;
/// Most events told to the engine at once.
const EVENTS_PER_SEND: usize = 64;

pub(super) enum WriterCommand {
    /// Open (or resume) the partial blob; copy chunks held elsewhere.
    Open {
        manifest_hash: Hash,
        manifest: Arc<FileManifest>,
        previous: Option<FileManifest>,
    },
    /// Chunks of one request as they travelled, each written to the files
    /// that lack it. One command and one [`WriterEvent::Written`] per batch:
    /// the engine and this thread wake once per batch, not per chunk.
    Write {
        request: u64,
        chunks: Vec<ChunkWrite>,
    },
    /// Copy a chunk already written to another file being assembled (or
    /// held) into `to`; answered as a [`WriterEvent::Written`] of request
    /// [`super::engine::COPY`].
    Copy { hash: Hash, to: Vec<Hash> },
    /// Every chunk is here: check the whole file and move it into the store.
    Finish { blob: Hash },
    /// Stop working on the blob for now; what it has is kept.
    Close { blob: Hash },
    /// Make written chunks durable.
    Tick,
}

/// A chunk as it travelled; written to each of `blobs` that lacks it.
pub(super) struct ChunkWrite {
    pub(super) want: ChunkWant,
    pub(super) encoding: Encoding,
    pub(super) bytes: Vec<u8>,
    pub(super) len: usize,
    pub(super) blobs: Vec<Hash>,
}

/// What became of one chunk of a [`WriterCommand::Write`] or a copy.
pub(super) struct WrittenChunk {
    pub(super) hash: Hash,
    /// `Err`: the chunk was refused (did not decode, or its BLAKE3 differs).
    pub(super) verdict: Result<(), String>,
    /// Blobs the chunk was written to.
    pub(super) written: Vec<Hash>,
    /// Blobs that could not take it (a store error), and why.
    pub(super) failed: Vec<(Hash, String)>,
    /// A delta: the chunk's length less the bytes that travelled.
    pub(super) delta_saved: u64,
}

/// What the writer tells the engine.
pub(super) enum WriterEvent {
    Opened {
        blob: Hash,
        result: Result<Opened, String>,
    },
    Written {
        request: u64,
        chunks: Vec<WrittenChunk>,
    },
    Finished {
        blob: Hash,
        result: Result<(), String>,
    },
}

pub(super) struct Opened {
    /// The blob is already held whole; `file` is it.
    pub(super) held: bool,
    pub(super) present: Vec<bool>,
    pub(super) reused: u64,
    pub(super) plan: ChunkPlan,
    pub(super) file: Arc<std::fs::File>,
}

/// Runs until the engine drops its sender; then flushes everything.
pub(super) fn run(
    store: Arc<Store>,
    mut inbox: mpsc::Receiver<WriterCommand>,
    events: mpsc::UnboundedSender<Vec<WriterEvent>>,
) {
    let store = &*store;
    // What happened since the engine was last told: sent when no command is
    // waiting (or every [`EVENTS_PER_SEND`]), so the engine wakes per batch.
    let mut out: Vec<WriterEvent> = Vec::new();
    let mut partials: HashMap<Hash, PartialBlob<'_>> = HashMap::new();
    let mut dirty: HashSet<Hash> = HashSet::new();
    let mut finishing: Vec<PartialBlob<'_>> = Vec::new();
    loop {
        if out.len() >= EVENTS_PER_SEND {
            let _ = events.send(std::mem::take(&mut out));
        }
        let command = match inbox.try_recv() {
            Ok(command) => command,
            Err(mpsc::error::TryRecvError::Empty) => {
                finish(store, &mut finishing, &mut out);
                if !out.is_empty() {
                    let _ = events.send(std::mem::take(&mut out));
                }
                match inbox.blocking_recv() {
                    Some(command) => command,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        match command {
            WriterCommand::Open {
                manifest_hash,
                manifest,
                previous,
            } => {
                let blob = manifest.blob;
                let result = open(store, manifest_hash, &manifest, previous.as_ref())
                    .map(|(opened, partial)| {
                        if let Some(partial) = partial {
                            dirty.insert(blob);
                            partials.insert(blob, partial);
                        }
                        opened
                    })
                    .map_err(|err| error_chain(&err));
                out.push(WriterEvent::Opened { blob, result });
            }
            WriterCommand::Write { request, chunks } => {
                let chunks = chunks
                    .into_iter()
                    .map(|chunk| write_fetched(store, &mut partials, &mut dirty, chunk))
                    .collect();
                out.push(WriterEvent::Written { request, chunks });
            }
            WriterCommand::Copy { hash, to } => {
                // `written_chunk` hands back bytes it found under this hash;
                // they are checked (once) before any file takes them.
                let copied = written_chunk(store, partials.values().chain(&finishing), &hash);
                let (verdict, written, failed) = match copied
                    .as_deref()
                    .map(|data| VerifiedChunk::check(hash, data))
                {
                    Ok(Some(chunk)) => {
                        let (written, failed) = write_to(&mut partials, &mut dirty, to, &chunk);
                        (Ok(()), written, failed)
                    }
                    Ok(None) => (
                        Err(format!("chunk {hash} changed on disk before it was copied")),
                        Vec::new(),
                        Vec::new(),
                    ),
                    Err(why) => (Err(why.clone()), Vec::new(), Vec::new()),
                };
                let chunk = WrittenChunk {
                    hash,
                    verdict,
                    written,
                    failed,
                    delta_saved: 0,
                };
                out.push(WriterEvent::Written {
                    request: super::engine::COPY,
                    chunks: vec![chunk],
                });
            }
            WriterCommand::Finish { blob } => {
                if let Some(partial) = partials.remove(&blob) {
                    dirty.remove(&blob);
                    finishing.push(partial);
                    if finishing.len() >= FINISH_BATCH {
                        finish(store, &mut finishing, &mut out);
                    }
                } else {
                    out.push(WriterEvent::Finished {
                        blob,
                        result: Err(format!("no partial file open for {blob}")),
                    });
                }
            }
            WriterCommand::Close { blob } => {
                if let Some(mut partial) = partials.remove(&blob)
                    && let Err(err) = partial.flush()
                {
                    warn!(%blob, cause = %err, "keeping a partial file's progress failed");
                }
                dirty.remove(&blob);
            }
            WriterCommand::Tick => {
                for blob in dirty.drain() {
                    if let Some(partial) = partials.get_mut(&blob)
                        && let Err(err) = partial.flush()
                    {
                        warn!(%blob, cause = %err, "recording a partial file's progress failed");
                    }
                }
            }
        }
    }
    finish(store, &mut finishing, &mut out);
    let _ = events.send(out);
    for (blob, mut partial) in partials {
        if let Err(err) = partial.flush() {
            warn!(%blob, cause = %err, "recording a partial file's progress failed");
        }
    }
}

/// Decodes and checks one fetched chunk, then writes it to the files that
/// want it; a chunk that does not decode or whose BLAKE3 differs is refused.
fn write_fetched(
    store: &Store,
    partials: &mut HashMap<Hash, PartialBlob<'_>>,
    dirty: &mut HashSet<Hash>,
    chunk: ChunkWrite,
) -> WrittenChunk {
    let ChunkWrite {
        want,
        encoding,
        bytes,
        len,
        blobs,
    } = chunk;
    let hash = want.hash;
    let delta_saved = match encoding {
        Encoding::ZstdDelta => (len as u64).saturating_sub(bytes.len() as u64),
        _ => 0,
    };
    let data = decode_chunk(store, &want, encoding, bytes, len);
    let verified = data.as_ref().map_err(Clone::clone).and_then(|data| {
        VerifiedChunk::check(hash, data)
            .filter(|_| data.len() == len)
            .ok_or_else(|| format!("its BLAKE3 or length differs from chunk {hash}"))
    });
    match verified {
        Ok(chunk) => {
            let (written, failed) = write_to(partials, dirty, blobs, &chunk);
            WrittenChunk {
                hash,
                verdict: Ok(()),
                written,
                failed,
                delta_saved,
            }
        }
        Err(why) => WrittenChunk {
            hash,
            verdict: Err(why),
            written: Vec::new(),
            failed: Vec::new(),
            delta_saved: 0,
        },
    }
}

/// Writes verified chunk `hash` into each of `blobs` still open; says which
/// took it and which failed (with why).
fn write_to(
    partials: &mut HashMap<Hash, PartialBlob<'_>>,
    dirty: &mut HashSet<Hash>,
    blobs: Vec<Hash>,
    chunk: &VerifiedChunk<'_>,
) -> (Vec<Hash>, Vec<(Hash, String)>) {
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    for blob in blobs {
        let Some(partial) = partials.get_mut(&blob) else {
            continue;
        };
        match partial.write_verified(chunk) {
            Ok(_) => {
                dirty.insert(blob);
                written.push(blob);
            }
            Err(err) => failed.push((blob, error_chain(&err))),
        }
    }
    (written, failed)
}

/// The bytes of chunk `hash` as written to a file being assembled, or held;
/// checked against the hash.
fn written_chunk<'p, 's: 'p>(
    store: &Store,
    partials: impl Iterator<Item = &'p PartialBlob<'s>>,
    hash: &Hash,
) -> Result<Vec<u8>, String> {
    for partial in partials {
        let manifest = partial.manifest();
        let Some(index) = manifest.chunks.iter().position(|c| c.hash == *hash) else {
            continue;
        };
        if !partial.present().get(index).copied().unwrap_or(false) {
            continue;
        }
        let offset: u64 = manifest.chunks[..index]
            .iter()
            .map(|c| u64::from(c.len))
            .sum();
        let mut bytes = vec![0u8; manifest.chunks[index].len as usize];
        if partial.file().read_exact_at(&mut bytes, offset).is_ok() && Hash::of(&bytes) == *hash {
            return Ok(bytes);
        }
    }
    match store.chunk_bytes(hash) {
        Ok(Some(bytes)) if Hash::of(&bytes) == *hash => Ok(bytes),
        _ => Err(format!("chunk {hash} is no longer here to copy")),
    }
}

/// Opens or resumes a partial blob; `None` when the blob is held already.
fn open<'s>(
    store: &'s Store,
    manifest_hash: Hash,
    manifest: &FileManifest,
    previous: Option<&FileManifest>,
) -> Result<(Opened, Option<PartialBlob<'s>>), StoreError> {
    if store.check_held(&manifest.blob)? {
        let path = store.blob_path(&manifest.blob);
        let file = std::fs::File::open(&path)
            .map_err(|source| StoreError::io("opening", &path, source))?;
        return Ok((
            Opened {
                held: true,
                present: vec![true; manifest.chunks.len()],
                reused: 0,
                plan: ChunkPlan::default(),
                file: Arc::new(file),
            },
            None,
        ));
    }
    let mut partial = store.partial(manifest_hash, manifest.clone())?;
    let reused = partial.reuse_local()?;
    let present = partial.present();
    // Chunks held elsewhere were copied just now: the rest is fetched.
    let plan = chunk_plan(manifest, &present, |_| false, previous);
    // Readers get a handle of their own (not a clone of the writer's, which
    // carries its lock): a file put aside is free for the next writer even
    // while a reader still holds this one.
    let path = store.root().join("partial").join(manifest.blob.to_string());
    let file =
        std::fs::File::open(&path).map_err(|source| StoreError::io("opening", &path, source))?;
    Ok((
        Opened {
            held: false,
            present,
            reused,
            plan,
            file: Arc::new(file),
        },
        Some(partial),
    ))
}

fn finish<'s>(store: &'s Store, finishing: &mut Vec<PartialBlob<'s>>, out: &mut Vec<WriterEvent>) {
    if finishing.is_empty() {
        return;
    }
    let blobs: Vec<Hash> = finishing.iter().map(|p| p.manifest().blob).collect();
    match store.finish_partials(std::mem::take(finishing)) {
        Ok(results) => {
            for (blob, result) in blobs.into_iter().zip(results) {
                let result = result.map(|_| ()).map_err(|err| error_chain(&err));
                out.push(WriterEvent::Finished { blob, result });
            }
        }
        Err(err) => {
            for blob in blobs {
                let result = Err(format!("storing the file failed: {}", error_chain(&err)));
                out.push(WriterEvent::Finished { blob, result });
            }
        }
    }
}

/// The chunk's bytes from what travelled; a delta is expanded with the base
/// chunks this edge holds.
fn decode_chunk(
    store: &Store,
    want: &ChunkWant,
    encoding: Encoding,
    bytes: Vec<u8>,
    expected_len: usize,
) -> Result<Vec<u8>, String> {
    let dictionary = if encoding == Encoding::ZstdDelta {
        let mut dictionary = Vec::new();
        for base in &want.bases {
            match store.chunk_bytes(base) {
                Ok(Some(base_bytes)) => dictionary.extend_from_slice(&base_bytes),
                _ => return Err(format!("base chunk {base} of a delta is not held here")),
            }
        }
        Some(dictionary)
    } else {
        None
    };
    codec::decode(encoding, bytes, dictionary.as_deref(), expected_len)
        .map_err(|err| error_chain(&err))
}
