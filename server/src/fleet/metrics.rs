//! Prometheus `/metrics` of the origin (text exposition format 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::view::{CatalogView, Summary};
use crate::serve::Stats;

/// What `/metrics` shows besides the fleet.
pub struct OriginCounts<'a> {
    pub stats: Option<&'a Stats>,
    /// Administrators' actions by kind, from `admin.log`.
    pub actions: &'a [(String, u64)],
    pub duplicates: u64,
    /// Dashboard sessions open.
    pub sessions: usize,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

/// The exposition text.
pub fn render(summary: &Summary, catalog: &CatalogView, counts: &OriginCounts<'_>) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "shanlu_fleet_edges",
        "gauge",
        "Edges that have sent a report.",
        summary.edges,
    );
    metric(
        &mut out,
        "shanlu_fleet_edges_behind",
        "gauge",
        "Edges holding an older catalog than the one in force.",
        summary.behind,
    );
    metric(
        &mut out,
        "shanlu_fleet_edges_failing",
        "gauge",
        "Edges whose last sync was incomplete or that failed in the day before their last report.",
        summary.failing,
    );
    metric(
        &mut out,
        "shanlu_fleet_edges_silent",
        "gauge",
        "Edges with no report for two days.",
        summary.silent,
    );
    metric(
        &mut out,
        "shanlu_fleet_reports_total",
        "counter",
        "Reports applied (each edge and sequence once).",
        summary.reports,
    );
    metric(
        &mut out,
        "shanlu_fleet_reports_duplicate_total",
        "counter",
        "Reports received again and not applied, since the origin started.",
        counts.duplicates,
    );
    metric(
        &mut out,
        "shanlu_fleet_lesson_opens_total",
        "counter",
        "Lesson pages opened in classrooms, as the edges report.",
        summary.opens,
    );
    metric(
        &mut out,
        "shanlu_fleet_classroom_bytes_served_total",
        "counter",
        "Bytes edges served to classrooms, as they report.",
        summary.bytes_served,
    );
    metric(
        &mut out,
        "shanlu_fleet_bytes_saved_total",
        "counter",
        "Bytes edges did not fetch thanks to dedupe and deltas, as they report.",
        summary.bytes_saved,
    );
    metric(
        &mut out,
        "shanlu_origin_catalog_sequence",
        "gauge",
        "The sequence of the catalog in force (each publish, withdraw or renew raises it).",
        catalog.sequence.unwrap_or(0),
    );
    metric(
        &mut out,
        "shanlu_origin_catalog_courses",
        "gauge",
        "Courses in the catalog in force.",
        catalog.courses.len() as u64,
    );
    let _ = write!(
        out,
        "# HELP shanlu_origin_admin_actions_total Administrators' actions in admin.log, by action.\n# TYPE shanlu_origin_admin_actions_total counter\n"
    );
    for (action, count) in counts.actions {
        let label: String = action
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let _ = writeln!(
            out,
            "shanlu_origin_admin_actions_total{{action=\"{label}\"}} {count}"
        );
    }
    metric(
        &mut out,
        "shanlu_dashboard_sessions",
        "gauge",
        "Dashboard sessions open.",
        counts.sessions as u64,
    );
    if let Some(stats) = counts.stats {
        metric(
            &mut out,
            "shanlu_origin_chunks_served_total",
            "counter",
            "Chunks the origin sent to edges since it started.",
            stats.chunks_served.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "shanlu_origin_bytes_served_total",
            "counter",
            "Chunk bytes the origin sent to edges since it started.",
            stats.chunk_bytes_served.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "shanlu_origin_objects_served_total",
            "counter",
            "Objects the origin sent to edges since it started.",
            stats.objects_served.load(Ordering::Relaxed),
        );
        metric(
            &mut out,
            "shanlu_origin_refused_connections_total",
            "counter",
            "Connections refused (bad or revoked tokens).",
            stats.refused_connections.load(Ordering::Relaxed),
        );
    }
    out
}
