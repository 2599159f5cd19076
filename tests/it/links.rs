//! Syncs across the emulated rural link (`tools/linksim`): long round trips
//! with loss, UDP blocked, and outages. The origin runs in one network
//! namespace and the edge in the other. These need root, /dev/net/tun and
//! `ip`; without them they skip ([`shanlu_tests::require`]), unless
//! `SHANLU_TEST_REQUIRE_ALL` is set (CI), when they fail.

use std::time::{Duration, Instant};

use linksim::{Link, LinkSpec, Side};
use serde_json::Value;
use shanlu_tests::{Need, ServedOrigin, TestEdge, TestOrigin, generated, run_ok, shanlu_bin};

use crate::sync::assert_edge_holds;

const MS: Duration = Duration::from_millis(1);
const MIB: usize = 1024 * 1024;

fn start(spec: LinkSpec) -> Link {
    Link::start(spec, Duration::from_secs(300))
        .expect("starting the emulated link (needs root, /dev/net/tun and the ip command)")
}

/// A course of `video` random bytes plus a page, published on a new origin;
/// returns the origin, the source folder and the payload in bytes.
fn published(video: usize, seed: u64) -> (TestOrigin, std::path::PathBuf, u64) {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    let write = |rel: &str, bytes: &[u8]| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    };
    let page = "<h1>ꆈꌠꁱꂷ</h1><video src='lesson.mp4'></video>";
    write("01-video/index.html", page.as_bytes());
    write("01-video/lesson.mp4", &generated(video, seed));
    origin.publish(&src);
    (origin, src, (video + page.len()) as u64)
}

/// The origin served inside the link's origin namespace.
fn serve_across(origin: &TestOrigin, link: &Link) -> ServedOrigin {
    let ip = link.origin_ip().to_string();
    origin.serve_with(
        link.command_in(Side::Origin, shanlu_bin()),
        &format!("{ip}:0"),
        &ip,
        &[],
    )
}

/// An edge pinned to `served`, with its HTTPS fallback configured.
fn edge_for(origin: &TestOrigin, served: &ServedOrigin) -> TestEdge {
    let token = origin.add_edge("school");
    let fallback = format!("https://{}", served.https);
    TestEdge::init_with(
        origin,
        served,
        served.quic,
        &token,
        "all",
        &["--fallback", &fallback],
    )
}

/// `edge sync` inside the link's edge namespace; must complete.
fn sync_across(edge: &TestEdge, link: &Link, extra: &[&str]) -> Value {
    let (code, report, stderr) = edge.sync_with(link.command_in(Side::Edge, shanlu_bin()), extra);
    assert_eq!(
        code,
        0,
        "edge sync across {:?} failed:\n{report:#}\n{stderr}",
        link.spec()
    );
    assert_eq!(report["complete"], true, "{report:#}");
    report
}

fn edge_status(edge: &TestEdge) -> String {
    run_ok(&["edge", "status", "--data", &edge.data_str()])
}

#[test]
fn a_sync_across_300ms_and_2_percent_loss_completes_byte_identical_over_quic() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    let (origin, src, payload) = published(4 * MIB, 61);
    let link = start(
        LinkSpec::default()
            .delay(150 * MS)
            .loss(0.02)
            .rate_bps(10_000_000),
    );
    let served = serve_across(&origin, &link);
    let edge = edge_for(&origin, &served);
    let report = sync_across(&edge, &link, &[]);
    assert_eq!(report["transport"], "quic", "{report:#}");
    assert_eq!(assert_edge_holds(&edge, "math", &src), 2);
    let stats = link.stats();
    assert!(
        stats.down.dropped_loss > 0 && stats.up.dropped_loss > 0,
        "the link lost nothing, so this tested nothing: {stats:?}"
    );
    assert!(
        stats.down.bytes_carried >= payload,
        "the payload crossed the link: {stats:?}"
    );
}

#[test]
fn with_udp_dropped_the_sync_completes_over_the_https_fallback_and_says_so() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    let (origin, src, payload) = published(3 * MIB, 62);
    let link = start(
        LinkSpec::default()
            .delay(20 * MS)
            .rate_bps(20_000_000)
            .drop_udp(true),
    );
    let served = serve_across(&origin, &link);
    let edge = edge_for(&origin, &served);
    let report = sync_across(&edge, &link, &[]);
    assert_eq!(report["transport"], "https", "{report:#}");
    let reason = report["fallback_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot reach the origin"), "{report:#}");
    assert_eq!(assert_edge_holds(&edge, "math", &src), 2);
    let stats = link.stats();
    assert!(
        stats.down.dropped_udp + stats.up.dropped_udp > 0,
        "{stats:?}"
    );
    assert!(
        stats.down.bytes_carried >= payload,
        "the payload crossed the link over TCP: {stats:?}"
    );
    let status = edge_status(&edge);
    assert!(
        status.contains("over: https fallback, because QUIC could not connect"),
        "{status}"
    );

    // With UDP open again, the next pass is back on QUIC.
    link.set_udp_blocked(false);
    let report = sync_across(&edge, &link, &[]);
    assert_eq!(report["transport"], "quic", "{report:#}");
    assert_eq!(report["fallback_reason"], Value::Null, "{report:#}");
    assert!(edge_status(&edge).contains("over: quic"));
}

#[test]
fn the_http_transport_can_be_forced_and_a_missing_fallback_is_named() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    let (origin, src, _) = published(MIB, 63);
    let link = start(LinkSpec::default().delay(10 * MS));
    let served = serve_across(&origin, &link);
    let edge = edge_for(&origin, &served);
    let report = sync_across(&edge, &link, &["--transport", "http"]);
    assert_eq!(report["transport"], "https", "{report:#}");
    assert_eq!(report["fallback_reason"], Value::Null, "{report:#}");
    assert_eq!(assert_edge_holds(&edge, "math", &src), 2);

    // An edge without a fallback cannot be forced onto it, and is told why.
    let token = origin.add_edge("no-fallback");
    let bare = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let (code, _, stderr) = bare.sync_with(
        link.command_in(Side::Edge, shanlu_bin()),
        &["--transport", "http"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("edge init --fallback"), "{stderr}");
}

/// Syncs a course across `spec` and returns (report, bytes the link carried
/// towards the edge, the link's stats).
fn sync_once_across(spec: LinkSpec, video: usize, seed: u64) -> (Value, u64, linksim::Stats, f64) {
    let (origin, src, _) = published(video, seed);
    let link = start(spec);
    let served = serve_across(&origin, &link);
    let edge = edge_for(&origin, &served);
    let started = Instant::now();
    let report = sync_across(&edge, &link, &["--transport", "quic"]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(assert_edge_holds(&edge, "math", &src), 2);
    let stats = link.stats();
    (report, stats.down.bytes_carried, stats, seconds)
}

#[test]
fn with_outages_the_sync_completes_on_one_connection_and_carries_no_extra_bytes() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    const VIDEO: usize = 10 * MIB;
    // The same course on a clear link: what the payload costs on the wire
    // (packet headers and acknowledgements included).
    let (_, clear_bytes, _, _) = sync_once_across(LinkSpec::default().delay(20 * MS), VIDEO, 64);
    // 8 Mbit/s, cut for 3 s every 6 s from the 6th second: the 10 MiB take
    // about 11 s of sending, so the transfer meets at least one outage.
    let spec = LinkSpec::default()
        .delay(20 * MS)
        .rate_bps(8_000_000)
        .outages(Duration::from_secs(6), Duration::from_secs(3));
    let (report, cut_bytes, stats, seconds) = sync_once_across(spec, VIDEO, 64);
    assert!(
        stats.down.dropped_outage > 0,
        "no outage hit the transfer ({seconds:.1} s), so this tested nothing: {stats:?}"
    );
    assert_eq!(
        report["reconnects"], 0,
        "the connection outlived the cuts: {report:#}"
    );
    let fetched = report["bytes_fetched"].as_u64().expect("bytes_fetched");
    assert!(
        fetched <= VIDEO as u64 + VIDEO as u64 / 100,
        "chunks were fetched twice: {fetched} bytes for a {VIDEO}-byte video"
    );
    let extra = cut_bytes as f64 / clear_bytes as f64 - 1.0;
    assert!(
        extra <= 0.02,
        "the outages cost {:.1} % more bytes on the link ({cut_bytes} against {clear_bytes})",
        extra * 100.0
    );
}

#[test]
fn after_a_minute_without_the_link_the_sync_resumes_within_seconds_and_refetches_nothing() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    const VIDEO: usize = 6 * MIB;
    let (origin, src, _) = published(VIDEO, 65);
    let link = start(LinkSpec::default().delay(20 * MS).rate_bps(4_000_000));
    let served = serve_across(&origin, &link);
    let edge = edge_for(&origin, &served);
    let mut sync = link.command_in(Side::Edge, shanlu_bin());
    sync.env("RUST_LOG", "warn")
        .args([
            "edge",
            "sync",
            "--data",
            &edge.data_str(),
            "--json",
            "--transport",
            "quic",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = sync.spawn().expect("spawning edge sync");
    // Cut the link for 60 s once a third of the video has crossed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while link.stats().down.bytes_carried < 2 * MIB as u64 {
        assert!(
            Instant::now() < deadline,
            "the sync never got going: {:?}",
            link.stats()
        );
        std::thread::sleep(50 * MS);
    }
    link.set_cut(true);
    std::thread::sleep(Duration::from_secs(60));
    link.set_cut(false);
    let restored = Instant::now();
    let output = child.wait_with_output().expect("edge sync");
    let after = restored.elapsed();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report:#}\n{stderr}");
    assert_eq!(assert_edge_holds(&edge, "math", &src), 2);
    // The other 4 MiB take about 9 s at 4 Mbit/s; without the stall watch,
    // QUIC's doubling resend timer alone could wait another minute.
    assert!(
        after < Duration::from_secs(30),
        "the sync took {after:?} after the link came back\n{report:#}\n{stderr}"
    );
    let fetched = report["bytes_fetched"].as_u64().expect("bytes_fetched");
    assert!(
        fetched <= VIDEO as u64 + VIDEO as u64 / 50,
        "chunks were fetched twice: {fetched} bytes for a {VIDEO}-byte video"
    );
    assert!(link.stats().down.dropped_outage > 0);
}

#[test]
fn the_status_page_says_when_the_edge_fell_back_to_https_and_read_through_uses_it() {
    if !shanlu_tests::require(Need::NetNs) {
        return;
    }
    let (origin, src, _) = published(MIB / 2, 66);
    let served = origin.serve();
    let token = origin.add_edge("school");
    // A QUIC address where nothing answers, as where the carrier drops UDP.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free UDP port");
    let fallback = format!("https://{}", served.https);
    let edge = TestEdge::init_with(
        &origin,
        &served,
        silent,
        &token,
        "another-course",
        &["--fallback", &fallback],
    );
    let running = edge.run();
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let status = running.json("/api/v1/status");
        if status["last_sync"]["finished_at"].as_u64().is_some() {
            break status["last_sync"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no sync pass finished: {status:#}"
        );
        std::thread::sleep(200 * MS);
    };
    assert_eq!(last["complete"], true, "{last:#}");
    assert_eq!(last["transport"], "https", "{last:#}");
    let (code, page) = running.page("/status", "en");
    assert_eq!(code, 200);
    assert!(
        page.contains(r#"<span id="sync-transport">HTTPS</span>"#),
        "{page}"
    );
    assert!(
        page.contains("QUIC could not connect (the network may block UDP)"),
        "{page}"
    );
    let (_, page) = running.page("/status", "zh");
    assert!(page.contains("已改用 HTTPS 同步"), "{page}");
    let metrics = running.metrics();
    assert!(
        metrics.contains("shanlu_edge_sync_over_fallback 1"),
        "{metrics}"
    );

    // The lesson is not subscribed, so it is read through: over HTTPS too.
    let (code, _, body) = running.get("/courses/math/01-video/lesson.mp4", "");
    assert_eq!(code, 200);
    assert!(
        body == std::fs::read(src.join("01-video/lesson.mp4")).expect("source"),
        "the lesson read through over HTTPS differs from its source"
    );
    assert!(
        running
            .metrics()
            .contains("shanlu_edge_cache_misses_total 1")
    );
}
