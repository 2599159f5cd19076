//! Opening what the walk found without following a symlink out of the course
//! folder, and the [`Guard`] that keeps the origin's own files out of it.

use super::*;

/// The course folder, open: everything in it is opened relative to this handle.
#[derive(Debug)]
pub struct CourseRoot {
    pub(super) handle: File,
    /// The folder's canonical path, for messages.
    pub(super) path: PathBuf,
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
    pub(super) data: Option<(PathBuf, FileId)>,
    /// Folders of the origin's that may not appear in a course folder (e.g. as a bind mount).
    pub(super) folders: Vec<(FileId, PathBuf)>,
    /// The origin's own files (its key above all): refused whatever name or hard link they have.
    pub(super) files: Vec<(FileId, PathBuf)>,
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

    pub(super) fn check_folder(&self, id: FileId, path: &Path) -> Result<(), FolderError> {
        match self.folders.iter().find(|(held, _)| *held == id) {
            Some((_, origin)) => Err(FolderError::HoldsOrigin {
                path: path.to_owned(),
                origin: origin.clone(),
            }),
            None => Ok(()),
        }
    }

    pub(super) fn check_file(&self, id: FileId, path: &Path) -> Result<(), FolderError> {
        match self.files.iter().find(|(held, _)| *held == id) {
            Some((_, origin)) => Err(FolderError::OriginFile {
                path: path.to_owned(),
                origin: origin.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a course folder inside the origin's data folder or holding it.
    pub(super) fn check_root(&self, root: &CourseRoot) -> Result<(), FolderError> {
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
pub(super) fn ancestors_include(start: impl AsFd, target: FileId) -> Result<bool, Errno> {
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
pub(super) fn metadata(file: &File, path: &Path) -> Result<std::fs::Metadata, FolderError> {
    file.metadata().map_err(|cause| FolderError::Unreadable {
        path: path.to_owned(),
        cause,
    })
}

/// Flags for opening a file to read: never block on a pipe, never take a terminal.
pub(super) fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY
}

/// Opens `from_root` below the course folder with no symlink at any level.
pub(super) fn open_without_symlinks(root: &CourseRoot, from_root: &str) -> Result<File, Errno> {
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
pub(super) fn open_beneath(
    root: &CourseRoot,
    from_root: &str,
    path: &Path,
) -> Result<File, FolderError> {
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
pub(super) fn link_text(root: &CourseRoot, from_root: &str) -> Option<PathBuf> {
    rustix::fs::readlinkat(&root.handle, from_root, Vec::new())
        .ok()
        .map(|text| PathBuf::from(OsString::from_vec(text.into_bytes())))
}

/// An open that found something other than what was there a moment before
/// (a symlink, no file, another kind of file) says the folder changed.
pub(super) fn open_error(path: &Path, errno: Errno) -> FolderError {
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
