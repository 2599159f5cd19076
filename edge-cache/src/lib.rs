//! The school edge node.
//!
//! # Layout
//! - [`config`]: the edge's data folder and `edge.toml` (origin, pinned key and
//!   certificate, token, subscriptions).
//! - [`client`]: the QUIC connection to the origin and its requests.
//! - [`sync`]: one sync pass — catalog, metadata, then files, resumable.
//! - [`status`]: what the edge holds and how its last sync went.
//! - [`classroom`]: the classroom HTTP server — lesson files with ranges, the JSON API.
//! - [`ui`]: the pages teachers and pupils read; [`i18n`]: their labels in four languages.
//! - [`readthrough`]: lesson files not held yet, fetched and streamed on demand.
//! - [`metrics`]: Prometheus counters and gauges for `/metrics`.
//! - [`front`]: the HTTP/1.1 front door — held files by `sendfile`, the rest by hyper.
//! - [`files`]: where lesson files are, and reading them in recycled blocks.
//! - [`range`]: HTTP byte-range parsing.
//! - [`search`]: the classroom search over titles, summaries and tags (zh, ii, bo, en).
//! - [`throttle`]: the bandwidth cap — rates like `2Mbit`, and the token bucket
//!   that paces a sync pass to one.
//! - [`schedule`]: sync windows (`22:00-06:00`) in local time.
//! - [`run`]: `edge run` — the sync loop (on a timer, within the windows, or
//!   now when asked) and the classroom server together.
//!
//! The store itself is [`catalog::Store`], shared with the origin.

pub mod classroom;
pub mod client;
pub mod config;
pub mod fallback;
pub mod files;
pub mod front;
pub mod i18n;
pub mod metrics;
pub mod range;
pub mod readthrough;
pub mod run;
pub mod schedule;
pub mod search;
pub mod status;
pub mod sync;
pub mod throttle;
pub mod ui;
pub mod window;

pub use catalog::Store;

/// Locks a mutex whose holder may have panicked: the state it guards stays
/// usable (counters, caches, flags), so a panic in one request does not take
/// the classroom down.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
pub use config::{EdgeConfig, Subscription};
pub use sync::{SyncOptions, SyncReport, sync_once};
