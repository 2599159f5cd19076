//! Issue 14: USB bundles — `bundle create` on an origin or an edge, `edge
//! have`, and `edge import` verified as a sync pass is, refusing what it
//! must and resuming after a pulled stick.

use std::path::{Path, PathBuf};

use serde_json::Value;
use shanlu_tests::{TestEdge, TestOrigin, generated, run, run_ok, shanlu};

use crate::sync::{assert_edge_holds, published_course, write};

/// `bundle create --data DATA --out OUT --json` (with `env`), parsed.
fn create(data: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = shanlu();
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command
        .args([
            "bundle",
            "create",
            "--data",
            path(data),
            "--out",
            path(out),
            "--json",
        ])
        .args(extra)
        .output()
        .expect("spawning shanlu bundle create");
    assert!(
        output.status.success(),
        "bundle create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("bundle create --json prints JSON")
}

/// `edge import --data EDGE STICK --json`: (exit code, summary, stderr).
fn import(edge: &TestEdge, stick: &Path) -> (i32, Value, String) {
    let output = shanlu()
        .env("RUST_LOG", "warn")
        .args([
            "edge",
            "import",
            "--data",
            &edge.data_str(),
            path(stick),
            "--json",
        ])
        .output()
        .expect("spawning shanlu edge import");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (output.status.code().unwrap_or(-1), report, stderr)
}

fn path(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn bundle_folder(stick: &Path) -> PathBuf {
    stick.join("shanlu-bundle")
}

/// An edge pinned to `origin`, made while it was served once; the origin is
/// stopped again. Returns the edge and the address it was served on.
fn edge_of(origin: &TestOrigin, name: &str) -> (TestEdge, String) {
    let served = origin.serve();
    let token = origin.add_edge(name);
    let edge = TestEdge::init(origin, &served, served.quic, &token, "all");
    (edge, served.quic.to_string())
}

/// The edge's whole store, file names and bytes, to show it is unchanged.
fn snapshot(edge: &TestEdge) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![edge.data().join("store")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "index.redb") {
                out.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn issue_14_bundle_round_trip_with_the_origin_down_then_a_sync_fetches_nothing() {
    let (origin, src) = published_course(141);
    let (edge, addr) = edge_of(&origin, "school-b1");
    // The origin is not running from here until the sync at the end.
    let stick = tempfile::tempdir().expect("tempdir");
    let made = create(&origin.data(), stick.path(), &[], &[]);
    assert_eq!(made["source"], "origin");
    assert_eq!(made["sequence"], 1);
    assert_eq!(made["packs"], 2, "{made:#}");
    assert!(made["chunk_bytes"].as_u64().expect("bytes") >= 24 * 1024 * 1024);
    let folder = bundle_folder(stick.path());
    let index: Value =
        serde_json::from_slice(&std::fs::read(folder.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["format"], 1);
    assert_eq!(index["origin_key"], origin.key.as_str());
    for pack in index["packs"].as_array().expect("packs") {
        let file = folder.join(pack["name"].as_str().expect("name"));
        let len = std::fs::metadata(&file).expect("pack").len();
        assert_eq!(len, pack["size"].as_u64().expect("size"));
        assert!(len <= 256 * 1024 * 1024);
    }

    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["catalog_updated"], true);
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["files_completed"], 5, "{report:#}");
    assert_eq!(report["files_missing"], 0);
    assert_eq!(report["packs_read"], 2);
    assert_eq!(assert_edge_holds(&edge, "math", &src), 5);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));

    // The same origin back on the same address: the edge needs nothing.
    let served = origin.serve_on(&addr);
    let synced = edge.sync_ok();
    assert_eq!(synced["chunks_fetched"], 0, "{synced:#}");
    assert_eq!(synced["bytes_fetched"], 0);
    assert_eq!(synced["objects_fetched"], 0);
    assert_eq!(synced["catalog_updated"], false);
    drop(served);

    // A second import of the same stick reads nothing again.
    let (code, again, _) = import(&edge, stick.path());
    assert_eq!(code, 0);
    assert_eq!(again["packs_read"], 0);
    assert_eq!(again["packs_already_imported"], 2);
    assert_eq!(again["files_completed"], 0);
    // The edge writes what it holds for a neighbouring school, whose edge
    // holds it all afterwards.
    let (neighbour, _) = edge_of(&origin, "school-b1-next");
    let next_stick = tempfile::tempdir().expect("tempdir");
    let made = create(&edge.data(), next_stick.path(), &[], &[]);
    assert_eq!(made["source"], "edge");
    assert_eq!(made["files_not_held"], 0);
    let (code, report, stderr) = import(&neighbour, next_stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["files_completed"], 5);
    assert_eq!(assert_edge_holds(&neighbour, "math", &src), 5);
}

#[test]
fn issue_14_a_bundle_for_a_have_list_holds_only_what_the_edge_lacks() {
    let (origin, src) = published_course(142);
    let (edge, addr) = edge_of(&origin, "school-b2");
    let served = origin.serve_on(&addr);
    edge.sync_ok();
    drop(served);
    let have = edge.dir.path().join("have.bin");
    let out = run_ok(&[
        "edge",
        "have",
        "--data",
        &edge.data_str(),
        "--out",
        path(&have),
    ]);
    assert!(out.contains("catalog sequence 1"), "{out}");

    // An update: one new lesson with a new 3 MiB file.
    let new_video = generated(3 * 1024 * 1024, 9142);
    write(&src, "03-more/clip.mp4", &new_video);
    write(&src, "03-more/index.html", b"<p>more</p>");
    origin.publish(&src);

    let stick = tempfile::tempdir().expect("tempdir");
    let made = create(&origin.data(), stick.path(), &["--for", path(&have)], &[]);
    assert_eq!(made["sequence"], 2);
    // Only the new files' chunks: the 24 MiB video already held is not sent.
    let expected = (new_video.len() + b"<p>more</p>".len()) as u64;
    assert_eq!(made["chunk_bytes"], expected, "{made:#}");
    // The new catalog's course, the new lesson and its two manifests.
    assert_eq!(made["objects"], 4, "{made:#}");

    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["catalog_updated"], true);
    assert_eq!(report["sequence"], 2);
    assert_eq!(report["files_completed"], 2, "{report:#}");
    assert_eq!(report["files_missing"], 0);
    assert_eq!(assert_edge_holds(&edge, "math", &src), 7);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
}

#[test]
fn issue_14_a_tampered_pack_is_skipped_with_a_clear_message_and_nothing_bad_is_kept() {
    let (origin, _src) = published_course(143);
    let (edge, _addr) = edge_of(&origin, "school-b3");
    let stick = tempfile::tempdir().expect("tempdir");
    let pack_bytes = ("SHANLU_TEST_BUNDLE_PACK_BYTES", "4000000");
    let made = create(&origin.data(), stick.path(), &[], &[pack_bytes]);
    assert!(made["packs"].as_u64().expect("packs") >= 7, "{made:#}");
    let pack = bundle_folder(stick.path()).join("pack-0003.slp");
    let mut bytes = std::fs::read(&pack).expect("pack");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&pack, &bytes).expect("tamper");

    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert!(stderr.contains("pack-0003.slp is damaged"), "{stderr}");
    assert!(
        stderr.contains("copy the bundle onto the stick again"),
        "{stderr}"
    );
    let skipped = report["packs_skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["name"], "pack-0003.slp");
    // The other packs were used: the small files are held, the video is not.
    assert_eq!(report["files_completed"], 4, "{report:#}");
    assert_eq!(report["files_missing"], 1);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
}

#[test]
fn issue_14_an_older_catalog_and_another_origins_bundle_are_refused_and_the_edge_is_unchanged() {
    let (origin, src) = published_course(144);
    let old_stick = tempfile::tempdir().expect("tempdir");
    create(&origin.data(), old_stick.path(), &[], &[]);
    write(&src, "03-new/index.html", b"<p>new</p>");
    origin.publish(&src);
    let (edge, addr) = edge_of(&origin, "school-b4");
    let served = origin.serve_on(&addr);
    assert_eq!(edge.sync_ok()["sequence"], 2);
    drop(served);
    let before = snapshot(&edge);

    let (code, _, stderr) = import(&edge, old_stick.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused the bundle"), "{stderr}");
    assert!(
        stderr.contains("sequence 1 is lower than the 2"),
        "{stderr}"
    );
    assert!(stderr.contains("the edge is unchanged"), "{stderr}");
    assert_eq!(snapshot(&edge), before);
    assert_eq!(edge.ls()["sequence"], 2);

    // Another origin's bundle, as it is and with the index claiming our key.
    let other = TestOrigin::init();
    let other_src = other.dir.path().join("math");
    write(&other_src, "01-a/index.html", b"<p>forged</p>");
    other.publish(&other_src);
    let other_stick = tempfile::tempdir().expect("tempdir");
    create(&other.data(), other_stick.path(), &[], &[]);
    let (code, _, stderr) = import(&edge, other_stick.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("was made for origin key"), "{stderr}");
    assert!(stderr.contains(&origin.key), "{stderr}");

    let index_path = bundle_folder(other_stick.path()).join("index.json");
    let text = std::fs::read_to_string(&index_path).expect("index");
    let mut index: Value = serde_json::from_str(&text).expect("json");
    index["origin_key"] = Value::from(origin.key.clone());
    std::fs::write(&index_path, index.to_string()).expect("rewrite");
    let (code, _, stderr) = import(&edge, other_stick.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("does not verify against the pinned origin key"),
        "{stderr}"
    );
    assert_eq!(snapshot(&edge), before);
    assert_eq!(edge.ls()["sequence"], 2);

    // An interrupted create (no index) is refused too.
    std::fs::remove_file(&index_path).expect("remove index");
    let (code, _, stderr) = import(&edge, other_stick.path());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("has no index.json"), "{stderr}");
    assert_eq!(snapshot(&edge), before);
}

#[test]
fn issue_14_a_truncated_pack_is_skipped_and_a_rerun_reads_only_that_pack() {
    let (origin, src) = published_course(145);
    let (edge, _addr) = edge_of(&origin, "school-b5");
    let stick = tempfile::tempdir().expect("tempdir");
    let pack_bytes = ("SHANLU_TEST_BUNDLE_PACK_BYTES", "4000000");
    let made = create(&origin.data(), stick.path(), &[], &[pack_bytes]);
    let packs = made["packs"].as_u64().expect("packs");
    assert!(packs >= 7, "{made:#}");
    // The stick pulled while pack 4 was being copied onto it.
    let pack = bundle_folder(stick.path()).join("pack-0004.slp");
    let whole = std::fs::read(&pack).expect("pack");
    std::fs::write(&pack, &whole[..whole.len() / 3]).expect("truncate");

    let (code, first, stderr) = import(&edge, stick.path());
    assert_eq!(code, 2, "{first:#}\n{stderr}");
    assert_eq!(first["packs_read"], packs - 1);
    assert_eq!(first["packs_skipped"][0]["name"], "pack-0004.slp");
    assert_eq!(first["files_missing"], 1);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));

    std::fs::write(&pack, &whole).expect("restore");
    let (code, second, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    assert_eq!(second["packs_read"], 1, "only the pack not imported yet");
    assert_eq!(second["packs_already_imported"], packs - 1);
    assert_eq!(second["files_completed"], 1);
    assert_eq!(second["files_missing"], 0);
    assert!(second["bytes_written"].as_u64().expect("bytes") <= whole.len() as u64);
    assert_eq!(assert_edge_holds(&edge, "math", &src), 5);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
    let _ = run(&["ls", "--data", &edge.data_str()]);
}

#[test]
fn issue_14_an_import_keeps_to_the_edges_max_store() {
    let (origin, _src) = published_course(146);
    let served = origin.serve();
    let token = origin.add_edge("school-b6");
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--max-store", "1MB"],
    );
    drop(served);
    let stick = tempfile::tempdir().expect("tempdir");
    create(&origin.data(), stick.path(), &[], &[]);
    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    // The 24 MiB video does not fit in 1 MB; the small files do.
    assert_eq!(report["files_completed"], 4, "{report:#}");
    assert_eq!(report["files_missing"], 1);
    assert_eq!(report["quota"]["not_held_files"], 1, "{report:#}");
    assert!(report["bytes_written"].as_u64().expect("bytes") < 1_000_000);
    let partial = edge.data().join("store/partial");
    let partial_bytes: u64 = std::fs::read_dir(&partial)
        .map(|dir| {
            dir.map(|e| e.expect("entry").metadata().expect("meta").len())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(partial_bytes, 0, "no partial file for what did not fit");
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
}

#[test]
fn issue_14_courses_limits_the_files_but_not_the_catalog() {
    let (origin, _src) = published_course(147);
    let art = origin.dir.path().join("art");
    let picture = generated(700 * 1024, 1147);
    write(&art, "01-colours/index.html", b"<p>colours</p>");
    write(&art, "01-colours/picture.png", &picture);
    origin.publish(&art);
    let (edge, _addr) = edge_of(&origin, "school-b7");
    let stick = tempfile::tempdir().expect("tempdir");
    let made = create(&origin.data(), stick.path(), &["--courses", "art"], &[]);
    let expected = (picture.len() + b"<p>colours</p>".len()) as u64;
    assert_eq!(made["chunk_bytes"], expected, "{made:#}");

    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    // Art's two files, and math's empty file (it needs no chunk).
    assert_eq!(report["files_completed"], 3, "{report:#}");
    assert_eq!(
        report["files_missing"], 4,
        "math's other files are not on the stick"
    );
    // Both courses can be browsed: the catalog and all metadata came.
    let listing = edge.ls();
    let ids: Vec<&str> = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2, "{listing:#}");
    assert!(ids.contains(&"art") && ids.contains(&"math"), "{ids:?}");

    let output = shanlu()
        .args(["bundle", "create", "--data", &origin.data_str(), "--out"])
        .arg(stick.path())
        .args(["--courses", "music"])
        .output()
        .expect("spawn");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("course music is not in the catalog"),
        "{stderr}"
    );
}

/// Issue 14: import no longer hashes a pack whole, so a chunk whose bytes
/// were changed inside a pack whose index entry was rewritten to match (size
/// and BLAKE3) must still be refused by its own hash: the pack is skipped,
/// the file holding the chunk is not kept, the pack is not remembered, and
/// a rerun with the good pack completes the edge.
#[test]
fn issue_14_a_wrong_chunk_in_a_pack_whose_index_entry_matches_is_refused() {
    let (origin, src) = published_course(148);
    let (edge, _addr) = edge_of(&origin, "school-b8");
    let stick = tempfile::tempdir().expect("tempdir");
    let pack_bytes = ("SHANLU_TEST_BUNDLE_PACK_BYTES", "4000000");
    let made = create(&origin.data(), stick.path(), &[], &[pack_bytes]);
    assert!(made["packs"].as_u64().expect("packs") >= 7, "{made:#}");
    let folder = bundle_folder(stick.path());
    let pack = folder.join("pack-0003.slp");
    let good = std::fs::read(&pack).expect("pack");
    // The first record's bytes: after the 9-byte header and a 37-byte head.
    assert_eq!(good[9], 3, "pack 3 starts with a chunk record");
    let chunk_hash = catalog::Hash::from_bytes(good[10..42].try_into().expect("32 bytes"));
    let mut bad = good.clone();
    bad[9 + 37 + 100] ^= 0x01;
    std::fs::write(&pack, &bad).expect("tamper");
    let index_path = folder.join("index.json");
    let good_index = std::fs::read_to_string(&index_path).expect("index");
    let mut index: Value = serde_json::from_str(&good_index).expect("json");
    let entry = index["packs"]
        .as_array_mut()
        .expect("packs")
        .iter_mut()
        .find(|p| p["name"] == "pack-0003.slp")
        .expect("pack 3 listed");
    entry["blake3"] = Value::from(blake3::hash(&bad).to_hex().to_string());
    assert_eq!(entry["size"], bad.len() as u64);
    std::fs::write(&index_path, index.to_string()).expect("rewrite index");

    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 2, "{report:#}\n{stderr}");
    assert!(stderr.contains("pack-0003.slp is damaged"), "{stderr}");
    assert!(
        stderr.contains(&format!("chunk {chunk_hash} does not match its hash")),
        "{stderr}"
    );
    let skipped = report["packs_skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{report:#}");
    assert_eq!(skipped[0]["name"], "pack-0003.slp");
    assert_eq!(report["files_missing"], 1, "{report:#}");
    assert_eq!(report["complete"], false);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));

    // The tampered pack was not remembered: with the good one back, a rerun
    // reads it (and only it) and the edge holds every file.
    std::fs::write(&pack, &good).expect("restore");
    std::fs::write(&index_path, &good_index).expect("restore index");
    let (code, second, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{second:#}\n{stderr}");
    assert_eq!(second["packs_read"], 1, "{second:#}");
    assert_eq!(second["files_missing"], 0);
    assert_eq!(assert_edge_holds(&edge, "math", &src), 5);
    assert!(run_ok(&["verify", &edge.data_str()]).contains("all good"));
}

/// Issue 14: an import while `edge run` holds the edge's store is refused
/// with a message that says to stop it, and changes nothing; after it
/// stops, the same import works.
#[test]
fn issue_14_an_import_while_edge_run_runs_is_refused_and_says_to_stop_it() {
    let (origin, src) = published_course(148);
    let (edge, _) = edge_of(&origin, "school-b8");
    let stick = tempfile::tempdir().expect("tempdir");
    create(&origin.data(), stick.path(), &[], &[]);
    let running = edge.run();
    // Answering the status API, it has opened its store.
    running.json("/api/v1/status");
    let (code, _, stderr) = import(&edge, stick.path());
    assert_ne!(code, 0);
    assert!(
        stderr.contains("another program holds it") || stderr.contains("another sync"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stop") || stderr.contains("let it finish"),
        "{stderr}"
    );
    drop(running);
    let (code, report, stderr) = import(&edge, stick.path());
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(assert_edge_holds(&edge, "math", &src), 5);
}
