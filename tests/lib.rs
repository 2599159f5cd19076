//! The end-to-end test harness: runs the real `shanlu` binary against
//! temporary folders, the way an administrator or a school IT teacher would.

/// The tests' HTTP client (one crate, `ureq`) behind the harness's helpers.
pub mod http;
/// What a test needs beyond Rust (Chromium, root, network namespaces), and skipping without it.
pub mod need;
/// A UDP relay that counts, throttles and cuts the traffic between an edge and the origin.
mod relay;
/// An in-process S3 server (s3s-fs in a temp dir) for the origin's bucket tests.
pub mod s3;
/// A synchronous WebDriver client for headless Chromium.
pub mod webdriver;

pub use http::{header, http_request, http_request_with_body, parse_response, try_http_request};
pub use need::{Need, require};
pub use relay::Relay;

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
        // What `cargo test` sets for this crate alone: ring's build script
        // watches some of it, so passing it on would rebuild ring and
        // everything above it on every run.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            {
                build.env_remove(name.as_ref());
            }
        }
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

/// Set to `s3` to run the origin tests with the origin's content in a
/// bucket (issue 16): every [`TestOrigin`] is made with `--store s3://…` on
/// one S3 server in this process, and every `shanlu` command is given its
/// address and credentials. `.ci/run` runs the origin suites both ways.
pub const ORIGIN_STORE: &str = "SHANLU_TEST_ORIGIN_STORE";

/// The S3 server the origins of this run keep their content on, when
/// [`ORIGIN_STORE`] is `s3`.
pub fn origin_s3() -> Option<&'static s3::S3Server> {
    static SERVER: OnceLock<Option<s3::S3Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let wanted = std::env::var(ORIGIN_STORE).unwrap_or_default();
            match wanted.as_str() {
                "" | "folder" => None,
                "s3" => Some(s3::S3Server::start()),
                other => panic!("{ORIGIN_STORE}={other}: give s3 or folder"),
            }
        })
        .as_ref()
}

/// A `shanlu` command with a quiet log (and the bucket's settings when the
/// origins are on one, see [`ORIGIN_STORE`]).
pub fn shanlu() -> Command {
    let mut command = Command::new(shanlu_bin());
    command.env("RUST_LOG", "warn").env_remove("NO_COLOR");
    if let Some(s3) = origin_s3() {
        command.envs(s3.env());
    }
    command
}

/// Runs `shanlu ARGS…`; returns its output whatever the exit code.
pub fn run(args: &[&str]) -> Output {
    shanlu().args(args).output().expect("spawning shanlu")
}

/// Runs `shanlu ARGS…` and insists it succeeds; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    command_ok(shanlu(), args)
}

/// Runs `command ARGS…` (a `shanlu` with its own environment) and insists it
/// succeeds; returns stdout.
pub fn command_ok(mut command: Command, args: &[&str]) -> String {
    let output = command.args(args).output().expect("spawning shanlu");
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

/// `shanlu ls --data DIR --json`, parsed.
pub fn ls_json(data: &Path) -> serde_json::Value {
    let out = run_ok(&["ls", "--data", data.to_str().expect("utf-8 path"), "--json"]);
    serde_json::from_str(&out).expect("ls --json prints JSON")
}

/// Where a data folder's store keeps a blob: `store/blobs/ab/cd/<blake3>`.
pub fn blob_path(data: &Path, blake3: &str) -> PathBuf {
    data.join("store/blobs")
        .join(&blake3[..2])
        .join(&blake3[2..4])
        .join(blake3)
}

/// A temporary origin made by `shanlu origin init`.
pub struct TestOrigin {
    pub dir: tempfile::TempDir,
    pub key: String,
}

impl TestOrigin {
    pub fn init() -> TestOrigin {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("origin");
        let data = data.to_str().expect("utf-8 path");
        let mut args = vec!["origin", "init", "--data", data];
        // Each origin its own prefix in the run's bucket.
        let store = origin_s3().map(|s3| s3.url(&format!("t{}", rand_suffix())));
        if let Some(url) = &store {
            args.extend(["--store", url.as_str()]);
        }
        let out = run_ok(&args);
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
        ls_json(&self.data())
    }

    /// Where the origin keeps a blob.
    pub fn blob_path(&self, blake3: &str) -> PathBuf {
        blob_path(&self.data(), blake3)
    }
}

/// A running `shanlu origin serve`, stopped (SIGKILL) when dropped.
pub struct ServedOrigin {
    child: std::process::Child,
    pub quic: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    /// The HTTPS fallback.
    pub https: std::net::SocketAddr,
    pub fingerprint: String,
    /// The dashboard, when started with `--admin`.
    pub admin: Option<std::net::SocketAddr>,
    /// The origin's stderr log.
    pub log: PathBuf,
}

impl TestOrigin {
    /// Starts `origin serve` on loopback ports chosen by the OS (or the given QUIC address).
    pub fn serve_on(&self, quic: &str) -> ServedOrigin {
        self.serve_with(shanlu(), quic, "127.0.0.1", &[])
    }

    /// Starts `origin serve` from `command` (`shanlu`, perhaps run inside a
    /// network namespace): QUIC on `quic`, HTTP and HTTPS on `ip` with ports
    /// chosen by the OS, and `extra` flags.
    pub fn serve_with(
        &self,
        mut command: Command,
        quic: &str,
        ip: &str,
        extra: &[&str],
    ) -> ServedOrigin {
        use std::io::BufRead;
        let log = self
            .dir
            .path()
            .join(format!("origin-{}.log", std::process::id() ^ rand_suffix()));
        let any_port = format!("{ip}:0");
        let mut child = command
            .env("RUST_LOG", "info")
            .args([
                "origin",
                "serve",
                "--data",
                &self.data_str(),
                "--quic",
                quic,
                "--http",
                &any_port,
                "--https",
                &any_port,
            ])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("origin log"))
            .spawn()
            .expect("spawn origin serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut field = |name: &str| -> String {
            let line = lines
                .next()
                .expect("origin serve printed its addresses")
                .expect("utf-8");
            line.strip_prefix(name)
                .unwrap_or_else(|| panic!("expected {name:?}, got {line:?}"))
                .trim()
                .to_owned()
        };
        let quic = field("quic:").parse().expect("quic address");
        let http = field("http:").parse().expect("http address");
        let https = field("https:").parse().expect("https address");
        field("congestion:");
        let fingerprint = field("origin certificate:");
        let admin = extra.contains(&"--admin").then(|| {
            field("admin: http://")
                .trim_end_matches('/')
                .parse()
                .expect("admin address")
        });
        ServedOrigin {
            child,
            quic,
            http,
            https,
            fingerprint,
            admin,
            log,
        }
    }

    pub fn serve(&self) -> ServedOrigin {
        self.serve_on("127.0.0.1:0")
    }

    /// `shanlu origin add-edge`; returns the token.
    pub fn add_edge(&self, name: &str) -> String {
        add_edge("origin", &self.data_str(), name)
    }
}

/// `shanlu origin|edge add-edge` on the folder `data`; returns the token.
fn add_edge(role: &str, data: &str, name: &str) -> String {
    let out = run_ok(&[role, "add-edge", "--data", data, "--name", name]);
    out.trim()
        .strip_prefix("edge token: ")
        .expect("add-edge prints the token")
        .to_owned()
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl ServedOrigin {
    /// Stops the origin with SIGINT and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        self.child.wait().expect("wait for origin")
    }

    /// Stops the origin cleanly; the chunks it served over its whole run.
    pub fn stop_counting_chunks(self) -> u64 {
        let log = self.log.clone();
        assert!(self.stop().success(), "origin serve did not stop cleanly");
        chunks_served_in(&std::fs::read_to_string(&log).expect("origin log"))
    }

    /// Kills the origin at once (SIGKILL), like a power cut.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServedOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An edge data folder made by `shanlu edge init`.
pub struct TestEdge {
    pub dir: tempfile::TempDir,
}

impl TestEdge {
    /// `edge init` against `origin_addr` (the origin itself or a relay in front of it).
    pub fn init(
        origin: &TestOrigin,
        served: &ServedOrigin,
        origin_addr: std::net::SocketAddr,
        token: &str,
        subscribe: &str,
    ) -> TestEdge {
        TestEdge::init_with(origin, served, origin_addr, token, subscribe, &[])
    }

    /// [`TestEdge::init`] with more `edge init` flags (e.g. `--fallback`).
    pub fn init_with(
        origin: &TestOrigin,
        served: &ServedOrigin,
        origin_addr: std::net::SocketAddr,
        token: &str,
        subscribe: &str,
        extra: &[&str],
    ) -> TestEdge {
        let upstream = Upstream {
            addr: origin_addr,
            fingerprint: &served.fingerprint,
        };
        TestEdge::init_at(origin, upstream, token, subscribe, extra)
    }

    /// `edge init` against the origin serving at `addr` with the
    /// certificate `fingerprint` (an `origin serve` the test started itself).
    pub fn init_pinned(
        origin: &TestOrigin,
        addr: std::net::SocketAddr,
        fingerprint: &str,
        token: &str,
        subscribe: &str,
    ) -> TestEdge {
        TestEdge::init_at(
            origin,
            Upstream { addr, fingerprint },
            token,
            subscribe,
            &[],
        )
    }

    /// `edge init` pinning `origin`'s key, with `upstream` as its upstream.
    fn init_at(
        origin: &TestOrigin,
        upstream: Upstream<'_>,
        token: &str,
        subscribe: &str,
        extra: &[&str],
    ) -> TestEdge {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("edge");
        let origin_url = format!("quic://{}", upstream.addr);
        let mut args = vec![
            "edge",
            "init",
            "--data",
            data.to_str().expect("utf-8"),
            "--origin",
            &origin_url,
            "--origin-key",
            &origin.key,
            "--origin-cert",
            upstream.fingerprint,
            "--token",
            token,
            "--subscribe",
            subscribe,
        ];
        args.extend_from_slice(extra);
        // The default `min_free` (2 GB) is more than some test machines have
        // free; tests about the quota give their own.
        if !extra.contains(&"--min-free") {
            args.extend_from_slice(&["--min-free", "1MB"]);
        }
        run_ok(&args);
        TestEdge { dir }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("edge")
    }

    pub fn data_str(&self) -> String {
        self.data().to_str().expect("utf-8").to_owned()
    }

    /// `shanlu edge sync --json`: (exit code, report, stderr).
    pub fn sync(&self) -> (i32, serde_json::Value, String) {
        self.sync_with(shanlu(), &[])
    }

    /// `edge sync --json` run by `command` (`shanlu`, perhaps inside a
    /// network namespace) with more flags: (exit code, report, stderr).
    pub fn sync_with(
        &self,
        mut command: Command,
        extra: &[&str],
    ) -> (i32, serde_json::Value, String) {
        let output = command
            .env("RUST_LOG", "warn")
            .args(["edge", "sync", "--data", &self.data_str(), "--json"])
            .args(extra)
            .output()
            .expect("spawning shanlu edge sync");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
        (output.status.code().unwrap_or(-1), report, stderr)
    }

    /// A sync that must complete; returns its report.
    pub fn sync_ok(&self) -> serde_json::Value {
        let (code, report, stderr) = self.sync();
        assert_eq!(code, 0, "edge sync failed:\n{report:#}\n{stderr}");
        report
    }

    /// `shanlu ls --data EDGE --json`.
    pub fn ls(&self) -> serde_json::Value {
        ls_json(&self.data())
    }

    /// Where the edge keeps a blob.
    pub fn blob_path(&self, blake3: &str) -> PathBuf {
        blob_path(&self.data(), blake3)
    }
}

/// An edge's upstream at `edge init`: the origin, or an edge serving edges.
struct Upstream<'a> {
    addr: std::net::SocketAddr,
    fingerprint: &'a str,
}

/// Where an edge run with `--serve-edges` serves the sync protocol (issue 14).
#[derive(Debug, Clone)]
pub struct ServingEdges {
    pub quic: std::net::SocketAddr,
    pub https: std::net::SocketAddr,
    /// Its certificate's fingerprint, which edges below it pin.
    pub fingerprint: String,
}

/// A running `shanlu edge run` on a free loopback port, killed when dropped.
pub struct RunningEdge {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Drop for RunningEdge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RunningEdge {
    /// GET `path` with extra header lines: (status, head, body).
    pub fn get(&self, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
        http_request(self.addr, "GET", path, headers)
    }

    /// GET `path` as a browser of language `lang` would (cookie set): (status, page).
    pub fn page(&self, path: &str, lang: &str) -> (u16, String) {
        let (status, _, body) = self.get(
            path,
            &format!("Accept: text/html\r\nCookie: shanlu_lang={lang}\r\n"),
        );
        (status, String::from_utf8(body).expect("pages are UTF-8"))
    }

    /// POST an empty form to `path` with extra header lines: (status, head, body).
    pub fn post(&self, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
        http_request(
            self.addr,
            "POST",
            path,
            &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n{headers}"
            ),
        )
    }

    /// `/metrics` as text.
    pub fn metrics(&self) -> String {
        let (status, _, body) = self.get("/metrics", "");
        assert_eq!(status, 200);
        String::from_utf8(body).expect("metrics are UTF-8")
    }

    /// GET `path` as JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, _, body) = self.get(path, "");
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON")
    }
}

impl TestEdge {
    /// `shanlu edge run` with a sync interval of an hour (one sync at start).
    pub fn run(&self) -> RunningEdge {
        self.run_with(&[], &[])
    }

    /// `shanlu edge run` with a sync interval of an hour, more arguments and
    /// environment variables (`TZ`, say).
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> RunningEdge {
        self.spawn_run(args, env, std::process::Stdio::null())
    }

    /// `shanlu edge run` with its log (at `warn`, the default) written to `log`.
    pub fn run_logged(&self, log: &std::path::Path) -> RunningEdge {
        let log = std::fs::File::create(log).expect("log file");
        self.spawn_run(&[], &[("RUST_LOG", "warn")], log.into())
    }

    /// `shanlu edge run --serve-edges 127.0.0.1:0` (issue 14: a county edge
    /// or a LAN peer), with more arguments and environment variables; its
    /// log goes to `log`. Returns the running edge and where it serves edges.
    pub fn run_serving(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> (RunningEdge, ServingEdges) {
        self.run_serving_in(shanlu(), "127.0.0.1:0", args, env, log)
    }

    /// [`TestEdge::run_serving`] from `command` (`shanlu`, perhaps run
    /// inside a network namespace), serving edges on `at` (`IP:PORT`).
    pub fn run_serving_in(
        &self,
        command: Command,
        at: &str,
        args: &[&str],
        env: &[(&str, &str)],
        log: &std::path::Path,
    ) -> (RunningEdge, ServingEdges) {
        let log_path = log;
        let log = std::fs::File::create(log).expect("log file");
        let mut all = vec!["--serve-edges", at];
        all.extend_from_slice(args);
        let (edge, mut lines) = self.spawn_lines(command, &all, env, log.into());
        let mut field = |prefix: &str| -> String {
            let Some(line) = lines.next() else {
                panic!(
                    "edge run stopped before printing {prefix:?}: {}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                )
            };
            let line = line.expect("utf-8");
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
                .to_owned()
        };
        let quic = field("edges quic: ").parse().expect("quic address");
        let https = field("edges https: ").parse().expect("https address");
        let fingerprint = field("edges certificate: ");
        // Keep the pipe open: the edge may print more.
        std::thread::spawn(move || for _ in lines {});
        let serving = ServingEdges {
            quic,
            https,
            fingerprint,
        };
        (edge, serving)
    }

    /// `shanlu edge add-edge` on this edge (issue 14); returns the token.
    pub fn add_edge(&self, name: &str) -> String {
        add_edge("edge", &self.data_str(), name)
    }

    /// `edge init` of an edge whose upstream is the serving edge `parent` (a
    /// county edge), pinning `origin`'s key and `parent`'s certificate.
    pub fn init_below(
        origin: &TestOrigin,
        parent: &ServingEdges,
        token: &str,
        subscribe: &str,
        extra: &[&str],
    ) -> TestEdge {
        let upstream = Upstream {
            addr: parent.quic,
            fingerprint: &parent.fingerprint,
        };
        TestEdge::init_at(origin, upstream, token, subscribe, extra)
    }

    fn spawn_run(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> RunningEdge {
        self.spawn_lines(shanlu(), args, env, stderr).0
    }

    /// Starts `edge run`; returns it once it printed its classroom address,
    /// with the rest of its standard output.
    fn spawn_lines(
        &self,
        mut command: Command,
        args: &[&str],
        env: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> (
        RunningEdge,
        std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    ) {
        use std::io::BufRead;
        let mut child = command
            .args([
                "edge",
                "run",
                "--data",
                &self.data_str(),
                "--listen",
                "127.0.0.1:0",
                "--interval",
                "3600",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn edge run");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().expect("a line").expect("utf-8");
        let addr = line
            .strip_prefix("classroom: http://")
            .and_then(|rest| rest.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        (RunningEdge { child, addr }, lines)
    }
}

pub use webdriver::wait_until;

/// Percent-encodes `text` for a URL query value: everything but letters,
/// digits and `-._~`.
/// The chunks a server of the sync protocol (`origin serve`, or `edge run
/// --serve-edges`) served over its run, from its log's `origin stopped`
/// line (written at `RUST_LOG=info` when it stops cleanly).
pub fn chunks_served_in(log_text: &str) -> u64 {
    let line = log_text
        .lines()
        .find(|line| line.contains("origin stopped"))
        .unwrap_or_else(|| panic!("no `origin stopped` line in {log_text}"));
    let at = line.find("chunks=").expect("chunks=") + "chunks=".len();
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a count")
}

pub fn url_escape(text: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, QUERY_VALUE).to_string()
}

/// A one-minute sync window twelve hours from now: an edge run with it
/// starts no pass while a test runs (a manual `edge sync` ignores it).
pub fn far_window() -> String {
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 3600
        + 12)
        % 24;
    format!("{hour:02}:00-{hour:02}:01")
}
