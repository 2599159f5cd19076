//! Unit tests of withdraw, revert, renew and key rotation (issue 13).

use super::*;
use catalog::store::ImportMode;

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn publish(origin: &Origin, src: &Path) -> crate::PublishReport {
    crate::publish(
        origin,
        src,
        ImportMode::Rehash,
        &indicatif::ProgressBar::hidden(),
    )
    .expect("publish")
}

fn in_force(origin: &Origin) -> Catalog {
    origin
        .store()
        .signed_catalog()
        .expect("store")
        .expect("catalog")
        .verify(&origin.public_key())
        .expect("verifies")
}

fn new_origin() -> (tempfile::TempDir, Origin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin_dir = dir.path().join("origin");
    Origin::init(&origin_dir).expect("init");
    let origin = Origin::open(&origin_dir).expect("open");
    (dir, origin)
}

#[test]
fn issue_13_withdraw_leaves_a_tombstone_and_a_republish_clears_it() {
    let (dir, origin) = new_origin();
    let src = dir.path().join("math");
    write(&src, "01-count/index.html", b"<p>one</p>");
    let first = publish(&origin, &src);
    let report = withdraw(&origin, "math", "replaced by math-2").expect("withdraw");
    assert_eq!(report.sequence, first.sequence + 1);
    let catalog = in_force(&origin);
    assert!(!catalog.courses.contains_key("math"));
    let tombstone = &catalog.withdrawn["math"];
    assert_eq!(tombstone.reason, "replaced by math-2");
    assert_eq!(tombstone.last_version, 1);
    assert!(catalog.expires_at > catalog.published_at);

    let again = withdraw(&origin, "math", "").expect_err("already withdrawn");
    assert!(
        matches!(again, WithdrawError::AlreadyWithdrawn { .. }),
        "{again}"
    );
    let unknown = withdraw(&origin, "nope", "").expect_err("unknown");
    assert!(unknown.to_string().contains("nope"), "{unknown}");
    let long = withdraw(&origin, "math", &"x".repeat(600)).expect_err("too long");
    assert!(matches!(long, WithdrawError::ReasonTooLong { len: 600 }));

    write(&src, "01-count/index.html", b"<p>one again</p>");
    let back = publish(&origin, &src);
    assert_eq!(
        back.course_version, 2,
        "versions only go up across a withdrawal"
    );
    let catalog = in_force(&origin);
    assert!(catalog.withdrawn.is_empty());
    assert_eq!(catalog.courses["math"].version, 2);
    let history: Vec<_> = origin
        .store()
        .catalog_history()
        .expect("history")
        .into_iter()
        .filter_map(|(sequence, _)| sequence)
        .collect();
    assert_eq!(history, vec![0, 1, 2, 3], "every catalog is in the history");
}

#[test]
fn issue_13_revert_points_a_new_version_at_old_content_without_storing_a_blob() {
    let (dir, origin) = new_origin();
    let src = dir.path().join("math");
    write(&src, "01-count/index.html", b"<p>version one</p>");
    publish(&origin, &src);
    write(&src, "01-count/index.html", b"<p>version two, broken</p>");
    publish(&origin, &src);
    let blobs = origin.store().blob_count().expect("count");

    let report = revert(&origin, "math", 1).expect("revert");
    assert_eq!(report.version, Some(3));
    assert_eq!(
        origin.store().blob_count().expect("count"),
        blobs,
        "no blob written"
    );
    let catalog = in_force(&origin);
    let course = origin
        .store()
        .require_object(&catalog.courses["math"].hash)
        .expect("course")
        .into_course()
        .expect("a course");
    assert_eq!(course.version, 3);
    let lesson = origin
        .store()
        .require_object(&course.lessons[0].hash)
        .expect("lesson")
        .into_lesson()
        .expect("a lesson");
    assert_eq!(lesson.files[0].blob, Hash::of(b"<p>version one</p>"));

    let unknown = revert(&origin, "math", 9).expect_err("no version 9");
    assert_eq!(
        unknown.to_string(),
        "the catalog history holds no version 9 of course math; it holds version(s) 1, 2, 3"
    );
    let course = revert(&origin, "nope", 1).expect_err("no such course");
    assert!(
        matches!(course, RevertError::UnknownCourse { .. }),
        "{course}"
    );
    let same = revert(&origin, "math", 3).expect_err("already current");
    assert!(matches!(same, RevertError::AlreadyCurrent { .. }), "{same}");
}

#[test]
fn issue_13_revert_to_a_collected_version_says_to_publish_it_again() {
    let (dir, origin) = new_origin();
    let src = dir.path().join("math");
    write(&src, "01-count/index.html", b"<p>version one</p>");
    publish(&origin, &src);
    write(&src, "01-count/index.html", b"<p>version two</p>");
    publish(&origin, &src);
    // Remove v1's page as `origin gc --keep-versions 1` would, keeping the history rows.
    let v1 = Hash::of(b"<p>version one</p>");
    crate::gc::gc(&origin, 1, false, &indicatif::ProgressBar::hidden()).expect("gc");
    assert!(!origin.store().has_blob(&v1).expect("has"));
    let err = revert(&origin, "math", 1).expect_err("collected");
    let text = err.to_string();
    assert!(matches!(err, RevertError::UnknownVersion { .. }), "{text}");
    assert!(text.contains("it holds version(s) 2"), "{text}");
    assert!(text.contains("shanlu origin gc"), "{text}");
    assert!(text.contains("shanlu publish DIR"), "{text}");
}

#[test]
fn issue_13_renew_re_signs_with_a_fresh_expiry_and_honours_the_floor() {
    let (_dir, origin) = new_origin();
    let first = in_force(&origin);
    assert!(first.expires_at > 0, "init signs with an expiry");
    let report = renew(&origin, None).expect("renew");
    assert_eq!(report.sequence, 1);
    let report = renew(&origin, Some(40)).expect("renew with a floor");
    assert_eq!(report.sequence, 40);
    let report = renew(&origin, Some(10)).expect("a lower floor changes nothing");
    assert_eq!(report.sequence, 41);
    assert_eq!(origin.sequence_floor().expect("floor"), 40);
    assert!(
        renew_if_due(origin.dir()).expect("check").is_none(),
        "a fresh catalog is not renewed"
    );
}

#[test]
fn issue_13_a_rotation_is_followed_from_the_first_key_and_survives_reopening() {
    let (dir, mut origin) = new_origin();
    let first_key = origin.public_key();
    let src = dir.path().join("math");
    write(&src, "01-count/index.html", b"<p>one</p>");
    publish(&origin, &src);
    let report = rotate_key(&mut origin).expect("rotate");
    assert_eq!(report.root_version, Some(1));
    assert_ne!(origin.public_key(), first_key);
    assert!(!dir.path().join("origin/origin.key.next").exists());
    let reopened = Origin::open(origin.dir()).expect("reopen");
    assert_eq!(reopened.public_key(), origin.public_key());
    assert_eq!(
        crate::origin::read_public_key(origin.dir()).expect("toml"),
        Some(origin.public_key())
    );
    // Publishing after a rotation signs with the new key and keeps the chain.
    write(&src, "01-count/index.html", b"<p>two</p>");
    publish(&reopened, &src);
    rotate_key(&mut Origin::open(origin.dir()).expect("open")).expect("second rotation");
    let signed = reopened
        .store()
        .signed_catalog()
        .expect("store")
        .expect("catalog");
    assert_eq!(signed.roots.len(), 2);
    let (catalog, followed) = signed.verify_followed(&first_key).expect("follows");
    assert_eq!(followed.version, 2);
    assert_eq!(catalog.courses["math"].version, 2);
}

#[test]
fn issue_13_an_interrupted_rotation_is_finished_or_dropped_on_open() {
    let (_dir, origin) = new_origin();
    let old = origin.public_key();
    // A key written but never committed: dropped.
    let stray = OriginKey::generate().expect("key");
    crate::origin::write_secret(
        &origin.dir().join("origin.key.next"),
        &hex::encode(stray.to_bytes()),
    )
    .expect("write");
    let reopened = Origin::open(origin.dir()).expect("open");
    assert_eq!(reopened.public_key(), old);
    assert!(!origin.dir().join("origin.key.next").exists());
}
