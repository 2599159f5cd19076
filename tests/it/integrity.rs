//! Issue 11 ("Hardening"), defect 3: blobs damaged on an edge's disk are
//! quarantined, never served with 200, and fetched again by `edge sync`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use shanlu_tests::{Relay, RunningEdge, TestEdge, TestOrigin, generated, http_request};

const SIZE: usize = 700_000;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// One lesson with three files (damaged, truncated and deleted in the tests)
/// and one that stays intact: (name, bytes, blake3).
fn publish_lesson(origin: &TestOrigin) -> Vec<(&'static str, Vec<u8>, String)> {
    let src = origin.dir.path().join("math");
    write(&src, "course.toml", b"id = \"math\"\n");
    write(&src, "01/index.html", b"<video src='video.mp4'></video>");
    let mut files = Vec::new();
    for (seed, name) in [
        (1, "video.mp4"),
        (2, "handout.pdf"),
        (3, "audio.mp3"),
        (4, "intact.bin"),
    ] {
        // `generated` ignores the lowest bit of its seed.
        let bytes = generated(SIZE, 110 + 2 * seed + 1);
        write(&src, &format!("01/{name}"), &bytes);
        let hash = blake3::hash(&bytes).to_hex().to_string();
        files.push((name, bytes, hash));
    }
    origin.publish(&src);
    files
}

/// Damages three held blobs the three ways of the issue: bytes overwritten
/// in place (same size), truncated, deleted.
fn damage(edge: &TestEdge, files: &[(&str, Vec<u8>, String)]) {
    use std::os::unix::fs::FileExt;
    let overwritten = edge.blob_path(&files[0].2);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&overwritten)
        .expect("open a blob");
    file.write_all_at(b"these bytes are not the lesson", 4096)
        .expect("overwrite in place");
    drop(file);
    assert_eq!(
        std::fs::metadata(&overwritten).expect("meta").len(),
        SIZE as u64
    );
    let truncated = std::fs::OpenOptions::new()
        .write(true)
        .open(edge.blob_path(&files[1].2))
        .expect("open a blob");
    truncated.set_len(SIZE as u64 / 3).expect("truncate");
    drop(truncated);
    std::fs::remove_file(edge.blob_path(&files[2].2)).expect("delete a blob");
}

/// A GET that the front door leaves to the hyper router (HTTP/1.0): (status, body).
fn get_via_router(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let (status, _, body) = shanlu_tests::parse_response(&response);
    (status, body)
}

/// A plain HTTP/1.1 GET, which the front door answers itself for a held file.
fn get_via_front_door(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = http_request(addr, "GET", path, "");
    (status, body)
}

/// Both ways in, for a file's content URL and its place in the lesson.
fn get_everywhere(web: &RunningEdge, name: &str, hash: &str) -> Vec<(String, u16, Vec<u8>)> {
    let mut answers = Vec::new();
    for path in [format!("/files/{hash}"), format!("/courses/math/01/{name}")] {
        let (status, body) = get_via_front_door(web.addr, &path);
        answers.push((format!("front door GET {path}"), status, body));
        let (status, body) = get_via_router(web.addr, &path);
        answers.push((format!("router GET {path}"), status, body));
    }
    answers
}

/// Waits for the start-up sync of `edge run` to be over.
fn wait_for_startup_sync(web: &RunningEdge) {
    assert!(
        shanlu_tests::wait_until(Duration::from_secs(30), || {
            let status = web.json("/api/v1/status");
            status["live"]["upstream"]["reachable"] == true
                && status["live"]["syncing"] == false
                && status["last_sync"]["complete"] == true
        }),
        "the start-up sync did not finish"
    );
}

/// issue 11: damaged, truncated and deleted blobs are never served with 200
/// (front door and router, content URL and lesson place); `edge sync` exits 0
/// having fetched the three again and says so; then all are served right.
#[test]
fn issue_11_damaged_blobs_are_never_served_and_edge_sync_fetches_them_again() {
    let origin = TestOrigin::init();
    let files = publish_lesson(&origin);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    let token = origin.add_edge("integrity");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");
    let first = edge.sync_ok();
    let held = first["files_held"].clone();
    assert_eq!(first["files_missing"], 0, "{first:#}");
    let web = edge.run();
    wait_for_startup_sync(&web);
    for (name, bytes, hash) in &files {
        for (how, status, body) in get_everywhere(&web, name, hash) {
            assert_eq!(status, 200, "{how} before any damage");
            assert!(body == *bytes, "{how}: wrong bytes before any damage");
        }
    }

    damage(&edge, &files);
    // Offline, so that read-through cannot mend the files before the sync does.
    relay.set_cut(true);
    for (name, bytes, hash) in &files[..3] {
        for (how, status, body) in get_everywhere(&web, name, hash) {
            assert_ne!(status, 200, "{how}: a damaged file was served with 200");
            assert!(
                body.len() < 1024 && !bytes.starts_with(&body[..body.len().min(64)]),
                "{how}: the answer carried {} bytes of the file",
                body.len()
            );
            if how.contains("/files/") {
                assert_eq!(status, 404, "{how}: a file not held is not here");
            } else {
                assert_eq!(
                    status, 503,
                    "{how}: offline, a lesson file not held is unavailable"
                );
            }
        }
    }
    // The intact file is still served, from disk.
    for (how, status, body) in get_everywhere(&web, files[3].0, &files[3].2) {
        assert_eq!(status, 200, "{how}");
        assert!(body == files[3].1, "{how}: wrong bytes");
    }

    relay.set_cut(false);
    let (code, report, stderr) = edge.sync();
    assert_eq!(code, 0, "edge sync failed:\n{report:#}\n{stderr}");
    assert_eq!(report["files_repaired"], 3, "{report:#}");
    assert_eq!(report["files_completed"], 3, "{report:#}");
    assert_eq!(report["files_missing"], 0, "{report:#}");
    assert_eq!(report["files_held"], held, "{report:#}");
    assert_eq!(report["complete"], true, "{report:#}");

    for (name, bytes, hash) in &files {
        let on_disk = std::fs::read(edge.blob_path(hash)).expect("blob back in place");
        assert_eq!(blake3::hash(&on_disk).to_hex().as_str(), hash);
        for (how, status, body) in get_everywhere(&web, name, hash) {
            assert_eq!(status, 200, "{how} after the repair");
            assert_eq!(
                blake3::hash(&body).to_hex().as_str(),
                hash,
                "{how}: wrong bytes after the repair"
            );
            assert!(body == *bytes);
        }
    }
    // Quarantined copies are gone once the blobs are held again.
    let quarantine = edge.data().join("store/quarantine");
    let left: Vec<_> = std::fs::read_dir(&quarantine)
        .expect("quarantine folder")
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// issue 11: `shanlu verify` on an edge quarantines what it finds bad, says
/// so and exits non-zero; the next `edge sync` fetches those files again and
/// `verify` is clean afterwards.
#[test]
fn issue_11_verify_quarantines_bad_blobs_and_the_next_sync_repairs_them() {
    let origin = TestOrigin::init();
    let files = publish_lesson(&origin);
    let served = origin.serve();
    let token = origin.add_edge("verify");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    damage(&edge, &files);

    let output = shanlu_tests::run(&["verify", &edge.data_str()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "verify passed:\n{stdout}");
    for (_, _, hash) in &files[..3] {
        assert!(
            stdout.contains(hash.as_str()),
            "{hash} not named:\n{stdout}"
        );
        assert!(!edge.blob_path(hash).exists(), "{hash} is still in blobs/");
    }
    assert!(stdout.contains("quarantined 3 blob(s)"), "{stdout}");
    let quarantine = edge.data().join("store/quarantine");
    assert!(
        quarantine.join(&files[0].2).is_file(),
        "the damaged copy is kept"
    );

    let report = edge.sync_ok();
    assert_eq!(report["files_repaired"], 3, "{report:#}");
    assert_eq!(report["files_missing"], 0, "{report:#}");
    let output = shanlu_tests::run(&["verify", &edge.data_str()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "verify after the repair:\n{stdout}"
    );
    for (_, bytes, hash) in &files {
        assert!(std::fs::read(edge.blob_path(hash)).expect("blob") == *bytes);
    }
}

/// Issue 11: a file under `blobs/` that the index does not hold (a write cut
/// between its rename and its record, or a copy by hand) is listed by
/// `shanlu verify` as stray, is not a problem, and is never served.
#[test]
fn verify_lists_stray_files_in_the_blob_folder_without_failing() {
    let origin = TestOrigin::init();
    let files = publish_lesson(&origin);
    let clean = shanlu_tests::run_ok(&["verify", &origin.data_str()]);
    assert!(!clean.contains("not in the index"), "{clean}");

    // Named like a blob, in the right place, but never recorded.
    let unknown = blake3::hash(b"never published").to_hex().to_string();
    let stray = origin.blob_path(&unknown);
    std::fs::create_dir_all(stray.parent().expect("parent")).expect("mkdir");
    std::fs::write(&stray, b"never published").expect("write");
    // And a leftover with no blob name at all, beside a real blob.
    let leftover = origin
        .blob_path(&files[0].2)
        .with_file_name("leftover.part");
    std::fs::write(&leftover, b"half").expect("write");

    let text = shanlu_tests::run_ok(&["verify", &origin.data_str()]);
    assert!(text.contains("all good"), "{text}");
    assert!(text.contains("2 file(s) under"), "{text}");
    assert!(text.contains(&unknown), "{text}");
    assert!(text.contains("leftover.part"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&shanlu_tests::run_ok(&[
        "verify",
        &origin.data_str(),
        "--json",
    ]))
    .expect("json");
    assert_eq!(
        json["stray_files"].as_array().map(Vec::len),
        Some(2),
        "{json:#}"
    );
}
