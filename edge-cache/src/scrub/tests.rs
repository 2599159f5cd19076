//! Unit tests of the background scrub: cycles, the resume cursor, pacing.

use std::time::{Duration, Instant};

use super::*;

/// A store holding `count` blobs of `len` bytes; their hashes in hash order.
fn store_with(count: u64, len: usize) -> (tempfile::TempDir, Store, Vec<Hash>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("open store");
    let mut blobs = Vec::new();
    for seed in 0..count {
        let path = dir.path().join(format!("file-{seed}"));
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u64 * 31 + seed * 7 + i as u64 / 251) as u8)
            .collect();
        let imported = catalog::testdata::store_file(&store, &path, &bytes);
        blobs.push(imported.manifest.blob);
    }
    blobs.sort_by_key(|blob| *blob.as_bytes());
    (dir, store, blobs)
}

/// Marks the first cycle as due: the first `edge run` only starts the clock.
fn first_cycle_due(store: &Store) {
    let state = ScrubState {
        last_cycle_started_at: Some(0),
        ..ScrubState::default()
    };
    save(store, &state).expect("save");
}

fn plan(rate: u64) -> ScrubPlan {
    ScrubPlan {
        rate: Rate::from_bytes_per_second(rate),
        every: "7d".parse().expect("every"),
        schedule: Schedule::default(),
    }
}

/// Issue 13: a cycle stopped part-way (shutdown, a sync pass, a power cut)
/// carries on from the saved cursor after a restart, checks each blob once,
/// finishes, and the next does not start before `scrub_every`.
#[test]
fn issue_13_a_stopped_cycle_resumes_from_its_cursor_after_a_restart() {
    let (dir, store, blobs) = store_with(3, 50_000);
    first_cycle_due(&store);
    let live = Live::default();
    let plan = plan(1 << 30);
    // Stop after the first blob is done. The stop is asked before each
    // blob, and for blob one (a single block at this rate) once in its
    // short pacing nap and once after it.
    let calls = std::cell::Cell::new(0);
    let stop_after_one = || {
        calls.set(calls.get() + 1);
        calls.get() > 3
    };
    background_batch(&store, &plan, &live, &stop_after_one).expect("batch");
    let state = load(&store).expect("state");
    assert!(state.cycle_started_at.is_some());
    assert_eq!(state.cursor, Some(blobs[0]));
    assert_eq!(state.cycle_blobs_checked, 1);
    assert_eq!(state.cycle_bytes_checked, 50_000);
    drop(store);

    // A restart: the store is opened again and the cycle carries on.
    let store = Store::open(dir.path().join("store")).expect("reopen");
    let never = || false;
    background_batch(&store, &plan, &live, &never).expect("batch");
    let state = load(&store).expect("state");
    assert_eq!(state.cursor, Some(blobs[2]));
    assert_eq!(state.cycle_blobs_checked, 3, "each blob once");
    // The next turn finds nothing after the cursor: the cycle is done.
    background_batch(&store, &plan, &live, &never).expect("batch");
    let state = load(&store).expect("state");
    assert_eq!(state.cycle_started_at, None);
    let last = state.last.expect("a finished cycle");
    assert_eq!(
        (last.blobs_checked, last.bytes_checked, last.found),
        (3, 150_000, 0)
    );
    assert_eq!(last.by, "background");
    // Not due again for a week.
    let wait = background_batch(&store, &plan, &live, &never).expect("batch");
    assert_eq!(wait, RECHECK);
    assert_eq!(load(&store).expect("state").cycle_started_at, None);
}

/// Issue 13: a same-size corruption is found, quarantined, recorded in the
/// bounded findings, and a sync pass is asked for.
#[test]
fn issue_13_a_finding_is_quarantined_recorded_and_asks_for_a_pass() {
    let (_dir, store, blobs) = store_with(2, 40_000);
    let path = store.blob_path(&blobs[1]);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[12_345] ^= 0x20;
    std::fs::write(&path, bytes).expect("write");
    first_cycle_due(&store);
    let live = Live::default();
    let never = || false;
    background_batch(&store, &plan(1 << 30), &live, &never).expect("batch");
    let state = load(&store).expect("state");
    assert_eq!(state.cycle_found, 1);
    assert_eq!(state.findings.len(), 1);
    assert_eq!(state.findings[0].blob, blobs[1]);
    assert!(state.findings[0].quarantined);
    assert!(
        state.findings[0].problem.contains("hashes to"),
        "{:?}",
        state.findings
    );
    assert!(store.is_quarantined(&blobs[1]).expect("index"));
    assert!(live.snapshot().sync_requested, "a pass is asked for");

    let mut many = state;
    for _ in 0..(MAX_FINDINGS + 5) {
        many.found(blobs[0], "test".into(), true);
    }
    assert_eq!(many.findings.len(), MAX_FINDINGS);
}

/// Issue 13: at rate R, the scrub of N bytes takes at least N / R of wall
/// time (64 KiB at 256 KiB/s: 250 ms), and `edge scrub` records its result.
#[test]
fn issue_13_scrub_all_is_paced_to_its_rate() {
    let (_dir, store, _) = store_with(2, 32 * 1024);
    let started = Instant::now();
    let report = scrub_all(
        &store,
        Some(Rate::from_bytes_per_second(256 * 1024)),
        &|_| {},
    )
    .expect("scrub");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert_eq!(report.summary.blobs_checked, 2);
    assert_eq!(report.summary.bytes_checked, 64 * 1024);
    assert_eq!(report.summary.found, 0);
    assert_eq!(
        load(&store).expect("state"),
        ScrubState::default(),
        "the background's record is untouched"
    );
    let toml = format!(
        "origin = \"quic://127.0.0.1:4433\"\norigin_key = \"{}\"\n\
         origin_cert = \"{}\"\ntoken = \"t\"\nscrub_every = \"12h\"\nsubscribe = \"all\"\n",
        catalog::OriginKey::from_bytes(&[3; 32]).public(),
        "cd".repeat(32)
    );
    let config =
        EdgeConfig::from_toml(std::path::Path::new("edge.toml"), &toml).expect("edge.toml");
    let shown = status(&store, &config).expect("status");
    assert_eq!(shown.state.last.expect("recorded").by, "edge scrub");
    assert_eq!(shown.every.to_string(), "12h");
    assert_eq!(shown.rate, pace::DEFAULT_RATE);
}

/// Issue 13: an edge holding nothing yet does not spend a cycle on nothing.
#[test]
fn issue_13_no_cycle_starts_before_anything_is_held() {
    let (_dir, store, _) = store_with(0, 0);
    first_cycle_due(&store);
    let never = || false;
    let wait = background_batch(&store, &plan(1 << 20), &Live::default(), &never).expect("batch");
    assert_eq!(wait, RECHECK);
    let state = load(&store).expect("state");
    assert_eq!((state.cycle_started_at, state.last), (None, None));
}

/// Issue 13: the first `edge run` starts the clock: what it holds was
/// verified as it arrived, so the first cycle waits `scrub_every`.
#[test]
fn issue_13_the_first_cycle_waits_scrub_every_from_the_first_run() {
    let (_dir, store, _) = store_with(1, 1_000);
    let never = || false;
    let plan = ScrubPlan {
        every: "1h".parse().expect("every"),
        ..plan(1 << 20)
    };
    let wait = background_batch(&store, &plan, &Live::default(), &never).expect("batch");
    assert_eq!(wait, RECHECK);
    let state = load(&store).expect("state");
    assert!(state.last_cycle_started_at.is_some());
    assert_eq!(state.cycle_started_at, None);
    let wait = background_batch(&store, &plan, &Live::default(), &never).expect("batch");
    assert_eq!(wait, RECHECK, "still not due");
    assert_eq!(load(&store).expect("state").cycle_blobs_checked, 0);
}
