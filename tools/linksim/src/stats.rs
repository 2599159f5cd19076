//! Counters of what each direction carried and dropped, shared by the forwarder threads and
//! read as a [`Stats`] snapshot.
//!
//! Bytes are IP bytes (headers included), as the TUN devices see them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::impair::DropReason;

/// What one direction has done since the link started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DirectionStats {
    /// Packets read from the sending side's TUN device.
    pub packets_offered: u64,
    pub bytes_offered: u64,
    /// Packets written to the receiving side's TUN device.
    pub packets_carried: u64,
    pub bytes_carried: u64,
    /// Packets dropped because the link was cut.
    pub dropped_outage: u64,
    /// UDP packets dropped by the UDP rule.
    pub dropped_udp: u64,
    /// Packets lost at random or in a Gilbert–Elliott burst.
    pub dropped_loss: u64,
    /// Packets dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
}

impl DirectionStats {
    /// All packets dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_outage + self.dropped_udp + self.dropped_loss + self.dropped_queue
    }
}

/// A snapshot of both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Seconds since the link started.
    pub elapsed_s: f64,
    /// Whether the link is cut right now (by schedule or by hand).
    pub cut: bool,
    /// Whether UDP is blocked right now.
    pub udp_blocked: bool,
    /// Origin → edge.
    pub down: DirectionStats,
    /// Edge → origin.
    pub up: DirectionStats,
}

/// The live counters of one direction.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    packets_offered: AtomicU64,
    bytes_offered: AtomicU64,
    packets_carried: AtomicU64,
    bytes_carried: AtomicU64,
    dropped_outage: AtomicU64,
    dropped_udp: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_queue: AtomicU64,
}

impl Counters {
    pub fn offered(&self, len: usize) {
        self.packets_offered.fetch_add(1, Ordering::Relaxed);
        self.bytes_offered.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub fn carried(&self, len: usize) {
        self.packets_carried.fetch_add(1, Ordering::Relaxed);
        self.bytes_carried.fetch_add(len as u64, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) {
        let counter = match reason {
            DropReason::Outage => &self.dropped_outage,
            DropReason::Udp => &self.dropped_udp,
            DropReason::Loss => &self.dropped_loss,
            DropReason::Queue => &self.dropped_queue,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DirectionStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DirectionStats {
            packets_offered: read(&self.packets_offered),
            bytes_offered: read(&self.bytes_offered),
            packets_carried: read(&self.packets_carried),
            bytes_carried: read(&self.bytes_carried),
            dropped_outage: read(&self.dropped_outage),
            dropped_udp: read(&self.dropped_udp),
            dropped_loss: read(&self.dropped_loss),
            dropped_queue: read(&self.dropped_queue),
        }
    }
}
