//! Read-through: lessons the edge does not hold are fetched when a classroom
//! opens them, streamed while they arrive, kept; with the origin down the
//! reader is told so at once.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use shanlu_tests::{Relay, TestEdge, TestOrigin, generated, header};

const VIDEO: usize = 6 * 1024 * 1024;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A held course "a" and an unsubscribed course "b" with a video.
fn two_courses(origin: &TestOrigin) -> Vec<u8> {
    let a = origin.dir.path().join("a");
    write(&a, "course.toml", b"id = \"a\"\n");
    write(&a, "01/index.html", "<p>课一</p>".as_bytes());
    let b = origin.dir.path().join("b");
    write(&b, "course.toml", b"id = \"b\"\n");
    write(&b, "01/index.html", b"<video src='video.mp4'></video>");
    let video = generated(VIDEO, 77);
    write(&b, "01/video.mp4", &video);
    write(&b, "02/notes.txt", "第二课的笔记\n".repeat(200).as_bytes());
    origin.publish(&a);
    origin.publish(&b);
    video
}

#[test]
fn an_unsubscribed_lesson_streams_before_it_has_all_arrived_and_is_then_kept() {
    let origin = TestOrigin::init();
    let video = two_courses(&origin);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    let token = origin.add_edge("read-through");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "a");
    edge.sync_ok();
    let web = edge.run();
    // Let the start-up sync (nothing to fetch) finish before counting bytes.
    assert!(shanlu_tests::wait_until(Duration::from_secs(30), || {
        let status = web.json("/api/v1/status");
        status["live"]["upstream"]["reachable"] == true && status["live"]["syncing"] == false
    }));
    let video_hash = blake3::hash(&video).to_hex().to_string();
    assert!(
        !edge.blob_path(&video_hash).exists(),
        "course b is not subscribed"
    );

    // A slow link: 1 MiB/s. The first bytes reach the reader long before the file is whole.
    relay.set_rate(1024 * 1024);
    let before = relay.to_edge();
    // A raw socket on purpose: the test times the first body bytes on the wire.
    let mut stream = std::net::TcpStream::connect(web.addr).expect("connect");
    write!(
        stream,
        "GET /courses/b/01/video.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut received = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let head_end = loop {
        let n = stream.read(&mut buffer).expect("read");
        assert!(n > 0, "the answer ended early");
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n")
            && received.len() > end + 4
        {
            break end;
        }
    };
    let carried_at_first_bytes = relay.to_edge() - before;
    assert!(
        carried_at_first_bytes < (VIDEO / 2) as u64,
        "first bytes came only after {carried_at_first_bytes} bytes had crossed the link"
    );
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(VIDEO.to_string().as_str())
    );
    assert_eq!(
        header(&head, "etag"),
        Some(format!("\"{video_hash}\"").as_str())
    );
    stream.read_to_end(&mut received).expect("the rest");
    let body = &received[head_end + 4..];
    assert_eq!(body.len(), VIDEO);
    assert!(body == video.as_slice(), "read-through bytes differ");
    relay.set_rate(0);

    // The file joins the store, verified; the next reader is served from disk.
    // Held means recorded in the index, which follows the file's rename into
    // place: wait for the API to say so, not only for the file to appear.
    let video_held = || {
        let (_, _, body) = web.get("/api/v1/courses/b", "");
        let course: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        course["lessons"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|lesson| lesson["files"].as_array().into_iter().flatten())
            .any(|file| file["blake3"] == video_hash.as_str() && file["held"] == true)
    };
    assert!(shanlu_tests::wait_until(Duration::from_secs(20), || edge
        .blob_path(&video_hash)
        .exists()
        && video_held()));
    let carried = relay.to_edge();
    let (status, _, body) = web.get(
        "/courses/b/01/video.mp4",
        "Range: bytes=5000000-5000099\r\n",
    );
    assert_eq!(status, 206);
    assert_eq!(body, video[5_000_000..5_000_100]);
    assert_eq!(
        relay.to_edge(),
        carried,
        "a held file went to the origin again"
    );

    // A range of a file not held: just those bytes, fetched now.
    let notes = "第二课的笔记\n".repeat(200).into_bytes();
    let (status, head, body) = web.get("/courses/b/02/notes.txt", "Range: bytes=100-199\r\n");
    assert_eq!(status, 206, "{head}");
    assert_eq!(
        header(&head, "content-range"),
        Some(format!("bytes 100-199/{}", notes.len()).as_str())
    );
    assert_eq!(body, notes[100..200]);

    let (_, _, metrics) = web.get("/metrics", "");
    let metrics = String::from_utf8(metrics).expect("utf-8");
    assert!(
        metrics.contains("shanlu_edge_cache_misses_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shanlu_edge_cache_hits_total 1"),
        "{metrics}"
    );
}

#[test]
fn with_the_origin_down_a_lesson_not_held_says_so_and_nothing_hangs() {
    let origin = TestOrigin::init();
    two_courses(&origin);
    let served = origin.serve();
    let token = origin.add_edge("offline");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "a");
    edge.sync_ok();
    served.kill();
    let web = edge.run();

    // A held lesson still works.
    let (status, page) = web.page("/course/a/01", "en");
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains(r#"id="offline""#));

    // One not held: a clear message, in the reader's language, within seconds.
    let started = Instant::now();
    let (status, page) = web.page("/course/b/01", "en");
    assert_eq!(status, 503);
    assert!(page.contains(r#"id="offline""#), "{page}");
    assert!(
        page.contains("This lesson is not available offline yet"),
        "{page}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    let (_, page) = web.page("/course/b/01", "zh");
    assert!(page.contains("这节课还不能离线使用"), "{page}");

    // The file itself: 503 at once, in text for a player, as a page for a browser.
    let started = Instant::now();
    let (status, head, body) = web.get("/courses/b/01/video.mp4", "");
    assert_eq!(status, 503);
    assert_eq!(header(&head, "retry-after"), Some("30"));
    assert!(String::from_utf8_lossy(&body).contains("not available offline yet"));
    let (status, html) = web.page("/courses/b/01/index.html", "bo");
    assert_eq!(status, 503);
    assert!(html.contains("སློབ་ཚན་འདི་ད་དུང་དྲ་མེད་ཐོག་ལྟ་མི་ཐུབ།"), "{html}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );

    // The status page says the origin is unreachable.
    let status = web.json("/api/v1/status");
    assert_eq!(status["live"]["upstream"]["reachable"], false, "{status}");
    let (_, page) = web.page("/status", "en");
    assert!(page.contains("unreachable"), "{page}");
}
