//! Issue 12, the classroom half: a connection that once went to hyper still
//! gets `sendfile` for its later file requests, and a held file the store
//! cannot open is a 500 with its cause logged, never an empty answer.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use shanlu_tests::{TestEdge, TestOrigin, generated, header, http_request};

const VIDEO: usize = 700 * 1024;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// An origin with one course ("math": a page and a video), an edge that
/// holds it, and the video's bytes.
fn synced_edge() -> (TestOrigin, shanlu_tests::ServedOrigin, TestEdge, Vec<u8>) {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    let video = generated(VIDEO, 12);
    write(&src, "01-count/lesson.mp4", &video);
    write(
        &src,
        "01-count/index.html",
        b"<video src='lesson.mp4'></video>",
    );
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("house-1");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    (origin, served, edge, video)
}

/// The video's URL and BLAKE3, from the JSON API.
fn video_of(addr: std::net::SocketAddr) -> (String, String) {
    let (status, _, body) = http_request(addr, "GET", "/api/v1/courses/math", "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let course: Value = serde_json::from_slice(&body).expect("json");
    let file = course["lessons"][0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "lesson.mp4")
        .expect("the video")
        .clone();
    (
        file["url"].as_str().expect("url").to_owned(),
        file["blake3"].as_str().expect("hash").to_owned(),
    )
}

/// A counter's value in `/metrics` text (its labels included in `name`).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// One answer read off a kept-alive connection: (status, head, body), the
/// body by its `content-length` or chunked.
fn read_answer(stream: &mut std::io::BufReader<TcpStream>) -> (u16, String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let read = stream.read_line(&mut line).expect("a head line");
        assert!(read > 0, "the connection closed before an answer: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut body = Vec::new();
    if let Some(len) = header(&head, "content-length") {
        body.resize(len.parse().expect("a length"), 0);
        stream.read_exact(&mut body).expect("the body");
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        for _ in 0..100_000 {
            let mut size = String::new();
            stream.read_line(&mut size).expect("a chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex");
            let mut chunk = vec![0; size + 2];
            stream.read_exact(&mut chunk).expect("a chunk");
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    }
    (status, head, body)
}

/// Issue 12: browsers reuse connections. Over one kept-alive connection, a
/// request hyper answers (the API) comes first; the lesson file asked for
/// next is still sent by the front door with `sendfile`, as is a range
/// after a page, and each answer's bytes are right.
#[test]
fn a_connection_that_went_to_hyper_still_gets_sendfile_for_later_files_issue_12() {
    let (_origin, _served, edge, video) = synced_edge();
    let running = edge.run();
    let (url, _) = video_of(running.addr);
    let sendfile_before = counter(&running.metrics(), "shanlu_edge_sendfile_responses_total");

    let stream = TcpStream::connect(running.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = std::io::BufReader::new(stream);
    let mut ask = |path: &str, extra: &str| {
        write!(writer, "GET {path} HTTP/1.1\r\nHost: edge\r\n{extra}\r\n").expect("request");
        read_answer(&mut reader)
    };

    // 1: the API, answered by hyper and the router.
    let (status, _, body) = ask("/api/v1/courses", "");
    assert_eq!(status, 200);
    let courses: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(courses[0]["id"], "math");
    // 2: the lesson's video on the same connection: sendfile.
    let (status, head, body) = ask(&url, "");
    assert_eq!(status, 200, "{head}");
    assert!(body == video, "the video's bytes, whole");
    // 3: a page, hyper again; 4: a range of the video, sendfile again.
    let (status, _, page) = ask("/course/math", "Accept: text/html\r\n");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&page).contains("01-count"));
    let (status, head, body) = ask(&url, "Range: bytes=1000-1999\r\n");
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, &video[1000..2000]);
    // 5: an answer hyper streams (a 404 page), then the file once more.
    let (status, _, _) = ask("/course/nothing", "Accept: text/html\r\n");
    assert_eq!(status, 404);
    let (status, _, body) = ask(&url, "Range: bytes=-10\r\n");
    assert_eq!((status, body.as_slice()), (206, &video[VIDEO - 10..]));

    let metrics = running.metrics();
    assert_eq!(
        counter(&metrics, "shanlu_edge_sendfile_responses_total") - sendfile_before,
        3,
        "the three file answers went by sendfile:\n{metrics}"
    );
}

/// Issue 12: a held file the store cannot open (here its folder in `blobs/`
/// replaced by a file, as a failing disk or a stray script might leave it)
/// is answered 500, by hash and by place, with a body that says what failed
/// — never a 404, an empty 200 or a file read through as if nothing were
/// wrong — and the log names the request path and the cause. Once the
/// folder is back, the file is served again.
#[test]
fn a_held_file_the_store_cannot_open_is_a_500_with_its_cause_logged_issue_12() {
    let (_origin, _served, edge, video) = synced_edge();
    let log = edge.data().join("edge-run.log");
    let running = edge.run_logged(&log);
    let (url, blake3) = video_of(running.addr);
    let by_hash = format!("/files/{blake3}");
    let (status, _, body) = http_request(running.addr, "GET", &by_hash, "");
    assert_eq!((status, body.len()), (200, VIDEO));

    let blob = edge.blob_path(&blake3);
    let folder = blob.parent().expect("the blob's folder").to_owned();
    let aside = edge.data().join("folder-aside");
    std::fs::rename(&folder, &aside).expect("move the folder aside");
    std::fs::write(&folder, b"not a folder").expect("a file in its place");

    for path in [by_hash.as_str(), url.as_str()] {
        for method in ["GET", "HEAD"] {
            let (status, head, body) = http_request(running.addr, method, path, "");
            assert_eq!(status, 500, "{method} {path}: {head}");
            if method == "GET" {
                let text = String::from_utf8_lossy(&body);
                assert!(
                    text.contains(&format!("opening held file {blake3}")),
                    "{method} {path}: {text}"
                );
            }
        }
    }
    let logged = std::fs::read_to_string(&log).expect("the log");
    let line = logged
        .lines()
        .find(|line| line.contains("answering 500") && line.contains(&url))
        .unwrap_or_else(|| panic!("a log line for {url}:\n{logged}"));
    assert!(
        line.contains(&format!("opening held file {blake3}")) && line.contains("Not a directory"),
        "the log line names the cause: {line}"
    );
    assert!(
        line.contains(&folder.join(&blake3).display().to_string()),
        "the log line names the file: {line}"
    );

    std::fs::remove_file(&folder).expect("remove the file");
    std::fs::rename(&aside, &folder).expect("put the folder back");
    let (status, _, body) = http_request(running.addr, "GET", &url, "");
    assert_eq!(status, 200);
    assert!(body == video, "served again once the folder is back");
}
