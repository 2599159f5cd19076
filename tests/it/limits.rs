//! Issue 11, metadata limits: a publish refuses metadata that could not be
//! served (over the sync protocol's frame limit) or is malformed (language
//! tags), naming the path and the limit; the catalog in force stays, and an
//! edge still syncs it.

use std::path::Path;

use shanlu_tests::{TestEdge, TestOrigin, run_err};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A course in Chinese, Yi and Tibetan with region and script subtags, all within limits.
fn good_course(root: &Path) {
    write(
        root,
        "course.toml",
        "languages = [\"zh-Hans\", \"ii\", \"bo-CN\"]\ntags = [\"数学\", \"grade-3\"]\n\
         [title]\nzh-Hans = \"三年级数学\"\nii = \"ꌕꂷ\"\nbo-CN = \"གྲངས་རིག\"\n\
         [description]\nzh-Hans = \"数数和加法\"\n"
            .as_bytes(),
    );
    write(root, "01-counting/index.html", "<h1>数数</h1>".as_bytes());
    write(
        root,
        "01-counting/lesson.toml",
        "languages = [\"zh-Hans\", \"en\"]\n[summary]\nen = \"Count to ten.\"\n".as_bytes(),
    );
    write(root, "02-adding/worksheet.txt", b"1 + 1 = 2\n");
}

/// An origin with `good_course` published from `DIR/math` (sequence 1).
fn origin_with_course() -> (TestOrigin, std::path::PathBuf) {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    good_course(&src);
    let report = origin.publish(&src);
    assert_eq!(report["sequence"], 1);
    (origin, src)
}

/// Publishing `folder` fails (non-zero exit) with every one of `needles` in
/// stderr, and the catalog in force is the one before.
fn refused(origin: &TestOrigin, folder: &Path, needles: &[&str]) -> String {
    let before = origin.ls();
    let stderr = run_err(&[
        "publish",
        folder.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ]);
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            stderr.chars().take(2000).collect::<String>()
        );
    }
    assert!(
        stderr.contains("the catalog in force is unchanged"),
        "{stderr}"
    );
    assert!(stderr.len() < 4096, "the error is short: {stderr}");
    assert_eq!(origin.ls(), before, "a refused publish changed the catalog");
    stderr
}

/// Issue 11: a course.toml with a 20 MB description is refused at publish
/// (exit non-zero, course.toml and the limit named); the catalog in force
/// stays at sequence 1, and an edge syncs it with every file byte-identical.
#[test]
fn issue_11_twenty_megabyte_description_is_refused_and_the_old_catalog_still_syncs() {
    let (origin, src) = origin_with_course();
    let served = origin.serve();
    let token = origin.add_edge("school-1");

    let big = "a".repeat(20 * 1024 * 1024);
    write(
        &src,
        "course.toml",
        format!("[title]\nen = \"Math\"\n[description]\nen = \"{big}\"\n").as_bytes(),
    );
    let course_toml = src.join("course.toml");
    refused(
        &origin,
        &src,
        &[
            &format!(
                "{} is over a limit: the file is larger than 1048576 bytes",
                course_toml.display()
            ),
            "move long text into a file of a lesson",
        ],
    );
    // Under the file's limit, the description's own limit names itself.
    let long = "ꆈ".repeat(16_385);
    write(
        &src,
        "course.toml",
        format!("[title]\nen = \"Math\"\n[description]\nii = \"{long}\"\n").as_bytes(),
    );
    refused(
        &origin,
        &src,
        &[
            &format!(
                "{} is over a limit: description in ii",
                course_toml.display()
            ),
            "description in ii is 16385 characters long; the limit is 16384 characters",
        ],
    );
    assert_eq!(origin.ls()["sequence"], 1);
    assert!(
        shanlu_tests::run_ok(&["verify", &origin.data_str()]).contains("all good"),
        "the origin's store verifies after the refusal"
    );

    // The catalog in force (the good course) syncs to a new edge.
    good_course(&src);
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let report = edge.sync_ok();
    assert_eq!(report["complete"], true);
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["files_held"], 2);
    let listing = edge.ls();
    let course = &listing["courses"][0];
    assert_eq!(course["id"], "math");
    assert_eq!(
        course["languages"],
        serde_json::json!(["zh-Hans", "ii", "bo-CN"])
    );
    for (lesson, path) in [
        (0, "01-counting/index.html"),
        (1, "02-adding/worksheet.txt"),
    ] {
        let file = &course["lessons"][lesson]["files"][0];
        assert_eq!(file["held"], true);
        assert_eq!(
            std::fs::read(edge.blob_path(file["blake3"].as_str().expect("hash"))).expect("blob"),
            std::fs::read(src.join(path)).expect("source"),
            "{path}"
        );
    }
}

/// Issue 11: a lesson with more files than the limit is refused before any
/// file is stored, naming the lesson folder and the limit.
#[test]
fn issue_11_lesson_with_too_many_files_is_refused() {
    let (origin, src) = origin_with_course();
    let lesson = src.join("03-many");
    std::fs::create_dir_all(&lesson).expect("mkdir");
    for n in 0..=10_000 {
        std::fs::write(lesson.join(format!("page-{n:05}.txt")), n.to_string()).expect("write");
    }
    refused(
        &origin,
        &src,
        &[
            &format!(
                "{} is over a limit: the lesson has 10001 files; the limit is 10000",
                lesson.display()
            ),
            "split the lesson",
        ],
    );
}

/// Issue 11: a file over the size limit (sparse, so the test stays small) is
/// refused before it is read, naming the file.
#[test]
fn issue_11_file_over_the_size_limit_is_refused() {
    let (origin, src) = origin_with_course();
    let huge = src.join("02-adding/huge.mp4");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(4 * 1024 * 1024 * 1024 + 1)
        .expect("sparse file");
    refused(
        &origin,
        &src,
        &[
            &format!(
                "{} is over a limit: file huge.mp4 is 4294967297 bytes",
                huge.display()
            ),
            "the limit is 4294967296 bytes",
        ],
    );
}

/// Issue 11: language tags that are empty, 10,000 characters long or hold a
/// NUL are refused, naming the toml file and the tag.
#[test]
fn issue_11_malformed_language_tags_are_refused() {
    let (origin, src) = origin_with_course();
    let lesson_toml = src.join("01-counting/lesson.toml");
    let course_toml = src.join("course.toml");
    let long = "a".repeat(10_000);
    let cases: [(&Path, String, &[&str]); 4] = [
        (
            &lesson_toml,
            "[title]\n\"\" = \"数数\"\n".into(),
            &["title: language tag \"\"", "it is empty"],
        ),
        (
            &lesson_toml,
            format!("languages = [\"{long}\"]\n"),
            &[
                "languages: language tag \"aaaa",
                "10000 characters long; the limit is 35",
            ],
        ),
        (
            &course_toml,
            "languages = [\"zh\\u0000\"]\n".into(),
            &["languages: language tag \"zh\\0\"", "'\\0' is not allowed"],
        ),
        (
            &course_toml,
            "[description]\nzh_CN = \"数学\"\n".into(),
            &["description: language tag \"zh_CN\"", "such as zh, ii, bo"],
        ),
    ];
    for (toml, text, needles) in cases {
        good_course(&src);
        write(
            &src,
            &toml.strip_prefix(&src).expect("inside").to_string_lossy(),
            text.as_bytes(),
        );
        let stderr = refused(&origin, &src, needles);
        assert!(
            stderr.contains(&toml.display().to_string()),
            "the error names {}:\n{stderr}",
            toml.display()
        );
        assert!(
            !stderr.contains(&"a".repeat(100)),
            "the long tag is shortened"
        );
    }
}

/// Issue 11: an edge that is offered an object over the frame limit (as an
/// origin before the limits could publish) fails the sync with an error that
/// names the object's hash, and keeps the catalog it holds.
#[test]
fn issue_11_an_over_limit_object_fails_the_sync_naming_its_hash_and_the_edge_keeps_its_catalog() {
    use catalog::store::{ImportBatch, StoreError};
    use catalog::{CatalogEntry, Course, LocalizedText, Object};

    let (origin, src) = origin_with_course();
    let token = origin.add_edge("school-1");
    let served = origin.serve();
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    assert_eq!(edge.sync_ok()["sequence"], 1);
    let quic = served.quic.to_string();
    served.stop();

    // Store an over-limit course and a catalog naming it, bypassing `publish`.
    let hash = {
        let data = server::Origin::open(&origin.data()).expect("open the origin");
        let object = Object::Course(Course {
            id: "huge".into(),
            version: 1,
            title: LocalizedText::single("en", "Huge"),
            description: LocalizedText::single("en", "a".repeat(20 * 1024 * 1024)),
            subject: None,
            grade: None,
            languages: vec![],
            tags: vec![],
            files: vec![],
            lessons: vec![],
        });
        let mut batch = ImportBatch::new();
        let hash = batch.add_object(&object);
        let (key, public) = (data.key(), data.public_key());
        data.store()
            .commit_batch_with_catalog(batch, |held| {
                let mut catalog = held
                    .expect("a catalog is in force")
                    .verify(&public)
                    .expect("signed by this origin");
                catalog.sequence += 1;
                catalog.courses.insert(
                    "huge".into(),
                    CatalogEntry {
                        hash,
                        version: 1,
                        total_size: 0,
                    },
                );
                Ok::<_, StoreError>(Some(key.sign(&catalog)))
            })
            .expect("commit");
        hash
    };

    let _served = origin.serve_on(&quic);
    let (code, _report, stderr) = edge.sync();
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("the answer for object {hash}")) && stderr.contains("limit"),
        "{stderr}"
    );
    let listing = edge.ls();
    assert_eq!(listing["sequence"], 1, "the edge keeps the catalog it held");
    let file = &listing["courses"][0]["lessons"][0]["files"][0];
    assert_eq!(
        std::fs::read(edge.blob_path(file["blake3"].as_str().expect("hash"))).expect("blob"),
        std::fs::read(src.join("01-counting/index.html")).expect("source")
    );
}
