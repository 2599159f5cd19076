//! The tests' HTTP client: one crate (`ureq`, plain HTTP/1.1 on loopback)
//! behind the harness's old helpers, so a test still reads
//! `let (status, head, body) = http_request(addr, "GET", path, "Range: …\r\n")`.
//!
//! Tests about raw bytes on the wire (malformed or pipelined requests, slow
//! or half-sent heads, HTTP/1.0) keep writing to a `TcpStream` on purpose:
//! a client crate would refuse to send such requests. They read the answer
//! with [`parse_response`].

use std::net::SocketAddr;
use std::time::Duration;

/// How long one request may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(120);

/// One HTTP/1.1 request on loopback with extra header lines (each ending in
/// `\r\n`): (status, head, body), the body decoded as the server framed it.
/// `head` is the status line and the headers, one `Name: value` a line.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, String, Vec<u8>) {
    http_request_with_body(addr, method, path, headers, b"")
}

/// [`http_request`] with a request body (its Content-Length is added).
pub fn http_request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    try_http_request(addr, method, path, headers, body)
        .unwrap_or_else(|err| panic!("{method} http://{addr}{path}: {err}"))
}

/// [`http_request_with_body`], a transport failure returned, not a panic.
pub fn try_http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Result<(u16, String, Vec<u8>), ureq::Error> {
    // A new agent per request: no pooled connection outlives the call, as
    // with the old `Connection: close` client (tests count connections).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .allow_non_standard_methods(true)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for line in headers.split("\r\n").filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("header line without a colon: {line:?}"));
        request = request.header(name.trim(), value.trim());
    }
    let request = request
        .header("connection", "close")
        .body(body.to_vec())
        .unwrap_or_else(|err| panic!("building {method} {path}: {err}"));
    let mut response = agent.run(request)?;
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        head.push_str("\r\n");
        head.push_str(&title_case(name.as_str()));
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()?;
    Ok((status.as_u16(), head, body))
}

/// `content-type` → `Content-Type`, as servers usually write them.
fn title_case(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A whole HTTP/1.x response as read from a raw socket until the server
/// closed: (status, head, body), a chunked body decoded. For the raw tests.
pub fn parse_response(response: &[u8]) -> (u16, String, Vec<u8>) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .expect("status")
        .parse()
        .expect("number");
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end])
                .expect("ascii")
                .trim(),
            16,
        )
        .expect("hex");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

/// A header's value from a response head, by case-insensitive name.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}
