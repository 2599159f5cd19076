//! The sync plan, as functions of data in and plan out: no sockets, no store
//! handle. The caller gathers what the edge holds (objects, blobs, chunks)
//! and hands it in; these say what to fetch, in what order, and from what.
//!
//! - [`metadata_wanted`]: the catalog diff, one level at a time: the
//!   courses, lessons and manifests a catalog names that are not held.
//! - [`file_jobs`]: every file of the subscribed courses, in course order.
//! - [`todo_jobs`]: of those, the blobs still to assemble, each once, with
//!   the previous version of its file attached for deltas.
//! - [`chunk_plan`]: for one file, which chunks to copy locally and which to
//!   fetch, in file order, with their delta bases.
//! - [`delta_bases`]: the old chunks a changed chunk is likely made from.

use std::collections::{HashMap, HashSet};

use catalog::store::StoreError;
use catalog::{Catalog, FileManifest, Hash, Object, Store};
use server::protocol::{ChunkWant, MAX_BASES};

/// One file to assemble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileJob {
    /// `course/lesson/path`, for logs and reports.
    pub label: String,
    pub manifest_hash: Hash,
    pub manifest: FileManifest,
    /// The previous version of this file, held locally: changed chunks can
    /// travel as deltas against its chunks.
    pub previous: Option<FileManifest>,
}

/// Where the plan looks objects up: the store, or a map in tests.
pub trait Objects {
    fn object(&self, hash: &Hash) -> Result<Option<Object>, StoreError>;
}

impl Objects for Store {
    fn object(&self, hash: &Hash) -> Result<Option<Object>, StoreError> {
        Store::object(self, hash)
    }
}

impl Objects for HashMap<Hash, Object> {
    fn object(&self, hash: &Hash) -> Result<Option<Object>, StoreError> {
        Ok(self.get(hash).cloned())
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("object {hash} should be a {expected}; run `shanlu verify` on the edge")]
    WrongKind { hash: Hash, expected: &'static str },
}

fn require(objects: &impl Objects, hash: &Hash) -> Result<Object, PlanError> {
    objects
        .object(hash)?
        .ok_or(PlanError::Store(StoreError::MissingObject { hash: *hash }))
}

/// The catalog diff, one level at a time: the courses of `catalog` not held;
/// the lessons of held courses not held; the manifests of held courses and
/// lessons not held. Each hash once, in catalog order. Called again after
/// fetching what it returned, it goes one level deeper; empty when the edge
/// holds every object the catalog names.
pub fn metadata_wanted(catalog: &Catalog, objects: &impl Objects) -> Result<Vec<Hash>, PlanError> {
    let mut wanted = Vec::new();
    let mut seen = HashSet::new();
    let mut want = |hash: Hash, held: bool, wanted: &mut Vec<Hash>| {
        if !held && seen.insert(hash) {
            wanted.push(hash);
        }
    };
    for entry in catalog.courses.values() {
        let Some(object) = objects.object(&entry.hash)? else {
            want(entry.hash, false, &mut wanted);
            continue;
        };
        let Object::Course(course) = object else {
            return Err(PlanError::WrongKind {
                hash: entry.hash,
                expected: "course",
            });
        };
        for file in &course.files {
            let held = objects.object(&file.manifest)?.is_some();
            want(file.manifest, held, &mut wanted);
        }
        for lesson_ref in &course.lessons {
            match objects.object(&lesson_ref.hash)? {
                None => want(lesson_ref.hash, false, &mut wanted),
                Some(Object::Lesson(lesson)) => {
                    for file in &lesson.files {
                        let held = objects.object(&file.manifest)?.is_some();
                        want(file.manifest, held, &mut wanted);
                    }
                }
                Some(_) => {
                    return Err(PlanError::WrongKind {
                        hash: lesson_ref.hash,
                        expected: "lesson",
                    });
                }
            }
        }
    }
    Ok(wanted)
}

/// Every file of every course `subscribed` says yes to, in course and lesson
/// order (a course's own files first). Every object must be held.
pub fn file_jobs(
    catalog: &Catalog,
    subscribed: impl Fn(&str) -> bool,
    objects: &impl Objects,
) -> Result<Vec<FileJob>, PlanError> {
    let mut jobs = Vec::new();
    for (id, entry) in &catalog.courses {
        if !subscribed(id) {
            continue;
        }
        let Object::Course(course) = require(objects, &entry.hash)? else {
            return Err(PlanError::WrongKind {
                hash: entry.hash,
                expected: "course",
            });
        };
        let mut files: Vec<(String, Hash)> = course
            .files
            .iter()
            .map(|f| (format!("{id}/{}", f.path), f.manifest))
            .collect();
        for lesson_ref in &course.lessons {
            let Object::Lesson(lesson) = require(objects, &lesson_ref.hash)? else {
                return Err(PlanError::WrongKind {
                    hash: lesson_ref.hash,
                    expected: "lesson",
                });
            };
            files.extend(
                lesson
                    .files
                    .iter()
                    .map(|f| (format!("{id}/{}/{}", lesson.id, f.path), f.manifest)),
            );
        }
        for (label, manifest_hash) in files {
            let Object::Manifest(manifest) = require(objects, &manifest_hash)? else {
                return Err(PlanError::WrongKind {
                    hash: manifest_hash,
                    expected: "manifest",
                });
            };
            jobs.push(FileJob {
                label,
                manifest_hash,
                manifest,
                previous: None,
            });
        }
    }
    Ok(jobs)
}

/// The jobs of a pass: those whose blob is `missing`, each blob once (the
/// first place it appears), with the previous version of the same place
/// attached when `previous` holds one.
pub fn todo_jobs(
    jobs: Vec<FileJob>,
    missing: &HashSet<Hash>,
    mut previous: HashMap<String, FileManifest>,
) -> Vec<FileJob> {
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for mut job in jobs {
        if !missing.contains(&job.manifest.blob) || !seen.insert(job.manifest.blob) {
            continue;
        }
        job.previous = previous
            .remove(&job.label)
            .filter(|old| old.blob != job.manifest.blob);
        todo.push(job);
    }
    todo
}

/// What to do for one file's missing chunks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChunkPlan {
    /// Chunk indices to copy from blobs the edge holds.
    pub copy: Vec<usize>,
    /// Chunk indices to fetch, in file order, with the want to send for each
    /// (a chunk repeated in the file is fetched once: the first index).
    pub fetch: Vec<(usize, ChunkWant)>,
}

/// The chunk plan of one file: of the chunks not `present`, those `held`
/// elsewhere are copied, the rest fetched in file order, each hash once,
/// with delta bases against `previous` when there is one.
pub fn chunk_plan(
    manifest: &FileManifest,
    present: &[bool],
    held: impl Fn(&Hash) -> bool,
    previous: Option<&FileManifest>,
) -> ChunkPlan {
    let mut plan = ChunkPlan::default();
    let mut asked = HashSet::new();
    let mut to_fetch = Vec::new();
    for (index, chunk) in manifest.chunks.iter().enumerate() {
        if present.get(index).copied().unwrap_or(false) {
            continue;
        }
        if held(&chunk.hash) {
            plan.copy.push(index);
        } else if asked.insert(chunk.hash) {
            to_fetch.push(index);
        }
    }
    let bases = previous.map(|old| delta_bases(manifest, old, &to_fetch));
    plan.fetch = to_fetch
        .iter()
        .enumerate()
        .map(|(n, &index)| {
            let bases = bases.as_ref().map(|b| b[n].clone()).unwrap_or_default();
            (
                index,
                ChunkWant {
                    hash: manifest.chunks[index].hash,
                    bases,
                },
            )
        })
        .collect();
    plan
}

/// For each missing chunk of `new`, the chunks of the `old` version it most
/// likely replaces: found by aligning on the nearest unchanged chunk before it,
/// so an insertion that shifts the rest of the file still finds its old bytes.
/// At most [`MAX_BASES`] per chunk, each a chunk of `old`, in file order.
pub fn delta_bases(new: &FileManifest, old: &FileManifest, missing: &[usize]) -> Vec<Vec<Hash>> {
    const MARGIN: u64 = 16 * 1024;
    const LOOK_BACK: usize = 64;
    let old_offsets: Vec<u64> = old.chunk_offsets().map(|(offset, _)| offset).collect();
    let new_offsets: Vec<u64> = new.chunk_offsets().map(|(offset, _)| offset).collect();
    let old_index: HashMap<Hash, usize> = old
        .chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash, i))
        .collect();
    missing
        .iter()
        .map(|&index| {
            let anchor = (index.saturating_sub(LOOK_BACK)..index)
                .rev()
                .find_map(|j| old_index.get(&new.chunks[j].hash).map(|&old_j| (j, old_j)));
            let start = match anchor {
                Some((j, old_j)) => old_offsets[old_j] + (new_offsets[index] - new_offsets[j]),
                None => new_offsets[index],
            };
            let (from, to) = (
                start.saturating_sub(MARGIN),
                start + u64::from(new.chunks[index].len) + MARGIN,
            );
            let first = old_offsets
                .partition_point(|&offset| offset <= from)
                .saturating_sub(1);
            (first..old.chunks.len())
                .take_while(|&i| old_offsets[i] < to)
                .filter(|&i| old_offsets[i] + u64::from(old.chunks[i].len) > from)
                .take(MAX_BASES)
                .map(|i| old.chunks[i].hash)
                .collect()
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
