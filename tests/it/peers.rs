//! Issue 14: peers on the school LAN. An edge lists other edges of its LAN
//! (`shanlu edge add-peer`, `[[peers]]` in edge.toml) that run with
//! `--serve-edges`, and takes chunks from them before its upstream. A peer is
//! untrusted transport: the catalog still comes from the upstream and
//! verifies against the pinned origin key, every chunk is hashed, and a peer
//! that sends one bad chunk is not asked again for that pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shanlu_tests::{
    RunningEdge, ServedOrigin, ServingEdges, TestEdge, TestOrigin, run_ok, shanlu, wait_until,
};

use crate::county::{all_chunks, assert_holds_folder, county, course};

/// A course of one 6 MiB video and two pages: more than one request's worth
/// (a background request carries at most 2 MiB).
const VIDEO: usize = 6 * 1024 * 1024 + 11;

/// Peer A: an edge synced from the origin (everything), running with
/// `--serve-edges` (with `env`), and the course folder. The origin that A
/// synced from is stopped, so that a fresh one counts only what B asks.
fn synced_peer(
    origin: &TestOrigin,
    env: &[(&str, &str)],
) -> (TestEdge, RunningEdge, ServingEdges, PathBuf) {
    let folder = course(origin, "c", VIDEO, 1414);
    let served = origin.serve();
    let (edge, running, serving) = county(origin, &served, "all", env);
    assert_holds_folder(&edge, &folder);
    let served_to_a = served.stop_counting_chunks();
    assert!(served_to_a >= all_chunks(origin).len() as u64);
    (edge, running, serving, folder)
}

/// Edge B, upstream `served`, subscribed to everything, with `peer` as its
/// one LAN peer (added with `shanlu edge add-peer`).
fn edge_with_peer(
    origin: &TestOrigin,
    served: &ServedOrigin,
    peer_url: &str,
    token: &str,
    cert: &str,
) -> TestEdge {
    let token_b = origin.add_edge("school-b");
    let b = TestEdge::init(origin, served, served.quic, &token_b, "all");
    let out = run_ok(&[
        "edge",
        "add-peer",
        "--data",
        &b.data_str(),
        "--url",
        peer_url,
        "--token",
        token,
        "--cert",
        cert,
    ]);
    assert!(out.contains("added peer"), "{out}");
    let toml = std::fs::read_to_string(b.data().join("edge.toml")).expect("edge.toml");
    assert!(toml.contains("[[peers]]"), "{toml}");
    b
}

/// Stops a running edge with SIGINT; its log's `origin stopped` line (its
/// `--serve-edges` server) gives the chunks it served.
fn stop_and_count(mut running: RunningEdge, log: &Path) -> (u64, usize) {
    let pid = running.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    let status = running.child.wait().expect("wait for edge run");
    assert!(status.success(), "edge run exit: {status:?}");
    let text = std::fs::read_to_string(log).expect("log");
    let chunks = shanlu_tests::chunks_served_in(&text);
    let connections = text.matches("edge connected").count();
    (chunks, connections)
}

/// The report's entry for the source whose name starts with `prefix`.
fn source<'a>(report: &'a serde_json::Value, prefix: &str) -> &'a serde_json::Value {
    report["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix} source in {report:#}"))
}

/// Issue 14: two edges on one LAN. B takes every chunk from its synced peer
/// A; the origin serves B only metadata (0 chunks); B's files are the course's
/// bytes.
#[test]
fn issue_14_an_edge_takes_every_chunk_from_its_synced_peer() {
    let origin = TestOrigin::init();
    let (a, a_run, a_serving, folder) = synced_peer(&origin, &[]);
    let served = origin.serve();
    let token = a.add_edge("school-b");
    let url = format!("quic://{}", a_serving.quic);
    let b = edge_with_peer(&origin, &served, &url, &token, &a_serving.fingerprint);
    let report = b.sync_ok();
    assert_eq!(report["complete"], true, "{report:#}");
    assert_holds_folder(&b, &folder);
    let chunks = all_chunks(&origin).len() as u64;
    let peer = source(&report, &format!("peer {}", a_serving.quic));
    assert_eq!(peer["peer"], true);
    assert_eq!(peer["chunks"], chunks, "{report:#}");
    assert_eq!(source(&report, "origin")["chunks"], 0, "{report:#}");
    assert_eq!(report["peers_dropped"], serde_json::json!([]), "{report:#}");
    assert!(report["objects_fetched"].as_u64().expect("objects") > 0);
    // The text report says where the chunks came from.
    let text = run_ok(&["edge", "sync", "--data", &b.data_str()]);
    assert!(
        text.contains(&format!("from peer {}", a_serving.quic)),
        "{text}"
    );
    assert_eq!(
        served.stop_counting_chunks(),
        0,
        "the origin served only metadata"
    );
    drop(a_run);
}

/// Issue 14: a lying peer (every chunk it sends has a flipped byte) is
/// dropped after its first request: B completes from the origin, keeps
/// nothing bad, and names the peer; A served at most one request's worth.
#[test]
fn issue_14_a_lying_peer_is_dropped_and_the_pass_completes_from_the_origin() {
    let origin = TestOrigin::init();
    let (a, a_run, a_serving, folder) =
        synced_peer(&origin, &[("SHANLU_TEST_CORRUPT_CHUNKS", "1")]);
    let served = origin.serve();
    let token = a.add_edge("school-b");
    let url = format!("quic://{}", a_serving.quic);
    let b = edge_with_peer(&origin, &served, &url, &token, &a_serving.fingerprint);
    let (code, report, stderr) = b.sync();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_holds_folder(&b, &folder);
    let chunks = all_chunks(&origin).len() as u64;
    let name = format!("peer {}", a_serving.quic);
    assert_eq!(source(&report, &name)["chunks"], 0, "{report:#}");
    assert_eq!(source(&report, "origin")["chunks"], chunks, "{report:#}");
    let dropped = report["peers_dropped"].as_array().expect("peers_dropped");
    assert_eq!(dropped.len(), 1, "{report:#}");
    let why = dropped[0].as_str().expect("text");
    eprintln!("dropped: {why}");
    assert!(
        why.starts_with(&name) && why.contains("failed its check"),
        "{why}"
    );
    assert!(stderr.contains("not asking this peer again"), "{stderr}");
    assert_eq!(
        stderr.matches("not asking this peer again").count(),
        1,
        "logged once: {stderr}"
    );
    assert_eq!(
        served.stop_counting_chunks(),
        chunks,
        "each chunk once from the origin"
    );
    // A was asked once: one connection, at most one request's worth of chunks.
    let log = a.dir.path().join("county.log");
    let (a_chunks, connections) = stop_and_count(a_run, &log);
    eprintln!(
        "the lying peer served {a_chunks} chunks of {chunks} over {connections} connection(s)"
    );
    assert_eq!(connections, 1, "B connected to A once");
    assert!(
        (1..=64).contains(&a_chunks) && a_chunks < chunks,
        "A served {a_chunks} chunks of {chunks}"
    );
}

/// Issue 14: a peer that cannot be reached (a closed port) neither fails
/// the pass nor slows it by more than its short connect timeout.
#[test]
fn issue_14_an_unreachable_peer_does_not_fail_or_slow_the_pass() {
    let origin = TestOrigin::init();
    let folder = course(&origin, "c", VIDEO, 1415);
    let served = origin.serve();
    // A port nothing listens on (UDP and TCP).
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let url = format!("quic://{closed}");
    let with_peer = edge_with_peer(&origin, &served, &url, "no-such-token", &"ab".repeat(32));
    let token = origin.add_edge("school-c");
    let without = TestEdge::init(&origin, &served, served.quic, &token, "all");

    let started = Instant::now();
    let baseline = without.sync_ok();
    let alone = started.elapsed();
    let started = Instant::now();
    let (code, report, stderr) = with_peer.sync();
    let with_dead_peer = started.elapsed();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_holds_folder(&with_peer, &folder);
    assert_eq!(report["chunks_fetched"], baseline["chunks_fetched"]);
    let name = format!("peer {closed}");
    assert_eq!(source(&report, &name)["chunks"], 0);
    let dropped = report["peers_dropped"].as_array().expect("peers_dropped");
    assert_eq!(dropped.len(), 1, "{report:#}");
    assert!(
        dropped[0].as_str().expect("text").starts_with(&name),
        "{report:#}"
    );
    // The peer costs at most its connect timeout (1 s), with a wide margin.
    eprintln!("pass alone {alone:?}, with an unreachable peer {with_dead_peer:?}");
    assert!(
        with_dead_peer < alone + Duration::from_secs(8),
        "alone {alone:?}, with an unreachable peer {with_dead_peer:?}"
    );
}

/// A loopback port free for both UDP (QUIC) and TCP (the HTTPS fallback).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// `shanlu edge add-edge` on `edge`: the token and the certificate to pin.
fn add_edge_with_cert(edge: &TestEdge, name: &str) -> (String, String) {
    let output = shanlu()
        .args([
            "edge",
            "add-edge",
            "--data",
            &edge.data_str(),
            "--name",
            name,
        ])
        .output()
        .expect("spawn add-edge");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let token = stdout
        .trim()
        .strip_prefix("edge token: ")
        .expect("add-edge prints the token")
        .to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let at = stderr.find("--origin-cert ").expect("the certificate") + "--origin-cert ".len();
    let cert = stderr[at..]
        .split_whitespace()
        .next()
        .expect("a fingerprint")
        .to_owned();
    (token, cert)
}

/// Issue 14: two edges that are each other's peer, both lacking a newly
/// published course, sync at the same time (the usual night window). A peer
/// is asked only for what it holds, so neither waits on the other's fetch
/// (a relay through each other would wait out a minute per request): both
/// complete promptly with the course's bytes, and neither fetched upstream
/// on the other's behalf.
#[test]
fn issue_14_two_peers_of_each_other_syncing_at_once_do_not_wait_on_each_other() {
    let origin = TestOrigin::init();
    let folder = course(&origin, "c", VIDEO, 1416);
    let chunks = all_chunks(&origin).len() as u64;
    let served = origin.serve();
    let a = TestEdge::init(&origin, &served, served.quic, &origin.add_edge("a"), "all");
    let b = TestEdge::init(&origin, &served, served.quic, &origin.add_edge("b"), "all");
    let (port_a, port_b) = (free_port(), free_port());
    let (token_for_b, cert_a) = add_edge_with_cert(&a, "b");
    let (token_for_a, cert_b) = add_edge_with_cert(&b, "a");
    for (edge, port, token, cert) in [
        (&b, port_a, &token_for_b, &cert_a),
        (&a, port_b, &token_for_a, &cert_b),
    ] {
        run_ok(&[
            "edge",
            "add-peer",
            "--data",
            &edge.data_str(),
            "--url",
            &format!("quic://127.0.0.1:{port}"),
            "--token",
            token,
            "--cert",
            cert,
        ]);
    }
    let started = Instant::now();
    let env = [("RUST_LOG", "info")];
    let logs = [a.dir.path().join("a.log"), b.dir.path().join("b.log")];
    let at_a = format!("127.0.0.1:{port_a}");
    let at_b = format!("127.0.0.1:{port_b}");
    let (a_run, _) = a.run_serving_in(shanlu(), &at_a, &[], &env, &logs[0]);
    let (b_run, _) = b.run_serving_in(shanlu(), &at_b, &[], &env, &logs[1]);
    for (running, log) in [(&a_run, &logs[0]), (&b_run, &logs[1])] {
        assert!(
            wait_until(Duration::from_secs(120), || {
                let status = running.json("/api/v1/status");
                status["live"]["syncing"] == false && !status["catalog_sequence"].is_null()
            }),
            "the first pass did not end: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    let both = started.elapsed();
    eprintln!("two peers of each other synced {chunks} chunks each in {both:?}");
    assert_holds_folder(&a, &folder);
    assert_holds_folder(&b, &folder);
    // Neither fetched anything on the other's behalf (a relay starts a
    // read-through: a cache miss).
    for running in [&a_run, &b_run] {
        let metrics = running.metrics();
        assert!(
            metrics.contains("shanlu_edge_cache_misses_total 0"),
            "a peer relayed: {metrics}"
        );
    }
    // Each chunk left the origin at most once per edge.
    let from_origin = served.stop_counting_chunks();
    assert!(from_origin <= 2 * chunks, "{from_origin} of {chunks}");
    // Well under the minute a relay between them would wait per request.
    assert!(both < Duration::from_secs(50), "{both:?}");
}

/// Issue 14: a peer that refuses this edge's token is left out; the pass
/// completes from the origin, and the report says what to do, of the peer
/// (not of the origin).
#[test]
fn issue_14_a_peer_refusing_the_token_is_left_out_with_what_to_do() {
    let origin = TestOrigin::init();
    let (_a, a_run, a_serving, folder) = synced_peer(&origin, &[]);
    let served = origin.serve();
    let url = format!("quic://{}", a_serving.quic);
    let b = edge_with_peer(
        &origin,
        &served,
        &url,
        "not-a-token",
        &a_serving.fingerprint,
    );
    let (code, report, stderr) = b.sync();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_holds_folder(&b, &folder);
    let dropped = report["peers_dropped"].as_array().expect("peers_dropped");
    assert_eq!(dropped.len(), 1, "{report:#}");
    let why = dropped[0].as_str().expect("text");
    eprintln!("dropped: {why}");
    assert!(
        why.starts_with(&format!("peer {}", a_serving.quic))
            && why.contains("refused this edge's token")
            && why.contains("edge add-edge")
            && !why.contains("origin"),
        "{why}"
    );
    let chunks = all_chunks(&origin).len() as u64;
    assert_eq!(source(&report, "origin")["chunks"], chunks, "{report:#}");
    assert_eq!(served.stop_counting_chunks(), chunks);
    drop(a_run);
}

/// Issue 14: read-through asks peers first too: a lesson not held, opened in
/// class, comes from the synced peer, and the origin serves no chunk.
#[test]
fn issue_14_a_lesson_read_through_in_class_comes_from_the_peer() {
    let origin = TestOrigin::init();
    let (a, a_run, a_serving, folder) = synced_peer(&origin, &[]);
    let served = origin.serve();
    let token = a.add_edge("school-b");
    let token_b = origin.add_edge("school-b");
    // B holds the catalog and metadata, and no course's files.
    let b = TestEdge::init(&origin, &served, served.quic, &token_b, "elsewhere");
    run_ok(&[
        "edge",
        "add-peer",
        "--data",
        &b.data_str(),
        "--url",
        &format!("quic://{}", a_serving.quic),
        "--token",
        &token,
        "--cert",
        &a_serving.fingerprint,
    ]);
    b.sync_ok();
    let web = b.run();
    assert!(wait_until(Duration::from_secs(30), || {
        web.json("/api/v1/status")["live"]["syncing"] == false
    }));
    let video = std::fs::read(folder.join("01/video.mp4")).expect("video");
    let (status, head, body) = web.get("/courses/c/01/video.mp4", "");
    assert_eq!(status, 200, "{head}");
    assert!(body == video, "the lesson's bytes");
    assert!(
        web.metrics().contains("shanlu_edge_cache_misses_total 1"),
        "read through"
    );
    drop(web);
    assert_eq!(served.stop_counting_chunks(), 0, "no chunk from the origin");
    let (from_a, _) = stop_and_count(a_run, &a.dir.path().join("county.log"));
    assert!(from_a > 0, "the peer served the lesson");
}
