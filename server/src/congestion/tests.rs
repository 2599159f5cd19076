//! Unit tests of the `rural` controller and of the link memory, on a
//! simulated link (no sockets).

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

/// A controller that ran 60 rounds on a 10 Mbit/s, 100 ms link (a BDP of
/// 125 000 bytes), and when it started.
fn cruising() -> (Instant, Rural) {
    let start = Instant::now();
    let mut rural = Rural::new(start, 1200);
    drive(&mut rural, start, 60, 1_250_000.0, 100 * MS);
    (start, rural)
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
    let (start, mut rural) = cruising();
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
    let (start, mut rural) = cruising();
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
    let (start, mut rural) = cruising();
    let later = start + Duration::from_secs(6);
    // The link drops to 4 Mbit/s.
    drive(&mut rural, later, 30, 500_000.0, 100 * MS);
    let rate = rural.bottleneck_rate();
    assert!(rate < 600_000.0, "{rate}");
}

#[test]
fn app_limited_rounds_do_not_lower_the_model() {
    let (start, mut rural) = cruising();
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

/// Issue 12: on the satellite link a resumed connection whose first small
/// answer (a catalog, 5 packets) loses one packet keeps the window it
/// resumed with, instead of falling to a few packets and crawling back up
/// (seen as small updates taking 15–20 s instead of 3).
#[test]
fn a_loss_in_a_small_first_round_does_not_undo_resuming_issue_12() {
    let memory = Arc::new(LinkMemory::default());
    let school: IpAddr = "10.0.0.5".parse().expect("ip");
    memory.remember(
        school,
        Remembered {
            rate: 2_500_000.0,
            min_rtt: 600 * MS,
            at: Instant::now(),
        },
        10,
    );
    let factory = Arc::new(ResumingRural {
        memory,
        addr: school,
    });
    let start = Instant::now();
    let mut rural = resumed(&factory, start);
    let resumed_with = rural.window();
    assert!(resumed_with > 600_000, "{resumed_with}");
    // Round 1: four packets acked, one lost; app-limited (nothing more to send).
    rural.on_congestion_event(start + 600 * MS, start, false, 1200);
    for n in 1..=4u32 {
        rural.acked(start + 600 * MS + n * MS, 1200, true, 600 * MS);
    }
    // The round ends with the next ack.
    rural.acked(start + 1300 * MS, 1200, true, 600 * MS);
    assert!(
        rural.window() >= resumed_with / 2,
        "window fell from {resumed_with} to {}",
        rural.window()
    );
    // Then 300 KB goes out in one round, not in a dozen.
    assert!(rural.window() > 300_000, "{}", rural.window());
}

/// A fresh controller's small round that loses one packet of five stays in
/// start-up; a round of many packets losing a fifth still backs off (see
/// `a_round_losing_a_fifth_of_its_packets_backs_off`).
#[test]
fn one_loss_in_a_handful_of_packets_is_not_congestion_issue_12() {
    let start = Instant::now();
    let mut rural = Rural::new(start, 1200);
    let before = rural.window();
    rural.on_congestion_event(start + 100 * MS, start, false, 1200);
    for n in 1..=4u32 {
        rural.acked(start + 100 * MS + n * MS, 1200, false, 100 * MS);
    }
    rural.acked(start + 220 * MS, 1200, false, 100 * MS);
    assert_eq!(rural.phase, Phase::Startup, "{:?}", rural.phase);
    assert!(rural.window() >= before, "{} < {before}", rural.window());
}
