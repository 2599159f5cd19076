//! Issue 15: `shanlu publish DIR --origin …` and `shanlu withdraw --origin …`
//! from an administrator's machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shanlu_tests::{ServedOrigin, TestEdge, TestOrigin, generated, run_ok, shanlu};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/sample-courses")
        .join(name)
}

/// A new administrator's token (`shanlu origin add-admin` on the origin machine).
pub(crate) fn add_admin(origin: &TestOrigin, name: &str) -> String {
    let out = run_ok(&[
        "origin",
        "add-admin",
        "--data",
        &origin.data_str(),
        "--name",
        name,
    ]);
    out.lines()
        .find_map(|line| line.strip_prefix("admin token: "))
        .expect("add-admin prints the token")
        .to_owned()
}

/// `shanlu publish FOLDER --origin URL --origin-cert FP --token TOKEN [extra]`.
fn remote(args: &[&str], served: &ServedOrigin, url: &str, token: &str) -> Command {
    let mut command = shanlu();
    command
        .env("RUST_LOG", "warn")
        .env_remove("SHANLU_ADMIN_TOKEN");
    command
        .args(args)
        .args(["--origin", url, "--origin-cert", &served.fingerprint]);
    if !token.is_empty() {
        command.args(["--token", token]);
    }
    command
}

fn quic(served: &ServedOrigin) -> String {
    format!("quic://{}", served.quic)
}

fn output(mut command: Command) -> Output {
    command.output().expect("run shanlu")
}

/// A remote publish that must succeed; its report.
fn publish_ok(served: &ServedOrigin, url: &str, token: &str, folder: &Path) -> Value {
    let folder = folder.to_str().expect("utf-8");
    let out = output(remote(&["publish", folder, "--json"], served, url, token));
    assert!(
        out.status.success(),
        "remote publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("publish --json prints JSON")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sums `field=N` over the origin log's `upload received chunks` lines.
fn received(log: &str, field: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("upload received chunks"))
        .map(|line| {
            let at = line
                .find(&format!(" {field}="))
                .unwrap_or_else(|| panic!("no {field}= in {line}"))
                + field.len()
                + 2;
            line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u64>()
                .expect("a count")
        })
        .sum()
}

/// Issue 15: a remote publish gives exactly what a local publish of the same
/// folder gives (course hash, catalog entry, `ls --json`), and an edge syncs it.
#[test]
fn a_remote_publish_is_a_local_publish_and_edges_sync_it_issue_15() {
    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-li");
    let served = origin.serve();
    let folder = sample("grade3-math");
    let report = publish_ok(&served, &quic(&served), &token, &folder);

    let local = TestOrigin::init();
    let local_report = local.publish(&folder);
    for field in [
        "course_id",
        "course_version",
        "course_hash",
        "sequence",
        "lessons",
        "files",
        "bytes",
    ] {
        assert_eq!(report[field], local_report[field], "{field}");
    }
    assert_eq!(report["new_chunks"], local_report["new_chunks"]);
    assert_eq!(origin.ls()["courses"], local.ls()["courses"]);

    // Published again: nothing moves, nothing changes.
    let again = publish_ok(&served, &quic(&served), &token, &folder);
    assert_eq!(again["unchanged"], true);
    assert_eq!(again["new_chunks"], 0);
    assert_eq!(again["sequence"], report["sequence"]);

    let edge_token = origin.add_edge("school-1");
    let edge = TestEdge::init(&origin, &served, served.quic, &edge_token, "all");
    edge.sync_ok();
    let held = edge.ls();
    assert_eq!(held["courses"][0]["hash"], report["course_hash"]);
    let text = held.to_string();
    assert_eq!(
        text.matches("\"held\":true").count() as u64,
        report["files"].as_u64().expect("files"),
        "every file is held: {held:#}"
    );
    assert!(!text.contains("\"held\":false"), "{held:#}");

    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    assert!(
        log.lines()
            .any(|l| l.contains("\"admin\":\"bureau-li\"") && l.contains("\"action\":\"publish\"")),
        "{log}"
    );
}

/// A course of `files` random files of `size` bytes in two lessons, an
/// empty file, and a copy of the first file under another media type.
fn big_course(root: &Path, files: usize, size: usize) -> PathBuf {
    let dir = root.join("big");
    for i in 0..files {
        let lesson = dir.join(format!("lesson-{}", i % 2));
        std::fs::create_dir_all(&lesson).expect("mkdir");
        std::fs::write(
            lesson.join(format!("part-{i}.bin")),
            generated(size, 1500 + i as u64),
        )
        .expect("write");
    }
    std::fs::write(dir.join("lesson-0/empty.txt"), b"").expect("an empty file");
    // The same bytes under another media type: another manifest, one blob.
    std::fs::copy(
        dir.join("lesson-0/part-0.bin"),
        dir.join("lesson-1/part-0.mp4"),
    )
    .expect("copy");
    dir
}

/// Starts a slowed `publish --origin` of `folder` and kills the client
/// (SIGKILL) as soon as the origin received some of its chunks.
fn kill_once_some_arrived(folder: &std::path::Path, served: &ServedOrigin, token: &str) {
    let mut first = remote(
        &["publish", folder.to_str().expect("utf-8")],
        served,
        &quic(served),
        token,
    );
    let mut child = first
        .env("SHANLU_TEST_UPLOAD_DELAY_MS", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the first publish");
    let deadline = Instant::now() + Duration::from_secs(120);
    while received(&served.log_text(), "chunks") == 0 {
        assert!(
            Instant::now() < deadline,
            "the origin received nothing: {}",
            served.log_text()
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the first publish ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill the client");
    child.wait().expect("wait");
}

/// Waits until the origin's upload writer recorded every chunk it received
/// (it does so after a second without work) and nothing arrived for a while
/// after that; returns the chunks received.
fn wait_until_recorded(served: &ServedOrigin) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled_since: Option<(u64, Instant)> = None;
    loop {
        let log = served.log_text();
        let count = received(&log, "chunks");
        let last = log
            .lines()
            .rev()
            .find(|line| {
                line.contains("upload received chunks") || line.contains("upload recorded chunks")
            })
            .unwrap_or("");
        if last.contains("upload recorded chunks") {
            match settled_since {
                Some((seen, since)) if seen == count => {
                    if since.elapsed() > Duration::from_millis(1500) {
                        return count;
                    }
                }
                _ => settled_since = Some((count, Instant::now())),
            }
        } else {
            settled_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "the origin never recorded what it received: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 15: the client killed mid-upload, then run again: over both runs
/// the origin receives exactly the chunks it lacked, none twice, and the
/// result is complete (what a local publish gives).
#[test]
fn an_interrupted_upload_resumes_without_sending_a_chunk_twice_issue_15() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = big_course(scratch.path(), 6, 8 * 1024 * 1024);
    let local = TestOrigin::init();
    let lacking = local.publish(&folder)["new_chunks"]
        .as_u64()
        .expect("count");

    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-wang");
    let served = origin.serve();
    kill_once_some_arrived(&folder, &served, &token);
    // Requests the origin had whole are still written; let them finish.
    let first_run = wait_until_recorded(&served);
    assert!(
        first_run > 0 && first_run < lacking,
        "{first_run} of {lacking}"
    );
    assert_eq!(
        origin.ls()["courses"],
        Value::Array(vec![]),
        "nothing is published yet"
    );

    let report = publish_ok(&served, &quic(&served), &token, &folder);
    let log = served.log_text();
    assert_eq!(received(&log, "chunks"), lacking, "{log}");
    assert_eq!(received(&log, "again"), 0, "no chunk was sent twice: {log}");
    assert_eq!(report["new_chunks"].as_u64(), Some(lacking));
    assert_eq!(origin.ls()["courses"], local.ls()["courses"]);
    run_ok(&["verify", &origin.data_str()]);
}

/// Issue 15: chunks the origin verified survive the origin itself being
/// killed (after it was idle a moment and recorded them): the publish run
/// again against the restarted origin sends only the rest.
#[test]
fn uploaded_chunks_survive_an_origin_restart_issue_15() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = big_course(scratch.path(), 4, 8 * 1024 * 1024);
    let local = TestOrigin::init();
    let lacking = local.publish(&folder)["new_chunks"]
        .as_u64()
        .expect("count");

    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-sun");
    let served = origin.serve();
    kill_once_some_arrived(&folder, &served, &token);
    let before = wait_until_recorded(&served);
    let first_log = served.log_text();
    served.kill();
    assert!(before > 0 && before < lacking, "{before} of {lacking}");

    let served = origin.serve();
    let report = publish_ok(&served, &quic(&served), &token, &folder);
    let after = received(&served.log_text(), "chunks");
    assert_eq!(
        before + after,
        lacking,
        "only the rest was sent after the restart: {first_log}\n---\n{}",
        served.log_text()
    );
    assert_eq!(received(&served.log_text(), "again"), 0);
    assert_eq!(report["course_hash"], local.ls()["courses"][0]["hash"]);
    run_ok(&["verify", &origin.data_str()]);
}

/// Issue 15: wrong, missing and revoked admin tokens are refused with a
/// message that says so; an edge's token cannot publish; a wrong pin and an
/// origin not listening are told apart.
#[test]
fn wrong_missing_revoked_and_edge_tokens_cannot_publish_issue_15() {
    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-zhao");
    let served = origin.serve();
    let folder = sample("grade3-math");
    let folder = folder.to_str().expect("utf-8");
    let url = quic(&served);

    let wrong = output(remote(&["publish", folder], &served, &url, &"0".repeat(64)));
    assert!(!wrong.status.success());
    assert!(
        stderr_of(&wrong).contains("refused this admin token"),
        "{}",
        stderr_of(&wrong)
    );

    let missing = output(remote(&["publish", folder], &served, &url, ""));
    assert!(!missing.status.success());
    assert!(
        stderr_of(&missing).contains("no admin token"),
        "{}",
        stderr_of(&missing)
    );

    let edge_token = origin.add_edge("school-2");
    let edge = output(remote(&["publish", folder], &served, &url, &edge_token));
    assert!(!edge.status.success());
    let text = stderr_of(&edge);
    assert!(
        text.contains("edge \"school-2\"") && text.contains("edge tokens cannot publish"),
        "{text}"
    );

    run_ok(&[
        "origin",
        "revoke",
        "--admin",
        "--data",
        &origin.data_str(),
        "bureau-zhao",
    ]);
    let revoked = output(remote(&["publish", folder], &served, &url, &token));
    assert!(!revoked.status.success());
    assert!(
        stderr_of(&revoked).contains("wrong or was revoked"),
        "{}",
        stderr_of(&revoked)
    );

    // Another certificate than the one pinned; an origin not listening.
    let admin = add_admin(&origin, "bureau-qian");
    let mut pinned_wrong = shanlu();
    pinned_wrong.env("RUST_LOG", "warn").args([
        "publish",
        folder,
        "--origin",
        &url,
        "--origin-cert",
        &"1".repeat(64),
        "--token",
        &admin,
    ]);
    let text = stderr_of(&output(pinned_wrong));
    assert!(text.contains("certificate is not the one pinned"), "{text}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let nobody = format!("https://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let text = stderr_of(&output(remote(
        &["publish", folder],
        &served,
        &nobody,
        &admin,
    )));
    assert!(text.contains("cannot reach the origin"), "{text}");

    // Nothing was published by any of them.
    assert_eq!(origin.ls()["courses"], Value::Array(vec![]));
}

/// Issue 15: two administrators publishing different courses at once both
/// land, in two different catalog sequences; the log names each.
#[test]
fn two_admins_publishing_at_once_both_land_issue_15() {
    let origin = TestOrigin::init();
    let li = add_admin(&origin, "bureau-li");
    let wang = add_admin(&origin, "bureau-wang");
    let served = origin.serve();
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| publish_ok(&served, &quic(&served), &li, &sample("grade3-math")));
        let b = scope.spawn(|| publish_ok(&served, &quic(&served), &wang, &sample("yi-literacy")));
        (a.join().expect("li"), b.join().expect("wang"))
    });
    let mut sequences = [a["sequence"].as_u64(), b["sequence"].as_u64()];
    sequences.sort();
    assert_eq!(sequences, [Some(1), Some(2)]);
    let ls = origin.ls();
    let ids: Vec<&str> = ls["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ls:#}");
    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    for (admin, course) in [("bureau-li", "grade3-math"), ("bureau-wang", "yi-literacy")] {
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("\"admin\":\"{admin}\""))
                    && l.contains(&format!("\"subject\":\"{course}\""))),
            "{log}"
        );
    }
}

/// Issue 15: over the HTTPS fallback alone (no UDP), a remote publish works,
/// and `withdraw --origin` too, logged with the administrator's name.
#[test]
fn https_publish_and_remote_withdraw_are_logged_issue_15() {
    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-chen");
    let served = origin.serve();
    let url = format!("https://{}", served.https);
    let report = publish_ok(&served, &url, &token, &sample("yi-literacy"));
    assert_eq!(report["sequence"], 1);
    assert_eq!(origin.ls()["courses"][0]["hash"], report["course_hash"]);

    let out = output(remote(
        &[
            "withdraw",
            "yi-literacy",
            "--reason",
            "replaced by a new edition",
            "--json",
        ],
        &served,
        &url,
        &token,
    ));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let withdrawn: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(withdrawn["sequence"], 2);
    assert_eq!(origin.ls()["courses"], Value::Array(vec![]));
    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    let line = log
        .lines()
        .find(|l| l.contains("\"action\":\"withdraw\""))
        .unwrap_or_else(|| panic!("no withdraw in {log}"));
    assert!(
        line.contains("\"admin\":\"bureau-chen\"") && line.contains("replaced by a new edition"),
        "{line}"
    );
}

/// Overwrites `len` bytes at the middle of `file` and inserts `insert` bytes
/// a quarter of the way in: a small edit, whose changed chunks can travel
/// as deltas.
fn edit_in_place(file: &Path, len: usize, insert: usize) {
    let mut bytes = std::fs::read(file).expect("read");
    let middle = bytes.len() / 2;
    for (i, byte) in bytes[middle..middle + len].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    let quarter = bytes.len() / 4;
    bytes.splice(quarter..quarter, (0..insert).map(|i| (i as u8) ^ 0xa5));
    std::fs::write(file, bytes).expect("write");
}

fn count(report: &Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {report:#}"))
}

/// Issue 15: after a small edit in the middle of a large file, a remote
/// re-publish sends its changed chunks as deltas against the previous
/// version: far fewer bytes than the changed chunks, counted in the publish
/// report and at the origin; the result is a local publish of the edited
/// folder (course hash), and the origin verifies.
#[test]
fn a_small_edit_travels_as_deltas_issue_15() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = big_course(scratch.path(), 2, 4 * 1024 * 1024);
    let local = TestOrigin::init();
    local.publish(&folder);
    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-li");
    let served = origin.serve();
    let first = publish_ok(&served, &quic(&served), &token, &folder);
    assert_eq!(count(&first, "delta_chunks"), 0, "nothing to delta against");
    let before = received(&served.log_text(), "bytes");

    edit_in_place(&folder.join("lesson-0/part-0.bin"), 300, 0);
    edit_in_place(&folder.join("lesson-1/part-1.bin"), 200, 100);
    let expected = local.publish(&folder);
    let report = publish_ok(&served, &quic(&served), &token, &folder);
    assert_eq!(report["course_hash"], expected["course_hash"]);
    assert_eq!(report["course_version"], 2);

    let changed = count(&report, "new_chunk_bytes");
    let whole = count(&report, "sent_chunk_bytes");
    let deltas = count(&report, "sent_delta_bytes");
    let signatures = count(&report, "signature_bytes");
    assert!(count(&report, "delta_chunks") >= 2, "{report:#}");
    assert_eq!(count(&report, "deltas_refused"), 0, "{report:#}");
    assert_eq!(whole, 0, "every changed chunk went as a delta: {report:#}");
    assert!(changed >= 64 * 1024, "{report:#}");
    // About 1 KiB a changed block and 12 bytes a KiB of base.
    let moved = whole + deltas + signatures;
    assert!(
        moved * 10 < changed,
        "moved {moved} (deltas {deltas}, signatures {signatures}) for {changed} changed chunk bytes"
    );
    // The origin counts the chunks it rebuilt as received.
    assert_eq!(received(&served.log_text(), "bytes") - before, changed);
    assert_eq!(origin.ls()["courses"], local.ls()["courses"]);
    run_ok(&["verify", &origin.data_str()]);
}

/// Issue 15: a delta that does not rebuild its chunk (corrupted on the way,
/// here on purpose) is refused by the origin before anything is written; the
/// client then sends those chunks whole and the publish is still exact.
#[test]
fn a_corrupted_delta_is_refused_and_the_chunk_sent_whole_issue_15() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = big_course(scratch.path(), 2, 2 * 1024 * 1024);
    let local = TestOrigin::init();
    local.publish(&folder);
    let origin = TestOrigin::init();
    let token = add_admin(&origin, "bureau-li");
    let served = origin.serve();
    publish_ok(&served, &quic(&served), &token, &folder);

    edit_in_place(&folder.join("lesson-0/part-0.bin"), 300, 0);
    let expected = local.publish(&folder);
    let mut command = remote(
        &["publish", folder.to_str().expect("utf-8"), "--json"],
        &served,
        &quic(&served),
        &token,
    );
    command.env("SHANLU_TEST_CORRUPT_DELTAS", "1");
    let out = output(command);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("does not rebuild the chunk its manifest names"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(count(&report, "deltas_refused") >= 1, "{report:#}");
    assert_eq!(count(&report, "delta_chunks"), 0, "{report:#}");
    assert_eq!(
        count(&report, "sent_chunk_bytes"),
        count(&report, "new_chunk_bytes"),
        "the refused chunks went whole, nothing else: {report:#}"
    );
    assert_eq!(report["course_hash"], expected["course_hash"]);
    run_ok(&["verify", &origin.data_str()]);
}
