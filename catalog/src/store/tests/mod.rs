//! Unit tests of the store: importing, partial blobs, scrub, the catalog
//! swap; quarantine and identity checks in `quarantine`.

use super::*;
use crate::chunker::ChunkingProfile;
use crate::chunker::tests::generated;
use crate::sign::OriginKey;
use crate::testdata::sample_catalog;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("open store");
    (dir, store)
}

/// The manifest of `data` chunked with the default profile.
fn manifest_of(data: &[u8], media_type: &str) -> FileManifest {
    FileManifest {
        size: data.len() as u64,
        blob: Hash::of(data),
        media_type: media_type.into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: crate::chunker::cut_points(ChunkingProfile::DEFAULT, data)
            .iter()
            .map(|&(o, l)| crate::object::ChunkRef {
                hash: Hash::of(&data[o as usize..(o + u64::from(l)) as usize]),
                len: l,
            })
            .collect(),
    }
}

fn import(store: &Store, path: &Path) -> Imported {
    import_with(store, path, ImportMode::TrustUnchanged)
}

fn import_with(store: &Store, path: &Path, mode: ImportMode) -> Imported {
    let mut batch = ImportBatch::new();
    let imported = store
        .import_file(
            path,
            ChunkingProfile::DEFAULT,
            "application/octet-stream",
            mode,
            &mut batch,
            &mut |_| {},
        )
        .expect("import");
    store.commit_batch(batch).expect("commit");
    imported
}

#[test]
fn imported_blob_is_named_by_its_blake3_and_holds_the_file() {
    let (dir, store) = store();
    for len in [0usize, 1, 5_000_000] {
        let path = dir.path().join(format!("file-{len}"));
        let data = generated(len, 3);
        std::fs::write(&path, &data).expect("write");
        let imported = import(&store, &path);
        assert_eq!(imported.manifest.blob, Hash::of(&data));
        assert_eq!(imported.manifest.size, len as u64);
        let held = std::fs::read(store.blob_path(&Hash::of(&data))).expect("blob file");
        assert_eq!(held, data);
        assert!(store.has_blob(&imported.manifest.blob).expect("index"));
        assert_eq!(
            store.manifest(&imported.manifest_hash).expect("manifest"),
            imported.manifest
        );
    }
    assert!(
        std::fs::read_dir(store.root().join("tmp"))
            .expect("tmp")
            .next()
            .is_none()
    );
}

#[test]
fn reimporting_stores_nothing_and_an_edit_adds_only_nearby_chunks() {
    for mode in [ImportMode::TrustUnchanged, ImportMode::Rehash] {
        reimport_and_edit(mode);
    }
}

fn reimport_and_edit(mode: ImportMode) {
    let import = |store: &Store, path: &Path| import_with(store, path, mode);
    let (dir, store) = store();
    let path = dir.path().join("video.bin");
    let mut data = generated(12_000_000, 11);
    std::fs::write(&path, &data).expect("write");
    let first = import(&store, &path);
    assert!(first.new_blob);
    assert_eq!(first.new_chunks as usize, first.manifest.chunks.len());

    let again = import(&store, &path);
    assert!(!again.new_blob);
    assert_eq!(again.new_chunks, 0);
    assert_eq!(again.manifest_hash, first.manifest_hash);

    let chunks_before = store.chunk_count().expect("count");
    data[6_000_000..6_000_004].copy_from_slice(b"edit");
    std::fs::write(&path, &data).expect("write");
    let edited = import(&store, &path);
    assert!(edited.new_blob);
    assert!(
        (1..=2).contains(&edited.new_chunks),
        "{} new chunks",
        edited.new_chunks
    );
    assert_eq!(
        store.chunk_count().expect("count"),
        chunks_before + edited.new_chunks
    );
}

#[test]
fn partial_blob_resumes_after_a_crash_and_reuses_local_chunks() {
    let (dir, store) = store();
    // A held file whose first half another file shares.
    let shared = generated(3_000_000, 21);
    let held_path = dir.path().join("held");
    std::fs::write(&held_path, &shared).expect("write");
    import(&store, &held_path);

    let mut wanted = shared[..1_500_000].to_vec();
    wanted.extend_from_slice(&generated(2_000_000, 22));
    let cuts = crate::chunker::cut_points(ChunkingProfile::DEFAULT, &wanted);
    let manifest = FileManifest {
        size: wanted.len() as u64,
        blob: Hash::of(&wanted),
        media_type: "video/mp4".into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: cuts
            .iter()
            .map(|&(offset, len)| crate::object::ChunkRef {
                hash: Hash::of(&wanted[offset as usize..(offset + u64::from(len)) as usize]),
                len,
            })
            .collect(),
    };
    let manifest_hash = Object::Manifest(manifest.clone()).hash();
    let chunk_bytes = |i: usize| {
        let (offset, len) = cuts[i];
        &wanted[offset as usize..(offset + u64::from(len)) as usize]
    };

    let mut partial = store
        .partial(manifest_hash, manifest.clone())
        .expect("partial");
    let reused = partial.reuse_local().expect("reuse");
    assert!(reused > 1_000_000, "reused only {reused} bytes");
    let missing = partial.missing();
    assert!(!missing.is_empty());
    // Write the missing chunks backwards, flushing after the first one only.
    let mut order = missing.clone();
    order.reverse();
    partial
        .write_chunk(order[0], chunk_bytes(order[0]))
        .expect("write");
    partial.flush().expect("flush");
    partial
        .write_chunk(order[1], chunk_bytes(order[1]))
        .expect("write");
    drop(partial); // killed before the second chunk was recorded

    let mut resumed = store
        .partial(manifest_hash, manifest.clone())
        .expect("resume");
    let still_missing = resumed.missing();
    assert_eq!(
        still_missing.len(),
        missing.len() - 1,
        "one flushed chunk survives"
    );
    assert!(!still_missing.contains(&order[0]));

    // A wrong chunk is refused and names the chunk.
    let err = resumed
        .write_chunk(still_missing[0], b"not this")
        .expect_err("mismatch");
    assert!(matches!(err, StoreError::ChunkMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&manifest.chunks[still_missing[0]].hash.to_string())
    );

    for index in still_missing {
        resumed
            .write_chunk(index, chunk_bytes(index))
            .expect("write");
    }
    let blob = resumed.finish().expect("finish");
    assert_eq!(std::fs::read(store.blob_path(&blob)).expect("blob"), wanted);
    assert!(!store.partial_path(&blob).exists());
    assert_eq!(
        store.blob_info(&blob).expect("info").map(|i| i.manifest),
        Some(manifest_hash)
    );
}

#[test]
fn finishing_an_incomplete_blob_is_refused() {
    let (_dir, store) = store();
    let data = generated(500_000, 5);
    let manifest = manifest_of(&data, "application/pdf");
    let partial = store
        .partial(Object::Manifest(manifest.clone()).hash(), manifest)
        .expect("partial");
    assert!(matches!(
        partial.finish(),
        Err(StoreError::Incomplete { .. })
    ));
}

#[test]
fn scrub_names_a_blob_with_a_flipped_byte() {
    let (dir, store) = store();
    let path = dir.path().join("a");
    std::fs::write(&path, generated(200_000, 8)).expect("write");
    let imported = import(&store, &path);
    let clean = store.scrub(&mut |_| {}).expect("scrub");
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.blobs_checked, 1);

    let blob_path = store.blob_path(&imported.manifest.blob);
    let mut bytes = std::fs::read(&blob_path).expect("read");
    bytes[100_000] ^= 0x01;
    std::fs::write(&blob_path, bytes).expect("write");
    let report = store.scrub(&mut |_| {}).expect("scrub");
    assert_eq!(report.problems.len(), 1);
    assert!(
        report.problems[0]
            .to_string()
            .contains(&imported.manifest.blob.to_string())
    );
}

#[test]
fn catalog_is_replaced_atomically_with_a_batch() {
    let (_dir, store) = store();
    assert!(store.signed_catalog().expect("read").is_none());
    let key = OriginKey::from_bytes(&[1; 32]);
    let signed = key.sign(&sample_catalog());
    let mut batch = ImportBatch::new();
    let course_hash = batch.add_object(&Object::Catalog(sample_catalog()));
    let stored = store
        .commit_batch_with_catalog(batch, |current| {
            assert!(current.is_none());
            Ok::<_, StoreError>(Some(signed.clone()))
        })
        .expect("commit");
    assert_eq!(stored, Some(signed.clone()));
    assert_eq!(store.signed_catalog().expect("read"), Some(signed.clone()));
    assert!(store.object(&course_hash).expect("object").is_some());

    // A failing update commits nothing of its batch.
    let mut batch = ImportBatch::new();
    let lost = batch.add_object(&Object::Manifest(crate::testdata::sample_manifest()));
    let result = store.commit_batch_with_catalog(batch, |_| {
        Err::<Option<SignedCatalog>, _>(StoreError::BadCatalog {
            cause: crate::sign::CatalogError::TrailingBytes { extra: 1 },
        })
    });
    assert!(result.is_err());
    assert!(store.object(&lost).expect("read").is_none());
    assert_eq!(store.signed_catalog().expect("read"), Some(signed));
}

#[test]
fn objects_from_elsewhere_are_checked_before_storing() {
    let (_dir, store) = store();
    let bytes = Object::Catalog(sample_catalog()).encode();
    let wrong = Hash::of(b"something else");
    assert!(store.put_objects(&[(wrong, bytes.clone())]).is_err());
    assert!(store.object(&wrong).expect("read").is_none());
    let right = Hash::of(&bytes);
    store.put_objects(&[(right, bytes)]).expect("put");
    assert!(store.object(&right).expect("read").is_some());
}

#[test]
fn a_second_process_can_open_the_store_while_one_has_it() {
    let (dir, store) = store();
    let other = Store::open(dir.path().join("store")).expect("second handle");
    let path = dir.path().join("x");
    std::fs::write(&path, b"shared").expect("write");
    let imported = import(&store, &path);
    assert!(other.has_blob(&imported.manifest.blob).expect("read"));
}

#[test]
fn an_unchanged_settled_file_is_not_read_again_but_a_changed_one_is() {
    let (dir, store) = store();
    let path = dir.path().join("settled.bin");
    let data = generated(6_000_000, 31);
    std::fs::write(&path, &data).expect("write");
    // Stamps younger than two seconds are not trusted (a write in the same tick would hide).
    std::thread::sleep(std::time::Duration::from_millis(2_300));
    let first = import(&store, &path);
    assert!(first.was_read && first.new_blob);
    let second = import(&store, &path);
    assert!(
        !second.was_read,
        "an unchanged file is recognised by its stamp"
    );
    assert_eq!(second.manifest_hash, first.manifest_hash);
    assert!(import_with(&store, &path, ImportMode::Rehash).was_read);

    let mut changed = data;
    changed[10] ^= 1;
    std::fs::write(&path, &changed).expect("write");
    let third = import(&store, &path);
    assert!(third.was_read && third.new_blob);
    assert_eq!(third.manifest.blob, Hash::of(&changed));
}

#[test]
fn a_file_assembled_elsewhere_is_adopted_only_if_whole() {
    let (dir, store) = store();
    let data = generated(300_000, 9);
    let manifest = manifest_of(&data, "video/mp4");
    let manifest_hash = Object::Manifest(manifest.clone()).hash();
    let staging = store.root().join("staged");

    // A damaged copy is refused and nothing is recorded.
    let mut damaged = data.clone();
    damaged[1000] ^= 1;
    std::fs::write(&staging, &damaged).expect("write");
    assert!(matches!(
        store.adopt_blob(&staging, manifest_hash, &manifest),
        Err(StoreError::BlobMismatch { .. })
    ));
    assert!(!store.has_blob(&manifest.blob).expect("index"));

    // A whole copy joins the store, its chunks usable by later files.
    std::fs::write(&staging, &data).expect("write");
    assert_eq!(
        store
            .adopt_blob(&staging, manifest_hash, &manifest)
            .expect("adopt"),
        manifest.blob
    );
    assert!(!staging.exists(), "the staged file was moved, not copied");
    assert_eq!(
        std::fs::read(store.blob_path(&manifest.blob)).expect("blob"),
        data
    );
    assert_eq!(store.manifest(&manifest_hash).expect("manifest"), manifest);
    let first = manifest.chunks[0].hash;
    assert_eq!(
        store.chunk_bytes(&first).expect("chunk").expect("held"),
        data[..manifest.chunks[0].len as usize]
    );

    // Adopting what is already held just drops the copy.
    std::fs::write(&staging, &data).expect("write");
    store
        .adopt_blob(&staging, manifest_hash, &manifest)
        .expect("again");
    assert!(!staging.exists());
    drop(dir);
}

mod collect;
mod pack;
mod partial;
mod quarantine;

/// The same file under two media types has two manifests and one blob: a
/// partial begun under one resumes under the other (an upload cut off and
/// sent again may name the file by either); a manifest that cuts the blob
/// otherwise does not reuse the record.
#[test]
fn a_partial_resumes_under_another_manifest_with_the_same_chunks() {
    let (_dir, store) = store();
    let data = generated(1_500_000, 31);
    let cuts = crate::chunker::cut_points(ChunkingProfile::DEFAULT, &data);
    assert!(cuts.len() > 2, "{} chunks", cuts.len());
    let pieces: Vec<&[u8]> = cuts
        .iter()
        .map(|&(offset, len)| &data[offset as usize..(offset + u64::from(len)) as usize])
        .collect();
    let manifest = |media_type| crate::testdata::manifest_of_chunks(&pieces, media_type);
    let (as_video, as_bytes) = (manifest("video/mp4"), manifest("application/octet-stream"));
    let keep = |m: &FileManifest| {
        let bytes = Object::Manifest(m.clone()).encode();
        let hash = Hash::of(&bytes);
        store.put_objects(&[(hash, bytes)]).expect("keep manifest");
        hash
    };
    let (video_hash, bytes_hash) = (keep(&as_video), keep(&as_bytes));
    let (offset, len) = cuts[1];
    let mut partial = store.partial(video_hash, as_video).expect("partial");
    partial
        .write_chunk(
            1,
            &data[offset as usize..(offset + u64::from(len)) as usize],
        )
        .expect("write");
    partial.flush().expect("flush");
    drop(partial);

    let resumed = store.partial(bytes_hash, as_bytes.clone()).expect("resume");
    assert!(!resumed.missing().contains(&1), "the chunk was kept");
    assert_eq!(resumed.missing().len(), cuts.len() - 1);
    drop(resumed);

    // Cut otherwise (one chunk less: the last two joined): not reused.
    let mut joined = as_bytes;
    let last = joined.chunks.pop().expect("chunks");
    let before = joined.chunks.pop().expect("chunks");
    let (from, _) = cuts[cuts.len() - 2];
    joined.chunks.push(crate::object::ChunkRef {
        hash: Hash::of(&data[from as usize..]),
        len: before.len + last.len,
    });
    let other = store
        .partial(Object::Manifest(joined.clone()).hash(), joined)
        .expect("partial");
    assert_eq!(other.missing().len(), cuts.len() - 1, "nothing reused");
}
