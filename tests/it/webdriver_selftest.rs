//! The WebDriver client itself, against a one-page server: if these fail,
//! the browser tests' failures say nothing about shanlu.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use serde_json::json;
use shanlu_tests::webdriver::{Browser, wait_until};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>WebDriver self-test</title>
</head>
<body>
<p id="status">waiting</p>
<button id="go" data-role="primary">Go</button>
<input id="name">
<ul><li>one</li><li>two</li><li>three</li></ul>
<script>
document.getElementById("go").addEventListener("click", () => {
  setTimeout(() => { document.getElementById("status").textContent = "clicked"; }, 100);
});
</script>
</body>
</html>
"#;

/// Serves `PAGE` at `/` (404 elsewhere) on a loopback port, one thread per connection.
fn serve_page() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let addr = listener.local_addr().expect("page server address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let (status, body) = match head.split_whitespace().nth(1) {
                    Some("/") => ("200 OK", PAGE),
                    _ => ("404 Not Found", ""),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    addr
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

#[test]
fn drives_a_page() {
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let url = format!("http://{}/", serve_page());
    let browser = Browser::start();
    browser.goto(&url);
    assert_eq!(browser.url(), url);
    assert_eq!(browser.title(), "WebDriver self-test");

    let button = browser.find("#go");
    assert_eq!(button.text(), "Go");
    assert_eq!(button.attr("data-role").as_deref(), Some("primary"));
    assert_eq!(button.attr("data-missing"), None);
    assert!(button.is_displayed());
    let status = browser.find("#status");
    assert_eq!(status.text(), "waiting");
    button.click();
    assert!(
        wait_until(Duration::from_secs(5), || status.text() == "clicked"),
        "the click never changed the status: {:?}",
        status.text()
    );

    let items: Vec<String> = browser
        .find_all("li")
        .iter()
        .map(|item| item.text())
        .collect();
    assert_eq!(items, ["one", "two", "three"]);
    assert!(browser.find_all("table").is_empty());

    let name = browser.find("#name");
    name.send_keys("Ada");
    assert_eq!(name.property("value"), json!("Ada"));
    assert_eq!(
        browser.execute("return arguments[0].value.length", vec![name.to_json()]),
        json!(3)
    );

    assert_eq!(browser.execute("return 6 * 7", vec![]), json!(42));
    assert_eq!(
        browser.execute(
            "return arguments[0] + arguments[1]",
            vec![json!(2), json!(3)]
        ),
        json!(5)
    );
    browser.set_script_timeout(Duration::from_secs(5));
    let late = browser.execute_async(
        "const done = arguments[arguments.length - 1];
         setTimeout(() => done({ word: arguments[0], at: 'later' }), 100);",
        vec![json!("hello")],
    );
    assert_eq!(late, json!({ "word": "hello", "at": "later" }));

    let shot = browser.screenshot("webdriver-selftest/desktop.png");
    let png = std::fs::read(&shot).expect("read the screenshot");
    let (width, _) = png_size(&png);
    assert_eq!(width, 1280, "the screenshot is as wide as the window");

    assert!(browser.try_find("#missing").is_none());
    let missing = std::panic::catch_unwind(AssertUnwindSafe(|| {
        browser.find("#missing");
    }));
    let payload = missing.expect_err("finding a missing element panics");
    let message = payload
        .downcast_ref::<String>()
        .expect("the panic carries a message");
    assert!(
        message.contains("\"#missing\"") && message.contains(&url),
        "the panic names the selector and the page: {message}"
    );
    let bad_script = std::panic::catch_unwind(AssertUnwindSafe(|| {
        browser.execute("throw new Error('boom')", vec![]);
    }));
    let payload = bad_script.expect_err("a failing script panics");
    let message = payload
        .downcast_ref::<String>()
        .expect("the panic carries a message");
    assert!(
        message.contains("boom"),
        "the panic quotes the error: {message}"
    );
}

#[test]
fn phone_viewport_is_as_narrow_as_asked() {
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let url = format!("http://{}/", serve_page());
    let browser = Browser::start_with_window(360, 740);
    browser.goto(&url);
    assert_eq!(
        browser.execute("return window.innerWidth", vec![]),
        json!(360)
    );
    let shot = browser.screenshot("webdriver-selftest/phone.png");
    let png = std::fs::read(&shot).expect("read the screenshot");
    assert_eq!(png_size(&png), (360, 740));
}
