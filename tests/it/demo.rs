//! `shanlu demo`: origin, sample courses, QUIC sync and the classroom, in one command.

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::Path;

use shanlu_tests::shanlu;

/// Runs the demo until its classroom is up; returns the child, its address and what it printed.
pub(crate) fn start_demo(
    data: &Path,
) -> (
    std::process::Child,
    SocketAddr,
    String,
    std::thread::JoinHandle<String>,
) {
    let mut child = shanlu()
        .args([
            "demo",
            "--data",
            data.to_str().expect("utf-8"),
            "--port",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run demo");
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = String::new();
    let mut addr = None;
    // Up to the dashboard's line, printed after the classroom's.
    loop {
        let line = lines
            .next()
            .expect("the demo printed its classroom and dashboard URLs")
            .expect("utf-8");
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("Classroom: http://") {
            addr = Some(rest.trim_end_matches('/').parse().expect("address"));
        }
        if line.starts_with("Bureau's dashboard: ") {
            break;
        }
    }
    let addr = addr.expect("the demo printed its classroom URL");
    std::thread::spawn(move || for _ in lines {});
    (child, addr, printed, errors)
}

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = shanlu_tests::http_request(addr, "GET", path, extra);
    (status, body)
}

/// Presses Ctrl-C on the demo and waits (up to 30 s, then kills it and panics) for it to exit.
pub(crate) fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            return exit;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo was still running 30 s after Ctrl-C");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn demo_publishes_syncs_over_quic_serves_the_classroom_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("demo");
    let (mut child, addr, printed, errors) = start_demo(&data);
    assert!(printed.contains("published grade3-math v1"), "{printed}");
    assert!(printed.contains("edge synced over QUIC"), "{printed}");

    let (status, body) = get(addr, "/api/v1/courses/grade3-math", "");
    assert_eq!(status, 200);
    let course: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(course["title"]["zh"], "三年级数学");

    // A byte range of a sample file is the same bytes as the file in the repository.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/sample-courses/grade3-math/01-counting/img/apples.svg");
    let bytes = std::fs::read(&sample).expect("sample file");
    let (status, body) = get(
        addr,
        "/courses/grade3-math/01-counting/img/apples.svg",
        "Range: bytes=10-99\r\n",
    );
    assert_eq!(status, 206);
    assert_eq!(body, bytes[10..100]);
    let (status, body) = get(addr, "/courses/grade3-math/02-addition/index.html", "");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("凑十法"));

    // The pages a teacher opens: the course list, a lesson, and its video, seekable.
    let (status, home) = get(addr, "/", "Accept-Language: zh-CN\r\n");
    assert_eq!(status, 200);
    let home = String::from_utf8(home).expect("utf-8");
    assert!(
        home.contains("三年级数学") && home.contains("彝汉双语识字"),
        "{home}"
    );
    let (status, lesson) = get(
        addr,
        "/course/yi-literacy/02-numbers",
        "Accept-Language: en\r\n",
    );
    assert_eq!(status, 200);
    let lesson = String::from_utf8(lesson).expect("utf-8");
    assert!(
        lesson.contains(r#"src="/courses/yi-literacy/02-numbers/index.html""#),
        "{lesson}"
    );
    let video = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tools/sample-courses/yi-literacy/02-numbers/video/intro.mp4"),
    )
    .expect("sample video");
    let (status, body) = get(
        addr,
        "/courses/yi-literacy/02-numbers/video/intro.mp4",
        "Range: bytes=100000-149999\r\n",
    );
    assert_eq!(status, 206);
    assert_eq!(body, video[100_000..150_000]);

    // The bureau's dashboard shows the demo school's report (issue 15).
    let (admin, token) = printed
        .lines()
        .find_map(|l| l.strip_prefix("Bureau's dashboard: http://"))
        .and_then(|rest| rest.split_once("/   admin token: "))
        .expect("the dashboard's line");
    let admin: SocketAddr = admin.parse().expect("dashboard address");
    let (status, head, _) = shanlu_tests::http_request_with_body(
        admin,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        format!("token={token}").as_bytes(),
    );
    assert_eq!(status, 303, "{head}");
    let cookie = shanlu_tests::header(&head, "set-cookie").expect("a session");
    let cookie = cookie.split(';').next().expect("name=value");
    let (status, _, edges) = shanlu_tests::http_request_with_body(
        admin,
        "GET",
        "/edges.json",
        &format!("Cookie: {cookie}\r\n"),
        b"",
    );
    assert_eq!(status, 200);
    let edges: serde_json::Value = serde_json::from_slice(&edges).expect("JSON");
    let name = edges["edges"][0]["name"].as_str().unwrap_or("");
    assert!(name.starts_with("demo-school"), "{edges:#}");
    assert_eq!(edges["edges"][0]["catalog_lag"], 0, "{edges:#}");

    let exit = interrupt(&mut child);
    assert!(exit.success(), "the demo did not stop cleanly: {exit}");
    let stderr = errors.join().expect("stderr");
    assert!(stderr.trim().is_empty(), "the demo warned:\n{stderr}");

    // Run again on the same data: nothing new to publish or fetch.
    let (mut child, _, printed, _) = start_demo(&data);
    let published: Vec<&str> = printed
        .lines()
        .filter(|l| l.starts_with("published "))
        .collect();
    assert_eq!(published.len(), 2, "{printed}");
    for line in published {
        assert!(line.contains(" v1 (catalog sequence 2)"), "{printed}");
        assert!(line.ends_with(", 0 new chunks"), "{printed}");
    }
    assert!(printed.contains("fetched 0 B"), "{printed}");
    assert!(interrupt(&mut child).success());
}

#[test]
fn the_sample_courses_publish_without_warnings_and_verify() {
    let origin = shanlu_tests::TestOrigin::init();
    let courses = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/sample-courses");
    for entry in std::fs::read_dir(courses).expect("sample courses") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue; // the media script and its notes
        }
        let output = shanlu()
            .args([
                "publish",
                path.to_str().expect("utf-8"),
                "--data",
                &origin.data_str(),
            ])
            .output()
            .expect("publish");
        assert!(output.status.success());
        assert!(
            output.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let verify = shanlu_tests::run_ok(&["verify", &origin.data_str()]);
    assert!(verify.contains("all good"), "{verify}");
}
