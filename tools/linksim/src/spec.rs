//! What a link does to the packets crossing it: [`LinkSpec`] for the whole link, [`PathSpec`]
//! for each direction.
//!
//! The setters on [`LinkSpec`] change both directions at once; for an asymmetric link, set
//! fields of [`LinkSpec::down`] or [`LinkSpec::up`] directly.

use std::time::Duration;

/// Impairments of one direction of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct PathSpec {
    /// One-way propagation delay added to every packet.
    pub delay: Duration,
    /// Each packet's delay is drawn uniformly from `delay ± jitter` (never below zero); packets
    /// are never reordered (see the README).
    pub jitter: Duration,
    /// Probability that a packet is lost at random, independently of the others.
    pub loss: f64,
    /// Bursty loss on top of `loss`: a two-state Gilbert–Elliott chain.
    pub gilbert: Option<Gilbert>,
    /// Bottleneck rate in bits per second (IP bytes count, headers included); `None` for no
    /// limit.
    pub rate_bps: Option<u64>,
    /// Bytes the bottleneck queue holds before it drops arriving packets (tail drop); `None`
    /// for one bandwidth-delay product of the link's round trip (at least 16 full packets).
    pub queue_bytes: Option<u64>,
}

impl Default for PathSpec {
    fn default() -> Self {
        PathSpec {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            gilbert: None,
            rate_bps: None,
            queue_bytes: None,
        }
    }
}

/// The Gilbert–Elliott bursty-loss model in its simple (Gilbert) form: in the good state no
/// packet is lost, in the bad state every packet is.
///
/// Before each packet the chain moves from good to bad with probability `p` and from bad to
/// good with probability `r`. The mean loss is `p / (p + r)` and the mean burst `1 / r`
/// packets; `p = 0.5%`, `r = 16.7%` gives 2.9 % loss in bursts of 6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Probability of moving from the good state to the bad one.
    pub p: f64,
    /// Probability of moving from the bad state back to the good one.
    pub r: f64,
}

impl Gilbert {
    /// The long-run fraction of packets lost.
    pub fn mean_loss(&self) -> f64 {
        self.p / (self.p + self.r)
    }
}

/// A repeating outage: the link is cut for `length` at every multiple of `every` after it
/// starts (so first up for `every`, then down for `length`, up until `2 × every`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outages {
    /// The period of the schedule.
    pub every: Duration,
    /// How long each outage lasts; shorter than `every`.
    pub length: Duration,
}

impl Outages {
    /// Whether the schedule has the link cut at `elapsed` after the start.
    pub fn is_cut(&self, elapsed: Duration) -> bool {
        if elapsed < self.every || self.every.is_zero() {
            return false;
        }
        let into_period = elapsed.as_nanos() % self.every.as_nanos();
        into_period < self.length.as_nanos()
    }
}

/// Everything the link does, in both directions.
///
/// `down` is origin → edge (course content flowing to the school), `up` is edge → origin.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpec {
    /// Origin → edge.
    pub down: PathSpec,
    /// Edge → origin.
    pub up: PathSpec,
    /// Drop every UDP packet in both directions (a network that blocks QUIC); can be changed
    /// live with [`crate::Link::set_udp_blocked`].
    pub drop_udp: bool,
    /// A schedule of outages cutting both directions.
    pub outages: Option<Outages>,
    /// MTU of the two TUN devices.
    pub mtu: u16,
    /// Seed for the random loss and jitter, so runs repeat.
    pub seed: u64,
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec {
            down: PathSpec::default(),
            up: PathSpec::default(),
            drop_udp: false,
            outages: None,
            mtu: 1500,
            seed: 0x5348_414e_4c55,
        }
    }
}

/// A [`LinkSpec`] that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{direction}: loss {value} is not a probability between 0 and 1")]
    Loss { direction: &'static str, value: f64 },
    #[error("{direction}: gilbert p {p} and r {r} must be probabilities, r above 0")]
    Gilbert {
        direction: &'static str,
        p: f64,
        r: f64,
    },
    #[error("{direction}: a rate of 0 bit/s carries nothing")]
    ZeroRate { direction: &'static str },
    #[error("{direction}: a queue of {queue_bytes} bytes cannot hold one {mtu}-byte packet")]
    Queue {
        direction: &'static str,
        queue_bytes: u64,
        mtu: u16,
    },
    #[error("outages of {length:?} must be shorter than their period {every:?}")]
    Outages { every: Duration, length: Duration },
    #[error("mtu {mtu} is outside 576..=65535")]
    Mtu { mtu: u16 },
}

impl LinkSpec {
    /// Sets the one-way delay of both directions.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.down.delay = delay;
        self.up.delay = delay;
        self
    }

    /// Sets the jitter of both directions.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.down.jitter = jitter;
        self.up.jitter = jitter;
        self
    }

    /// Sets the random loss of both directions.
    pub fn loss(mut self, loss: f64) -> Self {
        self.down.loss = loss;
        self.up.loss = loss;
        self
    }

    /// Sets bursty Gilbert–Elliott loss in both directions.
    pub fn gilbert(mut self, p: f64, r: f64) -> Self {
        self.down.gilbert = Some(Gilbert { p, r });
        self.up.gilbert = Some(Gilbert { p, r });
        self
    }

    /// Limits both directions to `rate_bps` bits per second.
    pub fn rate_bps(mut self, rate_bps: u64) -> Self {
        self.down.rate_bps = Some(rate_bps);
        self.up.rate_bps = Some(rate_bps);
        self
    }

    /// Sets the bottleneck queue of both directions.
    pub fn queue_bytes(mut self, queue_bytes: u64) -> Self {
        self.down.queue_bytes = Some(queue_bytes);
        self.up.queue_bytes = Some(queue_bytes);
        self
    }

    /// Drops all UDP from the start.
    pub fn drop_udp(mut self, drop_udp: bool) -> Self {
        self.drop_udp = drop_udp;
        self
    }

    /// Cuts the link for `length` at every multiple of `every`.
    pub fn outages(mut self, every: Duration, length: Duration) -> Self {
        self.outages = Some(Outages { every, length });
        self
    }

    /// Sets the seed of the random loss and jitter.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The round trip the link adds: the two one-way delays.
    pub fn rtt(&self) -> Duration {
        self.down.delay + self.up.delay
    }

    /// The queue limit of one direction: as set, or one bandwidth-delay product of the round
    /// trip and at least 16 full packets. `None` when the direction has no rate limit.
    pub fn queue_limit(&self, path: &PathSpec) -> Option<u64> {
        let rate_bps = path.rate_bps?;
        Some(path.queue_bytes.unwrap_or_else(|| {
            let bdp = u128::from(rate_bps) * self.rtt().as_nanos() / 8 / 1_000_000_000;
            let bdp = u64::try_from(bdp).unwrap_or(u64::MAX);
            bdp.max(16 * u64::from(self.mtu))
        }))
    }

    /// Checks that every number makes sense.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.mtu < 576 {
            return Err(SpecError::Mtu { mtu: self.mtu });
        }
        if let Some(outages) = self.outages
            && outages.length >= outages.every
        {
            return Err(SpecError::Outages {
                every: outages.every,
                length: outages.length,
            });
        }
        for (direction, path) in [("down", &self.down), ("up", &self.up)] {
            if !(0.0..=1.0).contains(&path.loss) {
                return Err(SpecError::Loss {
                    direction,
                    value: path.loss,
                });
            }
            if let Some(Gilbert { p, r }) = path.gilbert
                && !((0.0..=1.0).contains(&p) && r > 0.0 && r <= 1.0)
            {
                return Err(SpecError::Gilbert { direction, p, r });
            }
            if path.rate_bps == Some(0) {
                return Err(SpecError::ZeroRate { direction });
            }
            if let Some(queue_bytes) = path.queue_bytes
                && queue_bytes < u64::from(self.mtu)
            {
                return Err(SpecError::Queue {
                    direction,
                    queue_bytes,
                    mtu: self.mtu,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn outages_cut_at_every_multiple_of_the_period() {
        let outages = Outages {
            every: 100 * MS,
            length: 30 * MS,
        };
        assert!(!outages.is_cut(Duration::ZERO));
        assert!(!outages.is_cut(99 * MS));
        assert!(outages.is_cut(100 * MS));
        assert!(outages.is_cut(129 * MS));
        assert!(!outages.is_cut(130 * MS));
        assert!(!outages.is_cut(199 * MS));
        assert!(outages.is_cut(215 * MS));
    }

    #[test]
    fn default_queue_is_one_bdp_of_the_round_trip() {
        let spec = LinkSpec::default().delay(50 * MS).rate_bps(10_000_000);
        // 10 Mbit/s × 100 ms = 125 000 bytes.
        assert_eq!(spec.queue_limit(&spec.down), Some(125_000));
        let short = LinkSpec::default().rate_bps(10_000_000);
        assert_eq!(short.queue_limit(&short.down), Some(16 * 1500));
        let set = spec.clone().queue_bytes(64 * 1024);
        assert_eq!(set.queue_limit(&set.up), Some(65_536));
        assert_eq!(LinkSpec::default().queue_limit(&PathSpec::default()), None);
    }

    #[test]
    fn validate_rejects_nonsense() {
        assert_eq!(LinkSpec::default().validate(), Ok(()));
        assert!(LinkSpec::default().loss(1.5).validate().is_err());
        assert!(LinkSpec::default().gilbert(0.01, 0.0).validate().is_err());
        assert!(LinkSpec::default().rate_bps(0).validate().is_err());
        assert!(
            LinkSpec::default()
                .rate_bps(1_000_000)
                .queue_bytes(100)
                .validate()
                .is_err()
        );
        assert!(
            LinkSpec::default()
                .outages(10 * MS, 10 * MS)
                .validate()
                .is_err()
        );
    }

    #[test]
    fn gilbert_mean_loss() {
        let gilbert = Gilbert { p: 0.005, r: 0.167 };
        assert!((gilbert.mean_loss() - 0.0291).abs() < 0.0001);
    }
}
