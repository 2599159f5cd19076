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
//!   network, another flow), so the model's rate drops by a quarter.
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
//!   five of start-up; start-up then goes on from there as usual. A link
//!   that got slower loses more than [`LOSS_LIMIT`] in the first round,
//!   which backs the model off as any congested round does.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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

/// How long a remembered link model is used for a new connection.
pub const RESUME_FOR: Duration = Duration::from_secs(6 * 3600);
/// The largest window a resumed connection starts with.
pub const RESUME_MAX: u64 = 4 * 1024 * 1024;
/// Most edge addresses remembered; the oldest is forgotten first.
pub const MEMORY_ADDRESSES: usize = 4096;

/// Builds [`Rural`] controllers.
#[derive(Debug, Clone, Default)]
pub struct RuralConfig;

impl ControllerFactory for RuralConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(Rural::new(now, current_mtu))
    }
}

/// What the origin remembers of one edge address's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remembered {
    /// Bottleneck rate, bytes per second.
    pub rate: f64,
    pub min_rtt: Duration,
    pub at: Instant,
}

/// The last link model of each edge address (bounded), shared by the
/// origin's connections; see the module documentation.
#[derive(Debug, Default)]
pub struct LinkMemory {
    models: Mutex<HashMap<IpAddr, Remembered>>,
}

impl LinkMemory {
    /// The model remembered for `addr`, if recent.
    pub fn recall(&self, addr: IpAddr, now: Instant) -> Option<Remembered> {
        let models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        models
            .get(&addr)
            .filter(|m| now.saturating_duration_since(m.at) < RESUME_FOR)
            .copied()
    }

    /// Keeps `model` for `addr`. A model of fewer than three full rounds
    /// (a short connection that never had more to send than its window, as
    /// a small update has) does not lower a recent one: it has not seen the
    /// link's rate, only its own.
    fn remember(&self, addr: IpAddr, model: Remembered, rounds: usize) {
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rounds < 3
            && models.get(&addr).is_some_and(|old| {
                old.rate > model.rate && model.at.saturating_duration_since(old.at) < RESUME_FOR
            })
        {
            return;
        }
        if models.len() >= MEMORY_ADDRESSES && !models.contains_key(&addr) {
            let oldest = models.iter().min_by_key(|(_, m)| m.at).map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                models.remove(&oldest);
            }
        }
        models.insert(addr, model);
    }
}

/// Builds [`Rural`] controllers for connections from one address that
/// start from the model remembered for it and keep it up to date.
#[derive(Debug, Clone)]
pub struct ResumingRural {
    pub memory: Arc<LinkMemory>,
    pub addr: IpAddr,
}

impl ControllerFactory for ResumingRural {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let mut rural = Rural::new(now, current_mtu);
        if let Some(model) = self.memory.recall(self.addr, now)
            && model.min_rtt >= LOCAL_RTT
        {
            let bdp = model.rate * model.min_rtt.as_secs_f64();
            rural.window = ((bdp / 2.0) as u64).clamp(rural.window, RESUME_MAX);
            tracing::debug!(addr = %self.addr, window = rural.window, "resuming from the remembered link");
        }
        rural.memory = Some((self.memory.clone(), self.addr));
        Box::new(rural)
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
        let congested = lost > LOSS_LIMIT * (lost + self.round_delivered as f64);
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
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds the controller a link of `rate` bytes/s and `rtt`: each round,
    /// whatever the window allows (at most what the link carries) is acked
    /// in packets of `mtu`. Returns the windows at the end of each round.
    fn drive(rural: &mut Rural, start: Instant, rounds: u32, rate: f64, rtt: Duration) -> Vec<u64> {
        let mut windows = Vec::new();
        for round in 0..rounds {
            let begin = start + rtt * round;
            let carried = (rate * rtt.as_secs_f64()).min(rural.window() as f64) as u64;
            let packets = (carried / rural.mtu).max(1);
            for n in 0..packets {
                let at = begin
                    + rtt * u32::try_from(n + 1).expect("small")
                        / u32::try_from(packets).expect("small");
                rural.acked(at, rural.mtu, false, rtt);
            }
            windows.push(rural.window());
        }
        windows
    }

    #[test]
    fn start_up_finds_the_link_and_cruises_at_its_bandwidth_delay_product() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        // 10 Mbit/s, 100 ms: a BDP of 125 000 bytes.
        let windows = drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
        assert!(matches!(rural.phase, Phase::Cruise(_)), "{:?}", rural.phase);
        let rate = rural.bottleneck_rate();
        assert!((1_100_000.0..=1_300_000.0).contains(&rate), "{rate}");
        // In cruise the window stays within the cycle's gains of BDP + ack delay.
        let bdp = rate * 0.125;
        for window in &windows[40..] {
            let gain = *window as f64 / bdp;
            assert!(
                (0.7..=1.55).contains(&gain),
                "window {window} against {bdp}"
            );
        }
    }

    #[test]
    fn an_outage_leaves_the_window_and_the_model_alone() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
        let window = rural.window();
        let rate = rural.bottleneck_rate();
        rural.on_congestion_event(start, start, true, 120_000);
        assert_eq!(rural.window(), window);
        // An outage: rounds with nothing delivered do not count as samples.
        let later = start + Duration::from_secs(40);
        rural.acked(later, 1200, false, 100 * MS);
        rural.acked(later + 150 * MS, 1200, false, 100 * MS);
        assert!(
            (rural.bottleneck_rate() - rate).abs() < 1.0,
            "the model survived the outage"
        );
    }

    #[test]
    fn a_round_losing_a_fifth_of_its_packets_backs_off() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
        let rate = rural.bottleneck_rate();
        let window = rural.window();
        // 2 % loss is noise…
        let later = start + Duration::from_secs(6);
        rural.on_congestion_event(later, later, false, 2_400);
        drive(&mut rural, later, 1, 1_250_000.0, 100 * MS);
        assert!((rural.bottleneck_rate() - rate).abs() / rate < 0.1);
        // …a fifth of a round is congestion.
        let later = later + 100 * MS;
        rural.on_congestion_event(later, later, false, 40_000);
        drive(&mut rural, later, 1, 1_250_000.0, 100 * MS);
        assert!(
            rural.bottleneck_rate() < rate * 0.8,
            "{} {rate}",
            rural.bottleneck_rate()
        );
        assert!(rural.window() < window);
    }

    #[test]
    fn on_a_local_network_cubic_decides() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        drive(
            &mut rural,
            start,
            30,
            100_000_000.0,
            Duration::from_micros(500),
        );
        assert!(rural.is_local());
        assert_eq!(rural.window(), rural.local.window());
        let before = rural.window();
        let later = start + Duration::from_secs(1);
        rural.on_congestion_event(later, later, false, 1200);
        assert!(rural.window() < before, "Cubic backs off at a loss");
    }

    #[test]
    fn a_slower_link_is_followed_within_the_filter_window() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
        let later = start + Duration::from_secs(6);
        // The link drops to 4 Mbit/s.
        drive(&mut rural, later, 30, 500_000.0, 100 * MS);
        let rate = rural.bottleneck_rate();
        assert!(rate < 600_000.0, "{rate}");
    }

    #[test]
    fn app_limited_rounds_do_not_lower_the_model() {
        let start = Instant::now();
        let mut rural = Rural::new(start, 1200);
        drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
        let rate = rural.bottleneck_rate();
        let later = start + Duration::from_secs(6);
        for round in 0..20 {
            let at = later + 100 * MS * round;
            rural.acked(at, 1200, true, 100 * MS);
        }
        assert!((rural.bottleneck_rate() - rate).abs() < 1.0);
    }

    fn resumed(factory: &Arc<ResumingRural>, now: Instant) -> Rural {
        let controller = factory.clone().build(now, 1200);
        *controller
            .into_any()
            .downcast::<Rural>()
            .expect("a rural controller")
    }

    /// Issue 12: a second connection from an address starts with half the
    /// bandwidth-delay product the first measured, instead of 10 packets;
    /// another address, or a local one, starts as before.
    #[test]
    fn a_new_connection_resumes_from_the_link_its_address_had_issue_12() {
        let memory = Arc::new(LinkMemory::default());
        let school: IpAddr = "10.0.0.2".parse().expect("ip");
        let factory = Arc::new(ResumingRural {
            memory: memory.clone(),
            addr: school,
        });
        let start = Instant::now();
        let mut first = resumed(&factory, start);
        assert_eq!(first.window(), INITIAL_PACKETS * 1200);
        // 20 Mbit/s, 600 ms: a BDP of 1.5 MB.
        drive(&mut first, start, 30, 2_500_000.0, 600 * MS);
        let model = memory.recall(school, Instant::now()).expect("remembered");
        assert!(
            (2_200_000.0..=2_800_000.0).contains(&model.rate),
            "{model:?}"
        );

        let second = resumed(&factory, Instant::now());
        let half_bdp = model.rate * model.min_rtt.as_secs_f64() / 2.0;
        assert_eq!(second.window(), half_bdp as u64);
        assert!(second.window() > 600_000, "{}", second.window());

        let other = Arc::new(ResumingRural {
            memory: memory.clone(),
            addr: "10.0.0.3".parse().expect("ip"),
        });
        assert_eq!(
            resumed(&other, Instant::now()).window(),
            INITIAL_PACKETS * 1200
        );
        // Long ago is forgotten.
        let later = Instant::now() + RESUME_FOR + Duration::from_secs(1);
        assert_eq!(memory.recall(school, later), None);
    }

    /// A short connection's few full rounds do not lower what a long one
    /// learnt, but three full rounds of a slower link do.
    #[test]
    fn a_short_connection_does_not_forget_the_link_a_long_one_measured_issue_12() {
        let memory = LinkMemory::default();
        let addr: IpAddr = "10.0.0.4".parse().expect("ip");
        let at = Instant::now();
        let model = |rate| Remembered {
            rate,
            min_rtt: 600 * MS,
            at,
        };
        memory.remember(addr, model(2_500_000.0), 10);
        memory.remember(addr, model(100_000.0), 2);
        assert_eq!(memory.recall(addr, at).map(|m| m.rate), Some(2_500_000.0));
        memory.remember(addr, model(1_000_000.0), 3);
        assert_eq!(memory.recall(addr, at).map(|m| m.rate), Some(1_000_000.0));
    }
}
