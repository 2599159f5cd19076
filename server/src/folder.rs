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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use catalog::LocalizedText;
use catalog::text::guess_language;
use serde::Deserialize;

/// A file to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path inside its lesson (or the course, for assets), `/`-separated.
    pub rel: String,
    /// Where to read it (a symlink's target).
    pub path: PathBuf,
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
    #[error("{path} cannot be read: {cause}; check its permissions")]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    BadToml { path: PathBuf, message: String },
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

/// Reads and checks the course folder at `dir`.
pub fn read_course(dir: &Path) -> Result<CoursePlan, FolderError> {
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
    let root = std::fs::canonicalize(dir).map_err(|source| FolderError::Unreadable {
        path: dir.to_owned(),
        cause: source,
    })?;
    let folder_name = utf8_name(&root)?;
    let toml: CourseToml = read_toml(&root.join("course.toml"))?;

    let mut files = Vec::new();
    let mut lessons = Vec::new();
    for entry in sorted_entries(&root)? {
        let name = utf8_name(&entry)?;
        if name.starts_with('.') || name == "course.toml" {
            continue;
        }
        match classify(&root, &entry)? {
            Kind::Folder => lessons.push(read_lesson(&root, &entry, &name)?),
            Kind::File(file) => files.push(SourceFile { rel: name, ..file }),
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

    let course_toml = root.join("course.toml");
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
        dir: root,
        id,
        title,
        description: localized(toml.description).unwrap_or_default(),
        subject: toml.subject,
        grade: toml.grade.map(StringOrNumber::into_text),
        languages,
        tags: toml.tags.unwrap_or_default(),
        files,
        lessons,
    })
}

fn read_lesson(root: &Path, dir: &Path, folder_name: &str) -> Result<LessonPlan, FolderError> {
    let toml_path = dir.join("lesson.toml");
    let toml: LessonToml = read_toml(&toml_path)?;
    let mut files = Vec::new();
    collect_files(root, dir, "", &mut files)?;
    if files.is_empty() {
        return Err(FolderError::EmptyLesson {
            path: dir.to_owned(),
        });
    }
    let entry = match toml.entry {
        Some(entry) => {
            let normalized = relative_inside(&entry).ok_or_else(|| FolderError::EntryEscapes {
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
        dir: dir.to_owned(),
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

/// Adds every file under `dir` (recursively) to `out`, paths relative to the lesson.
fn collect_files(
    root: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<SourceFile>,
) -> Result<(), FolderError> {
    for entry in sorted_entries(dir)? {
        let name = utf8_name(&entry)?;
        if name.starts_with('.') || (prefix.is_empty() && name == "lesson.toml") {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        match classify(root, &entry)? {
            Kind::Folder => collect_files(root, &entry, &rel, out)?,
            Kind::File(file) => out.push(SourceFile { rel, ..file }),
        }
    }
    Ok(())
}

enum Kind {
    Folder,
    File(SourceFile),
}

/// What a folder entry is, following symlinks that stay inside `root`.
fn classify(root: &Path, path: &Path) -> Result<Kind, FolderError> {
    let link_meta = std::fs::symlink_metadata(path).map_err(|source| FolderError::Unreadable {
        path: path.to_owned(),
        cause: source,
    })?;
    let (target, meta) = if link_meta.file_type().is_symlink() {
        let target = match std::fs::canonicalize(path) {
            Ok(target) => target,
            Err(_) => {
                return Err(FolderError::BrokenSymlink {
                    path: path.to_owned(),
                });
            }
        };
        if !target.starts_with(root) {
            return Err(FolderError::SymlinkEscapes {
                path: path.to_owned(),
                target,
            });
        }
        let meta = std::fs::metadata(&target).map_err(|source| FolderError::Unreadable {
            path: path.to_owned(),
            cause: source,
        })?;
        if meta.is_dir() {
            return Err(FolderError::SymlinkedFolder {
                path: path.to_owned(),
            });
        }
        (target, meta)
    } else {
        (path.to_owned(), link_meta)
    };
    if meta.is_dir() {
        return Ok(Kind::Folder);
    }
    if !meta.is_file() {
        return Err(FolderError::NotRegular {
            path: path.to_owned(),
        });
    }
    // Opening now finds unreadable files before anything is stored.
    std::fs::File::open(&target).map_err(|source| FolderError::Unreadable {
        path: path.to_owned(),
        cause: source,
    })?;
    Ok(Kind::File(SourceFile {
        rel: String::new(),
        media_type: media_type(&target),
        path: target,
        size: meta.len(),
    }))
}

/// The entries of a folder in natural name order, via walkdir (one level).
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let mut entries = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(1)
        .follow_links(false)
    {
        let entry = entry.map_err(|err| {
            let path = err.path().unwrap_or(dir).to_owned();
            FolderError::Unreadable {
                path,
                cause: err.into(),
            }
        })?;
        entries.push(entry.into_path());
    }
    entries.sort_by(|a, b| {
        natural_cmp(
            &a.file_name().unwrap_or_default().to_string_lossy(),
            &b.file_name().unwrap_or_default().to_string_lossy(),
        )
    });
    Ok(entries)
}

fn utf8_name(path: &Path) -> Result<String, FolderError> {
    let name = path.file_name().unwrap_or(path.as_os_str());
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| FolderError::NotUtf8 {
            path: path.to_owned(),
        })
}

fn read_toml<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, FolderError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| FolderError::BadToml {
            path: path.to_owned(),
            message: "the file is not UTF-8 text".into(),
        })?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(FolderError::Unreadable {
                path: path.to_owned(),
                cause: source,
            });
        }
    };
    toml::from_str(&text).map_err(|err| FolderError::BadToml {
        path: path.to_owned(),
        message: describe_toml_error(&text, &err),
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

    #[test]
    fn media_types_cover_lesson_files() {
        assert_eq!(media_type(Path::new("a.MP4")), "video/mp4");
        assert_eq!(media_type(Path::new("a.pdf")), "application/pdf");
        assert_eq!(media_type(Path::new("a.svg")), "image/svg+xml");
        assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
    }
}
