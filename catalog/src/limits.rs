//! Limits on metadata, so that nothing a publish accepts is unservable.
//!
//! Every metadata object travels whole, as one frame of at most
//! [`MAX_OBJECT_LEN`] bytes, and an edge refuses anything larger before it
//! decodes it. A course published with a 20 MB description would therefore be
//! stored, signed and then fail on every edge. So every field and count has a
//! limit, checked at publish (by the origin, naming the file to fix):
//!
//! | what | limit |
//! |---|---|
//! | lesson or course id | [`MAX_ID_BYTES`] bytes |
//! | title, per language | [`MAX_TITLE_CHARS`] characters |
//! | description or summary, per language | [`MAX_DESCRIPTION_CHARS`] characters |
//! | languages in one text, or in a `languages` list | [`MAX_LANGUAGES`] |
//! | language tag | well-formed BCP 47, at most [`MAX_LANGUAGE_TAG_LEN`] characters |
//! | subject, grade | [`MAX_LABEL_CHARS`] characters |
//! | tags | [`MAX_TAGS`] of at most [`MAX_TAG_CHARS`] characters |
//! | files in one lesson, or course-level files | [`MAX_FILES`] |
//! | file path inside its lesson | [`MAX_PATH_BYTES`] bytes |
//! | one file | [`MAX_FILE_SIZE`] bytes |
//! | lessons in one course | [`MAX_LESSONS`] |
//! | courses in the catalog | [`MAX_COURSES`] |
//!
//! With every field at its limit each object still encodes under
//! [`MAX_OBJECT_LEN`] (the unit tests build those largest objects and measure
//! them). On top of the field limits, the encoded size of each lesson, course
//! and catalog is checked against [`OBJECT_BUDGET`], a quarter of the frame
//! limit, and each manifest against [`MANIFEST_BUDGET`]: the last word, whatever
//! a future field adds.
//!
//! Language tags are checked for BCP 47 (RFC 5646) *well-formedness*: the
//! syntax of language, extlang, script, region, variant, extension and
//! private-use subtags, and the grandfathered tags. Whether a subtag is in the
//! IANA registry is not checked; a tag like `qaa` (private use) is fine. This
//! is a small hand-written checker rather than a crate (`oxilangtag` and
//! `language-tags` do the same and more) so the I/O-light core gains no
//! dependency for ~80 lines of syntax.

use crate::chunker::ChunkingProfile;
use crate::object::{Catalog, Course, FileEntry, FileManifest, Lesson, MAX_OBJECT_LEN, Object};
use crate::text::LocalizedText;

/// Bytes of a lesson or course id (UTF-8).
pub const MAX_ID_BYTES: usize = 200;
/// Characters of a title, in each language.
pub const MAX_TITLE_CHARS: usize = 500;
/// Characters of a description (course) or summary (lesson), in each language.
pub const MAX_DESCRIPTION_CHARS: usize = 16 * 1024;
/// Languages in one localized text, and in a `languages` list.
pub const MAX_LANGUAGES: usize = 16;
/// Characters of a language tag (RFC 5646 §4.4.1: 35 holds every tag without extensions).
pub const MAX_LANGUAGE_TAG_LEN: usize = 35;
/// Characters of a subject or grade.
pub const MAX_LABEL_CHARS: usize = 200;
/// Tags of one lesson or course.
pub const MAX_TAGS: usize = 64;
/// Characters of one tag.
pub const MAX_TAG_CHARS: usize = 64;
/// Files in one lesson, and course-level files of one course.
pub const MAX_FILES: usize = 10_000;
/// Bytes of a file's path inside its lesson (UTF-8, `/`-separated).
pub const MAX_PATH_BYTES: usize = 1024;
/// Bytes of a media type (`video/mp4`).
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;
/// Bytes of one file: with the default chunking profile even a file cut
/// entirely into minimum-size chunks has a manifest under [`MANIFEST_BUDGET`].
pub const MAX_FILE_SIZE: u64 = 4 * 1024 * 1024 * 1024;
/// Lessons in one course.
pub const MAX_LESSONS: usize = 1_000;
/// Courses in the catalog.
pub const MAX_COURSES: usize = 10_000;
/// Encoded bytes of a lesson, course or catalog object.
pub const OBJECT_BUDGET: usize = MAX_OBJECT_LEN / 4;
/// Encoded bytes of a file manifest (its chunk list grows with the file).
pub const MANIFEST_BUDGET: usize = MAX_OBJECT_LEN / 4 * 3;

/// A metadata field over its limit. The message names the field, the limit
/// and what was found; the caller adds the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "{field} is {actual} {unit} long; the limit is {limit} {unit}: shorten it or move the text into a file of the lesson"
    )]
    TooLong {
        field: String,
        unit: &'static str,
        limit: usize,
        actual: usize,
    },
    #[error("{field} has {actual} {what}; the limit is {limit}: {advice}")]
    TooMany {
        field: String,
        what: &'static str,
        limit: usize,
        actual: usize,
        advice: &'static str,
    },
    #[error(
        "{field}: language tag {tag} is not a well-formed BCP 47 tag ({reason}); write a tag such as zh, ii, bo, en, zh-Hans or bo-CN"
    )]
    BadLanguageTag {
        field: String,
        /// The tag, quoted and shortened for display.
        tag: String,
        reason: String,
    },
    #[error("{field}: tag {tag} {reason}")]
    BadTag {
        field: String,
        tag: String,
        reason: &'static str,
    },
    #[error(
        "file {path} is {actual} bytes; the limit is {limit} bytes ({limit_text}): split or re-encode it"
    )]
    FileTooLarge {
        path: String,
        limit: u64,
        limit_text: String,
        actual: u64,
    },
    #[error(
        "the {kind} object encodes to {actual} bytes; the limit is {limit} bytes: split the lesson or course into smaller ones"
    )]
    ObjectTooLarge {
        kind: &'static str,
        limit: usize,
        actual: usize,
    },
}

impl LimitError {
    /// Whether the files of a folder are at fault (too many, too large, a
    /// path too long, the whole object too large) rather than a value written
    /// in `course.toml` or `lesson.toml`.
    pub fn is_about_files(&self) -> bool {
        match self {
            LimitError::FileTooLarge { .. } | LimitError::ObjectTooLarge { .. } => true,
            LimitError::TooMany { what, .. } => matches!(*what, "files" | "lessons"),
            LimitError::TooLong { field, .. } => field.starts_with(FILE_PATH),
            LimitError::BadLanguageTag { .. } | LimitError::BadTag { .. } => false,
        }
    }
}

/// How errors name a file's path.
const FILE_PATH: &str = "file path";

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

/// Checks an id's length in bytes.
pub fn check_id(field: &str, id: &str) -> Result<(), LimitError> {
    if id.len() > MAX_ID_BYTES {
        return Err(too_long(field, "bytes", MAX_ID_BYTES, id.len()));
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

/// Checks that `tag` is a well-formed BCP 47 language tag of at most
/// [`MAX_LANGUAGE_TAG_LEN`] characters; `field` names where it was found.
pub fn check_language_tag(field: &str, tag: &str) -> Result<(), LimitError> {
    well_formed_tag(tag).map_err(|reason| LimitError::BadLanguageTag {
        field: field.to_owned(),
        tag: shorten(tag),
        reason,
    })
}

/// RFC 5646 §2.1 grandfathered tags, which the langtag syntax does not cover.
const GRANDFATHERED: [&str; 26] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// RFC 5646 §2.1 syntax, case-insensitive:
///
/// ```text
/// langtag    = language ["-" script] ["-" region] *("-" variant) *("-" extension) ["-" privateuse]
/// language   = 2*3ALPHA ["-" extlang] / 4ALPHA / 5*8ALPHA      extlang = 3ALPHA *2("-" 3ALPHA)
/// script     = 4ALPHA                 region = 2ALPHA / 3DIGIT
/// variant    = 5*8alphanum / (DIGIT 3alphanum)
/// extension  = singleton 1*("-" (2*8alphanum))                  singleton = alphanum except x
/// privateuse = "x" 1*("-" (1*8alphanum))
/// ```
fn well_formed_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("it is empty".into());
    }
    let chars = tag.chars().count();
    if chars > MAX_LANGUAGE_TAG_LEN {
        return Err(format!(
            "it is {chars} characters long; the limit is {MAX_LANGUAGE_TAG_LEN}"
        ));
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{bad:?} is not allowed: only ASCII letters, digits and `-`"
        ));
    }
    if GRANDFATHERED.iter().any(|g| g.eq_ignore_ascii_case(tag)) {
        return Ok(());
    }
    let subtags: Vec<&str> = tag.split('-').collect();
    if subtags.iter().any(|s| s.is_empty()) {
        return Err("it has an empty subtag (a leading, trailing or doubled `-`)".into());
    }
    let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mut rest = subtags.as_slice();
    let private = |rest: &[&str]| -> Result<(), String> {
        // rest[0] is the `x`.
        if rest.len() < 2 {
            return Err("the private-use `x` has no subtag after it".into());
        }
        match rest[1..].iter().find(|s| s.len() > 8) {
            Some(long) => Err(format!(
                "private-use subtag {long:?} is longer than 8 characters"
            )),
            None => Ok(()),
        }
    };
    let first = rest[0];
    if first.eq_ignore_ascii_case("x") {
        return private(rest);
    }
    if !(alpha(first) && (2..=8).contains(&first.len())) {
        return Err(format!(
            "the language subtag {first:?} must be 2 to 8 letters"
        ));
    }
    rest = &rest[1..];
    if first.len() <= 3 {
        let mut extlangs = 0;
        while let Some(s) = rest.first()
            && s.len() == 3
            && alpha(s)
        {
            extlangs += 1;
            if extlangs > 3 {
                return Err("more than three extended language subtags".into());
            }
            rest = &rest[1..];
        }
    }
    if let Some(s) = rest.first()
        && s.len() == 4
        && alpha(s)
    {
        rest = &rest[1..];
    }
    if let Some(s) = rest.first()
        && ((s.len() == 2 && alpha(s)) || (s.len() == 3 && digit(s)))
    {
        rest = &rest[1..];
    }
    while let Some(s) = rest.first()
        && ((5..=8).contains(&s.len()) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit()))
    {
        rest = &rest[1..];
    }
    while let Some(s) = rest.first()
        && s.len() == 1
        && !s.eq_ignore_ascii_case("x")
    {
        let values = rest[1..]
            .iter()
            .take_while(|v| (2..=8).contains(&v.len()))
            .count();
        if values == 0 {
            return Err(format!("the extension {s:?} has no subtag after it"));
        }
        rest = &rest[1 + values..];
    }
    match rest.first() {
        None => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("x") => private(rest),
        Some(s) => Err(format!("the subtag {s:?} is out of place")),
    }
}

fn check_chars(field: &str, text: &str, max_chars: usize) -> Result<(), LimitError> {
    // Bytes bound characters from above: count only when it could matter.
    if text.len() > max_chars {
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(too_long(field, "characters", max_chars, chars));
        }
    }
    Ok(())
}

fn check_count(
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

fn too_long(field: &str, unit: &'static str, limit: usize, actual: usize) -> LimitError {
    LimitError::TooLong {
        field: field.to_owned(),
        unit,
        limit,
        actual,
    }
}

/// A value for an error message: quoted, escaped, and cut after 40 characters.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}…", &text[..end]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash;
    use crate::object::{CatalogEntry, ChunkRef, LessonRef};
    use crate::testdata::{sample_catalog, sample_course, sample_lesson, sample_manifest};
    use proptest::prelude::*;

    /// Text of `n` characters, each 4 bytes in UTF-8 (the worst case for size).
    fn wide(n: usize) -> String {
        "𝄞".repeat(n)
    }

    fn hash(n: u64) -> Hash {
        Hash::of(&n.to_le_bytes())
    }

    fn entry(n: usize, path_bytes: usize) -> FileEntry {
        let name = format!("{n:05}");
        FileEntry {
            path: format!("{name}{}", "p".repeat(path_bytes - name.len())),
            size: MAX_FILE_SIZE,
            blob: hash(n as u64),
            manifest: hash(n as u64 + 1),
        }
    }

    /// `languages` distinct well-formed tags of 35 characters.
    fn long_tags(languages: usize) -> Vec<String> {
        (0..languages)
            .map(|n| {
                format!("zh-Hans-CN-x-{:08}-abcdefgh-ijklmnop", n)
                    .chars()
                    .take(35)
                    .collect()
            })
            .collect()
    }

    fn full_text(max_chars: usize) -> LocalizedText {
        long_tags(MAX_LANGUAGES)
            .into_iter()
            .map(|lang| (lang, wide(max_chars)))
            .collect()
    }

    fn max_tags() -> Vec<String> {
        (0..MAX_TAGS)
            .map(|n| format!("{n:02}{}", wide(MAX_TAG_CHARS - 2)))
            .collect()
    }

    /// A lesson with every field at its limit.
    fn largest_lesson() -> Lesson {
        Lesson {
            id: "i".repeat(MAX_ID_BYTES),
            title: full_text(MAX_TITLE_CHARS),
            summary: full_text(MAX_DESCRIPTION_CHARS),
            entry: entry(0, MAX_PATH_BYTES).path,
            files: (0..MAX_FILES).map(|n| entry(n, MAX_PATH_BYTES)).collect(),
            tags: max_tags(),
            languages: long_tags(MAX_LANGUAGES),
            duration_secs: Some(u32::MAX),
        }
    }

    /// A course with every field at its limit.
    fn largest_course() -> Course {
        Course {
            id: "c".repeat(MAX_ID_BYTES),
            version: u64::MAX,
            title: full_text(MAX_TITLE_CHARS),
            description: full_text(MAX_DESCRIPTION_CHARS),
            subject: Some(wide(MAX_LABEL_CHARS)),
            grade: Some(wide(MAX_LABEL_CHARS)),
            languages: long_tags(MAX_LANGUAGES),
            tags: max_tags(),
            files: (0..MAX_FILES).map(|n| entry(n, MAX_PATH_BYTES)).collect(),
            lessons: (0..MAX_LESSONS)
                .map(|n| LessonRef {
                    id: format!("{n:04}{}", "l".repeat(MAX_ID_BYTES - 4)),
                    hash: hash(n as u64),
                    size: u64::MAX,
                })
                .collect(),
        }
    }

    /// The worst manifest of the largest file: every chunk at the minimum size,
    /// every length encoded as long as the maximum chunk's.
    fn largest_manifest() -> FileManifest {
        let profile = ChunkingProfile::DEFAULT;
        let chunks = worst_case_chunks(profile, MAX_FILE_SIZE);
        FileManifest {
            size: MAX_FILE_SIZE,
            blob: hash(0),
            media_type: "m".repeat(MAX_MEDIA_TYPE_BYTES),
            chunking: profile,
            chunks: (0..chunks)
                .map(|n| ChunkRef {
                    hash: hash(n),
                    len: profile.max,
                })
                .collect(),
        }
    }

    fn largest_catalog() -> Catalog {
        let mut catalog = Catalog::empty(u64::MAX);
        catalog.sequence = u64::MAX;
        for n in 0..MAX_COURSES {
            catalog.courses.insert(
                format!("{n:05}{}", "c".repeat(MAX_ID_BYTES - 5)),
                CatalogEntry {
                    hash: hash(n as u64),
                    version: u64::MAX,
                    total_size: u64::MAX,
                },
            );
        }
        catalog
    }

    /// Issue 11: with every field at its limit, every object still fits one
    /// frame, so nothing the field checks accept can be unservable.
    #[test]
    fn issue_11_largest_objects_fit_the_frame_limit() {
        let lesson = Object::from(largest_lesson()).encode().len();
        let course = Object::from(largest_course()).encode().len();
        let manifest = Object::from(largest_manifest()).encode().len();
        let catalog = Object::from(largest_catalog()).encode().len();
        for (kind, len) in [
            ("lesson", lesson),
            ("course", course),
            ("manifest", manifest),
            ("catalog", catalog),
        ] {
            assert!(len < MAX_OBJECT_LEN, "the largest {kind} is {len} bytes");
        }
        // The manifest and the catalog are under their budgets by field limits alone.
        assert!(manifest <= MANIFEST_BUDGET, "manifest {manifest}");
        assert!(catalog <= OBJECT_BUDGET, "catalog {catalog}");
        check_manifest(&largest_manifest()).expect("the largest manifest is accepted");
        check_catalog(&largest_catalog()).expect("the largest catalog is accepted");
    }

    /// The lesson and course at their field limits pass the field checks and
    /// are then refused by the encoded-size budget, which names the kind.
    #[test]
    fn encoded_budget_is_the_last_word() {
        let err = check_lesson(&largest_lesson()).expect_err("over the budget");
        assert!(
            matches!(err, LimitError::ObjectTooLarge { kind: "lesson", limit: OBJECT_BUDGET, actual } if actual > OBJECT_BUDGET),
            "{err}"
        );
        let err = check_course(&largest_course()).expect_err("over the budget");
        assert!(
            matches!(err, LimitError::ObjectTooLarge { kind: "course", .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&OBJECT_BUDGET.to_string()));
    }

    #[test]
    fn samples_are_within_limits() {
        check_lesson(&sample_lesson()).expect("sample lesson");
        check_course(&sample_course()).expect("sample course");
        check_catalog(&sample_catalog()).expect("sample catalog");
        check_manifest(&sample_manifest()).expect("sample manifest");
    }

    /// Boundary table: each limit accepts its value and refuses one more.
    #[test]
    fn issue_11_each_limit_accepts_its_value_and_refuses_one_more() {
        type Check = Box<dyn Fn(usize) -> Result<(), LimitError>>;
        type Edit<T> = Box<dyn Fn(&mut T, usize)>;
        type Case = (&'static str, Check, usize);
        let lesson_with = |edit: Edit<Lesson>| -> Check {
            Box::new(move |n| {
                let mut lesson = sample_lesson();
                edit(&mut lesson, n);
                check_lesson(&lesson)
            })
        };
        let course_with = |edit: Edit<Course>| -> Check {
            Box::new(move |n| {
                let mut course = sample_course();
                edit(&mut course, n);
                check_course(&course)
            })
        };
        let cases: Vec<Case> = vec![
            (
                "lesson id",
                lesson_with(Box::new(|l, n| l.id = "i".repeat(n))),
                MAX_ID_BYTES,
            ),
            (
                "course id",
                course_with(Box::new(|c, n| c.id = "c".repeat(n))),
                MAX_ID_BYTES,
            ),
            (
                "title",
                lesson_with(Box::new(|l, n| l.title.insert("bo", wide(n)))),
                MAX_TITLE_CHARS,
            ),
            (
                "summary",
                lesson_with(Box::new(|l, n| l.summary.insert("ii", "ꂷ".repeat(n)))),
                MAX_DESCRIPTION_CHARS,
            ),
            (
                "description",
                course_with(Box::new(|c, n| c.description.insert("zh", "数".repeat(n)))),
                MAX_DESCRIPTION_CHARS,
            ),
            (
                "subject",
                course_with(Box::new(|c, n| c.subject = Some("s".repeat(n)))),
                MAX_LABEL_CHARS,
            ),
            (
                "grade",
                course_with(Box::new(|c, n| c.grade = Some("三".repeat(n)))),
                MAX_LABEL_CHARS,
            ),
            (
                "languages in a text",
                lesson_with(Box::new(|l, n| {
                    l.title = long_tags(n).into_iter().map(|t| (t, "x".into())).collect()
                })),
                MAX_LANGUAGES,
            ),
            (
                "languages list",
                course_with(Box::new(|c, n| c.languages = long_tags(n))),
                MAX_LANGUAGES,
            ),
            (
                "tags",
                lesson_with(Box::new(|l, n| {
                    l.tags = (0..n).map(|i| i.to_string()).collect()
                })),
                MAX_TAGS,
            ),
            (
                "tag length",
                course_with(Box::new(|c, n| c.tags = vec![wide(n)])),
                MAX_TAG_CHARS,
            ),
            (
                "lesson files",
                lesson_with(Box::new(|l, n| {
                    l.files = (0..n).map(|i| entry(i, 8)).collect()
                })),
                MAX_FILES,
            ),
            (
                "course files",
                course_with(Box::new(|c, n| {
                    c.files = (0..n).map(|i| entry(i, 8)).collect()
                })),
                MAX_FILES,
            ),
            (
                "path",
                lesson_with(Box::new(|l, n| l.files[0].path = "p".repeat(n))),
                MAX_PATH_BYTES,
            ),
            (
                "entry",
                lesson_with(Box::new(|l, n| l.entry = "e".repeat(n))),
                MAX_PATH_BYTES,
            ),
            (
                "lessons",
                course_with(Box::new(|c, n| {
                    c.lessons = (0..n)
                        .map(|i| LessonRef {
                            id: i.to_string(),
                            hash: hash(i as u64),
                            size: 1,
                        })
                        .collect()
                })),
                MAX_LESSONS,
            ),
            (
                "courses",
                Box::new(|n| {
                    let mut catalog = sample_catalog();
                    catalog.courses = (0..n)
                        .map(|i| {
                            (
                                i.to_string(),
                                CatalogEntry {
                                    hash: hash(i as u64),
                                    version: 1,
                                    total_size: 1,
                                },
                            )
                        })
                        .collect();
                    check_catalog(&catalog)
                }),
                MAX_COURSES,
            ),
            (
                "media type",
                Box::new(|n| {
                    let mut manifest = sample_manifest();
                    manifest.media_type = "m".repeat(n);
                    check_manifest(&manifest)
                }),
                MAX_MEDIA_TYPE_BYTES,
            ),
        ];
        for (name, check, limit) in cases {
            if let Err(err) = check(limit) {
                panic!("{name}: {limit} refused: {err}");
            }
            let err = check(limit + 1).expect_err(name);
            let message = err.to_string();
            assert!(
                message.contains(&limit.to_string()) && message.contains(&(limit + 1).to_string()),
                "{name}: the message names neither the limit nor the size: {message}"
            );
        }
    }

    #[test]
    fn file_size_limit_names_the_path() {
        let mut lesson = sample_lesson();
        lesson.files[0].size = MAX_FILE_SIZE;
        check_lesson(&lesson).expect("at the limit");
        lesson.files[0].size = MAX_FILE_SIZE + 1;
        let message = check_lesson(&lesson).expect_err("over").to_string();
        assert!(message.contains("index.html"), "{message}");
        assert!(
            message.contains("4294967296") && message.contains("4294967297"),
            "{message}"
        );
    }

    /// Issue 11: a 20 MB description is refused, naming the field, the language and the limit.
    #[test]
    fn issue_11_twenty_megabyte_description_is_refused() {
        let mut course = sample_course();
        course
            .description
            .insert("en", "a".repeat(20 * 1024 * 1024));
        let message = check_course(&course).expect_err("refused").to_string();
        assert_eq!(
            message,
            "description in en is 20971520 characters long; the limit is 16384 characters: shorten it or move the text into a file of the lesson"
        );
    }

    #[test]
    fn issue_11_language_tags_well_formed_and_not() {
        let good = [
            "zh",
            "ii",
            "bo",
            "en",
            "ZH",
            "zh-Hans",
            "zh-Hant-TW",
            "bo-CN",
            "ii-CN",
            "en-US",
            "es-419",
            "sl-rozaj-biske",
            "de-CH-1901",
            "zh-yue-HK",
            "en-a-bbb-x-a-ccc",
            "x-whatever",
            "qaa-Qaaa-QM-x-southern",
            "i-klingon",
            "zh-min-nan",
            "en-GB-oed",
            "sr-Latn-RS",
            "hy-Latn-IT-arevela",
            "tlh",
            "haw-US",
            "abcdefgh-abcdefgh-abcdefgh-abcdefgh", // 35 characters
        ];
        for tag in good {
            assert_eq!(well_formed_tag(tag), Ok(()), "{tag}");
        }
        let bad = [
            ("", "empty"),
            ("a", "2 to 8 letters"),
            ("abcdefghi", "2 to 8 letters"),
            ("zh_CN", "'_' is not allowed"),
            ("zh\0", "'\\0' is not allowed"),
            ("zh-", "empty subtag"),
            ("-zh", "empty subtag"),
            ("zh--CN", "empty subtag"),
            ("中文", "is not allowed"),
            ("12", "2 to 8 letters"),
            ("zh-Hans-Hant", "\"Hant\" is out of place"),
            ("en-US-CN", "\"CN\" is out of place"),
            ("zh-abc-def-ghi-jkl", "more than three"),
            ("en-a", "extension \"a\" has no subtag"),
            ("en-a-b", "extension \"a\" has no subtag"),
            ("x", "private-use `x` has no subtag"),
            ("en-x-abcdefghi", "longer than 8"),
            ("abcdefgh-abcdefgh-abcdefgh-abcdefgh-", "36 characters"),
        ];
        for (tag, reason) in bad {
            let err = well_formed_tag(tag).expect_err(tag);
            assert!(err.contains(reason), "{tag:?}: {err}");
        }
        let huge = "a".repeat(10_000);
        let message = check_language_tag("title", &huge)
            .expect_err("too long")
            .to_string();
        assert!(
            message.contains("10000 characters long; the limit is 35"),
            "{message}"
        );
        assert!(
            message.len() < 300,
            "the error does not repeat a 10,000-character tag"
        );
    }

    #[test]
    fn bad_language_tags_are_refused_where_they_appear() {
        let mut lesson = sample_lesson();
        lesson.title.insert("", "x");
        let message = check_lesson(&lesson).expect_err("empty tag").to_string();
        assert!(message.starts_with("title: language tag \"\""), "{message}");
        let mut course = sample_course();
        course.languages.push("zh\0".into());
        let message = check_course(&course).expect_err("NUL").to_string();
        assert!(
            message.starts_with("languages: language tag \"zh\\0\""),
            "{message}"
        );
    }

    #[test]
    fn empty_or_control_tags_are_refused() {
        assert!(check_tags(&["math".into(), "数学".into()]).is_ok());
        assert!(matches!(
            check_tags(&[" ".into()]),
            Err(LimitError::BadTag { .. })
        ));
        assert!(matches!(
            check_tags(&["a\u{0}b".into()]),
            Err(LimitError::BadTag { .. })
        ));
    }

    fn arb_tag() -> impl Strategy<Value = String> {
        (
            "[a-zA-Z]{2,3}",
            prop::option::of("[A-Z][a-z]{3}"),
            prop::option::of(prop_oneof!["[A-Z]{2}", "[0-9]{3}"]),
            prop::option::of("[0-9][a-z0-9]{3}|[a-z]{5,6}"),
        )
            .prop_map(|(language, script, region, variant)| {
                [Some(language), script, region, variant]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("-")
            })
    }

    proptest! {
        #[test]
        fn generated_well_formed_tags_are_accepted(tag in arb_tag()) {
            prop_assert_eq!(well_formed_tag(&tag), Ok(()));
        }

        #[test]
        fn accepted_tags_are_short_ascii(tag in "\\PC{0,40}") {
            if well_formed_tag(&tag).is_ok() {
                prop_assert!(tag.len() <= MAX_LANGUAGE_TAG_LEN);
                prop_assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
    }
}
