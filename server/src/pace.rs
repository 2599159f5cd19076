//! Pacing bytes to a rate: the token bucket behind a school's bandwidth cap.
//!
//! Both ends use it. The edge charges each answer as it reads it, so a cap
//! holds whatever the origin does; an edge with a cap also asks the origin to
//! pace what it sends on that connection ([`crate::protocol::Request::Pace`]),
//! and the origin pays for each answer *before* writing it, so the school's
//! link carries no more than the cap from the first byte, instead of a whole
//! flow-control window at once.
//!
//! Goals: an average at the rate over any second, bursts of at most
//! [`MAX_BURST`] or 100 ms at the rate, one bucket shared by every request in
//! flight on a connection. Non-goals: counting packet headers (QUIC, UDP and
//! IP add about 3–5 % on the wire to what is counted).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// The most a bucket holds: what may pass at once after a pause.
pub const MAX_BURST: u64 = 64 * 1024;
/// The slowest rate a bucket accepts; a slower request is raised to it.
pub const MIN_RATE: u64 = 1_000;

/// Paces bytes to a rate; shared by every request of a connection or a pass.
///
/// Each caller is charged its bytes and, when the bucket is in debt, waits
/// until the debt would be paid at the rate. Callers waiting together queue
/// behind each other's debt, so the sum of them keeps to the rate.
#[derive(Debug)]
pub struct TokenBucket {
    bytes_per_second: u64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// Bytes that may pass without waiting; negative while in debt.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A bucket for `bytes_per_second` (at least [`MIN_RATE`]).
    pub fn new(bytes_per_second: u64) -> TokenBucket {
        let bytes_per_second = bytes_per_second.max(MIN_RATE);
        let burst = (bytes_per_second as f64 / 10.0).min(MAX_BURST as f64);
        TokenBucket {
            bytes_per_second,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// The QUIC receive window for a connection paced by this bucket: about
    /// a second at the rate (enough for a 600 ms round trip), at least 64 KiB.
    pub fn receive_window(&self) -> u32 {
        self.bytes_per_second.clamp(64 * 1024, 16 * 1024 * 1024) as u32
    }

    /// Charges `bytes` and waits while the bucket is in debt. Awaited before
    /// sending, the bytes leave no earlier than the rate allows; awaited
    /// after receiving, the next read waits for them to be paid.
    pub async fn take(&self, bytes: usize) {
        let wait = {
            let mut state = self
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let now = Instant::now();
            let per_second = self.bytes_per_second as f64;
            let earned = now.duration_since(state.refilled_at).as_secs_f64() * per_second;
            state.tokens = (state.tokens + earned).min(self.burst) - bytes as f64;
            state.refilled_at = now;
            if state.tokens < 0.0 {
                Duration::from_secs_f64(-state.tokens / per_second)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_keeps_many_takers_to_the_rate() {
        let bucket = std::sync::Arc::new(TokenBucket::new(100_000));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let bucket = bucket.clone();
            tasks.spawn(async move {
                for _ in 0..100 {
                    bucket.take(1_000).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        // 800 000 bytes at 100 000 B/s, less the 10 000-byte burst held at the start.
        let elapsed = start.elapsed().as_secs_f64();
        assert!((7.8..=7.95).contains(&elapsed), "took {elapsed} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_earns_no_more_than_the_burst() {
        let bucket = TokenBucket::new(10_000_000);
        assert_eq!(bucket.burst, MAX_BURST as f64);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        bucket.take(MAX_BURST as usize).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.take(1_000_000).await;
        let waited = start.elapsed().as_secs_f64();
        assert!((0.099..=0.101).contains(&waited), "waited {waited} s");
    }

    /// Issue 11: a sender paying before it writes never runs ahead of the
    /// rate, not even in its first second.
    #[tokio::test(start_paused = true)]
    async fn paying_before_sending_holds_the_rate_from_the_first_byte() {
        let bucket = TokenBucket::new(500_000);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut worst_excess = 0.0f64;
        while sent < 3_000_000 {
            bucket.take(65_536).await;
            sent += 65_536;
            let allowed = 50_000.0 + 500_000.0 * start.elapsed().as_secs_f64();
            worst_excess = worst_excess.max(sent as f64 - allowed);
        }
        assert!(
            worst_excess <= 1.0,
            "ran {worst_excess} bytes ahead of the rate"
        );
    }
}
