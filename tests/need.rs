//! What a test needs from the machine beyond Rust, and skipping it cleanly
//! when that is missing (issue 12): `cargo test --workspace` passes on a fresh
//! machine, as any user, without Chromium or root.
//!
//! A test that needs Chromium, root or network namespaces starts with
//!
//! ```ignore
//! if !shanlu_tests::require(Need::Chromium) {
//!     return;
//! }
//! ```
//!
//! When the thing is there, it runs. When it is missing it prints
//! `SKIPPED <test>: <reason>; install: <command>` on the real stderr (not
//! captured by the test runner, so the skip shows in every run) and returns
//! early, unless [`REQUIRE_ALL`] is set (`.ci/run` sets it): then it panics
//! with that message, so CI cannot pass by skipping.
//!
//! Only std, so `tools/linksim`'s tests include this file too (`#[path]`).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set (to anything but `0` or empty) to make every test that needs
/// something run, failing if it is missing.
pub const REQUIRE_ALL: &str = "SHANLU_TEST_REQUIRE_ALL";

/// Something beyond Rust that a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Headless Chromium and chromedriver on `PATH`.
    Chromium,
    /// Root, or at least `CAP_NET_ADMIN` and `CAP_SYS_ADMIN`.
    Root,
    /// Network namespaces and the link emulator: root's capabilities,
    /// `/dev/net/tun` and iproute2's `ip` on `PATH`.
    NetNs,
    /// nginx, as the caching proxy in front of origins (issue 16).
    Nginx,
    /// axe-core's `axe.min.js`, the accessibility checker run inside
    /// Chromium (issue 17): `$SHANLU_AXE_JS`, or `target/axe/` as `.ci/run`
    /// installs it.
    Axe,
}

impl Need {
    /// Why this machine cannot run such a test, or `None` when it can.
    pub fn missing(self) -> Option<String> {
        match self {
            Need::Chromium => {
                let driver = find_on_path("chromedriver");
                let browser = chromium();
                match (browser, driver) {
                    (Some(_), Some(_)) => None,
                    (None, Some(_)) => Some("no chromium on PATH".into()),
                    (Some(_), None) => Some("no chromedriver on PATH".into()),
                    (None, None) => Some("no chromium nor chromedriver on PATH".into()),
                }
            }
            Need::Root => (!has_admin_capabilities())
                .then(|| "not root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN)".into()),
            Need::NetNs => {
                let mut why = Vec::new();
                if let Some(root) = Need::Root.missing() {
                    why.push(root);
                }
                if !Path::new("/dev/net/tun").exists() {
                    why.push("no /dev/net/tun".into());
                }
                if find_on_path("ip").is_none() {
                    why.push("no `ip` command (iproute2) on PATH".into());
                }
                (!why.is_empty()).then(|| why.join(", "))
            }
            Need::Nginx => nginx()
                .is_none()
                .then(|| "no nginx on PATH nor in /usr/sbin".into()),
            Need::Axe => axe_js().is_none().then(|| {
                "no axe-core (neither $SHANLU_AXE_JS nor target/axe/node_modules/axe-core/axe.min.js)"
                    .into()
            }),
        }
    }

    /// How to get it (Debian).
    pub fn install(self) -> &'static str {
        match self {
            Need::Chromium => "apt-get install chromium chromium-driver",
            Need::Root => "run the tests as root (sudo -E cargo test)",
            Need::NetNs => {
                "apt-get install iproute2, and run the tests as root (sudo -E cargo test)"
            }
            Need::Nginx => "apt-get install nginx",
            Need::Axe => "npm install --prefix target/axe axe-core@4.11.0",
        }
    }
}

/// Whether the calling test should run (see the module docs): true when
/// `need` is met; false after printing the skip when it is not; a panic
/// when it is not and [`REQUIRE_ALL`] is set.
pub fn require(need: Need) -> bool {
    let Some(why) = need.missing() else {
        return true;
    };
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let message = format!("SKIPPED {test}: {why}; install: {}", need.install());
    if required_all() {
        panic!("{message} ({REQUIRE_ALL} is set, so this test must run)");
    }
    // Straight to the process's stderr: libtest captures only the print macros.
    let _ = writeln!(std::io::stderr(), "{message}");
    false
}

fn required_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|value| !value.is_empty() && value != "0")
}

/// The Chromium binary on `PATH`, by its usual names.
pub fn chromium() -> Option<PathBuf> {
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
        "chrome",
    ]
    .into_iter()
    .find_map(find_on_path)
}

/// axe-core's script: `$SHANLU_AXE_JS`, else `axe/node_modules/axe-core/axe.min.js`
/// in the `target` folder the running test was built in.
pub fn axe_js() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SHANLU_AXE_JS") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .map(|dir| dir.join("axe/node_modules/axe-core/axe.min.js"))
        .find(|candidate| candidate.is_file())
}

/// The nginx binary: on `PATH`, or where Debian puts it.
pub fn nginx() -> Option<PathBuf> {
    find_on_path("nginx").or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

/// An executable called `name` in a folder of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Whether this process holds `CAP_NET_ADMIN` (12) and `CAP_SYS_ADMIN` (21),
/// as root has, read from `/proc/self/status`.
fn has_admin_capabilities() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0 && caps & (1 << 21) != 0)
}
