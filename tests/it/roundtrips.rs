//! Issue 12, item 3: small updates in few round trips. The edge names the
//! catalog it holds and gets, in one answer, the new catalog with every
//! metadata object it lacks (`CatalogSince`, protocol revision 2), then the
//! chunks. Old edges keep asking level by level. The timed test runs across
//! `tools/linksim` (root and /dev/net/tun, like `links`).

use std::time::{Duration, Instant};

use linksim::LinkSpec;
use server::protocol::{Request, Response, decode, encode};
use shanlu_tests::{TestOrigin, generated, http_request_with_body};

use crate::pipelined::Across;
use crate::sync::assert_edge_holds;

const MS: Duration = Duration::from_millis(1);

pub(crate) fn write(src: &std::path::Path, rel: &str, bytes: &[u8]) {
    let path = src.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// A course of a few pages and a 2 MiB video.
pub(crate) fn course(src: &std::path::Path) {
    write(
        src,
        "01-count/index.html",
        "<h1>ꆈꌠꁱꂷ 一到十</h1>".as_bytes(),
    );
    write(src, "01-count/lesson.mp4", &generated(2 * 1024 * 1024, 121));
    write(src, "02-add/index.html", b"<h1>1 + 1</h1>");
    write(src, "03-shapes/index.html", b"<h1>shapes</h1>");
}

/// The frames of an HTTP answer body.
fn frames(mut body: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while body.len() >= 4 {
        let len = u32::from_le_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        out.push(decode(&body[4..4 + len]).expect("a response frame"));
        body = &body[4 + len..];
    }
    assert!(body.is_empty(), "a partial frame at the end");
    out
}

fn sync_request(served: std::net::SocketAddr, token: &str, request: &Request) -> Vec<Response> {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, head, body) =
        http_request_with_body(served, "POST", "/v1/sync", &auth, &encode(request));
    assert_eq!(status, 200, "{head}");
    frames(&body)
}

/// Issue 12: the origin announces revision 2; `CatalogSince` brings the
/// catalog and exactly the objects a one-page edit added, while the
/// revision-1 requests an old edge sends are answered as before.
#[test]
fn catalog_since_answers_the_catalog_and_only_the_missing_objects_and_old_requests_still_work() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("math");
    course(&src);
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("school-rt1");

    let welcome = sync_request(
        served.http,
        &token,
        &Request::Hello {
            version: 1,
            token: String::new(),
        },
    );
    assert!(
        matches!(
            welcome.as_slice(),
            [Response::Welcome {
                version: server::protocol::REVISION,
                ..
            }]
        ),
        "{welcome:?}"
    );

    // A fresh edge: the catalog and every object (1 course, 3 lessons, 4 manifests).
    let fresh = sync_request(
        served.http,
        &token,
        &Request::CatalogSince {
            have_sequence: None,
            have_courses: vec![],
        },
    );
    let Some(Response::Catalog {
        signed: Some(signed),
    }) = fresh.first()
    else {
        panic!("the catalog first: {fresh:?}")
    };
    assert_eq!(fresh.len(), 1 + 8, "{fresh:?}");
    let held = catalog::SignedCatalog::decode(signed)
        .expect("signed")
        .verify(&origin.key.parse().expect("key"))
        .expect("verifies");
    let held_courses: Vec<catalog::Hash> = held.courses.values().map(|e| e.hash).collect();
    for response in &fresh[1..] {
        let Response::Object { hash, bytes } = response else {
            panic!("objects after the catalog: {response:?}")
        };
        catalog::Object::decode_verified(hash, bytes).expect("each object matches its hash");
    }

    // Current: no catalog, no objects.
    let current = sync_request(
        served.http,
        &token,
        &Request::CatalogSince {
            have_sequence: Some(held.sequence),
            have_courses: held_courses.clone(),
        },
    );
    assert_eq!(current, [Response::Catalog { signed: None }]);

    // One page edited and one file added to that lesson: the course, the
    // lesson and two manifests.
    write(&src, "02-add/index.html", b"<h1>1 + 1 = 2</h1>");
    write(&src, "02-add/worksheet.pdf", &generated(300 * 1024, 122));
    origin.publish(&src);
    let update = sync_request(
        served.http,
        &token,
        &Request::CatalogSince {
            have_sequence: Some(held.sequence),
            have_courses: held_courses,
        },
    );
    assert!(
        matches!(update.first(), Some(Response::Catalog { signed: Some(_) })),
        "{update:?}"
    );
    assert_eq!(update.len(), 1 + 4, "{update:?}");

    // What an edge of revision 1 sends is answered as before.
    let old = sync_request(
        served.http,
        &token,
        &Request::GetCatalog {
            have_sequence: Some(held.sequence),
        },
    );
    assert!(
        matches!(old.as_slice(), [Response::Catalog { signed: Some(_) }]),
        "{old:?}"
    );
    let Response::Object { hash, .. } = &update[1] else {
        panic!("an object: {:?}", update[1])
    };
    let old = sync_request(
        served.http,
        &token,
        &Request::GetObjects {
            hashes: vec![*hash],
        },
    );
    assert!(
        matches!(old.as_slice(), [Response::Object { hash: got, .. }] if got == hash),
        "{old:?}"
    );
}

/// The kinds of the requests an edge sent, from its debug log.
fn requests_sent(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.contains("request sent"))
        .filter_map(|line| {
            let kind = line.split("request=").nth(1)?;
            Some(kind.split_whitespace().next()?.trim_matches('"').to_owned())
        })
        .collect()
}

/// Issue 12's target: on the satellite link (20 Mbit/s, 600 ms round trip,
/// 1 % loss), an edge picks up a one-page edit plus one new 300 KB file in
/// at most 4 round trips + the payload's transfer time + 1 s (3.5 s; rsync
/// took 10 s). Asserted with a margin for a loaded machine; the requests
/// are counted too: one hello, one catalog request, no metadata walk.
#[test]
fn a_one_page_update_across_a_600ms_link_takes_few_round_trips_issue_12() {
    if !shanlu_tests::require(shanlu_tests::Need::NetNs) {
        return;
    }
    let across = Across::synced(
        LinkSpec::default()
            .delay(300 * MS)
            .loss(0.01)
            .rate_bps(20_000_000),
        "school-rt2",
        course,
    );
    let (edge, src) = (&across.edge, &across.src);
    write(src, "02-add/index.html", b"<h1>1 + 1 = 2</h1>");
    write(src, "02-add/worksheet.pdf", &generated(300 * 1024, 123));
    across.origin.publish(src);

    let started = Instant::now();
    // Each log line timestamped as it arrives (SHOW_SYNC_LOG prints them).
    let (output, lines) = across.sync_timed(
        &std::env::var("SYNC_LOG").unwrap_or("warn,edge_cache::sync::client=debug".into()),
    );
    let seconds = started.elapsed().as_secs_f64();
    let stderr = crate::pipelined::timed_log(&lines);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    assert!(output.status.success(), "{report:#}\n{stderr}");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["files_completed"], 2, "{report:#}");
    assert_eq!(report["objects_fetched"], 4, "{report:#}");
    assert_eq!(assert_edge_holds(edge, "math", src), 5);
    let requests = requests_sent(&stderr);
    eprintln!("issue 12: one-page update across 600 ms: {seconds:.2} s, requests {requests:?}");
    if std::env::var_os("SHOW_SYNC_LOG").is_some() {
        eprintln!("{stderr}");
    }
    let count = |kind: &str| requests.iter().filter(|k| k.as_str() == kind).count();
    assert_eq!(count("hello"), 1, "{requests:?}");
    assert_eq!(count("catalog_since"), 1, "{requests:?}");
    assert_eq!(
        count("get_catalog") + count("get_objects"),
        0,
        "{requests:?}"
    );
    // The target is 3.5 s; rsync took 10 s, and half of it is 5 s.
    assert!(
        seconds < 5.0,
        "the update took {seconds:.2} s across 600 ms (target 3.5 s, half of rsync's 10 s); requests {requests:?}\n{stderr}"
    );
}
