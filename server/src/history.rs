//! The catalog's history on the origin (issue 13): withdraw a course, revert
//! one to an older version, renew the catalog's expiry, rotate the key.
//!
//! Each makes the next catalog sequence the way a publish does: under
//! `publish.lock`, from the catalog in force verified with the origin's key,
//! at a sequence no lower than the floor (`--min-sequence`), with a fresh
//! expiry, recorded in the catalog history in the transaction that puts it
//! in force. None of them stores a blob.
//!
//! Non-goals: deleting a withdrawn course's content (that is `origin gc`'s
//! job once no kept catalog names it), and revoking a leaked key (see
//! `catalog::roots`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use catalog::roots::{KeyRoot, SignedRoot};
use catalog::sign::CatalogError;
use catalog::store::{ImportBatch, StoreError};
use catalog::{Catalog, CatalogEntry, Course, Hash, Object, OriginKey, SignedCatalog, Store};
use serde::Serialize;

use crate::origin::{self, Origin, OriginError, now_secs};
use crate::publish::{self, PublishError};

/// A withdrawal's reason is shown on every edge's status page: one line.
pub const MAX_REASON_BYTES: usize = 500;

/// What any of these operations can meet on its way to the next catalog:
/// the origin, its store, the publish lock. The catalog in force is
/// unchanged. `shanlu origin renew` fails only this way.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    // Boxed: these errors are large, and rare.
    #[error(transparent)]
    Publish(Box<PublishError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    #[error(transparent)]
    Origin(Box<OriginError>),
    #[error("the origin has no catalog in force; run `shanlu origin init` on a new folder")]
    NoCatalog,
}

impl From<PublishError> for CommitError {
    fn from(err: PublishError) -> Self {
        CommitError::Publish(Box::new(err))
    }
}

impl From<StoreError> for CommitError {
    fn from(err: StoreError) -> Self {
        CommitError::Store(Box::new(err))
    }
}

impl From<OriginError> for CommitError {
    fn from(err: OriginError) -> Self {
        CommitError::Origin(Box::new(err))
    }
}

/// Why `shanlu withdraw` did not happen; the catalog in force is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawError {
    #[error(
        "course {course} is not in the catalog in force{}; `shanlu ls --data ORIGIN` lists the courses",
        known_list(.known)
    )]
    UnknownCourse { course: String, known: Vec<String> },
    #[error("course {course} was already withdrawn at {}", catalog::format::time(*.at))]
    AlreadyWithdrawn { course: String, at: u64 },
    #[error(
        "the reason is {len} bytes; keep it under {MAX_REASON_BYTES} (it is shown on every edge's status page)"
    )]
    ReasonTooLong { len: usize },
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Why `shanlu publish --revert` did not happen; the catalog in force is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error(
        "course {course} is not in the catalog in force{}; `shanlu ls --data ORIGIN` lists the courses",
        known_list(.known)
    )]
    UnknownCourse { course: String, known: Vec<String> },
    #[error(
        "the catalog history holds no version {version} of course {course}; it holds version(s) {}{}",
        versions_list(.known),
        if .known.first().is_some_and(|first| first > .version) {
            " (older versions were removed by `shanlu origin gc`: publish that one again from its folder with `shanlu publish DIR --data ORIGIN`)"
        } else {
            ""
        }
    )]
    UnknownVersion {
        course: String,
        version: u64,
        known: Vec<u64>,
    },
    #[error(
        "version {version} of course {course} was removed by `shanlu origin gc` ({missing}); publish it again from its folder with `shanlu publish DIR --data ORIGIN`"
    )]
    Collected {
        course: String,
        version: u64,
        missing: String,
    },
    #[error("course {course} is at version {version} already; nothing to revert")]
    AlreadyCurrent { course: String, version: u64 },
    #[error("catalog {sequence} in the history of {store} is damaged")]
    BadHistory {
        sequence: String,
        store: PathBuf,
        #[source]
        source: CatalogError,
    },
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Why `shanlu origin rotate-key` did not happen; the key and the catalog in
/// force are unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "the origin's key has been rotated {count} times, the most a chain of key roots carries; make a new origin and give edges its key"
    )]
    TooManyRotations { count: usize },
    /// Issue 16: every process on a bucket signs with the key in its own
    /// folder; a rotation would have to reach all of them at once.
    #[error(
        "rotating the key of an origin on a bucket is not supported yet: every origin process \
         signs with the key in its own folder, and a new key would have to reach them all at \
         once. Until it is, a leaked key means a new origin (docs/s3.md)"
    )]
    OnBucket,
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// The failures every operation shares reach each one's error through `?`.
macro_rules! commit_failures {
    ($($error:ty),*) => {$(
        impl From<StoreError> for $error {
            fn from(err: StoreError) -> Self {
                CommitError::from(err).into()
            }
        }
        impl From<PublishError> for $error {
            fn from(err: PublishError) -> Self {
                CommitError::from(err).into()
            }
        }
        impl From<OriginError> for $error {
            fn from(err: OriginError) -> Self {
                CommitError::from(err).into()
            }
        }
    )*};
}
commit_failures!(WithdrawError, RevertError, RotateError);

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it holds no course)".into()
    } else {
        format!(" (it holds {})", known.join(", "))
    }
}

fn versions_list(known: &[u64]) -> String {
    let list: Vec<String> = known.iter().map(u64::to_string).collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// What a history operation put in force.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub sequence: u64,
    pub expires_at: u64,
    /// The course touched, with its version afterwards (withdraw: the last one).
    pub course: Option<String>,
    pub version: Option<u64>,
    /// `origin rotate-key`: the new public key and its root version.
    pub new_key: Option<String>,
    pub root_version: Option<u64>,
    /// `publish --revert`: files put back together from packed chunks.
    pub files_rebuilt: u64,
}

/// Commits the next catalog: `change` edits it (after sequence, time and
/// expiry are set), `signer` signs it with the roots it returns. No blobs.
fn commit_next<E: From<CommitError> + From<StoreError>>(
    origin: &Origin,
    batch: ImportBatch,
    change: impl FnOnce(&mut Catalog) -> Result<(), E>,
    sign: impl FnOnce(&Catalog, Vec<SignedRoot>) -> SignedCatalog,
) -> Result<Catalog, E> {
    let commit = |err: CommitError| E::from(err);
    let (floor, lifetime) = publish::catalog_terms(origin).map_err(|e| commit(e.into()))?;
    let mut made = None;
    origin.commit_catalog(
        batch,
        |held: Option<SignedCatalog>| {
            let held = held.ok_or(commit(CommitError::NoCatalog))?;
            let (mut catalog, roots) = origin
                .next_catalog(Some(held), floor, lifetime)
                .map_err(|e| commit(PublishError::CatalogKey(e).into()))?;
            change(&mut catalog)?;
            catalog::limits::check_catalog(&catalog).map_err(|source| {
                commit(
                    PublishError::Limit {
                        path: origin.dir().to_owned(),
                        source,
                    }
                    .into(),
                )
            })?;
            let signed = sign(&catalog, roots);
            made = Some(catalog);
            Ok::<_, E>(Some(signed))
        },
        |err| commit(err.into()),
    )?;
    made.ok_or(commit(CommitError::NoCatalog))
}

fn report(catalog: &Catalog) -> HistoryReport {
    HistoryReport {
        sequence: catalog.sequence,
        expires_at: catalog.expires_at,
        course: None,
        version: None,
        new_key: None,
        root_version: None,
        files_rebuilt: 0,
    }
}

/// `shanlu withdraw COURSE_ID`: the next catalog without the course, with its tombstone.
pub fn withdraw(
    origin: &Origin,
    course: &str,
    reason: &str,
) -> Result<HistoryReport, WithdrawError> {
    let reason = reason.trim();
    if reason.len() > MAX_REASON_BYTES || reason.contains(['\n', '\r']) {
        return Err(WithdrawError::ReasonTooLong { len: reason.len() });
    }
    let _lock = publish::lock(origin)?;
    let key = origin.key();
    let mut last_version = 0;
    let catalog = commit_next(
        origin,
        ImportBatch::new(),
        |catalog| {
            let Some(entry) = catalog.courses.remove(course) else {
                if let Some(tombstone) = catalog.withdrawn.get(course) {
                    return Err(WithdrawError::AlreadyWithdrawn {
                        course: course.into(),
                        at: tombstone.withdrawn_at,
                    });
                }
                return Err(WithdrawError::UnknownCourse {
                    course: course.into(),
                    known: catalog.courses.keys().cloned().collect(),
                });
            };
            last_version = entry.version;
            catalog.withdrawn.insert(
                course.to_owned(),
                catalog::Tombstone {
                    withdrawn_at: catalog.published_at,
                    reason: reason.to_owned(),
                    last_version,
                },
            );
            Ok(())
        },
        |catalog, roots| key.sign_with_roots(catalog, roots),
    )?;
    tracing::info!(course, sequence = catalog.sequence, "course withdrawn");
    Ok(HistoryReport {
        course: Some(course.to_owned()),
        version: Some(last_version),
        ..report(&catalog)
    })
}

/// Every version of `course` the catalog history names, with its course object.
fn course_versions(store: &Store, course: &str) -> Result<BTreeMap<u64, Hash>, RevertError> {
    let mut versions = BTreeMap::new();
    for (sequence, bytes) in store.catalog_history()? {
        let bad = |source| RevertError::BadHistory {
            sequence: sequence.map_or_else(|| "in force".into(), |s| s.to_string()),
            store: store.root().to_owned(),
            source,
        };
        let signed = SignedCatalog::decode(&bytes).map_err(bad)?;
        // Older catalogs may be signed by a key since rotated: this is the
        // origin's own store, so they are decoded, not verified.
        let catalog = Object::decode(&signed.catalog)
            .and_then(Object::into_catalog)
            .map_err(|err| bad(CatalogError::Object(err)))?;
        if let Some(entry) = catalog.courses.get(course) {
            versions.insert(entry.version, entry.hash);
        }
    }
    Ok(versions)
}

/// Makes sure the store holds every object and whole file of `course`,
/// putting packed files back together (counted in `rebuilt`); says what is
/// gone, if anything.
fn restore_files(
    store: &Store,
    course: &Course,
    rebuilt: &mut u64,
) -> Result<Option<String>, RevertError> {
    let mut files: Vec<&catalog::FileEntry> = course.files.iter().collect();
    let mut lessons = Vec::new();
    for lesson in &course.lessons {
        match store.object(&lesson.hash)? {
            Some(object) => match object.into_lesson() {
                Ok(lesson) => lessons.push(lesson),
                Err(_) => return Ok(Some(format!("lesson {} is not a lesson", lesson.id))),
            },
            None => return Ok(Some(format!("lesson {} is gone", lesson.id))),
        }
    }
    files.extend(lessons.iter().flat_map(|l| l.files.iter()));
    for file in files {
        if store.has_blob(&file.blob)? {
            continue;
        }
        // `origin gc` keeps an older version's chunks in packs, not its
        // files: put the file back together from them (nothing is uploaded).
        let manifest = match store.object(&file.manifest)? {
            Some(Object::Manifest(manifest)) => manifest,
            _ => return Ok(Some(format!("file {} is gone", file.path))),
        };
        match store.rebuild_blob(file.manifest, manifest) {
            Ok(()) => {
                *rebuilt += 1;
                tracing::info!(path = %file.path, blob = %file.blob, "file rebuilt from packed chunks");
            }
            Err(StoreError::MissingChunk { .. }) => {
                return Ok(Some(format!("file {} is gone", file.path)));
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(None)
}

/// `shanlu publish --revert COURSE_ID@VERSION`: the next catalog with a new
/// course object, one version above the current, holding the old version's
/// files and lessons. Nothing is imported: every object it names is already
/// held, and a file `origin gc` packed is put back together from its chunks.
pub fn revert(origin: &Origin, course: &str, version: u64) -> Result<HistoryReport, RevertError> {
    let _lock = publish::lock(origin)?;
    let store = origin.store();
    let current = publish::current_catalog(origin)?;
    let versions = course_versions(store, course)?;
    let current_version = match (current.courses.get(course), current.withdrawn.get(course)) {
        (Some(entry), _) => entry.version,
        (None, Some(tombstone)) => tombstone.last_version,
        (None, None) if versions.is_empty() => {
            return Err(RevertError::UnknownCourse {
                course: course.into(),
                known: current.courses.keys().cloned().collect(),
            });
        }
        (None, None) => versions.keys().next_back().copied().unwrap_or(0),
    };
    let Some(old_hash) = versions.get(&version) else {
        return Err(RevertError::UnknownVersion {
            course: course.into(),
            version,
            known: versions.keys().copied().collect(),
        });
    };
    if current.courses.get(course).map(|e| e.hash) == Some(*old_hash) {
        return Err(RevertError::AlreadyCurrent {
            course: course.into(),
            version,
        });
    }
    let collected = |missing: String| RevertError::Collected {
        course: course.into(),
        version,
        missing,
    };
    let old = match store.object(old_hash)? {
        Some(object) => object
            .into_course()
            .map_err(|err| collected(format!("its course object is damaged: {err}")))?,
        None => return Err(collected("its course object is gone".into())),
    };
    let mut files_rebuilt = 0;
    if let Some(missing) = restore_files(store, &old, &mut files_rebuilt)? {
        return Err(collected(missing));
    }
    let course_object = Course {
        version: current_version + 1,
        ..old
    };
    let total_size = course_object.total_size();
    let new_version = course_object.version;
    let mut batch = ImportBatch::new();
    let hash = batch.add_object(&Object::Course(course_object));
    let key = origin.key();
    let catalog = commit_next::<RevertError>(
        origin,
        batch,
        |catalog| {
            catalog.withdrawn.remove(course);
            catalog.courses.insert(
                course.to_owned(),
                CatalogEntry {
                    hash,
                    version: new_version,
                    total_size,
                },
            );
            Ok(())
        },
        |catalog, roots| key.sign_with_roots(catalog, roots),
    )?;
    tracing::info!(
        course,
        from = version,
        version = new_version,
        sequence = catalog.sequence,
        "course reverted"
    );
    Ok(HistoryReport {
        course: Some(course.to_owned()),
        version: Some(new_version),
        files_rebuilt,
        ..report(&catalog)
    })
}

/// `shanlu origin renew`: the catalog in force, re-signed as the next
/// sequence with a fresh expiry; `min_sequence` first raises the floor.
pub fn renew(origin: &Origin, min_sequence: Option<u64>) -> Result<HistoryReport, CommitError> {
    let _lock = publish::lock(origin)?;
    if let Some(floor) = min_sequence {
        origin.raise_sequence_floor(floor)?;
    }
    let key = origin.key();
    let catalog = commit_next::<CommitError>(
        origin,
        ImportBatch::new(),
        |_| Ok(()),
        |catalog, roots| key.sign_with_roots(catalog, roots),
    )?;
    tracing::info!(
        sequence = catalog.sequence,
        expires = %catalog::format::time(catalog.expires_at),
        "catalog renewed"
    );
    Ok(report(&catalog))
}

/// Renews the catalog if less than half its lifetime is left (or it has no
/// expiry); `origin serve` calls this at start and then periodically.
pub fn renew_if_due(dir: &Path) -> Result<Option<HistoryReport>, CommitError> {
    let origin = Origin::open(dir)?;
    let lifetime = origin.catalog_lifetime()?;
    let Some(signed) = origin.store().signed_catalog()? else {
        return Ok(None);
    };
    let catalog = signed
        .verify(&origin.public_key())
        .map_err(PublishError::CatalogKey)?;
    let now = now_secs();
    if catalog.expires_at != 0 && catalog.expires_at.saturating_sub(now) > lifetime / 2 {
        return Ok(None);
    }
    renew(&origin, None).map(Some)
}

/// How often `origin serve` checks whether the catalog is due for renewal:
/// an eighth of the lifetime, between 1 s and an hour.
pub fn renew_check_interval(lifetime: u64) -> std::time::Duration {
    std::time::Duration::from_secs((lifetime / 8).clamp(1, 3600))
}

fn next_key_path(dir: &Path) -> PathBuf {
    dir.join("origin.key.next")
}

/// `shanlu origin rotate-key`: a new key, a root naming it signed by the old
/// one, and the catalog in force re-signed by the new key as the next
/// sequence, carrying the whole chain of roots. The old secret is destroyed
/// (the key file is replaced): a retired key can sign a rival root, so a
/// kept copy is only a risk, and edges need nothing but the chain.
///
/// Crash-safe: the new key is written to `origin.key.next` first; the
/// catalog commit is the moment of rotation; `Origin::open` finishes a
/// rotation whose catalog committed ([`finish_rotation`]) and drops one whose
/// catalog did not.
pub fn rotate_key(origin: &mut Origin) -> Result<HistoryReport, RotateError> {
    if origin.bucket().is_some() {
        return Err(RotateError::OnBucket);
    }
    let lock = publish::lock(origin)?;
    let dir = origin.dir().to_owned();
    let held = origin
        .store()
        .signed_catalog()?
        .ok_or(CommitError::NoCatalog)?;
    if held.roots.len() >= catalog::roots::MAX_ROOTS {
        return Err(RotateError::TooManyRotations {
            count: held.roots.len(),
        });
    }
    let previous = match held.roots.last() {
        Some(last) => {
            last.decode_root(held.roots.len() - 1)
                .map_err(|err| PublishError::CatalogKey(err.into()))?
                .version
        }
        None => 0,
    };
    let new_key = OriginKey::generate().map_err(RotateError::Random)?;
    let root = KeyRoot {
        version: previous + 1,
        key: new_key.public().to_bytes(),
        made_at: now_secs(),
    };
    let signed_root = origin.key().sign_root(&root);
    let next_path = next_key_path(&dir);
    match std::fs::remove_file(&next_path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(cause) => return Err(origin::io("removing", &next_path)(cause).into()),
    }
    origin::write_secret(&next_path, &hex::encode(new_key.to_bytes()))?;
    let catalog = commit_next::<RotateError>(
        origin,
        ImportBatch::new(),
        |_| Ok(()),
        |catalog, mut roots| {
            roots.push(signed_root);
            new_key.sign_with_roots(catalog, roots)
        },
    );
    let catalog = match catalog {
        Ok(catalog) => catalog,
        Err(err) => {
            let _ = std::fs::remove_file(&next_path);
            return Err(err);
        }
    };
    install_next_key(&dir, &new_key)?;
    drop(lock);
    let public = new_key.public();
    origin.set_key(new_key);
    tracing::info!(key = %public, root = root.version, sequence = catalog.sequence, "origin key rotated");
    Ok(HistoryReport {
        new_key: Some(public.to_string()),
        root_version: Some(root.version),
        ..report(&catalog)
    })
}

/// Moves `origin.key.next` over `origin.key` and names its public key in `origin.toml`.
fn install_next_key(dir: &Path, key: &OriginKey) -> Result<(), OriginError> {
    let (next, path) = (next_key_path(dir), dir.join("origin.key"));
    std::fs::rename(&next, &path).map_err(origin::io("replacing the key with", &next))?;
    let dir_file = std::fs::File::open(dir).map_err(origin::io("opening", dir))?;
    dir_file.sync_all().map_err(origin::io("syncing", dir))?;
    origin::write_public_key(dir, &key.public())
}

/// Ends a rotation that stopped half way (issue 13): if `origin.key.next`
/// exists and the catalog in force is signed by it (its last key root names
/// it), it becomes the origin key; otherwise the rotation never happened and
/// the file goes. Under the publish lock, so a rotation running beside is
/// never cut short. Returns the key now in force when it changed.
pub(crate) fn finish_rotation(dir: &Path, store: &Store) -> Result<Option<OriginKey>, OriginError> {
    let next_path = next_key_path(dir);
    if !next_path.exists() {
        return Ok(None);
    }
    let lock_path = dir.join("publish.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(origin::io("opening", &lock_path))?;
    lock.lock().map_err(origin::io("locking", &lock_path))?;
    let Some(next) = origin::load_key(&next_path)? else {
        return Ok(None);
    };
    let signer = store.signed_catalog()?.and_then(|held| {
        let last = held.roots.len().checked_sub(1)?;
        held.roots[last].decode_root(last).ok()
    });
    if signer.is_some_and(|root| root.key == next.public().to_bytes()) {
        tracing::warn!(key = %next.public(), "finishing an interrupted key rotation");
        install_next_key(dir, &next)?;
        Ok(Some(next))
    } else {
        tracing::warn!(path = %next_path.display(), "removing the key of a rotation that did not commit");
        std::fs::remove_file(&next_path).map_err(origin::io("removing", &next_path))?;
        Ok(None)
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
