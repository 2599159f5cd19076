//! Issue 15: reports from the edges, end to end: a report made at every
//! pass, reached or not, arrives at the origin's fleet on the next sync
//! exactly once; a county edge takes its villages' reports and forwards
//! them; a USB stick carries them and brings receipts back; usage counted
//! in the classroom and by the sync reaches the fleet. The fleet is read
//! with `server::fleet::Fleet` once `origin serve` has stopped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use server::fleet::{EdgeRecord, Fleet};
use server::report::{EdgeReport, Envelope};
use shanlu_tests::{TestEdge, TestOrigin, run_ok, wait_until};

use crate::county::{county, course};

/// What the stopped origin's fleet holds of the edge called `name`.
fn fleet_record(origin: &TestOrigin, name: &str) -> EdgeRecord {
    let fleet = Fleet::open(&origin.data()).expect("the fleet (origin serve stopped)");
    fleet
        .edge(name)
        .unwrap_or_else(|| panic!("the fleet holds no report of {name}"))
}

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

/// `edge have` of `edge`, written to `have`.
pub(crate) fn have_list(edge: &TestEdge, have: &Path) {
    run_ok(&[
        "edge",
        "have",
        "--data",
        &edge.data_str(),
        "--out",
        &have.to_string_lossy(),
    ]);
}

/// `bundle create --for have` from the origin or edge in `data` onto
/// `stick`; what it printed.
pub(crate) fn bundle_for(data: &Path, have: &Path, stick: &Path) -> String {
    run_ok(&[
        "bundle",
        "create",
        "--data",
        &data.to_string_lossy(),
        "--for",
        &have.to_string_lossy(),
        "--out",
        &stick.to_string_lossy(),
    ])
}

/// `edge import` of `stick` into `edge`; what it printed.
pub(crate) fn import_stick(edge: &TestEdge, stick: &Path) -> String {
    run_ok(&[
        "edge",
        "import",
        "--data",
        &edge.data_str(),
        &stick.to_string_lossy(),
    ])
}

#[test]
fn issue_15_a_report_made_while_the_origin_is_down_arrives_on_the_next_sync_exactly_once() {
    let origin = TestOrigin::init();
    course(&origin, "c", 200_000, 1501);
    let served = origin.serve();
    let token = origin.add_edge("school-r1");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let first = status(&edge);
    assert_eq!(first["reports"]["pending"], 0, "{:#}", first["reports"]);
    assert!(
        first["reports"]["last_sent"].is_u64(),
        "{:#}",
        first["reports"]
    );
    let at = served.quic.to_string();
    drop(served);
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1, "{stderr}");
    let second = status(&edge);
    assert_eq!(second["reports"]["pending"], 1, "{:#}", second["reports"]);
    let files = queue(&edge.data());
    assert_eq!(files.len(), 1);
    let (path, kept) = report_in(&files[0]);
    assert!(path.is_empty());
    assert_eq!(kept.seq, 2);
    assert_eq!(kept.catalog_sequence, Some(1));
    assert_eq!(kept.courses.len(), 1);
    assert!(kept.courses[0].complete, "{kept:?}");
    // The unreachable pass is reported as such, with why.
    assert_eq!(kept.last_sync.as_ref().map(|s| s.complete), Some(false));
    assert!(
        kept.failures.iter().any(|f| f.message.contains("gave up")),
        "{:?}",
        kept.failures
    );
    let text = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(text.contains("reports: 1 queued"), "{text}");

    // The origin is back: the kept report and the new one go up.
    let served = origin.serve_on(&at);
    edge.sync_ok();
    assert_eq!(status(&edge)["reports"]["pending"], 0);
    drop(served);
    let record = fleet_record(&origin, "school-r1");
    assert_eq!(record.reports, 3, "{record:?}");
    assert_eq!(record.floor, 3, "reports 1, 2 and 3, each once: {record:?}");
    let latest = record.latest.expect("a status");
    assert_eq!(latest.seq, 3);
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
    // The county's next pass takes it to the origin, filed under the county.
    run_ok(&["edge", "sync-now", "--data", &county.data_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            county_run.json("/api/v1/status")["reports"]["forwarded"] == 0
        }),
        "the county never forwarded its village's report: {:#}",
        county_run.json("/api/v1/status")["reports"]
    );
    drop(county_run);
    drop(served);
    let record = fleet_record(&origin, "county/village-r");
    assert_eq!((record.reports, record.floor), (1, 1), "{record:?}");
    assert_eq!(record.county.as_deref(), Some("county"));
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
    // No pass of its own while the test reads the ledger: a pass would move
    // the counts on into a report.
    let running = edge.run_with(&["--window", &shanlu_tests::far_window()], &[]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            running.json("/api/v1/status")["live"]["syncing"] == false
        }),
        "the edge did not start"
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
    edge.sync_ok();
    drop(served);
    // The origin's fleet holds the counts: one open of c/01 and its video.
    let record = fleet_record(&origin, "school-r3");
    assert_eq!(record.opens, 1, "{record:?}");
    assert_eq!(record.bytes_served, video as u64, "{record:?}");
    // And the dashboard's most-opened lessons name it, and only it.
    let fleet = Fleet::open(&origin.data()).expect("fleet");
    let store = catalog::Store::open_existing(origin.data().join("store")).expect("store");
    let catalog = server::fleet::view::CatalogView::load(&store).expect("catalog");
    let (lessons, _) =
        server::fleet::view::lesson_totals(&fleet, &catalog, server::fleet::model::now());
    let opened: Vec<(&str, &str, u64)> = lessons
        .iter()
        .map(|l| (l.course.as_str(), l.lesson.as_str(), l.opens))
        .collect();
    assert_eq!(opened, [("c", "01", 1)]);
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
    drop(served);
    // Reused chunks, plus what deltas spared: more than was reused alone,
    // and nothing fetched counted as saved.
    let record = fleet_record(&origin, "school-r4");
    assert!(record.bytes_saved > reused, "{record:?} {synced:#}");
    assert!(
        record.bytes_saved + fetched <= size as u64 + 64 * 1024,
        "{record:?} {synced:#}"
    );
}

/// Issue 15: with the road closed, the edge's queued reports go on the USB
/// stick with its have list; `bundle create --for` at the bureau (beside a
/// running `origin serve`) files them for the fleet and puts receipts in
/// the bundle; `edge import` reads the receipts and forgets those reports.
#[test]
fn issue_15_reports_carried_on_a_usb_stick_arrive_once_and_receipts_empty_the_queue() {
    let origin = TestOrigin::init();
    course(&origin, "c", 100_000, 1505);
    let served = origin.serve();
    let token = origin.add_edge("school-r5");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    drop(served);
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(status(&edge)["reports"]["pending"], 1);
    let stick = tempfile::tempdir().expect("stick");
    let have = stick.path().join("have.list");
    have_list(&edge, &have);

    // At the bureau: the origin is serving (it holds the fleet).
    let serving = origin.serve();
    let made = bundle_for(&origin.data(), &have, stick.path());
    assert!(made.contains("took 1 report(s)"), "{made}");
    drop(serving);

    // Back at the school: the receipts empty the queue.
    let imported = import_stick(&edge, stick.path());
    assert_eq!(status(&edge)["reports"]["pending"], 0, "{imported}");

    // The origin takes the filed reports in when it starts.
    let inbox = origin.data().join("fleet/inbox");
    let serving = origin.serve();
    assert!(
        wait_until(Duration::from_secs(30), || {
            std::fs::read_dir(&inbox).is_ok_and(|mut dir| dir.next().is_none())
        }),
        "the origin never took in its inbox"
    );
    drop(serving);
    let record = fleet_record(&origin, "school-r5");
    assert_eq!((record.reports, record.floor), (2, 2), "{record:?}");

    // The same stick again: nothing counts twice.
    bundle_for(&origin.data(), &have, stick.path());
    let record = fleet_record(&origin, "school-r5");
    assert_eq!((record.reports, record.floor), (2, 2), "{record:?}");
}

/// A village behind a county edge sends its reports on a USB stick: the
/// county edge's `bundle create --for` takes them into its queue of
/// reports to forward (checked with the village's key, sealed again with
/// the village's name), the stick brings the village its receipts, and the
/// county's next sync takes them to the origin, filed under the county.
#[test]
fn issue_15_a_village_sends_its_reports_to_its_county_edge_on_a_usb_stick() {
    let origin = TestOrigin::init();
    course(&origin, "c", 100_000, 1506);
    let served = origin.serve();
    let (county, county_run, serving) = county(&origin, &served, "all", &[]);
    let token = county.add_edge("village-u");
    let village = TestEdge::init_below(&origin, &serving, &token, "all", &[]);
    village.sync_ok();
    // The county's `edge run` stops (the road is closed): the village's
    // next report stays queued.
    drop(county_run);
    let (code, _, stderr) = village.sync();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(status(&village)["reports"]["pending"], 1);
    let stick = tempfile::tempdir().expect("stick");
    let have = stick.path().join("have.list");
    have_list(&village, &have);

    // At the county: its bundle for the village takes the report.
    let made = bundle_for(&county.data(), &have, stick.path());
    assert!(
        made.contains("took 1 report(s) from the have list to forward upstream"),
        "{made}"
    );
    let county_status = status(&county)["reports"].clone();
    assert_eq!(county_status["forwarded"], 2, "{county_status:#}");
    let newest = queue(&county.data()).pop().expect("a forwarded report");
    let (path, report) = report_in(&newest);
    assert_eq!(path, vec!["village-u".to_owned()]);
    assert_eq!(report.seq, 2);

    // Back at the village: the receipt empties its queue.
    let imported = import_stick(&village, stick.path());
    assert_eq!(status(&village)["reports"]["pending"], 0, "{imported}");

    // The county's next sync takes both of the village's reports up.
    county.sync_ok();
    assert_eq!(status(&county)["reports"]["forwarded"], 0);
    drop(served);
    let record = fleet_record(&origin, "county/village-u");
    assert_eq!((record.reports, record.floor), (2, 2), "{record:?}");
}
