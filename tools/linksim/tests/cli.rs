//! The `shanlu-linksim` binary: it reports where the link is, writes its counters, and cleans
//! up whether it is stopped by SIGTERM or by its lifetime.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code)]
#[path = "../../../tests/need.rs"]
mod need;

use need::Need;

fn spawn(args: &[&str]) -> (Child, HashMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shanlu-linksim"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting shanlu-linksim");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut report = HashMap::new();
    for line in BufReader::new(stdout).lines().take(5) {
        let line = line.expect("reading stdout");
        let (key, value) = line.split_once('=').expect("key=value lines");
        report.insert(key.to_owned(), value.to_owned());
    }
    (child, report)
}

/// Waits at most `limit` for `child`, killing it if it overstays.
fn wait_for(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for shanlu-linksim") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("shanlu-linksim still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn final_stats(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("reading the stats file");
    let stats: serde_json::Value = serde_json::from_str(&text).expect("stats are JSON");
    assert_eq!(stats["final"], true, "{text}");
    stats
}

#[test]
fn sigterm_stops_the_binary_and_deletes_its_namespaces() {
    if !need::require(Need::NetNs) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let stats_file = dir.path().join("stats.json");
    let (mut child, report) = spawn(&[
        "--delay",
        "20ms",
        "--rate",
        "10Mbit",
        "--lifetime",
        "30s",
        "--stats-file",
        stats_file.to_str().expect("utf-8 path"),
    ]);
    let names = [&report["origin_ns"], &report["edge_ns"]];
    assert!(names.iter().all(|name| linksim::namespace_exists(name)));
    assert!(report["origin_ip"].starts_with("10.") && report["edge_ip"].starts_with("10."));
    assert_eq!(report["pid"], child.id().to_string());

    let status = Command::new("kill")
        .args(["-TERM", &report["pid"]])
        .status()
        .expect("running kill");
    assert!(status.success());
    assert!(wait_for(&mut child, Duration::from_secs(10)).success());
    assert!(names.iter().all(|name| !linksim::namespace_exists(name)));
    let stats = final_stats(&stats_file);
    assert_eq!(stats["down"]["dropped_loss"], 0);
}

#[test]
fn lifetime_stops_the_binary() {
    if !need::require(Need::NetNs) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let stats_file = dir.path().join("stats.json");
    let (mut child, report) = spawn(&[
        "--lifetime",
        "500ms",
        "--stats-file",
        stats_file.to_str().expect("utf-8 path"),
    ]);
    assert!(wait_for(&mut child, Duration::from_secs(10)).success());
    assert!(!linksim::namespace_exists(&report["origin_ns"]));
    assert!(!linksim::namespace_exists(&report["edge_ns"]));
    final_stats(&stats_file);
}

#[test]
fn nonsense_flags_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_shanlu-linksim"))
        .args(["--outage", "10s,30s"])
        .output()
        .expect("running shanlu-linksim");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("shorter than their period"), "{stderr}");
}
