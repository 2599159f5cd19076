//! Receive windows sized from the link's measured bandwidth-delay product.
//!
//! The origin may have no more data in flight than the edge's receive window
//! allows. A window far above the link's bandwidth-delay product (BDP) lets a
//! sender that overestimates the link fill the bottleneck's queue and lose
//! whole windows at a time (after an outage, say); one below the BDP stalls
//! the sender every round trip, and so does one near it on a lossy link: data
//! behind a lost packet waits a round trip unread and still counts against
//! the window (at 2× the BDP, a 20 Mbit/s satellite link with 1 % loss
//! stayed at 78 % of its rate). So, like Linux's receive-buffer tuning for
//! TCP, the edge measures what the link delivers and keeps the window at four
//! times the largest recent delivery per round trip, and never under 4 MiB.

use std::collections::VecDeque;
use std::time::Duration;

use quinn::VarInt;

/// How often the delivery rate is sampled.
pub const SAMPLE: Duration = Duration::from_millis(100);
/// How many samples the peak rate is taken over (2 s).
const HISTORY: usize = 20;
/// The window never goes below this (what a sender needs to get going, and
/// what a fast local network needs when the host's own delays dwarf its
/// round trip).
pub const MIN_WINDOW: u64 = 4 * 1024 * 1024;
/// The window is this many bandwidth-delay products.
const BDPS: f64 = 4.0;
/// Nor above the transport's default.
pub const MAX_WINDOW: u64 = 16 * 1024 * 1024;

/// Turns byte counts and round trips into a window.
#[derive(Debug, Default)]
pub struct Tuner {
    last_bytes: Option<u64>,
    /// Bytes received in each recent sample.
    recent: VecDeque<u64>,
    min_rtt: Option<Duration>,
}

impl Tuner {
    /// Records `bytes_total` received so far, `elapsed` since the last call,
    /// and the current round trip; returns the window to grant.
    pub fn sample(&mut self, bytes_total: u64, elapsed: Duration, rtt: Duration) -> u64 {
        let received = bytes_total.saturating_sub(self.last_bytes.unwrap_or(bytes_total));
        self.last_bytes = Some(bytes_total);
        if self.recent.len() == HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(received);
        // Queueing only adds to the round trip; the smallest seen is the path's.
        let min_rtt = self.min_rtt.map_or(rtt, |seen| seen.min(rtt));
        self.min_rtt = Some(min_rtt);
        let peak = self.recent.iter().copied().max().unwrap_or(0);
        let elapsed = elapsed.max(Duration::from_millis(1));
        let per_second = peak as f64 / elapsed.as_secs_f64();
        let bdp = per_second * min_rtt.as_secs_f64();
        ((BDPS * bdp) as u64).clamp(MIN_WINDOW, MAX_WINDOW)
    }
}

/// Keeps `connection`'s receive window at four times the measured BDP until it closes.
pub fn tune(connection: quinn::Connection) {
    tokio::spawn(async move {
        let mut tuner = Tuner::default();
        let mut granted = 0;
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(SAMPLE) => {}
                _ = connection.closed() => return,
            }
            let now = tokio::time::Instant::now();
            let window = tuner.sample(
                connection.stats().udp_rx.bytes,
                now - last,
                connection.rtt(),
            );
            last = now;
            if window != granted {
                // Always below 2^62, so this cannot fail.
                if let Ok(window) = VarInt::from_u64(window) {
                    connection.set_receive_window(window);
                }
                granted = window;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_window_is_four_times_the_measured_bandwidth_delay_product() {
        let mut tuner = Tuner::default();
        // 10 Mbit/s = 125 000 bytes per 100 ms sample, 100 ms round trip: BDP 125 000 bytes.
        let mut total = 0;
        let mut window = 0;
        for _ in 0..10 {
            total += 125_000;
            window = tuner.sample(total, SAMPLE, 100 * MS);
        }
        assert_eq!(window, MIN_WINDOW, "500 000 bytes is under the floor");
        // 20 Mbit/s over 600 ms: BDP 1.5 MB, window 6 MB.
        let mut tuner = Tuner::default();
        for _ in 0..10 {
            total += 250_000;
            window = tuner.sample(total, SAMPLE, 600 * MS);
        }
        assert_eq!(window, 6_000_000);
    }

    #[test]
    fn queueing_delay_and_a_quiet_moment_do_not_shrink_or_inflate_it() {
        let mut tuner = Tuner::default();
        let mut total = 0;
        for _ in 0..5 {
            total += 250_000;
            tuner.sample(total, SAMPLE, 600 * MS);
        }
        // The queue fills: the round trip grows, but the path's is what counts.
        total += 250_000;
        assert_eq!(tuner.sample(total, SAMPLE, 2000 * MS), 6_000_000);
        // An outage: nothing arrives for a while; the recent peak still holds.
        for _ in 0..5 {
            assert_eq!(tuner.sample(total, SAMPLE, 600 * MS), 6_000_000);
        }
        // After two seconds of nothing, the window falls to the floor.
        for _ in 0..HISTORY {
            tuner.sample(total, SAMPLE, 600 * MS);
        }
        assert_eq!(tuner.sample(total, SAMPLE, 600 * MS), MIN_WINDOW);
    }

    #[test]
    fn it_stays_within_its_bounds() {
        let mut tuner = Tuner::default();
        assert_eq!(tuner.sample(0, SAMPLE, 100 * MS), MIN_WINDOW);
        assert_eq!(tuner.sample(1 << 40, SAMPLE, 1000 * MS), MAX_WINDOW);
    }
}
