//! Issue 17: `shanlu i18n check` against the Fluent files, as compiled in
//! and as a translator edits them.

use std::path::{Path, PathBuf};

use shanlu_tests::{run, run_ok};

fn locales(krate: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("locales")
}

/// A copy of the classroom's files that a test may edit.
fn classroom_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(locales("edge-cache")).expect("edge-cache/locales") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

/// `shanlu i18n check --classroom DIR`: whether it passed, stdout, stderr.
fn check(dir: &Path) -> (bool, String, String) {
    let output = run(&["i18n", "check", "--classroom", dir.to_str().expect("utf-8")]);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn edit(dir: &Path, file: &str, change: impl Fn(String) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).expect("read ftl");
    std::fs::write(&path, change(text)).expect("write ftl");
}

fn without_key(key: &str) -> impl Fn(String) -> String + '_ {
    move |text| {
        let kept: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with(&format!("{key} =")))
            .collect();
        assert!(kept.len() < text.lines().count(), "{key} was in the file");
        kept.join("\n") + "\n"
    }
}

#[test]
fn issue_17_the_compiled_in_files_pass_and_say_which_languages_are_incomplete() {
    let out = run_ok(&["i18n", "check"]);
    assert!(out.ends_with("ok\n"), "{out}");
    assert!(out.contains("# classroom (compiled in)"), "{out}");
    assert!(out.contains("# dashboard (compiled in)"), "{out}");
    assert!(out.contains("ii: incomplete, needs review"), "{out}");
    assert!(out.contains("en: complete"), "{out}");
    // The files on disk are the ones compiled in.
    let out = run_ok(&[
        "i18n",
        "check",
        "--classroom",
        locales("edge-cache").to_str().expect("utf-8"),
        "--dashboard",
        locales("server").to_str().expect("utf-8"),
    ]);
    assert!(out.ends_with("ok\n"), "{out}");
}

#[test]
fn issue_17_a_key_the_code_uses_but_zh_and_en_lack_fails_the_check() {
    let dir = classroom_copy();
    edit(dir.path(), "zh.ftl", without_key("sync-now"));
    edit(dir.path(), "en.ftl", without_key("sync-now"));
    let (passed, stdout, stderr) = check(dir.path());
    assert!(!passed, "{stdout}");
    assert!(stdout.contains("zh: incomplete"), "{stdout}");
    assert!(
        stdout.contains("missing, required (zh and en are the fallbacks) (1):\n    sync-now"),
        "{stdout}"
    );
    assert!(stderr.contains("i18n check failed"), "{stderr}");

    // A key missing from Tibetan only is fine: it shows in Chinese.
    let dir = classroom_copy();
    edit(dir.path(), "bo.ftl", without_key("sync-now"));
    let (passed, out, _) = check(dir.path());
    assert!(passed, "{out}");
    assert!(out.contains("sync-now"), "{out}");
}

#[test]
fn issue_17_unused_keys_and_broken_lines_fail_the_check_with_their_place() {
    let dir = classroom_copy();
    edit(dir.path(), "bo.ftl", |text| text + "old-label = སློབ་ཚན།\n");
    edit(dir.path(), "en.ftl", |text| text + "\nbroken = { $count\n");
    let (passed, stdout, _) = check(dir.path());
    assert!(!passed, "{stdout}");
    assert!(
        stdout.contains("unused, no code asks for it (1):\n    old-label"),
        "{stdout}"
    );
    assert!(stdout.contains("  error: line "), "{stdout}");
}

#[test]
fn issue_17_a_new_language_is_a_new_file() {
    // A translator starting Lisu: the file holds its name and one label;
    // everything else shows in Chinese, and the check says so.
    let dir = classroom_copy();
    std::fs::write(
        dir.path().join("lis.ftl"),
        "### Needs review\nlanguage-name = ꓡꓲ-ꓢꓴ\nsearch = ꓢꓴꓲ\n",
    )
    .expect("lis.ftl");
    let (passed, out, _) = check(dir.path());
    assert!(passed, "{out}");
    assert!(out.contains("lis: incomplete, needs review"), "{out}");
    let lis = &out[out.find("lis:").expect("lis")..];
    assert!(
        !lis.lines().take(4).any(|l| l.contains(" search ")),
        "{lis}"
    );
    // A file whose name is not a language code is refused by name.
    let bad = classroom_copy();
    std::fs::write(bad.path().join("Lisu.ftl"), "language-name = ꓡꓲ-ꓢꓴ\n").expect("Lisu.ftl");
    let (passed, _, stderr) = check(bad.path());
    assert!(!passed);
    assert!(
        stderr.contains("Lisu.ftl") && stderr.contains("BCP 47"),
        "{stderr}"
    );
}
