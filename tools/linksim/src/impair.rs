//! The per-direction pipeline, as pure logic over a clock it is handed: each arriving packet is
//! either dropped (with a reason) or given the instant it leaves the far end of the link.
//!
//! Stages, in order: outage → UDP rule → loss (random, then Gilbert–Elliott) → bottleneck
//! (serialisation at the configured rate behind a byte-bounded tail-drop queue) → delay line
//! (delay ± jitter, first in first out).
//!
//! The bottleneck is kept as virtual time: `free_at` is when the transmitter finishes the
//! packets already accepted, so the backlog in bytes is `(free_at - now) × rate`. Nothing
//! waits here; the writer thread sleeps until each packet's departure. Lateness of that thread
//! therefore never accumulates into a rate error.

use std::time::{Duration, Instant};

use crate::spec::{Gilbert, PathSpec};

/// Why a packet did not cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The link was cut (scheduled outage or [`crate::Link::set_cut`]).
    Outage,
    /// UDP was blocked.
    Udp,
    /// Random or bursty loss.
    Loss,
    /// The bottleneck queue (or the delay line) was full.
    Queue,
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the packet to the far side at this instant.
    Deliver(Instant),
    Drop(DropReason),
}

/// The link-wide state a packet meets on arrival.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gate {
    pub cut: bool,
    pub udp_blocked: bool,
}

/// One direction's impairments and their state.
pub struct Pipeline {
    delay: Duration,
    jitter: Duration,
    loss: f64,
    gilbert: Option<Gilbert>,
    /// Rate and queue limit in bytes, when the direction has a bottleneck.
    bottleneck: Option<(u64, u64)>,
    rng: fastrand::Rng,
    /// Whether the Gilbert–Elliott chain is in its bad state.
    bad: bool,
    /// When the bottleneck finishes sending what it has accepted.
    free_at: Instant,
    /// The latest delivery instant handed out, so packets never overtake each other.
    last_delivery: Instant,
}

impl Pipeline {
    /// A pipeline for `path`; `queue_limit` is the resolved queue size (see
    /// [`crate::LinkSpec::queue_limit`]).
    pub fn new(path: &PathSpec, queue_limit: Option<u64>, seed: u64, now: Instant) -> Self {
        Pipeline {
            delay: path.delay,
            jitter: path.jitter,
            loss: path.loss,
            gilbert: path.gilbert,
            bottleneck: path.rate_bps.zip(queue_limit),
            rng: fastrand::Rng::with_seed(seed),
            bad: false,
            free_at: now,
            last_delivery: now,
        }
    }

    /// Decides the fate of `packet` (an IP packet) arriving at `now`.
    pub fn admit(&mut self, packet: &[u8], gate: Gate, now: Instant) -> Verdict {
        if gate.cut {
            return Verdict::Drop(DropReason::Outage);
        }
        if gate.udp_blocked && is_udp(packet) {
            return Verdict::Drop(DropReason::Udp);
        }
        if self.lose() {
            return Verdict::Drop(DropReason::Loss);
        }
        let Some(departure) = self.serialise(packet.len(), now) else {
            return Verdict::Drop(DropReason::Queue);
        };
        Verdict::Deliver(self.propagate(departure))
    }

    /// Random loss, then one step of the Gilbert–Elliott chain.
    fn lose(&mut self) -> bool {
        let random = self.loss > 0.0 && self.rng.f64() < self.loss;
        let bursty = match self.gilbert {
            Some(Gilbert { p, r }) => {
                let flip = if self.bad { r } else { p };
                if self.rng.f64() < flip {
                    self.bad = !self.bad;
                }
                self.bad
            }
            None => false,
        };
        random || bursty
    }

    /// The instant the bottleneck finishes sending a packet of `len` bytes arriving at `now`,
    /// or `None` when its queue cannot take it.
    fn serialise(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let Some((rate_bps, queue_limit)) = self.bottleneck else {
            return Some(now);
        };
        let len = len as u64;
        let waiting = self.free_at.saturating_duration_since(now);
        let backlog = waiting.as_nanos() * u128::from(rate_bps) / 8 / 1_000_000_000;
        if backlog > 0 && backlog + u128::from(len) > u128::from(queue_limit) {
            return None;
        }
        let transmit_ns = u128::from(len) * 8 * 1_000_000_000 / u128::from(rate_bps);
        let transmit = Duration::from_nanos(u64::try_from(transmit_ns).unwrap_or(u64::MAX));
        self.free_at = self.free_at.max(now) + transmit;
        Some(self.free_at)
    }

    /// Adds delay and jitter, keeping packets in order.
    fn propagate(&mut self, departure: Instant) -> Instant {
        let mut arrival = departure + self.delay;
        if !self.jitter.is_zero() {
            let jitter_ns = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX / 2);
            let offset = self.rng.u64(0..=2 * jitter_ns);
            arrival = if offset >= jitter_ns {
                arrival + Duration::from_nanos(offset - jitter_ns)
            } else {
                arrival
                    .checked_sub(Duration::from_nanos(jitter_ns - offset))
                    .unwrap_or(departure)
                    .max(departure)
            };
        }
        self.last_delivery = self.last_delivery.max(arrival);
        self.last_delivery
    }
}

/// Whether an IP packet carries UDP (IPv4 protocol or IPv6 next header 17).
pub fn is_udp(packet: &[u8]) -> bool {
    const UDP: u8 = 17;
    match packet.first().map(|byte| byte >> 4) {
        Some(4) => packet.get(9) == Some(&UDP),
        Some(6) => packet.get(6) == Some(&UDP),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ipv4(protocol: u8, len: usize) -> Vec<u8> {
        let mut packet = vec![0u8; len];
        packet[0] = 0x45;
        packet[9] = protocol;
        packet
    }

    fn path() -> PathSpec {
        PathSpec::default()
    }

    #[test]
    fn udp_is_recognised_in_both_ip_versions() {
        assert!(is_udp(&ipv4(17, 40)));
        assert!(!is_udp(&ipv4(6, 40)));
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[6] = 17;
        assert!(is_udp(&v6));
        assert!(!is_udp(&[]));
    }

    #[test]
    fn stages_apply_in_order() {
        let now = Instant::now();
        let mut pipeline = Pipeline::new(
            &PathSpec {
                loss: 1.0,
                ..path()
            },
            None,
            1,
            now,
        );
        let udp = ipv4(17, 100);
        let both = Gate {
            cut: true,
            udp_blocked: true,
        };
        assert_eq!(
            pipeline.admit(&udp, both, now),
            Verdict::Drop(DropReason::Outage)
        );
        let blocked = Gate {
            cut: false,
            udp_blocked: true,
        };
        assert_eq!(
            pipeline.admit(&udp, blocked, now),
            Verdict::Drop(DropReason::Udp)
        );
        assert_eq!(
            pipeline.admit(&ipv4(6, 100), blocked, now),
            Verdict::Drop(DropReason::Loss)
        );
    }

    #[test]
    fn delay_without_rate_is_constant() {
        let now = Instant::now();
        let spec = PathSpec {
            delay: 50 * MS,
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, None, 1, now);
        for i in 0..10 {
            let at = now + i * MS;
            assert_eq!(
                pipeline.admit(&ipv4(6, 1500), Gate::default(), at),
                Verdict::Deliver(at + 50 * MS)
            );
        }
    }

    #[test]
    fn bottleneck_serialises_at_the_rate_and_tail_drops() {
        let now = Instant::now();
        // 1500-byte packets at 12 Mbit/s take exactly 1 ms each.
        let spec = PathSpec {
            rate_bps: Some(12_000_000),
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, Some(4500), 1, now);
        let packet = ipv4(6, 1500);
        let mut verdicts = Vec::new();
        for _ in 0..6 {
            verdicts.push(pipeline.admit(&packet, Gate::default(), now));
        }
        // The queue counts the packet being sent too: three fit in 4500 bytes.
        let expected: Vec<Verdict> = (1..=3)
            .map(|i| Verdict::Deliver(now + i * MS))
            .chain([Verdict::Drop(DropReason::Queue); 3])
            .collect();
        assert_eq!(verdicts, expected);
        // Once the queue has drained a packet's worth, one more fits.
        assert_eq!(
            pipeline.admit(&packet, Gate::default(), now + MS),
            Verdict::Deliver(now + 4 * MS)
        );
    }

    #[test]
    fn bottleneck_rate_is_exact_over_many_packets() {
        let now = Instant::now();
        let spec = PathSpec {
            rate_bps: Some(8_000_000),
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, Some(u64::MAX), 1, now);
        let mut last = now;
        for _ in 0..10_000 {
            if let Verdict::Deliver(at) = pipeline.admit(&ipv4(6, 1000), Gate::default(), now) {
                last = at;
            }
        }
        // 10 MB at 8 Mbit/s is 10 s.
        assert_eq!(last - now, Duration::from_secs(10));
    }

    #[test]
    fn random_loss_matches_its_probability() {
        let now = Instant::now();
        let spec = PathSpec {
            loss: 0.1,
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, None, 7, now);
        let lost = (0..100_000)
            .filter(|_| {
                pipeline.admit(&ipv4(6, 100), Gate::default(), now) != Verdict::Deliver(now)
            })
            .count();
        assert!((9_500..10_500).contains(&lost), "lost {lost} of 100000");
    }

    #[test]
    fn gilbert_elliott_loses_in_bursts() {
        let now = Instant::now();
        let gilbert = Gilbert { p: 0.05, r: 0.3 };
        let spec = PathSpec {
            gilbert: Some(gilbert),
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, None, 7, now);
        let lost: Vec<bool> = (0..200_000)
            .map(|_| pipeline.admit(&ipv4(6, 100), Gate::default(), now) != Verdict::Deliver(now))
            .collect();
        let losses = lost.iter().filter(|&&lost| lost).count();
        let bursts = lost.windows(2).filter(|pair| !pair[0] && pair[1]).count();
        let rate = losses as f64 / lost.len() as f64;
        let mean_burst = losses as f64 / bursts as f64;
        assert!(
            (rate - gilbert.mean_loss()).abs() < 0.01,
            "loss rate {rate}"
        );
        assert!(
            (mean_burst - 1.0 / 0.3).abs() < 0.2,
            "mean burst {mean_burst}"
        );
    }

    #[test]
    fn jitter_stays_in_bounds_and_never_reorders() {
        let now = Instant::now();
        let spec = PathSpec {
            delay: 20 * MS,
            jitter: 5 * MS,
            ..path()
        };
        let mut pipeline = Pipeline::new(&spec, None, 3, now);
        let mut previous = now;
        let mut delays = Vec::new();
        for i in 0..1000 {
            // One packet every 20 ms: far enough apart that order rarely binds.
            let sent = now + i * 20 * MS;
            let Verdict::Deliver(at) = pipeline.admit(&ipv4(6, 100), Gate::default(), sent) else {
                panic!("no loss configured");
            };
            assert!(at >= previous, "packet {i} overtook the one before");
            previous = at;
            delays.push(at - sent);
        }
        assert!(delays.iter().all(|&d| d >= 15 * MS && d <= 25 * MS));
        assert!(delays.iter().any(|&d| d < 17 * MS));
        assert!(delays.iter().any(|&d| d > 23 * MS));
    }
}
