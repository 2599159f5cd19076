//! The sync protocol refusing what it must, over QUIC and over HTTP: wrong
//! tokens, catalogs not signed by the pinned key, older catalogs, malformed
//! and oversized frames, and bad requests to the HTTP sync routes.

use shanlu_tests::{TestEdge, TestOrigin, run};

use crate::sync::{published_course, write};

#[test]
fn a_wrong_token_is_refused_and_logged_and_nothing_is_stored() {
    let (origin, _src) = published_course(8);
    let served = origin.serve();
    origin.add_edge("school-6");
    let edge = TestEdge::init(&origin, &served, served.quic, &"0".repeat(64), "all");
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1);
    assert!(stderr.contains("refused this edge's token"), "{stderr}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        served.log_text().contains("unknown edge token"),
        "{}",
        served.log_text()
    );
    let out = run(&["ls", "--data", &edge.data_str()]);
    assert!(!out.status.success(), "the refused edge holds no catalog");
}

#[test]
fn a_catalog_not_signed_by_the_pinned_key_is_refused() {
    let (origin, _src) = published_course(9);
    let served = origin.serve();
    let token = origin.add_edge("school-7");
    // An edge pinned to another origin's key, talking to this origin.
    let impostor = TestOrigin::init();
    let edge = TestEdge::init(&impostor, &served, served.quic, &token, "all");
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("does not verify against the pinned origin key"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was stored"), "{stderr}");
    assert!(!run(&["ls", "--data", &edge.data_str()]).status.success());
}

#[test]
fn an_older_origin_cannot_roll_an_edge_back() {
    let (origin, src) = published_course(10);
    // A copy of the origin as it was at sequence 1.
    let old = origin.dir.path().join("origin-at-1");
    let status = std::process::Command::new("cp")
        .args(["-a", &origin.data_str(), old.to_str().expect("utf-8")])
        .status()
        .expect("cp");
    assert!(status.success());
    write(&src, "03-new/index.html", b"<p>new lesson</p>");
    origin.publish(&src);

    let served = origin.serve();
    let token = origin.add_edge("school-8");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    assert_eq!(edge.sync_ok()["sequence"], 2);
    drop(served);

    // The edge is pointed at the old copy (same key, same certificate, sequence 1).
    let stale = TestOrigin {
        dir: tempfile::tempdir().expect("tempdir"),
        key: origin.key.clone(),
    };
    std::fs::rename(&old, stale.data()).expect("move");
    let served_old = stale.serve();
    let config = edge.data().join("edge.toml");
    let text = std::fs::read_to_string(&config).expect("read");
    let text = text
        .lines()
        .map(|line| {
            if line.starts_with("origin = ") {
                format!("origin = \"quic://{}\"", served_old.quic)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, text).expect("write");
    let (_, report, stderr) = edge.sync();
    assert_eq!(
        edge.ls()["sequence"],
        2,
        "the edge went back to an older catalog: {report:#} {stderr}"
    );
}

#[test]
fn malformed_and_oversized_frames_close_that_connection_only() {
    let (origin, _src) = published_course(11);
    let served = origin.serve();
    let token = origin.add_edge("school-9");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for frame in [
        (200 * 1024 * 1024u32).to_le_bytes().to_vec(),
        vec![3, 0, 0, 0, 0xff, 0xff, 0xff],
    ] {
        let closed = runtime.block_on(raw_frame(served.quic, &served.fingerprint, &frame));
        assert!(
            closed.contains("closed by peer") || closed.contains("malformed"),
            "{closed}"
        );
    }
    assert!(
        served.log_text().contains("malformed hello"),
        "{}",
        served.log_text()
    );
    // The origin keeps serving everyone else.
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
}

/// Opens a QUIC connection, sends `frame` as the first stream, returns why the connection closed.
async fn raw_frame(addr: std::net::SocketAddr, fingerprint: &str, frame: &[u8]) -> String {
    let crypto = server::tls::client_config(fingerprint).expect("tls");
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("quic tls");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
    let connection = endpoint
        .connect(addr, server::tls::SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = connection.open_bi().await.expect("stream");
    send.write_all(frame).await.expect("write");
    let _ = send.finish();
    let mut buf = [0u8; 16];
    let _ = recv.read(&mut buf).await;
    let reason = connection.closed().await;
    reason.to_string()
}

/// A GET with an optional bearer token.
fn http_get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String, Vec<u8>) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    shanlu_tests::http_request(addr, "GET", path, &auth)
}

#[test]
fn the_same_objects_are_served_over_http_with_the_edge_token() {
    let (origin, _src) = published_course(13);
    let served = origin.serve();
    let token = origin.add_edge("school-12");

    let (status, _, _) = http_get(served.http, "/v1/catalog", None);
    assert_eq!(status, 401, "no token");
    let (status, _, _) = http_get(served.http, "/v1/catalog", Some("wrong"));
    assert_eq!(status, 401, "wrong token");

    let (status, head, body) = http_get(served.http, "/v1/catalog", Some(&token));
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("cache-control: no-cache"),
        "{head}"
    );
    let signed = catalog::SignedCatalog::decode(&body).expect("a signed catalog");
    let key: catalog::PublicKey = origin.key.parse().expect("key");
    let catalog = signed.verify(&key).expect("signed by the origin");
    let course_hash = catalog.courses["math"].hash;

    let (status, head, body) = http_get(
        served.http,
        &format!("/v1/objects/{course_hash}"),
        Some(&token),
    );
    assert_eq!(status, 200);
    assert!(head.contains("immutable"), "{head}");
    assert!(
        head.contains(&format!("\"{course_hash}\"")),
        "ETag is the hash: {head}"
    );
    let course = catalog::Object::decode_verified(&course_hash, &body)
        .expect("verifies")
        .into_course()
        .expect("course");

    let lesson_hash = course.lessons[0].hash;
    let (_, _, body) = http_get(
        served.http,
        &format!("/v1/objects/{lesson_hash}"),
        Some(&token),
    );
    let lesson = catalog::Object::decode_verified(&lesson_hash, &body)
        .expect("verifies")
        .into_lesson()
        .expect("lesson");
    let video = lesson
        .files
        .iter()
        .find(|f| f.path == "lesson.mp4")
        .expect("video");
    let (_, _, body) = http_get(
        served.http,
        &format!("/v1/objects/{}", video.manifest),
        Some(&token),
    );
    let manifest = catalog::Object::decode_verified(&video.manifest, &body)
        .expect("verifies")
        .into_manifest()
        .expect("manifest");
    let first = manifest.chunks[0];
    let (status, head, body) = http_get(
        served.http,
        &format!("/v1/chunks/{}", first.hash),
        Some(&token),
    );
    assert_eq!(status, 200);
    assert!(head.contains("immutable"), "{head}");
    assert_eq!(catalog::Hash::of(&body), first.hash);
    assert_eq!(body.len(), first.len as usize);

    assert_eq!(
        http_get(served.http, "/v1/chunks/not-a-hash", Some(&token)).0,
        400
    );
    assert_eq!(
        http_get(
            served.http,
            &format!("/v1/chunks/{}", "0".repeat(64)),
            Some(&token)
        )
        .0,
        404
    );
}

/// A POST of `body` with an optional bearer token: (status, head, body).
fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    shanlu_tests::http_request_with_body(addr, "POST", path, &auth, body)
}

#[test]
fn the_sync_protocol_over_http_refuses_bad_tokens_bodies_and_versions() {
    use server::protocol::{Request, encode};
    let (origin, _src) = published_course(14);
    let served = origin.serve();
    let token = origin.add_edge("school-14");
    let hello = |version| Request::Hello {
        version,
        token: String::new(),
    };
    let catalog = encode(&Request::GetCatalog {
        have_sequence: None,
    });
    assert_eq!(http_post(served.http, "/v1/sync", None, &catalog).0, 401);
    assert_eq!(
        http_post(served.http, "/v1/sync", Some("wrong"), &catalog).0,
        401
    );
    let (status, head, _) = http_post(served.http, "/v1/sync", Some(&token), &catalog);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/x-shanlu-frames"), "{head}");
    let (status, _, body) = http_post(served.http, "/v1/sync", Some(&token), b"\x09\0\0\0abc");
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("one request frame"),
        "{body:?}"
    );
    let (status, _, body) = http_post(served.http, "/v1/sync", Some(&token), &encode(&hello(99)));
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("version 1, not 99"),
        "{body:?}"
    );
    let (status, _, _) = http_post(served.http, "/v1/sync", Some(&token), &encode(&hello(1)));
    assert_eq!(status, 200);
    // Larger than any request frame: refused before it is read.
    // (Said in the head; only its first bytes are sent: the answer comes
    // before the rest would be read.)
    let answer = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(served.http).expect("connect");
        let head = format!(
            "POST /v1/sync HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            served.http,
            server::review::MAX_PROPOSAL_PLAN + 8
        );
        stream.write_all(head.as_bytes()).expect("head");
        let _ = stream.write_all(&[0; 128 * 1024]);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Over the usual limit, and not a proposed lesson's chunks (issue 17).
    let big = encode(&Request::GetObjects {
        hashes: vec![catalog::Hash::of(b"x"); 5_000],
    });
    assert!(big.len() > server::protocol::MAX_REQUEST);
    let (status, _, body) = http_post(served.http, "/v1/sync", Some(&token), &big);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
}
