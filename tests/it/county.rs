//! Issue 14: county edges. An edge run with `--serve-edges` is the upstream
//! of village edges: it forwards the origin's signed catalog, serves what it
//! holds, and fetches upstream once what it does not hold yet.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use catalog::Hash;
use shanlu_tests::{
    RunningEdge, ServedOrigin, ServingEdges, TestEdge, TestOrigin, generated, run_err, wait_until,
};

/// A course `id` of a video of `size` random bytes and a page, published.
/// Returns the course folder.
pub fn course(origin: &TestOrigin, id: &str, size: usize, seed: u64) -> std::path::PathBuf {
    let root = origin.dir.path().join(id);
    let write = |rel: &str, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    };
    write("course.toml", format!("id = \"{id}\"\n").as_bytes());
    write(
        "01/index.html",
        b"<h1>county</h1><video src='video.mp4'></video>",
    );
    write("01/video.mp4", &generated(size, seed));
    write("02/index.html", b"<p>lesson two</p>");
    origin.publish(&root);
    root
}

/// The distinct chunks of every file the origin holds.
pub fn all_chunks(origin: &TestOrigin) -> HashSet<Hash> {
    let store = catalog::Store::open_existing(origin.data().join("store")).expect("origin store");
    let mut chunks = HashSet::new();
    for course in origin.ls()["courses"].as_array().expect("courses") {
        for lesson in course["lessons"].as_array().expect("lessons") {
            for file in lesson["files"].as_array().expect("files") {
                let hash: Hash = file["manifest"]
                    .as_str()
                    .expect("manifest")
                    .parse()
                    .expect("hash");
                let manifest = store.manifest(&hash).expect("manifest");
                chunks.extend(manifest.chunks.iter().map(|c| c.hash));
            }
        }
    }
    chunks
}

/// Every file under `folder` is held by `edge`, byte for byte.
pub fn assert_holds_folder(edge: &TestEdge, folder: &Path) {
    for entry in walkdir::WalkDir::new(folder) {
        let entry = entry.expect("walk");
        if !entry.file_type().is_file() || entry.file_name() == "course.toml" {
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read");
        let blob = blake3::hash(&bytes).to_hex().to_string();
        let held = std::fs::read(edge.blob_path(&blob))
            .unwrap_or_else(|err| panic!("{} not held: {err}", entry.path().display()));
        assert!(held == bytes, "{} differs", entry.path().display());
    }
}

/// A county edge pinned to `served`, holding the catalog (and every
/// metadata object) but subscribed to `subscribe`, running and serving edges.
pub fn county(
    origin: &TestOrigin,
    served: &ServedOrigin,
    subscribe: &str,
    env: &[(&str, &str)],
) -> (TestEdge, RunningEdge, ServingEdges) {
    let token = origin.add_edge("county");
    let edge = TestEdge::init(origin, served, served.quic, &token, subscribe);
    let log = edge.dir.path().join("county.log");
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "info"));
    let (running, serving) = edge.run_serving(&[], &env, &log);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let status = running.json("/api/v1/status");
            status["live"]["syncing"] == false && !status["catalog_sequence"].is_null()
        }),
        "the county edge's first pass did not end: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    (edge, running, serving)
}

/// Waits until `edge` (running, perhaps in another network namespace)
/// holds a catalog, read from its folder; `log` is shown if it never does.
fn wait_for_catalog(edge: &TestEdge, log: &Path) {
    assert!(
        wait_until(Duration::from_secs(120), || {
            let status =
                shanlu_tests::run_ok(&["edge", "status", "--data", &edge.data_str(), "--json"]);
            let status: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
            !status["catalog_sequence"].is_null()
        }),
        "the edge never held the catalog: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn issue_14_villages_below_a_county_edge_get_every_chunk_which_leaves_the_origin_once() {
    let origin = TestOrigin::init();
    let folder = course(&origin, "c", 3 * 1024 * 1024 + 17, 1401);
    let chunks = all_chunks(&origin);
    let served = origin.serve();
    // The county holds the catalog and metadata, none of the files yet.
    let (county, county_run, serving) = county(&origin, &served, "elsewhere", &[]);
    let fallback = format!("https://{}", serving.https);
    let villages: Vec<TestEdge> = (0..3)
        .map(|i| {
            let token = county.add_edge(&format!("village-{i}"));
            TestEdge::init_below(&origin, &serving, &token, "all", &["--fallback", &fallback])
        })
        .collect();
    // All three at once, the last over the HTTPS fallback (a village whose
    // carrier blocks UDP): the county fetches each chunk upstream once.
    std::thread::scope(|scope| {
        for (i, village) in villages.iter().enumerate() {
            scope.spawn(move || {
                let (transport, expected) = match i {
                    2 => ("http", "https"),
                    _ => ("quic", "quic"),
                };
                let (code, report, stderr) =
                    village.sync_with(shanlu_tests::shanlu(), &["--transport", transport]);
                assert_eq!(code, 0, "{report:#}\n{stderr}");
                assert_eq!(report["complete"], true, "{report:#}");
                assert_eq!(report["transport"], expected, "{report:#}");
            });
        }
    });
    for village in &villages {
        assert_holds_folder(village, &folder);
        // A second pass has nothing to fetch.
        let again = village.sync_ok();
        assert_eq!(again["chunks_fetched"], 0, "{again:#}");
    }
    // The county's /metrics counts what it sent below: each village got
    // every chunk from it.
    let metrics = county_run.metrics();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("shanlu_edge_edges_below_chunks_total "))
        .unwrap_or_else(|| panic!("no edges_below_chunks in {metrics}"));
    assert_eq!(
        line.rsplit(' ').next(),
        Some(format!("{}", 3 * chunks.len()).as_str()),
        "{line}"
    );
    drop(county_run);
    assert_eq!(
        served.stop_counting_chunks(),
        chunks.len() as u64,
        "every chunk leaves the origin once, however many villages ask"
    );
    // What the county fetched for the villages, it kept.
    assert_holds_folder(&county, &folder);
}

#[test]
fn issue_14_a_county_edge_refuses_tokens_it_did_not_issue() {
    let origin = TestOrigin::init();
    course(&origin, "c", 64 * 1024, 1402);
    let served = origin.serve();
    let (_county, _run, serving) = county(&origin, &served, "all", &[]);
    // A token the origin issued is not one the county knows.
    let origin_token = origin.add_edge("straight-to-origin");
    let village = TestEdge::init_below(&origin, &serving, &origin_token, "all", &[]);
    let (code, _, stderr) = village.sync();
    assert_ne!(code, 0);
    assert!(stderr.contains("token"), "{stderr}");
}

#[test]
fn issue_14_edge_add_edge_needs_an_edge_folder_and_a_good_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = run_err(&[
        "edge",
        "add-edge",
        "--data",
        dir.path().to_str().expect("utf-8"),
        "--name",
        "village",
    ]);
    assert!(err.contains("edge.toml"), "{err}");
    let origin = TestOrigin::init();
    course(&origin, "c", 1024, 1403);
    let served = origin.serve();
    let token = origin.add_edge("county");
    let county = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let err = run_err(&[
        "edge",
        "add-edge",
        "--data",
        &county.data_str(),
        "--name",
        "two words",
    ]);
    assert!(err.contains("name"), "{err}");
    county.add_edge("village");
    let err = run_err(&[
        "edge",
        "add-edge",
        "--data",
        &county.data_str(),
        "--name",
        "village",
    ]);
    assert!(err.contains("already exists"), "{err}");
}

/// Three tiers over the emulated rural link (`tools/linksim`): the origin
/// in one namespace; the county edge and three villages in the other, behind
/// the slow, lossy link. Needs root, /dev/net/tun and `ip`; skipped without.
#[test]
fn issue_14_three_tiers_over_a_rural_link_every_chunk_crosses_it_once() {
    use linksim::{Link, LinkSpec, Side};
    if !shanlu_tests::require(shanlu_tests::Need::NetNs) {
        return;
    }
    const SIZE: usize = 4 * 1024 * 1024;
    let origin = TestOrigin::init();
    let folder = course(&origin, "c", SIZE, 1404);
    let chunks = all_chunks(&origin);
    let spec = LinkSpec::default()
        .delay(Duration::from_millis(40))
        .loss(0.005)
        .rate_bps(8_000_000);
    let link = Link::start(spec, Duration::from_secs(300))
        .expect("starting the emulated link (needs root, /dev/net/tun and the ip command)");
    let ip = link.origin_ip().to_string();
    let served = origin.serve_with(
        link.command_in(Side::Origin, shanlu_tests::shanlu_bin()),
        &format!("{ip}:0"),
        &ip,
        &[],
    );
    let token = origin.add_edge("county");
    let county = TestEdge::init(&origin, &served, served.quic, &token, "elsewhere");
    let log = county.dir.path().join("county.log");
    let (_run, serving) = county.run_serving_in(
        link.command_in(Side::Edge, shanlu_tests::shanlu_bin()),
        "127.0.0.1:0",
        &[],
        &[("RUST_LOG", "info")],
        &log,
    );
    wait_for_catalog(&county, &log);
    let villages: Vec<TestEdge> = (0..3)
        .map(|i| {
            let token = county.add_edge(&format!("village-{i}"));
            TestEdge::init_below(&origin, &serving, &token, "all", &[])
        })
        .collect();
    let before = link.stats().down.bytes_carried;
    std::thread::scope(|scope| {
        for village in &villages {
            let link = &link;
            scope.spawn(move || {
                let command = link.command_in(Side::Edge, shanlu_tests::shanlu_bin());
                let (code, report, stderr) = village.sync_with(command, &[]);
                assert_eq!(code, 0, "{report:#}\n{stderr}");
                assert_eq!(report["complete"], true, "{report:#}");
            });
        }
    });
    let crossed = link.stats().down.bytes_carried - before;
    for village in &villages {
        assert_holds_folder(village, &folder);
    }
    assert_eq!(
        served.stop_counting_chunks(),
        chunks.len() as u64,
        "every chunk leaves the origin once"
    );
    // Three villages' worth would be over 3x; once, with headers and
    // retransmissions, is well under 1.5x.
    assert!(
        crossed < SIZE as u64 * 3 / 2,
        "{crossed} bytes crossed the slow link for a {SIZE}-byte course"
    );
}

/// The county edge lies (the test hook `SHANLU_TEST_CORRUPT_CHUNKS=1` flips
/// a byte of every chunk it serves) and the village also has a LAN peer.
/// While the peer is down, the village checks every chunk against the
/// catalog the origin signed, refuses them all, says why, and keeps nothing
/// bad; once the peer is back, the village's next pass takes the course
/// from it, byte for byte.
#[test]
fn issue_14_a_village_lied_to_by_its_county_edge_recovers_from_a_peer() {
    let origin = TestOrigin::init();
    let folder = course(&origin, "c", 256 * 1024, 1406);
    let served = origin.serve();
    let (county_edge, _county_run, county_serving) = county(
        &origin,
        &served,
        "all",
        &[("SHANLU_TEST_CORRUPT_CHUNKS", "1")],
    );
    // The peer: another school's edge straight below the origin, holding
    // none of the course (it relays from the origin when asked).
    let peer_token = origin.add_edge("peer");
    let peer = TestEdge::init(&origin, &served, served.quic, &peer_token, "elsewhere");
    let peer_log = peer.dir.path().join("peer.log");
    let (_peer_run, peer_serving) = peer.run_serving(&[], &[], &peer_log);
    let token_at_peer = peer.add_edge("village");
    let county_token = county_edge.add_edge("village");
    let village = TestEdge::init_below(&origin, &county_serving, &county_token, "all", &[]);
    // No peer yet: only the lying county answers.
    let (code, report, stderr) = village.sync();
    assert_ne!(code, 0, "{report:#}");
    let text = format!("{report}\n{stderr}");
    assert!(
        text.contains("differs") || text.contains("BLAKE3"),
        "the refusal says why: {text}"
    );
    let video = std::fs::read(folder.join("01/video.mp4")).expect("video");
    let blob = blake3::hash(&video).to_hex().to_string();
    assert!(!village.blob_path(&blob).exists(), "{stderr}");
    let verify = shanlu_tests::run(&["verify", &village.data_str()]);
    assert!(verify.status.success(), "{verify:?}");
    // The county itself holds good copies (it fetched them honestly).
    assert_holds_folder(&county_edge, &folder);
    // The school's IT teacher adds the neighbour as a peer. (The peer is
    // not restarted on its old port: another program may have taken it.)
    let peer_url = format!("quic://{}", peer_serving.quic);
    shanlu_tests::run_ok(&[
        "edge",
        "add-peer",
        "--data",
        &village.data_str(),
        "--url",
        &peer_url,
        "--token",
        &token_at_peer,
        "--cert",
        &peer_serving.fingerprint,
    ]);
    // It relays only once its own first pass put the catalog in force.
    wait_for_catalog(&peer, &peer_log);
    let report = village.sync_ok();
    assert_eq!(report["complete"], true, "{report:#}");
    assert_holds_folder(&village, &folder);
    let verify = shanlu_tests::run(&["verify", &village.data_str()]);
    assert!(verify.status.success(), "{verify:?}");
}

/// `--serve-edges` on a port another program holds: `edge run` stops at
/// once and says which address and what to check.
#[test]
fn issue_14_serve_edges_on_a_busy_port_is_a_clear_error() {
    let origin = TestOrigin::init();
    course(&origin, "c", 1024, 1407);
    let served = origin.serve();
    let token = origin.add_edge("county");
    let county = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let at = busy.local_addr().expect("addr").to_string();
    let output = shanlu_tests::shanlu()
        .args([
            "edge",
            "run",
            "--data",
            &county.data_str(),
            "--listen",
            "127.0.0.1:0",
            "--serve-edges",
            &at,
        ])
        .output()
        .expect("edge run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("serving edges on {at}")) && stderr.contains("port"),
        "{stderr}"
    );
}
