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

mod fields;
mod tags;
#[cfg(test)]
mod tests;

use crate::chunker::ChunkingProfile;
use crate::object::{Catalog, Course, FileEntry, FileManifest, Lesson, MAX_OBJECT_LEN, Object};
use crate::text::LocalizedText;

pub use fields::*;
pub use tags::check_language_tag;
#[cfg(test)]
use tags::*;

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
        "{field} {id:?} starts with '~', which names the school's own lessons on an edge; rename the folder or the id"
    )]
    Reserved { field: String, id: String },
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
            LimitError::BadLanguageTag { .. }
            | LimitError::BadTag { .. }
            | LimitError::Reserved { .. } => false,
        }
    }
}
