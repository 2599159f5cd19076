//! Issue 11 ("Hardening"), defect 1: `publish` never reads outside the course
//! folder, never publishes the origin's own files, keeps the origin key
//! owner-only; and a broken `edges.toml` is reported as the origin's fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shanlu_tests::{TestEdge, TestOrigin, run, run_err, shanlu};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// Every blob file in a data folder's store.
fn blobs(data: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![data.join("store/blobs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read blobs folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// The BLAKE3 published for `lesson/path` in the catalog in force, if any.
fn published_hash(origin: &TestOrigin, lesson: &str, path: &str) -> Option<String> {
    let listing = origin.ls();
    let lessons = listing["courses"][0]["lessons"].as_array()?.clone();
    let lesson = lessons.iter().find(|l| l["id"] == lesson)?;
    let file = lesson["files"]
        .as_array()?
        .iter()
        .find(|f| f["path"] == path)?;
    file["blake3"].as_str().map(str::to_owned)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Issue 11: while another process swaps a lesson file between a regular
/// file and a symlink to the origin's `origin.key`, `publish --rehash` either
/// publishes the real lesson file or fails with a clear message; the key's
/// bytes never reach the store. (Before the fix, 21 of 100 runs stored them.)
#[test]
fn issue_11_a_file_swapped_with_a_symlink_to_the_origin_key_never_publishes_the_key() {
    let origin = TestOrigin::init();
    let key_path = origin.data().join("origin.key");
    let key_bytes = std::fs::read(&key_path).expect("read the key");
    let key_hash = blake3::hash(&key_bytes).to_hex().to_string();
    let course = origin.dir.path().join("swapped");
    let lesson_text = b"<p>the real lesson notes</p>".to_vec();
    let lesson_hash = blake3::hash(&lesson_text).to_hex().to_string();
    write(&course, "01-lesson/index.html", b"<h1>lesson</h1>");
    write(&course, "01-lesson/notes.html", &lesson_text);

    // The attacker: renames a symlink to the key, then a regular file, over
    // notes.html, as fast as it can, until told to stop (or 60 s at most).
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let attacker = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let folder = course.join("01-lesson");
        let (key_path, lesson_text) = (key_path.clone(), lesson_text.clone());
        std::thread::spawn(move || {
            let target = folder.join("notes.html");
            let (link, file) = (folder.join(".link"), folder.join(".file"));
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&key_path, &link).expect("symlink");
                std::fs::rename(&link, &target).expect("swap in the symlink");
                std::fs::write(&file, &lesson_text).expect("write");
                std::fs::rename(&file, &target).expect("swap in the file");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let (mut published, mut refused) = (0, 0);
    let started = Instant::now();
    for _ in 0..100 {
        if started.elapsed() > Duration::from_secs(10) {
            break;
        }
        let output = run(&[
            "publish",
            course.to_str().expect("utf-8"),
            "--data",
            &origin.data_str(),
            "--rehash",
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if output.status.success() {
            published += 1;
            assert_eq!(
                published_hash(&origin, "01-lesson", "notes.html").as_deref(),
                Some(lesson_hash.as_str()),
                "a successful publish published the real notes"
            );
        } else {
            refused += 1;
            assert!(
                stderr.contains("notes.html")
                    && (stderr.contains("changed while")
                        || stderr.contains("leads outside the course folder")),
                "a refused publish names the file and why:\n{stderr}"
            );
            assert!(
                stderr.contains("the catalog in force is unchanged"),
                "{stderr}"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().expect("attacker thread");
    eprintln!(
        "issue 11 swap loop: {published} published, {refused} refused, {} swaps in {:.1?}",
        swaps.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(published + refused > 0);
    assert!(swaps.load(Ordering::Relaxed) > 0, "the attacker ran");

    for blob in blobs(&origin.data()) {
        let bytes = std::fs::read(&blob).expect("read blob");
        assert_ne!(bytes, key_bytes, "{} holds the origin key", blob.display());
        assert_ne!(
            blob.file_name().and_then(|n| n.to_str()),
            Some(key_hash.as_str())
        );
    }
    let listing = serde_json::to_string(&origin.ls()).expect("json");
    assert!(!listing.contains(&key_hash), "the key is in the catalog");
}

/// Publishing refuses `bad` with every needle in stderr, and the catalog stays at `sequence`.
fn refused(origin: &TestOrigin, data: &str, bad: &Path, needles: &[&str], sequence: u64) {
    let stderr = run_err(&["publish", bad.to_str().expect("utf-8"), "--data", data]);
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    assert_eq!(origin.ls()["sequence"], sequence);
}

/// Issue 11: the origin key under another name (a hard link) is not published.
#[test]
fn issue_11_a_hard_link_to_the_origin_key_is_refused() {
    let origin = TestOrigin::init();
    let course = origin.dir.path().join("linked");
    write(&course, "01-lesson/index.html", b"<p>hello</p>");
    std::fs::hard_link(
        origin.data().join("origin.key"),
        course.join("01-lesson/key.txt"),
    )
    .expect("hard link");
    refused(
        &origin,
        &origin.data_str(),
        &course,
        &["key.txt", "the origin's own file", "origin.key"],
        0,
    );
    assert!(blobs(&origin.data()).is_empty(), "nothing was stored");
}

/// Issue 11: a course folder inside the origin's data folder, or holding it, is refused.
#[test]
fn issue_11_a_course_folder_inside_or_holding_the_origin_data_folder_is_refused() {
    let origin = TestOrigin::init();
    let inside = origin.data().join("courses/maths");
    write(&inside, "01-lesson/index.html", b"<p>hello</p>");
    refused(
        &origin,
        &origin.data_str(),
        &inside,
        &["courses/maths", "inside the origin's data folder"],
        0,
    );

    // An origin whose data folder sits (hidden) in the course folder.
    let course = origin.dir.path().join("holder");
    write(&course, "01-lesson/index.html", b"<p>hello</p>");
    let data = course.join(".origin");
    let out = run(&["origin", "init", "--data", data.to_str().expect("utf-8")]);
    assert!(out.status.success(), "origin init");
    let stderr = run_err(&[
        "publish",
        course.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
    ]);
    assert!(
        stderr.contains("holds the origin's data folder") && stderr.contains(".origin"),
        "{stderr}"
    );
}

/// Issue 11: `origin init` writes the key owner-only (0600); a key loosened
/// later is made owner-only again the next time the origin opens it, with a warning.
#[test]
fn issue_11_the_origin_key_stays_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let origin = TestOrigin::init();
    let key_path = origin.data().join("origin.key");
    assert_eq!(mode(&key_path), 0o600);
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let course = origin.dir.path().join("course");
    write(&course, "01-lesson/index.html", b"<p>hello</p>");
    let output = run(&[
        "publish",
        course.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(mode(&key_path), 0o600, "the key is owner-only again");
    assert!(
        stderr.contains("origin.key") && stderr.contains("readable by others"),
        "a warning names the key:\n{stderr}"
    );
}

/// Issue 11 (weak point): a broken `edges.toml` on the origin makes edges
/// hear that the origin's configuration is broken, not that their token is
/// bad, over QUIC and over the HTTPS fallback; the origin logs it naming the file.
#[test]
fn issue_11_a_broken_edges_toml_is_reported_as_the_origins_fault() {
    let origin = TestOrigin::init();
    let course = origin.dir.path().join("course");
    write(&course, "01-lesson/index.html", b"<p>hello</p>");
    origin.publish(&course);
    let served = origin.serve();
    let token = origin.add_edge("school");
    let fallback = format!("https://{}", served.https);
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--fallback", &fallback],
    );
    edge.sync_ok();

    std::fs::write(
        origin.data().join("edges.toml"),
        "[edges.school\ntoken_b3 = ",
    )
    .expect("break edges.toml");
    for transport in ["quic", "http"] {
        let (code, _, stderr) = edge.sync_with(shanlu(), &["--transport", transport]);
        assert_ne!(code, 0, "{transport}: the sync fails");
        assert!(
            stderr.contains("the origin's configuration is broken")
                && stderr.contains("edges.toml"),
            "{transport}: the edge says the origin is at fault:\n{stderr}"
        );
        assert!(
            !stderr.contains("ask the administrator for a new one"),
            "{transport}: the edge is not told its token is bad:\n{stderr}"
        );
    }
    let log = served.log_text();
    assert!(
        log.contains("edges.toml") && log.contains("configuration is broken"),
        "the origin logs the broken file:\n{log}"
    );
}
