//! Publishing a course folder: store new blobs, then commit the course and a
//! new signed catalog in one index transaction.
//!
//! Nothing is half-published: blobs and objects may be stored before the
//! commit (they are content-addressed and harmless), but the catalog in force
//! changes only in the final transaction, and only if everything before it
//! succeeded. Publishes into one origin are serialized by `publish.lock`.

use std::path::Path;

use catalog::limits::{self, LimitError};
use catalog::store::{ImportBatch, ImportMode, StoreError};
use catalog::{
    Catalog, CatalogEntry, ChunkingProfile, Course, FileEntry, Lesson, LessonRef, Object,
    SignedCatalog,
};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::folder::{self, CoursePlan, FolderError, LessonPlan, SourceFile};
use crate::origin::{Origin, now_secs};

/// Commit stored blobs to the index after this many new bytes, so a huge
/// publish interrupted late does not redo everything.
const BATCH_BYTES: u64 = 1 << 30;
const BATCH_BLOBS: usize = 4096;

/// What a publish did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishReport {
    pub course_id: String,
    pub course_version: u64,
    /// The course object.
    pub course_hash: catalog::Hash,
    /// The catalog sequence in force afterwards.
    pub sequence: u64,
    /// Nothing differed from the course already published: no new catalog.
    pub unchanged: bool,
    pub lessons: usize,
    pub files: usize,
    pub bytes: u64,
    /// Files actually read; the others were recognised as unchanged by their
    /// size, times and inode (see `ImportMode`).
    pub files_read: usize,
    /// Files whose content the origin did not hold before.
    pub new_blobs: u64,
    pub new_blob_bytes: u64,
    /// Chunks the origin's chunk index did not hold before: what edges will fetch.
    pub new_chunks: u64,
    pub new_chunk_bytes: u64,
    /// A remote publish (issue 15), counted by the administrator's machine:
    /// chunk bytes sent whole; deltas sent (encoded) and the chunks they
    /// rebuilt, and those the origin refused (then sent whole); `Bases`
    /// questions and their signature answers (encoded, both ways).
    #[serde(default)]
    pub sent_chunk_bytes: u64,
    #[serde(default)]
    pub sent_delta_bytes: u64,
    #[serde(default)]
    pub delta_chunks: u64,
    #[serde(default)]
    pub deltas_refused: u64,
    #[serde(default)]
    pub signature_bytes: u64,
    /// An origin on a bucket (issue 16): chunks written into the bucket by
    /// this publish (those it held already were not sent again).
    #[serde(default)]
    pub bucket_chunks: u64,
    #[serde(default)]
    pub bucket_chunk_bytes: u64,
}

impl PublishReport {
    /// A report of committing course `course_id` of `lessons` lessons,
    /// `files` files and `bytes` bytes: the counts filled in, the rest zero
    /// until it is committed.
    pub fn starting(course_id: &str, lessons: usize, files: usize, bytes: u64) -> PublishReport {
        PublishReport {
            course_id: course_id.to_owned(),
            course_version: 0,
            course_hash: catalog::Hash::of(b""),
            sequence: 0,
            unchanged: false,
            lessons,
            files,
            bytes,
            files_read: 0,
            new_blobs: 0,
            new_blob_bytes: 0,
            new_chunks: 0,
            new_chunk_bytes: 0,
            sent_chunk_bytes: 0,
            sent_delta_bytes: 0,
            delta_chunks: 0,
            deltas_refused: 0,
            signature_bytes: 0,
            bucket_chunks: 0,
            bucket_chunk_bytes: 0,
        }
    }

    /// [`PublishReport::starting`] for a course object built elsewhere (a
    /// remote publish, an approved proposal).
    pub fn for_course(course: &Course) -> PublishReport {
        PublishReport::starting(
            &course.id,
            course.lessons.len(),
            course.files.len(),
            course.total_size(),
        )
    }
}

/// Why a publish failed. The catalog in force is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the catalog in force does not verify with this origin's key; the store may have been tampered with, run `shanlu verify`"
    )]
    CatalogKey(#[source] catalog::sign::CatalogError),
    /// Metadata over a limit (issue 11): `path` is the toml file, folder or
    /// file to fix.
    #[error("{path} is over a limit")]
    Limit {
        path: std::path::PathBuf,
        #[source]
        source: LimitError,
    },
    #[error(transparent)]
    Origin(#[from] crate::origin::OriginError),
    #[error("taking {path}: {cause}")]
    Lock {
        path: std::path::PathBuf,
        cause: std::io::Error,
    },
}

/// Publishes the course folder `dir` into `origin`. `progress` gets the byte total and advances.
/// `mode` says whether files recorded as unchanged by an earlier publish are read again.
pub fn publish(
    origin: &Origin,
    dir: &Path,
    mode: ImportMode,
    progress: &ProgressBar,
) -> Result<PublishReport, PublishError> {
    let _lock = lock(origin)?;
    let guard = folder::Guard::origin(origin.dir(), crate::origin::PRIVATE_FILES)?;
    let plan = folder::read_course_guarded(dir, &guard)?;
    check_limits(&plan)?;
    progress.set_length(plan.total_bytes());
    let store = origin.store();
    let profile = ChunkingProfile::DEFAULT;

    let mut batch = ImportBatch::new();
    let mut report = PublishReport::starting(
        &plan.id,
        plan.lessons.len(),
        plan.file_count(),
        plan.total_bytes(),
    );
    let total_files = report.files;
    let mut done_files = 0usize;
    let mut store_files =
        |files: &[SourceFile], batch: &mut ImportBatch, report: &mut PublishReport| {
            let mut entries = Vec::with_capacity(files.len());
            for file in files {
                done_files += 1;
                progress.set_message(format!("file {done_files}/{total_files} {}", file.rel));
                // Opened relative to the course folder's handle and checked to be
                // the file the walk saw; only this handle is read (issue 11).
                let opened = plan.open(file)?;
                let imported = store.import_opened(
                    opened,
                    &file.path,
                    profile,
                    &file.media_type,
                    mode,
                    batch,
                    &mut |n| progress.inc(n),
                )?;
                if imported.was_read {
                    report.files_read += 1;
                }
                if imported.new_blob {
                    report.new_blobs += 1;
                    report.new_blob_bytes += imported.manifest.size;
                }
                report.new_chunks += imported.new_chunks;
                report.new_chunk_bytes += imported.new_chunk_bytes;
                entries.push(FileEntry {
                    path: file.rel.clone(),
                    size: imported.manifest.size,
                    blob: imported.manifest.blob,
                    manifest: imported.manifest_hash,
                });
                if batch.new_bytes() >= BATCH_BYTES || batch.new_blobs() >= BATCH_BLOBS {
                    let full = std::mem::take(batch);
                    store.commit_batch(full)?;
                }
            }
            Ok::<_, PublishError>(entries)
        };

    let course_files = store_files(&plan.files, &mut batch, &mut report)?;
    let mut lesson_refs = Vec::with_capacity(plan.lessons.len());
    for lesson in &plan.lessons {
        let files = store_files(&lesson.files, &mut batch, &mut report)?;
        let object = Object::Lesson(checked_lesson(lesson, files)?);
        let hash = batch.add_object(&object);
        lesson_refs.push(lesson_ref(&object, hash));
    }
    let course = build_course(&plan, course_files, lesson_refs, 1);
    commit_course(origin, batch, course, &plan.dir, &mut report, progress)?;
    Ok(report)
}

/// The reference a course holds to a lesson object.
pub fn lesson_ref(object: &Object, hash: catalog::Hash) -> LessonRef {
    let (id, size) = match object {
        Object::Lesson(lesson) => (lesson.id.clone(), lesson.files.iter().map(|f| f.size).sum()),
        _ => (String::new(), 0),
    };
    LessonRef { id, hash, size }
}

/// The step a local and a remote publish share (issue 15), under
/// `publish.lock` (the caller holds it): `course` (whose lessons and files
/// are in the store or in `batch`) gets its version from the catalog in
/// force; a course identical to the one published commits only `batch`;
/// otherwise the course object and the next catalog, signed, are committed
/// with `batch` in one transaction. `dir` names the folder in errors;
/// `report` gets the version, hash and sequence.
///
/// On a bucket (issue 16) the batch is committed locally first, the course's
/// lessons, manifests and chunks are written into the bucket, and then the
/// version, the course object and the catalog are tried against the bucket's
/// head, again while another process moves it in between.
/// `progress` shows the writing into a bucket (the course's bytes).
pub fn commit_course(
    origin: &Origin,
    batch: ImportBatch,
    course: Course,
    dir: &Path,
    report: &mut PublishReport,
    progress: &ProgressBar,
) -> Result<(), PublishError> {
    let Some(bucket) = origin.bucket() else {
        return commit_course_once(origin, batch, course, dir, report);
    };
    origin.store().commit_batch(batch)?;
    progress.set_position(0);
    progress.set_length(course.total_size());
    progress.set_message("writing into the bucket");
    let pushed =
        crate::bucket::push::push_content(bucket, origin.store(), &course, &|n| progress.inc(n))
            .map_err(crate::origin::OriginError::from)?;
    report.bucket_chunks = pushed.chunks;
    report.bucket_chunk_bytes = pushed.chunk_bytes;
    tracing::info!(
        course = %course.id,
        chunks = pushed.chunks,
        chunk_bytes = pushed.chunk_bytes,
        objects = pushed.objects,
        "wrote the course's content into the bucket"
    );
    origin.retrying(
        || {
            origin.follow()?;
            commit_course_once(origin, ImportBatch::new(), course.clone(), dir, report)
        },
        |err| {
            matches!(
                err,
                PublishError::Origin(crate::origin::OriginError::HeadMoved { .. })
            )
        },
    )
}

fn commit_course_once(
    origin: &Origin,
    mut batch: ImportBatch,
    mut course: Course,
    dir: &Path,
    report: &mut PublishReport,
) -> Result<(), PublishError> {
    let store = origin.store();
    let current = current_catalog(origin)?;
    let previous = current.courses.get(&course.id);
    course.version = previous.map_or(1, |p| p.version);
    if let Some(previous) = previous {
        if Object::Course(course.clone()).hash() == previous.hash {
            report.unchanged = true;
            report.course_version = previous.version;
            report.course_hash = previous.hash;
            report.sequence = current.sequence;
            // Objects are identical to what is held; blobs too (none can be new).
            store.commit_batch(batch)?;
            return Ok(());
        }
        course.version = previous.version + 1;
    } else if let Some(tombstone) = current.withdrawn.get(&course.id) {
        // Versions only go up, even across a withdrawal (issue 13).
        course.version = tombstone.last_version + 1;
    }
    limits::check_course(&course).map_err(|source| limit_error(dir, "course.toml", source))?;
    let course_object = Object::Course(course.clone());
    let course_hash = batch.add_object(&course_object);
    report.course_version = course.version;
    report.course_hash = course_hash;

    let key = origin.key();
    let total_size = course.total_size();
    let (floor, lifetime) = catalog_terms(origin)?;
    let mut sequence = 0;
    let update = |held: Option<SignedCatalog>| {
        let (mut catalog, roots) = origin
            .next_catalog(held, floor, lifetime)
            .map_err(PublishError::CatalogKey)?;
        sequence = catalog.sequence;
        // Publishing a withdrawn course again brings it back (issue 13).
        catalog.withdrawn.remove(&course.id);
        catalog.courses.insert(
            course.id.clone(),
            CatalogEntry {
                hash: course_hash,
                version: course.version,
                total_size,
            },
        );
        limits::check_catalog(&catalog).map_err(|source| PublishError::Limit {
            path: dir.to_owned(),
            source,
        })?;
        Ok::<_, PublishError>(Some(key.sign_with_roots(&catalog, roots)))
    };
    origin.commit_catalog(batch, update, PublishError::from)?;
    report.sequence = sequence;
    Ok(())
}

/// The course object of a plan, with its files and lessons (the version is
/// set by [`commit_course`]).
pub fn build_course(
    plan: &CoursePlan,
    files: Vec<FileEntry>,
    lessons: Vec<LessonRef>,
    version: u64,
) -> Course {
    Course {
        id: plan.id.clone(),
        version,
        title: plan.title.clone(),
        description: plan.description.clone(),
        subject: plan.subject.clone(),
        grade: plan.grade.clone(),
        languages: plan.languages.clone(),
        tags: plan.tags.clone(),
        files,
        lessons,
    }
}

fn build_lesson(plan: &LessonPlan, files: Vec<FileEntry>) -> Lesson {
    Lesson {
        id: plan.id.clone(),
        title: plan.title.clone(),
        summary: plan.summary.clone(),
        entry: plan.entry.clone(),
        files,
        tags: plan.tags.clone(),
        languages: plan.languages.clone(),
        duration_secs: plan.duration_secs,
    }
}

/// The lesson object, refused if it is over a limit (issue 11).
pub fn checked_lesson(plan: &LessonPlan, files: Vec<FileEntry>) -> Result<Lesson, PublishError> {
    let lesson = build_lesson(plan, files);
    limits::check_lesson(&lesson)
        .map_err(|source| limit_error(&plan.dir, "lesson.toml", source))?;
    Ok(lesson)
}

/// Refuses a course whose metadata is over a limit (issue 11) before a byte
/// is stored, by checking the lesson and course objects it will become with
/// placeholder hashes: hashes have a fixed size, and the version is taken at
/// its largest, so the objects encode at least as long as the real ones. The
/// real objects are checked again as they are built.
pub fn check_limits(plan: &CoursePlan) -> Result<(), PublishError> {
    let placeholder = catalog::Hash::from_bytes([0; 32]);
    let entries = |files: &[SourceFile]| -> Vec<FileEntry> {
        files
            .iter()
            .map(|file| FileEntry {
                path: file.rel.clone(),
                size: file.size,
                blob: placeholder,
                manifest: placeholder,
            })
            .collect()
    };
    let mut lessons = Vec::with_capacity(plan.lessons.len());
    for lesson in &plan.lessons {
        let object = checked_lesson(lesson, entries(&lesson.files))?;
        lessons.push(LessonRef {
            id: object.id,
            hash: placeholder,
            size: object.files.iter().map(|f| f.size).sum(),
        });
    }
    let course = build_course(plan, entries(&plan.files), lessons, u64::MAX);
    limits::check_course(&course).map_err(|source| limit_error(&plan.dir, "course.toml", source))
}

/// Names what to fix: the file over the size limit, the folder with too many
/// files or lessons, else the toml file the value came from.
fn limit_error(dir: &Path, toml: &str, source: LimitError) -> PublishError {
    let path = match &source {
        LimitError::FileTooLarge { path, .. } => dir.join(path),
        _ if source.is_about_files() => dir.to_owned(),
        _ => dir.join(toml),
    };
    PublishError::Limit { path, source }
}

/// The sequence floor and the catalog lifetime every new catalog is made with (issue 13).
pub(crate) fn catalog_terms(origin: &Origin) -> Result<(u64, u64), PublishError> {
    Ok((origin.sequence_floor()?, origin.catalog_lifetime()?))
}

/// The catalog in force, verified with the origin's own key.
pub fn current_catalog(origin: &Origin) -> Result<Catalog, PublishError> {
    match origin.store().signed_catalog()? {
        Some(signed) => signed
            .verify(&origin.public_key())
            .map_err(PublishError::CatalogKey),
        None => Ok(Catalog::empty(now_secs())),
    }
}

/// Holds `publish.lock` for the duration of a publish; waits for another publish to finish.
pub(crate) fn lock(origin: &Origin) -> Result<std::fs::File, PublishError> {
    let path = origin.dir().join("publish.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| PublishError::Lock {
            path: path.clone(),
            cause: source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::warn!(lock = %path.display(), "another publish into this origin is running; waiting for it to finish");
            file.lock().map_err(|source| PublishError::Lock {
                path,
                cause: source,
            })?;
            Ok(file)
        }
        Err(std::fs::TryLockError::Error(source)) => Err(PublishError::Lock {
            path,
            cause: source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a catalog in force that another key signed is refused with
    /// the signature error kept as `source()`.
    #[test]
    fn a_catalog_signed_by_another_key_keeps_its_cause_issue_12() {
        use std::error::Error as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
        Origin::init(&ours).expect("init");
        Origin::init(&theirs).expect("init");
        for name in ["origin.key", "origin.toml"] {
            std::fs::copy(theirs.join(name), ours.join(name)).expect("swap the key");
        }
        let origin = Origin::open(&ours).expect("open");
        let err = current_catalog(&origin).expect_err("signed by the old key");
        assert!(matches!(err, PublishError::CatalogKey(_)), "{err:?}");
        assert!(err.to_string().contains("shanlu verify"), "{err}");
        let source = err.source().expect("the cause is kept");
        assert!(
            matches!(
                source.downcast_ref::<catalog::sign::CatalogError>(),
                Some(catalog::sign::CatalogError::BadSignature { .. })
            ),
            "{source:?}"
        );
    }
}
