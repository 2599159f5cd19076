//! What the fleet keeps per edge, and the usage window the pages read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::report::EdgeReport;

/// Applied sequences above an edge's floor kept at most; past this, the
/// floor moves up to the lowest one (a report lost forever below it is then
/// taken as held, so the set stays bounded).
pub const MAX_ABOVE: usize = 4096;
/// Days the most-opened lessons are counted over.
pub const WINDOW_DAYS: u32 = 30;
/// Most (county, course, lesson) keys the window holds (some 50 MiB);
/// usage of further keys is still kept in the file, not in the window.
pub const MAX_WINDOW_KEYS: usize = 200_000;
/// Slots per lesson in the usage window: the window, tomorrow (an edge's
/// clock ahead) and one spare.
const SLOTS: usize = 32;

/// One edge as the fleet knows it, kept in `fleet.redb` and in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EdgeRecord {
    /// Its full name at the origin (`county/child` for a forwarded report).
    pub name: String,
    pub county: Option<String>,
    /// Every sequence 1..=floor is applied.
    pub floor: u64,
    /// Applied sequences above `floor + 1`, ascending, at most [`MAX_ABOVE`].
    pub above: Vec<u64>,
    /// Reports applied.
    pub reports: u64,
    /// When its first and last report arrived at the origin, unix seconds.
    pub first_seen: u64,
    pub last_seen: u64,
    /// The report with the highest sequence, without its usage.
    pub latest: Option<Status>,
    /// Usage over every report applied.
    pub opens: u64,
    pub bytes_served: u64,
    pub bytes_saved: u64,
}

/// An edge's state as its newest report says: the report itself, trimmed,
/// without its usage (which goes into the totals and the window).
pub type Status = EdgeReport;

/// The status part of `report`.
pub fn status_of(report: &EdgeReport) -> Status {
    let mut status = EdgeReport {
        usage: Vec::new(),
        ..report.clone()
    };
    status.trim();
    status
}

impl EdgeReport {
    /// Whether the edge is failing: its last sync did not get everything,
    /// or it failed at something in the day before the report.
    pub fn failing(&self) -> bool {
        let incomplete = self.last_sync.as_ref().is_some_and(|sync| !sync.complete);
        let recent = self
            .failures
            .iter()
            .any(|failure| failure.at + 86_400 >= self.made_at);
        incomplete || recent
    }
}

impl EdgeRecord {
    pub fn new(name: String, county: Option<String>) -> EdgeRecord {
        EdgeRecord {
            name,
            county,
            ..EdgeRecord::default()
        }
    }

    /// Whether report `seq` was applied.
    pub fn holds(&self, seq: u64) -> bool {
        seq <= self.floor || self.above.binary_search(&seq).is_ok()
    }

    /// Applies `report`, which arrived at `arrived`; false (and nothing
    /// changed) when its sequence was applied before.
    pub fn apply(&mut self, report: &EdgeReport, arrived: u64) -> bool {
        let seq = report.seq;
        if self.holds(seq) {
            return false;
        }
        match self.above.binary_search(&seq) {
            Ok(_) => return false,
            Err(at) => self.above.insert(at, seq),
        }
        while self.above.first() == Some(&(self.floor + 1)) {
            self.floor += 1;
            self.above.remove(0);
        }
        if self.above.len() > MAX_ABOVE {
            let lowest = self.above.remove(0);
            self.floor = lowest;
            while self.above.first() == Some(&(self.floor + 1)) {
                self.floor += 1;
                self.above.remove(0);
            }
        }
        self.reports += 1;
        if self.first_seen == 0 || arrived < self.first_seen {
            self.first_seen = arrived;
        }
        self.last_seen = self.last_seen.max(arrived);
        if self.latest.as_ref().is_none_or(|latest| latest.seq < seq) {
            self.latest = Some(status_of(report));
        }
        for usage in &report.usage {
            self.opens = self.opens.saturating_add(usage.opens);
            self.bytes_served = self.bytes_served.saturating_add(usage.bytes_served);
            self.bytes_saved = self.bytes_saved.saturating_add(usage.bytes_saved);
        }
        true
    }
}

/// A lesson in a county: the key of the usage window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LessonKey {
    pub county: Arc<str>,
    pub course: Arc<str>,
    pub lesson: Arc<str>,
}

/// Opens per county and lesson over the last days, in memory: one small
/// ring of (day, opens) per key, so it stays a few MiB with 10,000 edges.
#[derive(Default)]
pub struct Window {
    rings: HashMap<LessonKey, [(u32, u64); SLOTS]>,
    names: HashMap<Arc<str>, ()>,
}

impl Window {
    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some((name, ())) = self.names.get_key_value(text) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(text);
        self.names.insert(name.clone(), ());
        name
    }

    /// Counts `opens` on `day` if it is inside the window ending `today`.
    pub fn add(
        &mut self,
        today: u32,
        day: u32,
        county: &str,
        course: &str,
        lesson: &str,
        opens: u64,
    ) {
        if opens == 0 || day + WINDOW_DAYS <= today || day > today + 1 {
            return;
        }
        let key = if self.rings.len() >= MAX_WINDOW_KEYS {
            // Full: only keys already held count on.
            let known = |name: &str| self.names.get_key_value(name).map(|(n, ())| n.clone());
            let (Some(county), Some(course), Some(lesson)) =
                (known(county), known(course), known(lesson))
            else {
                return;
            };
            let key = LessonKey {
                county,
                course,
                lesson,
            };
            if !self.rings.contains_key(&key) {
                return;
            }
            key
        } else {
            LessonKey {
                county: self.intern(county),
                course: self.intern(course),
                lesson: self.intern(lesson),
            }
        };
        let ring = self.rings.entry(key).or_insert([(0, 0); SLOTS]);
        let slot = &mut ring[day as usize % SLOTS];
        if slot.0 != day {
            if slot.0 > day {
                return;
            }
            *slot = (day, 0);
        }
        slot.1 = slot.1.saturating_add(opens);
    }

    /// Opens per key over the window ending `today`.
    pub fn totals(&self, today: u32) -> impl Iterator<Item = (&LessonKey, u64)> {
        self.rings.iter().filter_map(move |(key, ring)| {
            let opens = ring
                .iter()
                .filter(|(day, _)| *day + WINDOW_DAYS > today && *day <= today + 1)
                .map(|(_, opens)| *opens)
                .fold(0u64, u64::saturating_add);
            (opens > 0).then_some((key, opens))
        })
    }
}

/// Days since 1970-01-01 (UTC) at unix second `now`.
pub fn day_of(now: u64) -> u32 {
    u32::try_from(now / 86_400).unwrap_or(u32::MAX)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
