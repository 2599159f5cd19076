//! Storing whole files, as publishing does: hash, chunk, copy into the store.
//!
//! A file whose size, times and inode match what the last publish recorded
//! for its path (the way git's index and rsync's quick check work) is not read
//! at all. Any other file is read once: chunked, hashed and copied to a
//! temporary file, which is dropped if the store already holds that blob. With
//! [`ImportMode::Rehash`] nothing is trusted: every file is hashed whole first,
//! and only new blobs are chunked and copied.
//! Work is gathered in an [`ImportBatch`] (the `batch` module) and committed together.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::batch::{ImportBatch, PendingBlob};
use super::index::{self, CHUNKS};
use super::syncer::Syncer;
use super::{BlobInfo, Store, StoreError};
use crate::chunker::{Block, Chunker, ChunkingProfile, cut_points};
use crate::hash::{Hash, Hasher};
use crate::object::{ChunkRef, FileManifest};

/// Files up to this size are read into memory once; larger ones are streamed.
const SMALL_FILE: u64 = 4 * 1024 * 1024;
/// Start syncing a large blob's data to disk after every this many bytes written.
const SYNC_EVERY: u64 = 64 * 1024 * 1024;
/// Read size when hashing large files.
const READ_BLOCK: usize = 1024 * 1024;

/// How much to trust what earlier publishes recorded about source files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Skip files whose path, size, times and inode are as last recorded.
    #[default]
    TrustUnchanged,
    /// Hash every file.
    Rehash,
}

/// What the file system says about a source file: if none of it changed, neither did the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl SourceStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        SourceStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// A file changed within the last seconds may change again within the
    /// same timestamp tick; such stamps are not recorded.
    fn is_settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(i128::MAX);
        let nanos = |(secs, nsec): (i64, i64)| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        let settled_before = now - 2_000_000_000;
        nanos(self.mtime) < settled_before && nanos(self.ctime) < settled_before
    }
}

/// What storing one file did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub manifest_hash: Hash,
    pub manifest: FileManifest,
    /// The blob was not held before.
    pub new_blob: bool,
    /// The file was read; `false` when its recorded stamp showed it unchanged.
    pub was_read: bool,
    /// Chunks of this file that the chunk index did not hold before.
    pub new_chunks: u64,
    pub new_chunk_bytes: u64,
}

impl Store {
    /// Stores the file at `path` (if its blob is new) and returns its manifest.
    ///
    /// `path` is opened without following a symlink in its last component; a
    /// caller reading untrusted folders opens files itself (relative to a
    /// directory handle) and uses [`Store::import_opened`].
    /// `progress` is called with byte counts as the file is read.
    pub fn import_file(
        &self,
        path: &Path,
        profile: ChunkingProfile,
        media_type: &str,
        mode: ImportMode,
        batch: &mut ImportBatch,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|cause| StoreError::io("opening", path, cause))?;
        self.import_opened(file, path, profile, media_type, mode, batch, progress)
    }

    /// Stores a file's bytes held in memory (an uploaded small file, at
    /// most a few MiB) if its blob is new, and returns its manifest: what
    /// [`Store::import_file`] gives for a file with these bytes, without a
    /// file to read them from.
    pub fn import_bytes(
        &self,
        data: &[u8],
        profile: ChunkingProfile,
        media_type: &str,
        batch: &mut ImportBatch,
    ) -> Result<Imported, StoreError> {
        let blob = Hash::of(data);
        match self.reuse_blob(blob, media_type, batch)? {
            Some(imported) => Ok(imported),
            None => self.store_small(data, blob, profile, media_type, batch),
        }
    }

    /// Stores an already opened file (if its blob is new) and returns its manifest.
    ///
    /// Only `file` is read and only its own metadata (`fstat`) is trusted:
    /// `path` names it in errors and keys the record that lets a later
    /// publish skip it while its size, times and inode stay the same. The
    /// file must not change while it is read, or the import fails with
    /// [`StoreError::ChangedWhileReading`].
    #[expect(
        clippy::too_many_arguments,
        reason = "import_file's inputs plus the open file"
    )]
    pub fn import_opened(
        &self,
        file: std::fs::File,
        path: &Path,
        profile: ChunkingProfile,
        media_type: &str,
        mode: ImportMode,
        batch: &mut ImportBatch,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        let meta = file
            .metadata()
            .map_err(|cause| StoreError::io("reading the size of", path, cause))?;
        if !meta.is_file() {
            return Err(StoreError::io(
                "reading",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let stamp = SourceStamp::of(&meta);
        let key = path.to_string_lossy().into_owned();
        if mode == ImportMode::TrustUnchanged
            && let Some(blob) = self.recorded_source(&key, &stamp)?
            && let Some(imported) = self.reuse_blob(blob, media_type, batch)?
        {
            progress(stamp.size);
            return Ok(Imported {
                was_read: false,
                ..imported
            });
        }
        let imported = if stamp.size <= SMALL_FILE {
            let mut data = Vec::with_capacity(stamp.size as usize);
            // One byte past the size seen: a file that grew is caught below.
            (&file)
                .take(stamp.size + 1)
                .read_to_end(&mut data)
                .map_err(|cause| StoreError::io("reading", path, cause))?;
            progress(data.len() as u64);
            let blob = Hash::of(&data);
            match self.reuse_blob(blob, media_type, batch)? {
                Some(imported) => imported,
                None => self.store_small(&data, blob, profile, media_type, batch)?,
            }
        } else if mode == ImportMode::Rehash {
            let blob = hash_reader(path, &mut &file, progress)?;
            match self.reuse_blob(blob, media_type, batch)? {
                Some(imported) => imported,
                None => self.store_streamed(
                    path,
                    &file,
                    Some(blob),
                    profile,
                    media_type,
                    batch,
                    &mut |_| {},
                )?,
            }
        } else {
            self.store_streamed(path, &file, None, profile, media_type, batch, progress)?
        };
        // The same open file, not the path: a path swapped meanwhile says nothing about what was read.
        let after = file
            .metadata()
            .map_err(|cause| StoreError::io("reading the size of", path, cause))?;
        if SourceStamp::of(&after) != stamp || imported.manifest.size != stamp.size {
            return Err(StoreError::ChangedWhileReading {
                path: path.to_owned(),
            });
        }
        if stamp.is_settled() {
            batch.sources.push((key, stamp, imported.manifest.blob));
        }
        Ok(imported)
    }

    /// The blob recorded for this source path, if its stamp is unchanged.
    fn recorded_source(&self, key: &str, stamp: &SourceStamp) -> Result<Option<Hash>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(index::SOURCES).map_err(StoreError::index)?;
        let Some(value) = table.get(key).map_err(StoreError::index)? else {
            return Ok(None);
        };
        let (recorded, blob) = index::decode_source(value.value());
        Ok((recorded == *stamp).then_some(blob))
    }

    /// The manifest for a blob already held (committed or in this batch), with this media type.
    fn reuse_blob(
        &self,
        blob: Hash,
        media_type: &str,
        batch: &mut ImportBatch,
    ) -> Result<Option<Imported>, StoreError> {
        let existing = match batch.blob_manifests.get(&blob) {
            Some(manifest_hash) => batch.manifests[manifest_hash].clone(),
            None => match self.blob_info(&blob)? {
                Some(info) => self.manifest(&info.manifest)?,
                None => return Ok(None),
            },
        };
        let mut manifest = existing;
        manifest.media_type = media_type.to_owned();
        let manifest_hash = batch.add_manifest(manifest.clone());
        Ok(Some(Imported {
            manifest_hash,
            manifest,
            new_blob: false,
            was_read: true,
            new_chunks: 0,
            new_chunk_bytes: 0,
        }))
    }

    fn store_small(
        &self,
        data: &[u8],
        blob: Hash,
        profile: ChunkingProfile,
        media_type: &str,
        batch: &mut ImportBatch,
    ) -> Result<Imported, StoreError> {
        let tmp = self.tmp_path();
        std::fs::write(&tmp, data).map_err(|source| StoreError::io("writing", &tmp, source))?;
        let chunks = cut_points(profile, data)
            .into_iter()
            .map(|(offset, len)| {
                let bytes = &data[offset as usize..offset as usize + len as usize];
                (Hash::of(bytes), offset, len)
            })
            .collect();
        self.add_new_blob(
            blob,
            data.len() as u64,
            tmp,
            chunks,
            profile,
            media_type,
            batch,
        )
    }

    /// Chunks, hashes and copies a large file in one read, as a pipeline of
    /// 4 MiB blocks over three threads: read and cut; hash (whole file and each
    /// chunk); write. With `expected`, the file must hash to it.
    #[expect(clippy::too_many_arguments, reason = "internal step with plain inputs")]
    fn store_streamed(
        &self,
        path: &Path,
        file: &std::fs::File,
        expected: Option<Hash>,
        profile: ChunkingProfile,
        media_type: &str,
        batch: &mut ImportBatch,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError> {
        use std::io::Seek;
        let mut file = file;
        file.rewind()
            .map_err(|cause| StoreError::io("reading", path, cause))?;
        let tmp = self.tmp_path();
        let mut out =
            std::fs::File::create(&tmp).map_err(|cause| StoreError::io("creating", &tmp, cause))?;
        let (cut_tx, cut_rx) = mpsc::sync_channel::<Block>(2);
        let (hashed_tx, hashed_rx) = mpsc::sync_channel::<Block>(2);
        let (spare_tx, spare_rx) = mpsc::channel::<Block>();
        let syncer = batch.syncer.get_or_insert_with(Syncer::start);
        let copied = std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> std::io::Result<()> {
                let mut chunker = Chunker::new(profile, file);
                while let Some(block) = chunker.next_block(spare_rx.try_recv().ok())? {
                    if cut_tx.send(block).is_err() {
                        break; // a later stage stopped on an error of its own
                    }
                }
                Ok(())
            });
            let hasher = scope.spawn(move || {
                let mut whole = Hasher::new();
                let mut chunks = Vec::new();
                for block in cut_rx {
                    whole.update(block.data());
                    for (start, bytes) in block.chunks() {
                        chunks.push((
                            Hash::of(bytes),
                            block.offset + start as u64,
                            bytes.len() as u32,
                        ));
                    }
                    if hashed_tx.send(block).is_err() {
                        break;
                    }
                }
                (whole.finalize(), chunks)
            });
            let mut written = 0u64;
            let write_result = (|| -> Result<(), StoreError> {
                for block in hashed_rx {
                    let len = block.data().len() as u64;
                    out.write_all(block.data())
                        .map_err(|cause| StoreError::io("writing", &tmp, cause))?;
                    written += len;
                    if written % SYNC_EVERY < len {
                        syncer.sync(&tmp, &out)?;
                    }
                    progress(len);
                    let _ = spare_tx.send(block);
                }
                Ok(())
            })();
            drop(spare_tx);
            let read_result = reader
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the chunking thread panicked")));
            let hashed = hasher
                .join()
                .map_err(|_| StoreError::stopped("the hashing thread of an import", None));
            read_result.map_err(|cause| StoreError::io("reading", path, cause))?;
            write_result?;
            let (blob, chunks) = hashed?;
            Ok((written, blob, chunks))
        });
        let (written, blob, chunks) = match copied {
            Ok(copied) => copied,
            Err(err) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(err);
            }
        };
        if expected.is_some_and(|expected| expected != blob) {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::ChangedWhileReading {
                path: path.to_owned(),
            });
        }
        if let Some(syncer) = &batch.syncer {
            syncer.sync(&tmp, &out)?;
        }
        drop(out);
        if let Some(imported) = self.reuse_blob(blob, media_type, batch)? {
            let _ = std::fs::remove_file(&tmp);
            return Ok(imported);
        }
        self.add_new_blob(blob, written, tmp, chunks, profile, media_type, batch)
    }

    #[expect(clippy::too_many_arguments, reason = "internal step with plain inputs")]
    fn add_new_blob(
        &self,
        blob: Hash,
        size: u64,
        tmp: PathBuf,
        chunks: Vec<(Hash, u64, u32)>,
        profile: ChunkingProfile,
        media_type: &str,
        batch: &mut ImportBatch,
    ) -> Result<Imported, StoreError> {
        let (mut new_chunks, mut new_chunk_bytes) = (0, 0);
        {
            let txn = self.read()?;
            let table = txn.open_table(CHUNKS).map_err(StoreError::index)?;
            for (chunk, _, len) in &chunks {
                if batch.seen_chunks.contains(chunk) {
                    continue;
                }
                if table
                    .get(chunk.as_bytes())
                    .map_err(StoreError::index)?
                    .is_none()
                {
                    new_chunks += 1;
                    new_chunk_bytes += u64::from(*len);
                    batch.seen_chunks.insert(*chunk);
                }
            }
        }
        let manifest = FileManifest {
            size,
            blob,
            media_type: media_type.to_owned(),
            chunking: profile,
            chunks: chunks
                .iter()
                .map(|&(hash, _, len)| ChunkRef { hash, len })
                .collect(),
        };
        let manifest_hash = batch.add_manifest(manifest.clone());
        batch.blob_manifests.insert(blob, manifest_hash);
        batch.new_bytes += size;
        batch.blobs.push(PendingBlob {
            blob,
            info: BlobInfo {
                size,
                manifest: manifest_hash,
            },
            tmp,
            chunks,
        });
        Ok(Imported {
            manifest_hash,
            manifest,
            new_blob: true,
            was_read: true,
            new_chunks,
            new_chunk_bytes,
        })
    }
}

/// BLAKE3 of a whole reader, on several threads for large reads.
fn hash_reader(
    path: &Path,
    reader: &mut impl Read,
    progress: &mut dyn FnMut(u64),
) -> Result<Hash, StoreError> {
    let mut hasher = Hasher::new();
    let mut buffer = vec![0u8; READ_BLOCK];
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(StoreError::io("reading", path, source)),
            }
        }
        if filled == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update_parallel(&buffer[..filled]);
        progress(filled as u64);
    }
}
