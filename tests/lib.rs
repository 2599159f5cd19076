//! The end-to-end test harness: runs the real `shanlu` binary against
//! temporary folders, the way an administrator or a school IT teacher would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `shanlu` binary of this build, built once per test run.
pub fn shanlu_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/it-… → target/<profile>/shanlu
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "tools", "--bin", "shanlu"]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("running cargo build for the shanlu binary");
        assert!(status.success(), "building the shanlu binary failed");
        profile_dir.join("shanlu")
    })
}

/// A `shanlu` command with a quiet log.
pub fn shanlu() -> Command {
    let mut command = Command::new(shanlu_bin());
    command.env("RUST_LOG", "warn").env_remove("NO_COLOR");
    command
}

/// Runs `shanlu ARGS…`; returns its output whatever the exit code.
pub fn run(args: &[&str]) -> Output {
    shanlu().args(args).output().expect("spawning shanlu")
}

/// Runs `shanlu ARGS…` and insists it succeeds; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "shanlu {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Runs `shanlu ARGS…` and insists it fails; returns stderr.
pub fn run_err(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        !output.status.success(),
        "shanlu {args:?} should have failed:\nstdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).expect("stderr is UTF-8")
}

pub use catalog::testdata::generated;

/// A temporary origin made by `shanlu origin init`.
pub struct TestOrigin {
    pub dir: tempfile::TempDir,
    pub key: String,
}

impl TestOrigin {
    pub fn init() -> TestOrigin {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("origin");
        let out = run_ok(&[
            "origin",
            "init",
            "--data",
            data.to_str().expect("utf-8 path"),
        ]);
        let key = out
            .lines()
            .find_map(|line| line.strip_prefix("origin key: "))
            .expect("init prints the origin key")
            .to_owned();
        TestOrigin { dir, key }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("origin")
    }

    pub fn data_str(&self) -> String {
        self.data().to_str().expect("utf-8 path").to_owned()
    }

    /// `shanlu publish FOLDER --data ORIGIN --json`, parsed.
    pub fn publish(&self, folder: &Path) -> serde_json::Value {
        let out = run_ok(&[
            "publish",
            folder.to_str().expect("utf-8 path"),
            "--data",
            &self.data_str(),
            "--json",
        ]);
        serde_json::from_str(&out).expect("publish --json prints JSON")
    }

    /// `shanlu ls --data ORIGIN --json`, parsed.
    pub fn ls(&self) -> serde_json::Value {
        let out = run_ok(&["ls", "--data", &self.data_str(), "--json"]);
        serde_json::from_str(&out).expect("ls --json prints JSON")
    }

    /// Where the origin keeps a blob.
    pub fn blob_path(&self, blake3: &str) -> PathBuf {
        self.data()
            .join("store/blobs")
            .join(&blake3[..2])
            .join(&blake3[2..4])
            .join(blake3)
    }
}
