//! Pacing a scrub's reads to a byte rate, and how often a full cycle starts.
//!
//! The pacer charges each block read and says how long to wait so that, at
//! every moment, the bytes read since the start are at most the rate times the
//! time elapsed: reading `N` bytes at rate `R` takes at least `N / R` (issue
//! 13's bound, asserted below). Time spent idle or reading slowly earns no
//! credit, so a scrub never catches up in a burst after a pause.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_with::{DeserializeFromStr, SerializeDisplay};

use crate::sync::throttle::Rate;

/// The read rate of the background scrub when `scrub_rate` is not set: a few
/// percent of a small box's disk, so lessons served meanwhile do not notice.
pub const DEFAULT_RATE: u64 = 8 * 1024 * 1024;
/// How often a full cycle starts when `scrub_every` is not set.
pub const DEFAULT_EVERY: Every = Every(Duration::from_secs(7 * 24 * 3600));
/// Largest and smallest block read at once: a block is an eighth of a
/// second at the rate, so a wait is short and a stop is seen quickly.
const MAX_BLOCK: usize = 256 * 1024;
const MIN_BLOCK: usize = 4 * 1024;

/// The size of each read at `rate`.
pub fn block_size(rate: Option<Rate>) -> usize {
    match rate {
        None => MAX_BLOCK,
        Some(rate) => usize::try_from(rate.bytes_per_second() / 8)
            .unwrap_or(MAX_BLOCK)
            .clamp(MIN_BLOCK, MAX_BLOCK),
    }
}

/// Spaces reads so their bytes stay within a rate.
#[derive(Debug, Clone)]
pub struct Pacer {
    bytes_per_second: u64,
    /// When the bytes charged began to count.
    started: Instant,
    charged: u64,
}

impl Pacer {
    pub fn new(rate: Rate, now: Instant) -> Pacer {
        Pacer {
            bytes_per_second: rate.bytes_per_second().max(1),
            started: now,
            charged: 0,
        }
    }

    /// When the bytes charged so far may all have been read, from the start.
    fn due(&self) -> Duration {
        Duration::from_secs_f64(self.charged as f64 / self.bytes_per_second as f64)
    }

    /// Charges `bytes` just read at `now`; returns how long to wait before
    /// the next read.
    pub fn wait_after(&mut self, bytes: u64, now: Instant) -> Duration {
        // Behind the rate (idle, or a slow disk): that time is not credit.
        let due = self.due();
        if now.saturating_duration_since(self.started) > due {
            self.started = now.checked_sub(due).unwrap_or(self.started);
        }
        self.charged += bytes;
        self.due()
            .saturating_sub(now.saturating_duration_since(self.started))
    }
}

/// How often a full scrub cycle starts: `7d`, `12h`, `30m`, `90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, SerializeDisplay, DeserializeFromStr)]
pub struct Every(Duration);

/// Why a `scrub_every` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "scrub_every {text:?} is not a duration; write a whole number and a unit: 7d, 12h, 30m or 90s (at least 1s)"
)]
pub struct EveryError {
    text: String,
}

impl Every {
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Every {
    type Err = EveryError;

    fn from_str(text: &str) -> Result<Every, EveryError> {
        let refuse = || EveryError {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(refuse)?;
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| refuse())?;
        let unit_secs = match unit.trim() {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(refuse()),
        };
        let secs = number
            .checked_mul(unit_secs)
            .filter(|secs| *secs > 0)
            .ok_or_else(refuse)?;
        Ok(Every(Duration::from_secs(secs)))
    }
}

impl fmt::Display for Every {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs.is_multiple_of(size) {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: N bytes read in blocks at rate R take at least N / R, with
    /// the waits the pacer asks for and reads that take no time at all.
    #[test]
    fn issue_13_n_bytes_at_rate_r_take_at_least_n_over_r() {
        let rate = Rate::from_bytes_per_second(100_000);
        let start = Instant::now();
        let mut pacer = Pacer::new(rate, start);
        let mut now = start;
        let block = 12_500u64;
        for _ in 0..40 {
            now += pacer.wait_after(block, now);
        }
        // 500 000 bytes at 100 000 B/s: 5 s, exactly (up to float rounding).
        let elapsed = now - start;
        assert!(elapsed >= Duration::from_millis(4_999), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(5_001), "{elapsed:?}");
    }

    /// Issue 13: an idle spell earns no burst afterwards.
    #[test]
    fn issue_13_a_pause_is_not_credit() {
        let rate = Rate::from_bytes_per_second(10_000);
        let start = Instant::now();
        let mut pacer = Pacer::new(rate, start);
        assert_eq!(pacer.wait_after(1_000, start), Duration::from_millis(100));
        // A minute later (the scrub paused for a sync pass)…
        let later = start + Duration::from_secs(60);
        // …the next block still waits its own share.
        let wait = pacer.wait_after(1_000, later);
        assert!(wait >= Duration::from_millis(99), "{wait:?}");
    }

    #[test]
    fn blocks_are_an_eighth_of_a_second_within_bounds() {
        assert_eq!(block_size(None), MAX_BLOCK);
        assert_eq!(
            block_size(Some(Rate::from_bytes_per_second(1024 * 1024))),
            128 * 1024
        );
        assert_eq!(
            block_size(Some(Rate::from_bytes_per_second(1_000))),
            MIN_BLOCK
        );
        assert_eq!(
            block_size(Some(Rate::from_bytes_per_second(1 << 40))),
            MAX_BLOCK
        );
    }

    #[test]
    fn every_parses_and_prints() {
        for (text, secs, shown) in [
            ("7d", 7 * 86_400, "7d"),
            ("12h", 43_200, "12h"),
            (" 30m", 1_800, "30m"),
            ("90s", 90, "90s"),
            ("120s", 120, "2m"),
        ] {
            let every: Every = text.parse().unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(every.duration(), Duration::from_secs(secs));
            assert_eq!(every.to_string(), shown);
        }
        for bad in [
            "",
            "7",
            "d",
            "0d",
            "7 weeks",
            "-1d",
            "1.5d",
            "99999999999999999999d",
        ] {
            let err = bad.parse::<Every>().expect_err(bad).to_string();
            assert!(err.contains("7d, 12h"), "{bad}: {err}");
        }
    }
}
