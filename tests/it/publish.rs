//! Publishing a course folder, listing it and verifying the store.

use std::path::Path;

use serde_json::Value;
use shanlu_tests::{TestOrigin, generated, run, run_ok};

const BIG: usize = 50 * 1024 * 1024;

/// A course with Chinese, Yi and Tibetan names, nested folders, an empty file and a 50 MB video.
fn write_course(root: &Path) {
    let files: &[(&str, Vec<u8>)] = &[
        ("course.toml", "subject = \"math\"\ngrade = 3\n[title]\nzh = \"三年级数学\"\nen = \"Grade 3 mathematics\"\n".into()),
        ("cover.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec()),
        ("01-数数/index.html", "<h1>数数</h1><img src='img/苹果.svg'>".into()),
        ("01-数数/img/苹果.svg", b"<svg/>".to_vec()),
        ("01-数数/img/deep/nested/空.txt", Vec::new()),
        ("01-数数/counting.mp4", generated(BIG, 50)),
        ("02-ꆈꌠꁱꂷ/ꆈꌠ.html", "<p>ꆈꌠꁱꂷ</p>".into()),
        ("02-ꆈꌠꁱꂷ/lesson.toml", "entry = \"ꆈꌠ.html\"\ntags = [\"yi\"]\n[title]\nii = \"ꆈꌠꁱꂷ\"\nzh = \"彝文\"\n".into()),
        ("10-བོད་ཡིག/སློབ་ཚན.pdf", generated(70_000, 7)),
        ("10-བོད་ཡིག/ཀ་ཁ/ཀ.txt", "ཀ་ཁ་ག་ང་".into()),
    ];
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
}

fn lesson<'a>(course: &'a Value, id: &str) -> &'a Value {
    course["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .find(|lesson| lesson["id"] == id)
        .unwrap_or_else(|| panic!("lesson {id} listed"))
}

#[test]
fn publish_list_and_verify_a_multilingual_course() {
    let origin = TestOrigin::init();
    let course_dir = origin.dir.path().join("grade3-math");
    write_course(&course_dir);

    let report = origin.publish(&course_dir);
    assert_eq!(report["course_id"], "grade3-math");
    assert_eq!(report["sequence"], 1);
    assert_eq!(report["files"], 8);
    assert_eq!(report["lessons"], 3);
    assert_eq!(report["unchanged"], false);

    let listing = origin.ls();
    assert_eq!(listing["sequence"], 1);
    assert_eq!(listing["signature_verified"], true);
    let course = &listing["courses"][0];
    assert_eq!(course["id"], "grade3-math");
    assert_eq!(course["title"]["zh"], "三年级数学");
    assert_eq!(course["grade"], "3");
    // Natural order: 01, 02, 10.
    let ids: Vec<&str> = course["lessons"]
        .as_array()
        .expect("lessons")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["01-数数", "02-ꆈꌠꁱꂷ", "10-བོད་ཡིག"]);

    let counting = lesson(course, "01-数数");
    assert_eq!(counting["entry"], "index.html");
    assert_eq!(counting["title"]["zh"], "数数");
    let paths: Vec<&str> = counting["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "counting.mp4",
            "img/deep/nested/空.txt",
            "img/苹果.svg",
            "index.html"
        ]
    );
    let yi = lesson(course, "02-ꆈꌠꁱꂷ");
    assert_eq!(yi["entry"], "ꆈꌠ.html");
    assert_eq!(yi["title"]["ii"], "ꆈꌠꁱꂷ");
    assert_eq!(yi["tags"][0], "yi");
    assert_eq!(lesson(course, "10-བོད་ཡིག")["title"]["bo"], "བོད་ཡིག");

    // Every blob is named by the BLAKE3 of its source file and holds its bytes.
    let mut checked = 0;
    let all_files = course["files"].as_array().expect("files").iter().chain(
        course["lessons"]
            .as_array()
            .expect("lessons")
            .iter()
            .flat_map(|l| l["files"].as_array().expect("files")),
    );
    for file in all_files {
        let path = file["path"].as_str().expect("path");
        let lesson_dir = course["lessons"]
            .as_array()
            .expect("lessons")
            .iter()
            .find(|l| {
                l["files"]
                    .as_array()
                    .expect("files")
                    .iter()
                    .any(|f| f == file)
            })
            .map(|l| l["id"].as_str().expect("id").to_owned());
        let source = match lesson_dir {
            Some(dir) => course_dir.join(dir).join(path),
            None => course_dir.join(path),
        };
        let bytes = std::fs::read(&source).expect("source file");
        let blake3 = blake3::hash(&bytes).to_hex().to_string();
        assert_eq!(file["blake3"], blake3.as_str(), "{path}");
        assert_eq!(file["size"], bytes.len() as u64);
        assert_eq!(file["held"], true);
        assert_eq!(
            std::fs::read(origin.blob_path(&blake3)).expect("blob"),
            bytes,
            "{path}"
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
    let video = counting["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "counting.mp4")
        .expect("video");
    assert_eq!(video["media_type"], "video/mp4");
    assert!(video["chunks"].as_u64().expect("chunks") > 200);

    let verify = run_ok(&["verify", &origin.data_str()]);
    assert!(verify.contains("all good"), "{verify}");

    // Flip one byte of the video's blob: verify fails and names it.
    let blob_hash = video["blake3"].as_str().expect("hash");
    let blob_path = origin.blob_path(blob_hash);
    let mut bytes = std::fs::read(&blob_path).expect("blob");
    bytes[BIG / 3] ^= 0x40;
    std::fs::write(&blob_path, bytes).expect("write");
    let output = run(&["verify", &origin.data_str()]);
    assert!(
        !output.status.success(),
        "verify must fail on a damaged blob"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("BAD blob {blob_hash} is damaged")),
        "{stdout}"
    );
    assert!(stdout.contains("1 problem(s)"), "{stdout}");
}

#[test]
fn republishing_stores_nothing_and_an_edit_adds_only_nearby_chunks() {
    let origin = TestOrigin::init();
    let course_dir = origin.dir.path().join("grade3-math");
    write_course(&course_dir);
    let first = origin.publish(&course_dir);
    assert_eq!(first["new_blobs"], 8);

    let again = origin.publish(&course_dir);
    assert_eq!(again["unchanged"], true);
    assert_eq!(again["new_blobs"], 0);
    assert_eq!(again["new_chunks"], 0);
    assert_eq!(
        again["sequence"], 1,
        "an unchanged republish signs no new catalog"
    );
    let text = run_ok(&[
        "publish",
        course_dir.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
    ]);
    assert!(text.contains("is unchanged"), "{text}");
    let rehashed = run_ok(&[
        "publish",
        course_dir.to_str().expect("utf-8"),
        "--data",
        &origin.data_str(),
        "--rehash",
        "--json",
    ]);
    let rehashed: Value = serde_json::from_str(&rehashed).expect("json");
    assert_eq!(rehashed["unchanged"], true);
    assert_eq!(rehashed["files_read"], 8, "--rehash reads every file");

    let chunks_before = chunk_count(&origin);
    let video = course_dir.join("01-数数/counting.mp4");
    let mut bytes = std::fs::read(&video).expect("video");
    bytes[BIG / 2..BIG / 2 + 6].copy_from_slice(b"edited");
    std::fs::write(&video, bytes).expect("write");

    let edited = origin.publish(&course_dir);
    assert_eq!(edited["unchanged"], false);
    assert_eq!(edited["course_version"], 2);
    assert_eq!(edited["sequence"], 2);
    assert_eq!(edited["new_blobs"], 1);
    let new_chunks = edited["new_chunks"].as_u64().expect("count");
    assert!(
        (1..=2).contains(&new_chunks),
        "{new_chunks} new chunks for a 6-byte edit"
    );
    assert!(edited["new_chunk_bytes"].as_u64().expect("bytes") <= 2 * 256 * 1024);
    // Counted independently of the report: the chunk index grew by exactly that much.
    assert_eq!(chunk_count(&origin), chunks_before + new_chunks);

    let text = run_ok(&["verify", &origin.data_str()]);
    assert!(text.contains("all good"), "{text}");
}

fn chunk_count(origin: &TestOrigin) -> u64 {
    let store = catalog::Store::open_existing(origin.data().join("store")).expect("open store");
    store.chunk_count().expect("count")
}

#[test]
fn two_publishes_at_once_both_land_and_nothing_is_corrupted() {
    let origin = TestOrigin::init();
    let mut children = Vec::new();
    for (name, seed) in [("course-a", 1u64), ("course-b", 2)] {
        let dir = origin.dir.path().join(name);
        std::fs::create_dir_all(dir.join("01-lesson")).expect("mkdir");
        std::fs::write(
            dir.join("01-lesson/video.mp4"),
            generated(30 * 1024 * 1024, seed),
        )
        .expect("write");
        std::fs::write(dir.join("01-lesson/index.html"), format!("<p>{name}</p>")).expect("write");
        children.push(
            shanlu_tests::shanlu()
                .args([
                    "publish",
                    dir.to_str().expect("utf-8"),
                    "--data",
                    &origin.data_str(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn"),
        );
    }
    for child in children {
        let output = child.wait_with_output().expect("wait");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listing = origin.ls();
    assert_eq!(listing["sequence"], 2);
    let ids: Vec<&str> = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["course-a", "course-b"]);
    let text = run_ok(&["verify", &origin.data_str()]);
    assert!(text.contains("all good"), "{text}");
}

#[test]
fn init_prints_a_key_and_refuses_to_overwrite() {
    let origin = TestOrigin::init();
    assert_eq!(origin.key.len(), 64);
    let stderr = shanlu_tests::run_err(&["origin", "init", "--data", &origin.data_str()]);
    assert!(stderr.contains("already an initialized origin"), "{stderr}");
    let listing = origin.ls();
    assert_eq!(listing["sequence"], 0);
    assert_eq!(listing["courses"].as_array().expect("courses").len(), 0);
}

#[test]
fn a_publish_killed_midway_leaves_the_previous_catalog_and_a_clean_store() {
    let origin = TestOrigin::init();
    let small = origin.dir.path().join("small");
    std::fs::create_dir_all(small.join("01-a")).expect("mkdir");
    std::fs::write(small.join("01-a/index.html"), "<p>a</p>").expect("write");
    origin.publish(&small);

    let big = origin.dir.path().join("big");
    for lesson in 0..4 {
        let dir = big.join(format!("{lesson:02}-video"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("lesson.mp4"), generated(40 * 1024 * 1024, lesson)).expect("write");
    }
    let mut child = shanlu_tests::shanlu()
        .args([
            "publish",
            big.to_str().expect("utf-8"),
            "--data",
            &origin.data_str(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");

    // Whether it was killed before or after its commit, the store is consistent.
    let listing = origin.ls();
    let sequence = listing["sequence"].as_u64().expect("sequence");
    if status.success() {
        assert_eq!(sequence, 2);
    } else {
        assert_eq!(sequence, 1, "a killed publish must not change the catalog");
    }
    let text = run_ok(&["verify", &origin.data_str()]);
    assert!(text.contains("all good"), "{text}");

    // Publishing again completes, and no temporary file is left behind.
    let report = origin.publish(&big);
    assert_eq!(report["course_id"], "big");
    assert_eq!(origin.ls()["sequence"], 2);
    let tmp = origin.data().join("store/tmp");
    assert_eq!(std::fs::read_dir(tmp).expect("tmp").count(), 0);
    let text = run_ok(&["verify", &origin.data_str()]);
    assert!(text.contains("all good"), "{text}");
}
