//! Issue 13, item 3 (origin side): `shanlu origin gc --keep-versions N`
//! removes old catalogs and what only they reached; `kill -9` (an abort)
//! at each step of a collection leaves a store `shanlu verify` passes, a
//! rerun finishes the job, and an edge still syncs byte-identical.

use std::path::Path;

use catalog::ChunkingProfile;
use catalog::chunker::cut_points;
use shanlu_tests::{TestEdge, TestOrigin, generated, http_request, run, run_ok, shanlu};

const VIDEO: usize = 2_000_000;
const UNIQUE: usize = 500_000;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// The versions' bytes: (v1 video, v1-only file, v2 video, v3 video, shared file).
struct Versions {
    video: [Vec<u8>; 3],
    unique: Vec<u8>,
    shared: Vec<u8>,
}

/// Publishes three versions of one course: a video edited in a small region
/// each time (its chunks mostly shared), a file only v1 has, and a file
/// every version shares.
fn publish_three(origin: &TestOrigin) -> Versions {
    let src = origin.dir.path().join("math");
    let v1 = generated(VIDEO, 1301);
    let mut v2 = v1.clone();
    v2[700_000..700_200].fill(0x5A);
    let mut v3 = v2.clone();
    v3[1_400_000..1_400_300].fill(0xA5);
    let unique = generated(UNIQUE, 1303);
    let shared = generated(300_000, 1305);
    write(&src, "course.toml", b"id = \"math\"\n");
    write(&src, "01/index.html", b"<video src='video.mp4'></video>");
    write(&src, "01/shared.pdf", &shared);
    write(&src, "01/video.mp4", &v1);
    write(&src, "01/unique.bin", &unique);
    origin.publish(&src);
    std::fs::remove_file(src.join("01/unique.bin")).expect("remove");
    for video in [&v2, &v3] {
        write(&src, "01/video.mp4", video);
        origin.publish(&src);
    }
    Versions {
        video: [v1, v2, v3],
        unique,
        shared,
    }
}

fn hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Bytes of the files under the origin's `store/blobs`.
fn blob_bytes(origin: &TestOrigin) -> u64 {
    fn walk(dir: &Path, depth: u32) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() && depth < 3 => walk(&e.path(), depth + 1),
                Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                _ => 0,
            })
            .sum()
    }
    walk(&origin.data().join("store/blobs"), 0)
}

fn gc_json(origin: &TestOrigin, extra: &[&str]) -> serde_json::Value {
    let data = origin.data_str();
    let mut args = vec!["origin", "gc", "--data", &data, "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&run_ok(&args)).expect("gc --json prints JSON")
}

/// `shanlu verify ORIGIN --json` passes with no problem and no stray file.
fn verify_clean(data: &Path) {
    let out = run_ok(&["verify", data.to_str().expect("utf-8"), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("verify --json");
    assert_eq!(report["problems"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["stray_files"], serde_json::json!([]), "{report:#}");
}

/// The sequences in the origin's catalog history, read from its store.
fn history(origin: &TestOrigin) -> Vec<Option<u64>> {
    let store = catalog::Store::open_existing(origin.data().join("store")).expect("open store");
    store
        .catalog_history()
        .expect("history")
        .into_iter()
        .map(|(seq, _)| seq)
        .collect()
}

/// Serves the origin and checks a fresh edge syncs the latest version byte-identical.
fn edge_syncs_latest(origin: &TestOrigin, versions: &Versions) {
    let served = origin.serve();
    let token = origin.add_edge("school");
    let edge = TestEdge::init(origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    for bytes in [&versions.video[2], &versions.shared] {
        let held = std::fs::read(edge.blob_path(&hex(bytes))).expect("the edge holds the file");
        assert!(held == *bytes, "the edge's copy differs from the source");
    }
    assert!(!edge.blob_path(&hex(&versions.unique)).exists());
}

/// Issue 13: publish 3 versions, `origin gc --keep-versions 2` while the
/// origin serves: v1's own blobs go, v2's video goes as a file while the
/// chunks only v2 holds are kept in a pack and still served (the store
/// shrinks by exactly that), catalog 2 and 3 stay in the history, verify
/// passes, an edge syncs v3 byte-identical.
#[test]
fn gc_keeps_two_versions_and_an_edge_syncs_the_latest_issue_13() {
    let origin = TestOrigin::init();
    let versions = publish_three(&origin);
    // origin init signs catalog 0 (empty); the publishes 1, 2 and 3.
    assert_eq!(history(&origin), [Some(0), Some(1), Some(2), Some(3)]);
    let before = blob_bytes(&origin);
    let v1_only = (VIDEO + UNIQUE) as u64;

    let refused = run(&[
        "origin",
        "gc",
        "--data",
        &origin.data_str(),
        "--keep-versions",
        "0",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keep-versions"));

    // v2 stays in the history but not in force: its video goes as a file,
    // and the chunks only it holds go into a pack.
    let chunks_of = |data: &[u8]| -> Vec<Vec<u8>> {
        cut_points(ChunkingProfile::DEFAULT, data)
            .into_iter()
            .map(|(offset, len)| data[offset as usize..(offset + u64::from(len)) as usize].to_vec())
            .collect()
    };
    let v3_chunks: std::collections::HashSet<Vec<u8>> =
        chunks_of(&versions.video[2]).into_iter().collect();
    let v2_only: Vec<Vec<u8>> = chunks_of(&versions.video[1])
        .into_iter()
        .filter(|c| !v3_chunks.contains(c))
        .collect();
    let v2_only_bytes: u64 = v2_only.iter().map(|c| c.len() as u64).sum();
    assert!(v2_only_bytes > 0 && v2_only_bytes < VIDEO as u64 / 2);
    let dry = gc_json(&origin, &["--keep-versions", "2", "--dry-run"]);
    assert_eq!(dry["removed_blobs"], 3, "{dry:#}");
    assert_eq!(dry["removed_blob_bytes"], v1_only + VIDEO as u64, "{dry:#}");
    assert_eq!(dry["pack_bytes"], v2_only_bytes, "{dry:#}");
    assert_eq!(blob_bytes(&origin), before, "a dry run removes nothing");

    let served = origin.serve();
    let token = origin.add_edge("reader");
    let chunk = |data: &[u8], nth: usize| {
        let (offset, len) = cut_points(ChunkingProfile::DEFAULT, data)[nth];
        data[offset as usize..(offset + u64::from(len)) as usize].to_vec()
    };
    // The chunk of v1's video holding the byte v2 edited (only v1 has it),
    // and v3's first chunk (its index row pointed into v1's blob until gc
    // moved it), asked of the origin that keeps serving through the collection.
    let v1_only_chunk = {
        let points = cut_points(ChunkingProfile::DEFAULT, &versions.video[0]);
        let nth = points
            .iter()
            .position(|&(offset, len)| (offset..offset + u64::from(len)).contains(&700_000))
            .expect("a chunk holds byte 700000");
        chunk(&versions.video[0], nth)
    };
    let get_chunk = |bytes: &[u8]| {
        let auth = format!("Authorization: Bearer {token}\r\n");
        let path = format!("/v1/chunks/{}", hex(bytes));
        let (status, _, body) = http_request(served.http, "GET", &path, &auth);
        (status, body)
    };
    let v3_first = chunk(&versions.video[2], 0);
    assert_eq!(get_chunk(&v3_first).0, 200);
    assert_eq!(get_chunk(&v1_only_chunk), (200, v1_only_chunk.clone()));
    let started = std::time::Instant::now();
    let report = gc_json(&origin, &["--keep-versions", "2"]);
    eprintln!(
        "issue 13 origin gc: {:.3} s wall, {} blob bytes freed of {before}: {report:#}",
        started.elapsed().as_secs_f64(),
        report["removed_blob_bytes"]
    );
    assert_eq!(get_chunk(&v3_first), (200, v3_first.clone()));
    assert_eq!(
        get_chunk(&v1_only_chunk).0,
        404,
        "a removed chunk is not found"
    );
    // Every chunk of the kept v2 is still served, from v3's file or the pack.
    for chunk in chunks_of(&versions.video[1]) {
        assert_eq!(get_chunk(&chunk), (200, chunk.clone()), "a chunk of v2");
    }
    drop(served);
    assert_eq!(report["kept_sequences"], serde_json::json!([2, 3]));
    assert_eq!(report["removed_catalogs"], 2);
    assert_eq!(report["removed_blobs"], 3);
    assert_eq!(report["pack_bytes"], v2_only_bytes);
    // The dry run saw the same chunk records go or move (those the packs
    // take in did not exist yet, so it counted them as going).
    let rows = |r: &serde_json::Value| {
        r["chunk_records_dropped"].as_u64().expect("dropped")
            + r["chunk_records_moved"].as_u64().expect("moved")
    };
    assert!(rows(&report) > 0, "{report:#}");
    assert_eq!(rows(&dry), rows(&report), "{dry:#} {report:#}");
    assert_eq!(
        before - blob_bytes(&origin),
        v1_only + VIDEO as u64 - v2_only_bytes,
        "v1's files and v2's video go; v2's own chunks stay, packed"
    );
    assert!(!origin.blob_path(&hex(&versions.video[0])).exists());
    assert!(!origin.blob_path(&hex(&versions.unique)).exists());
    assert!(!origin.blob_path(&hex(&versions.video[1])).exists());
    assert_eq!(history(&origin), [Some(2), Some(3)]);
    verify_clean(&origin.data());

    // A second run finds nothing more.
    let again = gc_json(&origin, &["--keep-versions", "2"]);
    assert_eq!(
        (
            again["removed_blobs"].as_u64(),
            again["removed_objects"].as_u64()
        ),
        (Some(0), Some(0))
    );
    edge_syncs_latest(&origin, &versions);
}

/// Issue 13: a collection aborted (like `kill -9`) after its index step and
/// after its file step leaves a store verify passes; a rerun finishes the
/// job; an edge syncs the latest version byte-identical.
#[test]
fn gc_aborted_at_each_step_is_finished_by_a_rerun_issue_13() {
    for step in ["index", "files"] {
        let origin = TestOrigin::init();
        let versions = publish_three(&origin);
        let before = blob_bytes(&origin);
        let aborted = shanlu()
            .env("SHANLU_TEST_GC_ABORT_AFTER", step)
            .args([
                "origin",
                "gc",
                "--data",
                &origin.data_str(),
                "--keep-versions",
                "1",
            ])
            .output()
            .expect("spawn gc");
        assert!(!aborted.status.success(), "{step}: the test hook aborts gc");
        assert!(
            String::from_utf8_lossy(&aborted.stderr).contains("SHANLU_TEST_GC_ABORT_AFTER"),
            "{step}: {}",
            String::from_utf8_lossy(&aborted.stderr)
        );
        verify_clean(&origin.data());
        let rerun = gc_json(&origin, &["--keep-versions", "1"]);
        assert_eq!(rerun["kept_sequences"], serde_json::json!([3]), "{step}");
        // v1's and v2's own blobs: gone, whoever deleted them.
        for gone in [&versions.video[0], &versions.video[1], &versions.unique] {
            assert!(!origin.blob_path(&hex(gone)).exists(), "{step}");
        }
        assert_eq!(
            before - blob_bytes(&origin),
            (2 * VIDEO + UNIQUE) as u64,
            "{step}"
        );
        assert_eq!(history(&origin), [Some(3)], "{step}");
        verify_clean(&origin.data());
        edge_syncs_latest(&origin, &versions);
    }
}

/// Issue 13: the weekly gc unit in tools/systemd runs as written (with the
/// data folder swapped for a test origin's): a renamed flag fails here.
#[test]
fn the_systemd_gc_unit_runs_as_written_issue_13() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/systemd/shanlu-origin-gc.service"),
    )
    .expect("the unit file");
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let mut words = exec.split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/shanlu"));
    let origin = TestOrigin::init();
    let data = origin.data_str();
    let args: Vec<&str> = words
        .map(|w| if w == "/srv/shanlu/origin" { &data } else { w })
        .collect();
    assert!(
        args.contains(&data.as_str()),
        "the unit names the data folder: {exec}"
    );
    publish_three(&origin);
    let out = run_ok(&args);
    assert!(out.contains("kept catalogs"), "{out}");
}

/// Issue 13: reverting to a version `origin gc` packed puts its files back
/// together on the origin from the packed chunks (nothing re-uploaded), and
/// an edge syncs that version's video byte-identical.
#[test]
fn revert_to_a_packed_version_rebuilds_its_files_issue_13() {
    let origin = TestOrigin::init();
    let versions = publish_three(&origin);
    let report = gc_json(&origin, &["--keep-versions", "2"]);
    assert!(report["pack_bytes"].as_u64() > Some(0), "{report:#}");
    assert!(!origin.blob_path(&hex(&versions.video[1])).exists());
    let out = run_ok(&[
        "publish",
        "--revert",
        "math@2",
        "--data",
        &origin.data_str(),
    ]);
    assert!(
        out.contains("published math version 4 (the content of version 2)"),
        "{out}"
    );
    assert!(out.contains("1 files put back together"), "{out}");
    let rebuilt = std::fs::read(origin.blob_path(&hex(&versions.video[1]))).expect("rebuilt");
    assert!(rebuilt == versions.video[1], "v2's video is whole again");
    verify_clean(&origin.data());
    let served = origin.serve();
    let token = origin.add_edge("school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let held = std::fs::read(edge.blob_path(&hex(&versions.video[1]))).expect("the edge holds v2");
    assert!(held == versions.video[1], "the edge's copy is v2's video");
}

/// Issue 13: `origin gc` after `origin rotate-key`: the catalogs of the
/// history signed by the retired key are still read, kept or removed.
#[test]
fn gc_after_a_key_rotation_reads_the_older_catalogs_issue_13() {
    let origin = TestOrigin::init();
    let versions = publish_three(&origin);
    run_ok(&["origin", "rotate-key", "--data", &origin.data_str()]);
    let report = gc_json(&origin, &["--keep-versions", "3"]);
    // Catalogs 2 and 3 (old key) and 4 (the rotation's, new key) are kept.
    assert_eq!(report["kept_sequences"], serde_json::json!([2, 3, 4]));
    verify_clean(&origin.data());
    edge_syncs_latest(&origin, &versions);
}
