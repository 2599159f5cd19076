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

/// The course folder, open: everything in it is opened relative to this handle.
#[derive(Debug)]
pub struct CourseRoot {
    handle: File,
    /// The folder's canonical path, for messages.
    path: PathBuf,
}

impl CourseRoot {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a course folder may never be inside of, hold, or publish: the
/// origin's data folder and its own files.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The origin's data folder (canonical path) and its identity.
    data: Option<(PathBuf, FileId)>,
    /// Folders of the origin's that may not appear in a course folder (e.g. as a bind mount).
    folders: Vec<(FileId, PathBuf)>,
    /// The origin's own files (its key above all): refused whatever name or hard link they have.
    files: Vec<(FileId, PathBuf)>,
}

impl Guard {
    /// Guards nothing but the escape rules every walk follows.
    pub fn none() -> Guard {
        Guard::default()
    }

    /// Guards the origin data folder `dir`: the folder and its `private`
    /// folders and files (paths relative to `dir`; missing ones are skipped).
    pub fn origin(dir: &Path, private: &[&str]) -> Result<Guard, FolderError> {
        let unreadable = |path: &Path| {
            let path = path.to_owned();
            move |cause| FolderError::Unreadable { path, cause }
        };
        let data = std::fs::canonicalize(dir).map_err(unreadable(dir))?;
        let data_id = FileId::of(&std::fs::metadata(&data).map_err(unreadable(&data))?);
        let mut guard = Guard {
            data: Some((data.clone(), data_id)),
            folders: vec![(data_id, data.clone())],
            files: Vec::new(),
        };
        for name in private {
            let path = data.join(name);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => guard.folders.push((FileId::of(&meta), path)),
                Ok(meta) => guard.files.push((FileId::of(&meta), path)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(cause) => return Err(FolderError::Unreadable { path, cause }),
            }
        }
        Ok(guard)
    }

    fn check_folder(&self, id: FileId, path: &Path) -> Result<(), FolderError> {
        match self.folders.iter().find(|(held, _)| *held == id) {
            Some((_, origin)) => Err(FolderError::HoldsOrigin {
                path: path.to_owned(),
                origin: origin.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_file(&self, id: FileId, path: &Path) -> Result<(), FolderError> {
        match self.files.iter().find(|(held, _)| *held == id) {
            Some((_, origin)) => Err(FolderError::OriginFile {
                path: path.to_owned(),
                origin: origin.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a course folder inside the origin's data folder or holding it.
    fn check_root(&self, root: &CourseRoot) -> Result<(), FolderError> {
        let Some((data, data_id)) = &self.data else {
            return Ok(());
        };
        let unreadable = |path: &Path| {
            let path = path.to_owned();
            move |cause: Errno| FolderError::Unreadable {
                path,
                cause: cause.into(),
            }
        };
        if ancestors_include(&root.handle, *data_id).map_err(unreadable(&root.path))? {
            return Err(FolderError::InsideOrigin {
                path: root.path.clone(),
                origin: data.clone(),
            });
        }
        let root_id = FileId::of(&metadata(&root.handle, &root.path)?);
        let data_handle = rustix::fs::open(
            data,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(unreadable(data))?;
        if ancestors_include(&data_handle, root_id).map_err(unreadable(data))? {
            return Err(FolderError::HoldsOrigin {
                path: root.path.clone(),
                origin: data.clone(),
            });
        }
        Ok(())
    }
}

/// Whether `start` or one of the folders above it is `target`.
fn ancestors_include(start: impl AsFd, target: FileId) -> Result<bool, Errno> {
    let dot = |at: rustix::fd::BorrowedFd<'_>, name: &str| {
        rustix::fs::openat(
            at,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let stat_id = |fd: &rustix::fd::OwnedFd| {
        rustix::fs::fstat(fd).map(|stat| FileId {
            dev: stat.st_dev,
            ino: stat.st_ino,
        })
    };
    let mut current = dot(start.as_fd(), ".")?;
    let mut id = stat_id(&current)?;
    for _ in 0..MAX_ANCESTORS {
        if id == target {
            return Ok(true);
        }
        let parent = dot(current.as_fd(), "..")?;
        let parent_id = stat_id(&parent)?;
        if parent_id == id {
            return Ok(false); // the filesystem's root is its own parent
        }
        (current, id) = (parent, parent_id);
    }
    Ok(false)
}

/// `fstat` of an open file, as an error naming `path`.
fn metadata(file: &File, path: &Path) -> Result<std::fs::Metadata, FolderError> {
    file.metadata().map_err(|cause| FolderError::Unreadable {
        path: path.to_owned(),
        cause,
    })
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CourseToml {
    id: Option<String>,
    title: Option<BTreeMap<String, String>>,
    description: Option<BTreeMap<String, String>>,
    subject: Option<String>,
    grade: Option<StringOrNumber>,
    languages: Option<Vec<String>>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LessonToml {
    id: Option<String>,
    title: Option<BTreeMap<String, String>>,
    summary: Option<BTreeMap<String, String>>,
    entry: Option<String>,
    tags: Option<Vec<String>>,
    languages: Option<Vec<String>>,
    /// Seconds, or text such as "15m", "1h20m", "90s", "12:30".
    duration: Option<StringOrNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(i64),
    Text(String),
}

impl StringOrNumber {
    fn into_text(self) -> String {
        match self {
            StringOrNumber::Number(n) => n.to_string(),
            StringOrNumber::Text(text) => text,
        }
    }
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

/// Flags for opening a file to read: never block on a pipe, never take a terminal.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

/// Opens `from_root` below the course folder with no symlink at any level.
fn open_without_symlinks(root: &CourseRoot, from_root: &str) -> Result<File, Errno> {
    let mut parts = from_root.split('/').peekable();
    let mut folder: Option<rustix::fd::OwnedFd> = None;
    while let Some(part) = parts.next() {
        let at = match &folder {
            Some(folder) => folder.as_fd(),
            None => root.handle.as_fd(),
        };
        if parts.peek().is_none() {
            return rustix::fs::openat(at, part, read_flags() | OFlags::NOFOLLOW, Mode::empty())
                .map(File::from);
        }
        folder = Some(rustix::fs::openat(
            at,
            part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    Err(Errno::NOENT)
}

/// Opens the symlink entry `from_root`, following symlinks only while they
/// stay below the course folder (the kernel checks, atomically).
fn open_beneath(root: &CourseRoot, from_root: &str, path: &Path) -> Result<File, FolderError> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let attempt = |target: &str| {
        let mut result = Err(Errno::AGAIN);
        for _ in 0..BENEATH_ATTEMPTS {
            result =
                rustix::fs::openat2(&root.handle, target, read_flags(), Mode::empty(), resolve);
            if !matches!(result, Err(Errno::AGAIN)) {
                break;
            }
        }
        result
    };
    let escapes = || FolderError::SymlinkEscapes {
        path: path.to_owned(),
        target: link_text(root, from_root).unwrap_or_else(|| PathBuf::from("?")),
    };
    let result = match attempt(from_root) {
        // RESOLVE_BENEATH refuses every absolute symlink; one naming a file in
        // the course folder by its full path is followed from the folder.
        Err(Errno::XDEV) => match link_text(root, from_root)
            .as_deref()
            .and_then(|target| target.strip_prefix(&root.path).ok())
            .and_then(Path::to_str)
        {
            Some(inside) if !inside.is_empty() => attempt(inside),
            _ => return Err(escapes()),
        },
        other => other,
    };
    match result {
        Ok(fd) => Ok(File::from(fd)),
        Err(Errno::XDEV) => Err(escapes()),
        Err(Errno::NOENT | Errno::LOOP) => Err(FolderError::BrokenSymlink {
            path: path.to_owned(),
        }),
        Err(Errno::NOSYS) => Err(FolderError::NoSafeOpen {
            path: path.to_owned(),
        }),
        Err(Errno::AGAIN) => Err(FolderError::Changed {
            path: path.to_owned(),
        }),
        Err(errno) => Err(open_error(path, errno)),
    }
}

/// What the symlink at `from_root` says (for messages, never for opening).
fn link_text(root: &CourseRoot, from_root: &str) -> Option<PathBuf> {
    rustix::fs::readlinkat(&root.handle, from_root, Vec::new())
        .ok()
        .map(|text| PathBuf::from(OsString::from_vec(text.into_bytes())))
}

/// An open that found something other than what was there a moment before
/// (a symlink, no file, another kind of file) says the folder changed.
fn open_error(path: &Path, errno: Errno) -> FolderError {
    match errno {
        Errno::LOOP | Errno::NOTDIR | Errno::NOENT => FolderError::Changed {
            path: path.to_owned(),
        },
        errno => FolderError::Unreadable {
            path: path.to_owned(),
            cause: errno.into(),
        },
    }
}

/// One walk over a course folder.
struct Walk<'a> {
    root: &'a CourseRoot,
    guard: &'a Guard,
}

enum Kind {
    Folder(File),
    /// The file, and the handle it was checked through.
    File(SourceFile, File),
}

impl Walk<'_> {
    fn path(&self, from_root: &str) -> PathBuf {
        self.root.path.join(from_root)
    }

    fn check_folder(&self, folder: &File, path: &Path) -> Result<(), FolderError> {
        self.guard
            .check_folder(FileId::of(&metadata(folder, path)?), path)
    }

    fn read_lesson(&self, folder: &File, folder_name: &str) -> Result<LessonPlan, FolderError> {
        let dir = self.path(folder_name);
        let toml_path = dir.join("lesson.toml");
        let toml: LessonToml = self.read_toml(folder, "lesson.toml", folder_name)?;
        let mut files = Vec::new();
        self.collect_files(folder, folder_name, "", &mut files)?;
        if files.is_empty() {
            return Err(FolderError::EmptyLesson { path: dir });
        }
        let entry = match toml.entry {
            Some(entry) => {
                let normalized =
                    relative_inside(&entry).ok_or_else(|| FolderError::EntryEscapes {
                        path: toml_path.clone(),
                        entry: entry.clone(),
                    })?;
                if !files.iter().any(|f| f.rel == normalized) {
                    return Err(FolderError::EntryMissing {
                        path: toml_path,
                        entry,
                    });
                }
                normalized
            }
            None => infer_entry(&files),
        };
        let id = toml.id.unwrap_or_else(|| folder_name.to_owned());
        check_id(&toml_path, &id)?;
        let title = localized(toml.title).unwrap_or_else(|| title_from_name(folder_name));
        let languages = toml
            .languages
            .unwrap_or_else(|| title.languages().map(str::to_owned).collect());
        let duration_secs = match toml.duration {
            None => None,
            Some(value) => {
                let text = value.into_text();
                Some(parse_duration(&text).ok_or_else(|| FolderError::BadValue {
                    path: toml_path.clone(),
                    message: format!("duration {text:?} is not a duration; write seconds (600) or text like \"15m\", \"1h20m\", \"12:30\""),
                })?)
            }
        };
        Ok(LessonPlan {
            dir,
            id,
            title,
            summary: localized(toml.summary).unwrap_or_default(),
            entry,
            tags: toml.tags.unwrap_or_default(),
            languages,
            duration_secs,
            files,
        })
    }

    /// Adds every file under `folder` (recursively) to `out`, paths relative
    /// to the lesson (`prefix`), `folder` being `from_root` below the course folder.
    fn collect_files(
        &self,
        folder: &File,
        from_root: &str,
        prefix: &str,
        out: &mut Vec<SourceFile>,
    ) -> Result<(), FolderError> {
        let folder_path = self.path(from_root);
        if from_root.split('/').count() > MAX_DEPTH {
            return Err(FolderError::TooDeep { path: folder_path });
        }
        for name in self.sorted_names(folder, &folder_path)? {
            let name = utf8_name(&folder_path.join(&name))?;
            if name.starts_with('.') || (prefix.is_empty() && name == "lesson.toml") {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let entry_from_root = format!("{from_root}/{name}");
            match self.classify(folder, &name, &entry_from_root)? {
                Kind::Folder(handle) => self.collect_files(&handle, &entry_from_root, &rel, out)?,
                Kind::File(file, _) => out.push(SourceFile { rel, ..file }),
            }
        }
        Ok(())
    }

    /// Opens the entry `name` of `folder` (which is `from_root` below the
    /// course folder) and says what it is, by the opened file's own metadata.
    fn classify(&self, folder: &File, name: &str, from_root: &str) -> Result<Kind, FolderError> {
        let path = self.path(from_root);
        let stat = rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|errno| open_error(&path, errno))?;
        let (file, symlink) = match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                let handle = rustix::fs::openat(
                    folder,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|errno| open_error(&path, errno))?;
                let handle = File::from(handle);
                self.check_folder(&handle, &path)?;
                return Ok(Kind::Folder(handle));
            }
            FileType::Symlink => (open_beneath(self.root, from_root, &path)?, true),
            FileType::RegularFile => {
                let handle = rustix::fs::openat(
                    folder,
                    name,
                    read_flags() | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .map_err(|errno| open_error(&path, errno))?;
                (File::from(handle), false)
            }
            _ => return Err(FolderError::NotRegular { path }),
        };
        let meta = metadata(&file, &path)?;
        if meta.is_dir() {
            // Only a symlink gets here with a folder: a plain folder was opened above.
            return Err(FolderError::SymlinkedFolder { path });
        }
        if !meta.is_file() {
            return Err(FolderError::NotRegular { path });
        }
        let id = FileId::of(&meta);
        self.guard.check_file(id, &path)?;
        let media_type = if symlink {
            // Served under the entry's name, typed as before by the name it links to.
            link_text(self.root, from_root)
                .map(|target| media_type(&target))
                .unwrap_or_else(|| media_type(&path))
        } else {
            media_type(&path)
        };
        let source = SourceFile {
            rel: String::new(),
            path,
            from_root: from_root.to_owned(),
            symlink,
            id,
            size: meta.len(),
            media_type,
        };
        Ok(Kind::File(source, file))
    }

    /// The entry names of an open folder in natural order.
    fn sorted_names(&self, folder: &File, path: &Path) -> Result<Vec<OsString>, FolderError> {
        let unreadable = |errno: Errno| FolderError::Unreadable {
            path: path.to_owned(),
            cause: errno.into(),
        };
        let mut entries = rustix::fs::Dir::read_from(folder).map_err(unreadable)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(unreadable)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        names.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
        Ok(names)
    }

    /// Reads the toml file `name` of `folder` (`folder_from_root` below the
    /// course folder) the way every file is opened; a missing file is the default.
    fn read_toml<T: Default + for<'de> Deserialize<'de>>(
        &self,
        folder: &File,
        name: &str,
        folder_from_root: &str,
    ) -> Result<T, FolderError> {
        let from_root = if folder_from_root.is_empty() {
            name.to_owned()
        } else {
            format!("{folder_from_root}/{name}")
        };
        let path = self.path(&from_root);
        match rustix::fs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(Errno::NOENT) => return Ok(T::default()),
            Err(errno) => return Err(open_error(&path, errno)),
        }
        let opened = match self.classify(folder, name, &from_root)? {
            Kind::File(_, opened) => opened,
            Kind::Folder(_) => return Err(FolderError::NotRegular { path }),
        };
        let mut bytes = Vec::new();
        (&opened)
            .take(MAX_TOML_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|cause| FolderError::Unreadable {
                path: path.clone(),
                cause,
            })?;
        if bytes.len() as u64 > MAX_TOML_BYTES {
            return Err(FolderError::TomlTooLarge {
                path,
                limit: MAX_TOML_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| FolderError::BadToml {
            path: path.clone(),
            message: "the file is not UTF-8 text".into(),
        })?;
        toml::from_str(&text).map_err(|err| FolderError::BadToml {
            path,
            message: describe_toml_error(&text, &err),
        })
    }
}

fn utf8_name(path: &Path) -> Result<String, FolderError> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| FolderError::NotUtf8 {
            path: path.to_owned(),
        })
}

/// A toml error as "line L, column C: message".
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before
                .rsplit('\n')
                .next()
                .map(|l| l.chars().count())
                .unwrap_or(0)
                + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn localized(map: Option<BTreeMap<String, String>>) -> Option<LocalizedText> {
    map.filter(|m| !m.is_empty())
        .map(|m| m.into_iter().collect())
}

/// "03-加法_练习" → "加法 练习" in Chinese.
pub fn title_from_name(name: &str) -> LocalizedText {
    let trimmed = name.trim_start_matches(|c: char| c.is_ascii_digit());
    let trimmed = if trimmed.len() < name.len() {
        trimmed.trim_start_matches(['-', '_', '.', ' '])
    } else {
        trimmed
    };
    let base = if trimmed.is_empty() { name } else { trimmed };
    let title: String = base
        .chars()
        .map(|c| if c == '-' || c == '_' { ' ' } else { c })
        .collect();
    LocalizedText::single(guess_language(&title), title)
}

/// `index.html`, else the first video, else the first page, else the first file.
fn infer_entry(files: &[SourceFile]) -> String {
    let pick = files
        .iter()
        .find(|f| f.rel == "index.html" || f.rel == "index.htm")
        .or_else(|| files.iter().find(|f| f.media_type.starts_with("video/")))
        .or_else(|| files.iter().find(|f| f.media_type == "text/html"))
        .or_else(|| files.first());
    pick.map(|f| f.rel.clone()).unwrap_or_default()
}

/// Normalizes a relative path; `None` if it is absolute or leaves its folder.
fn relative_inside(path: &str) -> Option<String> {
    if path.contains('\\') {
        return None;
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn check_id(path: &Path, id: &str) -> Result<(), FolderError> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 200 {
        Some("it is longer than 200 bytes")
    } else if id.contains(['/', '\\']) || id == "." || id == ".." {
        Some("it may not contain / or \\ or be . or ..")
    } else if id.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FolderError::BadId {
            path: path.to_owned(),
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The media type shanlu serves a file with.
pub fn media_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let fixed = match ext.as_str() {
        "mp4" | "m4v" => Some("video/mp4"),
        "m4a" => Some("audio/mp4"),
        "webm" => Some("video/webm"),
        "ogv" => Some("video/ogg"),
        "oga" | "ogg" | "opus" => Some("audio/ogg"),
        "mp3" => Some("audio/mpeg"),
        "vtt" => Some("text/vtt"),
        "srt" => Some("application/x-subrip"),
        "html" | "htm" => Some("text/html"),
        "md" => Some("text/markdown"),
        "txt" => Some("text/plain"),
        "woff2" => Some("font/woff2"),
        _ => None,
    };
    match fixed {
        Some(kind) => kind.to_owned(),
        None => mime_guess::from_ext(&ext)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

/// "600", "15m", "1h20m", "90s", "12:30" → seconds.
fn parse_duration(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u32>() {
        return Some(secs);
    }
    if text.contains(':') {
        let mut total: u32 = 0;
        for part in text.split(':') {
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<u32>().ok()?)?;
        }
        return Some(total);
    }
    let (mut total, mut number) = (0u32, String::new());
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.parse::<u32>().ok()?.checked_mul(unit)?)?;
        number.clear();
    }
    number.is_empty().then_some(total)
}

/// Compares names so that digit runs compare as numbers: "2-x" < "10-x".
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let a_len = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let b_len = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (a_num, b_num) = (
                    a[..a_len].trim_start_matches('0'),
                    b[..b_len].trim_start_matches('0'),
                );
                let order = a_num
                    .len()
                    .cmp(&b_num.len())
                    .then_with(|| a_num.cmp(b_num))
                    .then_with(|| a_len.cmp(&b_len));
                if order != Ordering::Equal {
                    return order;
                }
                a = &a[a_len..];
                b = &b[b_len..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

/// `course.toml` text read as [`read_course`] reads it, for the fuzz targets in
/// `tools/fuzz`: the id it sets, checked, or the message `publish` would print.
#[doc(hidden)]
pub fn parse_course_toml(text: &str) -> Result<Option<String>, String> {
    let toml: CourseToml = toml::from_str(text).map_err(|err| describe_toml_error(text, &err))?;
    let path = Path::new("course.toml");
    let checked = toml.id.map(|id| check_id(path, &id).map(|()| id));
    checked.transpose().map_err(|err| err.to_string())
}

/// `lesson.toml` text likewise: the entry as normalized and the duration in seconds.
#[doc(hidden)]
pub fn parse_lesson_toml(text: &str) -> Result<(Option<String>, Option<u32>), String> {
    let toml: LessonToml = toml::from_str(text).map_err(|err| describe_toml_error(text, &err))?;
    let entry = toml
        .entry
        .map(|entry| relative_inside(&entry).ok_or(entry))
        .transpose()?;
    let duration = toml.duration.map(StringOrNumber::into_text);
    let seconds = duration
        .map(|text| parse_duration(&text).ok_or(text))
        .transpose()?;
    Ok((entry, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut names = vec!["10-b", "2-a", "01-z", "a", "第二课"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["01-z", "2-a", "10-b", "a", "第二课"]);
    }

    #[test]
    fn titles_are_inferred_from_folder_names_in_their_script() {
        assert_eq!(
            title_from_name("01-counting-to-ten").get(&["en"]),
            Some("counting to ten")
        );
        assert_eq!(title_from_name("03_加法").exact("zh"), Some("加法"));
        assert_eq!(title_from_name("02-ꆈꌠꁱꂷ").exact("ii"), Some("ꆈꌠꁱꂷ"));
        assert_eq!(title_from_name("2024").get(&[]), Some("2024"));
    }

    #[test]
    fn durations_parse_in_every_documented_form() {
        assert_eq!(parse_duration("600"), Some(600));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("1h20m"), Some(4800));
        assert_eq!(parse_duration("12:30"), Some(750));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn entry_paths_must_stay_inside_the_lesson() {
        assert_eq!(relative_inside("./img/a.png").as_deref(), Some("img/a.png"));
        assert_eq!(relative_inside("../x.html"), None);
        assert_eq!(relative_inside("/etc/passwd"), None);
        assert_eq!(relative_inside("a\\..\\b"), None);
    }

    /// A course folder in a fresh temporary folder: `rel → text` files.
    fn course(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("course");
        for (rel, text) in files {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        (tmp, root)
    }

    fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
        std::os::unix::fs::symlink(target, link).expect("symlink");
    }

    fn read_all(plan: &CoursePlan, file: &SourceFile) -> Vec<u8> {
        let mut bytes = Vec::new();
        plan.open(file)
            .expect("open")
            .read_to_end(&mut bytes)
            .expect("read");
        bytes
    }

    fn lesson_file<'a>(plan: &'a CoursePlan, rel: &str) -> &'a SourceFile {
        plan.all_files()
            .find(|file| file.rel == rel)
            .unwrap_or_else(|| panic!("{rel} is in the plan"))
    }

    #[test]
    fn issue_11_symlinks_inside_the_folder_are_read_as_their_targets() {
        let (_tmp, root) = course(&[("01-a/index.html", "<p>shared</p>"), ("02-b/x.txt", "x")]);
        symlink("../01-a/index.html", root.join("02-b/index.html"));
        // An absolute link naming a file inside the folder works too.
        let absolute = std::fs::canonicalize(root.join("01-a/index.html")).expect("canonical");
        symlink(&absolute, root.join("02-b/page.html"));
        let plan = read_course(&root).expect("a folder with inside links is accepted");
        let linked = plan.lessons[1]
            .files
            .iter()
            .find(|f| f.rel == "index.html")
            .expect("linked file");
        assert!(linked.symlink);
        assert_eq!(linked.media_type, "text/html");
        assert_eq!(read_all(&plan, linked), b"<p>shared</p>");
        let page = plan.lessons[1]
            .files
            .iter()
            .find(|f| f.rel == "page.html")
            .expect("absolute link");
        assert_eq!(read_all(&plan, page), b"<p>shared</p>");
    }

    #[test]
    fn issue_11_symlinks_leaving_the_folder_are_refused() {
        let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>")]);
        std::fs::write(tmp.path().join("secret"), "the origin key").expect("write");
        for target in [
            PathBuf::from("../../secret"),
            tmp.path().join("secret"),
            PathBuf::from("/etc/hostname"),
        ] {
            let link = root.join("01-a/leak.txt");
            let _ = std::fs::remove_file(&link);
            symlink(&target, &link);
            let err = read_course(&root).expect_err("an escaping link is refused");
            assert!(
                matches!(&err, FolderError::SymlinkEscapes { path, .. } if path.ends_with("01-a/leak.txt")),
                "{target:?}: {err}"
            );
        }
        // A link to a link that leaves is refused just the same.
        std::fs::remove_file(root.join("01-a/leak.txt")).expect("rm");
        symlink("../../secret", root.join("01-a/hop"));
        symlink("hop", root.join("01-a/leak.txt"));
        assert!(matches!(
            read_course(&root),
            Err(FolderError::SymlinkEscapes { .. })
        ));
    }

    #[test]
    fn issue_11_a_toml_file_may_not_leave_the_folder_either() {
        let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>")]);
        std::fs::write(tmp.path().join("elsewhere.toml"), "subject = \"x\"\n").expect("write");
        symlink("../elsewhere.toml", root.join("course.toml"));
        let err = read_course(&root).expect_err("refused");
        assert!(
            matches!(&err, FolderError::SymlinkEscapes { path, .. } if path.ends_with("course.toml")),
            "{err}"
        );
    }

    #[test]
    fn issue_11_symlinked_folders_are_refused() {
        let (_tmp, root) = course(&[("01-a/img/a.svg", "<svg/>"), ("01-a/index.html", "a")]);
        symlink("img", root.join("01-a/pictures"));
        let err = read_course(&root).expect_err("refused");
        assert!(
            matches!(&err, FolderError::SymlinkedFolder { path } if path.ends_with("01-a/pictures")),
            "{err}"
        );
        std::fs::remove_file(root.join("01-a/pictures")).expect("rm");
        symlink("01-a", root.join("02-b"));
        assert!(matches!(
            read_course(&root),
            Err(FolderError::SymlinkedFolder { .. })
        ));
    }

    #[test]
    fn issue_11_pipes_are_refused_without_blocking() {
        let (_tmp, root) = course(&[("01-a/index.html", "a")]);
        let fifo = root.join("01-a/pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::RUSR | Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        let err = read_course(&root).expect_err("refused");
        assert!(
            matches!(&err, FolderError::NotRegular { path } if path.ends_with("01-a/pipe")),
            "{err}"
        );
        // Through a symlink, the pipe is opened without blocking and refused by its metadata.
        std::fs::rename(&fifo, root.join("01-a/.pipe")).expect("hide");
        symlink(".pipe", root.join("01-a/pipe"));
        assert!(matches!(
            read_course(&root),
            Err(FolderError::NotRegular { .. })
        ));
    }

    #[test]
    fn issue_11_a_file_swapped_after_the_walk_is_refused_at_open() {
        let (tmp, root) = course(&[("01-a/index.html", "<p>a</p>"), ("01-a/notes.txt", "notes")]);
        std::fs::write(tmp.path().join("secret"), "SECRET").expect("write");
        let plan = read_course(&root).expect("read");
        let notes = lesson_file(&plan, "notes.txt").clone();
        assert_eq!(read_all(&plan, &notes), b"notes");

        // A symlink put in its place is not followed.
        let path = root.join("01-a/notes.txt");
        std::fs::remove_file(&path).expect("rm");
        symlink(tmp.path().join("secret"), &path);
        let err = plan
            .open(&notes)
            .expect_err("a swapped-in symlink is refused");
        assert!(
            matches!(&err, FolderError::Changed { path } if path.ends_with("01-a/notes.txt")),
            "{err}"
        );
        assert!(err.to_string().contains("publish again"), "{err}");

        // Another file with the same bytes is still another file (the first
        // is kept aside so that its inode number cannot be reused).
        std::fs::remove_file(&path).expect("rm");
        std::fs::write(&path, "notes").expect("write");
        let plan = read_course(&root).expect("read again");
        let notes = lesson_file(&plan, "notes.txt").clone();
        std::fs::rename(&path, root.join("01-a/.kept")).expect("keep");
        std::fs::write(&path, "notes").expect("write");
        assert!(matches!(
            plan.open(&notes),
            Err(FolderError::Changed { .. })
        ));

        // A folder on the way swapped for a symlink to a copy is refused too.
        let plan = read_course(&root).expect("read again");
        let notes = lesson_file(&plan, "notes.txt").clone();
        let copy = tmp.path().join("copy");
        std::fs::create_dir_all(&copy).expect("mkdir");
        std::fs::write(copy.join("notes.txt"), "notes").expect("write");
        std::fs::rename(root.join("01-a"), tmp.path().join("moved")).expect("move");
        symlink(&copy, root.join("01-a"));
        assert!(matches!(
            plan.open(&notes),
            Err(FolderError::Changed { .. })
        ));
    }

    #[test]
    fn issue_11_a_linked_file_retargeted_after_the_walk_is_refused_at_open() {
        let (tmp, root) = course(&[
            ("01-a/index.html", "<p>a</p>"),
            ("01-a/other.html", "<p>b</p>"),
        ]);
        std::fs::write(tmp.path().join("secret"), "SECRET").expect("write");
        symlink("index.html", root.join("01-a/link.html"));
        let plan = read_course(&root).expect("read");
        let link = lesson_file(&plan, "link.html").clone();
        assert_eq!(read_all(&plan, &link), b"<p>a</p>");
        // Retargeted inside the folder: another file, refused.
        std::fs::remove_file(root.join("01-a/link.html")).expect("rm");
        symlink("other.html", root.join("01-a/link.html"));
        assert!(matches!(plan.open(&link), Err(FolderError::Changed { .. })));
        // Retargeted outside: the kernel refuses to leave the folder.
        std::fs::remove_file(root.join("01-a/link.html")).expect("rm");
        symlink("../../secret", root.join("01-a/link.html"));
        assert!(matches!(
            plan.open(&link),
            Err(FolderError::SymlinkEscapes { .. })
        ));
    }

    /// A stand-in for an origin data folder with a key, beside or around the course.
    fn origin_at(dir: &Path) -> Guard {
        std::fs::create_dir_all(dir.join("tls")).expect("mkdir");
        std::fs::write(dir.join("origin.key"), "00".repeat(32)).expect("write");
        std::fs::write(dir.join("tls/key.der"), "tls key").expect("write");
        Guard::origin(dir, &["origin.key", "tls", "tls/key.der"]).expect("guard")
    }

    #[test]
    fn issue_11_a_hard_link_to_the_origin_key_is_refused() {
        let (tmp, root) = course(&[("01-a/index.html", "a")]);
        let guard = origin_at(&tmp.path().join("origin"));
        read_course_guarded(&root, &guard).expect("a course beside the origin is fine");
        std::fs::hard_link(
            tmp.path().join("origin/origin.key"),
            root.join("01-a/key.txt"),
        )
        .expect("hard link");
        let err = read_course_guarded(&root, &guard).expect_err("refused");
        assert!(
            matches!(&err, FolderError::OriginFile { path, origin } if path.ends_with("01-a/key.txt") && origin.ends_with("origin.key")),
            "{err}"
        );
        // As the course.toml too.
        std::fs::remove_file(root.join("01-a/key.txt")).expect("rm");
        std::fs::hard_link(
            tmp.path().join("origin/tls/key.der"),
            root.join("course.toml"),
        )
        .expect("hard link");
        assert!(matches!(
            read_course_guarded(&root, &guard),
            Err(FolderError::OriginFile { .. })
        ));
    }

    #[test]
    fn issue_11_a_course_folder_inside_or_around_the_origin_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("origin");
        let guard = origin_at(&data);
        let write = |path: PathBuf| {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, "a").expect("write");
        };

        let inside = data.join("courses/maths");
        write(inside.join("01-a/index.html"));
        let err = read_course_guarded(&inside, &guard).expect_err("inside");
        assert!(matches!(err, FolderError::InsideOrigin { .. }), "{err}");
        // The data folder itself, reached through a symlink, is inside too.
        symlink(&data, tmp.path().join("alias"));
        assert!(matches!(
            read_course_guarded(&tmp.path().join("alias"), &guard),
            Err(FolderError::InsideOrigin { .. })
        ));

        // A course folder that holds the data folder, hidden or not.
        let around = tmp.path().join("around");
        write(around.join("01-a/index.html"));
        let guard = origin_at(&around.join(".origin"));
        let err = read_course_guarded(&around, &guard).expect_err("around");
        assert!(matches!(err, FolderError::HoldsOrigin { .. }), "{err}");
        assert!(err.to_string().contains(".origin"), "{err}");
    }

    #[test]
    fn issue_11_folders_nest_only_so_deep() {
        let deep = format!("01-a/{}f.txt", "d/".repeat(MAX_DEPTH + 1));
        let (_tmp, root) = course(&[(deep.as_str(), "x")]);
        assert!(matches!(
            read_course(&root),
            Err(FolderError::TooDeep { .. })
        ));
    }

    #[test]
    fn media_types_cover_lesson_files() {
        assert_eq!(media_type(Path::new("a.MP4")), "video/mp4");
        assert_eq!(media_type(Path::new("a.pdf")), "application/pdf");
        assert_eq!(media_type(Path::new("a.svg")), "image/svg+xml");
        assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
    }
}
