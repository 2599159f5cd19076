//! `shanlu edge status`: what the edge holds and how its last sync went.

use std::path::Path;

use catalog::Store;
use serde::Serialize;

use crate::config::{self, EdgeConfig};
use crate::sync::{LAST_SYNC, SyncError, SyncReport};

/// The edge's state, for people (`edge status`) and for the status API.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeStatus {
    pub origin: String,
    pub catalog_sequence: Option<u64>,
    pub catalog_published_at: Option<u64>,
    pub courses: Vec<CourseStatus>,
    /// Bytes of complete blobs held.
    pub bytes_held: u64,
    pub last_sync: Option<SyncReport>,
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
    let key = config.public_key()?;
    let store = Store::open_existing(config::store_path(dir))?;
    let last_sync = store
        .meta(LAST_SYNC)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let mut status = EdgeStatus {
        origin: config.origin.clone(),
        catalog_sequence: None,
        catalog_published_at: None,
        courses: Vec::new(),
        bytes_held: store.blob_bytes()?,
        last_sync,
    };
    let Some(signed) = store.signed_catalog()? else {
        return Ok(status);
    };
    let catalog = signed
        .verify(&key)
        .map_err(|err| SyncError::BadCatalog(format!("the catalog held locally: {err}")))?;
    status.catalog_sequence = Some(catalog.sequence);
    status.catalog_published_at = Some(catalog.published_at);
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
