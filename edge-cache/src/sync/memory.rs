//! What the edge remembers about its transports between connections: that
//! QUIC failed while the HTTPS fallback worked, so for a while new
//! connections go straight to the fallback instead of waiting out a QUIC
//! handshake each time. The edge's state owns one (`edge run` shares it
//! between the sync loop and read-through); a one-off `edge sync` starts with
//! a fresh one. Never a process-wide static (issue 12).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::client::QUIC_RETRY;

/// When QUIC last failed to connect while the fallback worked, and why.
#[derive(Debug, Default)]
pub struct TransportMemory {
    quic_failed: Mutex<Option<(Instant, String)>>,
}

impl TransportMemory {
    pub fn new() -> TransportMemory {
        TransportMemory::default()
    }

    /// Why QUIC is being skipped, while it is ([`QUIC_RETRY`] after it failed).
    pub fn quic_recently_failed(&self) -> Option<String> {
        self.quic_skipped_at(Instant::now(), QUIC_RETRY)
    }

    fn quic_skipped_at(&self, now: Instant, retry: Duration) -> Option<String> {
        match &*crate::lock(&self.quic_failed) {
            Some((at, reason)) if now.saturating_duration_since(*at) < retry => {
                Some(reason.clone())
            }
            _ => None,
        }
    }

    /// QUIC could not connect and the fallback could: skip QUIC for a while.
    pub fn quic_failed(&self, reason: String) {
        *crate::lock(&self.quic_failed) = Some((Instant::now(), reason));
    }

    /// QUIC connected: try it first again.
    pub fn quic_worked(&self) {
        *crate::lock(&self.quic_failed) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_is_skipped_only_for_a_while_after_it_failed() {
        let memory = TransportMemory::new();
        assert_eq!(memory.quic_recently_failed(), None);
        memory.quic_failed("UDP blocked".into());
        assert_eq!(
            memory.quic_recently_failed().as_deref(),
            Some("UDP blocked")
        );
        let later = Instant::now() + QUIC_RETRY + Duration::from_secs(1);
        assert_eq!(
            memory.quic_skipped_at(later, QUIC_RETRY),
            None,
            "QUIC is tried again"
        );
        memory.quic_worked();
        assert_eq!(memory.quic_recently_failed(), None);
    }

    /// Issue 12: the memory is the edge's state, not the process's: two
    /// edges (or an `edge run` and a test) in one process do not share it.
    #[test]
    fn issue_12_two_memories_are_independent() {
        let first = TransportMemory::new();
        let second = TransportMemory::new();
        first.quic_failed("UDP blocked".into());
        assert!(first.quic_recently_failed().is_some());
        assert_eq!(second.quic_recently_failed(), None);
    }
}
