//! Issue 13, items 4 and 5: withdraw, revert, catalog expiry, key rotation
//! and the sequence floor, end to end through `edge sync` and the classroom.

use std::path::Path;

use serde_json::Value;
use shanlu_tests::{ServedOrigin, TestEdge, TestOrigin, run_err, run_ok, wait_until};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A course folder `id` with one lesson `01` holding `index.html`.
fn course(origin: &TestOrigin, id: &str, page: &str) -> std::path::PathBuf {
    let src = origin.dir.path().join(format!("src-{id}"));
    write(&src, "course.toml", format!("id = \"{id}\"\n").as_bytes());
    write(&src, "01/index.html", page.as_bytes());
    src
}

fn course_ids(courses: &Value) -> Vec<String> {
    courses
        .as_array()
        .expect("a list of courses")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect()
}

fn lesson_page(edge: &shanlu_tests::RunningEdge, course: &str) -> (u16, String) {
    let (status, _, body) = edge.get(&format!("/courses/{course}/01/index.html"), "");
    let page = String::from_utf8_lossy(&body).into_owned();
    // The classroom puts its font styles in front of a lesson page.
    let lesson = page
        .rsplit_once("</style>")
        .map_or(page.as_str(), |(_, rest)| rest);
    (status, lesson.to_owned())
}

fn sequence_of(data: &Path) -> u64 {
    shanlu_tests::ls_json(data)["sequence"]
        .as_u64()
        .expect("sequence")
}

/// The QUIC and HTTPS addresses of a running origin.
fn addrs(served: &ServedOrigin) -> (String, String) {
    (served.quic.to_string(), served.https.to_string())
}

/// Points an edge at a newly started origin's addresses (same certificate).
fn repoint(edge: &TestEdge, from: &(String, String), to: &ServedOrigin) {
    let path = edge.data().join("edge.toml");
    let text = std::fs::read_to_string(&path).expect("edge.toml");
    assert!(text.contains(&from.0), "{text}");
    let text = text
        .replace(&from.0, &to.quic.to_string())
        .replace(&from.1, &to.https.to_string());
    std::fs::write(&path, text).expect("write edge.toml");
}

/// Files under `dir`, however deep.
fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count_files(&e.path()),
                    Ok(_) => 1,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            from.to_str().expect("utf-8"),
            to.to_str().expect("utf-8"),
        ])
        .status()
        .expect("cp");
    assert!(status.success());
}

/// Issue 13: a withdrawn course disappears from the classroom page and API
/// after a sync; status lists it with the reason; publishing it again brings it back.
#[test]
fn issue_13_withdraw_hides_the_course_and_status_names_it_and_republish_restores_it() {
    let origin = TestOrigin::init();
    let math = course(&origin, "math", "<p>count to ten</p>");
    let art = course(&origin, "art", "<p>draw a tree</p>");
    origin.publish(&math);
    origin.publish(&art);
    let served = origin.serve();
    let token = origin.add_edge("school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    {
        let running = edge.run();
        assert_eq!(
            course_ids(&running.json("/api/v1/courses")),
            ["art", "math"]
        );
    }

    let out = run_ok(&[
        "withdraw",
        "math",
        "--data",
        &origin.data_str(),
        "--reason",
        "replaced by the new syllabus",
    ]);
    assert!(out.contains("withdrew math (last version 1)"), "{out}");
    let report = edge.sync_ok();
    assert_eq!(report["catalog_updated"], true, "{report:#}");
    {
        let running = edge.run();
        assert_eq!(course_ids(&running.json("/api/v1/courses")), ["art"]);
        let (status, _, _) = running.get("/api/v1/courses/math", "");
        assert_eq!(status, 404);
        let (status, home) = running.page("/", "en");
        assert_eq!(status, 200);
        assert!(!home.contains("/course/math"), "math still listed");
        assert!(home.contains("/course/art"));
        let search = running.json("/api/v1/search?q=count");
        assert!(!search.to_string().contains("\"math\""), "{search}");
        let api = running.json("/api/v1/status");
        assert_eq!(api["withdrawn"][0]["id"], "math", "{api:#}");
        assert_eq!(
            api["withdrawn"][0]["reason"],
            "replaced by the new syllabus"
        );
        let (_, page) = running.page("/status", "en");
        assert!(
            page.contains("withdrawn: math") && page.contains("replaced by the new syllabus"),
            "{page}"
        );
    }
    let status = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(
        status.contains("withdrawn: math (v1, ")
            && status.contains(": replaced by the new syllabus"),
        "{status}"
    );

    // Publishing it again brings it back, one version higher.
    write(&math, "01/index.html", b"<p>count to twenty</p>");
    let back = origin.publish(&math);
    assert_eq!(back["course_version"], 2, "{back:#}");
    edge.sync_ok();
    let running = edge.run();
    assert_eq!(
        course_ids(&running.json("/api/v1/courses")),
        ["art", "math"]
    );
    assert_eq!(
        lesson_page(&running, "math"),
        (200, "<p>count to twenty</p>".to_owned())
    );
    let api = running.json("/api/v1/status");
    assert_eq!(api["withdrawn"], Value::Array(vec![]), "{api:#}");
}

/// Issue 13: `publish --revert` gives edges the old content as a higher
/// version, fetching no chunk when the edge still holds the old blobs.
#[test]
fn issue_13_revert_serves_the_old_content_as_a_new_version_with_no_chunk_fetched() {
    let origin = TestOrigin::init();
    let math = course(&origin, "math", "<p>the good version</p>");
    origin.publish(&math);
    let served = origin.serve();
    let token = origin.add_edge("school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    write(&math, "01/index.html", b"<p>the broken version</p>");
    origin.publish(&math);
    let report = edge.sync_ok();
    assert!(report["chunks_fetched"].as_u64().expect("chunks") > 0);

    let blobs_before = count_files(&origin.data().join("store/blobs"));
    assert!(blobs_before >= 2);
    let out = run_ok(&[
        "publish",
        "--revert",
        "math@1",
        "--data",
        &origin.data_str(),
    ]);
    assert!(
        out.contains("published math version 3 (the content of version 1)"),
        "{out}"
    );
    let blobs_after = count_files(&origin.data().join("store/blobs"));
    assert_eq!(blobs_before, blobs_after, "a revert stores no blob");

    let report = edge.sync_ok();
    assert_eq!(report["catalog_updated"], true);
    assert_eq!(report["chunks_fetched"], 0, "{report:#}");
    assert_eq!(report["files_missing"], 0, "{report:#}");
    let running = edge.run();
    assert_eq!(
        lesson_page(&running, "math"),
        (200, "<p>the good version</p>".to_owned())
    );
    let course = running.json("/api/v1/courses/math");
    assert_eq!(course["version"], 3, "{course:#}");

    let err = run_err(&[
        "publish",
        "--revert",
        "math@7",
        "--data",
        &origin.data_str(),
    ]);
    assert!(
        err.contains("no version 7 of course math; it holds version(s) 1, 2, 3"),
        "{err}"
    );
    let err = run_err(&["publish", "--revert", "art@1", "--data", &origin.data_str()]);
    assert!(
        err.contains("course art is not in the catalog in force"),
        "{err}"
    );
}

/// Issue 13: an expired catalog is accepted, warned about by `edge status`,
/// the status page and `/api/v1/status`, and the classroom keeps serving.
/// `origin serve` renews the catalog by itself before it expires.
#[test]
fn issue_13_an_expired_catalog_warns_and_the_classroom_keeps_working() {
    let origin = TestOrigin::init();
    let toml = origin.data().join("origin.toml");
    let text = std::fs::read_to_string(&toml).expect("origin.toml");
    std::fs::write(&toml, format!("{text}catalog_lifetime_secs = 4\n")).expect("write");
    let math = course(&origin, "math", "<p>offline lesson</p>");
    let published = origin.publish(&math);
    let first = published["sequence"].as_u64().expect("sequence");
    let served = origin.serve();
    // Serve renews when less than half the lifetime is left: within a few seconds.
    let renewed = wait_until(std::time::Duration::from_secs(20), || {
        sequence_of(&origin.data()) > first
    });
    assert!(renewed, "origin serve did not renew the catalog");
    let token = origin.add_edge("school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    // The school is cut off: no more renewals reach it.
    served.stop();
    let expired = wait_until(std::time::Duration::from_secs(20), || {
        run_ok(&["edge", "status", "--data", &edge.data_str()])
            .contains("warning: the catalog expired on")
    });
    assert!(expired, "edge status never warned");
    let status = run_ok(&["edge", "status", "--data", &edge.data_str()]);
    assert!(
        status.contains("the edge may be cut off from updates, check the link to the origin"),
        "{status}"
    );
    let running = edge.run();
    let api = running.json("/api/v1/status");
    let warning = api["catalog_warning"].as_str().unwrap_or_default();
    assert!(warning.starts_with("the catalog expired on"), "{api:#}");
    assert!(api["catalog_expires_at"].as_u64().expect("expiry") > 0);
    let (_, page) = running.page("/status", "en");
    assert!(page.contains("catalog-expired") && page.contains("check the link to the origin"));
    assert_eq!(
        lesson_page(&running, "math"),
        (200, "<p>offline lesson</p>".to_owned())
    );
}

/// Issue 13: an edge pinned to the first key follows a rotation in one sync,
/// then refuses a catalog signed by the retired key, and one signed by an
/// unrelated key.
#[test]
fn issue_13_an_edge_follows_a_key_rotation_and_refuses_retired_and_unrelated_keys() {
    let origin = TestOrigin::init();
    let math = course(&origin, "math", "<p>one</p>");
    origin.publish(&math);
    let served = origin.serve();
    let token = origin.add_edge("school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    // Someone keeps a copy of the origin from before the rotation (the retired key with it).
    let before = origin.dir.path().join("before-rotation");
    copy_dir(&origin.data(), &before);

    let out = run_ok(&["origin", "rotate-key", "--data", &origin.data_str()]);
    let new_key = out
        .lines()
        .find_map(|l| l.strip_prefix("origin key: "))
        .expect("new key")
        .to_owned();
    assert_ne!(new_key, origin.key);
    assert!(out.contains("key root version 1"), "{out}");
    write(&math, "01/index.html", b"<p>two</p>");
    origin.publish(&math);
    let report = edge.sync_ok();
    assert_eq!(report["catalog_updated"], true, "{report:#}");
    let running = edge.run();
    assert_eq!(
        lesson_page(&running, "math"),
        (200, "<p>two</p>".to_owned())
    );
    drop(running);
    let held = sequence_of(&edge.data());

    // The retired key signs a catalog with a much higher sequence.
    let retired = TestOrigin {
        dir: tempfile::tempdir().expect("tempdir"),
        key: origin.key.clone(),
    };
    copy_dir(&before, &retired.data());
    run_ok(&[
        "origin",
        "renew",
        "--data",
        &retired.data_str(),
        "--min-sequence",
        "100",
    ]);
    let retired_served = retired.serve();
    repoint(&edge, &addrs(&served), &retired_served);
    let (code, report, stderr) = edge.sync();
    assert_ne!(code, 0, "{report:#}");
    assert!(
        stderr.contains("signed by a key retired by rotation (key root version 0; this edge has accepted version 1)"),
        "{stderr}"
    );
    assert_eq!(sequence_of(&edge.data()), held, "nothing was stored");

    // An unrelated key, behind the same certificate.
    let stranger = TestOrigin::init();
    std::fs::remove_dir_all(stranger.data().join("tls")).expect("rm tls");
    copy_dir(&origin.data().join("tls"), &stranger.data().join("tls"));
    std::fs::copy(
        origin.data().join("edges.toml"),
        stranger.data().join("edges.toml"),
    )
    .expect("the edge's token");
    run_ok(&[
        "origin",
        "renew",
        "--data",
        &stranger.data_str(),
        "--min-sequence",
        "200",
    ]);
    let stranger_served = stranger.serve();
    repoint(&edge, &addrs(&retired_served), &stranger_served);
    let (code, _, stderr) = edge.sync();
    assert_ne!(code, 0);
    assert!(
        stderr.contains(&format!(
            "catalog signature does not verify against the pinned origin key {}",
            origin.key
        )),
        "{stderr}"
    );
    assert_eq!(sequence_of(&edge.data()), held, "nothing was stored");
}

/// Issue 13: an origin restored from an older backup is refused as a
/// rollback, over QUIC and over the HTTPS fallback, with the hint; after
/// `origin renew --min-sequence`, edges accept it again.
#[test]
fn issue_13_a_restored_origin_is_a_refused_rollback_until_renewed_with_a_floor() {
    let origin = TestOrigin::init();
    let math = course(&origin, "math", "<p>v1</p>");
    origin.publish(&math);
    let token = origin.add_edge("school");
    let backup = origin.dir.path().join("backup");
    copy_dir(&origin.data(), &backup);
    for page in ["<p>v2</p>", "<p>v3</p>"] {
        write(&math, "01/index.html", page.as_bytes());
        origin.publish(&math);
    }
    let served = origin.serve();
    let fallback = format!("https://{}", served.https);
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--fallback", &fallback],
    );
    let report = edge.sync_ok();
    let held = report["sequence"].as_u64().expect("sequence");
    let old = addrs(&served);
    served.stop();

    // The origin's disk dies; the administrator restores last month's backup.
    std::fs::remove_dir_all(origin.data()).expect("rm origin");
    copy_dir(&backup, &origin.data());
    let restored = origin.serve();
    repoint(&edge, &old, &restored);
    let hint = format!(
        "run `shanlu origin renew --min-sequence {}` on it",
        held + 1
    );
    for transport in ["quic", "http"] {
        let (code, report, stderr) =
            edge.sync_with(shanlu_tests::shanlu(), &["--transport", transport]);
        assert_ne!(code, 0, "{transport}: {report:#}");
        assert!(
            stderr.contains("(a rollback); nothing was stored") && stderr.contains(&hint),
            "{transport}: {stderr}"
        );
        assert_eq!(sequence_of(&edge.data()), held, "{transport}");
    }

    let out = run_ok(&[
        "origin",
        "renew",
        "--data",
        &origin.data_str(),
        "--min-sequence",
        &(held + 1).to_string(),
    ]);
    assert!(
        out.contains(&format!("catalog sequence {}", held + 1)),
        "{out}"
    );
    for transport in ["http", "quic"] {
        let (code, report, stderr) =
            edge.sync_with(shanlu_tests::shanlu(), &["--transport", transport]);
        assert_eq!(code, 0, "{transport}: {report:#} {stderr}");
    }
    assert_eq!(sequence_of(&edge.data()), held + 1);
    let running = edge.run();
    assert_eq!(lesson_page(&running, "math"), (200, "<p>v1</p>".to_owned()));
}
