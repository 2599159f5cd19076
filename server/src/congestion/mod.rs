//! `rural`: a congestion controller for long, lossy school links.
//!
//! Loss-based controllers (Cubic, NewReno) halve their rate at every lost
//! packet, and on a link that loses 1 % of packets at random they never get
//! going. quinn's BBR ignores random loss, but quinn paces at 1.25 × the
//! window per round trip and BBR keeps a window of twice the bandwidth-delay
//! product, so it sends 2.5 × what the link carries until the bottleneck's
//! queue overflows: on the emulator a third of the packets it sent were
//! dropped in the queue and sent again.
//!
//! This controller keeps BBR's model and sizes the window to it:
//!
//! - **The model.** Each round (one minimum round trip) it measures the
//!   delivery rate: bytes acknowledged ÷ the round's length. The bottleneck
//!   rate is the largest of the last [`ROUNDS`] rounds that delivered
//!   anything; the path's round trip is the smallest seen.
//! - **The window** is the bandwidth-delay product (plus room for delayed
//!   acknowledgements) times a gain that cycles like BBR's: one round at
//!   1.5 to find spare capacity, one at 1.0 to drain the queue that made,
//!   six at 1.25 (see [`CYCLE`] for why above 1). So what is in flight stays near what the link holds, and
//!   a queue never grows much past half the link's BDP.
//! - **Start-up** triples the window each round until the delivery rate stops
//!   growing by a quarter for three rounds, then drains for a round.
//! - **Random loss** does not shrink the window: on these links a lost
//!   packet is noise, not a sign of a full queue, and the window already
//!   cannot fill the queue. A slower link shows up as a lower delivery rate
//!   within [`ROUNDS`] rounds.
//! - **Heavy loss** does: a round that loses more than [`LOSS_LIMIT`] of what
//!   it sent means a queue or a receiver overflowed (a burst on a fast local
//!   network, another flow), so the model's rate drops by a quarter. A round
//!   of fewer than [`LOSS_JUDGED_PACKETS`] packets is not judged: one packet
//!   of a five-packet catalog answer is a fifth, and is chance.
//! - **Outages** (persistent congestion) keep the model: the link is the same
//!   when it comes back, so the sync resumes at the rate it had.
//! - **Local networks** (a minimum round trip under [`LOCAL_RTT`]) get Cubic:
//!   there a round trip is shorter than the host's own scheduling delays, the
//!   model's samples are noise, and loss does mean a full buffer.
//! - **Resuming** (issue 12): the origin remembers each edge address's last
//!   model ([`LinkMemory`]) for [`RESUME_FOR`]. A new connection from that
//!   address starts with half the bandwidth-delay product it had (at most
//!   [`RESUME_MAX`]) instead of [`INITIAL_PACKETS`], so a small update on a
//!   satellite link travels in one or two round trips instead of four or
//!   five of start-up; start-up then goes on from there as usual. The model
//!   starts from half the remembered rate and its round trip, so a backing
//!   off in the first rounds starts from there, not from the few bytes those
//!   rounds carried. A link that got slower loses more than [`LOSS_LIMIT`]
//!   in its first full round, which backs the model off as any congested
//!   round does.
//!
//! - this file: the controller, [`Rural`], and its constants;
//! - `memory`: [`LinkMemory`] and [`ResumingRural`], the link memory behind resuming;
//! - `tests`: the controller and the memory on a simulated link.

use std::any::Any;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory, CubicConfig};
use quinn_proto::RttEstimator;

/// Rounds over which the bottleneck rate is the largest sample.
pub const ROUNDS: usize = 10;
/// Gains of the cruise cycle, one per round. The window is what limits
/// delivery, so the steady gain sits above 1: packets waiting for a resend
/// or a late acknowledgement still count as in flight, and at a gain of 1.1
/// a 20 Mbit/s satellite link with 1 % loss delivered only 80 % of its rate
/// each round (at 1.25, all of it; at 0.75, BBR's drain, 70 %).
const CYCLE: [f64; 8] = [1.5, 1.0, 1.25, 1.25, 1.25, 1.25, 1.25, 1.25];
/// Room for acknowledgements a receiver holds back (QUIC's default max_ack_delay).
const ACK_DELAY: Duration = Duration::from_millis(25);
/// A round losing more than this share of its packets was congestion, not noise.
pub const LOSS_LIMIT: f64 = 0.15;
/// A round carrying fewer packets than this is not judged for loss: one
/// packet lost of a handful (a catalog answer) is chance, not congestion.
pub const LOSS_JUDGED_PACKETS: u64 = 20;
/// What the model's rate is multiplied by after such a round.
const LOSS_BACKOFF: f64 = 0.75;
/// Rounds last at least this long, so fast local paths still give steady samples.
const MIN_ROUND: Duration = Duration::from_millis(10);
/// Start-up ends when the rate grew less than this over three rounds.
const STARTUP_GROWTH: f64 = 1.25;
/// Initial window in packets.
const INITIAL_PACKETS: u64 = 10;
/// Smallest window in packets.
const MIN_PACKETS: u64 = 4;

/// Paths with a shorter minimum round trip are local networks.
pub const LOCAL_RTT: Duration = Duration::from_millis(10);

mod memory;

pub use memory::{LinkMemory, MEMORY_ADDRESSES, RESUME_FOR, RESUME_MAX, Remembered, ResumingRural};

/// Builds [`Rural`] controllers.
#[derive(Debug, Clone, Default)]
pub struct RuralConfig;

impl ControllerFactory for RuralConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(Rural::new(now, current_mtu))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Startup,
    Drain,
    /// Index into [`CYCLE`].
    Cruise(usize),
}

/// The controller's state for one connection.
pub struct Rural {
    /// Cubic, fed every event too, in charge on local networks.
    local: Box<dyn Controller>,
    mtu: u64,
    window: u64,
    phase: Phase,
    round_start: Instant,
    round_delivered: u64,
    round_lost: u64,
    round_app_limited: bool,
    /// Delivery rates of recent rounds, bytes per second.
    rates: VecDeque<f64>,
    min_rtt: Option<Duration>,
    /// Start-up: the rate three rounds of no growth are measured against.
    plateau_rate: f64,
    plateau_rounds: u32,
    /// Where this connection's model is remembered for the next one.
    memory: Option<(Arc<LinkMemory>, IpAddr)>,
    /// Rounds that had more to send than the window allowed: only those
    /// show what the link carries.
    full_rounds: usize,
}

impl Rural {
    pub fn new(now: Instant, mtu: u16) -> Rural {
        let local = Arc::new(CubicConfig::default()).build(now, mtu);
        let mtu = u64::from(mtu);
        Rural {
            local,
            mtu,
            window: INITIAL_PACKETS * mtu,
            phase: Phase::Startup,
            round_start: now,
            round_delivered: 0,
            round_lost: 0,
            round_app_limited: false,
            rates: VecDeque::with_capacity(ROUNDS),
            min_rtt: None,
            plateau_rate: 0.0,
            plateau_rounds: 0,
            memory: None,
            full_rounds: 0,
        }
    }

    /// Whether the path is a local network, where Cubic decides.
    fn is_local(&self) -> bool {
        self.min_rtt.is_some_and(|rtt| rtt < LOCAL_RTT)
    }

    /// The bottleneck rate, bytes per second.
    /// Starts the model from a remembered link: `rate` as one sample, and
    /// `min_rtt` until a shorter one is seen.
    pub(super) fn seed(&mut self, rate: f64, min_rtt: Duration) {
        self.rates.push_back(rate);
        self.min_rtt = Some(self.min_rtt.map_or(min_rtt, |seen| seen.min(min_rtt)));
    }

    pub fn bottleneck_rate(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    /// The window a gain of `gain` asks for, from the model.
    fn target(&self, gain: f64) -> u64 {
        let rtt = self.min_rtt.unwrap_or(Duration::from_millis(100)) + ACK_DELAY;
        let bdp = self.bottleneck_rate() * rtt.as_secs_f64();
        ((gain * bdp) as u64).max(MIN_PACKETS * self.mtu)
    }

    /// Records a packet acknowledged at `now`.
    fn acked(&mut self, now: Instant, bytes: u64, app_limited: bool, min_rtt: Duration) {
        if !min_rtt.is_zero() {
            self.min_rtt = Some(self.min_rtt.map_or(min_rtt, |seen| seen.min(min_rtt)));
        }
        self.round_delivered += bytes;
        self.round_app_limited |= app_limited;
        if self.phase == Phase::Startup {
            // Start-up: two more bytes of window per byte delivered, so the
            // window triples each round (a long round trip makes every round
            // count), but never past four times what the link has been seen
            // to carry (enough to triple again).
            let ceiling = (4 * self.target(1.0)).max(INITIAL_PACKETS * self.mtu);
            self.window = (self.window + 2 * bytes).min(ceiling.max(self.window));
        }
        let round = self
            .min_rtt
            .unwrap_or(Duration::from_millis(100))
            .max(MIN_ROUND);
        let elapsed = now.saturating_duration_since(self.round_start);
        if elapsed >= round {
            self.end_round(elapsed);
            self.round_start = now;
        }
    }

    fn end_round(&mut self, elapsed: Duration) {
        let rate = self.round_delivered as f64 / elapsed.as_secs_f64();
        // A round short of data to send says nothing about the link unless it beat the model.
        let counts =
            self.round_delivered > 0 && (!self.round_app_limited || rate > self.bottleneck_rate());
        if counts {
            if self.rates.len() == ROUNDS {
                self.rates.pop_front();
            }
            self.rates.push_back(rate);
            if !self.round_app_limited {
                self.full_rounds += 1;
            }
            if let (Some((memory, addr)), Some(min_rtt)) = (&self.memory, self.min_rtt) {
                memory.remember(
                    *addr,
                    Remembered {
                        rate: self.bottleneck_rate(),
                        min_rtt,
                        at: Instant::now(),
                    },
                    self.full_rounds,
                );
            }
        }
        tracing::trace!(
            phase = ?self.phase,
            delivered = self.round_delivered,
            round_ms = elapsed.as_millis(),
            rate = self.bottleneck_rate() as u64,
            window = self.window,
            "congestion round"
        );
        let lost = self.round_lost as f64;
        let carried = self.round_lost + self.round_delivered;
        let congested = carried >= LOSS_JUDGED_PACKETS * self.mtu
            && lost > LOSS_LIMIT * (lost + self.round_delivered as f64);
        self.round_delivered = 0;
        self.round_lost = 0;
        self.round_app_limited = false;
        if congested {
            for rate in &mut self.rates {
                *rate *= LOSS_BACKOFF;
            }
            if self.phase == Phase::Startup {
                self.phase = Phase::Drain;
            }
            self.window = self.target(CYCLE[1]);
            return;
        }
        match self.phase {
            Phase::Startup => {
                let rate = self.bottleneck_rate();
                if rate >= self.plateau_rate * STARTUP_GROWTH {
                    self.plateau_rate = rate;
                    self.plateau_rounds = 0;
                } else if counts {
                    self.plateau_rounds += 1;
                    if self.plateau_rounds >= 3 {
                        self.phase = Phase::Drain;
                        self.window = self.target(0.75);
                    }
                }
            }
            Phase::Drain => {
                self.phase = Phase::Cruise(2);
                self.window = self.target(CYCLE[2]);
            }
            Phase::Cruise(index) => {
                let next = (index + 1) % CYCLE.len();
                self.phase = Phase::Cruise(next);
                self.window = self.target(CYCLE[next]);
            }
        }
    }
}

impl Controller for Rural {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.local.on_sent(now, bytes, last_packet_number);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.local
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.local.on_ack(now, sent, bytes, app_limited, rtt);
        // The packet's own round trip: quinn's minimum starts from its initial
        // guess (333 ms), which is below a satellite link's.
        self.acked(now, bytes, app_limited, now.saturating_duration_since(sent));
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.local
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        // See the module documentation: random loss is noise here, heavy loss
        // is judged once a round, and an outage leaves the link as it was.
        if !is_persistent_congestion {
            self.round_lost += lost_bytes;
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.local.on_mtu_update(new_mtu);
        self.mtu = u64::from(new_mtu);
        self.window = self.window.max(MIN_PACKETS * self.mtu);
    }

    fn window(&self) -> u64 {
        if self.is_local() {
            self.local.window()
        } else {
            self.window
        }
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Rural {
            local: self.local.clone_box(),
            mtu: self.mtu,
            window: self.window,
            phase: self.phase,
            round_start: self.round_start,
            round_delivered: self.round_delivered,
            round_lost: self.round_lost,
            round_app_limited: self.round_app_limited,
            rates: self.rates.clone(),
            min_rtt: self.min_rtt,
            plateau_rate: self.plateau_rate,
            plateau_rounds: self.plateau_rounds,
            memory: self.memory.clone(),
            full_rounds: self.full_rounds,
        })
    }

    fn initial_window(&self) -> u64 {
        INITIAL_PACKETS * self.mtu
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests;
