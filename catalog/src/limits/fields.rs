//! The checks of each object and field: lessons, courses, the catalog,
//! manifests, texts, tags, file lists, paths, ids and encoded sizes.

use super::*;

/// How errors name a file's path.
pub(super) const FILE_PATH: &str = "file path";

/// Checks a lesson object: every field, then its encoded size.
pub fn check_lesson(lesson: &Lesson) -> Result<(), LimitError> {
    check_id("lesson id", &lesson.id)?;
    check_text("title", &lesson.title, MAX_TITLE_CHARS)?;
    check_text("summary", &lesson.summary, MAX_DESCRIPTION_CHARS)?;
    check_path("entry", &lesson.entry)?;
    check_files("the lesson", &lesson.files)?;
    check_tags(&lesson.tags)?;
    check_languages("languages", &lesson.languages)?;
    check_encoded(&Object::Lesson(lesson.clone()), OBJECT_BUDGET)
}

/// Checks a course object: every field, then its encoded size.
pub fn check_course(course: &Course) -> Result<(), LimitError> {
    check_id("course id", &course.id)?;
    check_text("title", &course.title, MAX_TITLE_CHARS)?;
    check_text("description", &course.description, MAX_DESCRIPTION_CHARS)?;
    for (field, label) in [("subject", &course.subject), ("grade", &course.grade)] {
        if let Some(label) = label {
            check_chars(field, label, MAX_LABEL_CHARS)?;
        }
    }
    check_languages("languages", &course.languages)?;
    check_tags(&course.tags)?;
    check_files("the course folder (course-level files)", &course.files)?;
    check_count(
        "the course",
        "lessons",
        course.lessons.len(),
        MAX_LESSONS,
        "split it into several courses",
    )?;
    for lesson in &course.lessons {
        check_id("lesson id", &lesson.id)?;
    }
    check_encoded(&Object::Course(course.clone()), OBJECT_BUDGET)
}

/// Checks a catalog object: the number of courses, their ids, its encoded size.
pub fn check_catalog(catalog: &Catalog) -> Result<(), LimitError> {
    check_count(
        "the catalog",
        "courses",
        catalog.courses.len(),
        MAX_COURSES,
        "withdraw courses that are no longer taught before publishing new ones",
    )?;
    for id in catalog.courses.keys() {
        check_id("course id", id)?;
    }
    check_encoded(&Object::Catalog(catalog.clone()), OBJECT_BUDGET)
}

/// Checks a file manifest: the file size, the media type and the encoded size.
pub fn check_manifest(manifest: &FileManifest) -> Result<(), LimitError> {
    check_file_size(&manifest.blob.to_string(), manifest.size)?;
    if manifest.media_type.len() > MAX_MEDIA_TYPE_BYTES {
        return Err(too_long(
            "media type",
            "bytes",
            MAX_MEDIA_TYPE_BYTES,
            manifest.media_type.len(),
        ));
    }
    check_encoded(&Object::Manifest(manifest.clone()), MANIFEST_BUDGET)
}

/// Checks one localized text: at most [`MAX_LANGUAGES`] languages, each tag
/// well-formed, each text at most `max_chars` characters.
pub fn check_text(field: &str, text: &LocalizedText, max_chars: usize) -> Result<(), LimitError> {
    check_count(
        field,
        "languages",
        text.languages().count(),
        MAX_LANGUAGES,
        "keep the languages the schools read",
    )?;
    for (lang, value) in text.iter() {
        check_language_tag(field, lang)?;
        check_chars(&format!("{field} in {lang}"), value, max_chars)?;
    }
    Ok(())
}

/// Checks a `languages` list: its length and every tag.
pub fn check_languages(field: &str, languages: &[String]) -> Result<(), LimitError> {
    check_count(
        field,
        "entries",
        languages.len(),
        MAX_LANGUAGES,
        "keep the languages the schools read",
    )?;
    languages
        .iter()
        .try_for_each(|tag| check_language_tag(field, tag))
}

/// Checks the tags of a lesson or course: how many, how long, and that each
/// is printable text.
pub fn check_tags(tags: &[String]) -> Result<(), LimitError> {
    check_count(
        "tags",
        "entries",
        tags.len(),
        MAX_TAGS,
        "keep the tags teachers search by",
    )?;
    for tag in tags {
        let reason = if tag.trim().is_empty() {
            Some("is empty; remove it")
        } else if tag.chars().any(char::is_control) {
            Some("contains control characters; remove them")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(LimitError::BadTag {
                field: "tags".into(),
                tag: shorten(tag),
                reason,
            });
        }
        check_chars(&format!("tag {}", shorten(tag)), tag, MAX_TAG_CHARS)?;
    }
    Ok(())
}

/// Checks a file list: how many, each path's length, each file's size.
pub fn check_files(owner: &str, files: &[FileEntry]) -> Result<(), LimitError> {
    check_count(
        owner,
        "files",
        files.len(),
        MAX_FILES,
        "split the lesson into several lessons, or pack many small files into an archive",
    )?;
    for file in files {
        check_path(FILE_PATH, &file.path)?;
        check_file_size(&file.path, file.size)?;
    }
    Ok(())
}

/// Checks a file's path inside its lesson.
pub fn check_path(field: &str, path: &str) -> Result<(), LimitError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(too_long(
            &format!("{field} {}", shorten(path)),
            "bytes",
            MAX_PATH_BYTES,
            path.len(),
        ));
    }
    Ok(())
}

/// Checks the size of one file, named by `path`.
pub fn check_file_size(path: &str, size: u64) -> Result<(), LimitError> {
    if size > MAX_FILE_SIZE {
        return Err(LimitError::FileTooLarge {
            path: path.to_owned(),
            limit: MAX_FILE_SIZE,
            limit_text: crate::format::bytes(MAX_FILE_SIZE),
            actual: size,
        });
    }
    Ok(())
}

/// Checks an id's length in bytes, and that it does not start with `~`
/// (kept for the edge's own course of teachers' lessons, issue 17).
pub fn check_id(field: &str, id: &str) -> Result<(), LimitError> {
    if id.len() > MAX_ID_BYTES {
        return Err(too_long(field, "bytes", MAX_ID_BYTES, id.len()));
    }
    if id.starts_with('~') {
        return Err(LimitError::Reserved {
            field: field.to_owned(),
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// Checks the encoded size of an object against `budget`.
pub fn check_encoded(object: &Object, budget: usize) -> Result<(), LimitError> {
    let actual = object.encode().len();
    if actual > budget {
        return Err(LimitError::ObjectTooLarge {
            kind: object.kind(),
            limit: budget,
            actual,
        });
    }
    Ok(())
}

/// The largest manifest a file of `size` bytes can have with `profile`:
/// every chunk but the last is at least `profile.min` bytes long.
pub fn worst_case_chunks(profile: ChunkingProfile, size: u64) -> u64 {
    size / u64::from(profile.min.max(1)) + 1
}

pub(super) fn check_chars(field: &str, text: &str, max_chars: usize) -> Result<(), LimitError> {
    // Bytes bound characters from above: count only when it could matter.
    if text.len() > max_chars {
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(too_long(field, "characters", max_chars, chars));
        }
    }
    Ok(())
}

pub(super) fn check_count(
    field: &str,
    what: &'static str,
    actual: usize,
    limit: usize,
    advice: &'static str,
) -> Result<(), LimitError> {
    if actual > limit {
        return Err(LimitError::TooMany {
            field: field.to_owned(),
            what,
            limit,
            actual,
            advice,
        });
    }
    Ok(())
}

pub(super) fn too_long(field: &str, unit: &'static str, limit: usize, actual: usize) -> LimitError {
    LimitError::TooLong {
        field: field.to_owned(),
        unit,
        limit,
        actual,
    }
}

/// A value for an error message: quoted, escaped, and cut after 40 characters.
pub(super) fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}
