//! Usage counting (issue 15): lesson-page opens, bytes of lesson files
//! served to classrooms, and bytes a sync did not fetch (chunks reused
//! locally), per lesson per day. Never per pupil: no address, no time of
//! day, no file name below the lesson is kept.
//!
//! Counts are taken in memory ([`Usage`]) and flushed into the durable
//! ledger ([`super::book`]) every [`FLUSH_EVERY`] and at shutdown, so a
//! `kill -9` loses at most those seconds. Both the in-memory table and the
//! ledger's are bounded ([`UsageTable`]): past [`MAX_ROWS`] rows, a new
//! lesson's counts fold into its course's `*` row, then into the day's
//! `*`/`*` row, so counts are never dropped, only made coarser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use server::report::DayUsage;
use tracing::warn;

use crate::lock;

/// Rows of per-lesson counts kept before new lessons fold into their course.
pub const MAX_ROWS: usize = 2048;
/// Rows past which new courses fold into the day's row.
const MAX_COURSE_ROWS: usize = MAX_ROWS + 256;
/// Rows past which new days fold into the oldest row: the hard bound.
const MAX_DAY_ROWS: usize = MAX_ROWS + 512;
/// How often `edge run` flushes the counts to disk.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// The course or lesson name of a folded row.
pub const FOLDED: &str = "*";
/// Longest course or lesson name kept (a longer one is counted as folded).
const MAX_NAME: usize = 128;

/// What is counted for one lesson on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub opens: u64,
    pub bytes_served: u64,
    pub bytes_saved: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.opens = self.opens.saturating_add(other.opens);
        self.bytes_served = self.bytes_served.saturating_add(other.bytes_served);
        self.bytes_saved = self.bytes_saved.saturating_add(other.bytes_saved);
    }
}

type Key = (u32, String, String);

/// Counts per (day, course, lesson), bounded (see the module's tour).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageTable {
    rows: BTreeMap<Key, Counts>,
}

impl UsageTable {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Adds `counts` for `lesson` of `course` on `day`, folding when full.
    pub fn add(&mut self, day: u32, course: &str, lesson: &str, counts: Counts) {
        let name = |text: &str| {
            if text.len() > MAX_NAME {
                FOLDED.to_owned()
            } else {
                text.to_owned()
            }
        };
        let exact = (day, name(course), name(lesson));
        let candidates = [
            (exact.clone(), MAX_ROWS),
            ((day, exact.1.clone(), FOLDED.to_owned()), MAX_COURSE_ROWS),
            ((day, FOLDED.to_owned(), FOLDED.to_owned()), MAX_DAY_ROWS),
        ];
        for (key, cap) in candidates {
            if let Some(known) = self.rows.get_mut(&key) {
                known.add(counts);
                return;
            }
            if self.rows.len() < cap {
                self.rows.insert(key, counts);
                return;
            }
        }
        // Every bound reached: the oldest row takes it (counts are kept).
        if let Some((_, oldest)) = self.rows.iter_mut().next() {
            oldest.add(counts);
        }
    }

    /// Adds every row of `other`.
    pub fn merge(&mut self, other: UsageTable) {
        for ((day, course, lesson), counts) in other.rows {
            self.add(day, &course, &lesson, counts);
        }
    }

    /// The rows, oldest day first.
    pub fn to_rows(&self) -> Vec<DayUsage> {
        (self.rows.iter())
            .map(|((day, course, lesson), counts)| DayUsage {
                day: *day,
                course: course.clone(),
                lesson: lesson.clone(),
                opens: counts.opens,
                bytes_served: counts.bytes_served,
                bytes_saved: counts.bytes_saved,
            })
            .collect()
    }

    pub fn from_rows(rows: Vec<DayUsage>) -> UsageTable {
        let mut table = UsageTable::default();
        for row in rows {
            let counts = Counts {
                opens: row.opens,
                bytes_served: row.bytes_served,
                bytes_saved: row.bytes_saved,
            };
            table.add(row.day, &row.course, &row.lesson, counts);
        }
        table
    }
}

/// Days since 1970-01-01 in the edge's local time, now.
pub fn today() -> u32 {
    let date = jiff::Zoned::now().date();
    let days = (date - jiff::civil::date(1970, 1, 1)).get_days();
    u32::try_from(days).unwrap_or(0)
}

/// The edge's live counters, shared by the classroom and the sync passes
/// of one process; [`Usage::flush`] moves them into the ledger in `dir`.
#[derive(Debug)]
pub struct Usage {
    dir: PathBuf,
    table: Mutex<UsageTable>,
}

impl Usage {
    /// Counters for the edge in `dir` (nothing is read or written yet).
    pub fn new(dir: &Path) -> Usage {
        Usage {
            dir: dir.to_owned(),
            table: Mutex::new(UsageTable::default()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn count(&self, course: &str, lesson: &str, counts: Counts) {
        lock(&self.table).add(today(), course, lesson, counts);
    }

    /// A lesson page was opened in a classroom.
    pub fn opened(&self, course: &str, lesson: &str) {
        let counts = Counts {
            opens: 1,
            ..Counts::default()
        };
        self.count(course, lesson, counts);
    }

    /// `bytes` of a file of `lesson` (empty: the course's own files) left
    /// for a classroom.
    pub fn served(&self, course: &str, lesson: &str, bytes: u64) {
        if bytes > 0 {
            let counts = Counts {
                bytes_served: bytes,
                ..Counts::default()
            };
            self.count(course, lesson, counts);
        }
    }

    /// `bytes` of a file of `lesson` a sync did not have to fetch.
    pub fn saved(&self, course: &str, lesson: &str, bytes: u64) {
        if bytes > 0 {
            let counts = Counts {
                bytes_saved: bytes,
                ..Counts::default()
            };
            self.count(course, lesson, counts);
        }
    }

    /// Takes what was counted since the last take.
    pub fn take(&self) -> UsageTable {
        std::mem::take(&mut *lock(&self.table))
    }

    /// Puts back counts a failed write could not keep.
    pub fn put_back(&self, table: UsageTable) {
        lock(&self.table).merge(table);
    }

    /// What is counted in memory now, not flushed yet.
    pub fn pending(&self) -> UsageTable {
        lock(&self.table).clone()
    }

    /// Moves the counts into the durable ledger. Blocking.
    pub fn flush(&self) -> Result<(), super::book::BookError> {
        let taken = self.take();
        if taken.is_empty() {
            return Ok(());
        }
        let book = super::book::Book::new(&self.dir);
        book.add_usage(&taken).inspect_err(|_| self.put_back(taken))
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, and once more then.
    pub async fn flush_task(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => false,
                () = stop.cancelled() => true,
            };
            let usage = self.clone();
            match tokio::task::spawn_blocking(move || usage.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => warn!(
                    cause = %crate::sync::error_chain(&err),
                    "could not keep the usage counts on disk; they stay in memory and the next flush tries again"
                ),
                Err(err) => warn!(cause = %err, "the usage flush stopped"),
            }
            if stopping {
                return;
            }
        }
    }
}

/// Counts what each file of a pass did not fetch (`(label, bytes)`) under
/// its course and lesson in `catalog`.
pub fn count_saved(
    usage: &Usage,
    catalog: &catalog::Catalog,
    objects: &impl crate::sync::plan::Objects,
    saved: Vec<(String, u64)>,
) -> Result<(), catalog::store::StoreError> {
    if saved.is_empty() {
        return Ok(());
    }
    let mut lessons = std::collections::HashSet::new();
    for (id, entry) in &catalog.courses {
        if let Some(catalog::Object::Course(course)) = objects.object(&entry.hash)? {
            lessons.extend(course.lessons.iter().map(|l| (id.clone(), l.id.clone())));
        }
    }
    for (label, bytes) in saved {
        let (course, lesson) = place_of_label(&label, |c, l| {
            lessons.contains(&(c.to_owned(), l.to_owned()))
        });
        usage.saved(course, lesson, bytes);
    }
    Ok(())
}

/// Where a sync file label (`course/lesson/path` or `course/path`) belongs:
/// `lessons` says which second segments are lessons of the course.
pub fn place_of_label(label: &str, is_lesson: impl Fn(&str, &str) -> bool) -> (&str, &str) {
    let mut parts = label.splitn(3, '/');
    let course = parts.next().unwrap_or("");
    match (parts.next(), parts.next()) {
        (Some(second), Some(_)) if is_lesson(course, second) => (course, second),
        _ => (course, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_open() -> Counts {
        Counts {
            opens: 1,
            ..Counts::default()
        }
    }

    /// Issue 15: counts add up per lesson per day, and past the bound new
    /// lessons fold into their course's row, then the day's, never lost.
    #[test]
    fn issue_15_usage_is_bounded_and_folds_without_losing_counts() {
        let mut table = UsageTable::default();
        table.add(10, "math", "01", one_open());
        table.add(10, "math", "01", one_open());
        assert_eq!(table.len(), 1);
        assert_eq!(table.to_rows()[0].opens, 2);
        for i in 0..MAX_ROWS + 2000 {
            table.add(11, &format!("c{}", i % 300), &format!("l{i}"), one_open());
        }
        assert!(table.len() <= MAX_DAY_ROWS, "{}", table.len());
        let total: u64 = table.to_rows().iter().map(|r| r.opens).sum();
        assert_eq!(total, 2 + (MAX_ROWS + 2000) as u64);
        assert!(
            table
                .to_rows()
                .iter()
                .any(|r| r.lesson == FOLDED && r.course != FOLDED)
        );
        // Past every bound, even new days keep their counts.
        for day in 100..2000 {
            table.add(day, "x", "y", one_open());
        }
        assert!(table.len() <= MAX_DAY_ROWS);
        let total: u64 = table.to_rows().iter().map(|r| r.opens).sum();
        assert_eq!(total, 2 + (MAX_ROWS + 2000) as u64 + 1900);
        // Through the ledger's rows and back: still bounded, nothing lost.
        let again = UsageTable::from_rows(table.to_rows());
        assert!(again.len() <= MAX_DAY_ROWS);
        let total: u64 = again.to_rows().iter().map(|r| r.opens).sum();
        assert_eq!(total, 2 + (MAX_ROWS + 2000) as u64 + 1900);
        let mut small = UsageTable::default();
        small.add(3, "c", "l", one_open());
        assert_eq!(UsageTable::from_rows(small.to_rows()), small);
    }

    #[test]
    fn issue_15_sync_labels_map_to_course_and_lesson() {
        let lessons = |course: &str, lesson: &str| course == "math" && lesson == "01";
        assert_eq!(place_of_label("math/01/a.mp4", lessons), ("math", "01"));
        assert_eq!(place_of_label("math/cover.png", lessons), ("math", ""));
        assert_eq!(place_of_label("math/img/x.png", lessons), ("math", ""));
    }
}
