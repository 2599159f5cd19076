//! Partial files: a chunk checked once fills every place with its hash, and
//! one writer at a time.

use super::*;
use crate::object::ChunkRef;

/// A checked chunk is written to every place of the file that has its
/// hash, and bytes that are not the chunk never become one.
#[test]
fn a_verified_chunk_fills_every_place_with_its_hash_and_wrong_bytes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let (a, b) = (vec![7u8; 4096], vec![9u8; 1000]);
    let data = [a.as_slice(), b.as_slice(), a.as_slice()].concat();
    let chunk = |bytes: &[u8]| ChunkRef {
        hash: Hash::of(bytes),
        len: bytes.len() as u32,
    };
    let manifest = FileManifest {
        size: data.len() as u64,
        blob: Hash::of(&data),
        media_type: "application/octet-stream".into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: vec![chunk(&a), chunk(&b), chunk(&a)],
    };
    let manifest_hash = Object::Manifest(manifest.clone()).hash();
    let mut partial = store.partial(manifest_hash, manifest).expect("partial");

    assert!(VerifiedChunk::check(Hash::of(&a), &b).is_none());
    let checked = VerifiedChunk::check(Hash::of(&a), &a).expect("the bytes are the chunk");
    assert_eq!(partial.write_verified(&checked).expect("write"), 2);
    assert_eq!(partial.missing(), vec![1]);
    // Written already: nothing is written twice.
    assert_eq!(partial.write_verified(&checked).expect("write"), 0);
    let other = VerifiedChunk::check(Hash::of(&b), &b).expect("the bytes are the chunk");
    assert_eq!(partial.write_verified(&other).expect("write"), 1);
    let blob = partial.finish().expect("every chunk is here");
    assert_eq!(std::fs::read(store.blob_path(&blob)).expect("blob"), data);
}

/// Two writers of one partial file (`edge run` and a manual `edge sync`
/// on one data folder): the second is told the file is busy, and once
/// the first lets go it resumes from what the first recorded.
#[test]
fn a_partial_file_has_one_writer_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let (a, b) = (vec![1u8; 3000], vec![2u8; 5000]);
    let data = [a.as_slice(), b.as_slice()].concat();
    let manifest = FileManifest {
        size: data.len() as u64,
        blob: Hash::of(&data),
        media_type: "text/plain".into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: [&a, &b]
            .iter()
            .map(|bytes| ChunkRef {
                hash: Hash::of(bytes),
                len: bytes.len() as u32,
            })
            .collect(),
    };
    let manifest_hash = Object::Manifest(manifest.clone()).hash();
    let mut first = store
        .partial(manifest_hash, manifest.clone())
        .expect("first writer");
    first.write_chunk(0, &a).expect("write");
    first.flush().expect("flush");
    let err = store
        .partial(manifest_hash, manifest.clone())
        .err()
        .expect("a second writer is refused");
    assert!(matches!(err, StoreError::PartialBusy { .. }), "{err}");
    assert!(err.to_string().contains("another shanlu process"), "{err}");
    drop(first);
    let second = store.partial(manifest_hash, manifest).expect("free again");
    assert_eq!(second.missing(), vec![1]);
}
