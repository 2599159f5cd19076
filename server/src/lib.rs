//! The shanlu origin: what a province or county education bureau runs.
//!
//! # Layout
//! - [`origin`]: the origin's data folder — signing key, admin token, store — and `origin init`.
//! - [`folder`]: reading a course folder (with its optional `course.toml` and
//!   `lesson.toml` files) into a checked plan, refusing bad input before anything is stored.
//! - [`publish`]: storing a course folder's files and committing the new course
//!   version and signed catalog in one step.
//!
//! The sync protocol server (QUIC and HTTP) builds on these.

pub mod folder;
pub mod origin;
pub mod publish;

pub use origin::Origin;
pub use publish::{PublishReport, publish};
