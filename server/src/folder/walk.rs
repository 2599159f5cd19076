//! One walk over a course folder: its lessons, their files and their toml files.

use super::*;

/// One walk over a course folder.
pub(super) struct Walk<'a> {
    pub(super) root: &'a CourseRoot,
    pub(super) guard: &'a Guard,
}

pub(super) enum Kind {
    Folder(File),
    /// The file, and the handle it was checked through.
    File(SourceFile, File),
}

impl Walk<'_> {
    pub(super) fn path(&self, from_root: &str) -> PathBuf {
        self.root.path.join(from_root)
    }

    pub(super) fn check_folder(&self, folder: &File, path: &Path) -> Result<(), FolderError> {
        self.guard
            .check_folder(FileId::of(&metadata(folder, path)?), path)
    }

    pub(super) fn read_lesson(
        &self,
        folder: &File,
        folder_name: &str,
    ) -> Result<LessonPlan, FolderError> {
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
    pub(super) fn collect_files(
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
    pub(super) fn classify(
        &self,
        folder: &File,
        name: &str,
        from_root: &str,
    ) -> Result<Kind, FolderError> {
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
    pub(super) fn sorted_names(
        &self,
        folder: &File,
        path: &Path,
    ) -> Result<Vec<OsString>, FolderError> {
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
    pub(super) fn read_toml<T: Default + for<'de> Deserialize<'de>>(
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

pub(super) fn utf8_name(path: &Path) -> Result<String, FolderError> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| FolderError::NotUtf8 {
            path: path.to_owned(),
        })
}
