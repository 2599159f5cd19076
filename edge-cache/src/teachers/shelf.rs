//! The school's own lessons: what teachers uploaded, as one course the
//! classroom shows beside the origin's, marked "this school".
//!
//! The files go into the edge's store like any other (chunked with the
//! catalog's profile, so they share chunks with what the origin sent); the
//! lessons are ordinary [`Lesson`] objects, gathered in one [`Course`]
//! ([`COURSE_ID`]) inside a local [`Catalog`] object that is never signed
//! nor sent anywhere. One store record, `teachers-shelf`, lists each
//! lesson with its teacher and names the local catalog, so it changes in
//! one write after the objects are in.
//! The classroom merges that catalog's course into the one in force
//! ([`merge`]); the quota pins its files and collection keeps its objects.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use catalog::store::{ImportBatch, ImportMode, StoreError};
use catalog::{
    Catalog, CatalogEntry, ChunkingProfile, Course, FileEntry, Hash, Lesson, LessonRef,
    LocalizedText, Object, Store,
};
use serde::{Deserialize, Serialize};

/// The id of the school's own course. An origin's course ids come from
/// folder names; none starts with `~`.
pub const COURSE_ID: &str = "~school";

/// The store record listing the school's lessons.
const SHELF_META: &str = "teachers-shelf";

/// Most lessons the school's course holds.
pub const MAX_LESSONS: usize = 1000;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ShelfError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the school's lesson list in the store is damaged: {0}")]
    Damaged(String),
    #[error("no lesson {0} of yours here")]
    NotYours(String),
    #[error("a title needs 1 to {MAX_TITLE} characters")]
    BadTitle,
    #[error("the school's course holds at most {MAX_LESSONS} lessons; remove old ones first")]
    Full,
    #[error("{0}")]
    Refused(String),
}

/// One lesson of the school's course.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Who uploaded it (the name given at login).
    pub teacher: String,
    /// Unix seconds.
    pub created_at: u64,
    pub lesson: Hash,
    pub size: u64,
    /// The language of its title.
    pub lang: String,
    #[serde(default)]
    pub grade: String,
    #[serde(default)]
    pub subject: String,
    /// Proposed to the bureau for review, and where that stands.
    #[serde(default)]
    pub proposal: Option<Proposal>,
}

/// A lesson proposed to the bureau (see [`crate::teachers::propose`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Proposal {
    /// When the teacher proposed it, unix seconds.
    pub asked_at: u64,
    pub state: ProposalState,
    /// Why the last pass could not send it (it stays queued), for the teacher.
    #[serde(default)]
    pub not_sent: Option<String>,
    /// The origin could not complete it from a stick: the next have list
    /// carries all its chunks ([`crate::bundle::proposals`]).
    #[serde(default)]
    pub stick_whole: bool,
}

/// Where a proposal stands, as the edge last heard.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ProposalState {
    /// Waiting for a sync pass to carry it upstream.
    Queued,
    /// In the bureau's review queue: this lesson object was sent, with
    /// `sent_bytes` of chunks the origin lacked.
    Sent {
        at: u64,
        lesson: Hash,
        sent_bytes: u64,
    },
    /// Published by the bureau as this course.
    Approved { course: String },
    /// Declined, with the bureau's note.
    Declined { note: String },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ShelfRecord {
    /// Raised by every change.
    version: u64,
    /// The local catalog object, once there is one.
    catalog: Option<Hash>,
    lessons: Vec<Entry>,
}

fn load(store: &Store) -> Result<ShelfRecord, ShelfError> {
    match store.meta(SHELF_META)? {
        None => Ok(ShelfRecord::default()),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|err| ShelfError::Damaged(err.to_string()))
        }
    }
}

/// Held by every change to the school's course and by the edge's
/// collection: a collection walks the local catalog and then deletes what
/// it did not reach, so a lesson stored between the two would be lost.
pub static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The school's lessons, newest first.
pub fn lessons(store: &Store) -> Result<Vec<Entry>, ShelfError> {
    let mut lessons = load(store)?.lessons;
    lessons.reverse();
    Ok(lessons)
}

/// The local catalog (one course) when the school has lessons.
pub fn local_catalog(store: &Store) -> Result<Option<(Hash, Catalog)>, StoreError> {
    let Some(hash) = load(store).ok().and_then(|shelf| shelf.catalog) else {
        return Ok(None);
    };
    let Some(object) = store.object(&hash)? else {
        return Ok(None);
    };
    Ok(object.into_catalog().ok().map(|catalog| (hash, catalog)))
}

/// `catalog` with the school's course added (the classroom's view).
pub fn merge(store: &Store, mut catalog: Catalog) -> Result<Catalog, StoreError> {
    if let Some((_, local)) = local_catalog(store)? {
        catalog.courses.extend(local.courses);
    }
    Ok(catalog)
}

/// The files of the school's lessons, which the quota never evicts.
pub fn pinned_blobs(store: &Store) -> Result<HashSet<Hash>, ShelfError> {
    let mut blobs = HashSet::new();
    for entry in load(store)?.lessons {
        if let Some(lesson) = store
            .object(&entry.lesson)?
            .and_then(|o| o.into_lesson().ok())
        {
            blobs.extend(lesson.files.iter().map(|f| f.blob));
        }
    }
    Ok(blobs)
}

/// What a teacher says about a new lesson.
#[derive(Debug, Clone, Default)]
pub struct NewLesson {
    pub title: String,
    /// BCP 47 code of the title's language.
    pub lang: String,
    pub grade: String,
    pub subject: String,
}

/// A file to put in a lesson: its name in the lesson, where its bytes are
/// and its media type (already checked).
pub struct NewFile<'a> {
    pub name: String,
    pub path: &'a Path,
    pub media_type: &'static str,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check_title(title: &str) -> Result<String, ShelfError> {
    let title = title.trim();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(ShelfError::BadTitle);
    }
    Ok(title.to_owned())
}

/// Stores `files` and adds a lesson of them by `teacher`; its id.
pub fn add(
    store: &Store,
    teacher: &str,
    about: &NewLesson,
    files: &[NewFile<'_>],
    course_title: &LocalizedText,
) -> Result<String, ShelfError> {
    let title = check_title(&about.title)?;
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    if shelf.lessons.len() >= MAX_LESSONS {
        return Err(ShelfError::Full);
    }
    if files.is_empty() {
        return Err(ShelfError::Refused(
            "a lesson needs at least one file".into(),
        ));
    }
    let profile = crate::classroom::catalog_profile(store).unwrap_or(ChunkingProfile::DEFAULT);
    let mut batch = ImportBatch::new();
    let mut entries = Vec::new();
    let mut names = HashSet::new();
    for file in files {
        let mut name = file.name.clone();
        let mut n = 1;
        while !names.insert(name.clone()) {
            n += 1;
            name = match file.name.rsplit_once('.') {
                Some((stem, ending)) => format!("{stem}-{n}.{ending}"),
                None => format!("{}-{n}", file.name),
            };
        }
        let opened = std::fs::File::open(file.path)
            .map_err(|cause| StoreError::io("opening", file.path, cause))?;
        let imported = store.import_opened(
            opened,
            file.path,
            profile,
            file.media_type,
            ImportMode::Rehash,
            &mut batch,
            &mut |_| {},
        )?;
        entries.push(FileEntry {
            path: name,
            size: imported.manifest.size,
            blob: imported.manifest.blob,
            manifest: imported.manifest_hash,
        });
    }
    // An HTML folder opens at its index.html; otherwise a recording, then
    // any page, then the first file.
    let entry_path = entries
        .iter()
        .zip(files)
        .find(|(e, _)| e.path == "index.html")
        .or_else(|| {
            entries.iter().zip(files).find(|(_, f)| {
                f.media_type.starts_with("video/") || f.media_type.starts_with("audio/")
            })
        })
        .or_else(|| {
            entries
                .iter()
                .zip(files)
                .find(|(_, f)| f.media_type == "text/html")
        })
        .map_or_else(|| entries[0].path.clone(), |(e, _)| e.path.clone());
    let mut raw = [0u8; 4];
    getrandom::fill(&mut raw).map_err(|err| ShelfError::Refused(err.to_string()))?;
    let created_at = now();
    let id = format!("t{}-{}", created_at, hex::encode(raw));
    let mut title_text = LocalizedText::new();
    title_text.insert(&about.lang, &title);
    let lesson = Lesson {
        id: id.clone(),
        title: title_text,
        summary: LocalizedText::new(),
        entry: entry_path,
        files: entries,
        tags: [about.subject.trim(), about.grade.trim()]
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        languages: vec![about.lang.clone()],
        duration_secs: None,
    };
    let size = lesson.files.iter().map(|f| f.size).sum();
    let lesson_hash = batch.add_object(&Object::Lesson(lesson));
    shelf.lessons.push(Entry {
        id: id.clone(),
        teacher: teacher.to_owned(),
        created_at,
        lesson: lesson_hash,
        size,
        lang: about.lang.clone(),
        grade: about.grade.trim().to_owned(),
        subject: about.subject.trim().to_owned(),
        proposal: None,
    });
    commit(store, batch, &mut shelf, course_title)?;
    Ok(id)
}

/// Lesson `id` of `teacher`, or why not.
fn mine<'a>(
    shelf: &'a mut ShelfRecord,
    teacher: &str,
    id: &str,
) -> Result<&'a mut Entry, ShelfError> {
    shelf
        .lessons
        .iter_mut()
        .find(|e| e.id == id && e.teacher == teacher)
        .ok_or_else(|| ShelfError::NotYours(id.to_owned()))
}

/// Gives lesson `id` of `teacher` a new title. A proposal with the bureau
/// goes up again, so the bureau reviews the new title.
pub fn retitle(
    store: &Store,
    teacher: &str,
    id: &str,
    title: &str,
    course_title: &LocalizedText,
) -> Result<(), ShelfError> {
    let title = check_title(title)?;
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    let entry = mine(&mut shelf, teacher, id)?;
    let mut lesson = store
        .require_object(&entry.lesson)?
        .into_lesson()
        .map_err(|err| ShelfError::Damaged(format!("lesson {id}: {err}")))?;
    let lang = lesson
        .languages
        .first()
        .cloned()
        .unwrap_or_else(|| "zh".into());
    lesson.title = LocalizedText::new();
    lesson.title.insert(&lang, &title);
    let mut batch = ImportBatch::new();
    entry.lesson = batch.add_object(&Object::Lesson(lesson));
    if let Some(proposal) = &mut entry.proposal
        && matches!(proposal.state, ProposalState::Sent { .. })
    {
        proposal.state = ProposalState::Queued;
    }
    commit(store, batch, &mut shelf, course_title)
}

/// Proposes lesson `id` of `teacher` to the bureau: the next sync pass
/// carries it upstream. Proposing again what is queued or under review
/// changes nothing; a declined lesson may be proposed again (after a new
/// title, say); an approved one is refused.
pub fn propose(store: &Store, teacher: &str, id: &str) -> Result<(), ShelfError> {
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    let entry = mine(&mut shelf, teacher, id)?;
    match entry.proposal.as_ref().map(|p| &p.state) {
        Some(ProposalState::Queued | ProposalState::Sent { .. }) => return Ok(()),
        Some(ProposalState::Approved { course }) => {
            return Err(ShelfError::Refused(format!(
                "the bureau published this lesson already, as course {course}"
            )));
        }
        Some(ProposalState::Declined { .. }) | None => {}
    }
    entry.proposal = Some(Proposal {
        asked_at: now(),
        state: ProposalState::Queued,
        not_sent: None,
        stick_whole: false,
    });
    save(store, &shelf)
}

/// Records where the proposal of lesson `id` stands; a lesson removed
/// meanwhile is left alone.
pub fn set_proposal(store: &Store, id: &str, state: ProposalState) -> Result<(), ShelfError> {
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    let Some(entry) = shelf.lessons.iter_mut().find(|e| e.id == id) else {
        return Ok(());
    };
    let Some(proposal) = &mut entry.proposal else {
        return Ok(());
    };
    proposal.state = state;
    proposal.not_sent = None;
    proposal.stick_whole = false;
    save(store, &shelf)
}

/// Records why the queued proposal of lesson `id` could not be sent.
pub fn not_sent(store: &Store, id: &str, why: &str) -> Result<(), ShelfError> {
    not_sent_by_stick(store, id, why, false)
}

/// [`not_sent`], for a proposal a stick carried; `whole`: the next have
/// list carries all its chunks.
pub fn not_sent_by_stick(
    store: &Store,
    id: &str,
    why: &str,
    whole: bool,
) -> Result<(), ShelfError> {
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    let Some(proposal) = shelf
        .lessons
        .iter_mut()
        .find(|e| e.id == id)
        .and_then(|e| e.proposal.as_mut())
        .filter(|p| p.state == ProposalState::Queued)
    else {
        return Ok(());
    };
    proposal.not_sent = Some(why.chars().take(500).collect());
    proposal.stick_whole |= whole;
    save(store, &shelf)
}

/// The lessons proposed to the bureau, oldest first.
pub fn proposed(store: &Store) -> Result<Vec<Entry>, ShelfError> {
    Ok(load(store)?
        .lessons
        .into_iter()
        .filter(|e| e.proposal.is_some())
        .collect())
}

fn save(store: &Store, shelf: &ShelfRecord) -> Result<(), ShelfError> {
    let record = serde_json::to_vec(shelf).map_err(|err| ShelfError::Damaged(err.to_string()))?;
    store.set_meta(SHELF_META, &record)?;
    Ok(())
}

/// Removes lesson `id` of `teacher`; its files go at the next collection.
pub fn remove(
    store: &Store,
    teacher: &str,
    id: &str,
    course_title: &LocalizedText,
) -> Result<(), ShelfError> {
    let _changing = crate::lock(&LOCK);
    let mut shelf = load(store)?;
    let before = shelf.lessons.len();
    shelf
        .lessons
        .retain(|e| !(e.id == id && e.teacher == teacher));
    if shelf.lessons.len() == before {
        return Err(ShelfError::NotYours(id.to_owned()));
    }
    commit(store, ImportBatch::new(), &mut shelf, course_title)
}

/// Writes the objects, then the course and local catalog, then the records.
fn commit(
    store: &Store,
    mut batch: ImportBatch,
    shelf: &mut ShelfRecord,
    course_title: &LocalizedText,
) -> Result<(), ShelfError> {
    shelf.version += 1;
    let mut languages: Vec<String> = Vec::new();
    let mut lessons = Vec::new();
    for entry in &shelf.lessons {
        lessons.push(LessonRef {
            id: entry.id.clone(),
            hash: entry.lesson,
            size: entry.size,
        });
    }
    for entry in &shelf.lessons {
        if !languages.contains(&entry.lang) {
            languages.push(entry.lang.clone());
        }
    }
    let mut courses = BTreeMap::new();
    if !lessons.is_empty() {
        let course = Course {
            id: COURSE_ID.to_owned(),
            version: shelf.version,
            title: course_title.clone(),
            description: LocalizedText::new(),
            subject: None,
            grade: None,
            languages,
            tags: Vec::new(),
            files: Vec::new(),
            lessons,
        };
        let total_size = course.lessons.iter().map(|l| l.size).sum();
        let hash = batch.add_object(&Object::Course(course));
        courses.insert(
            COURSE_ID.to_owned(),
            CatalogEntry {
                hash,
                version: shelf.version,
                total_size,
            },
        );
    }
    let catalog = Catalog {
        sequence: shelf.version,
        published_at: now(),
        chunking: ChunkingProfile::DEFAULT,
        courses,
        expires_at: 0,
        withdrawn: BTreeMap::new(),
    };
    let catalog_hash = batch.add_object(&Object::Catalog(catalog));
    store.commit_batch(batch)?;
    shelf.catalog = Some(catalog_hash);
    save(store, shelf)
}
