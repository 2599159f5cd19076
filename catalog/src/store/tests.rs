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

/// A held blob of `len` generated bytes: (its bytes, what the import said).
fn held_blob(dir: &Path, store: &Store, name: &str, len: usize, seed: u64) -> (Vec<u8>, Imported) {
    let path = dir.join(name);
    let data = generated(len, seed);
    std::fs::write(&path, &data).expect("write");
    let imported = import(store, &path);
    (data, imported)
}

/// Sets a file's modification time far in the past, as any change of it would.
fn mark_changed(path: &Path) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for times");
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .expect("set mtime");
}

fn verified(store: &Store, blob: &Hash) -> Option<Vec<u8>> {
    match store.open_blob(blob).expect("open_blob") {
        OpenedBlob::Verified { file, len } => {
            let mut bytes = vec![0u8; len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, 0).expect("read");
            Some(bytes)
        }
        OpenedBlob::Changed | OpenedBlob::NotHeld => None,
    }
}

#[test]
fn issue_11_quarantine_moves_the_file_out_and_the_blob_is_no_longer_held() {
    let (dir, store) = store();
    let (data, imported) = held_blob(dir.path(), &store, "a", 300_000, 31);
    let blob = imported.manifest.blob;
    assert_eq!(verified(&store, &blob), Some(data.clone()));
    assert!(
        store
            .blob_identity(&blob)
            .expect("identity")
            .is_some_and(|identity| identity.size == data.len() as u64),
        "the identity is recorded when the blob is put in place"
    );

    assert!(
        store
            .quarantine_blob(&blob, QuarantineReason::Damaged)
            .expect("quarantine")
    );
    assert!(!store.blob_path(&blob).exists());
    let moved = store.root().join("quarantine").join(blob.to_hex());
    assert_eq!(std::fs::read(&moved).expect("quarantined copy"), data);
    assert!(!store.has_blob(&blob).expect("index"));
    assert!(store.is_quarantined(&blob).expect("index"));
    assert!(matches!(
        store.open_blob(&blob).expect("open"),
        OpenedBlob::NotHeld
    ));
    assert!(!store.check_held(&blob).expect("check"));
    for chunk in &imported.manifest.chunks {
        assert_eq!(store.chunk_location(&chunk.hash).expect("chunk"), None);
    }
    let records = store.quarantined().expect("list");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, blob);
    assert_eq!(records[0].1.reason, QuarantineReason::Damaged);
    assert_eq!(records[0].1.info.manifest, imported.manifest_hash);
    // Again: nothing more to do.
    assert!(
        !store
            .quarantine_blob(&blob, QuarantineReason::Damaged)
            .expect("again")
    );
}

#[test]
fn issue_11_a_blob_overwritten_in_place_is_not_served_and_a_recheck_quarantines_it() {
    let (dir, store) = store();
    let (data, imported) = held_blob(dir.path(), &store, "a", 400_000, 32);
    let blob = imported.manifest.blob;
    assert_eq!(verified(&store, &blob), Some(data.clone()));

    let path = store.blob_path(&blob);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, b"DAMAGE", 1000).expect("damage");
    drop(file);
    mark_changed(&path);
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        data.len() as u64
    );
    assert!(matches!(
        store.open_blob(&blob).expect("open"),
        OpenedBlob::Changed
    ));
    assert!(store.recheck_blob(&blob).expect("recheck").is_none());
    assert!(!store.has_blob(&blob).expect("index"));
    assert!(store.is_quarantined(&blob).expect("index"));
    assert!(!path.exists());
}

#[test]
fn issue_11_a_changed_file_with_the_right_bytes_is_served_after_a_recheck() {
    let (dir, store) = store();
    let (data, imported) = held_blob(dir.path(), &store, "a", 200_000, 33);
    let blob = imported.manifest.blob;
    let before = store.blob_identity(&blob).expect("identity");
    mark_changed(&store.blob_path(&blob));
    assert!(matches!(
        store.open_blob(&blob).expect("open"),
        OpenedBlob::Changed
    ));
    let (file, len) = store
        .recheck_blob(&blob)
        .expect("recheck")
        .expect("still good");
    assert_eq!(len, data.len() as u64);
    drop(file);
    assert_ne!(store.blob_identity(&blob).expect("identity"), before);
    assert_eq!(verified(&store, &blob), Some(data));
    assert!(!store.is_quarantined(&blob).expect("index"));
}

#[test]
fn issue_11_truncated_and_deleted_blobs_are_quarantined_by_the_held_check() {
    let (dir, store) = store();
    let (_, truncated) = held_blob(dir.path(), &store, "a", 200_000, 41);
    let (_, deleted) = held_blob(dir.path(), &store, "b", 200_000, 43);
    let (_, intact) = held_blob(dir.path(), &store, "c", 200_000, 45);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(store.blob_path(&truncated.manifest.blob))
        .expect("open");
    file.set_len(100_000).expect("truncate");
    drop(file);
    std::fs::remove_file(store.blob_path(&deleted.manifest.blob)).expect("delete");

    assert!(!store.check_held(&truncated.manifest.blob).expect("check"));
    assert!(!store.check_held(&deleted.manifest.blob).expect("check"));
    assert!(store.check_held(&intact.manifest.blob).expect("check"));
    let mut reasons: Vec<_> = store
        .quarantined()
        .expect("list")
        .into_iter()
        .map(|(blob, record)| (blob, record.reason))
        .collect();
    reasons.sort_by_key(|(blob, _)| *blob == deleted.manifest.blob);
    assert_eq!(
        reasons,
        vec![
            (truncated.manifest.blob, QuarantineReason::WrongSize),
            (deleted.manifest.blob, QuarantineReason::Missing),
        ]
    );
    assert_eq!(store.blob_count().expect("count"), 1);
}

#[test]
fn issue_11_a_quarantine_cut_short_by_a_crash_is_finished_at_open() {
    let (dir, store) = store();
    let (data, imported) = held_blob(dir.path(), &store, "a", 100_000, 37);
    let blob = imported.manifest.blob;
    let root = store.root().to_owned();
    drop(store);
    // Killed after the move, before the index said anything.
    let moved = root.join("quarantine").join(blob.to_hex());
    std::fs::rename(
        root.join("blobs")
            .join(&blob.to_hex()[..2])
            .join(&blob.to_hex()[2..4])
            .join(blob.to_hex()),
        &moved,
    )
    .expect("move");
    let store = Store::open(&root).expect("reopen");
    assert!(!store.has_blob(&blob).expect("index"));
    assert!(store.is_quarantined(&blob).expect("index"));
    assert_eq!(std::fs::read(&moved).expect("copy"), data);
}

#[test]
fn issue_11_fetching_a_quarantined_blob_again_reuses_chunks_held_in_other_blobs() {
    let (dir, store) = store();
    // `a` records its chunks first; `b` holds most of them too.
    let (a_data, a) = held_blob(dir.path(), &store, "a", 2_000_000, 38);
    let mut b_data = a_data.clone();
    b_data.extend_from_slice(&generated(500_000, 47));
    let b_path = dir.path().join("b");
    std::fs::write(&b_path, &b_data).expect("write");
    let b = import(&store, &b_path);
    let shared: u64 = a
        .manifest
        .chunks
        .iter()
        .filter(|chunk| b.manifest.chunks.contains(chunk))
        .map(|chunk| u64::from(chunk.len))
        .sum();
    assert!(shared > 1_000_000, "only {shared} bytes shared");

    store
        .quarantine_blob(&a.manifest.blob, QuarantineReason::Damaged)
        .expect("quarantine");
    let mut partial = store
        .partial(a.manifest_hash, a.manifest.clone())
        .expect("partial");
    assert_eq!(partial.reuse_local().expect("reuse"), shared);
    let (offsets, chunks): (Vec<u64>, Vec<_>) =
        a.manifest.chunk_offsets().map(|(o, c)| (o, *c)).unzip();
    for index in partial.missing() {
        let start = offsets[index] as usize;
        partial
            .write_chunk(index, &a_data[start..start + chunks[index].len as usize])
            .expect("write");
    }
    partial.finish().expect("finish");
    assert!(store.has_blob(&a.manifest.blob).expect("index"));
    assert!(!store.is_quarantined(&a.manifest.blob).expect("index"));
    assert!(
        !store
            .root()
            .join("quarantine")
            .join(a.manifest.blob.to_hex())
            .exists()
    );
    assert_eq!(verified(&store, &a.manifest.blob), Some(a_data));
}

#[test]
fn issue_11_scrub_quarantines_what_it_finds_bad() {
    let (dir, store) = store();
    let (_, imported) = held_blob(dir.path(), &store, "a", 200_000, 40);
    let blob = imported.manifest.blob;
    let path = store.blob_path(&blob);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[50_000] ^= 0x40;
    std::fs::write(&path, bytes).expect("write");
    let report = store.scrub(&mut |_| {}).expect("scrub");
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.quarantined, vec![blob]);
    assert!(!store.has_blob(&blob).expect("index"));
    assert!(!path.exists());
    let again = store.scrub(&mut |_| {}).expect("scrub");
    assert!(again.problems.is_empty(), "{:?}", again.problems);
    assert_eq!(again.blobs_checked, 0);
}
