//! The school edge node.
//!
//! # Layout
//! The edge has two halves: [`sync`] brings content from the origin, and
//! [`classroom`] serves it to teachers and pupils.
//!
//! - [`config`]: the edge's data folder and `edge.toml` (origin, pinned key and
//!   certificate, token, subscriptions), parsed once into typed, checked fields
//!   (its `fields`: [`config::OriginAddr`], [`config::CertPin`]).
//! - [`sync`]: one sync pass — catalog, metadata, then files, resumable.
//!   - [`sync::client`]: the QUIC connection to the origin and its requests;
//!     [`sync::fallback`]: the same requests over HTTPS where UDP is blocked.
//!     [`sync::memory`]: the edge's memory of which transport worked lately.
//!   - [`sync::readthrough`]: lesson files not held yet, fetched and streamed
//!     on demand.
//!   - [`sync::engine`]: the one download engine — an actor that owns every
//!     file being assembled, fed by one priority queue (reader > class >
//!     video heads > prefetch); [`sync::source`]: where chunks come from
//!     (the upstream: the origin or a county edge; LAN peers before it).
//!   - [`sync::plan`]: the sync plan as pure functions — catalog diff, file
//!     jobs, chunk plan, delta bases.
//!   - [`sync::throttle`]: the bandwidth cap — rates like `2Mbit`, and the
//!     token bucket that paces a pass; [`sync::window`]: receive windows sized
//!     from the link; [`sync::schedule`]: sync windows (`22:00-06:00`).
//! - [`classroom`]: the classroom HTTP server — lesson files with ranges, the
//!   JSON API, the pages; its own tour lists every module.
//!   - [`classroom::routes`]: the one route table, read by the router and the
//!     front door alike.
//!   - [`classroom::front`]: the HTTP/1.1 front door — held files by
//!     `sendfile`, every other request by hyper, one request at a time.
//!   - [`classroom::serve`]: the file routes; [`classroom::answer`]: a held
//!     file's answer (ranges, conditionals); [`classroom::range`]: HTTP
//!     byte-range parsing; [`classroom::files`]: where lesson files are, and
//!     reading them in recycled blocks.
//!   - [`classroom::api`]: the JSON API and `/metrics`;
//!     [`classroom::search`]: search over titles, summaries and tags.
//!   - [`classroom::ui`]: the pages teachers and pupils read;
//!     [`classroom::i18n`]: their labels in four languages.
//!   - [`classroom::error`]: store and I/O failures, answered 500 with their
//!     cause logged.
//! - [`quota`]: the disk quota (`max_store`, `min_free`), the plan before a
//!   pass, eviction of cached blobs least recently opened first, and the
//!   edge's garbage collection (issue 13).
//! - [`status`]: what the edge holds and how its last sync went.
//! - [`scrub`]: the background scrub — held blobs re-hashed at a paced rate
//!   inside the sync windows, a bad one quarantined and fetched again.
//! - [`metrics`]: Prometheus counters and gauges for `/metrics`.
//! - [`run`]: `edge run` — the sync loop (on a timer, within the windows, or
//!   now when asked) and the classroom server together.
//!
//! - [`bundle`]: USB bundles (issue 14) — the pack format, `bundle create`,
//!   the have list and `edge import`, verified as a sync pass is.
//! - [`report`]: reports to the bureau (issue 15) — usage per lesson per
//!   day, the durable report queue, sending, a county's forwarding.
//! - [`downstream`]: serving edges below this one (issue 14: a county edge,
//!   or a LAN peer) with the origin's own server, relaying what it lacks.
//!
//! The store itself is [`catalog::Store`], shared with the origin.

pub mod bundle;
pub mod classroom;
pub mod config;
pub mod downstream;
pub mod metrics;
pub mod quota;
pub mod report;
pub mod run;
pub mod scrub;
pub mod status;
pub mod sync;
pub mod teachers;

pub use catalog::Store;

/// Locks a mutex whose holder may have panicked: the state it guards stays
/// usable (counters, caches, flags), so a panic in one request does not take
/// the classroom down.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
pub use config::{EdgeConfig, Subscription};
pub use sync::{SyncOptions, SyncReport, sync_once};
