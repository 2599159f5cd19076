//! A small synchronous W3C WebDriver client: drives headless Chromium through
//! `chromedriver` so the end-to-end tests can use the web pages as a pupil would.
//!
//! Goals: a test reads as a plain script (`goto`, `find`, `click`, `text`);
//! every WebDriver error becomes a panic naming the command and the driver's
//! message; nothing beyond std and serde_json (HTTP/1.1 over a `TcpStream`,
//! one connection per command). When a test panics while a [`Browser`] is
//! alive, its screenshot and the chromedriver log land in [`artifacts_dir`].
//!
//! Non-goals: other browsers, the whole WebDriver surface, speed.
//! Chromium and chromedriver must be installed (Debian: `chromium`,
//! `chromium-driver`); without them the tests fail rather than skip.
//!
//! ```no_run
//! use std::time::Duration;
//! use shanlu_tests::webdriver::{Browser, wait_until};
//!
//! let browser = Browser::start();
//! browser.goto("http://127.0.0.1:8080/");
//! browser.find("button#play").click();
//! let status = browser.find("#status");
//! assert!(wait_until(Duration::from_secs(5), || status.text() == "playing"));
//! browser.screenshot("classroom.png");
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Debian's Chromium; chromedriver looks for `chrome` on its own otherwise.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key of a web element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long chromedriver may take to answer `/status` with `ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one command may take; page loads and scripts time out sooner (30 s).
const REPLY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the clean-up after a failed test may wait for each command.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Chrome will not make a window narrower than this, even headless.
const MIN_WINDOW_WIDTH: u32 = 500;

/// A headless Chromium session behind its own chromedriver. Dropping it
/// ends the session (chromedriver quits Chromium) and kills chromedriver.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    /// Empty until the session exists.
    session: String,
    /// Holds `chromedriver.log`.
    dir: tempfile::TempDir,
}

impl Browser {
    /// A desktop-sized browser: a 1280×900 window.
    pub fn start() -> Browser {
        Browser::start_with_window(1280, 900)
    }

    /// A browser whose viewport is `width` CSS pixels wide. Chrome keeps
    /// windows at least 500 px wide, so a narrower width is a phone: Chromium
    /// emulates a mobile device of that size (touch, `<meta name=viewport>`
    /// honoured, device pixel ratio 1).
    pub fn start_with_window(width: u32, height: u32) -> Browser {
        let dir = tempfile::Builder::new()
            .prefix("chromedriver-")
            .tempdir()
            .expect("temp dir for chromedriver");
        let (driver, addr) = spawn_driver(&dir.path().join("chromedriver.log"));
        // From here on, Drop kills chromedriver whatever happens.
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            dir,
        };
        browser.session = browser.new_session(width, height);
        browser
    }

    fn new_session(&self, width: u32, height: u32) -> String {
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
                "--no-first-run",
                format!("--window-size={},{height}", width.max(MIN_WINDOW_WIDTH)),
                "--autoplay-policy=no-user-gesture-required",
                "--mute-audio",
            ],
        });
        if Path::new(CHROMIUM).exists() {
            options["binary"] = CHROMIUM.into();
        }
        if width < MIN_WINDOW_WIDTH {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": width,
                    "height": height,
                    "pixelRatio": 1.0,
                    "mobile": true,
                    "touch": true,
                },
            });
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                    "timeouts": { "pageLoad": 30_000, "script": 30_000, "implicit": 0 },
                },
            },
        });
        let reply = request(
            self.addr,
            "POST",
            "/session",
            Some(&capabilities),
            REPLY_TIMEOUT,
        )
        .unwrap_or_else(|err| panic!("creating a WebDriver session: {err}"));
        match reply.into_result() {
            Ok(value) => value["sessionId"]
                .as_str()
                .expect("new session reply has a sessionId")
                .to_owned(),
            Err(failure) => panic!(
                "creating a WebDriver session failed: {failure}\nchromedriver log:\n{}",
                self.driver_log()
            ),
        }
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    /// The current page's URL.
    pub fn url(&self) -> String {
        string(self.get("/url"))
    }

    /// The current page's `<title>`.
    pub fn title(&self) -> String {
        string(self.get("/title"))
    }

    /// The first element matching the CSS selector; panics if there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element matches {css:?} on {}", self.url()))
    }

    /// The first element matching the CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let path = "/element";
        match self.try_command("POST", path, Some(by_css(css))) {
            Ok(reference) => Some(Element::new(self, css, &reference)),
            Err(failure) if failure.error == "no such element" => None,
            Err(failure) => panic!("webdriver POST {path} ({css:?}) failed: {failure}"),
        }
    }

    /// Polls until an element matches the CSS selector; panics after `timeout`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.try_find(css) {
                return element;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no element matches {css:?} on {} after {timeout:?}",
                    self.url()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Every element matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let references = self.post("/elements", by_css(css));
        references
            .as_array()
            .expect("find elements returns an array")
            .iter()
            .map(|reference| Element::new(self, css, reference))
            .collect()
    }

    /// Runs `script` as the body of a function called with `args` (reach them
    /// as `arguments[i]`); returns what it returns.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Runs `script` like [`Browser::execute`], with one more argument: a
    /// callback. The result is what the script passes to
    /// `arguments[arguments.length - 1]`, waited for up to the script timeout.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": args }))
    }

    /// How long [`Browser::execute_async`] waits for its callback (30 s at start).
    pub fn set_script_timeout(&self, timeout: Duration) {
        let milliseconds = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.post("/timeouts", json!({ "script": milliseconds }));
    }

    /// Saves a PNG of the viewport; a relative `path` is taken under
    /// [`artifacts_dir`]. Returns where the file went.
    pub fn screenshot(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = artifacts_dir().join(path);
        let png = base64_decode(&string(self.get("/screenshot")));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|err| panic!("creating {}: {err}", parent.display()));
        }
        std::fs::write(&path, png)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        path
    }

    /// What chromedriver has logged so far.
    pub fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    fn get(&self, path: &str) -> Value {
        self.command("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.command("POST", path, Some(body))
    }

    /// A command of this session (`path` after `/session/{id}`); panics on failure.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_command(method, path, body)
            .unwrap_or_else(|failure| panic!("webdriver {method} {path} failed: {failure}"))
    }

    fn try_command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let path = format!("/session/{}{path}", self.session);
        match request(self.addr, method, &path, body.as_ref(), REPLY_TIMEOUT) {
            Ok(reply) => reply.into_result(),
            Err(err) => Err(Failure {
                error: "no reply from chromedriver".into(),
                message: format!("{err}\nchromedriver log:\n{}", self.driver_log()),
            }),
        }
    }

    /// After a failed test: the page as it was and the chromedriver log, in
    /// [`artifacts_dir`]. Never panics (it runs while unwinding).
    fn save_failure_artifacts(&self) {
        let Ok(dir) = try_artifacts_dir() else { return };
        let test = std::thread::current()
            .name()
            .unwrap_or("browser")
            .replace("::", "-")
            .replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_",
            );
        let log = dir.join(format!("{test}.chromedriver.log"));
        if std::fs::write(&log, self.driver_log()).is_ok() {
            eprintln!("chromedriver log saved to {}", log.display());
        }
        let path = format!("/session/{}/screenshot", self.session);
        let Ok(reply) = request(self.addr, "GET", &path, None, CLEANUP_TIMEOUT) else {
            return;
        };
        if let Ok(Value::String(png)) = reply.into_result() {
            let screenshot = dir.join(format!("{test}.png"));
            if std::fs::write(&screenshot, base64_decode(&png)).is_ok() {
                eprintln!(
                    "screenshot of the failed test saved to {}",
                    screenshot.display()
                );
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            if std::thread::panicking() {
                self.save_failure_artifacts();
            }
            // chromedriver quits Chromium when its session ends.
            let path = format!("/session/{}", self.session);
            let _ = request(self.addr, "DELETE", &path, None, CLEANUP_TIMEOUT);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page a [`Browser`] shows.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    /// The selector that found it, for messages.
    css: String,
}

impl<'a> Element<'a> {
    fn new(browser: &'a Browser, css: &str, reference: &Value) -> Element<'a> {
        let id = reference[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("not an element reference: {reference}"))
            .to_owned();
        Element {
            browser,
            id,
            css: css.to_owned(),
        }
    }

    /// Clicks the element's centre, as a user would (scrolling it into view).
    pub fn click(&self) {
        self.post("/click", json!({}));
    }

    /// The element's rendered text.
    pub fn text(&self) -> String {
        string(self.get("/text"))
    }

    /// An attribute's value, `None` if the element has no such attribute.
    pub fn attr(&self, name: &str) -> Option<String> {
        match self.get(&format!("/attribute/{name}")) {
            Value::Null => None,
            value => Some(string(value)),
        }
    }

    /// A DOM property (`value`, `paused`, `currentTime`…).
    pub fn property(&self, name: &str) -> Value {
        self.get(&format!("/property/{name}"))
    }

    /// Whether the element is shown on the page.
    pub fn is_displayed(&self) -> bool {
        self.get("/displayed")
            .as_bool()
            .expect("displayed is a boolean")
    }

    /// Types `text` into the element.
    pub fn send_keys(&self, text: &str) {
        self.post("/value", json!({ "text": text }));
    }

    /// The element as an argument for [`Browser::execute`].
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn get(&self, path: &str) -> Value {
        self.command("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.command("POST", path, Some(body))
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/element/{}{path}", self.id);
        self.browser
            .try_command(method, &path, body)
            .unwrap_or_else(|failure| {
                panic!(
                    "webdriver {method} {path} on {:?} failed: {failure}",
                    self.css
                )
            })
    }
}

impl std::fmt::Debug for Element<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Element({:?})", self.css)
    }
}

/// Polls `condition` until it holds (true) or `timeout` passes (false).
#[must_use = "assert on the result"]
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `target/test-artifacts/`, created if missing: screenshots and logs that
/// outlive the test run.
pub fn artifacts_dir() -> PathBuf {
    try_artifacts_dir().unwrap_or_else(|err| panic!("creating target/test-artifacts: {err}"))
}

fn try_artifacts_dir() -> std::io::Result<PathBuf> {
    // target/<profile>/deps/<test exe>: right whatever CARGO_TARGET_DIR says.
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or_else(|| std::io::Error::other("test executable outside target/<profile>/deps"))?;
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Starts chromedriver on a free loopback port and waits until it is ready.
fn spawn_driver(log: &Path) -> (Child, SocketAddr) {
    // The port is free when we look; if another process takes it before
    // chromedriver binds it, chromedriver exits and we try another.
    for _ in 0..3 {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port");
        let log_file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|err| panic!("opening {}: {err}", log.display()));
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("chromedriver log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "running chromedriver: {err} (Debian: apt-get install chromium chromium-driver)"
                )
            });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(reply) = request(addr, "GET", "/status", None, STARTUP_TIMEOUT)
                && reply.value["ready"] == true
            {
                return (driver, addr);
            }
            if driver.try_wait().expect("chromedriver status").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver not ready after {STARTUP_TIMEOUT:?}; its log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    panic!(
        "chromedriver exited at start three times; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// What chromedriver answered: the HTTP status and the reply's `value`.
struct Reply {
    status: u16,
    value: Value,
}

impl Reply {
    fn into_result(self) -> Result<Value, Failure> {
        match self.value.get("error").and_then(Value::as_str) {
            Some(error) if self.status != 200 => Err(Failure {
                error: error.to_owned(),
                message: self.value["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }),
            _ if self.status != 200 => Err(Failure {
                error: format!("HTTP status {}", self.status),
                message: self.value.to_string(),
            }),
            _ => Ok(self.value),
        }
    }
}

/// A WebDriver error: its code (`no such element`…) and message.
#[derive(Debug)]
struct Failure {
    error: String,
    message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// One HTTP/1.1 exchange with chromedriver, on its own connection. The
/// body is read by its Content-Length: chromedriver never sends chunked
/// replies, and keeps the connection open despite `Connection: close`.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| invalid("reply without a status"))?;
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("reply ends inside its head"));
        }
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        }
    }
    let mut body = vec![0; length.ok_or_else(|| invalid("reply without a Content-Length"))?];
    reader.read_exact(&mut body)?;
    let json: Value = serde_json::from_slice(&body)?;
    let value = match json {
        Value::Object(mut object) => object.remove("value").unwrap_or(Value::Null),
        _ => return Err(invalid("reply is not a JSON object")),
    };
    Ok(Reply { status, value })
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

fn string(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => panic!("webdriver returned {other}, expected a string"),
    }
}

/// Standard base64 (screenshots), padding and line breaks ignored.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => panic!("invalid base64 byte {byte:#04x}"),
        };
        // Fewer than 8 bits wait between bytes, so 14 bits always suffice.
        bits = (bits << 6 | u32::from(sextet)) & 0x3fff;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_every_padding_length() {
        assert_eq!(base64_decode(""), b"");
        assert_eq!(base64_decode("Zg=="), b"f");
        assert_eq!(base64_decode("Zm8="), b"fo");
        assert_eq!(base64_decode("Zm9v"), b"foo");
        assert_eq!(base64_decode("Zm9vYmFy"), b"foobar");
        assert_eq!(base64_decode("iVBORw0KGgo=\n"), b"\x89PNG\r\n\x1a\n");
        assert_eq!(base64_decode("+/8="), [0xfb, 0xff]);
    }
}
