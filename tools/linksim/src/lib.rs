//! A bad-link emulator for tests and benchmarks: two network namespaces, one for the origin and
//! one for a school edge, joined through TUN devices by a forwarder in this process that
//! delays, jitters, loses, rate-limits, blocks UDP and cuts the packets crossing — so QUIC and
//! TCP meet the very same impaired link.
//!
//! ```no_run
//! use std::time::Duration;
//! use linksim::{Link, LinkSpec, Side};
//!
//! let spec = LinkSpec::default()
//!     .delay(Duration::from_millis(150))
//!     .loss(0.02)
//!     .rate_bps(10_000_000);
//! let link = Link::start(spec, Duration::from_secs(60))?;
//! let listener = link.run_in(Side::Origin, || std::net::TcpListener::bind((link.origin_ip(), 0)))??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`spec`]: [`LinkSpec`] and [`PathSpec`], what the link does in each direction.
//! - `impair`: the per-direction pipeline as pure logic: outage → UDP rule → loss → bottleneck
//!   queue → delay line.
//! - `forwarder`: the reader and writer threads that move packets between the TUN devices.
//! - `netns`: named namespaces through iproute2, entered per thread with `setns`.
//! - [`link`]: [`Link`], which ties them together and cleans up.
//! - [`stats`]: counters per direction.
//! - [`units`]: reading `50ms`, `10Mbit`, `64KiB`, `1%`.
//!
//! The forwarder needs root (`CAP_NET_ADMIN` and `CAP_SYS_ADMIN`), `/dev/net/tun` and the `ip`
//! command; see the README for the design.

mod forwarder;
mod impair;
pub mod link;
mod netns;
pub mod spec;
pub mod stats;
pub mod units;

use std::io;

pub use impair::DropReason;
pub use link::{Link, Side};
pub use spec::{Gilbert, LinkSpec, Outages, PathSpec, SpecError};
pub use stats::{DirectionStats, Stats};

/// Whether a namespace with this name exists (in `/run/netns`).
pub fn namespace_exists(name: &str) -> bool {
    netns::exists(name)
}

/// Starting a link, or running something in one of its namespaces, failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("could not run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("entering network namespace {namespace}")]
    EnterNamespace {
        namespace: String,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Configure {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("creating the TUN device in {namespace}")]
    Tun {
        namespace: String,
        #[source]
        source: io::Error,
    },
    #[error("starting a thread")]
    Thread {
        #[source]
        source: io::Error,
    },
}
