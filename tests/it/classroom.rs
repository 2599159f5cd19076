//! `shanlu edge run`: the classroom server's file semantics and JSON API.

use std::path::Path;

use serde_json::Value;
use shanlu_tests::{TestEdge, TestOrigin, generated, header, http_request as request};

const VIDEO: usize = 3 * 1024 * 1024;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn lesson_files_honour_ranges_conditionals_and_stay_inside_their_lesson() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("数学");
    let video = generated(VIDEO, 21);
    write(&src, "01-数数/lesson.mp4", &video);
    write(
        &src,
        "01-数数/index.html",
        "<video src='lesson.mp4'></video>".as_bytes(),
    );
    write(&src, "01-数数/img/苹果.svg", b"<svg/>");
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("classroom-1");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let running = edge.run();
    let addr = running.addr;

    // The JSON API lists the course and gives each file's URL and hash.
    let (status, _, body) = request(addr, "GET", "/api/v1/courses", "");
    assert_eq!(status, 200);
    let courses: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(courses[0]["id"], "数学");
    let (status, _, body) = request(addr, "GET", "/api/v1/courses/%E6%95%B0%E5%AD%A6", "");
    assert_eq!(status, 200);
    let course: Value = serde_json::from_slice(&body).expect("json");
    let file = course["lessons"][0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "lesson.mp4")
        .expect("video");
    let url = file["url"].as_str().expect("url").to_owned();
    let blake3 = file["blake3"].as_str().expect("hash").to_owned();
    assert_eq!(blake3, blake3::hash(&video).to_hex().as_str());
    assert_eq!(file["size"], VIDEO as u64);
    let etag = format!("\"{blake3}\"");

    // Whole file, HEAD, content type, ETag.
    let (status, head, body) = request(addr, "GET", &url, "");
    assert_eq!(status, 200);
    assert_eq!(body, video);
    assert_eq!(header(&head, "content-type"), Some("video/mp4"));
    assert_eq!(header(&head, "etag"), Some(etag.as_str()));
    assert_eq!(header(&head, "accept-ranges"), Some("bytes"));
    let (status, head, body) = request(addr, "HEAD", &url, "");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(
        header(&head, "content-length"),
        Some(VIDEO.to_string().as_str())
    );

    // Ranges.
    let range = |spec: &str| request(addr, "GET", &url, &format!("Range: {spec}\r\n"));
    let (status, head, body) = range("bytes=0-0");
    assert_eq!((status, body.as_slice()), (206, &video[..1]));
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 0-0/{VIDEO}").as_str())
    );
    let (status, _, body) = range("bytes=-500");
    assert_eq!((status, body.as_slice()), (206, &video[VIDEO - 500..]));
    let (status, _, body) = range(&format!("bytes={}-", VIDEO - 10));
    assert_eq!((status, body.as_slice()), (206, &video[VIDEO - 10..]));
    let (status, head, _) = range(&format!("bytes={VIDEO}-"));
    assert_eq!(status, 416);
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes */{VIDEO}").as_str())
    );
    let (status, _, body) = range("bytes=oops");
    assert_eq!((status, body.len()), (200, VIDEO));
    let (status, head, body) = range("bytes=0-9, 100-109");
    assert_eq!(status, 206);
    let content_type = header(&head, "content-type").expect("type");
    assert!(
        content_type.starts_with("multipart/byteranges; boundary="),
        "{content_type}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(&format!("Content-Range: bytes 0-9/{VIDEO}")),
        "{text}"
    );
    assert!(text.contains(&format!("Content-Range: bytes 100-109/{VIDEO}")));
    let at = body
        .windows(10)
        .position(|w| w == &video[100..110])
        .expect("second part present");
    assert!(at > 0);

    // Conditional requests.
    let (status, head, body) = request(addr, "GET", &url, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(
        header(&head, "content-length"),
        None,
        "a 304 has no body to measure"
    );
    let (status, _, body) = request(
        addr,
        "GET",
        &url,
        &format!("Range: bytes=0-9\r\nIf-Range: {etag}\r\n"),
    );
    assert_eq!((status, body.len()), (206, 10));
    let (status, _, body) = request(
        addr,
        "GET",
        &url,
        "Range: bytes=0-9\r\nIf-Range: \"stale\"\r\n",
    );
    assert_eq!((status, body.len()), (200, VIDEO));

    // Content-addressed URL: immutable.
    let (status, head, body) = request(addr, "GET", &format!("/files/{blake3}"), "");
    assert_eq!(status, 200);
    assert_eq!(body, video);
    assert!(
        header(&head, "cache-control")
            .expect("cache")
            .contains("immutable")
    );

    // Nested, non-ASCII paths work; attempts to leave the lesson get 404.
    let lesson = url.rsplit_once('/').expect("slash").0.to_owned();
    assert_eq!(
        request(
            addr,
            "GET",
            &format!("{lesson}/img/%E8%8B%B9%E6%9E%9C.svg"),
            ""
        )
        .0,
        200
    );
    for escape in [
        "/../index.html",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/img/..%5C..%5Cindex.html",
        "/..\\index.html",
    ] {
        let (status, _, _) = request(addr, "GET", &format!("{lesson}{escape}"), "");
        assert_eq!(status, 404, "{escape}");
    }
    assert_eq!(request(addr, "GET", "/files/not-a-hash", "").0, 404);

    let (status, _, body) = request(addr, "GET", "/api/v1/status", "");
    assert_eq!(status, 200);
    let status: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status["catalog_sequence"], 1);
}
