//! Issue 13, item 3 (edge side): after each pass the edge collects what the
//! catalog in force no longer reaches, and evicts superseded files when the
//! quota needs room; `kill -9` (the abort hook) at each step of the edge's
//! collection leaves a store `verify` passes and the classroom serves every
//! kept file byte-identical.

use std::time::Duration;

use shanlu_tests::{TestEdge, TestOrigin, wait_until};

use crate::quota::{hex, holds, store_bytes, unique, verify_clean, write};

const FILE: usize = 500_000;

/// The classroom of `edge` serves each of `files` (by hash and by place)
/// byte-identical.
fn served_identical(edge: &TestEdge, files: &[(&str, &[u8])]) {
    let web = edge.run();
    assert!(wait_until(Duration::from_secs(60), || {
        let status = web.json("/api/v1/status");
        status["live"]["syncing"] == false && !status["last_sync"].is_null()
    }));
    for (place, bytes) in files {
        let (code, _, body) = web.get(&format!("/files/{}", hex(bytes)), "");
        assert_eq!(code, 200, "/files/ of {place}");
        assert!(body == *bytes, "{place} by hash is byte-identical");
        let (code, _, body) = web.get(&format!("/courses/math/{place}"), "");
        assert_eq!(code, 200, "{place}");
        assert!(body == *bytes, "{place} is byte-identical");
    }
}

/// Issue 13: without a quota a superseded file stays (cached) but the old
/// catalog's course and lesson objects are collected; with `--max-store`
/// the superseded files are evicted and collected, the store stays under
/// the limit, `verify` passes and every kept file is served byte-identical.
#[test]
fn the_edge_collects_a_superseded_version_after_a_pass_issue_13() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    write(&src, "course.toml", b"id = \"math\"\n");
    let (a1, b1) = (unique(FILE, 1801), unique(FILE, 1802));
    write(&src, "01/a.bin", &a1);
    write(&src, "02/b.bin", &b1);
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("gc");
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--min-free", "1MB"],
    );
    edge.sync_ok();

    let a2 = unique(FILE, 1803);
    write(&src, "01/a.bin", &a2);
    origin.publish(&src);
    let report = edge.sync_ok();
    let collected = &report["quota"]["collection"];
    assert!(
        collected["objects"].as_u64().expect("objects") >= 2,
        "the old course and lesson: {report:#}"
    );
    assert_eq!(
        collected["blobs"], 0,
        "no quota: the superseded file is kept (cached)"
    );
    assert!(holds(&edge, &a1), "superseded, cached");

    let b2 = unique(FILE, 1804);
    write(&src, "02/b.bin", &b2);
    origin.publish(&src);
    let (code, report, stderr) = edge.sync_with(shanlu_tests::shanlu(), &["--max-store", "1.2MB"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["quota"]["evicted_files"], 2, "{report:#}");
    assert_eq!(report["quota"]["collection"]["blobs"], 2, "{report:#}");
    assert_eq!(report["quota"]["collection"]["blob_bytes"], 2 * FILE as u64);
    assert!(!edge.blob_path(&hex(&a1)).exists() && !edge.blob_path(&hex(&b1)).exists());
    assert!(store_bytes(&edge) <= 1_200_000);
    verify_clean(&edge.data());
    served_identical(&edge, &[("01/a.bin", &a2), ("02/b.bin", &b2)]);
}

/// Issue 13: `kill -9` (the test hook aborts the process) right after each
/// step of the edge's collection: `verify` passes, the next pass finishes
/// the job, and every kept file is served byte-identical.
#[test]
fn an_abort_at_each_step_of_the_edges_collection_is_harmless_issue_13() {
    for step in ["index", "files"] {
        let origin = TestOrigin::init();
        let src = origin.dir.path().join("math");
        write(&src, "course.toml", b"id = \"math\"\n");
        let (a1, b1) = (unique(FILE, 1901), unique(FILE, 1902));
        write(&src, "01/a.bin", &a1);
        write(&src, "02/b.bin", &b1);
        origin.publish(&src);
        let served = origin.serve();
        let token = origin.add_edge("gc-abort");
        let edge = TestEdge::init_with(
            &origin,
            &served,
            served.quic,
            &token,
            "all",
            &["--min-free", "1MB", "--max-store", "1.2MB"],
        );
        edge.sync_ok();
        let a2 = unique(FILE, 1903);
        write(&src, "01/a.bin", &a2);
        origin.publish(&src);

        let mut aborting = shanlu_tests::shanlu();
        aborting.env("SHANLU_TEST_GC_ABORT_AFTER", step);
        let (code, _, stderr) = edge.sync_with(aborting, &[]);
        assert_ne!(code, 0, "step {step}: the pass was aborted: {stderr}");
        assert!(
            stderr.contains("aborting as a test asked"),
            "step {step}: {stderr}"
        );

        verify_clean(&edge.data());
        let report = edge.sync_ok();
        assert_eq!(report["complete"], true, "step {step}");
        assert!(
            !edge.blob_path(&hex(&a1)).exists(),
            "step {step}: the evicted file is gone"
        );
        assert!(holds(&edge, &a2) && holds(&edge, &b1), "step {step}");
        assert!(store_bytes(&edge) <= 1_200_000, "step {step}");
        verify_clean(&edge.data());
        served_identical(&edge, &[("01/a.bin", &a2), ("02/b.bin", &b1)]);
    }
}
