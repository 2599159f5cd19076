//! The commit half of a remote publish, and a remote withdrawal (issue 15).
//!
//! The course object sent is checked against what the origin holds (every
//! lesson it names kept, every file whole), then committed by the very step
//! a local publish ends with ([`crate::publish::commit_course`]): the
//! version comes from the catalog in force, an identical course changes
//! nothing, and the catalog is signed here, under `publish.lock`. The key
//! never leaves the origin. Both actions go to `admin.log` with the admin's name.

use std::path::Path;
use std::sync::Arc;

use catalog::{Object, limits};

use super::upload::{Received, check_files_held};
use super::{AdminRequest, AdminResponse, Desk, log};
use crate::protocol::Response;
use crate::publish::{self, PublishReport};
use crate::serve::State;

/// Answers [`AdminRequest::Publish`] and [`AdminRequest::Withdraw`] from `admin`.
pub async fn answer(request: AdminRequest, admin: &str, state: &Arc<State>) -> Response {
    let admin = admin.to_owned();
    super::on_desk(state, move |desk| match request {
        AdminRequest::Publish {
            course,
            min_sequence,
        } => publish_course(desk, &admin, &course, min_sequence),
        AdminRequest::Withdraw {
            course,
            reason,
            min_sequence,
        } => withdraw(desk, &admin, &course, &reason, min_sequence),
        _ => Err("not a publish request".to_owned()),
    })
    .await
}

fn publish_course(
    desk: &Desk,
    admin: &str,
    course: &[u8],
    min_sequence: Option<u64>,
) -> Result<AdminResponse, String> {
    let Ok(Object::Course(course)) = Object::decode(course) else {
        return Err("a publish carries a course object".to_owned());
    };
    limits::check_course(&course).map_err(|err| format!("course {}: {err}", course.id))?;
    desk.uploads.writer(desk)?.settle()?;
    let origin = desk
        .origin()
        .map_err(|e| format!("opening the origin failed: {e}"))?;
    let store = origin.store();
    let owner = format!("course {}", course.id);
    check_files_held(store, &course.files, &owner)?;
    let mut files = course.files.len();
    for lesson in &course.lessons {
        match store.object(&lesson.hash) {
            Ok(Some(Object::Lesson(held)))
                if held.id == lesson.id
                    && held.files.iter().map(|f| f.size).sum::<u64>() == lesson.size =>
            {
                files += held.files.len();
            }
            Ok(_) => {
                return Err(format!(
                    "{owner}: lesson {} was not sent to the origin (or does not match); send the lessons first",
                    lesson.id
                ));
            }
            Err(err) => return Err(format!("reading lesson {} failed: {err}", lesson.id)),
        }
    }
    let received = desk.uploads.take(admin);
    let mut report = PublishReport::for_course(&course);
    report.files = files;
    report.new_chunks = received.chunks;
    report.new_chunk_bytes = received.bytes;
    let course_id = course.id.clone();
    let committed = (|| {
        let _lock = publish::lock(&origin)?;
        if let Some(floor) = min_sequence {
            origin.raise_sequence_floor(floor)?;
        }
        let named = Path::new(admin).join(&course_id);
        publish::commit_course(
            &origin,
            catalog::store::ImportBatch::new(),
            course,
            &named,
            &mut report,
            &indicatif::ProgressBar::hidden(),
        )
    })();
    if let Err(err) = committed {
        let message = catalog::format::error_chain(&err);
        record(desk, admin, "publish-refused", &course_id, &message);
        return Err(format!(
            "publishing {course_id}: {message} (the catalog in force is unchanged)"
        ));
    }
    let detail = publish_detail(&report, received);
    record(desk, admin, "publish", &course_id, &detail);
    tracing::info!(%admin, course = %course_id, version = report.course_version, sequence = report.sequence, unchanged = report.unchanged, uploaded_chunks = received.chunks, uploaded_bytes = received.bytes, "remote publish");
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    Ok(AdminResponse::Published { json })
}

fn publish_detail(report: &PublishReport, received: Received) -> String {
    let what = if report.unchanged {
        format!(
            "unchanged at version {}, catalog sequence {}",
            report.course_version, report.sequence
        )
    } else {
        format!(
            "version {} in catalog sequence {}",
            report.course_version, report.sequence
        )
    };
    format!(
        "{what}; uploaded {} chunks ({} bytes) since this administrator's last publish, {} sent again",
        received.chunks, received.bytes, received.again
    )
}

fn withdraw(
    desk: &Desk,
    admin: &str,
    course: &str,
    reason: &str,
    min_sequence: Option<u64>,
) -> Result<AdminResponse, String> {
    let origin = desk
        .origin()
        .map_err(|e| format!("opening the origin failed: {e}"))?;
    if let Some(floor) = min_sequence {
        origin
            .raise_sequence_floor(floor)
            .map_err(|e| format!("raising the sequence floor failed: {e}"))?;
    }
    let report = crate::history::withdraw(&origin, course, reason).map_err(|err| {
        format!(
            "withdrawing {course}: {} (the catalog in force is unchanged)",
            catalog::format::error_chain(&err)
        )
    })?;
    let detail = format!(
        "last version {} in catalog sequence {}; reason: {reason}",
        report.version.unwrap_or(0),
        report.sequence
    );
    record(desk, admin, "withdraw", course, &detail);
    let json = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    Ok(AdminResponse::Withdrawn { json })
}

/// Logs an action; a log that cannot be written is itself logged.
fn record(desk: &Desk, admin: &str, action: &str, subject: &str, detail: &str) {
    if let Err(err) = log::record(desk.dir(), admin, action, subject, detail) {
        tracing::error!(%admin, action, subject, cause = %err, "the administrators' log cannot be written");
    }
}
