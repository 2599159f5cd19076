//! Making reports (issue 15): the edge's status at the end of a pass and
//! the usage counted since the last report, cut into as many reports as it
//! takes for each sealed envelope to fit [`MAX_ENVELOPE`].

use server::report::{
    CourseHeld, DayUsage, EdgeReport, Envelope, Failure, MAX_ENVELOPE, MAX_FAILURES, MAX_PATH,
    ScrubSummary, SyncSummary,
};

use super::book::{Book, BookError, MAX_OWN};
use super::usage::UsageTable;
use crate::status::EdgeStatus;
use crate::sync::SyncReport;

/// Most courses a report lists (`courses_total` says how many there are).
const MAX_COURSES: usize = 256;
/// Room kept under [`MAX_ENVELOPE`] for the length prefixes that grow as
/// rows are added, and for the names county edges add to the path on the
/// way up (at most [`MAX_PATH`] of them): a report that fits here fits
/// however it is forwarded.
const SLACK: usize = 32 + MAX_PATH * (4 * server::edge_name::MAX_EDGE_NAME_CHARS + 2);

/// What one make step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    /// The sequences of the reports made.
    pub seqs: Vec<u64>,
    /// Usage rows left in the ledger (the queue was full).
    pub rows_left: usize,
}

/// The report's fields from the edge's status, without seq or usage.
pub fn base_report(status: &EdgeStatus, pass: Option<&SyncReport>, now: u64) -> EdgeReport {
    let subscribed: Vec<_> = status.courses.iter().filter(|c| c.subscribed).collect();
    let courses = (subscribed.iter().take(MAX_COURSES))
        .map(|c| CourseHeld {
            id: c.id.clone(),
            version: c.version,
            complete: c.state == "held",
        })
        .collect();
    let last = pass.or(status.last_sync.as_ref());
    let mut failures = Vec::new();
    if let Some(last) = last {
        if let Some(error) = &last.error {
            failures.push(Failure {
                at: last.finished_at,
                message: error.clone(),
            });
        }
        failures.extend(last.failures.iter().rev().map(|message| Failure {
            at: last.finished_at,
            message: message.clone(),
        }));
    }
    failures.truncate(MAX_FAILURES);
    let mut report = EdgeReport {
        seq: 0,
        made_at: now,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        catalog_sequence: status.catalog_sequence,
        courses,
        courses_total: u32::try_from(subscribed.len()).unwrap_or(u32::MAX),
        bytes_held: status.bytes_held,
        bytes_free: status.disk_free.unwrap_or(0),
        store_limit: last
            .and_then(|l| l.quota.as_ref())
            .and_then(|q| q.max_store),
        last_sync: last.map(|l| SyncSummary {
            ended_at: l.finished_at,
            complete: l.complete,
            files_missing: l.files_missing,
        }),
        failures,
        last_scrub: (status.scrub.as_ref())
            .and_then(|s| s.state.last.as_ref())
            .map(|last| ScrubSummary {
                at: last.finished_at,
                blobs_checked: last.blobs_checked,
                damaged: last.found,
            }),
        usage: Vec::new(),
    };
    report.trim();
    report
}

/// Cuts `base` (seq and usage unset) and `rows` into reports numbered from
/// `first_seq`, at most `max` of them, each sealed under `key` within
/// [`MAX_ENVELOPE`]. Returns the sealed envelopes and the rows left over.
pub fn cut(
    key: &[u8; 32],
    base: &EdgeReport,
    rows: Vec<DayUsage>,
    first_seq: u64,
    max: usize,
) -> (Vec<(u64, Vec<u8>)>, Vec<DayUsage>) {
    let mut made = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while made.len() < max {
        let seq = first_seq + made.len() as u64;
        let mut report = EdgeReport {
            seq,
            ..base.clone()
        };
        let base_len = Envelope::seal(key, &report)
            .encode()
            .map_or(MAX_ENVELOPE, |b| b.len());
        let mut room = MAX_ENVELOPE.saturating_sub(base_len + SLACK);
        while let Some(row) = rows.peek() {
            let len = postcard::to_stdvec(row).map_or(usize::MAX, |b| b.len());
            if len > room {
                break;
            }
            room -= len;
            report.usage.extend(rows.next());
        }
        let mut sealed = Envelope::seal(key, &report).encode();
        // The estimate is exact up to the prefixes; should it miss, give rows back.
        let mut back = Vec::new();
        while sealed.is_err() && !report.usage.is_empty() {
            back.extend(report.usage.pop());
            sealed = Envelope::seal(key, &report).encode();
        }
        let Ok(sealed) = sealed else {
            break; // the status alone does not fit: nothing can be made
        };
        if !back.is_empty() {
            back.reverse();
            let rest: Vec<DayUsage> = back.into_iter().chain(rows).collect();
            rows = rest.into_iter().peekable();
        }
        made.push((seq, sealed));
        if rows.peek().is_none() {
            break;
        }
    }
    (made, rows.collect())
}

/// Takes the usage counted (`fresh`, from memory, and the ledger's) into
/// new reports queued in `book`: one atomic step (see [`super::book`]).
/// With the queue full, the usage stays in the ledger for a later report.
/// Blocking.
pub fn make(
    book: &Book,
    key: &[u8; 32],
    base: &EdgeReport,
    fresh: &UsageTable,
) -> Result<Made, BookError> {
    let mut open = book.open()?;
    let mut table = UsageTable::from_rows(std::mem::take(&mut open.ledger.usage));
    table.merge(fresh.clone());
    let (own, _) = open.counts()?;
    let room = MAX_OWN.saturating_sub(own);
    let first = open.ledger.next_seq;
    let (made, left) = cut(key, base, table.to_rows(), first, room);
    for (seq, sealed) in &made {
        open.put_own(*seq, sealed)?;
    }
    open.ledger.next_seq = first + made.len() as u64;
    if !made.is_empty() {
        open.ledger.last_made = Some(base.made_at);
    }
    let rows_left = left.len();
    open.ledger.usage = left;
    open.commit()?;
    Ok(Made {
        seqs: made.into_iter().map(|(seq, _)| seq).collect(),
        rows_left,
    })
}
