//! Issue 13: chunk packs, how an origin keeps a superseded version as the
//! chunks it alone holds.

use super::*;
use crate::store::collect::Reachable;
use crate::store::pack::PACK_MEDIA_TYPE;

/// Packs hold exactly the chunks asked for, read back through the index
/// once the blob they came from is collected, and pass a scrub.
#[test]
fn packed_chunks_outlive_their_file_and_scrub_clean_issue_13() {
    let (dir, store) = store();
    let data = generated(2_000_000, 21);
    let path = dir.path().join("old");
    std::fs::write(&path, &data).expect("write");
    let old = import_with(&store, &path, ImportMode::Rehash);
    let chunks: Vec<_> = old.manifest.chunks.iter().step_by(2).copied().collect();
    assert!(chunks.len() >= 2, "the file has several chunks");
    let mut copied = 0;
    let packs = store
        .write_packs(&chunks, &mut |n| copied += n)
        .expect("pack");
    assert_eq!(packs.len(), 1);
    let want: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
    assert_eq!((packs[0].size, copied), (want, want));
    assert_eq!(packs[0].chunks, chunks);
    assert_eq!(store.packs().expect("packs"), packs);
    let manifest = store.manifest(&packs[0].manifest).expect("pack manifest");
    assert_eq!(manifest.media_type, PACK_MEDIA_TYPE);

    // Keep the pack, not the file: the packed chunks move to the pack, the
    // others go.
    let mut keep = Reachable::default();
    keep.blobs.insert(packs[0].blob);
    keep.objects.insert(packs[0].manifest);
    let report = store
        .collect(&keep, 0, false, &mut |_| {})
        .expect("collect");
    assert_eq!(report.blobs, 1);
    assert_eq!(report.chunks_moved, chunks.len() as u64);
    assert!(!store.has_blob(&old.manifest.blob).expect("has"));
    for (offset, chunk) in old.manifest.chunk_offsets() {
        let held = store.chunk_bytes(&chunk.hash).expect("read");
        if chunks.contains(chunk) {
            let end = offset as usize + chunk.len as usize;
            assert_eq!(held.as_deref(), Some(&data[offset as usize..end]));
        } else {
            assert_eq!(held, None, "an unpacked chunk went with its file");
        }
    }
    let scrub = store.scrub(&mut |_| {}).expect("scrub");
    assert!(scrub.problems.is_empty(), "{:?}", scrub.problems);

    // Half the chunks went: the file cannot be put back together, and the
    // attempt leaves no partial file.
    let err = store
        .rebuild_blob(old.manifest_hash, old.manifest.clone())
        .expect_err("chunks are missing");
    assert!(matches!(err, StoreError::MissingChunk { .. }), "{err}");
    assert!(!store.partial_path(&old.manifest.blob).exists());

    // Packing a chunk the store does not hold commits nothing.
    let missing = crate::object::ChunkRef {
        hash: Hash::of(b"never stored"),
        len: 12,
    };
    let err = store
        .write_packs(&[chunks[0], missing], &mut |_| {})
        .expect_err("a chunk not held");
    assert!(matches!(err, StoreError::MissingChunk { .. }), "{err}");
    assert_eq!(store.packs().expect("packs").len(), 1);
    let leftovers = std::fs::read_dir(dir.path().join("store/tmp")).map_or(0, |d| d.count());
    assert_eq!(leftovers, 0, "a refused pack leaves no temporary file");
}

/// Issue 13: a file whose chunks are all held in a pack is put back
/// together whole (what `publish --revert` does for a packed version).
#[test]
fn a_packed_file_is_rebuilt_whole_issue_13() {
    let (dir, store) = store();
    let data = generated(1_500_000, 23);
    let path = dir.path().join("old");
    std::fs::write(&path, &data).expect("write");
    let old = import_with(&store, &path, ImportMode::Rehash);
    // In reverse order: packed in file order, the pack would be the file.
    let reversed: Vec<_> = old.manifest.chunks.iter().rev().copied().collect();
    let packs = store.write_packs(&reversed, &mut |_| {}).expect("pack");
    assert_ne!(packs[0].blob, old.manifest.blob);
    let mut keep = Reachable::default();
    keep.blobs.insert(packs[0].blob);
    keep.objects.extend([packs[0].manifest, old.manifest_hash]);
    store
        .collect(&keep, 0, false, &mut |_| {})
        .expect("collect");
    assert!(!store.has_blob(&old.manifest.blob).expect("has"));
    store
        .rebuild_blob(old.manifest_hash, old.manifest.clone())
        .expect("rebuild");
    assert!(store.has_blob(&old.manifest.blob).expect("has"));
    let rebuilt = std::fs::read(store.blob_path(&old.manifest.blob)).expect("read");
    assert!(rebuilt == data, "the rebuilt file is the original");
}
