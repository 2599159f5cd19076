//! Teachers' lessons proposed to the bureau (issue 17): the review queue.
//!
//! An edge sends a lesson a teacher proposed within its sync pass, like an
//! administrator's remote publish: the files' manifests first
//! ([`ProposeRequest::Plan`], answered with the chunks the origin lacks),
//! then those chunks only ([`ProposeRequest::Chunks`]), then the lesson
//! ([`ProposeRequest::Submit`]), which the origin checks (every file whole)
//! and files in `DIR/review/queue.json`. The edge asks where its proposals
//! stand at every pass ([`ProposeRequest::Status`]) and shows the teacher.
//!
//! An administrator previews a waiting lesson on the dashboard, edits its
//! title, course id, grade and subject, and approves it ([`approve`]: the
//! lesson is published as a course of its own, signed by the origin, so
//! every school subscribed to it receives it at its next sync) or declines
//! it with a note the teacher sees ([`decline`]).
//!
//! Bounded: at most [`MAX_WAITING_PER_EDGE`] waiting proposals per edge and
//! [`MAX_ENTRIES`] entries in all (the oldest decided ones are forgotten
//! first); a lesson's files are within the catalog's limits. The waiting
//! lessons' files are kept by `origin gc` ([`waiting_lessons`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use catalog::store::ImportBatch;
use catalog::{Course, Hash, Lesson, LessonRef, LocalizedText, Object, limits};
use serde::{Deserialize, Serialize};

use crate::admin::{AdminResponse, Desk, FileChunks};
use crate::protocol::Response;
use crate::serve::State;

/// Most waiting proposals of one edge.
pub const MAX_WAITING_PER_EDGE: usize = 20;
/// Most waiting proposals of one edge and every edge below it together
/// (a county edge's schools).
pub const MAX_WAITING_BELOW: usize = 400;
/// Most entries the queue keeps (waiting and decided).
pub const MAX_ENTRIES: usize = 1000;
/// Longest note to a teacher, title, grade or subject, in characters.
pub const MAX_TEXT: usize = 500;
/// Most proposals one [`ProposeRequest::Status`] asks about.
pub const MAX_STATUS_IDS: usize = 256;
/// The largest request an edge may send when it carries chunks of a
/// proposal: one chunk of the largest profile with room to spare.
pub const MAX_PROPOSAL_REQUEST: usize = 1024 * 1024 + 4096;
/// The largest plan an edge may send: one file's manifest, as large as a
/// manifest may be, with room to spare. Plans of several files stay under
/// the usual request limit.
pub const MAX_PROPOSAL_PLAN: usize = catalog::limits::MANIFEST_BUDGET + 64 * 1024;

/// What an edge asks about its teachers' proposals (protocol revision
/// [`crate::protocol::REVISION_PROPOSALS`]). New variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeRequest {
    /// Encoded file manifests of a lesson (several within the usual request
    /// limit, or one alone up to [`MAX_PROPOSAL_PLAN`]); answered
    /// [`ProposeAnswer::Needed`].
    Plan { manifests: Vec<Vec<u8>> },
    /// Chunks of planned files, at most [`MAX_PROPOSAL_REQUEST`] bytes in all.
    Chunks { files: Vec<FileChunks> },
    /// The lesson, once its files are whole on the origin; answered
    /// [`ProposeAnswer::Queued`].
    Submit(Proposal),
    /// Where these proposals (by the edge's lesson id) stand.
    Status { ids: Vec<String> },
    /// A county edge forwards the proposal of `child`, an edge below it
    /// (`child` may itself be `school/below`); filed under `county/child`.
    SubmitFor { child: String, proposal: Proposal },
    /// Where the proposals of `child` (below a county edge) stand.
    StatusFor { child: String, ids: Vec<String> },
}

/// A lesson proposed by a teacher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The lesson's id on the edge.
    pub id: String,
    /// The teacher's name, as she logged in.
    pub teacher: String,
    /// The encoded lesson object.
    #[serde(with = "serde_bytes")]
    pub lesson: Vec<u8>,
    pub grade: String,
    pub subject: String,
    /// When the teacher proposed it (unix seconds, the edge's clock): a
    /// declined lesson proposed again comes back with a later time.
    pub asked_at: u64,
}

/// The origin's answer to a [`ProposeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeAnswer {
    /// Per manifest, the chunk indices the origin still lacks.
    Needed { files: Vec<Vec<u32>> },
    /// Chunks written.
    Stored { stored: u32 },
    /// The proposal is in the queue (or was already).
    Queued,
    /// Per id asked, in order.
    Status { verdicts: Vec<Verdict> },
}

/// Where a proposal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The origin holds no such proposal (never arrived, or forgotten).
    Unknown,
    Waiting,
    /// Published as this course.
    Approved {
        course: String,
    },
    Declined {
        note: String,
    },
}

/// One entry of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The edge that sent it.
    pub edge: String,
    /// The lesson's id on that edge.
    pub id: String,
    pub teacher: String,
    /// The lesson object as sent (in the origin's store).
    pub lesson: Hash,
    pub title: String,
    /// The title's language.
    pub lang: String,
    pub grade: String,
    pub subject: String,
    pub size: u64,
    /// Unix seconds.
    pub received_at: u64,
    /// The proposal's own time ([`Proposal::asked_at`]).
    #[serde(default)]
    pub asked_at: u64,
    /// On a county edge: the lesson forwarded upstream, once it was.
    #[serde(default)]
    pub forwarded: Option<Hash>,
    pub verdict: Verdict,
    /// Who decided, and when.
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
}

impl Entry {
    /// The entry's key in page addresses: `edge/id`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.edge, self.id)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct QueueFile {
    entries: Vec<Entry>,
}

/// Why the queue could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("reading the review queue {path}: {cause}")]
    Read {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error(
        "the review queue {path} does not parse ({cause}); move it aside to start an empty queue"
    )]
    Damaged { path: PathBuf, cause: String },
    #[error("writing the review queue {path}: {cause}")]
    Write {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("no proposal {0} in the review queue")]
    NotFound(String),
    #[error("proposal {0} was decided already")]
    Decided(String),
    #[error("{0}")]
    Refused(String),
}

/// One change at a time to the queue file of this process.
static CHANGING: Mutex<()> = Mutex::new(());

/// Held while the queue changes: this process's [`CHANGING`], then a lock
/// on `review/queue.lock`, for another process on the same folder (`bundle
/// create --for` filing a stick's proposals while `origin serve` runs).
struct Changing {
    _file: std::fs::File,
    _held: std::sync::MutexGuard<'static, ()>,
}

fn changing(dir: &Path) -> Result<Changing, ReviewError> {
    let held = CHANGING.lock().unwrap_or_else(|p| p.into_inner());
    let folder = dir.join("review");
    let path = folder.join("queue.lock");
    let file = std::fs::create_dir_all(&folder)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|cause| ReviewError::Write { path, cause })?;
    Ok(Changing {
        _file: file,
        _held: held,
    })
}

/// `DIR/review/queue.json`.
pub fn queue_path(dir: &Path) -> PathBuf {
    dir.join("review").join("queue.json")
}

fn load(dir: &Path) -> Result<QueueFile, ReviewError> {
    let path = queue_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| ReviewError::Damaged {
            path,
            cause: err.to_string(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(QueueFile::default()),
        Err(cause) => Err(ReviewError::Read { path, cause }),
    }
}

/// Writes the queue through a temporary file, synced before and after the rename.
fn save(dir: &Path, queue: &QueueFile) -> Result<(), ReviewError> {
    let path = queue_path(dir);
    serde_json::to_vec_pretty(queue)
        .map_err(std::io::Error::other)
        .and_then(|bytes| write_synced(&path, &bytes))
        .map_err(|cause| ReviewError::Write { path, cause })
}

/// Writes `bytes` to `path` (in `DIR/review/`) through a temporary file,
/// synced before and after the rename.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder)?;
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(folder)?.sync_all()
}

/// Every entry, newest first.
pub fn entries(dir: &Path) -> Result<Vec<Entry>, ReviewError> {
    let mut entries = load(dir)?.entries;
    entries.reverse();
    Ok(entries)
}

/// The entry `edge/id`.
pub fn entry(dir: &Path, edge: &str, id: &str) -> Result<Entry, ReviewError> {
    load(dir)?
        .entries
        .into_iter()
        .find(|e| e.edge == edge && e.id == id)
        .ok_or_else(|| ReviewError::NotFound(format!("{edge}/{id}")))
}

/// The lesson objects of waiting proposals: `origin gc` keeps their files.
pub fn waiting_lessons(dir: &Path) -> Result<Vec<Hash>, ReviewError> {
    Ok(load(dir)?
        .entries
        .iter()
        .filter(|e| e.verdict == Verdict::Waiting)
        .map(|e| e.lesson)
        .collect())
}

/// What collection keeps for the review queue in `dir`, from `store`: the
/// waiting lessons' objects and files, and the manifests and partly
/// uploaded files of proposals planned in the last [`UPLOAD_KEPT`] (an
/// upload cut off goes on where it stopped, whatever ran in between).
pub fn kept(
    dir: &Path,
    store: &catalog::Store,
) -> Result<(Vec<Hash>, std::collections::HashSet<Hash>), ReviewError> {
    let (mut objects, mut blobs) = (Vec::new(), std::collections::HashSet::new());
    let unreadable = |err: catalog::store::StoreError| ReviewError::Read {
        path: store.root().to_owned(),
        cause: std::io::Error::other(err.to_string()),
    };
    for lesson in waiting_lessons(dir)? {
        if let Some(Object::Lesson(lesson_object)) = store.object(&lesson).map_err(unreadable)? {
            objects.push(lesson);
            for file in lesson_object.files {
                objects.push(file.manifest);
                blobs.insert(file.blob);
            }
        }
    }
    for (manifest, planned) in load_planned(dir)?.files {
        objects.push(manifest);
        blobs.insert(planned.blob);
    }
    Ok((objects, blobs))
}

/// How long the files of a planned proposal are kept, whole or not, when
/// no lesson names them yet.
pub const UPLOAD_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// Most planned files remembered (the oldest are forgotten first).
const MAX_PLANNED: usize = 4096;
/// Most bytes of planned files kept at once, whole or partly uploaded (the
/// oldest plans are forgotten first): what edges can make a server keep
/// for lessons no one has submitted yet.
const MAX_PLANNED_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// `DIR/review/planned.json`: the files proposals planned, by manifest.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PlannedFile {
    files: std::collections::BTreeMap<Hash, Planned>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Planned {
    blob: Hash,
    #[serde(default)]
    size: u64,
    at: u64,
}

fn planned_path(dir: &Path) -> PathBuf {
    dir.join("review").join("planned.json")
}

/// The planned files not yet expired.
fn load_planned(dir: &Path) -> Result<PlannedFile, ReviewError> {
    let path = planned_path(dir);
    let mut planned: PlannedFile = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            tracing::warn!(path = %path.display(), cause = %err, "the list of planned proposal files does not parse; starting it again");
            PlannedFile::default()
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => PlannedFile::default(),
        Err(cause) => return Err(ReviewError::Read { path, cause }),
    };
    let oldest = now().saturating_sub(UPLOAD_KEPT.as_secs());
    planned.files.retain(|_, p| p.at >= oldest);
    Ok(planned)
}

/// Remembers the files of a plan (manifest object, blob), so collection
/// keeps what was uploaded of them for [`UPLOAD_KEPT`].
fn note_planned(dir: &Path, files: &[(Hash, Hash, u64)]) -> Result<(), ReviewError> {
    let _changing = changing(dir)?;
    let mut planned = load_planned(dir)?;
    let at = now();
    for &(manifest, blob, size) in files {
        planned.files.insert(manifest, Planned { blob, size, at });
    }
    // Within both bounds, newest first (this plan's before others of the
    // same second); the rest is forgotten.
    let noted: std::collections::HashSet<Hash> = files.iter().map(|f| f.0).collect();
    let mut by_age: Vec<(u64, bool, Hash, u64)> = (planned.files.iter())
        .map(|(manifest, p)| (p.at, noted.contains(manifest), *manifest, p.size))
        .collect();
    by_age.sort_unstable_by(|a, b| b.cmp(a));
    let mut bytes = 0u64;
    for (n, (_, _, manifest, size)) in by_age.into_iter().enumerate() {
        bytes = bytes.saturating_add(size);
        if n >= MAX_PLANNED || bytes > MAX_PLANNED_BYTES {
            planned.files.remove(&manifest);
        }
    }
    let path = planned_path(dir);
    let bytes = serde_json::to_vec(&planned).map_err(|e| ReviewError::Write {
        path: path.clone(),
        cause: std::io::Error::other(e),
    })?;
    write_synced(&path, &bytes).map_err(|cause| ReviewError::Write { path, cause })
}

fn now() -> u64 {
    crate::origin::now_secs()
}

fn check_text(what: &str, text: &str, required: bool) -> Result<String, ReviewError> {
    let text = text.trim();
    if (required && text.is_empty())
        || text.chars().count() > MAX_TEXT
        || text.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(ReviewError::Refused(format!(
            "the {what} needs {} to {MAX_TEXT} characters and no control characters",
            u8::from(required)
        )));
    }
    Ok(text.to_owned())
}

/// Files a checked proposal from `edge` (whose lesson `hash` is in the
/// store). Sent again, it changes nothing.
fn file(
    dir: &Path,
    edge: &str,
    proposal: &Proposal,
    lesson: &Lesson,
    hash: Hash,
) -> Result<(), ReviewError> {
    let _changing = changing(dir)?;
    let mut queue = load(dir)?;
    if let Some(held) = queue
        .entries
        .iter_mut()
        .find(|e| e.edge == edge && e.id == proposal.id)
    {
        let reopened =
            matches!(held.verdict, Verdict::Declined { .. }) && proposal.asked_at > held.asked_at;
        if reopened || (held.verdict == Verdict::Waiting && held.lesson != hash) {
            // Retitled on the edge before the review, or proposed again
            // after a decline: the newer one is what is reviewed.
            held.lesson = hash;
            held.title = first_text(&lesson.title).1;
            held.asked_at = proposal.asked_at;
            // On a county edge: the newer one goes upstream again.
            held.forwarded = None;
            if reopened {
                held.verdict = Verdict::Waiting;
                held.decided_by = None;
                held.decided_at = None;
                held.received_at = now();
                tracing::info!(%edge, proposal = %proposal.id, "a declined lesson was proposed again");
            }
            save(dir, &queue)?;
        }
        return Ok(());
    }
    let waiting = queue
        .entries
        .iter()
        .filter(|e| e.edge == edge && e.verdict == Verdict::Waiting)
        .count();
    if waiting >= MAX_WAITING_PER_EDGE {
        return Err(ReviewError::Refused(format!(
            "edge {edge} has {waiting} lessons waiting for review already, the most one school may have; \
             they are sent when the bureau has decided on some"
        )));
    }
    let top = edge.split('/').next().unwrap_or(edge);
    let below = (queue.entries.iter())
        .filter(|e| e.verdict == Verdict::Waiting)
        .filter(|e| e.edge.split('/').next() == Some(top))
        .count();
    if below >= MAX_WAITING_BELOW {
        return Err(ReviewError::Refused(format!(
            "edge {top} and the edges below it have {below} lessons waiting for review already, \
             the most they may have together; they are sent when the bureau has decided on some"
        )));
    }
    if queue.entries.len() >= MAX_ENTRIES {
        // The oldest decided entry makes room; with none, the queue is full.
        match queue
            .entries
            .iter()
            .position(|e| e.verdict != Verdict::Waiting)
        {
            Some(oldest) => {
                queue.entries.remove(oldest);
            }
            None => {
                return Err(ReviewError::Refused(format!(
                    "the bureau's review queue holds {MAX_ENTRIES} waiting lessons; try again later"
                )));
            }
        }
    }
    let (lang, title) = first_text(&lesson.title);
    queue.entries.push(Entry {
        edge: edge.to_owned(),
        id: proposal.id.clone(),
        teacher: check_text("teacher's name", &proposal.teacher, false)?,
        lesson: hash,
        title,
        lang,
        grade: check_text("grade", &proposal.grade, false)?,
        subject: check_text("subject", &proposal.subject, false)?,
        size: lesson.files.iter().map(|f| f.size).sum(),
        received_at: now(),
        asked_at: proposal.asked_at,
        forwarded: None,
        verdict: Verdict::Waiting,
        decided_by: None,
        decided_at: None,
    });
    save(dir, &queue)?;
    tracing::info!(%edge, proposal = %proposal.id, lesson = %hash, "a teacher's lesson arrived for review");
    Ok(())
}

/// The first language and text of `text` (a teacher's lesson has one).
fn first_text(text: &LocalizedText) -> (String, String) {
    text.iter()
        .next()
        .map(|(lang, text)| (lang.to_owned(), text.to_owned()))
        .unwrap_or_else(|| ("zh".to_owned(), String::new()))
}

/// Where `ids` of `edge` stand.
fn verdicts(dir: &Path, edge: &str, ids: &[String]) -> Result<Vec<Verdict>, ReviewError> {
    let queue = load(dir)?;
    Ok(ids
        .iter()
        .map(|id| {
            queue
                .entries
                .iter()
                .find(|e| e.edge == edge && &e.id == id)
                .map_or(Verdict::Unknown, |e| e.verdict.clone())
        })
        .collect())
}

/// On a county edge: the waiting proposals of its children, split into
/// those still to forward upstream (never sent, or changed since) and
/// those forwarded, waiting for the bureau.
pub fn to_forward(dir: &Path) -> Result<(Vec<Entry>, Vec<Entry>), ReviewError> {
    Ok(load(dir)?
        .entries
        .into_iter()
        .filter(|e| e.verdict == Verdict::Waiting)
        .partition(|e| e.forwarded != Some(e.lesson)))
}

/// On a county edge: records that `edge/id` went upstream as `lesson`
/// (`None`: the origin forgot it, send it again). A proposal changed
/// meanwhile is left to go again.
pub fn set_forwarded(
    dir: &Path,
    edge: &str,
    id: &str,
    lesson: Option<Hash>,
) -> Result<(), ReviewError> {
    let _changing = changing(dir)?;
    let mut queue = load(dir)?;
    let Some(held) = (queue.entries.iter_mut())
        .find(|e| e.edge == edge && e.id == id && lesson.is_none_or(|l| l == e.lesson))
    else {
        return Ok(());
    };
    held.forwarded = lesson;
    save(dir, &queue)
}

/// On a county edge: the bureau's verdict on `edge/id`, heard upstream.
pub fn heard_upstream(
    dir: &Path,
    edge: &str,
    id: &str,
    verdict: Verdict,
) -> Result<(), ReviewError> {
    match decide(dir, "the bureau", edge, id, verdict, None) {
        Err(ReviewError::Decided(_) | ReviewError::NotFound(_)) => Ok(()),
        other => other,
    }
}

/// What an administrator changes before approving.
#[derive(Debug, Clone, Default)]
pub struct Approval {
    /// The new course's id (letters, digits, `-` and `_`).
    pub course: String,
    pub title: String,
    pub grade: String,
    pub subject: String,
}

/// A course id an administrator may give: 1–64 of `a-z 0-9 - _`, not
/// starting with `-` or `_`.
fn check_course_id(id: &str) -> Result<(), ReviewError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ReviewError::Refused(format!(
            "course id {id:?}: use 1 to 64 of a-z, 0-9, - and _, starting with a letter or digit"
        )))
    }
}

/// Publishes waiting proposal `edge/id` as course `approval.course`, signed
/// by `origin`, with the administrator's title, grade and subject; marks it
/// approved. A course of that id already published is refused (approving
/// never replaces a course).
pub fn approve(
    origin: &crate::Origin,
    admin: &str,
    edge: &str,
    id: &str,
    approval: &Approval,
) -> Result<crate::PublishReport, ReviewError> {
    let dir = origin.dir();
    check_course_id(&approval.course)?;
    let title = check_text("title", &approval.title, true)?;
    let grade = check_text("grade", &approval.grade, false)?;
    let subject = check_text("subject", &approval.subject, false)?;
    let held = entry(dir, edge, id)?;
    if held.verdict != Verdict::Waiting {
        return Err(ReviewError::Decided(held.key()));
    }
    let store = origin.store();
    let refused = |e: &dyn std::fmt::Display| ReviewError::Refused(e.to_string());
    let mut lesson = store
        .require_object(&held.lesson)
        .map_err(|e| refused(&e))?
        .into_lesson()
        .map_err(|e| refused(&e))?;
    crate::admin::upload::check_files_held(
        store,
        &lesson.files,
        &format!("proposal {}", held.key()),
    )
    .map_err(ReviewError::Refused)?;
    lesson.id = "lesson".to_owned();
    lesson.title = LocalizedText::new();
    lesson.title.insert(&held.lang, &title);
    lesson.tags = [subject.as_str(), grade.as_str()]
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    limits::check_lesson(&lesson).map_err(|e| refused(&e))?;
    let mut batch = ImportBatch::new();
    let size = lesson.files.iter().map(|f| f.size).sum();
    let lesson_hash = batch.add_object(&Object::Lesson(lesson.clone()));
    let mut course_title = LocalizedText::new();
    course_title.insert(&held.lang, &title);
    let course = Course {
        id: approval.course.clone(),
        version: 0,
        title: course_title,
        description: LocalizedText::new(),
        subject: Some(subject.clone()).filter(|s| !s.is_empty()),
        grade: Some(grade.clone()).filter(|g| !g.is_empty()),
        languages: lesson.languages.clone(),
        tags: Vec::new(),
        files: Vec::new(),
        lessons: vec![LessonRef {
            id: lesson.id.clone(),
            hash: lesson_hash,
            size,
        }],
    };
    limits::check_course(&course).map_err(|e| refused(&e))?;
    let mut report = crate::PublishReport::for_course(&course);
    // From the check that it still waits to its verdict, no other decision
    // on the queue: two administrators approving (or one declining) at once
    // would otherwise publish a lesson that ends up declined, or publish it twice.
    let changing = changing(dir)?;
    if entry(dir, edge, id)?.verdict != Verdict::Waiting {
        return Err(ReviewError::Decided(held.key()));
    }
    {
        let _lock = crate::publish::lock(origin).map_err(|e| refused(&e))?;
        if let Some(signed) = store.signed_catalog().map_err(|e| refused(&e))?
            && let Ok(catalog) = Object::decode(&signed.catalog).and_then(Object::into_catalog)
            && catalog.courses.contains_key(&approval.course)
        {
            return Err(ReviewError::Refused(format!(
                "course {} is published already; give the lesson a course id of its own",
                approval.course
            )));
        }
        let named = Path::new(admin).join("review").join(edge).join(id);
        crate::publish::commit_course(
            origin,
            batch,
            course,
            &named,
            &mut report,
            &indicatif::ProgressBar::hidden(),
        )
        .map_err(|e| ReviewError::Refused(catalog::format::error_chain(&e)))?;
    }
    decide_held(
        dir,
        admin,
        edge,
        id,
        Verdict::Approved {
            course: approval.course.clone(),
        },
        Some((title, grade, subject)),
    )?;
    drop(changing);
    log(
        dir,
        admin,
        "approve",
        &format!("{edge}/{id}"),
        &format!(
            "published as course {} in catalog sequence {}",
            approval.course, report.sequence
        ),
    );
    Ok(report)
}

/// Declines waiting proposal `edge/id` with `note`, which its teacher sees.
pub fn decline(
    dir: &Path,
    admin: &str,
    edge: &str,
    id: &str,
    note: &str,
) -> Result<(), ReviewError> {
    let note = check_text("note to the teacher", note, true)?;
    decide(
        dir,
        admin,
        edge,
        id,
        Verdict::Declined { note: note.clone() },
        None,
    )?;
    log(dir, admin, "decline", &format!("{edge}/{id}"), &note);
    Ok(())
}

fn decide(
    dir: &Path,
    admin: &str,
    edge: &str,
    id: &str,
    verdict: Verdict,
    edited: Option<(String, String, String)>,
) -> Result<(), ReviewError> {
    let _changing = changing(dir)?;
    decide_held(dir, admin, edge, id, verdict, edited)
}

/// [`decide`] with [`changing`] held by the caller.
fn decide_held(
    dir: &Path,
    admin: &str,
    edge: &str,
    id: &str,
    verdict: Verdict,
    edited: Option<(String, String, String)>,
) -> Result<(), ReviewError> {
    let mut queue = load(dir)?;
    let held = queue
        .entries
        .iter_mut()
        .find(|e| e.edge == edge && e.id == id)
        .ok_or_else(|| ReviewError::NotFound(format!("{edge}/{id}")))?;
    if held.verdict != Verdict::Waiting {
        return Err(ReviewError::Decided(held.key()));
    }
    held.verdict = verdict;
    held.decided_by = Some(admin.to_owned());
    held.decided_at = Some(now());
    if let Some((title, grade, subject)) = edited {
        held.title = title;
        held.grade = grade;
        held.subject = subject;
    }
    save(dir, &queue)
}

fn log(dir: &Path, admin: &str, action: &str, subject: &str, detail: &str) {
    if let Err(err) = crate::admin::log::record(dir, admin, action, subject, detail) {
        tracing::error!(%admin, action, subject, cause = %err, "the administrators' log cannot be written");
    }
}

/// Answers an edge's [`ProposeRequest`] (on the blocking pool).
pub async fn answer(request: ProposeRequest, edge: &str, state: &Arc<State>) -> Response {
    let (edge, state) = (edge.to_owned(), state.clone());
    let done = tokio::task::spawn_blocking(move || match &state.desk {
        Some(desk) => take(desk, &edge, request),
        None => Err("this server takes no proposals; propose lessons to the origin".to_owned()),
    })
    .await;
    match done {
        Ok(Ok(answer)) => Response::Proposal(answer),
        Ok(Err(message)) => Response::Error { message },
        Err(_) => Response::Error {
            message: "the origin stopped answering this request; try again".to_owned(),
        },
    }
}

/// Answers `request` from `edge` on `desk`, as the network does: also how
/// `bundle create --for` files the proposals a have list carries. Blocking.
pub fn take(desk: &Desk, edge: &str, request: ProposeRequest) -> Result<ProposeAnswer, String> {
    let uploader = format!("edge:{edge}");
    match request {
        ProposeRequest::Plan { manifests } => {
            if manifests.len() > limits::MAX_FILES {
                return Err(format!(
                    "{} files in one proposed lesson; at most {}",
                    manifests.len(),
                    limits::MAX_FILES
                ));
            }
            let files = match crate::admin::upload::plan_files(desk, &manifests)? {
                AdminResponse::Needed { files } => files,
                _ => return Err("unexpected answer to a plan".to_owned()),
            };
            // Checked by the plan: each decodes to a file manifest.
            let planned: Vec<(Hash, Hash, u64)> = (manifests.iter())
                .filter_map(|bytes| match Object::decode(bytes) {
                    Ok(Object::Manifest(manifest)) => {
                        Some((Hash::of(bytes), manifest.blob, manifest.size))
                    }
                    _ => None,
                })
                .collect();
            note_planned(desk.dir(), &planned).map_err(|e| e.to_string())?;
            Ok(ProposeAnswer::Needed { files })
        }
        ProposeRequest::Chunks { files } => {
            match crate::admin::upload::put_chunks(desk, &uploader, files)? {
                AdminResponse::ChunksStored { stored, .. } => Ok(ProposeAnswer::Stored { stored }),
                _ => Err("unexpected answer to chunks".to_owned()),
            }
        }
        ProposeRequest::Submit(proposal) => submit(desk, edge, &proposal),
        ProposeRequest::SubmitFor { child, proposal } => {
            submit(desk, &below(edge, &child)?, &proposal)
        }
        ProposeRequest::StatusFor { child, ids } => status(desk, &below(edge, &child)?, &ids),
        ProposeRequest::Status { ids } => status(desk, edge, &ids),
    }
}

/// `edge/child`, for an edge below the county edge `edge`; each name in
/// `child` is a valid edge name.
fn below(edge: &str, child: &str) -> Result<String, String> {
    let names: Vec<&str> = child.split('/').collect();
    if names.len() > 8
        || names
            .iter()
            .any(|name| crate::edge_name::EdgeName::parse(name).is_err())
    {
        return Err(format!(
            "{child:?} is not the name of an edge below this one"
        ));
    }
    Ok(format!("{edge}/{child}"))
}

fn status(desk: &Desk, edge: &str, ids: &[String]) -> Result<ProposeAnswer, String> {
    if ids.len() > MAX_STATUS_IDS {
        return Err(format!(
            "{} proposals asked about at once; at most {MAX_STATUS_IDS}",
            ids.len()
        ));
    }
    verdicts(desk.dir(), edge, ids)
        .map(|verdicts| ProposeAnswer::Status { verdicts })
        .map_err(|e| e.to_string())
}

/// Checks a proposal of `edge` whose files the desk's store holds, and
/// files it.
fn submit(desk: &Desk, edge: &str, proposal: &Proposal) -> Result<ProposeAnswer, String> {
    limits::check_id("proposal id", &proposal.id).map_err(|e| e.to_string())?;
    desk.settle_uploads()?;
    let held = desk.held()?;
    let store = held.store();
    let object = Object::decode(&proposal.lesson)
        .map_err(|err| format!("the proposed lesson does not decode: {err}"))?;
    if object.encode() != proposal.lesson {
        return Err("the proposed lesson is not in its canonical encoding".to_owned());
    }
    let Object::Lesson(lesson) = object else {
        return Err("a proposal carries a lesson object".to_owned());
    };
    let mut checked = lesson.clone();
    // The edge's ids start with `~` only for its own course; the
    // lesson's own id is checked like any.
    checked.id = proposal.id.clone();
    limits::check_lesson(&checked).map_err(|e| format!("the proposed lesson: {e}"))?;
    crate::admin::upload::check_files_held(store, &lesson.files, "the proposed lesson")?;
    let mut batch = ImportBatch::new();
    let hash = batch.add_object(&Object::Lesson(lesson.clone()));
    store
        .commit_batch(batch)
        .map_err(|e| crate::admin::upload::store_error("keeping the lesson", e))?;
    file(desk.dir(), edge, proposal, &lesson, hash).map_err(|e| e.to_string())?;
    Ok(ProposeAnswer::Queued)
}
#[cfg(test)]
mod tests;
