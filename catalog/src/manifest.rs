//! The manifest of a file, computed without a store (issue 15): what an
//! administrator's machine sends before a remote publish. It is exactly the
//! manifest `Store::import_file` makes of the same bytes with the same
//! profile and media type, so the origin ends up with the same objects as a
//! local publish of the same folder.

use std::cell::RefCell;
use std::io::Read;

use crate::chunker::{Block, Chunker, ChunkingProfile};
use crate::hash::{Hash, Hasher};
use crate::object::{ChunkRef, FileManifest};

thread_local! {
    /// A block buffer kept between files read on this thread: a fresh one
    /// is several MiB zeroed, which for a small file costs more than
    /// reading and hashing it.
    static SPARE: RefCell<Option<Block>> = const { RefCell::new(None) };
}

/// Reads `reader` to its end once, cutting it into chunks with `profile`
/// and hashing each chunk and the whole; `progress` gets byte counts.
pub fn manifest_of(
    reader: impl Read,
    profile: ChunkingProfile,
    media_type: &str,
    progress: &mut dyn FnMut(u64),
) -> std::io::Result<FileManifest> {
    let mut chunker = Chunker::new(profile, reader);
    let mut whole = Hasher::new();
    let mut chunks = Vec::new();
    let mut size = 0u64;
    let mut spare = SPARE.take();
    while let Some(block) = chunker.next_block(spare.take())? {
        whole.update_parallel(block.data());
        for (_, bytes) in block.chunks() {
            chunks.push(ChunkRef {
                hash: Hash::of(bytes),
                len: bytes.len() as u32,
            });
        }
        size += block.data().len() as u64;
        progress(block.data().len() as u64);
        spare = Some(block);
    }
    SPARE.set(chunker.take_spare());
    Ok(FileManifest {
        size,
        blob: whole.finalize(),
        media_type: media_type.to_owned(),
        chunking: profile,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ImportBatch, ImportMode, Store};

    /// Issue 15: the manifest made without a store is the one the store's
    /// import makes, for a small file (read whole) and a large one (streamed).
    #[test]
    fn the_manifest_of_a_file_is_the_one_import_makes_issue_15() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("store");
        // Largest first and last: the block buffer one file leaves behind on
        // this thread must not leak into the next file's manifest.
        for size in [
            5 * 1024 * 1024 + 12_345,
            0usize,
            1,
            100_000,
            5 * 1024 * 1024 + 12_345,
            3,
        ] {
            let data = crate::testdata::generated(size, size as u64 + 7);
            let path = dir.path().join(format!("file-{size}"));
            std::fs::write(&path, &data).expect("write");
            let mut batch = ImportBatch::new();
            let imported = store
                .import_file(
                    &path,
                    ChunkingProfile::DEFAULT,
                    "video/mp4",
                    ImportMode::Rehash,
                    &mut batch,
                    &mut |_| {},
                )
                .expect("import");
            store.commit_batch(batch).expect("commit");
            let mut seen = 0;
            let ours = manifest_of(
                data.as_slice(),
                ChunkingProfile::DEFAULT,
                "video/mp4",
                &mut |n| seen += n,
            )
            .expect("manifest");
            assert_eq!(ours, imported.manifest, "size {size}");
            assert_eq!(seen, size as u64);
        }
    }
}
