//! Issue 16: origins on one S3 bucket (the in-process `s3s-fs` server):
//! several `origin serve` processes sharing it, publishes racing for its
//! catalog head, edges synced from either process.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shanlu_tests::s3::S3Server;
use shanlu_tests::{TestEdge, TestOrigin, command_ok as ok, generated, shanlu};

/// `shanlu` with the S3 server's endpoint and credentials in its environment.
fn with_s3(s3: &S3Server) -> Command {
    s3.shanlu()
}

/// `origin init --store s3://…` in a new folder.
fn init_on(s3: &S3Server, prefix: &str) -> TestOrigin {
    s3.init_origin(prefix).0
}

/// A second process's folder: a copy of `first`'s without its store.
fn copy_of(first: &TestOrigin) -> TestOrigin {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("origin");
    copy_folder(&first.data(), &data);
    TestOrigin {
        dir,
        key: first.key.clone(),
    }
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read origin folder") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "store" || name == "publish.lock" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().expect("type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A course folder `id` under `origin`'s temp dir: a video and a page.
fn course_folder(origin: &TestOrigin, id: &str, size: usize, seed: u64) -> PathBuf {
    let root = origin.dir.path().join(id);
    let write = |rel: &str, bytes: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    };
    write("course.toml", format!("id = \"{id}\"\n").as_bytes());
    write("01/index.html", b"<video src='video.mp4'></video>");
    write("01/video.mp4", &generated(size, seed));
    write("02/index.html", "<p>第二课</p>".as_bytes());
    root
}

fn publish(s3: &S3Server, origin: &TestOrigin, folder: &Path) -> Value {
    let out = ok(
        with_s3(s3),
        &[
            "publish",
            folder.to_str().expect("utf-8"),
            "--data",
            &origin.data_str(),
            "--json",
        ],
    );
    serde_json::from_str(&out).expect("publish --json")
}

/// `origin add-edge` on an origin on the bucket; returns the token.
fn add_edge(s3: &S3Server, origin: &TestOrigin, name: &str) -> String {
    let out = ok(
        with_s3(s3),
        &[
            "origin",
            "add-edge",
            "--data",
            &origin.data_str(),
            "--name",
            name,
        ],
    );
    out.lines()
        .find_map(|line| line.strip_prefix("edge token: "))
        .expect("add-edge prints the token")
        .to_owned()
}

/// The held files of an edge: (course, lesson, path, blake3), sorted.
fn held(edge: &TestEdge) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for course in edge.ls()["courses"].as_array().expect("courses") {
        for lesson in course["lessons"].as_array().expect("lessons") {
            for file in lesson["files"].as_array().expect("files") {
                assert_eq!(file["held"], true, "{file}");
                out.push((
                    course["id"].as_str().expect("id").to_owned(),
                    lesson["id"].as_str().expect("id").to_owned(),
                    file["path"].as_str().expect("path").to_owned(),
                    file["blake3"].as_str().expect("blake3").to_owned(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Two origin processes on one bucket: a course published through the first
/// is served by both, from the bucket (the second never held its files), and
/// edges synced from either hold byte-identical files. A second `origin
/// init` on the same bucket is refused.
#[test]
fn issue_16_two_origin_processes_on_one_bucket_serve_the_same_course() {
    let s3 = S3Server::start();
    let first = init_on(&s3, "province");
    let token = add_edge(&s3, &first, "school-a");
    let second = copy_of(&first);

    let src = course_folder(&first, "math", 3 * 1024 * 1024 + 17, 7);
    let report = publish(&s3, &first, &src);
    assert_eq!(report["sequence"], 1, "{report}");

    let served_first = first.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let served_second = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let edge_a = TestEdge::init(&first, &served_first, served_first.quic, &token, "all");
    let edge_b = TestEdge::init(&second, &served_second, served_second.quic, &token, "all");
    let synced = edge_a.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    let synced = edge_b.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    assert_eq!(synced["sequence"], 1, "{synced}");
    let files = held(&edge_a);
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files, held(&edge_b));
    for (_, lesson, path, blake3) in &files {
        assert_eq!(
            std::fs::read(edge_b.blob_path(blake3)).expect("blob"),
            std::fs::read(src.join(lesson).join(path)).expect("source"),
        );
    }
    assert!(
        !second
            .data()
            .join("store/blobs")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "the second process served from the bucket, holding no blobs itself"
    );

    let rotate = with_s3(&s3)
        .args(["origin", "rotate-key", "--data", &first.data_str()])
        .output()
        .expect("spawn");
    assert!(!rotate.status.success());
    let stderr = String::from_utf8_lossy(&rotate.stderr);
    assert!(stderr.contains("not supported yet"), "{stderr}");

    let refused = with_s3(&s3)
        .args([
            "origin",
            "init",
            "--data",
            first.dir.path().join("again").to_str().expect("utf-8"),
            "--store",
            &s3.url("province"),
        ])
        .output()
        .expect("spawn");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("already holds an origin"), "{stderr}");
}

/// Two publishes of different courses through two processes at once both
/// land, in two catalog sequences; the catalog never forks: each process,
/// and an edge of either, ends with both courses.
#[test]
fn issue_16_concurrent_publishes_through_two_processes_both_land() {
    let s3 = S3Server::start();
    let first = init_on(&s3, "race");
    let second = copy_of(&first);
    let math = course_folder(&first, "math", 2 * 1024 * 1024, 1);
    let yi = course_folder(&second, "yi-reading", 2 * 1024 * 1024, 2);
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| publish(&s3, &first, &math));
        let b = scope.spawn(|| publish(&s3, &second, &yi));
        (a.join().expect("first"), b.join().expect("second"))
    });
    let mut sequences = [
        a["sequence"].as_u64().expect("seq"),
        b["sequence"].as_u64().expect("seq"),
    ];
    sequences.sort_unstable();
    assert_eq!(sequences, [1, 2], "{a}\n{b}");

    // Added through the first process's folder, known to the second through the bucket.
    let token = add_edge(&s3, &first, "school-b");
    let served = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let edge = TestEdge::init(&second, &served, served.quic, &token, "all");
    let synced = edge.sync_ok();
    assert_eq!(synced["sequence"], 2, "{synced}");
    let courses: Vec<String> = held(&edge).into_iter().map(|(c, ..)| c).collect();
    assert!(courses.contains(&"math".to_owned()), "{courses:?}");
    assert!(courses.contains(&"yi-reading".to_owned()), "{courses:?}");

    // Revoked through the first process's folder: the second refuses the
    // edge within seconds, without a restart.
    ok(
        with_s3(&s3),
        &["origin", "revoke", "--data", &first.data_str(), "school-b"],
    );
    let mut stderr = String::new();
    let refused = shanlu_tests::wait_until(std::time::Duration::from_secs(20), || {
        let (code, _, err) = edge.sync();
        stderr = err;
        code != 0
    });
    assert!(
        refused,
        "the revoked edge still syncs through the second process"
    );
    assert!(stderr.contains("token"), "{stderr}");
}

/// `shanlu verify --json` of an origin on the bucket.
fn verify(s3: &S3Server, origin: &TestOrigin) -> Value {
    let out = ok(with_s3(s3), &["verify", &origin.data_str(), "--json"]);
    serde_json::from_str(&out).expect("verify --json")
}

/// An origin killed (SIGKILL) while it writes a course into the bucket
/// leaves the bucket consistent: the head has not moved and `verify` finds
/// nothing wrong. Publishing again sends only the chunks the bucket lacks.
#[test]
fn issue_16_an_origin_killed_mid_publish_leaves_the_bucket_consistent() {
    let s3 = S3Server::start();
    let origin = init_on(&s3, "crash");
    let src = course_folder(&origin, "big", 48 * 1024 * 1024, 3);
    let chunks_key = "crash/v1/chunks";
    let args = [
        "publish",
        src.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ];
    kill_once_written(&s3, &args, chunks_key);
    let sent_before = s3.objects_under(chunks_key);

    let checked = verify(&s3, &origin);
    assert_eq!(checked["bucket"]["head_sequence"], 0, "{checked:#}");
    assert_eq!(checked["problems"], serde_json::json!([]), "{checked:#}");

    let report = publish(&s3, &origin, &src);
    assert_eq!(report["sequence"], 1, "{report}");
    let total = s3.objects_under(chunks_key);
    assert_eq!(
        report["bucket_chunks"].as_u64().expect("bucket_chunks") as usize,
        total - sent_before,
        "chunks the killed run wrote were not sent again: {report}"
    );
    let checked = verify(&s3, &origin);
    assert_eq!(checked["bucket"]["head_sequence"], 1, "{checked:#}");
    assert_eq!(checked["bucket"]["chunks_checked"], total, "{checked:#}");
    assert_eq!(checked["problems"], serde_json::json!([]), "{checked:#}");

    // A chunk damaged in the bucket is named by verify.
    let damaged = first_file(&s3, chunks_key);
    std::fs::write(&damaged, b"not the chunk").expect("damage");
    let out = with_s3(&s3)
        .args(["verify", &origin.data_str()])
        .output()
        .expect("verify");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BAD") && stdout.contains("chunks/"),
        "{stdout}"
    );
}

/// Runs `shanlu ARGS…` on the bucket and kills it (SIGKILL, a power cut)
/// once it has written 40 objects under `key_prefix`; it must not have
/// finished by then.
fn kill_once_written(s3: &S3Server, args: &[&str], key_prefix: &str) {
    let mut child = with_s3(s3)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn shanlu");
    let started = shanlu_tests::wait_until(std::time::Duration::from_secs(120), || {
        s3.objects_under(key_prefix) >= 40
    });
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert!(started, "shanlu {args:?} never wrote into {key_prefix}");
    assert!(
        !status.success(),
        "shanlu {args:?} finished before it was killed"
    );
    // A PUT the killed process had sent may still be landing in the test
    // server: wait until the count stands still, so a later count of what
    // the next run writes is not off by one.
    let mut last = s3.objects_under(key_prefix);
    let settled = shanlu_tests::wait_until(std::time::Duration::from_secs(10), || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = s3.objects_under(key_prefix);
        std::mem::replace(&mut last, now) == now
    });
    assert!(
        settled,
        "objects under {key_prefix} kept arriving after the kill"
    );
}

/// One object file of the bucket under `key_prefix`.
fn first_file(s3: &S3Server, key_prefix: &str) -> PathBuf {
    let mut dir = s3.folder().join(key_prefix);
    loop {
        let entry = std::fs::read_dir(&dir)
            .expect("read")
            .flatten()
            .next()
            .expect("an entry");
        if entry.file_type().expect("type").is_file() {
            return entry.path();
        }
        dir = entry.path();
    }
}

/// `origin migrate --to s3://…` moves an origin on its folder into the
/// bucket: cut off by `kill -9`, it resumes without sending again what it
/// wrote; the origin keeps its folder store until the bucket verifies; then
/// it serves from the bucket, and a second process on the bucket does too.
#[test]
fn issue_16_an_origin_migrates_into_a_bucket_resumably() {
    let s3 = S3Server::start();
    // On its folder, whatever SHANLU_TEST_ORIGIN_STORE says.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("origin");
    let out = ok(
        shanlu(),
        &["origin", "init", "--data", data.to_str().expect("utf-8")],
    );
    let key = out
        .lines()
        .find_map(|line| line.strip_prefix("origin key: "))
        .expect("key")
        .to_owned();
    let origin = TestOrigin { dir, key };
    let src = course_folder(&origin, "history", 40 * 1024 * 1024, 5);
    origin.publish(&src);
    let token = origin.add_edge("school-m");
    let url = s3.url("moved");
    let chunks_key = "moved/v1/chunks";

    let args = [
        "origin",
        "migrate",
        "--data",
        &origin.data_str(),
        "--to",
        &url,
    ];
    kill_once_written(&s3, &args, chunks_key);
    let sent_before = s3.objects_under(chunks_key) as u64;
    let toml = std::fs::read_to_string(origin.data().join("origin.toml")).expect("toml");
    assert!(
        !toml.contains("store"),
        "unchanged until it succeeds: {toml}"
    );
    // As if a run cut off later had copied the token book already; an edge
    // enrolled since must still be known after the migration.
    let stale = std::fs::read(origin.data().join("edges.toml")).expect("edges.toml");
    let bucket = server::bucket::Bucket::from_url_with(&url, s3.env()).expect("bucket");
    server::bucket::block(bucket.swap_mutable(
        server::bucket::Mutable::EdgeTokens,
        None,
        stale.into(),
    ))
    .expect("plant an older book");
    let late_token = shanlu_tests::run_ok(&[
        "origin",
        "add-edge",
        "--data",
        &origin.data_str(),
        "--name",
        "late-school",
    ]);
    let late_token = late_token
        .lines()
        .find_map(|line| line.strip_prefix("edge token: "))
        .expect("token")
        .to_owned();

    let out = ok(
        with_s3(&s3),
        &[
            "origin",
            "migrate",
            "--data",
            &origin.data_str(),
            "--to",
            &url,
            "--json",
        ],
    );
    let migrated: Value = serde_json::from_str(&out).expect("json");
    let total = s3.objects_under(chunks_key) as u64;
    assert_eq!(
        migrated["pushed"]["chunks"],
        total - sent_before,
        "{migrated:#}"
    );
    assert_eq!(
        migrated["verified"]["chunks_checked"], total,
        "{migrated:#}"
    );
    assert_eq!(migrated["sequence"], 1, "{migrated:#}");
    let toml = std::fs::read_to_string(origin.data().join("origin.toml")).expect("toml");
    assert!(toml.contains(&url), "{toml}");

    // Served by a second process that never held the files.
    let second = copy_of(&origin);
    let served = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let edge = TestEdge::init(&second, &served, served.quic, &token, "all");
    let synced = edge.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    assert_eq!(held(&edge).len(), 3);
    let late = TestEdge::init(&second, &served, served.quic, &late_token, "all");
    assert_eq!(late.sync_ok()["complete"], true);

    // Migrating again is refused: the origin is on the bucket already.
    let again = with_s3(&s3)
        .args([
            "origin",
            "migrate",
            "--data",
            &origin.data_str(),
            "--to",
            &url,
        ])
        .output()
        .expect("spawn");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already"));
}

/// A small edit of a published video travels to an edge of a second process
/// as deltas against the chunks the edge holds: the bases are read from the
/// bucket like the chunks themselves.
#[test]
fn issue_16_a_small_edit_travels_as_deltas_from_a_process_that_never_held_the_file() {
    let s3 = S3Server::start();
    let first = init_on(&s3, "deltas");
    let token = add_edge(&s3, &first, "school-d");
    let second = copy_of(&first);
    let src = course_folder(&first, "math", 6 * 1024 * 1024, 21);
    publish(&s3, &first, &src);
    let served = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let edge = TestEdge::init(&second, &served, served.quic, &token, "all");
    edge.sync_ok();

    let video = src.join("01/video.mp4");
    let mut bytes = std::fs::read(&video).expect("read");
    let edit = generated(2_000, 99);
    for n in 0..20 {
        let at = 500_000 + n * 250_000;
        bytes[at..at + 2_000].copy_from_slice(&edit);
    }
    std::fs::write(&video, &bytes).expect("write");
    let edited = publish(&s3, &first, &src);
    let changed = edited["new_chunk_bytes"].as_u64().expect("bytes");
    assert!(
        changed > 1024 * 1024,
        "the edits touched {changed} bytes of chunks"
    );
    // The second process takes the new head within seconds.
    let mut update = Value::Null;
    let followed = shanlu_tests::wait_until(std::time::Duration::from_secs(20), || {
        update = edge.sync_ok();
        update["sequence"] == 2
    });
    assert!(
        followed,
        "the second process did not follow the new catalog: {update}"
    );
    let fetched = update["bytes_fetched"].as_u64().expect("bytes");
    // 40 000 bytes were edited; deltas carry little more than that.
    assert!(
        fetched < changed / 4,
        "fetched {fetched} bytes for 40 000 edited bytes (changed chunks: {changed})"
    );
    let files = held(&edge);
    let video_hash = files
        .iter()
        .find(|(_, _, path, _)| path == "video.mp4")
        .map(|(.., hash)| hash.clone())
        .expect("the video");
    assert_eq!(
        std::fs::read(edge.blob_path(&video_hash)).expect("blob"),
        bytes
    );
}

/// An edge's report, taken by the process the edge synced with, shows on
/// the dashboard of another process on the bucket within seconds.
#[test]
fn issue_16_a_report_taken_by_one_process_shows_on_anothers_dashboard() {
    let s3 = S3Server::start();
    let (first, admin_token) = s3.init_origin("fleet");
    let token = add_edge(&s3, &first, "school-r");
    let src = course_folder(&first, "math", 256 * 1024, 4);
    publish(&s3, &first, &src);
    let second = copy_of(&first);

    // The first process with its dashboard; its stdout is read to the
    // dashboard's address and kept open.
    let mut dashboard = with_s3(&s3)
        .args(["origin", "serve", "--data", &first.data_str()])
        .args(["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn origin serve");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        dashboard.stdout.take().expect("stdout"),
    ));
    let admin_addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("admin: http://").map(str::to_owned))
        .expect("origin serve --admin prints its address");
    let admin_addr = admin_addr.trim_end_matches('/').to_owned();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _dashboard = (Killed(dashboard), lines);
    let served = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &[]);
    let edge = TestEdge::init(&second, &served, served.quic, &token, "all");
    edge.sync_ok();

    let admin: std::net::SocketAddr = admin_addr.parse().expect("address");
    let form = format!("token={admin_token}");
    let (status, head, _) = shanlu_tests::http_request_with_body(
        admin,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        form.as_bytes(),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = shanlu_tests::header(&head, "set-cookie").expect("a session cookie");
    let cookie = format!(
        "Cookie: {}\r\n",
        cookie.split(';').next().expect("name=value")
    );
    let mut json = Value::Null;
    let shown = shanlu_tests::wait_until(std::time::Duration::from_secs(30), || {
        let (_, _, body) =
            shanlu_tests::http_request_with_body(admin, "GET", "/edges.json", &cookie, b"");
        json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        json["summary"]["reports"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        shown,
        "the first process's dashboard never showed the report: {json:#}"
    );
    assert_eq!(json["edges"][0]["name"], "school-r", "{json:#}");
}
