//! What the dashboard shows, computed from the fleet in memory and the
//! catalog in force: each a few milliseconds with 10,000 edges.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog::Store;
use serde::Serialize;

use super::Fleet;
use super::model::{EdgeRecord, day_of};

/// An edge not heard from for this long is silent.
pub const SILENT_SECS: u64 = 2 * 86_400;
/// Rows per page of the edges list.
pub const PER_PAGE: usize = 100;
/// Lessons the most-opened list shows.
pub const TOP_LESSONS: usize = 50;

/// A course of the catalog in force.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CourseInfo {
    pub id: String,
    pub version: u64,
    pub title_zh: Option<String>,
    pub title_en: Option<String>,
    pub grade: Option<String>,
    pub subject: Option<String>,
}

/// The catalog in force, as the pages need it.
#[derive(Debug, Clone, Default)]
pub struct CatalogView {
    pub sequence: Option<u64>,
    pub published_at: u64,
    pub courses: BTreeMap<String, CourseInfo>,
}

impl CatalogView {
    /// Reads the catalog in force from the origin's store.
    pub fn load(store: &Store) -> Result<CatalogView, String> {
        let Some(bytes) = store.signed_catalog_bytes().map_err(|e| e.to_string())? else {
            return Ok(CatalogView::default());
        };
        let signed = catalog::SignedCatalog::decode(&bytes).map_err(|e| e.to_string())?;
        let catalog = catalog::Object::decode(&signed.catalog)
            .and_then(catalog::Object::into_catalog)
            .map_err(|e| e.to_string())?;
        let mut courses = BTreeMap::new();
        for (id, entry) in &catalog.courses {
            let mut info = CourseInfo {
                id: id.clone(),
                version: entry.version,
                ..CourseInfo::default()
            };
            if let Ok(Some(catalog::Object::Course(course))) = store.object(&entry.hash) {
                info.title_zh = course.title.get(&["zh", "en"]).map(str::to_owned);
                info.title_en = course.title.get(&["en", "zh"]).map(str::to_owned);
                info.grade = course.grade;
                info.subject = course.subject;
            }
            courses.insert(id.clone(), info);
        }
        Ok(CatalogView {
            sequence: Some(catalog.sequence),
            published_at: catalog.published_at,
            courses,
        })
    }
}

/// The catalog view, re-read at most every few seconds.
pub struct CatalogCache {
    store: Arc<Store>,
    held: Mutex<Option<(Instant, Arc<CatalogView>)>>,
}

impl CatalogCache {
    pub fn new(store: Arc<Store>) -> CatalogCache {
        CatalogCache {
            store,
            held: Mutex::new(None),
        }
    }

    /// Blocking (reads the store).
    pub fn get(&self) -> Arc<CatalogView> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, view)) = &*held
            && at.elapsed() < Duration::from_secs(5)
        {
            return view.clone();
        }
        let view = match CatalogView::load(&self.store) {
            Ok(view) => Arc::new(view),
            Err(cause) => {
                tracing::warn!(%cause, "the dashboard cannot read the catalog in force");
                held.as_ref().map(|(_, v)| v.clone()).unwrap_or_default()
            }
        };
        *held = Some((Instant::now(), view.clone()));
        view
    }
}

/// One edge, as the list, the CSV and the JSON show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EdgeRow {
    pub name: String,
    pub county: String,
    /// Unix seconds its last report arrived.
    pub last_seen: u64,
    pub reports: u64,
    pub version: String,
    pub catalog_sequence: Option<u64>,
    /// Sequences behind the catalog in force; none before its first report.
    pub catalog_lag: Option<u64>,
    pub bytes_held: u64,
    pub bytes_free: u64,
    pub store_limit: Option<u64>,
    pub courses_total: u32,
    pub courses_incomplete: u32,
    pub failing: bool,
    pub behind: bool,
    pub silent: bool,
    pub last_failure: Option<String>,
    pub opens: u64,
    pub bytes_served: u64,
    pub bytes_saved: u64,
}

/// How the edges list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Name,
    County,
    LastSeen,
    Lag,
    Held,
    Free,
    Reports,
}

impl Sort {
    pub const ALL: [Sort; 7] = [
        Sort::Name,
        Sort::County,
        Sort::LastSeen,
        Sort::Lag,
        Sort::Held,
        Sort::Free,
        Sort::Reports,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::County => "county",
            Sort::LastSeen => "seen",
            Sort::Lag => "lag",
            Sort::Held => "held",
            Sort::Free => "free",
            Sort::Reports => "reports",
        }
    }

    pub fn from_code(code: &str) -> Sort {
        Sort::ALL
            .into_iter()
            .find(|sort| sort.code() == code)
            .unwrap_or_default()
    }
}

/// Which edges, in which order.
#[derive(Debug, Clone, Default)]
pub struct EdgeQuery {
    /// Only this county (exact); `None` all.
    pub county: Option<String>,
    /// Only edges whose name contains this.
    pub name: Option<String>,
    /// Only edges behind, failing or silent.
    pub flagged: bool,
    pub sort: Sort,
    pub desc: bool,
}

fn row(record: &EdgeRecord, catalog: &CatalogView, now: u64) -> EdgeRow {
    let latest = record.latest.as_ref();
    let catalog_sequence = latest.and_then(|s| s.catalog_sequence);
    let catalog_lag = match (catalog.sequence, latest) {
        (Some(current), Some(_)) => Some(current.saturating_sub(catalog_sequence.unwrap_or(0))),
        _ => None,
    };
    EdgeRow {
        name: record.name.clone(),
        county: record.county.clone().unwrap_or_default(),
        last_seen: record.last_seen,
        reports: record.reports,
        version: latest.map(|s| s.version.clone()).unwrap_or_default(),
        catalog_sequence,
        catalog_lag,
        bytes_held: latest.map_or(0, |s| s.bytes_held),
        bytes_free: latest.map_or(0, |s| s.bytes_free),
        store_limit: latest.and_then(|s| s.store_limit),
        courses_total: latest.map_or(0, |s| s.courses_total),
        courses_incomplete: latest.map_or(0, |s| {
            s.courses.iter().filter(|c| !c.complete).count() as u32
        }),
        failing: latest.is_some_and(super::model::Status::failing),
        behind: catalog_lag.is_some_and(|lag| lag > 0),
        silent: record.last_seen + SILENT_SECS < now,
        last_failure: latest
            .and_then(|s| s.failures.first())
            .map(|f| f.message.clone()),
        opens: record.opens,
        bytes_served: record.bytes_served,
        bytes_saved: record.bytes_saved,
    }
}

/// Every edge's row, by name.
pub fn all_rows(fleet: &Fleet, catalog: &CatalogView, now: u64) -> Vec<EdgeRow> {
    let mut rows: Vec<EdgeRow> = fleet.read(|mirror| {
        mirror
            .edges
            .values()
            .map(|r| row(r, catalog, now))
            .collect()
    });
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// The rows `query` selects, ordered.
pub fn select<'a>(rows: &'a [EdgeRow], query: &EdgeQuery) -> Vec<&'a EdgeRow> {
    let mut rows: Vec<&EdgeRow> = rows
        .iter()
        .filter(|r| {
            query
                .county
                .as_ref()
                .is_none_or(|county| &r.county == county)
        })
        .filter(|r| {
            query
                .name
                .as_ref()
                .is_none_or(|name| r.name.contains(name.as_str()))
        })
        .filter(|r| !query.flagged || r.behind || r.failing || r.silent)
        .collect();
    rows.sort_by(|a, b| {
        let order = match query.sort {
            Sort::Name => a.name.cmp(&b.name),
            Sort::County => a.county.cmp(&b.county),
            Sort::LastSeen => a.last_seen.cmp(&b.last_seen),
            Sort::Lag => a.catalog_lag.cmp(&b.catalog_lag),
            Sort::Held => a.bytes_held.cmp(&b.bytes_held),
            Sort::Free => a.bytes_free.cmp(&b.bytes_free),
            Sort::Reports => a.reports.cmp(&b.reports),
        };
        let order = order.then_with(|| a.name.cmp(&b.name));
        if query.desc { order.reverse() } else { order }
    });
    rows
}

/// The edges `query` selects, ordered.
pub fn edges(fleet: &Fleet, catalog: &CatalogView, query: &EdgeQuery, now: u64) -> Vec<EdgeRow> {
    select(&all_rows(fleet, catalog, now), query)
        .into_iter()
        .cloned()
        .collect()
}

/// The counties of `rows`, for the filter.
pub fn counties(rows: &[EdgeRow]) -> Vec<String> {
    rows.iter()
        .map(|r| r.county.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// How many edges hold one course's current version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Adoption {
    pub course: CourseInfo,
    /// Holding the current version, every file verified.
    pub complete: u64,
    /// Holding the current version, still fetching.
    pub partial: u64,
    /// Holding an older version.
    pub older: u64,
}

impl PartialEq for CourseInfo {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.version == other.version
    }
}
impl Eq for CourseInfo {}

/// Each course of the catalog in force and the edges holding it.
pub fn adoption(fleet: &Fleet, catalog: &CatalogView) -> Vec<Adoption> {
    let mut counts: HashMap<&str, (u64, u64, u64)> = HashMap::new();
    fleet.read(|mirror| {
        for record in mirror.edges.values() {
            let Some(latest) = &record.latest else {
                continue;
            };
            for held in &latest.courses {
                let Some((id, info)) = catalog.courses.get_key_value(&held.id) else {
                    continue;
                };
                let count = counts.entry(id.as_str()).or_default();
                if held.version >= info.version {
                    if held.complete {
                        count.0 += 1;
                    } else {
                        count.1 += 1;
                    }
                } else {
                    count.2 += 1;
                }
            }
        }
    });
    catalog
        .courses
        .values()
        .map(|info| {
            let (complete, partial, older) =
                counts.get(info.id.as_str()).copied().unwrap_or_default();
            Adoption {
                course: info.clone(),
                complete,
                partial,
                older,
            }
        })
        .collect()
}

/// A lesson's opens in a county over the window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LessonOpens {
    pub county: String,
    pub course: String,
    pub lesson: String,
    pub grade: String,
    pub opens: u64,
}

/// Every lesson's opens per county over the last
/// [`WINDOW_DAYS`](super::model::WINDOW_DAYS) days, most opened first, and
/// the grades they are in (a lesson's grade is its course's).
pub fn lesson_totals(
    fleet: &Fleet,
    catalog: &CatalogView,
    now: u64,
) -> (Vec<LessonOpens>, Vec<String>) {
    let today = day_of(now);
    let grades: HashMap<&str, &str> = catalog
        .courses
        .values()
        .map(|c| (c.id.as_str(), c.grade.as_deref().unwrap_or("")))
        .collect();
    let mut rows: Vec<LessonOpens> = fleet.read(|mirror| {
        mirror
            .window
            .totals(today)
            .map(|(key, opens)| LessonOpens {
                county: key.county.to_string(),
                course: key.course.to_string(),
                lesson: key.lesson.to_string(),
                grade: grades.get(&*key.course).copied().unwrap_or("").to_owned(),
                opens,
            })
            .collect()
    });
    rows.sort_by(|a, b| {
        b.opens
            .cmp(&a.opens)
            .then_with(|| (&a.county, &a.course, &a.lesson).cmp(&(&b.county, &b.course, &b.lesson)))
    });
    let grades = rows
        .iter()
        .map(|r| r.grade.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(str::to_owned)
        .collect();
    (rows, grades)
}

/// The [`TOP_LESSONS`] most opened of `all`, in `county` and `grade` if given.
pub fn pick_lessons<'a>(
    all: &'a [LessonOpens],
    county: Option<&str>,
    grade: Option<&str>,
) -> Vec<&'a LessonOpens> {
    all.iter()
        .filter(|l| county.is_none_or(|c| l.county == c))
        .filter(|l| grade.is_none_or(|g| l.grade == g))
        .take(TOP_LESSONS)
        .collect()
}

/// The most-opened lessons, in `county` and `grade` if given, and every grade.
pub fn top_lessons(
    fleet: &Fleet,
    catalog: &CatalogView,
    county: Option<&str>,
    grade: Option<&str>,
    now: u64,
) -> (Vec<LessonOpens>, Vec<String>) {
    let (all, grades) = lesson_totals(fleet, catalog, now);
    let picked = pick_lessons(&all, county, grade)
        .into_iter()
        .cloned()
        .collect();
    (picked, grades)
}

/// The fleet in a few numbers, for `/metrics` and the page's head.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub edges: u64,
    pub behind: u64,
    pub failing: u64,
    pub silent: u64,
    pub reports: u64,
    pub opens: u64,
    pub bytes_served: u64,
    pub bytes_saved: u64,
}

pub fn summarize(rows: &[EdgeRow]) -> Summary {
    let mut summary = Summary::default();
    for row in rows {
        summary.edges += 1;
        summary.behind += u64::from(row.behind);
        summary.failing += u64::from(row.failing);
        summary.silent += u64::from(row.silent);
        summary.reports += row.reports;
        summary.opens += row.opens;
        summary.bytes_served += row.bytes_served;
        summary.bytes_saved += row.bytes_saved;
    }
    summary
}

pub fn summary(fleet: &Fleet, catalog: &CatalogView, now: u64) -> Summary {
    summarize(&all_rows(fleet, catalog, now))
}

/// Everything the pages show, computed once per change of the fleet or
/// the catalog (and at least every [`SNAPSHOT_TTL`], for the "silent" flag).
pub struct Snapshot {
    pub catalog: Arc<CatalogView>,
    pub generation: u64,
    pub made: Instant,
    pub now: u64,
    /// By name.
    pub rows: Vec<EdgeRow>,
    pub summary: Summary,
    pub counties: Vec<String>,
    pub adoption: Vec<Adoption>,
    /// Most opened first.
    pub lessons: Vec<LessonOpens>,
    pub grades: Vec<String>,
}

/// How long a snapshot of an unchanged fleet is used.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(30);

impl Snapshot {
    pub fn take(fleet: &Fleet, catalog: Arc<CatalogView>, now: u64) -> Snapshot {
        let generation = fleet.read(|m| m.generation);
        let rows = all_rows(fleet, &catalog, now);
        let (lessons, grades) = lesson_totals(fleet, &catalog, now);
        Snapshot {
            generation,
            made: Instant::now(),
            now,
            summary: summarize(&rows),
            counties: counties(&rows),
            adoption: adoption(fleet, &catalog),
            rows,
            lessons,
            grades,
            catalog,
        }
    }

    /// Whether it still shows `generation` of the fleet and `catalog`.
    pub fn is_current(&self, generation: u64, catalog: &CatalogView) -> bool {
        self.generation == generation
            && self.catalog.sequence == catalog.sequence
            && self.made.elapsed() < SNAPSHOT_TTL
    }
}

/// The rows as CSV (RFC 4180: fields with a comma, quote or newline quoted).
pub fn csv<'a>(rows: impl IntoIterator<Item = &'a EdgeRow>) -> String {
    fn field(out: &mut String, text: &str) {
        // A leading = + - @ would be a formula in a spreadsheet.
        let guarded = text.starts_with(['=', '+', '-', '@']);
        if guarded || text.contains([',', '"', '\n', '\r']) {
            out.push('"');
            if guarded {
                out.push('\'');
            }
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    }
    let mut out = String::from(
        "name,county,last_seen,reports,version,catalog_sequence,catalog_lag,bytes_held,bytes_free,store_limit,courses_total,courses_incomplete,behind,failing,silent,opens,bytes_served,bytes_saved,last_failure\r\n",
    );
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        field(&mut out, &r.name);
        out.push(',');
        field(&mut out, &r.county);
        let numbers = [r.last_seen.to_string(), r.reports.to_string()];
        for n in numbers {
            out.push(',');
            out.push_str(&n);
        }
        out.push(',');
        field(&mut out, &r.version);
        for n in [
            opt(r.catalog_sequence),
            opt(r.catalog_lag),
            r.bytes_held.to_string(),
            r.bytes_free.to_string(),
            opt(r.store_limit),
            r.courses_total.to_string(),
            r.courses_incomplete.to_string(),
            r.behind.to_string(),
            r.failing.to_string(),
            r.silent.to_string(),
            r.opens.to_string(),
            r.bytes_served.to_string(),
            r.bytes_saved.to_string(),
        ] {
            out.push(',');
            out.push_str(&n);
        }
        out.push(',');
        field(&mut out, r.last_failure.as_deref().unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}
