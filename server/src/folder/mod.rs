//! Reading a course folder into a checked plan.
//!
//! ```text
//! grade3-math/
//!   course.toml        optional: id, [title], [description], subject, grade, languages, tags
//!   cover.png          files at the top are course-level assets
//!   01-counting/       every sub-folder is a lesson, in natural order (2 before 10)
//!     lesson.toml      optional: id, [title], [summary], entry, tags, languages, duration
//!     index.html  counting.mp4  img/apple.svg …
//! ```
//!
//! Everything is checked before a byte is stored: names must be UTF-8, symlinks
//! must stay inside the folder and point at files, every file must be a
//! readable regular file, the toml files must parse, lesson ids must be unique,
//! and the entry file must exist. Hidden files (names starting with `.`) are skipped.
//!
//! Nothing is opened by a path that was checked earlier (issue 11: a file
//! swapped for a symlink to the origin's key between the check and the open
//! published the key). The course folder is opened once; every folder below
//! it is opened relative to its parent's handle with `O_NOFOLLOW`, every file
//! relative to its folder's handle with `O_NOFOLLOW`, and a symlink entry with
//! `openat2(course folder, path, RESOLVE_BENEATH)`, which the kernel refuses
//! to resolve outside the course folder. What was opened is then checked by
//! its own metadata (`fstat`): a regular file, not one of the origin's own
//! files (even through a hard link). Publishing opens each file again the same
//! way ([`CoursePlan::open`]) and refuses it unless it is still the file the
//! walk saw (device, inode and size). A course folder inside the origin's data
//! folder, or holding it, is refused.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use catalog::LocalizedText;
use catalog::text::guess_language;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde::Deserialize;

mod open;
#[cfg(test)]
mod tests;
mod toml_files;
mod walk;

use open::*;
pub use open::{CourseRoot, Guard};
use toml_files::*;
pub use toml_files::{
    media_type, natural_cmp, parse_course_toml, parse_lesson_toml, title_from_name,
};
use walk::*;

/// Folders nested deeper than this below the course folder are refused.
const MAX_DEPTH: usize = 32;
/// A `course.toml` or `lesson.toml` larger than this is refused.
const MAX_TOML_BYTES: u64 = 1024 * 1024;
/// Parent folders climbed when checking whether one folder holds another.
const MAX_ANCESTORS: usize = 4096;
/// Attempts of a `RESOLVE_BENEATH` open that the kernel asks to retry
/// (`EAGAIN`: a rename elsewhere on the filesystem raced it).
const BENEATH_ATTEMPTS: usize = 8;

/// A file's identity on this machine: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A file to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside its lesson (or the course, for assets), `/`-separated.
    pub rel: String,
    /// The entry's path (the course folder's canonical path joined with
    /// `from_root`): names the file in messages and keys the record of
    /// unchanged files. Never opened by this path.
    pub path: PathBuf,
    /// `/`-separated path from the course folder; [`CoursePlan::open`] opens it relative to the folder's handle.
    pub from_root: String,
    /// The entry is a symlink (to a file inside the course folder).
    pub symlink: bool,
    /// The file the walk opened; publishing refuses any other.
    pub id: FileId,
    pub size: u64,
    pub media_type: String,
}

/// A lesson folder, checked.
#[derive(Debug, Clone)]
pub struct LessonPlan {
    pub dir: PathBuf,
    pub id: String,
    pub title: LocalizedText,
    pub summary: LocalizedText,
    pub entry: String,
    pub tags: Vec<String>,
    pub languages: Vec<String>,
    pub duration_secs: Option<u32>,
    pub files: Vec<SourceFile>,
}

/// A course folder, checked and ready to store.
#[derive(Debug, Clone)]
pub struct CoursePlan {
    pub dir: PathBuf,
    pub id: String,
    pub title: LocalizedText,
    pub description: LocalizedText,
    pub subject: Option<String>,
    pub grade: Option<String>,
    pub languages: Vec<String>,
    pub tags: Vec<String>,
    pub files: Vec<SourceFile>,
    pub lessons: Vec<LessonPlan>,
    /// The open course folder, which every file is opened relative to.
    pub root: Arc<CourseRoot>,
    guard: Guard,
}

impl CoursePlan {
    /// Every file of the course, assets first, then lesson by lesson.
    pub fn all_files(&self) -> impl Iterator<Item = &SourceFile> {
        self.files
            .iter()
            .chain(self.lessons.iter().flat_map(|lesson| lesson.files.iter()))
    }

    pub fn total_bytes(&self) -> u64 {
        self.all_files().map(|file| file.size).sum()
    }

    pub fn file_count(&self) -> usize {
        self.all_files().count()
    }
}

/// Why a course folder cannot be published. Each names the path to fix.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path} does not exist; give the path of the course folder to publish")]
    NotFound { path: PathBuf },
    #[error("{path} is not a folder; give the course folder to publish")]
    NotAFolder { path: PathBuf },
    #[error(
        "{path}: the name is not valid UTF-8; rename it (lesson names may use Chinese, Yi or Tibetan, but must be valid Unicode)"
    )]
    NotUtf8 { path: PathBuf },
    #[error(
        "{path} is a symlink that leads outside the course folder (to {target}); copy the file into the folder instead"
    )]
    SymlinkEscapes { path: PathBuf, target: PathBuf },
    #[error("{path} is a symlink to a folder; copy the folder in instead of linking it")]
    SymlinkedFolder { path: PathBuf },
    #[error("{path} is a broken symlink; remove it or fix its target")]
    BrokenSymlink { path: PathBuf },
    #[error(
        "{path} is not a regular file (a pipe, socket or device); remove it from the course folder"
    )]
    NotRegular { path: PathBuf },
    #[error("{path} cannot be read: {cause}{}", catalog::store::remedy(cause))]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    BadToml { path: PathBuf, message: String },
    #[error(
        "{path} is over a limit: the file is larger than {limit} bytes; course.toml and lesson.toml hold titles, descriptions and tags only: move long text into a file of a lesson"
    )]
    TomlTooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {message}")]
    BadValue { path: PathBuf, message: String },
    #[error("{path}: entry {entry:?} must be a relative path inside the lesson, without `..`")]
    EntryEscapes { path: PathBuf, entry: String },
    #[error("{path}: entry {entry:?} is not a file in this lesson")]
    EntryMissing { path: PathBuf, entry: String },
    #[error(
        "lessons {first} and {second} both have the id {id:?}; give one of them another `id` in its lesson.toml"
    )]
    DuplicateLessonId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{path} has no lessons: a course needs at least one lesson sub-folder with files in it"
    )]
    EmptyCourse { path: PathBuf },
    #[error("lesson folder {path} has no files; add the lesson's files or remove the folder")]
    EmptyLesson { path: PathBuf },
    #[error("{path}: id {id:?} is not usable: {reason}")]
    BadId {
        path: PathBuf,
        id: String,
        reason: &'static str,
    },
    #[error(
        "{path} changed while publishing (replaced, moved or rewritten); publish again once nothing is writing to the course folder"
    )]
    Changed { path: PathBuf },
    #[error(
        "{path} is the origin's own file {origin} (the same file on disk, e.g. a hard link); it is never published, remove it from the course folder"
    )]
    OriginFile { path: PathBuf, origin: PathBuf },
    #[error(
        "the course folder {path} is inside the origin's data folder {origin}; keep course folders outside it"
    )]
    InsideOrigin { path: PathBuf, origin: PathBuf },
    #[error(
        "{path} holds the origin's data folder {origin}; keep the origin's data folder outside course folders"
    )]
    HoldsOrigin { path: PathBuf, origin: PathBuf },
    #[error(
        "{path} is nested more than {MAX_DEPTH} folders deep below the course folder; flatten it"
    )]
    TooDeep { path: PathBuf },
    #[error(
        "{path} is a symlink, and this kernel cannot open symlinks safely (openat2 needs Linux 5.6); copy the file in instead of linking it"
    )]
    NoSafeOpen { path: PathBuf },
}

/// Reads and checks the course folder at `dir`, with no origin to guard.
pub fn read_course(dir: &Path) -> Result<CoursePlan, FolderError> {
    read_course_guarded(dir, &Guard::none())
}

/// Reads and checks the course folder at `dir`, refusing what `guard` guards.
pub fn read_course_guarded(dir: &Path, guard: &Guard) -> Result<CoursePlan, FolderError> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(FolderError::NotFound {
                path: dir.to_owned(),
            });
        }
        Err(cause) => {
            return Err(FolderError::Unreadable {
                path: dir.to_owned(),
                cause,
            });
        }
    };
    if !meta.is_dir() {
        return Err(FolderError::NotAFolder {
            path: dir.to_owned(),
        });
    }
    // The folder may be given through a symlink: resolve it once; everything
    // below is opened relative to this handle.
    let path = std::fs::canonicalize(dir).map_err(|source| FolderError::Unreadable {
        path: dir.to_owned(),
        cause: source,
    })?;
    let handle = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| open_error(&path, errno))?;
    let root = Arc::new(CourseRoot {
        handle: File::from(handle),
        path,
    });
    guard.check_root(&root)?;
    let walk = Walk { root: &root, guard };
    walk.check_folder(&root.handle, &root.path)?;
    let folder_name = utf8_name(&root.path)?;
    let course_toml = root.path.join("course.toml");
    let toml: CourseToml = walk.read_toml(&root.handle, "course.toml", "")?;

    let mut files = Vec::new();
    let mut lessons = Vec::new();
    for name in walk.sorted_names(&root.handle, &root.path)? {
        let path = root.path.join(&name);
        let name = utf8_name(&path)?;
        if name.starts_with('.') || name == "course.toml" {
            continue;
        }
        match walk.classify(&root.handle, &name, &name)? {
            Kind::Folder(handle) => lessons.push(walk.read_lesson(&handle, &name)?),
            Kind::File(file, _) => files.push(SourceFile { rel: name, ..file }),
        }
    }
    if lessons.is_empty() {
        return Err(FolderError::EmptyCourse {
            path: dir.to_owned(),
        });
    }
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for lesson in &lessons {
        if let Some(first) = seen.insert(&lesson.id, &lesson.dir) {
            return Err(FolderError::DuplicateLessonId {
                id: lesson.id.clone(),
                first: first.to_owned(),
                second: lesson.dir.clone(),
            });
        }
    }

    let id = toml.id.unwrap_or_else(|| folder_name.clone());
    check_id(&course_toml, &id)?;
    let title = localized(toml.title).unwrap_or_else(|| title_from_name(&folder_name));
    let languages = toml.languages.unwrap_or_else(|| {
        let mut all: Vec<String> = Vec::new();
        for lang in lessons.iter().flat_map(|l| l.languages.iter()).chain(
            title
                .languages()
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .iter(),
        ) {
            if !all.contains(lang) {
                all.push(lang.clone());
            }
        }
        all
    });
    Ok(CoursePlan {
        dir: root.path.clone(),
        id,
        title,
        description: localized(toml.description).unwrap_or_default(),
        subject: toml.subject,
        grade: toml.grade.map(StringOrNumber::into_text),
        languages,
        tags: toml.tags.unwrap_or_default(),
        files,
        lessons,
        root: Arc::clone(&root),
        guard: guard.clone(),
    })
}

impl CoursePlan {
    /// Opens `file` for publishing: relative to the course folder's handle, the
    /// way the walk did, and only if it is still the file the walk saw.
    pub fn open(&self, file: &SourceFile) -> Result<File, FolderError> {
        let opened = if file.symlink {
            open_beneath(&self.root, &file.from_root, &file.path)?
        } else {
            open_without_symlinks(&self.root, &file.from_root)
                .map_err(|errno| open_error(&file.path, errno))?
        };
        let meta = metadata(&opened, &file.path)?;
        let id = FileId::of(&meta);
        self.guard.check_file(id, &file.path)?;
        if !meta.is_file() || id != file.id || meta.len() != file.size {
            return Err(FolderError::Changed {
                path: file.path.clone(),
            });
        }
        Ok(opened)
    }
}
