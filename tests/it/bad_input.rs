//! Bad course folders get a clear error naming the path, and the catalog in force stays.

use std::path::{Path, PathBuf};

use shanlu_tests::{TestOrigin, run_err};

/// An origin with one good course published (sequence 1).
fn origin_with_course() -> (TestOrigin, PathBuf) {
    let origin = TestOrigin::init();
    let good = origin.dir.path().join("good");
    write(&good, "01-intro/index.html", "<p>hello</p>");
    origin.publish(&good);
    let bad = origin.dir.path().join("bad-course");
    write(&bad, "01-ok/index.html", "<p>fine</p>");
    (origin, bad)
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Publishing `bad` fails with every `needles` in stderr; the catalog is untouched.
fn refused(origin: &TestOrigin, bad: &Path, needles: &[&str]) {
    let before = origin.ls();
    let stderr = run_err(&[
        "publish",
        bad.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ]);
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("the catalog in force is unchanged"),
        "{stderr}"
    );
    let after = origin.ls();
    assert_eq!(after, before, "a refused publish changed the catalog");
    assert_eq!(after["sequence"], 1);
}

#[test]
fn entry_with_dot_dot_is_refused() {
    let (origin, bad) = origin_with_course();
    write(&bad, "01-ok/lesson.toml", "entry = \"../../secret.html\"\n");
    refused(
        &origin,
        &bad,
        &["lesson.toml", "../../secret.html", "without `..`"],
    );
}

#[test]
fn absolute_entry_is_refused() {
    let (origin, bad) = origin_with_course();
    write(&bad, "01-ok/lesson.toml", "entry = \"/etc/passwd\"\n");
    refused(&origin, &bad, &["lesson.toml", "/etc/passwd"]);
}

#[test]
fn missing_entry_is_refused() {
    let (origin, bad) = origin_with_course();
    write(&bad, "01-ok/lesson.toml", "entry = \"nope.html\"\n");
    refused(
        &origin,
        &bad,
        &["lesson.toml", "nope.html", "not a file in this lesson"],
    );
}

#[test]
fn symlink_leaving_the_folder_is_refused() {
    let (origin, bad) = origin_with_course();
    std::os::unix::fs::symlink("/etc/hostname", bad.join("01-ok/leak.txt")).expect("symlink");
    refused(
        &origin,
        &bad,
        &["leak.txt", "leads outside the course folder"],
    );
}

#[test]
fn symlink_inside_the_folder_is_published_as_its_target() {
    let origin = TestOrigin::init();
    let course = origin.dir.path().join("linked");
    write(&course, "01-a/index.html", "<p>shared page</p>");
    std::fs::create_dir_all(course.join("02-b")).expect("mkdir");
    std::os::unix::fs::symlink("../01-a/index.html", course.join("02-b/index.html"))
        .expect("symlink");
    let report = origin.publish(&course);
    assert_eq!(report["files"], 2);
    assert_eq!(report["new_blobs"], 1, "the linked file is the same blob");
}

#[test]
fn a_pipe_is_refused_as_not_a_regular_file() {
    let (origin, bad) = origin_with_course();
    let fifo = bad.join("01-ok/pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    refused(&origin, &bad, &["pipe", "not a regular file"]);
}

#[test]
fn a_name_that_is_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let (origin, bad) = origin_with_course();
    let name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.html");
    std::fs::write(bad.join("01-ok").join(name), "x").expect("write");
    refused(&origin, &bad, &["bad-", "not valid UTF-8"]);
}

#[test]
fn malformed_toml_is_refused_with_line_and_column() {
    let (origin, bad) = origin_with_course();
    write(
        &bad,
        "course.toml",
        "subject = \"math\"\ntitle = { zh = \"数学\" \n",
    );
    refused(&origin, &bad, &["course.toml", "line 2, column"]);
}

#[test]
fn misspelled_toml_key_is_refused() {
    let (origin, bad) = origin_with_course();
    write(&bad, "01-ok/lesson.toml", "[titel]\nzh = \"数学\"\n");
    refused(&origin, &bad, &["lesson.toml", "titel", "line 1"]);
}

#[test]
fn duplicate_lesson_ids_are_refused() {
    let (origin, bad) = origin_with_course();
    write(&bad, "02-other/index.html", "<p>other</p>");
    write(&bad, "02-other/lesson.toml", "id = \"01-ok\"\n");
    refused(&origin, &bad, &["01-ok", "02-other", "both have the id"]);
}

#[test]
fn an_empty_course_is_refused() {
    let (origin, _) = origin_with_course();
    let empty = origin.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    std::fs::write(empty.join("course.toml"), "subject = \"art\"\n").expect("write");
    refused(&origin, &empty, &["empty", "has no lessons"]);
}

#[test]
fn an_empty_lesson_is_refused() {
    let (origin, bad) = origin_with_course();
    std::fs::create_dir_all(bad.join("02-empty")).expect("mkdir");
    refused(&origin, &bad, &["02-empty", "has no files"]);
}

#[test]
fn a_missing_folder_or_origin_says_what_to_do() {
    let (origin, _) = origin_with_course();
    let missing = origin.dir.path().join("no-such-course");
    refused(&origin, &missing, &["no-such-course"]);
    let not_origin = origin.dir.path().join("not-an-origin");
    let stderr = run_err(&[
        "publish",
        missing.to_str().expect("utf-8"),
        "--data",
        not_origin.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("shanlu origin init"), "{stderr}");
}

/// Issue 11: a name too long for the file system says so, instead of
/// "check its permissions", and the catalog in force stays.
#[test]
fn a_name_too_long_says_so_not_permissions() {
    let (origin, _) = origin_with_course();
    let long = origin.dir.path().join("课".repeat(100));
    refused(&origin, &long, &["too long"]);
    let stderr = run_err(&[
        "publish",
        long.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ]);
    assert!(!stderr.contains("permissions"), "{stderr}");
}
