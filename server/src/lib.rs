//! The shanlu origin: what a province or county education bureau runs.
//!
//! # Layout
//! - [`origin`]: the origin's data folder — signing key, admin token, store — and `origin init`.
//! - [`folder`]: reading a course folder (with its optional `course.toml` and
//!   `lesson.toml` files) into a checked plan, refusing bad input before anything is stored;
//!   its `walk`, its safe `open`s and [`folder::Guard`], and its toml files and names.
//! - [`publish`]: storing a course folder's files and committing the new course
//!   version and signed catalog in one step.
//! - [`history`]: withdraw, revert, renew and key rotation: each the next
//!   catalog sequence, under the publish lock (issue 13).
//! - [`tls`]: the origin's self-signed certificate and the pinned-fingerprint verifier.
//! - [`tokens`]: per-edge and per-administrator tokens (`edges.toml`, `admins.toml`),
//!   stored hashed; revocation (issue 15).
//! - [`join`]: join codes (origin addresses, key, certificate pin and token in one
//!   checksummed line) and their terminal QR codes (issue 15).
//! - [`admin`]: administrators' requests over the sync protocol (issue 15).
//! - [`fleet`]: the origin's fleet: edges' reports kept (`DIR/fleet/`), the dashboard
//!   (`origin serve --admin`) and `/metrics` (issue 15).
//! - [`report`]: edge reports, sealed, and where they go ([`report::ReportSink`]).
//! - [`edge_name`]: edge names in any script (NFC, letters, digits, marks), and their ASCII ids.
//! - [`protocol`]: the framed request/response protocol over QUIC.
//! - [`buffers`]: large frame buffers kept for reuse (an administrator's upload).
//! - [`codec`]: chunks on the wire: raw, zstd, or a zstd delta against held chunks.
//! - [`transport`]: QUIC settings for long, lossy links.
//! - [`congestion`]: `rural`, the congestion controller for them, and its `memory`
//!   of each edge address's link.
//! - [`pace`]: the token bucket behind a bandwidth cap, used at both ends.
//! - [`serve`]: `origin serve` — binding and the accept loop; one edge's `connection`
//!   and its hello handshake; the `answers` to requests, shared with [`http`].
//! - [`http`]: the same objects over HTTP.
//! - [`since`]: the metadata an edge lacks, from the catalog it holds (one round trip),
//!   and why the catalog in force cannot be read ([`since::CatalogReadError`]).
//! - [`bucket`]: the origin's keys in S3-compatible object storage: content written only
//!   if absent, checked when read, and a catalog head moved by compare-and-swap
//!   (groundwork, not used yet).

pub mod admin;
pub mod bucket;
pub mod buffers;
pub mod codec;
pub mod congestion;
pub mod edge_name;
pub mod fleet;
pub mod folder;
pub mod gc;
pub mod history;
pub mod http;
pub mod join;
pub mod origin;
pub mod pace;
pub mod protocol;
pub mod publish;
pub mod report;
pub mod review;
pub mod serve;
pub mod since;
pub mod tls;
pub mod tokens;
pub mod transport;

pub use origin::Origin;
pub use publish::{PublishReport, publish};
