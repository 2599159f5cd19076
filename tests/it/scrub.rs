//! Issue 13, item 6: the edge's scrub. A byte corrupted in place, with the
//! file's size and modification time kept (so only a re-hash finds it), is
//! found by `edge run`'s background scrub or by `shanlu edge scrub`,
//! quarantined, no longer served, shown on the status page, in the API and
//! in `edge status`, and fetched again byte-identical by the next sync pass.
//! Outside the sync windows the background scrub checks nothing.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shanlu_tests::{Relay, RunningEdge, TestEdge, TestOrigin, generated, wait_until};

const SIZE: usize = 300_000;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// One lesson: a page and two files; (name, bytes, blake3) of the two.
fn publish(origin: &TestOrigin) -> Vec<(&'static str, Vec<u8>, String)> {
    let src = origin.dir.path().join("science");
    write(&src, "course.toml", b"id = \"science\"\n");
    write(&src, "01/index.html", b"<video src='video.mp4'></video>");
    let mut files = Vec::new();
    for (seed, name) in [(1, "video.mp4"), (2, "intact.pdf")] {
        let bytes = generated(SIZE, 900 + 2 * seed);
        write(&src, &format!("01/{name}"), &bytes);
        files.push((
            name,
            bytes.clone(),
            blake3::hash(&bytes).to_hex().to_string(),
        ));
    }
    origin.publish(&src);
    files
}

/// Flips one byte of a held blob in place, then puts its modification time
/// back: the size and mtime are what they were.
fn corrupt_in_place(path: &Path) {
    use std::os::unix::fs::FileExt;
    let before = std::fs::metadata(path).expect("metadata");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open a blob");
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, 123_456).expect("read");
    file.write_all_at(&[byte[0] ^ 0x01], 123_456)
        .expect("write in place");
    file.set_modified(before.modified().expect("mtime"))
        .expect("mtime back");
    drop(file);
    let after = std::fs::metadata(path).expect("metadata");
    assert_eq!(after.len(), before.len());
    assert_eq!(after.modified().ok(), before.modified().ok());
}

/// Adds lines to the edge's `edge.toml` (its subscription is `all`, a plain
/// value, so lines appended stay top-level keys).
fn configure(edge: &TestEdge, lines: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(edge.data().join("edge.toml"))
        .expect("edge.toml");
    file.write_all(lines.as_bytes()).expect("append");
}

fn scrub_status(web: &RunningEdge) -> serde_json::Value {
    web.json("/api/v1/status")["scrub"].clone()
}

/// issue 13: `edge run`'s background scrub finds a same-size, same-mtime
/// corruption, quarantines it at once (the classroom answers 404 / 503,
/// never the bytes), the status page and API name it, and once the origin
/// is reachable the pass it asked for fetches the file again byte-identical;
/// `verify` is clean and `edge status` tells the story.
#[test]
fn issue_13_the_background_scrub_quarantines_a_silent_corruption_and_the_next_pass_repairs_it() {
    let origin = TestOrigin::init();
    let files = publish(&origin);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    let token = origin.add_edge("scrubbed");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");
    let first = edge.sync_ok();
    assert_eq!(first["files_held"], 3, "{first:#}");
    // Fast, and a new cycle every 4 s (the first 4 s after the start), so
    // the second finds the damage.
    configure(&edge, "scrub_rate = \"50MB\"\nscrub_every = \"4s\"\n");
    let web = edge.run();
    let total = (2 * SIZE + 31) as u64;
    assert!(
        wait_until(Duration::from_secs(30), || {
            let scrub = scrub_status(&web);
            scrub["last"]["by"] == "background" && scrub["last"]["blobs_checked"] == 3
        }),
        "the first cycle did not finish: {:#}",
        web.json("/api/v1/status")
    );
    let scrub = scrub_status(&web);
    assert_eq!(scrub["last"]["bytes_checked"], total, "{scrub:#}");
    assert_eq!(scrub["last"]["found"], 0, "{scrub:#}");
    assert_eq!(scrub["every"], "4s");
    assert_eq!(scrub["rate"], 50_000_000);

    // Offline, so read-through cannot mend the file behind the scrub's back.
    relay.set_cut(true);
    let (name, bytes, hash) = &files[0];
    let blob = edge.blob_path(hash);
    corrupt_in_place(&blob);
    assert!(
        wait_until(Duration::from_secs(30), || {
            !scrub_status(&web)["findings"]
                .as_array()
                .is_none_or(Vec::is_empty)
        }),
        "no finding: {:#}",
        scrub_status(&web)
    );
    let scrub = scrub_status(&web);
    let finding = &scrub["findings"][0];
    assert_eq!(finding["blob"], hash.as_str(), "{scrub:#}");
    assert_eq!(finding["quarantined"], true, "{scrub:#}");
    let found_at = finding["at"].as_u64().expect("when found");
    let problem = finding["problem"].as_str().expect("problem text");
    assert!(problem.contains("hashes to"), "{problem}");
    assert!(
        scrub["cycle_found"] == 1 || scrub["last"]["found"] == 1,
        "{scrub:#}"
    );
    assert_eq!(scrub["findings"].as_array().map(Vec::len), Some(1));
    assert!(!blob.exists(), "the damaged blob left blobs/");
    assert!(
        edge.data()
            .join("store/quarantine")
            .join(hash.as_str())
            .is_file()
    );

    // The classroom no longer serves it: not held, and offline.
    let (status, _, body) = web.get(&format!("/files/{hash}"), "");
    assert_eq!(status, 404, "a quarantined file is not here");
    assert!(body.len() < 1024, "{} bytes answered", body.len());
    let (status, _, body) = web.get(&format!("/courses/science/01/{name}"), "");
    assert_eq!(
        status, 503,
        "offline, a lesson file not held is unavailable"
    );
    assert!(body.len() < 1024 && !bytes.starts_with(&body[..body.len().min(64)]));
    // The other file is still served.
    let (status, _, body) = web.get(&format!("/files/{}", files[1].2), "");
    assert_eq!(status, 200);
    assert!(body == files[1].1);

    let (code, page) = web.page("/status", "en");
    assert_eq!(code, 200);
    assert!(
        page.contains(r#"<tr id="scrub-row"><th>Scrub</th>"#),
        "{page}"
    );
    assert!(page.contains(hash.as_str()), "the finding is named: {page}");
    let (_, page) = web.page("/status", "zh");
    assert!(page.contains("数据自检") && page.contains(hash.as_str()));

    // Back online: the pass the scrub asked for (or one asked now) fetches it again.
    relay.set_cut(false);
    shanlu_tests::run_ok(&["edge", "sync-now", "--data", &edge.data_str()]);
    assert!(
        wait_until(Duration::from_secs(90), || {
            let last_sync = &web.json("/api/v1/status")["last_sync"];
            last_sync["complete"] == true
                && last_sync["finished_at"].as_u64() >= Some(found_at)
                && web.get(&format!("/files/{hash}"), "").0 == 200
        }),
        "not fetched again: {:#}",
        web.json("/api/v1/status")
    );
    let (status, _, body) = web.get(&format!("/files/{hash}"), "");
    assert_eq!(status, 200);
    assert!(body == *bytes, "served byte-identical after the repair");
    assert!(std::fs::read(&blob).expect("back in blobs/") == *bytes);
    drop(web);

    let verify = shanlu_tests::run(&["verify", &edge.data_str()]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let text = shanlu_tests::run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(text.contains("last scrub: "), "{text}");
    assert!(text.contains(problem), "the finding is listed: {text}");
}

/// issue 13: `shanlu edge scrub` checks every held file now at the rate it
/// is given (300 KB at 1 MB/s takes at least 0.3 s), exits 2 naming the
/// damaged file, which is quarantined and recorded; `edge sync` fetches it
/// again, and a second scrub finds everything good and exits 0.
#[test]
fn issue_13_edge_scrub_finds_quarantines_and_exits_non_zero() {
    let origin = TestOrigin::init();
    let files = publish(&origin);
    let served = origin.serve();
    let token = origin.add_edge("scrub-now");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let (_, bytes, hash) = &files[1];
    corrupt_in_place(&edge.blob_path(hash));

    let started = Instant::now();
    let output = shanlu_tests::run(&["edge", "scrub", "--data", &edge.data_str(), "--rate", "1MB"]);
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    eprintln!("edge scrub --rate 1MB of 600 031 bytes: {elapsed:?}");
    // 2 × 300 000 bytes and a page at 10^6 B/s: at least 0.6 s.
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(
        stdout.contains(&format!("BAD blob {hash} is damaged")),
        "{stdout}"
    );
    assert!(stdout.contains("checked 3 file(s)"), "{stdout}");
    assert!(stdout.contains("1 damaged"), "{stdout}");
    assert!(stdout.contains("shanlu edge sync --data"), "{stdout}");
    assert!(!edge.blob_path(hash).exists());
    assert!(
        edge.data().join("sync-now").is_file(),
        "a running edge run is asked for a pass"
    );

    let status: serde_json::Value = serde_json::from_str(&shanlu_tests::run_ok(&[
        "edge",
        "status",
        "--data",
        &edge.data_str(),
        "--json",
    ]))
    .expect("json");
    let scrub = &status["scrub"];
    assert_eq!(scrub["last"]["by"], "edge scrub", "{scrub:#}");
    assert_eq!(scrub["last"]["found"], 1, "{scrub:#}");
    assert_eq!(scrub["last"]["blobs_checked"], 3, "{scrub:#}");
    assert_eq!(scrub["findings"][0]["blob"], hash.as_str(), "{scrub:#}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let at = scrub["last"]["finished_at"].as_u64().expect("finished_at");
    assert!(now.abs_diff(at) <= 60, "{at} against {now}");

    let report = edge.sync_ok();
    assert_eq!(report["files_repaired"], 1, "{report:#}");
    assert!(std::fs::read(edge.blob_path(hash)).expect("back") == *bytes);
    let again = shanlu_tests::run(&["edge", "scrub", "--data", &edge.data_str(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again.status.code(), Some(0), "{json:#}");
    assert_eq!(json["found"], 0);
    assert_eq!(json["blobs_checked"], 3);
    shanlu_tests::run_ok(&["verify", &edge.data_str()]);
}

/// issue 13: with a sync window that is closed now, `edge run`'s background
/// scrub checks nothing, not even a damaged file, which stays in place.
#[test]
fn issue_13_outside_the_sync_windows_the_background_scrub_checks_nothing() {
    let origin = TestOrigin::init();
    let files = publish(&origin);
    let served = origin.serve();
    let token = origin.add_edge("night-scrub");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    // Due every second once the first `edge run` has started the clock.
    configure(&edge, "scrub_rate = \"50MB\"\nscrub_every = \"1s\"\n");
    let blob = edge.blob_path(&files[0].2);
    corrupt_in_place(&blob);

    // A one-minute window twelve hours away, in UTC: certainly closed now.
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        % 86_400
        / 60;
    let at = |m: u64| format!("{:02}:{:02}", (m % 1440) / 60, m % 60);
    let window = format!("{}-{}", at(minute + 720), at(minute + 721));
    let web = edge.run_with(&["--window", &window], &[("TZ", "UTC")]);
    // Open, a cycle would be due a second after the start and would finish
    // this edge in well under a second.
    std::thread::sleep(Duration::from_secs(4));
    let scrub = scrub_status(&web);
    assert_eq!(
        scrub["cycle_started_at"],
        serde_json::Value::Null,
        "{scrub:#}"
    );
    assert_eq!(scrub["cycle_blobs_checked"], 0, "{scrub:#}");
    assert_eq!(scrub["last"], serde_json::Value::Null, "{scrub:#}");
    assert_eq!(scrub["findings"], serde_json::json!([]), "{scrub:#}");
    assert_eq!(scrub["every"], "1s");
    assert!(blob.exists(), "nothing was checked, nothing quarantined");
    let (_, page) = web.page("/status", "en");
    assert!(
        page.contains(r#"<span id="scrub-last">never</span>"#),
        "{page}"
    );
}
