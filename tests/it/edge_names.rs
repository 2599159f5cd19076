//! Issue 12: edges named in the school's own script — Chinese, Yi, Tibetan —
//! are added, connect and sync; unsafe names are refused with a reason.

use std::path::Path;

use shanlu_tests::{TestEdge, TestOrigin, run_err, run_ok};

const CHINESE: &str = "昭觉县测试小学";
const YI: &str = "ꆈꌠꁱꂷ";
const TIBETAN: &str = "བོད་ཡིག་སློབ་གྲྭ";

fn edges_toml(origin: &TestOrigin) -> String {
    std::fs::read_to_string(origin.data().join("edges.toml")).unwrap_or_default()
}

fn small_course(root: &Path) {
    let lesson = root.join("01-一到十");
    std::fs::create_dir_all(&lesson).expect("mkdir");
    std::fs::write(lesson.join("index.html"), "<h1>ꆈꌠ 一到十</h1>").expect("write");
}

/// Issue 12: `origin add-edge --name 昭觉县测试小学` (and Yi, and Tibetan)
/// is accepted, the name is stored as given, an edge with it syncs, and the
/// origin's log names it in its own script.
#[test]
fn issue_12_edges_named_in_chinese_yi_and_tibetan_are_added_and_sync() {
    let origin = TestOrigin::init();
    let mut tokens = Vec::new();
    for name in [CHINESE, YI, TIBETAN] {
        tokens.push(origin.add_edge(name));
    }
    let stored = edges_toml(&origin);
    for name in [CHINESE, YI, TIBETAN] {
        assert!(stored.contains(name), "{name} in {stored}");
    }

    let src = origin.dir.path().join("course");
    small_course(&src);
    origin.publish(&src);
    let served = origin.serve();
    let edge = TestEdge::init(&origin, &served, served.quic, &tokens[2], "all");
    let report = edge.sync_ok();
    assert_eq!(report["complete"], true, "{report:#}");
    let log = served.log_text();
    assert!(
        log.lines()
            .any(|line| line.contains("edge connected") && line.contains(TIBETAN)),
        "the origin's log names the edge {TIBETAN}:\n{log}"
    );
}

/// Issue 12: the same name typed in NFD after NFC is the same edge, refused
/// as a duplicate, and edges.toml keeps one entry.
#[test]
fn issue_12_a_name_in_nfd_and_nfc_is_one_edge() {
    let origin = TestOrigin::init();
    let nfc = "Lǐ-École";
    let nfd = "Li\u{030C}-E\u{0301}cole";
    assert_ne!(nfc, nfd);
    origin.add_edge(nfd);
    assert!(edges_toml(&origin).contains(nfc), "stored NFC");
    let stderr = run_err(&[
        "origin",
        "add-edge",
        "--data",
        &origin.data_str(),
        "--name",
        nfc,
    ]);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(edges_toml(&origin).matches("[edges.").count(), 1);
}

/// Issue 12: path, invisible, separator and over-long names are refused
/// with what is wrong, and nothing is added.
#[test]
fn issue_12_unsafe_edge_names_are_refused_with_the_reason() {
    let origin = TestOrigin::init();
    let long = "学".repeat(65);
    let cases: [(&str, &str); 7] = [
        ("a/b", "'/'"),
        ("..", "must begin with a letter or a digit"),
        ("\u{200B}x", "U+200B"),
        ("x\u{0007}", "U+0007"),
        (&long, "the limit is 64"),
        ("", "empty"),
        ("   ", "U+0020"),
    ];
    for (name, expected) in cases {
        let stderr = run_err(&[
            "origin",
            "add-edge",
            "--data",
            &origin.data_str(),
            "--name",
            name,
        ]);
        assert!(stderr.contains(expected), "{name:?}: {stderr}");
        assert!(!stderr.contains("edge token"), "{stderr}");
    }
    assert!(!edges_toml(&origin).contains("[edges."), "nothing added");
    // The refusal says what is allowed.
    let stderr = run_err(&[
        "origin",
        "add-edge",
        "--data",
        &origin.data_str(),
        "--name",
        "a/b",
    ]);
    assert!(
        stderr.contains("letters and digits of any script"),
        "{stderr}"
    );
    assert!(
        run_ok(&[
            "origin",
            "add-edge",
            "--data",
            &origin.data_str(),
            "--name",
            "ok-1"
        ])
        .contains("edge token")
    );
}
