//! `shanlu edge status`: what the edge holds and how its last sync went.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use catalog::Store;
use indicatif::ProgressBar;
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::{self, EdgeConfig};
use crate::lock;
use crate::sync::memory::TransportMemory;
use crate::sync::schedule::{Moment, Window};
use crate::sync::throttle::Rate;
use crate::sync::{LAST_SYNC, SyncError, SyncReport};

/// The edge's state, for people (`edge status`) and for the status API.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    pub origin: String,
    pub catalog_sequence: Option<u64>,
    pub catalog_published_at: Option<u64>,
    /// When the catalog in force expires (0: never), and the warning once it has (issue 13).
    pub catalog_expires_at: Option<u64>,
    pub catalog_warning: Option<String>,
    /// Subscribed courses the origin withdrew (issue 13).
    pub withdrawn: Vec<WithdrawnStatus>,
    pub courses: Vec<CourseStatus>,
    /// Bytes of complete blobs held.
    pub bytes_held: u64,
    /// Free and total bytes of the filesystem holding the store.
    pub disk_free: Option<u64>,
    pub disk_total: Option<u64>,
    pub last_sync: Option<SyncReport>,
    /// The background scrub: the cycle under way, the last scrub, findings.
    pub scrub: Option<crate::scrub::ScrubStatus>,
    /// The report queue (issue 15): reports waiting to go upstream, when
    /// the last was made and sent.
    pub reports: crate::report::ReportsStatus,
    /// Filled in by `edge run`: the sync in progress and the upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveStatus>,
}

/// What `edge run` knows beyond the store: the sync in progress, its cap and
/// windows, and whether the origin answered lately. Shared by the sync loop,
/// read-through and the classroom.
pub struct Live {
    /// The running sync's bytes done and to do (hidden; never drawn).
    pub progress: ProgressBar,
    syncing: AtomicBool,
    upstream: Mutex<Upstream>,
    schedule: Mutex<ScheduleStatus>,
    /// A "sync now" the loop has not started yet.
    sync_requested: AtomicBool,
    /// Wakes the sync loop for a "sync now".
    pub(crate) sync_now: Notify,
    /// Which transport worked lately, shared by sync passes and read-through.
    pub transport: Arc<TransportMemory>,
}

/// The bandwidth cap and the sync windows `edge run` keeps to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScheduleStatus {
    /// The bandwidth cap of sync passes, e.g. `2Mbit`; `null`: none.
    pub max_rate: Option<Rate>,
    /// When sync passes may start, in the edge's local time; empty: any time.
    pub windows: Vec<Window>,
    /// Outside every window: when the next opens, in Unix seconds…
    pub next_window_opens_at: Option<u64>,
    /// …and in local time for people, e.g. `2026-11-29 22:00 CST`.
    pub next_window_opens: Option<String>,
}

/// The last word on the origin's reachability.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Upstream {
    /// `None` until a connection has been tried.
    pub reachable: Option<bool>,
    /// Unix seconds of that attempt.
    pub checked_at: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    pub syncing: bool,
    pub sync_bytes_done: u64,
    pub sync_bytes_total: u64,
    /// A "sync now" was asked for and its pass has not started yet.
    pub sync_requested: bool,
    pub upstream: Upstream,
    #[serde(flatten)]
    pub schedule: ScheduleStatus,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            progress: ProgressBar::hidden(),
            syncing: AtomicBool::new(false),
            upstream: Mutex::new(Upstream::default()),
            schedule: Mutex::new(ScheduleStatus::default()),
            sync_requested: AtomicBool::new(false),
            sync_now: Notify::new(),
            transport: Arc::default(),
        }
    }
}

impl Live {
    pub fn set_syncing(&self, syncing: bool) {
        self.syncing.store(syncing, Ordering::Relaxed);
        if syncing {
            self.sync_requested.store(false, Ordering::Relaxed);
        } else {
            self.progress.set_length(0);
            self.progress.set_position(0);
        }
    }

    /// Whether a sync pass is running (the scrub pauses meanwhile).
    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::Relaxed)
    }

    /// Asks the sync loop for a pass now, whatever the windows say; if one
    /// is running, the next starts right after it.
    pub fn request_sync(&self) {
        self.sync_requested.store(true, Ordering::Relaxed);
        self.sync_now.notify_one();
    }

    /// The cap and windows in force, set once when `edge run` starts.
    pub fn set_plan(&self, max_rate: Option<Rate>, windows: Vec<Window>) {
        let mut schedule = lock(&self.schedule);
        schedule.max_rate = max_rate;
        schedule.windows = windows;
    }

    /// Outside every window: when the next opens; `None` inside one.
    pub fn set_waiting(&self, opens: Option<&Moment>) {
        let mut schedule = lock(&self.schedule);
        schedule.next_window_opens_at = opens.map(Moment::unix_seconds);
        schedule.next_window_opens = opens.map(ToString::to_string);
    }

    /// Records the outcome of a connection attempt to the origin.
    pub fn upstream_seen(&self, result: Result<(), String>) {
        let mut upstream = lock(&self.upstream);
        upstream.reachable = Some(result.is_ok());
        upstream.checked_at = Some(server::origin::now_secs());
        upstream.error = result.err();
    }

    pub fn snapshot(&self) -> LiveStatus {
        let syncing = self.syncing.load(Ordering::Relaxed);
        LiveStatus {
            syncing,
            sync_bytes_done: if syncing { self.progress.position() } else { 0 },
            sync_bytes_total: if syncing {
                self.progress.length().unwrap_or(0)
            } else {
                0
            },
            sync_requested: self.sync_requested.load(Ordering::Relaxed),
            upstream: lock(&self.upstream).clone(),
            schedule: lock(&self.schedule).clone(),
        }
    }
}

/// Free and total bytes of the filesystem holding `path`.
fn disk_space(path: &Path) -> Option<(u64, u64)> {
    let stats = rustix::fs::statvfs(path).ok()?;
    Some((
        stats.f_bavail.saturating_mul(stats.f_frsize),
        stats.f_blocks.saturating_mul(stats.f_frsize),
    ))
}

/// A subscribed course the origin withdrew, as the catalog's tombstone says.
#[derive(Debug, Clone, Serialize)]
pub struct WithdrawnStatus {
    pub id: String,
    pub withdrawn_at: u64,
    pub reason: String,
    pub last_version: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CourseStatus {
    pub id: String,
    pub version: u64,
    pub subscribed: bool,
    /// `held` (every file), `partial`, or `metadata` (no files held).
    pub state: &'static str,
    pub files: u64,
    pub files_held: u64,
    pub total_size: u64,
}

pub fn status(dir: &Path) -> Result<EdgeStatus, SyncError> {
    let config = EdgeConfig::load(dir)?;
    let store = Store::open_existing(config::store_path(dir))?;
    status_of(dir, &config, &store)
}

/// The status of the edge in `dir`, from its already open store.
pub fn status_of(dir: &Path, config: &EdgeConfig, store: &Store) -> Result<EdgeStatus, SyncError> {
    let key = config.origin_key;
    let last_sync = store
        .meta(LAST_SYNC)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let disk = disk_space(&config::store_path(dir));
    let mut status = EdgeStatus {
        origin: config.origin.to_string(),
        catalog_sequence: None,
        catalog_published_at: None,
        catalog_expires_at: None,
        catalog_warning: None,
        withdrawn: Vec::new(),
        courses: Vec::new(),
        bytes_held: store.blob_bytes()?,
        disk_free: disk.map(|(free, _)| free),
        disk_total: disk.map(|(_, total)| total),
        last_sync,
        scrub: Some(crate::scrub::status(store, config)?),
        reports: crate::report::Book::new(dir).status(),
        live: None,
    };
    let Some(signed) = store.signed_catalog()? else {
        return Ok(status);
    };
    let catalog = signed.verify(&key).map_err(SyncError::held_catalog)?;
    status.catalog_sequence = Some(catalog.sequence);
    status.catalog_published_at = Some(catalog.published_at);
    status.catalog_expires_at = Some(catalog.expires_at);
    status.catalog_warning =
        crate::sync::accept::expiry_warning(&catalog, server::origin::now_secs());
    status.withdrawn = catalog
        .withdrawn
        .iter()
        .filter(|(id, _)| config.subscribe.includes(id))
        .map(|(id, tombstone)| WithdrawnStatus {
            id: id.clone(),
            withdrawn_at: tombstone.withdrawn_at,
            reason: tombstone.reason.clone(),
            last_version: tombstone.last_version,
        })
        .collect();
    for (id, entry) in &catalog.courses {
        let mut files = 0;
        let mut held = 0;
        if let Some(course) = store
            .object(&entry.hash)?
            .and_then(|o| o.into_course().ok())
        {
            let mut entries = course.files.clone();
            for lesson_ref in &course.lessons {
                if let Some(lesson) = store
                    .object(&lesson_ref.hash)?
                    .and_then(|o| o.into_lesson().ok())
                {
                    entries.extend(lesson.files);
                }
            }
            for file in entries {
                files += 1;
                if store.has_blob(&file.blob)? {
                    held += 1;
                }
            }
        }
        let state = if files > 0 && held == files {
            "held"
        } else if held > 0 {
            "partial"
        } else {
            "metadata"
        };
        status.courses.push(CourseStatus {
            id: id.clone(),
            version: entry.version,
            subscribed: config.subscribe.includes(id),
            state,
            files,
            files_held: held,
            total_size: entry.total_size,
        });
    }
    Ok(status)
}
