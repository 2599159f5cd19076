//! The school edge node.
//!
//! # Layout
//! The edge has two halves: [`sync`] brings content from the origin, and
//! [`classroom`] serves it to teachers and pupils.
//!
//! - [`config`]: the edge's data folder and `edge.toml` (origin, pinned key and
//!   certificate, token, subscriptions).
//! - [`sync`]: one sync pass — catalog, metadata, then files, resumable.
//!   - [`sync::client`]: the QUIC connection to the origin and its requests;
//!     [`sync::fallback`]: the same requests over HTTPS where UDP is blocked.
//!   - [`sync::readthrough`]: lesson files not held yet, fetched and streamed
//!     on demand.
//!   - [`sync::engine`]: the one download engine — an actor that owns every
//!     file being assembled, fed by one priority queue (reader > class >
//!     video heads > prefetch); [`sync::source`]: where chunks come from
//!     (the origin today; a parent edge, a USB bundle, a LAN peer next).
//!   - [`sync::plan`]: the sync plan as pure functions — catalog diff, file
//!     jobs, chunk plan, delta bases.
//!   - [`sync::throttle`]: the bandwidth cap — rates like `2Mbit`, and the
//!     token bucket that paces a pass; [`sync::window`]: receive windows sized
//!     from the link; [`sync::schedule`]: sync windows (`22:00-06:00`).
//! - [`classroom`]: the classroom HTTP server — lesson files with ranges, the
//!   JSON API.
//!   - [`classroom::front`]: the HTTP/1.1 front door — held files by
//!     `sendfile`, the rest by hyper.
//!   - [`classroom::ui`]: the pages teachers and pupils read;
//!     [`classroom::i18n`]: their labels in four languages;
//!     [`classroom::search`]: search over titles, summaries and tags.
//!   - [`classroom::files`]: where lesson files are, and reading them in
//!     recycled blocks; [`classroom::range`]: HTTP byte-range parsing.
//! - [`status`]: what the edge holds and how its last sync went.
//! - [`metrics`]: Prometheus counters and gauges for `/metrics`.
//! - [`run`]: `edge run` — the sync loop (on a timer, within the windows, or
//!   now when asked) and the classroom server together.
//!
//! The store itself is [`catalog::Store`], shared with the origin.

pub mod classroom;
pub mod config;
pub mod metrics;
pub mod run;
pub mod status;
pub mod sync;

pub use catalog::Store;

/// Locks a mutex whose holder may have panicked: the state it guards stays
/// usable (counters, caches, flags), so a panic in one request does not take
/// the classroom down.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
pub use config::{EdgeConfig, Subscription};
pub use sync::{SyncOptions, SyncReport, sync_once};
