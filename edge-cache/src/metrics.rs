//! The classroom's Prometheus metrics, served at `/metrics`.
//!
//! Counters are bumped where the work happens; gauges that describe the
//! edge's state (sync progress, bytes held, catalog sequence) are read fresh
//! at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::status::{EdgeStatus, LiveStatus};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route pattern, e.g. `/courses/{course}/{lesson}/{*path}`.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Every metric of the classroom.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub bytes_served: Counter,
    /// Files answered from blobs the edge holds.
    pub cache_hits: Counter,
    /// Files that had to be read through from the origin.
    pub cache_misses: Counter,
    /// Answers the front door sent itself, the body by `sendfile`.
    pub sendfile_responses: Counter,
    /// Chunk bytes fetched from the origin for read-through.
    pub read_through_bytes: Counter,
    pub sync_passes: Family<OutcomeLabels, Counter>,
    sync_running: Gauge,
    sync_bytes_done: Gauge,
    sync_bytes_total: Gauge,
    sync_waiting_for_window: Gauge,
    catalog_sequence: Gauge,
    bytes_held: Gauge,
    disk_free: Gauge,
    files_missing: Gauge,
    upstream_reachable: Gauge,
    sync_over_fallback: Gauge,
    /// What `--serve-edges` served to edges below (issue 14), counted by
    /// the server; copied into the counters below at each scrape.
    pub edges_below: Arc<server::serve::Stats>,
    edges_below_counters: [Counter; 4],
    edges_below_seen: Mutex<[u64; 4]>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("shanlu_edge");
        let metrics = Metrics {
            requests: Family::default(),
            bytes_served: Counter::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            sendfile_responses: Counter::default(),
            read_through_bytes: Counter::default(),
            sync_passes: Family::default(),
            sync_running: Gauge::default(),
            sync_bytes_done: Gauge::default(),
            sync_bytes_total: Gauge::default(),
            sync_waiting_for_window: Gauge::default(),
            catalog_sequence: Gauge::default(),
            bytes_held: Gauge::default(),
            disk_free: Gauge::default(),
            files_missing: Gauge::default(),
            upstream_reachable: Gauge::default(),
            sync_over_fallback: Gauge::default(),
            edges_below: Arc::default(),
            edges_below_counters: Default::default(),
            edges_below_seen: Mutex::new([0; 4]),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "Classroom HTTP requests by route and status",
            metrics.requests.clone(),
        );
        r.register(
            "http_bytes_served",
            "Body bytes of lesson files sent to classrooms",
            metrics.bytes_served.clone(),
        );
        r.register(
            "cache_hits",
            "File requests answered from blobs held at the school",
            metrics.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "File requests read through from the origin",
            metrics.cache_misses.clone(),
        );
        r.register(
            "sendfile_responses",
            "Held-file answers sent by the front door with sendfile, not by hyper",
            metrics.sendfile_responses.clone(),
        );
        r.register(
            "read_through_bytes",
            "Chunk bytes fetched from the origin for read-through",
            metrics.read_through_bytes.clone(),
        );
        r.register(
            "sync_passes",
            "Finished sync passes by outcome (complete, incomplete, failed)",
            metrics.sync_passes.clone(),
        );
        r.register(
            "sync_running",
            "1 while a sync pass runs",
            metrics.sync_running.clone(),
        );
        r.register(
            "sync_bytes_done",
            "Bytes done of the running sync pass",
            metrics.sync_bytes_done.clone(),
        );
        r.register(
            "sync_bytes_total",
            "Bytes to fetch in the running sync pass",
            metrics.sync_bytes_total.clone(),
        );
        r.register(
            "sync_waiting_for_window",
            "1 while edge run waits outside its sync windows",
            metrics.sync_waiting_for_window.clone(),
        );
        r.register(
            "catalog_sequence",
            "Sequence of the catalog in force",
            metrics.catalog_sequence.clone(),
        );
        r.register(
            "store_bytes_held",
            "Bytes of verified files held",
            metrics.bytes_held.clone(),
        );
        r.register(
            "disk_free_bytes",
            "Free bytes on the store's filesystem",
            metrics.disk_free.clone(),
        );
        r.register(
            "files_missing",
            "Files of subscribed courses not held after the last sync",
            metrics.files_missing.clone(),
        );
        r.register(
            "upstream_reachable",
            "1 if the last connection to the origin succeeded, 0 if it failed, -1 if untried",
            metrics.upstream_reachable.clone(),
        );
        r.register(
            "sync_over_fallback",
            "1 if the last sync pass ran over the HTTP(S) fallback (QUIC could not connect), 0 over QUIC, -1 if none yet",
            metrics.sync_over_fallback.clone(),
        );
        let below = [
            (
                "edges_below_chunks",
                "Chunks sent to edges below this one (edge run --serve-edges)",
            ),
            (
                "edges_below_chunk_bytes",
                "Chunk bytes sent to edges below this one, as they travelled",
            ),
            (
                "edges_below_objects",
                "Metadata objects sent to edges below this one",
            ),
            (
                "edges_below_refused_connections",
                "Connections from edges below refused for an unknown token",
            ),
        ];
        for ((name, help), counter) in below.into_iter().zip(&metrics.edges_below_counters) {
            r.register(name, help, counter.clone());
        }
        Metrics {
            registry,
            ..metrics
        }
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    pub fn sync_outcome(&self, outcome: &'static str) {
        self.sync_passes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Brings the counters of what edges below were served up to the server's counts.
    fn copy_edges_below(&self) {
        let stats = &self.edges_below;
        let now = [
            stats.chunks_served.load(Ordering::Relaxed),
            stats.chunk_bytes_served.load(Ordering::Relaxed),
            stats.objects_served.load(Ordering::Relaxed),
            stats.refused_connections.load(Ordering::Relaxed),
        ];
        let mut seen = crate::lock(&self.edges_below_seen);
        for ((counter, now), seen) in self
            .edges_below_counters
            .iter()
            .zip(now)
            .zip(seen.iter_mut())
        {
            counter.inc_by(now.saturating_sub(*seen));
            *seen = now.max(*seen);
        }
    }

    /// The OpenMetrics text for a scrape, with the state gauges refreshed.
    pub fn render(&self, status: Option<&EdgeStatus>, live: &LiveStatus) -> String {
        self.copy_edges_below();
        self.sync_running.set(i64::from(live.syncing));
        self.sync_bytes_done.set(gauge_value(live.sync_bytes_done));
        self.sync_bytes_total
            .set(gauge_value(live.sync_bytes_total));
        self.sync_waiting_for_window
            .set(i64::from(live.schedule.next_window_opens_at.is_some()));
        self.upstream_reachable.set(match live.upstream.reachable {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        });
        if let Some(status) = status {
            let transport = status
                .last_sync
                .as_ref()
                .and_then(|last| last.transport.as_deref());
            self.sync_over_fallback.set(match transport {
                Some("quic") => 0,
                Some(_) => 1,
                None => -1,
            });
            self.catalog_sequence
                .set(gauge_value(status.catalog_sequence.unwrap_or(0)));
            self.bytes_held.set(gauge_value(status.bytes_held));
            self.disk_free
                .set(gauge_value(status.disk_free.unwrap_or(0)));
            self.files_missing.set(gauge_value(
                status
                    .courses
                    .iter()
                    .filter(|course| course.subscribed)
                    .map(|course| course.files - course.files_held)
                    .sum(),
            ));
        }
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_carry_counters_and_state() {
        let metrics = Metrics::default();
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: "/files/{hash}".into(),
                status: 206,
            })
            .inc();
        metrics.bytes_served.inc_by(1234);
        metrics.sync_outcome("complete");
        let live = LiveStatus {
            syncing: true,
            sync_bytes_done: 10,
            sync_bytes_total: 40,
            ..LiveStatus::default()
        };
        let text = metrics.render(None, &live);
        assert!(
            text.contains(
                r#"shanlu_edge_http_requests_total{route="/files/{hash}",status="206"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("shanlu_edge_http_bytes_served_total 1234"),
            "{text}"
        );
        assert!(text.contains(r#"shanlu_edge_sync_passes_total{outcome="complete"} 1"#));
        assert!(text.contains("shanlu_edge_sync_bytes_done 10"), "{text}");
        assert!(text.contains("shanlu_edge_upstream_reachable -1"), "{text}");
        // Issue 14: what edges below were served, as counters that only grow.
        metrics
            .edges_below
            .chunks_served
            .fetch_add(3, Ordering::Relaxed);
        let text = metrics.render(None, &live);
        assert!(
            text.contains("shanlu_edge_edges_below_chunks_total 3"),
            "{text}"
        );
        metrics
            .edges_below
            .chunks_served
            .fetch_add(2, Ordering::Relaxed);
        let text = metrics.render(None, &live);
        assert!(
            text.contains("shanlu_edge_edges_below_chunks_total 5"),
            "{text}"
        );
        assert!(
            text.contains("shanlu_edge_sync_waiting_for_window 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
