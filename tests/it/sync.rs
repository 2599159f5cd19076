//! Origin and edge over QUIC on loopback: prefetch, dedupe, resume, refusals.

use std::path::Path;

use serde_json::Value;
use shanlu_tests::{Relay, TestEdge, TestOrigin, generated, run, run_ok};

const VIDEO: usize = 24 * 1024 * 1024;
/// Bytes per second through the relay in the tests that count bytes on the wire.
const WIRE_RATE: u64 = 16 * 1024 * 1024;

pub(crate) fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A course with a video, pages and an empty file.
fn course(root: &Path, seed: u64) {
    write(
        root,
        "01-video/index.html",
        b"<video src='lesson.mp4'></video>",
    );
    write(root, "01-video/lesson.mp4", &generated(VIDEO, seed));
    write(root, "02-pages/index.html", "<h1>加法</h1>".as_bytes());
    write(root, "02-pages/img/a.svg", b"<svg/>");
    write(root, "02-pages/empty.txt", b"");
}

/// Every file the edge lists as held is byte-identical to its source under `root`.
pub(crate) fn assert_edge_holds(edge: &TestEdge, course_id: &str, root: &Path) -> usize {
    let listing = edge.ls();
    let course = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .find(|c| c["id"] == course_id)
        .expect("course");
    let mut checked = 0;
    for lesson in course["lessons"].as_array().expect("lessons") {
        for file in lesson["files"].as_array().expect("files") {
            let source = root
                .join(lesson["id"].as_str().expect("id"))
                .join(file["path"].as_str().expect("path"));
            let blob = edge.blob_path(file["blake3"].as_str().expect("hash"));
            assert_eq!(file["held"], true, "{}", source.display());
            assert_eq!(
                std::fs::read(&blob).expect("blob on edge"),
                std::fs::read(&source).expect("source")
            );
            checked += 1;
        }
    }
    checked
}

/// An origin with the test course published from `DIR/math`.
pub(crate) fn published_course(seed: u64) -> (TestOrigin, std::path::PathBuf) {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    course(&src, seed);
    origin.publish(&src);
    (origin, src)
}

#[test]
fn sync_fetches_every_file_byte_identical_and_a_second_sync_fetches_nothing() {
    let (origin, src) = published_course(1);
    let served = origin.serve();
    let token = origin.add_edge("school-1");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");

    let report = edge.sync_ok();
    assert_eq!(report["complete"], true);
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["files_held"], 5);
    assert!(report["bytes_fetched"].as_u64().expect("bytes") >= VIDEO as u64);
    assert_eq!(assert_edge_holds(&edge, "math", &src), 5);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));

    let again = edge.sync_ok();
    assert_eq!(again["bytes_fetched"], 0);
    assert_eq!(again["objects_fetched"], 0);
    assert_eq!(again["catalog_updated"], false);

    let status: Value = serde_json::from_str(&run_ok(&[
        "edge",
        "status",
        "--data",
        &edge.data_str(),
        "--json",
    ]))
    .expect("json");
    assert_eq!(status["catalog_sequence"], 1);
    assert_eq!(status["courses"][0]["state"], "held");
    assert_eq!(status["last_sync"]["complete"], true);
    assert!(status["bytes_held"].as_u64().expect("bytes") >= VIDEO as u64);
    let text = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(
        text.contains("last sync:") && text.contains("complete"),
        "{text}"
    );
}

#[test]
fn an_update_moves_only_the_changed_chunks_counted_on_the_wire() {
    let (origin, src) = published_course(2);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    // A bottleneck in the relay, as a school link has: what it carries is
    // what reaches the edge, not what a burst would lose in the edge's buffers.
    relay.set_rate(WIRE_RATE);
    let token = origin.add_edge("school-1");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");
    edge.sync_ok();
    let first_sync_bytes = relay.to_edge();
    assert!(first_sync_bytes >= VIDEO as u64);

    // v2: six bytes changed in the middle of the video, published into the running origin.
    let video = src.join("01-video/lesson.mp4");
    let mut bytes = std::fs::read(&video).expect("read");
    bytes[VIDEO / 2..VIDEO / 2 + 6].copy_from_slice(b"second");
    std::fs::write(&video, bytes).expect("write");
    origin.publish(&src);

    let before = relay.to_edge();
    let report = edge.sync_ok();
    let wire = relay.to_edge() - before;
    assert_eq!(
        report["sequence"], 2,
        "the running origin serves the new publish"
    );
    let fetched = report["bytes_fetched"].as_u64().expect("bytes");
    assert!(
        fetched <= 2 * 256 * 1024,
        "fetched {fetched} bytes for a 6-byte edit"
    );
    assert!(report["bytes_reused"].as_u64().expect("reused") >= (VIDEO as u64) - 2 * 256 * 1024);
    // Counted on the wire by the relay, independently of the edge: changed chunks, metadata and QUIC overhead only.
    assert!(
        wire < 1024 * 1024,
        "{wire} bytes crossed the link for a 6-byte edit"
    );
    assert!(
        wire >= fetched,
        "the wire carried less than the edge reports"
    );
    assert_edge_holds(&edge, "math", &src);
}

#[test]
fn two_courses_sharing_a_video_fetch_it_once_and_unsubscribed_files_stay_behind() {
    let origin = TestOrigin::init();
    let shared = generated(VIDEO, 3);
    for name in ["course-a", "course-b"] {
        let dir = origin.dir.path().join(name);
        write(&dir, "01-lesson/shared.mp4", &shared);
        write(&dir, "01-lesson/index.html", name.as_bytes());
        origin.publish(&dir);
    }
    let other = origin.dir.path().join("course-c");
    write(
        &other,
        "01-lesson/other.mp4",
        &generated(4 * 1024 * 1024, 4),
    );
    origin.publish(&other);

    let served = origin.serve();
    let relay = Relay::start(served.quic);
    // A bottleneck in the relay, as a school link has: what it carries is
    // what reaches the edge, not what a burst would lose in the edge's buffers.
    relay.set_rate(WIRE_RATE);
    let token = origin.add_edge("school-2");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "course-a,course-b");
    let report = edge.sync_ok();
    let fetched = report["bytes_fetched"].as_u64().expect("bytes");
    assert!(
        fetched < VIDEO as u64 + 64 * 1024,
        "the shared video was fetched more than once: {fetched} bytes"
    );
    assert!(
        relay.to_edge() < (VIDEO as u64) * 11 / 10,
        "{} bytes on the wire",
        relay.to_edge()
    );
    assert_edge_holds(&edge, "course-a", &origin.dir.path().join("course-a"));
    assert_edge_holds(&edge, "course-b", &origin.dir.path().join("course-b"));

    // The unsubscribed course is listed (metadata synced) but its files are not held.
    let listing = edge.ls();
    let course_c = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .find(|c| c["id"] == "course-c")
        .expect("listed");
    assert_eq!(course_c["lessons"][0]["files"][0]["held"], false);
    let status: Value = serde_json::from_str(&run_ok(&[
        "edge",
        "status",
        "--data",
        &edge.data_str(),
        "--json",
    ]))
    .expect("json");
    let state = |id: &str| {
        status["courses"]
            .as_array()
            .expect("courses")
            .iter()
            .find(|c| c["id"] == id)
            .expect("course")["state"]
            .clone()
    };
    assert_eq!(state("course-a"), "held");
    assert_eq!(state("course-c"), "metadata");
}

#[test]
fn an_edge_killed_mid_sync_resumes_without_refetching_committed_chunks() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("big");
    let size = 48 * 1024 * 1024;
    write(&src, "01-video/lesson.mp4", &generated(size, 5));
    origin.publish(&src);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    relay.set_rate(12 * 1024 * 1024);
    let token = origin.add_edge("school-3");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");

    let mut child = shanlu_tests::shanlu()
        .args(["edge", "sync", "--data", &edge.data_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn edge sync");
    // Wait until a good part has crossed the link, then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while relay.to_edge() < (size as u64) / 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert!(
        !status.success(),
        "the sync finished before it could be killed"
    );

    // What the killed sync had committed, read from the edge's own store.
    let listing = origin.ls();
    let file = &listing["courses"][0]["lessons"][0]["files"][0];
    let manifest_hash: catalog::Hash = file["manifest"]
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash");
    let committed = {
        let store = catalog::Store::open_existing(edge.data().join("store")).expect("edge store");
        let manifest = store
            .manifest(&manifest_hash)
            .expect("manifest synced before the files");
        let partial = store.partial(manifest_hash, manifest).expect("partial");
        partial.bytes_present()
    };
    assert!(committed > 0, "nothing was committed before the kill");
    assert!(committed < size as u64);

    relay.set_rate(0);
    let report = edge.sync_ok();
    let fetched = report["bytes_fetched"].as_u64().expect("bytes");
    assert_eq!(
        fetched + committed,
        size as u64,
        "a committed chunk was fetched again (or one is missing)"
    );
    assert_edge_holds(&edge, "big", &src);
}

#[test]
fn a_restarted_origin_is_reconnected_to_within_the_same_sync() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("big");
    let size = 40 * 1024 * 1024;
    write(&src, "01-video/lesson.mp4", &generated(size, 6));
    origin.publish(&src);
    let served = origin.serve();
    let port = served.quic;
    let relay = Relay::start(served.quic);
    relay.set_rate(10 * 1024 * 1024);
    let token = origin.add_edge("school-4");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");

    let data = edge.data_str();
    let sync = std::thread::spawn(move || run(&["edge", "sync", "--data", &data, "--json"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while relay.to_edge() < (size as u64) / 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The origin dies mid-transfer and comes back on the same address.
    served.kill();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _restarted = origin.serve_on(&port.to_string());
    relay.set_rate(0);

    let output = sync.join().expect("sync thread");
    let report: Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert!(
        output.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report["reconnects"].as_u64().expect("reconnects") >= 1,
        "{report:#}"
    );
    assert_edge_holds(&edge, "big", &src);
}

#[test]
fn a_damaged_blob_on_the_origin_is_named_and_everything_else_is_kept() {
    let (origin, _src) = published_course(7);
    let listing = origin.ls();
    let lesson = &listing["courses"][0]["lessons"][0];
    let video = lesson["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "lesson.mp4")
        .expect("video");
    let blob = video["blake3"].as_str().expect("hash").to_owned();

    // Flip one byte on the origin's disk and find the chunk that holds it.
    let flip_at = VIDEO / 3;
    let blob_path = origin.blob_path(&blob);
    let mut bytes = std::fs::read(&blob_path).expect("blob");
    bytes[flip_at] ^= 0x01;
    std::fs::write(&blob_path, bytes).expect("write");
    let damaged_chunk = {
        let store = catalog::Store::open_existing(origin.data().join("store")).expect("store");
        let manifest = store
            .manifest(
                &video["manifest"]
                    .as_str()
                    .expect("hash")
                    .parse()
                    .expect("hash"),
            )
            .expect("manifest");
        manifest
            .chunk_offsets()
            .find(|(offset, chunk)| {
                *offset <= flip_at as u64 && (flip_at as u64) < offset + u64::from(chunk.len)
            })
            .map(|(_, chunk)| chunk.hash)
            .expect("a chunk covers the offset")
    };

    let served = origin.serve();
    let token = origin.add_edge("school-5");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let (code, report, _) = edge.sync();
    assert_eq!(code, 2, "an incomplete sync must not exit 0: {report:#}");
    assert_eq!(report["complete"], false);
    assert_eq!(report["files_held"], 4);
    let failures = report["failures"].to_string();
    assert!(
        failures.contains(&damaged_chunk.to_string()),
        "the damaged chunk is not named: {failures}"
    );
    assert!(failures.contains("math/01-video/lesson.mp4"), "{failures}");
    assert!(
        served
            .log_text()
            .contains("refusing to serve a damaged chunk"),
        "{}",
        served.log_text()
    );
    // Everything else is held and verifies; the video is not held.
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
    assert!(!edge.blob_path(&blob).exists());
}

#[test]
fn scattered_edits_and_an_insertion_travel_as_deltas_smaller_than_the_changed_chunks() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    course(&src, 12);
    write(
        &src,
        "02-pages/notes.html",
        "<p>第一课 ꆈꌠ བོད་ཡིག lesson notes</p>\n"
            .repeat(3000)
            .as_bytes(),
    );
    origin.publish(&src);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    // A bottleneck in the relay, as a school link has: what it carries is
    // what reaches the edge, not what a burst would lose in the edge's buffers.
    relay.set_rate(WIRE_RATE);
    let token = origin.add_edge("school-10");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");
    let first = edge.sync_ok();
    // The page compresses on the wire.
    assert!(first["bytes_fetched"].as_u64().expect("bytes") < VIDEO as u64 + 64 * 1024);

    // 40 edits of 3 000 bytes spread over the video, and 1 000 bytes inserted near its start.
    let video = src.join("01-video/lesson.mp4");
    let mut bytes = std::fs::read(&video).expect("read");
    let edit = generated(3_000, 99);
    for n in 0..40 {
        let at = 1_000_000 + n * (VIDEO - 2_000_000) / 40;
        bytes[at..at + 3_000].copy_from_slice(&edit);
    }
    bytes.splice(200_000..200_000, generated(1_000, 98));
    std::fs::write(&video, &bytes).expect("write");
    let edited = origin.publish(&src);
    let changed_chunk_bytes = edited["new_chunk_bytes"].as_u64().expect("bytes");
    assert!(
        changed_chunk_bytes > 2 * 1024 * 1024,
        "the edits touched {changed_chunk_bytes} bytes of chunks"
    );

    let before = relay.to_edge();
    let report = edge.sync_ok();
    let wire = relay.to_edge() - before;
    let fetched = report["bytes_fetched"].as_u64().expect("bytes");
    // 121 000 bytes were edited or inserted; deltas carry little more than that.
    assert!(
        fetched < 400 * 1024,
        "fetched {fetched} bytes for 121 000 edited bytes (changed chunks: {changed_chunk_bytes})"
    );
    assert!(wire < 700 * 1024, "{wire} bytes on the wire");
    assert_edge_holds(&edge, "math", &src);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
}

#[test]
fn an_unreachable_origin_gives_up_with_a_clear_error() {
    let origin = TestOrigin::init();
    let served = origin.serve();
    let token = origin.add_edge("school-11");
    // A UDP port where nothing answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
    let edge = TestEdge::init(
        &origin,
        &served,
        silent.local_addr().expect("addr"),
        &token,
        "all",
    );
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1);
    assert!(stderr.contains("gave up after 3 attempts"), "{stderr}");
    assert!(stderr.contains("is UDP to that port open?"), "{stderr}");
    let status = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(
        status.contains("last sync:") && status.contains("failed: gave up"),
        "{status}"
    );
}

#[test]
fn a_second_sync_of_the_same_edge_stops_cleanly_while_the_first_runs() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("big");
    write(
        &src,
        "01-video/lesson.mp4",
        &generated(32 * 1024 * 1024, 14),
    );
    origin.publish(&src);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    relay.set_rate(8 * 1024 * 1024);
    let token = origin.add_edge("school-13");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");

    let data = edge.data_str();
    let first = std::thread::spawn(move || run(&["edge", "sync", "--data", &data, "--json"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while relay.to_edge() < 1024 * 1024 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("another sync is already running"),
        "{stderr}"
    );

    relay.set_rate(0);
    let output = first.join().expect("first sync");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_edge_holds(&edge, "big", &src);
}
