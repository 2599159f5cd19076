//! Unit and property tests of the sync plan (issue 12): no sockets, no store.

use super::*;
use catalog::{
    CatalogEntry, ChunkRef, ChunkingProfile, Course, FileEntry, Lesson, LessonRef, LocalizedText,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn manifest_of(chunks: &[(u8, u32)]) -> FileManifest {
    let chunks: Vec<ChunkRef> = chunks
        .iter()
        .map(|&(id, len)| ChunkRef {
            hash: Hash::of(&[id]),
            len,
        })
        .collect();
    let ids: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.hash.as_bytes()[..2].to_vec())
        .collect();
    FileManifest {
        size: chunks.iter().map(|c| u64::from(c.len)).sum(),
        blob: Hash::of(&ids),
        media_type: "video/mp4".into(),
        chunking: ChunkingProfile::default(),
        chunks,
    }
}

fn entry(path: &str, manifest: &FileManifest, objects: &mut HashMap<Hash, Object>) -> FileEntry {
    let object = Object::Manifest(manifest.clone());
    let hash = Hash::of(&object.encode());
    objects.insert(hash, object);
    FileEntry {
        path: path.into(),
        size: manifest.size,
        blob: manifest.blob,
        manifest: hash,
    }
}

fn put(object: Object, objects: &mut HashMap<Hash, Object>) -> Hash {
    let hash = Hash::of(&object.encode());
    objects.insert(hash, object);
    hash
}

/// A catalog of `courses`, each with `lessons` lessons of `files` files; every
/// object in the returned map (the origin's view).
fn origin(courses: usize, lessons: usize, files: usize) -> (Catalog, HashMap<Hash, Object>) {
    let mut objects = HashMap::new();
    let mut entries = BTreeMap::new();
    for c in 0..courses {
        let mut refs = Vec::new();
        for l in 0..lessons {
            let files = (0..files)
                .map(|f| {
                    let m = manifest_of(&[(c as u8, 10), (l as u8, 20), (f as u8, 30)]);
                    entry(&format!("f{f}.txt"), &m, &mut objects)
                })
                .collect();
            let lesson = Lesson {
                id: format!("l{l}"),
                title: LocalizedText::new(),
                summary: LocalizedText::new(),
                entry: "f0.txt".into(),
                files,
                tags: vec![],
                languages: vec![],
                duration_secs: None,
            };
            let hash = put(Object::Lesson(lesson), &mut objects);
            refs.push(LessonRef {
                id: format!("l{l}"),
                hash,
                size: 60,
            });
        }
        let cover = manifest_of(&[(200, 5), (c as u8, 5)]);
        let course = Course {
            id: format!("c{c}"),
            version: 1,
            title: LocalizedText::new(),
            description: LocalizedText::new(),
            subject: None,
            grade: None,
            languages: vec![],
            tags: vec![],
            files: vec![entry("cover.svg", &cover, &mut objects)],
            lessons: refs,
        };
        let hash = put(Object::Course(course), &mut objects);
        entries.insert(
            format!("c{c}"),
            CatalogEntry {
                hash,
                version: 1,
                total_size: 0,
            },
        );
    }
    let catalog = Catalog {
        sequence: 1,
        published_at: 0,
        chunking: ChunkingProfile::default(),
        courses: entries,
        expires_at: 0,
        withdrawn: Default::default(),
    };
    (catalog, objects)
}

/// Runs the diff to its end against `origin`, starting from `held`;
/// returns every hash asked for, in order, and the levels it took.
fn converge(
    catalog: &Catalog,
    origin: &HashMap<Hash, Object>,
    held: &mut HashMap<Hash, Object>,
) -> (Vec<Hash>, usize) {
    let mut asked = Vec::new();
    for level in 0..10 {
        let wanted = metadata_wanted(catalog, held).expect("diff");
        if wanted.is_empty() {
            return (asked, level);
        }
        for hash in wanted {
            assert!(
                !held.contains_key(&hash),
                "issue 12: asked for a held object"
            );
            held.insert(hash, origin[&hash].clone());
            asked.push(hash);
        }
    }
    panic!("the diff did not converge in 10 levels");
}

#[test]
fn issue_12_catalog_diff_goes_level_by_level_and_asks_each_object_once() {
    let (catalog, origin) = origin(2, 3, 2);
    let mut held = HashMap::new();
    let (asked, levels) = converge(&catalog, &origin, &mut held);
    // Courses, then lessons and course files, then lesson files.
    assert_eq!(levels, 3);
    assert_eq!(asked.len(), origin.len());
    assert_eq!(asked.iter().collect::<HashSet<_>>().len(), asked.len());
    assert_eq!(held, origin);
    // The first level is the courses, in catalog order.
    let first = metadata_wanted(&catalog, &HashMap::new()).expect("diff");
    let courses: Vec<Hash> = catalog.courses.values().map(|e| e.hash).collect();
    assert_eq!(first, courses);
}

#[test]
fn issue_12_a_new_catalog_asks_only_for_what_changed() {
    let (old, mut objects) = origin(1, 2, 2);
    // A new version of the course with one lesson file changed.
    let Object::Course(mut course) = objects[&old.courses["c0"].hash].clone() else {
        panic!("course")
    };
    let Object::Lesson(mut lesson) = objects[&course.lessons[1].hash].clone() else {
        panic!("lesson")
    };
    let changed = manifest_of(&[(0, 10), (99, 40)]);
    lesson.files[1] = entry("f1.txt", &changed, &mut objects);
    course.lessons[1].hash = put(Object::Lesson(lesson), &mut objects);
    course.version = 2;
    let new_course = put(Object::Course(course), &mut objects);
    let mut new = old.clone();
    new.sequence = 2;
    new.courses.get_mut("c0").expect("c0").hash = new_course;
    let mut held: HashMap<Hash, Object> = HashMap::new();
    converge(&old, &objects, &mut held);
    let (asked, _) = converge(&new, &objects, &mut held);
    let expected: HashSet<Hash> = [
        new_course,
        *objects
            .keys()
            .find(|h| matches!(&objects[*h], Object::Manifest(m) if *m == changed))
            .expect("changed manifest"),
    ]
    .into_iter()
    .chain(
        held.iter()
            .filter(|(_, o)| matches!(o, Object::Lesson(l) if l.files[1].blob == changed.blob))
            .map(|(h, _)| *h),
    )
    .collect();
    assert_eq!(asked.into_iter().collect::<HashSet<_>>(), expected);
}

#[test]
fn issue_12_file_jobs_follow_course_order_and_subscriptions() {
    let (catalog, objects) = origin(3, 2, 2);
    let jobs = file_jobs(&catalog, |id| id != "c1", &objects).expect("jobs");
    let labels: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "c0/cover.svg",
            "c0/l0/f0.txt",
            "c0/l0/f1.txt",
            "c0/l1/f0.txt",
            "c0/l1/f1.txt",
            "c2/cover.svg",
            "c2/l0/f0.txt",
            "c2/l0/f1.txt",
            "c2/l1/f0.txt",
            "c2/l1/f1.txt",
        ]
    );
    // A missing object is an error naming it, not an empty plan.
    let mut partial = objects.clone();
    let lesson = match &objects[&catalog.courses["c0"].hash] {
        Object::Course(course) => course.lessons[0].hash,
        _ => panic!("course"),
    };
    partial.remove(&lesson);
    let err = file_jobs(&catalog, |_| true, &partial).expect_err("missing lesson");
    assert!(err.to_string().contains(&lesson.to_string()), "{err}");
}

#[test]
fn issue_12_todo_jobs_take_each_missing_blob_once_with_its_previous_version() {
    let a = manifest_of(&[(1, 10)]);
    let b = manifest_of(&[(2, 10)]);
    let old_b = manifest_of(&[(3, 10)]);
    let job = |label: &str, m: &FileManifest| FileJob {
        label: label.into(),
        manifest_hash: Hash::of(label.as_bytes()),
        manifest: m.clone(),
        previous: None,
    };
    let jobs = vec![job("c/a", &a), job("c/b", &b), job("c/b2", &b)];
    let missing: HashSet<Hash> = [b.blob].into();
    let previous = HashMap::from([("c/b".to_owned(), old_b.clone())]);
    let todo = todo_jobs(jobs, &missing, previous);
    assert_eq!(todo.len(), 1);
    assert_eq!(todo[0].label, "c/b");
    assert_eq!(todo[0].previous.as_ref(), Some(&old_b));
}

#[test]
fn issue_12_chunk_plan_copies_held_chunks_and_fetches_the_rest_once() {
    let m = manifest_of(&[(1, 10), (2, 10), (1, 10), (3, 10), (4, 10)]);
    let present = [false, true, false, false, false];
    let held = |h: &Hash| *h == Hash::of(&[3]);
    let plan = chunk_plan(&m, &present, held, None);
    assert_eq!(plan.copy, vec![3]);
    let fetched: Vec<usize> = plan.fetch.iter().map(|(i, _)| *i).collect();
    assert_eq!(fetched, vec![0, 4]);
    assert!(plan.fetch.iter().all(|(_, want)| want.bases.is_empty()));
}

#[test]
fn issue_12_delta_bases_find_shifted_old_bytes() {
    // One chunk inserted at the front: the changed chunk 3 lines up with old chunk 2.
    let old = manifest_of(&[(1, 100), (2, 100), (3, 100), (4, 100)]);
    let new = manifest_of(&[(9, 50), (1, 100), (2, 100), (8, 100), (4, 100)]);
    let bases = delta_bases(&new, &old, &[3]);
    assert!(bases[0].contains(&Hash::of(&[3])), "{bases:?}");
}

fn arb_manifest() -> impl Strategy<Value = FileManifest> {
    prop::collection::vec((0u8..24, 1u32..70_000), 1..40).prop_map(|c| manifest_of(&c))
}

proptest! {
    /// issue 12: the plan fetches exactly the missing chunks not held
    /// elsewhere, each hash once, never one present or held.
    #[test]
    fn issue_12_chunk_plan_fetches_exactly_what_is_missing(
        m in arb_manifest(),
        present_bits in prop::collection::vec(any::<bool>(), 40),
        held_ids in prop::collection::hash_set(0u8..24, 0..10),
        old in prop::option::of(arb_manifest()),
    ) {
        let present = &present_bits[..m.chunks.len()];
        let held_hashes: HashSet<Hash> = held_ids.iter().map(|i| Hash::of(&[*i])).collect();
        let plan = chunk_plan(&m, present, |h| held_hashes.contains(h), old.as_ref());
        let fetched: HashSet<Hash> = plan.fetch.iter().map(|(_, w)| w.hash).collect();
        prop_assert_eq!(fetched.len(), plan.fetch.len());
        let expected: HashSet<Hash> = m.chunks.iter().enumerate()
            .filter(|(i, c)| !present[*i] && !held_hashes.contains(&c.hash))
            .map(|(_, c)| c.hash)
            .collect();
        prop_assert_eq!(fetched, expected);
        for &i in &plan.copy {
            prop_assert!(!present[i] && held_hashes.contains(&m.chunks[i].hash));
        }
        for (i, want) in &plan.fetch {
            prop_assert!(!present[*i]);
            prop_assert_eq!(want.hash, m.chunks[*i].hash);
            prop_assert!(want.bases.len() <= MAX_BASES);
            if old.is_none() { prop_assert!(want.bases.is_empty()); }
        }
        let order: Vec<usize> = plan.fetch.iter().map(|(i, _)| *i).collect();
        prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "file order");
    }

    /// issue 12: delta bases are only chunks of the old file, at most
    /// MAX_BASES, in the old file's order; one list per missing chunk.
    #[test]
    fn issue_12_delta_bases_are_few_old_chunks_in_order(
        new in arb_manifest(),
        old in arb_manifest(),
        pick in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let missing: Vec<usize> = pick.iter().map(|i| i.index(new.chunks.len())).collect();
        let bases = delta_bases(&new, &old, &missing);
        prop_assert_eq!(bases.len(), missing.len());
        let positions: HashMap<Hash, Vec<usize>> = old.chunks.iter().enumerate()
            .fold(HashMap::new(), |mut map, (i, c)| { map.entry(c.hash).or_default().push(i); map });
        for list in &bases {
            prop_assert!(list.len() <= MAX_BASES);
            prop_assert!(list.iter().all(|h| positions.contains_key(h)));
        }
    }

    /// issue 12: with chunks of real sizes (16 KiB and up), a chunk that did
    /// not move is among its own bases, however the rest changed.
    #[test]
    fn issue_12_an_unmoved_chunk_is_its_own_base(
        lens in prop::collection::vec(16_384u32..262_144, 1..30),
        changed in prop::collection::vec(any::<bool>(), 30),
    ) {
        let old = manifest_of(&lens.iter().enumerate().map(|(i, l)| (i as u8, *l)).collect::<Vec<_>>());
        // Same sizes, some chunks replaced by others: offsets do not move.
        let new = manifest_of(&lens.iter().enumerate()
            .map(|(i, l)| (if changed[i] { 100 + i as u8 } else { i as u8 }, *l))
            .collect::<Vec<_>>());
        let missing: Vec<usize> = (0..new.chunks.len()).filter(|&i| changed[i]).collect();
        for (n, list) in delta_bases(&new, &old, &missing).iter().enumerate() {
            prop_assert!(list.contains(&old.chunks[missing[n]].hash), "{:?}", list);
        }
    }

    /// issue 12: whatever the edge holds to begin with, the diff converges on
    /// holding exactly what the catalog names, asking for each object once
    /// and never for one held.
    #[test]
    fn issue_12_catalog_diff_converges_from_any_held_subset(
        courses in 1usize..4, lessons in 0usize..4, files in 0usize..3,
        keep in prop::collection::vec(any::<bool>(), 64),
    ) {
        let (catalog, origin) = origin(courses, lessons, files);
        let mut hashes: Vec<Hash> = origin.keys().copied().collect();
        hashes.sort();
        let mut held: HashMap<Hash, Object> = hashes.iter().zip(keep.iter().cycle())
            .filter(|(_, k)| **k)
            .map(|(h, _)| (*h, origin[h].clone()))
            .collect();
        let before = held.len();
        let (asked, levels) = converge(&catalog, &origin, &mut held);
        prop_assert!(levels <= 3);
        prop_assert_eq!(asked.len() + before, origin.len());
        prop_assert_eq!(held, origin);
    }
}
