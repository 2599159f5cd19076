//! Bandwidth cap and sync windows: `--max-rate` measured on the wire,
//! `edge run --window` waiting for its window, "sync now" from the status
//! page and from the command line, and a pass stopped at its window's end.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shanlu_tests::{Relay, TestEdge, TestOrigin, generated, run_err, run_ok, wait_until};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// An origin with one course of a `size`-byte video and a page.
fn origin_with_video(size: usize, seed: u64) -> TestOrigin {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("course");
    write(
        &src,
        "01-video/index.html",
        b"<video src='lesson.mp4'></video>",
    );
    write(&src, "01-video/lesson.mp4", &generated(size, seed));
    origin.publish(&src);
    origin
}

/// Seconds since the epoch, and the minute of the UTC day with its second.
fn utc_now() -> (u64, u64, u64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    (secs, secs % 86_400 / 60, secs % 60)
}

/// Minute `minute` of a day (wrapping) as `HH:MM`.
fn hhmm(minute: u64) -> String {
    let minute = minute % 1440;
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The edge's clock for these tests: the windows below are computed in UTC.
const UTC: &[(&str, &str)] = &[("TZ", "UTC")];

#[test]
fn with_max_rate_the_average_on_the_wire_stays_within_ten_percent_of_the_cap() {
    const SIZE: usize = 3 * 1024 * 1024;
    const CAP: f64 = 500_000.0; // 4Mbit in bytes per second
    let origin = origin_with_video(SIZE, 21);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    let token = origin.add_edge("capped");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "all");

    let mut child = shanlu_tests::shanlu()
        .args(["edge", "sync", "--data", &edge.data_str()])
        .args(["--max-rate", "4Mbit", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn edge sync");
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        samples.push((started.elapsed().as_secs_f64(), relay.to_edge() as f64));
        if child.try_wait().expect("wait").is_some() || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().expect("edge sync output");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert!(
        output.status.success(),
        "{report:#}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["complete"], true);
    assert_eq!(report["max_rate"], "4Mbit");

    let total = samples.last().expect("samples").1;
    assert!(total >= SIZE as f64, "{total} bytes crossed the relay");
    let when = |fraction: f64| {
        *samples
            .iter()
            .find(|(_, bytes)| *bytes >= fraction * total)
            .expect("a sample past the fraction")
    };
    // The whole sync: from the first byte towards the edge to its exit.
    let (first, _) = when(f64::MIN_POSITIVE);
    let (end, _) = *samples.last().expect("samples");
    let average = total / (end - first);
    // The bulk of it, without the handshake, the first flow-control window
    // granted before the cap bites, and the last chunks.
    let (t1, b1) = when(0.25);
    let (t2, b2) = when(0.90);
    let bulk = (b2 - b1) / (t2 - t1);
    eprintln!(
        "cap {CAP} B/s: {total} bytes in {:.2} s, average {average:.0} B/s ({:+.1} %), bulk {bulk:.0} B/s ({:+.1} %)",
        end - first,
        (average / CAP - 1.0) * 100.0,
        (bulk / CAP - 1.0) * 100.0
    );
    assert!(end - first >= 4.0, "the sync took {:.2} s", end - first);
    assert!(
        (bulk / CAP - 1.0).abs() <= 0.10,
        "bulk rate {bulk:.0} B/s against a cap of {CAP} B/s"
    );
    assert!(
        (average / CAP - 1.0).abs() <= 0.10,
        "average rate {average:.0} B/s against a cap of {CAP} B/s"
    );
    // Issue 11: the cap holds from the first byte. The origin paces a capped
    // edge's connection, so no second carries a whole flow-control window on
    // top of the cap (before, the first 100 ms carried a second's worth).
    // Allowed: the cap, 5 % of packet headers, the bucket's burst and one
    // 256 KiB chunk frame.
    let allowed = CAP * 1.05 + 64.0 * 1024.0 + 256.0 * 1024.0;
    let mut worst = (0.0, 0.0);
    for (i, &(t0, b0)) in samples.iter().enumerate() {
        let window_end = samples[i..]
            .iter()
            .take_while(|(t, _)| *t <= t0 + 1.0)
            .last()
            .map_or(b0, |(_, b)| *b);
        if window_end - b0 > worst.1 {
            worst = (t0, window_end - b0);
        }
    }
    eprintln!(
        "busiest second: {:.0} bytes from {:.2} s (allowed {allowed:.0})",
        worst.1, worst.0
    );
    assert!(
        worst.1 <= allowed,
        "{:.0} bytes crossed the link in the second from {:.2} s, against a cap of {CAP} B/s",
        worst.1,
        worst.0
    );
}

#[test]
fn outside_its_window_edge_run_waits_and_sync_now_runs_a_pass_at_once() {
    let origin = origin_with_video(200_000, 22);
    let served = origin.serve();
    let token = origin.add_edge("night-school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");

    // A one-minute window twelve hours away: certainly closed now.
    let (now, minute, _) = utc_now();
    let window = format!("{}-{}", hhmm(minute + 720), hhmm(minute + 721));
    let web = edge.run_with(&["--window", &window], UTC);
    std::thread::sleep(Duration::from_secs(3));

    let status = web.json("/api/v1/status");
    assert_eq!(status["last_sync"], serde_json::Value::Null, "{status:#}");
    assert_eq!(status["live"]["syncing"], false);
    assert_eq!(status["live"]["windows"], serde_json::json!([window]));
    let opens = status["live"]["next_window_opens_at"]
        .as_u64()
        .expect("the next window's opening");
    assert!(
        opens.abs_diff(now + 12 * 3600) <= 120,
        "opens at {opens}, now {now}"
    );
    let opens_text = status["live"]["next_window_opens"]
        .as_str()
        .expect("local time");
    assert!(opens_text.contains(&hhmm(minute + 720)), "{opens_text}");
    let metrics = web.metrics();
    assert!(
        !metrics.contains("shanlu_edge_sync_passes_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shanlu_edge_sync_waiting_for_window 1"),
        "{metrics}"
    );
    let (code, page) = web.page("/status", "en");
    assert_eq!(code, 200);
    assert!(
        page.contains(&format!("Next sync window opens at {opens_text}")),
        "{page}"
    );
    assert!(
        page.contains(r#"<form id="sync-now" method="post" action="/status/sync-now"><button type="submit">Sync now</button>"#),
        "{page}"
    );
    assert!(page.contains(&format!("{window} (local time)")), "{page}");
    let (_, page) = web.page("/status", "zh");
    assert!(page.contains("立即同步") && page.contains("下一个同步时段开始于"));

    // Neither a GET nor another site's form starts a pass.
    assert_eq!(web.get("/status/sync-now", "").0, 405);
    let (code, _, _) = web.post("/status/sync-now", "Origin: http://evil.example\r\n");
    assert_eq!(code, 403);
    let (code, _, _) = web.post("/status/sync-now", "Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(code, 403);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        web.json("/api/v1/status")["last_sync"],
        serde_json::Value::Null
    );

    // The status page's button: back to the page, and a pass runs now.
    let origin_header = format!("Origin: http://{}\r\n", web.addr);
    let (code, head, _) = web.post("/status/sync-now", &origin_header);
    assert_eq!(code, 303);
    assert_eq!(shanlu_tests::header(&head, "location"), Some("/status"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            web.json("/api/v1/status")["last_sync"]["complete"] == true
        }),
        "{:#}",
        web.json("/api/v1/status")
    );
    let course = web.json("/api/v1/courses/course");
    for file in course["lessons"][0]["files"].as_array().expect("files") {
        assert_eq!(file["held"], true, "{file}");
    }
    assert!(
        web.metrics()
            .contains(r#"shanlu_edge_sync_passes_total{outcome="complete"} 1"#)
    );
    // Then it waits for its window again.
    assert!(wait_until(Duration::from_secs(10), || {
        let live = &web.json("/api/v1/status")["live"];
        live["syncing"] == false && live["next_window_opens_at"].is_u64()
    }));

    // From the command line: the same, through the data folder.
    let out = run_ok(&["edge", "sync-now", "--data", &edge.data_str()]);
    assert!(out.contains("starts a pass now"), "{out}");
    assert!(
        wait_until(Duration::from_secs(30), || {
            web.metrics()
                .contains(r#"shanlu_edge_sync_passes_total{outcome="complete"} 2"#)
        }),
        "{}",
        web.metrics()
    );
    assert!(!edge.data().join("sync-now").exists());
}

#[test]
fn a_pass_still_running_when_its_window_closes_stops_and_keeps_what_it_fetched() {
    const SIZE: usize = 10 * 1024 * 1024;
    let origin = origin_with_video(SIZE, 23);
    let served = origin.serve();
    let token = origin.add_edge("short-window");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");

    // A window from this minute to the next, with at least 20 s of it left;
    // at 1 Mbit/s the course needs 80 s.
    let (_, mut minute, second) = utc_now();
    if second >= 40 {
        std::thread::sleep(Duration::from_secs(61 - second));
        minute = utc_now().1;
    }
    let window = format!("{}-{}", hhmm(minute), hhmm(minute + 1));
    let web = edge.run_with(&["--window", &window, "--max-rate", "1Mbit"], UTC);
    assert!(
        wait_until(Duration::from_secs(100), || {
            web.json("/api/v1/status")["last_sync"]["stopped_at_window_end"] == true
        }),
        "{:#}",
        web.json("/api/v1/status")
    );
    let status = web.json("/api/v1/status");
    let last = &status["last_sync"];
    assert_eq!(last["complete"], false, "{last:#}");
    assert_eq!(last["error"], serde_json::Value::Null, "{last:#}");
    assert_eq!(last["failures"], serde_json::json!([]), "{last:#}");
    assert_eq!(last["max_rate"], "1Mbit");
    assert!(last["files_missing"].as_u64().expect("missing") >= 1);
    let fetched = last["bytes_fetched"].as_u64().expect("fetched");
    assert!(fetched > 0 && fetched < SIZE as u64, "{last:#}");
    assert!(
        status["live"]["next_window_opens_at"].is_u64(),
        "{status:#}"
    );
    let (_, page) = web.page("/status", "en");
    assert!(
        page.contains("stopped at the end of the sync window"),
        "{page}"
    );
    drop(web);

    // What it received is kept: the next pass fetches only the rest.
    let listing = origin.ls();
    let video = listing["courses"][0]["lessons"][0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["path"] == "lesson.mp4")
        .expect("video")
        .clone();
    let manifest_hash: catalog::Hash = video["manifest"]
        .as_str()
        .expect("hash")
        .parse()
        .expect("hash");
    let kept = {
        let store = catalog::Store::open_existing(edge.data().join("store")).expect("edge store");
        let manifest = store.manifest(&manifest_hash).expect("manifest");
        store
            .partial(manifest_hash, manifest)
            .expect("partial")
            .bytes_present()
    };
    assert!(kept > 0, "nothing was kept");
    let report = edge.sync_ok();
    assert_eq!(
        report["bytes_fetched"].as_u64().expect("fetched") + kept,
        SIZE as u64,
        "{report:#}"
    );
}

#[test]
fn bad_rates_and_windows_are_refused_and_sync_now_needs_a_running_edge() {
    let nowhere = "/nonexistent/edge";
    for (args, needle) in [
        (
            ["edge", "sync", "--max-rate", "2Mb"],
            "write Mbit for bits or MB for bytes",
        ),
        (["edge", "sync", "--max-rate", "2"], "has no unit"),
        (["edge", "run", "--max-rate", "fast"], "not a number"),
        (["edge", "run", "--window", "22:00"], "HH:MM-HH:MM"),
        (
            ["edge", "run", "--window", "25:00-06:00"],
            "hours go from 00 to 23",
        ),
    ] {
        let stderr = run_err(&[args[0], args[1], "--data", nowhere, args[2], args[3]]);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }

    // An edge folder (its origin never runs) with a bad cap in edge.toml.
    let origin = TestOrigin::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("edge");
    let data_str = data.to_str().expect("utf-8");
    run_ok(&[
        "edge",
        "init",
        "--data",
        data_str,
        "--origin",
        "quic://127.0.0.1:9",
        "--origin-key",
        &origin.key,
        "--origin-cert",
        &"ab".repeat(32),
        "--token",
        &"cd".repeat(32),
    ]);
    let config = data.join("edge.toml");
    let text = std::fs::read_to_string(&config).expect("edge.toml");
    std::fs::write(&config, format!("max_rate = \"2Mbps\"\n{text}")).expect("write");
    let stderr = run_err(&["edge", "sync", "--data", data_str]);
    assert!(
        stderr.contains("edge.toml") && stderr.contains("write Mbit for bits or MB for bytes"),
        "{stderr}"
    );
    std::fs::write(&config, format!("windows = [\"22:00-6\"]\n{text}")).expect("write");
    let stderr = run_err(&["edge", "sync", "--data", data_str]);
    assert!(stderr.contains("HH:MM-HH:MM"), "{stderr}");
    std::fs::write(&config, &text).expect("write");

    // Nothing runs there to take a "sync now": said so, and nothing is left behind.
    let stderr = run_err(&["edge", "sync-now", "--data", data_str]);
    assert!(
        stderr.contains("no `shanlu edge run`") && stderr.contains("took the request"),
        "{stderr}"
    );
    assert!(!data.join("sync-now").exists());
    let stderr = run_err(&["edge", "sync-now", "--data", nowhere]);
    assert!(stderr.contains("not an edge data folder"), "{stderr}");
}
