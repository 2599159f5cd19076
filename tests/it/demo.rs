//! `shanlu demo` with the bundled sample courses.

use shanlu_tests::shanlu;

#[test]
fn demo_publishes_the_sample_courses_cleanly_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let output = shanlu()
        .args(["demo", "--data", data.to_str().expect("utf-8")])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "the sample courses publish with warnings:\n{stderr}"
    );
    assert!(stdout.contains("published grade3-math v1"), "{stdout}");
    assert!(stdout.contains("signature verified"), "{stdout}");
    assert!(stdout.contains("all good"), "{stdout}");

    // A second run over the same data reuses the origin and stores nothing new.
    let again = shanlu()
        .args(["demo", "--data", data.to_str().expect("utf-8")])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(
        stdout.contains("grade3-math v1 (catalog sequence 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("0 new chunks"), "{stdout}");
}
