//! Issue 15: reports from the edges, as far as an edge shows them without
//! the origin's fleet (this origin answers every report with an error, so
//! reports sent to it stay queued): a report made at every pass, reached
//! or not; a county edge taking its villages' reports; usage counted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use server::report::{EdgeReport, Envelope};
use shanlu_tests::{TestEdge, TestOrigin, run_ok, wait_until};

use crate::county::{county, course};

/// `edge status --json` of an edge not running.
fn status(edge: &TestEdge) -> serde_json::Value {
    let text = run_ok(&["edge", "status", "--data", &edge.data_str(), "--json"]);
    serde_json::from_str(&text).expect("status JSON")
}

/// The queued envelopes' files of the edge in `data`, oldest first.
fn queue(data: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("reports/queue"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "own" || e == "fwd"));
    files.sort();
    files
}

/// The report inside a queued envelope (its seal is the edge's own).
fn report_in(path: &Path) -> (Vec<String>, EdgeReport) {
    let bytes = std::fs::read(path).expect("queued envelope");
    let envelope = Envelope::decode(&bytes).expect("decodes");
    let report = EdgeReport::decode(&envelope.report).expect("report decodes");
    (envelope.path, report)
}

#[test]
fn issue_15_a_sync_while_the_origin_is_down_leaves_a_report_queued() {
    let origin = TestOrigin::init();
    course(&origin, "c", 200_000, 1501);
    let served = origin.serve();
    let token = origin.add_edge("school-r1");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    // This origin refuses reports: the first stays queued.
    let first = status(&edge);
    assert_eq!(first["reports"]["pending"], 1, "{:#}", first["reports"]);
    assert!(first["reports"]["last_made"].is_u64());
    assert!(first["reports"]["last_sent"].is_null());
    drop(served);
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1, "{stderr}");
    let second = status(&edge);
    assert_eq!(second["reports"]["pending"], 2, "{:#}", second["reports"]);
    let files = queue(&edge.data());
    assert_eq!(files.len(), 2);
    let (path, one) = report_in(&files[0]);
    let (_, two) = report_in(&files[1]);
    assert!(path.is_empty());
    assert_eq!((one.seq, two.seq), (1, 2));
    assert_eq!(one.catalog_sequence, Some(1));
    assert_eq!(one.courses.len(), 1);
    assert!(one.courses[0].complete, "{one:?}");
    assert_eq!(one.last_sync.as_ref().map(|s| s.complete), Some(true));
    // The unreachable pass is reported as such, with why.
    assert_eq!(two.last_sync.as_ref().map(|s| s.complete), Some(false));
    assert!(
        two.failures.iter().any(|f| f.message.contains("gave up")),
        "{:?}",
        two.failures
    );
    let text = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(text.contains("reports: 2 queued"), "{text}");
}

#[test]
fn issue_15_a_village_hands_its_report_to_its_county_edge() {
    let origin = TestOrigin::init();
    course(&origin, "c", 100_000, 1502);
    let served = origin.serve();
    let (county, county_run, serving) = county(&origin, &served, "all", &[]);
    let token = county.add_edge("village-r");
    let village = TestEdge::init_below(&origin, &serving, &token, "all", &[]);
    village.sync_ok();
    // The village's queue is empty: the county took its report.
    let reports = status(&village)["reports"].clone();
    assert_eq!(reports["pending"], 0, "{reports:#}");
    assert!(reports["last_sent"].is_u64(), "{reports:#}");
    // The county holds it, sealed again with the village's name in its path.
    let held = county_run.json("/api/v1/status")["reports"].clone();
    assert_eq!(held["forwarded"], 1, "{held:#}");
    let forwarded: Vec<PathBuf> = queue(&county.data())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "fwd"))
        .collect();
    assert_eq!(forwarded.len(), 1);
    let (path, report) = report_in(&forwarded[0]);
    assert_eq!(path, vec!["village-r".to_owned()]);
    assert_eq!(report.seq, 1);
    let county_key = server::report::report_key_of_token(
        std::fs::read_to_string(county.data().join("edge.toml"))
            .expect("edge.toml")
            .lines()
            .find_map(|l| l.strip_prefix("token = "))
            .expect("token line")
            .trim_matches('"'),
    );
    let bytes = std::fs::read(&forwarded[0]).expect("envelope");
    Envelope::decode(&bytes)
        .expect("decodes")
        .open(&county_key, "county")
        .expect("sealed with the county's key");
    drop(served);
}

#[test]
fn issue_15_opening_a_lesson_page_and_its_files_is_counted_per_lesson() {
    let origin = TestOrigin::init();
    let video = 300_000;
    course(&origin, "c", video, 1503);
    let served = origin.serve();
    let token = origin.add_edge("school-r3");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let running = edge.run();
    assert!(
        wait_until(Duration::from_secs(60), || {
            running.json("/api/v1/status")["live"]["syncing"] == false
        }),
        "the first pass did not end"
    );
    let (code, _, _) = running.get("/course/c/01", "Accept: text/html\r\n");
    assert_eq!(code, 200);
    let (code, page) = running.page("/status", "en");
    assert_eq!(code, 200);
    assert!(page.contains("id=\"reports-pending\""), "{page}");
    let (code, _, body) = running.get("/courses/c/01/video.mp4", "");
    assert_eq!((code, body.len()), (200, video));
    // Flushed within seconds: a kill -9 now keeps the counts.
    let ledger = edge.data().join("reports/ledger.json");
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::fs::read(&ledger)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|l| {
                    l["usage"].as_array().is_some_and(|rows| {
                        rows.iter().any(|r| r["lesson"] == "01" && r["opens"] == 1)
                    })
                })
        }),
        "the usage never reached {}",
        ledger.display()
    );
    drop(running); // SIGKILL
    let before = queue(&edge.data()).len();
    edge.sync_ok();
    let files = queue(&edge.data());
    assert_eq!(files.len(), before + 1);
    let (_, report) = report_in(files.last().expect("a report"));
    let row = (report.usage.iter())
        .find(|u| u.course == "c" && u.lesson == "01")
        .unwrap_or_else(|| panic!("no usage of c/01: {:?}", report.usage));
    assert_eq!(row.opens, 1);
    assert_eq!(row.bytes_served, video as u64);
    assert!(!report.usage.iter().any(|u| u.lesson == "02" && u.opens > 0));
    drop(served);
}

/// Issue 15: a new version of a lesson's video counts, under that lesson,
/// the bytes the sync did not fetch: unchanged chunks copied locally and
/// changed ones taken as deltas.
#[test]
fn issue_15_bytes_a_sync_saved_are_counted_under_the_files_lesson() {
    let origin = TestOrigin::init();
    let size = 3 * 1024 * 1024;
    let root = course(&origin, "c", size, 1504);
    let served = origin.serve();
    let token = origin.add_edge("school-r4");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let video = root.join("01/video.mp4");
    let mut bytes = std::fs::read(&video).expect("read");
    for at in [size / 3, 2 * size / 3] {
        bytes[at..at + 100].copy_from_slice(&[7u8; 100]);
    }
    std::fs::write(&video, &bytes).expect("write");
    origin.publish(&root);
    let synced = edge.sync_ok();
    let fetched = synced["bytes_fetched"].as_u64().expect("bytes");
    let reused = synced["bytes_reused"].as_u64().expect("bytes");
    assert!(reused > (size / 2) as u64, "{synced:#}");
    let files = queue(&edge.data());
    let (_, report) = report_in(files.last().expect("a report"));
    let row = (report.usage.iter())
        .find(|u| u.course == "c" && u.lesson == "01")
        .unwrap_or_else(|| panic!("no usage of c/01: {:?}", report.usage));
    // Reused chunks, plus what deltas spared: more than was reused alone,
    // and nothing fetched counted as saved.
    assert!(row.bytes_saved > reused, "{row:?} {synced:#}");
    assert!(
        row.bytes_saved + fetched <= size as u64 + 64 * 1024,
        "{row:?} {synced:#}"
    );
    drop(served);
}
