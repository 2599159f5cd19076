//! The school edge node.
//!
//! # Layout
//! - [`config`]: the edge's data folder and `edge.toml` (origin, pinned key and
//!   certificate, token, subscriptions).
//! - [`client`]: the QUIC connection to the origin and its requests.
//! - [`sync`]: one sync pass — catalog, metadata, then files, resumable.
//! - [`status`]: what the edge holds and how its last sync went.
//! - [`classroom`]: the classroom HTTP server — lesson files with ranges, the JSON API.
//! - [`range`]: HTTP byte-range parsing.
//! - [`run`]: `edge run` — the periodic sync loop and the classroom server together.
//!
//! The store itself is [`catalog::Store`], shared with the origin.

pub mod classroom;
pub mod client;
pub mod config;
pub mod range;
pub mod run;
pub mod status;
pub mod sync;

pub use catalog::Store;
pub use config::{EdgeConfig, Subscription};
pub use sync::{SyncReport, sync_once};
