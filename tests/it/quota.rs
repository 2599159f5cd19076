//! Issue 13, items 1 and 2: the edge's disk quota. `max_store` holds the
//! current version of every subscribed course and never more; cached files
//! (read-through, superseded versions) are evicted least recently opened
//! first, never one a reader has open; what cannot fit is said clearly; a
//! disk that fills anyway stops the pass cleanly and the next pass resumes.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use shanlu_tests::{Need, TestEdge, TestOrigin, generated, require, run, run_ok, wait_until};

pub(crate) fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// Test bytes that differ for every `n` (`generated` ignores its seed's low bit).
pub(crate) fn unique(len: usize, n: u64) -> Vec<u8> {
    generated(len, n * 2 + 1)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Bytes of the blob and partial files under the edge's store, as on disk.
pub(crate) fn store_bytes(edge: &TestEdge) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                _ => 0,
            })
            .sum()
    }
    let store = edge.data().join("store");
    walk(&store.join("blobs")) + walk(&store.join("partial"))
}

/// `shanlu verify EDGE --json` finds no problem and no stray file.
pub(crate) fn verify_clean(data: &Path) {
    let out = run_ok(&["verify", data.to_str().expect("utf-8"), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("verify --json");
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["stray_files"], serde_json::json!([]), "{report:#}");
}

/// The edge holds `bytes` byte-identical.
pub(crate) fn holds(edge: &TestEdge, bytes: &[u8]) -> bool {
    std::fs::read(edge.blob_path(&hex(bytes))).is_ok_and(|held| held == bytes)
}

/// Edge flags: the quota, and a `min_free` the test machine's disk has.
fn quota_flags(max_store: &str) -> Vec<String> {
    vec![
        "--max-store".into(),
        max_store.into(),
        "--min-free".into(),
        "1MB".into(),
    ]
}

fn init_edge(
    origin: &TestOrigin,
    subscribe: &str,
    max_store: &str,
) -> (shanlu_tests::ServedOrigin, TestEdge) {
    let served = origin.serve();
    let token = origin.add_edge("quota");
    let flags = quota_flags(max_store);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let edge = TestEdge::init_with(origin, &served, served.quic, &token, subscribe, &flags);
    (served, edge)
}

const FILE: usize = 400_000;
const MAX: u64 = 2_000_000;

/// Issue 13: with `max_store` smaller than two versions of a course, the
/// edge holds the current version after each of four updates that replace
/// every file, byte-identical, and the store never exceeds the limit
/// (measured on disk after every pass); superseded files are evicted.
#[test]
fn max_store_holds_the_current_version_and_never_exceeds_the_limit_issue_13() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    write(&src, "course.toml", b"id = \"math\"\n");
    let version = |n: u64| -> Vec<Vec<u8>> {
        (0..3)
            .map(|lesson| {
                let bytes = unique(FILE, 1300 + n * 10 + lesson);
                write(&src, &format!("0{lesson}/index.html"), b"<p>lesson</p>");
                write(&src, &format!("0{lesson}/data.bin"), &bytes);
                bytes
            })
            .collect()
    };
    let v1 = version(1);
    origin.publish(&src);
    let (_served, edge) = init_edge(&origin, "all", "2MB");
    let report = edge.sync_ok();
    assert!(v1.iter().all(|b| holds(&edge, b)));
    assert!(store_bytes(&edge) <= MAX);
    assert_eq!(report["quota"]["max_store"], MAX, "{report:#}");
    let mut previous = v1;
    for n in 2..=4 {
        let current = version(n);
        origin.publish(&src);
        let report = edge.sync_ok();
        let on_disk = store_bytes(&edge);
        assert!(
            on_disk <= MAX,
            "pass {n}: {on_disk} bytes on disk, over {MAX}"
        );
        assert!(report["quota"]["used_after"].as_u64().expect("used") <= MAX);
        assert!(
            current.iter().all(|b| holds(&edge, b)),
            "pass {n}: the current version is held byte-identical"
        );
        assert!(
            report["quota"]["evicted_files"].as_u64().expect("evicted") >= 1,
            "pass {n}: superseded files made room: {report:#}"
        );
        assert!(
            previous.iter().any(|b| !edge.blob_path(&hex(b)).exists()),
            "pass {n}: a superseded file was evicted"
        );
        previous = current;
    }
    verify_clean(&edge.data());
}

/// Issue 13: subscriptions that cannot fit: the pass fetches in course
/// order up to the limit, exits 2, names the lesson left out and the bytes
/// it needs (in `edge sync`, `edge status` and the JSON report), the store
/// stays under the limit and consistent, and `verify` passes.
#[test]
fn subscriptions_that_cannot_fit_say_which_lessons_are_not_held_issue_13() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    write(&src, "course.toml", b"id = \"math\"\n");
    let files: Vec<Vec<u8>> = (0..3u64)
        .map(|n| {
            let bytes = unique(600_000, 1400 + n);
            write(&src, &format!("0{n}/video.mp4"), &bytes);
            bytes
        })
        .collect();
    origin.publish(&src);
    let (_served, edge) = init_edge(&origin, "math", "1.3MB");
    let (code, report, stderr) = edge.sync();
    assert_eq!(code, 2, "some files are not held: {report:#}\n{stderr}");
    assert!(holds(&edge, &files[0]) && holds(&edge, &files[1]));
    assert!(!edge.blob_path(&hex(&files[2])).exists());
    assert_eq!(report["files_missing"], 1);
    assert_eq!(report["quota"]["not_held_files"], 1, "{report:#}");
    assert_eq!(report["quota"]["not_held_bytes"], 600_000);
    assert_eq!(
        report["quota"]["not_held"],
        serde_json::json!([{"lesson": "math/02", "files": 1, "bytes": 600_000}])
    );
    assert!(store_bytes(&edge) <= 1_300_000);
    verify_clean(&edge.data());

    // The same pass in words.
    let out = run(&["edge", "sync", "--data", &edge.data_str()]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("not enough room")
            && text.contains("math/02")
            && text.contains("600000 bytes")
            && text.contains("raise max_store"),
        "{text}"
    );
    let status = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(
        status.contains("not enough room") && status.contains("math/02"),
        "{status}"
    );

    // And on the status page and in /api/v1/status, after `edge run`'s pass.
    let web = edge.run();
    idle(&web);
    let api = web.json("/api/v1/status");
    assert_eq!(
        api["last_sync"]["quota"]["not_held"][0]["lesson"], "math/02",
        "{api:#}"
    );
    let (code, page) = web.page("/status", "en");
    assert_eq!(code, 200);
    assert!(
        page.contains("quota-shortfall") && page.contains("math/02"),
        "{page}"
    );
    drop(web);
    assert!(store_bytes(&edge) <= 1_300_000);
    verify_clean(&edge.data());
}

/// Waits until `edge run`'s start-up pass is over.
fn idle(web: &shanlu_tests::RunningEdge) {
    assert!(wait_until(Duration::from_secs(60), || {
        let status = web.json("/api/v1/status");
        status["live"]["syncing"] == false && !status["last_sync"].is_null()
    }));
}

/// Sync passes `edge run` has finished, whatever their outcome (its
/// `/metrics`).
fn sync_passes(web: &shanlu_tests::RunningEdge) -> u64 {
    let (_, _, body) = web.get("/metrics", "");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|line| line.starts_with("shanlu_edge_sync_passes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Reads a whole file through the classroom.
fn fetch(web: &shanlu_tests::RunningEdge, path: &str) -> Vec<u8> {
    let (code, _, body) = web.get(path, "");
    assert_eq!(code, 200, "GET {path}");
    body
}

/// The edge holds `bytes` with its record (`/files/HASH` answers only held,
/// recorded files).
fn recorded(web: &shanlu_tests::RunningEdge, bytes: &[u8]) -> bool {
    web.get(&format!("/files/{}", hex(bytes)), "Range: bytes=0-0\r\n")
        .0
        == 206
}

/// Issue 13: read-through files (cached) are evicted before any pinned
/// file: the subscribed course stays whole, the read-through video goes.
#[test]
fn read_through_files_are_evicted_before_pinned_ones_issue_13() {
    let origin = TestOrigin::init();
    let a = origin.dir.path().join("a");
    write(&a, "course.toml", b"id = \"a\"\n");
    let a1 = unique(500_000, 1501);
    let a2 = unique(500_000, 1502);
    write(&a, "01/one.bin", &a1);
    write(&a, "02/two.bin", &a2);
    let b = origin.dir.path().join("b");
    write(&b, "course.toml", b"id = \"b\"\n");
    let video = unique(1_500_000, 1503);
    write(&b, "01/video.mp4", &video);
    origin.publish(&a);
    origin.publish(&b);
    let (_served, edge) = init_edge(&origin, "a", "2.6MB");
    edge.sync_ok();
    {
        let web = edge.run();
        idle(&web);
        assert!(fetch(&web, "/courses/b/01/video.mp4") == video);
        assert!(wait_until(Duration::from_secs(30), || recorded(
            &web, &video
        )));
    }
    let a3 = unique(1_000_000, 1504);
    write(&a, "03/three.bin", &a3);
    origin.publish(&a);
    let report = edge.sync_ok();
    assert_eq!(report["quota"]["evicted_files"], 1, "{report:#}");
    assert_eq!(report["quota"]["evicted_bytes"], 1_500_000);
    assert!(
        !edge.blob_path(&hex(&video)).exists(),
        "the read-through video was evicted"
    );
    assert!(
        [&a1, &a2, &a3].iter().all(|b| holds(&edge, b)),
        "the subscribed course is whole"
    );
    assert!(store_bytes(&edge) <= 2_600_000);
    verify_clean(&edge.data());
}

/// Issue 13: a blob a reader has open survives eviction: while a pass in
/// `edge run` needs room, the open read-through video is not evicted (the
/// other cached file is), and the reader reads it to the end byte-identical.
#[test]
fn an_open_readers_blob_survives_eviction_issue_13() {
    let origin = TestOrigin::init();
    let a = origin.dir.path().join("a");
    write(&a, "course.toml", b"id = \"a\"\n");
    write(&a, "01/one.bin", &unique(200_000, 1601));
    let b = origin.dir.path().join("b");
    write(&b, "course.toml", b"id = \"b\"\n");
    let video = unique(24 << 20, 1602);
    let notes = unique(300_000, 1603);
    write(&b, "01/video.mp4", &video);
    write(&b, "02/notes.bin", &notes);
    origin.publish(&a);
    origin.publish(&b);
    let max = 200_000 + (24 << 20) + 300_000 + 100_000;
    let (_served, edge) = init_edge(&origin, "a", &max.to_string());
    let web = edge.run();
    idle(&web);
    assert!(fetch(&web, "/courses/b/01/video.mp4") == video);
    assert!(fetch(&web, "/courses/b/02/notes.bin") == notes);
    assert!(wait_until(Duration::from_secs(30), || {
        recorded(&web, &video) && recorded(&web, &notes)
    }));

    // A reader opens the video and reads a little, then stalls.
    let mut stream = std::net::TcpStream::connect(web.addr).expect("connect");
    stream
        .write_all(b"GET /courses/b/01/video.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut received = vec![0u8; 64 * 1024];
    stream.read_exact(&mut received).expect("first bytes");

    // An update needs 1 MB: everything cached would have to go.
    write(&a, "02/two.bin", &unique(1_000_000, 1604));
    origin.publish(&a);
    // Counted by passes, not by the last pass's time: that is in whole
    // seconds, and the asked-for pass can end in the same second as the one
    // before it.
    let before = sync_passes(&web);
    run_ok(&["edge", "sync-now", "--data", &edge.data_str()]);
    assert!(wait_until(Duration::from_secs(60), || {
        sync_passes(&web) > before && web.json("/api/v1/status")["live"]["syncing"] == false
    }));
    let status = web.json("/api/v1/status");
    let quota = &status["last_sync"]["quota"];
    assert!(
        edge.blob_path(&hex(&video)).exists(),
        "the open video was not evicted: {quota:#}"
    );
    assert!(
        !edge.blob_path(&hex(&notes)).exists(),
        "the other cached file was: {quota:#}"
    );
    assert_eq!(quota["evicted_files"], 1, "{quota:#}");
    assert_eq!(quota["not_held"][0]["lesson"], "a/02", "{quota:#}");

    // The reader reads on to the end: every byte is the video's.
    stream.read_to_end(&mut received).expect("the rest");
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the head")
        + 4;
    assert!(
        received[split..] == video[..],
        "the reader got the whole video"
    );
    verify_clean(&edge.data());
}

/// Unmounts a tmpfs when dropped.
pub(crate) struct Mounted(pub(crate) std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Issue 13: a disk that fills mid-pass (another program) stops the pass
/// cleanly with a message naming the data folder; after space is freed the
/// next pass resumes and completes, and `verify` passes. The store is a
/// small tmpfs; needs root to mount it.
#[test]
fn a_full_disk_mid_pass_stops_cleanly_and_the_next_pass_resumes_issue_13() {
    if !require(Need::Root) {
        return;
    }
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    write(&src, "course.toml", b"id = \"math\"\n");
    let files: Vec<Vec<u8>> = (0..6u64)
        .map(|n| {
            let bytes = unique(1_000_000, 1700 + n);
            write(&src, &format!("0{n}/video.mp4"), &bytes);
            bytes
        })
        .collect();
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("full");
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--min-free", "0"],
    );
    let store = edge.data().join("store");
    std::fs::remove_dir_all(&store).expect("empty store");
    std::fs::create_dir_all(&store).expect("mount point");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "tmpfs"])
        .arg(&store)
        .status()
        .expect("mount");
    if !mounted.success() {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    let _guard = Mounted(store.clone());

    // A rate-capped pass; another program fills the disk while it runs.
    let child = shanlu_tests::shanlu()
        .env("RUST_LOG", "warn")
        .args([
            "edge",
            "sync",
            "--data",
            &edge.data_str(),
            "--json",
            "--max-rate",
            "2MB",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sync");
    assert!(wait_until(Duration::from_secs(30), || {
        std::fs::read_dir(store.join("partial")).is_ok_and(|mut d| d.next().is_some())
    }));
    let filler = store.join("filler");
    {
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0xEEu8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
    }
    let output = child.wait_with_output().expect("sync ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the pass stopped on the full disk: {stderr}"
    );
    let error = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    assert!(
        error.contains(&format!("data folder {} is full", edge.data_str()))
            && error.contains("free some space")
            && error.contains("the next pass resumes"),
        "the message names the data folder and what to do: {error}"
    );
    assert!(
        !stderr.contains("BLAKE3 or length differs"),
        "a full disk stops the files at once; no later chunk reads as bad: {stderr}"
    );
    // Only chunks made durable were recorded: nothing written is corrupt.
    let partial = std::fs::read_dir(store.join("partial"))
        .expect("partial")
        .count();
    assert!(partial > 0 || files.iter().all(|b| holds(&edge, b)));

    std::fs::remove_file(&filler).expect("free the space");
    verify_clean(&edge.data());
    let report = edge.sync_ok();
    assert_eq!(report["complete"], true);
    assert!(files.iter().all(|b| holds(&edge, b)));
    verify_clean(&edge.data());
}

/// Issue 13: read-through makes room the same way a pass does: the least
/// recently opened cached file goes, the subscribed course and the file
/// opened since stay; a file that cannot fit at all is refused with a 507
/// and a clear message, and nothing is evicted for it.
#[test]
fn read_through_makes_room_lru_or_answers_507_issue_13() {
    let origin = TestOrigin::init();
    let a = origin.dir.path().join("a");
    write(&a, "course.toml", b"id = \"a\"\n");
    let pinned = unique(500_000, 2001);
    write(&a, "01/one.bin", &pinned);
    let b = origin.dir.path().join("b");
    write(&b, "course.toml", b"id = \"b\"\n");
    let (x, y, z) = (
        unique(600_000, 2002),
        unique(600_000, 2003),
        unique(600_000, 2004),
    );
    let big = unique(3_000_000, 2005);
    write(&b, "01/x.bin", &x);
    write(&b, "02/y.bin", &y);
    write(&b, "03/z.bin", &z);
    write(&b, "04/big.bin", &big);
    origin.publish(&a);
    origin.publish(&b);
    let (_served, edge) = init_edge(&origin, "a", "1.8MB");
    let web = edge.run();
    idle(&web);
    assert!(fetch(&web, "/courses/b/01/x.bin") == x);
    assert!(wait_until(Duration::from_secs(30), || recorded(&web, &x)));
    assert!(fetch(&web, "/courses/b/02/y.bin") == y);
    assert!(wait_until(Duration::from_secs(30), || recorded(&web, &y)));
    // Opened again a second later: x is now more recent than y.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(fetch(&web, "/courses/b/01/x.bin") == x);

    assert!(fetch(&web, "/courses/b/03/z.bin") == z);
    assert!(wait_until(Duration::from_secs(30), || recorded(&web, &z)));
    assert!(
        !edge.blob_path(&hex(&y)).exists(),
        "y, least recently opened, was evicted"
    );
    assert!(holds(&edge, &x) && holds(&edge, &pinned));
    assert!(store_bytes(&edge) <= 1_800_000);

    let (code, _, body) = web.get("/courses/b/04/big.bin", "");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 507, "{body}");
    assert!(
        body.contains("does not fit") && body.contains("max_store"),
        "{body}"
    );
    assert!(
        holds(&edge, &x) && holds(&edge, &z) && holds(&edge, &pinned),
        "nothing evicted for it"
    );
    assert!(store_bytes(&edge) <= 1_800_000);
    drop(web);
    verify_clean(&edge.data());
}
