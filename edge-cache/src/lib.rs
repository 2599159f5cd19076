//! The school edge node.
//!
//! # Layout
//! - [`config`]: the edge's data folder and `edge.toml` (origin, pinned key and
//!   certificate, token, subscriptions).
//! - [`client`]: the QUIC connection to the origin and its requests.
//! - [`sync`]: one sync pass — catalog, metadata, then files, resumable.
//! - [`status`]: what the edge holds and how its last sync went.
//!
//! The store itself is [`catalog::Store`], shared with the origin.

pub mod client;
pub mod config;
pub mod status;
pub mod sync;

pub use catalog::Store;
pub use config::{EdgeConfig, Subscription};
pub use sync::{SyncReport, sync_once};
