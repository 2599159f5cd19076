//! Issue 13: the reachability walk and garbage collection.

use std::collections::HashMap;

use super::*;
use crate::object::{Catalog, CatalogEntry, Course, FileEntry, LessonRef};
use crate::store::collect::{Reachable, reachable};
use crate::testdata::{sample_catalog, sample_course, sample_lesson, sample_manifest};

fn lookup_in(
    objects: &HashMap<Hash, Object>,
) -> impl FnMut(&Hash) -> Result<Option<Object>, String> + '_ {
    |hash| Ok(objects.get(hash).cloned())
}

/// Issue 13: the walk reaches the catalog, its courses, lessons, the files'
/// manifests and blobs; a missing lesson is an error, not a smaller set.
#[test]
fn reachability_walks_catalogs_courses_lessons_and_files_issue_13() {
    let catalog = sample_catalog();
    let catalog_hash = Object::Catalog(catalog.clone()).hash();
    let course = sample_course();
    let lesson = sample_lesson();
    let mut objects = HashMap::new();
    objects.insert(
        Object::Course(course.clone()).hash(),
        Object::Course(course),
    );
    objects.insert(
        Object::Lesson(lesson.clone()).hash(),
        Object::Lesson(lesson),
    );
    let keep = reachable(
        &[(catalog_hash, catalog.clone())],
        lookup_in(&objects),
        |h| h.to_string(),
    )
    .expect("walk");
    let mut expected = Reachable::default();
    expected.objects.extend([
        catalog_hash,
        Object::Course(sample_course()).hash(),
        Object::Lesson(sample_lesson()).hash(),
        Object::from(sample_manifest()).hash(),
    ]);
    expected.blobs.insert(Hash::of(b"hello"));
    assert_eq!(keep, expected);

    let lesson_hash = Object::Lesson(sample_lesson()).hash();
    objects.remove(&lesson_hash);
    let missing = reachable(&[(catalog_hash, catalog)], lookup_in(&objects), |h| {
        h.to_string()
    })
    .expect_err("a missing lesson stops the walk");
    assert_eq!(missing, lesson_hash.to_string());
}

/// One version of a course: a lesson holding `files`, the course, and a
/// signed catalog at `sequence` committed as the catalog in force.
fn publish_version(store: &Store, sequence: u64, files: &[Imported]) -> (Hash, Catalog) {
    let entries: Vec<FileEntry> = files
        .iter()
        .enumerate()
        .map(|(i, f)| FileEntry {
            path: format!("f{i}"),
            size: f.manifest.size,
            blob: f.manifest.blob,
            manifest: f.manifest_hash,
        })
        .collect();
    let mut lesson = sample_lesson();
    lesson.files = entries;
    let mut batch = ImportBatch::new();
    let lesson_hash = batch.add_object(&Object::Lesson(lesson));
    let mut course: Course = sample_course();
    course.version = sequence;
    course.lessons = vec![LessonRef {
        id: "01-counting".into(),
        hash: lesson_hash,
        size: 0,
    }];
    let course_hash = batch.add_object(&Object::Course(course));
    let mut catalog = Catalog::empty(1_790_000_000);
    catalog.sequence = sequence;
    catalog.courses.insert(
        "grade3-math".into(),
        CatalogEntry {
            hash: course_hash,
            version: sequence,
            total_size: 0,
        },
    );
    let signed = OriginKey::from_bytes(&[1; 32]).sign(&catalog);
    store
        .commit_batch_with_catalog(batch, |_| Ok::<_, StoreError>(Some(signed.clone())))
        .expect("commit");
    (signed.catalog_hash(), catalog)
}

/// Issue 13: two versions sharing a file and most of another's chunks;
/// keeping only v2 removes v1's own blob, objects and catalog, keeps the
/// shared blob, and moves chunk rows that pointed into v1's blob to v2's.
#[test]
fn collect_keeps_what_v2_reaches_and_rehomes_shared_chunks_issue_13() {
    let (dir, store) = store();
    let big_v1 = generated(3_000_000, 7);
    let mut big_v2 = big_v1.clone();
    big_v2[1_500_000..1_500_100].fill(0xAB);
    let shared = generated(200_000, 9);
    let write = |name: &str, data: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, data).expect("write");
        import_with(&store, &path, ImportMode::Rehash)
    };
    let v1 = [write("big1", &big_v1), write("shared", &shared)];
    publish_version(&store, 1, &v1);
    let v2 = [write("big2", &big_v2), write("shared", &shared)];
    let (v2_hash, v2_catalog) = publish_version(&store, 2, &v2);
    assert_eq!(
        store
            .catalog_history()
            .expect("history")
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    // The chunks v2's big file shares with v1's point into v1's blob today.
    let first = v2[0].manifest.chunks[0].hash;
    assert_eq!(
        store.chunk_location(&first).expect("read").map(|l| l.blob),
        Some(v1[0].manifest.blob)
    );
    let v1_only: Vec<Hash> = v1[0]
        .manifest
        .chunks
        .iter()
        .map(|c| c.hash)
        .filter(|h| !v2[0].manifest.chunks.iter().any(|c| c.hash == *h))
        .collect();
    assert!(!v1_only.is_empty());

    let keep = reachable(
        &[(v2_hash, v2_catalog)],
        |h| store.object(h),
        |hash| StoreError::MissingObject { hash },
    )
    .expect("walk");
    let dry = store.collect(&keep, 2, true, &mut |_| {}).expect("dry run");
    assert_eq!((dry.blobs, dry.blob_bytes, dry.catalogs), (1, 3_000_000, 1));
    assert!(
        store.has_blob(&v1[0].manifest.blob).expect("read"),
        "a dry run removes nothing"
    );

    let mut deleted_bytes = 0;
    let report = store
        .collect(&keep, 2, false, &mut |n| deleted_bytes += n)
        .expect("collect");
    assert_eq!((report.blobs, report.blob_bytes), (1, 3_000_000));
    assert_eq!(deleted_bytes, 3_000_000);
    // v1's lesson, course, catalog and its big file's manifest.
    assert_eq!(report.objects, 4);
    assert!(report.chunks_moved > 0);
    assert_eq!(report.chunks_dropped, v1_only.len() as u64);
    assert!(!store.has_blob(&v1[0].manifest.blob).expect("read"));
    assert!(!store.blob_path(&v1[0].manifest.blob).exists());
    for kept in [&v2[0], &v2[1]] {
        assert!(store.blob_path(&kept.manifest.blob).is_file());
        for chunk in &kept.manifest.chunks {
            let bytes = store
                .chunk_bytes(&chunk.hash)
                .expect("chunk")
                .expect("held");
            assert_eq!(Hash::of(&bytes), chunk.hash);
        }
    }
    for chunk in &v1_only {
        assert!(store.chunk_location(chunk).expect("read").is_none());
    }
    let scrub = store.scrub(&mut |_| {}).expect("scrub");
    assert!(scrub.problems.is_empty(), "{:?}", scrub.problems);
    assert_eq!(scrub.blobs_checked, 2);
    let history = store.catalog_history().expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].0, Some(2));

    // Nothing left to collect: a second run removes nothing.
    let again = store.collect(&keep, 2, false, &mut |_| {}).expect("again");
    assert_eq!((again.blobs, again.objects, again.catalogs), (0, 0, 0));
}

/// Issue 13: files a crashed collection had taken out of the index are
/// deleted when the store is next opened; a file the index holds is not.
#[test]
fn open_finishes_an_interrupted_collection_issue_13() {
    let (dir, store) = store();
    let path = dir.path().join("kept");
    std::fs::write(&path, generated(100_000, 3)).expect("write");
    let kept = import(&store, &path).manifest.blob;
    let gone = Hash::of(b"a condemned blob");
    let gone_path = store.blob_path(&gone);
    std::fs::create_dir_all(gone_path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&gone_path, b"a condemned blob").expect("write");
    store
        .write(|txn| {
            let mut doomed = txn.open_table(index::DOOMED).map_err(StoreError::index)?;
            for blob in [gone, kept] {
                doomed
                    .insert(blob.as_bytes(), 0)
                    .map_err(StoreError::index)?;
            }
            Ok(())
        })
        .expect("record");
    let root = store.root().to_owned();
    drop(store);
    let store = Store::open(&root).expect("reopen");
    assert!(!gone_path.exists());
    assert!(store.blob_path(&kept).is_file());
    assert!(store.has_blob(&kept).expect("read"));
    let txn = store.read().expect("read");
    let doomed = txn.open_table(index::DOOMED).expect("table");
    assert_eq!(redb::ReadableTableMetadata::len(&doomed).expect("len"), 0);
}

/// Issue 13: a partial file of a blob nothing keeps goes with its record; a
/// partial file of a kept blob stays.
#[test]
fn collect_removes_partials_nothing_keeps_issue_13() {
    let (_dir, store) = store();
    let partial_of = |seed: u64| {
        let data = generated(300_000, seed);
        let manifest = manifest_of(&data, "application/octet-stream");
        let hash = Object::Manifest(manifest.clone()).hash();
        let mut partial = store.partial(hash, manifest.clone()).expect("partial");
        let first = &data[..manifest.chunks[0].len as usize];
        partial.write_chunk(0, first).expect("write");
        partial.flush().expect("flush");
        manifest.blob
    };
    let (gone, kept) = (partial_of(21), partial_of(23));
    assert!(store.partial_path(&gone).is_file());
    let mut keep = Reachable::default();
    keep.blobs.insert(kept);
    let report = store
        .collect(&keep, 0, false, &mut |_| {})
        .expect("collect");
    assert_eq!(report.partials, 1);
    assert!(!store.partial_path(&gone).exists());
    assert!(!store.partial_held(&gone).expect("read"));
    assert!(store.partial_path(&kept).is_file());
    assert!(store.partial_held(&kept).expect("read"));
}
