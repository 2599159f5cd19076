//! Issue 11: `shanlu ls | head` and `shanlu edge status | head` end quietly
//! when the reader closes the pipe, instead of panicking.

use std::path::Path;
use std::process::Stdio;

use shanlu_tests::{ServedOrigin, TestEdge, TestOrigin, shanlu};

/// Runs `shanlu args` with stdout a pipe whose reader is already gone, as
/// after `| head` has read its lines: the first write fails with EPIPE.
fn into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = shanlu()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run shanlu");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn sample_course(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/sample-courses")
        .join(name)
}

#[test]
fn listing_into_a_closed_pipe_exits_quietly() {
    let origin = TestOrigin::init();
    origin.publish(&sample_course("grade3-math"));
    let data = origin.data_str();
    for args in [
        vec!["ls", "--data", &data],
        vec!["ls", "--data", &data, "--json"],
    ] {
        let (code, stderr) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn edge_status_into_a_closed_pipe_exits_quietly() {
    let origin = TestOrigin::init();
    let served: ServedOrigin = origin.serve();
    let token = origin.add_edge("pipe-school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    let data = edge.data_str();
    for args in [
        vec!["edge", "status", "--data", &data],
        vec!["edge", "status", "--data", &data, "--json"],
    ] {
        let (code, stderr) = into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
