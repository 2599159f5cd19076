//! The fleet dashboard (issue 15): edges' sealed reports sent over the
//! sync protocol (QUIC, and `POST /v1/sync`) show in
//! the dashboard's JSON, CSV and pages and in `/metrics`; login is refused
//! without the right admin token; and in a real Chromium an administrator
//! logs in, finds the edge's row, filters by county and switches language.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use server::protocol::{Request, Response, decode, encode};
use server::report::{CourseHeld, DayUsage, EdgeReport, Envelope, report_key_of_token};
use server::tokens::{self, Book};
use shanlu_tests::{Need, TestOrigin, header, http_request_with_body, require, shanlu};

use crate::sync::published_course;

/// `origin serve --admin`, killed when dropped.
struct Dashboard {
    child: std::process::Child,
    quic: SocketAddr,
    fingerprint: String,
    http: SocketAddr,
    admin: SocketAddr,
    log: std::path::PathBuf,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dashboard {
    fn start(origin: &TestOrigin) -> Dashboard {
        let log = origin.dir.path().join("origin-dashboard.log");
        let mut child = shanlu()
            .env("RUST_LOG", "info")
            .args(["origin", "serve", "--data", &origin.data_str()])
            .args(["--quic", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn origin serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut http = None;
        let mut admin = None;
        let mut quic = None;
        let mut fingerprint = None;
        for line in std::io::BufReader::new(stdout).lines().take(8) {
            let line = line.expect("utf-8");
            if let Some(addr) = line.strip_prefix("quic: ") {
                quic = Some(addr.trim().parse().expect("quic address"));
            }
            if let Some(pin) = line.strip_prefix("origin certificate: ") {
                fingerprint = Some(pin.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("http: ") {
                http = Some(addr.trim().parse().expect("http address"));
            }
            if let Some(url) = line.strip_prefix("admin: http://") {
                admin = Some(url.trim_end_matches('/').parse().expect("admin address"));
                break;
            }
        }
        Dashboard {
            child,
            quic: quic.expect("origin serve printed quic:"),
            fingerprint: fingerprint.expect("origin serve printed its certificate"),
            http: http.expect("origin serve printed http:"),
            admin: admin.expect("origin serve --admin printed admin:"),
            log,
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> (u16, String, String) {
        let headers = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        let (status, head, body) = http_request_with_body(self.admin, "GET", path, &headers, b"");
        (status, head, String::from_utf8(body).expect("utf-8 body"))
    }

    fn post_form(&self, path: &str, cookie: Option<&str>, form: &str) -> (u16, String, String) {
        let mut headers = "Content-Type: application/x-www-form-urlencoded\r\n".to_owned();
        if let Some(cookie) = cookie {
            headers.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let (status, head, body) =
            http_request_with_body(self.admin, "POST", path, &headers, form.as_bytes());
        (status, head, String::from_utf8_lossy(&body).into_owned())
    }

    /// Logs in with `token`; the session cookie (`name=value`).
    fn login(&self, token: &str) -> String {
        let (status, head, body) = self.post_form("/login", None, &format!("token={token}"));
        assert_eq!(status, 303, "{head}\n{body}");
        let cookie = header(&head, "set-cookie").expect("a session cookie");
        for flag in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        cookie.split(';').next().expect("name=value").to_owned()
    }
}

/// The report `seq` of an edge holding catalog `sequence` and course `math` v1.
fn report(seq: u64, sequence: u64, opens: u64) -> EdgeReport {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    EdgeReport {
        seq,
        made_at: now,
        version: "0.1.0".into(),
        catalog_sequence: Some(sequence),
        courses: vec![CourseHeld {
            id: "math".into(),
            version: 1,
            complete: true,
        }],
        courses_total: 1,
        bytes_held: 3 << 20,
        bytes_free: 7 << 30,
        usage: vec![DayUsage {
            day: (now / 86_400) as u32,
            course: "math".into(),
            lesson: "01".into(),
            opens,
            bytes_served: 1 << 20,
            bytes_saved: 0,
        }],
        ..EdgeReport::default()
    }
}

/// Sends a sealed report over `POST /v1/sync` with the edge's token; the answer.
fn send_report(http: SocketAddr, token: &str, key_token: &str, report: &EdgeReport) -> Response {
    let envelope = Envelope::seal(&report_key_of_token(key_token), report)
        .encode()
        .expect("fits");
    let auth = format!("Authorization: Bearer {token}\r\n");
    let body = encode(&Request::Report { envelope });
    let (status, head, frames) = http_request_with_body(http, "POST", "/v1/sync", &auth, &body);
    assert_eq!(status, 200, "{head}");
    let len = u32::from_le_bytes(frames[..4].try_into().expect("length")) as usize;
    decode(&frames[4..4 + len]).expect("one response frame")
}

/// Sends a sealed report over QUIC as the edge with `token`: hello, then
/// the report on a stream of its own; the answer.
fn send_report_quic(dash: &Dashboard, token: &str, report: &EdgeReport) -> Response {
    use server::protocol::{MAX_RESPONSE, read_frame, write_frame};
    let envelope = Envelope::seal(&report_key_of_token(token), report)
        .encode()
        .expect("fits");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut crypto = server::tls::client_config(&dash.fingerprint).expect("tls");
        crypto.alpn_protocols = vec![server::tls::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("quic tls");
        let mut endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(quic)));
        let connection = endpoint
            .connect(dash.quic, server::tls::SERVER_NAME)
            .expect("connect")
            .await
            .expect("handshake");
        let mut answers = Vec::new();
        for request in [
            Request::Hello {
                version: server::protocol::VERSION,
                token: token.to_owned(),
            },
            Request::Report { envelope },
        ] {
            let (mut send, mut recv) = connection.open_bi().await.expect("stream");
            write_frame(&mut send, &request).await.expect("write");
            let _ = send.finish();
            let answer = read_frame::<Response>(&mut recv, MAX_RESPONSE)
                .await
                .expect("frame")
                .expect("an answer");
            answers.push(answer);
        }
        connection.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        assert!(
            matches!(answers[0], Response::Welcome { .. }),
            "{:?}",
            answers[0]
        );
        answers.pop().expect("the report's answer")
    })
}

fn add(origin: &Path, book: Book, name: &str, county: Option<&str>) -> String {
    tokens::add(origin, book, name, county).expect("add token")
}

#[test]
fn issue_15_reports_sent_over_quic_and_post_v1_sync_show_in_json_csv_html_and_metrics() {
    let (origin, _src) = published_course(1501);
    let school = add(&origin.data(), Book::Edges, "school-1", Some("昭觉县"));
    let other = add(&origin.data(), Book::Edges, "school-2", Some("喜德县"));
    let admin = add(&origin.data(), Book::Admins, "bureau-li", None);
    let dash = Dashboard::start(&origin);

    assert!(matches!(
        send_report(dash.http, &school, &school, &report(1, 1, 4)),
        Response::Ok
    ));
    // Another edge's over QUIC.
    let over_quic = send_report_quic(&dash, &other, &report(1, 1, 1));
    assert!(matches!(over_quic, Response::Ok), "{over_quic:?}");
    // Sent twice (a retry after a lost answer): taken, counted once.
    assert!(matches!(
        send_report(dash.http, &school, &school, &report(1, 1, 4)),
        Response::Ok
    ));
    // Sealed with another edge's key: refused, and said why.
    match send_report(dash.http, &other, &school, &report(1, 1, 4)) {
        Response::Error { message } => assert!(message.contains("does not verify"), "{message}"),
        other => panic!("a bad seal was taken: {other:?}"),
    }

    // No login, a wrong token: refused.
    let (status, head, _) = dash.get("/", None);
    assert_eq!(
        (status, header(&head, "location")),
        (303, Some("/login")),
        "{head}"
    );
    assert_eq!(dash.get("/edges.json", None).0, 401);
    assert_eq!(dash.get("/edges.json", Some("shanlu_session=0123")).0, 401);
    let (status, _, body) = dash.post_form("/login", None, "token=wrong");
    assert_eq!(status, 401);
    assert!(body.contains("令牌不对"), "{body}");
    assert_eq!(
        dash.post_form("/login", None, &format!("token={school}")).0,
        401,
        "an edge token is no admin token"
    );
    let refused_cross_site = http_request_with_body(
        dash.admin,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\nSec-Fetch-Site: cross-site\r\n",
        format!("token={admin}").as_bytes(),
    );
    assert_eq!(refused_cross_site.0, 403);

    let cookie = dash.login(&admin);
    let (status, _, json) = dash.get("/edges.json", Some(&cookie));
    assert_eq!(status, 200, "{json}");
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(json["catalog_sequence"], 1);
    assert_eq!(json["summary"]["edges"], 2);
    assert_eq!(json["summary"]["reports"], 2);
    let edge = &json["edges"][0];
    assert_eq!(edge["name"], "school-1");
    assert_eq!(edge["county"], "昭觉县");
    assert_eq!(edge["reports"], 1);
    assert_eq!(edge["catalog_lag"], 0);
    assert_eq!(edge["bytes_free"], 7u64 << 30);
    assert_eq!(edge["opens"], 4);
    assert_eq!(edge["behind"], false);

    let (status, head, csv) = dash.get("/edges.csv", Some(&cookie));
    assert_eq!(status, 200);
    assert!(
        header(&head, "content-type").is_some_and(|t| t.starts_with("text/csv")),
        "{head}"
    );
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with("school-1,昭觉县,"), "{csv}");
    assert!(rows[2].starts_with("school-2,喜德县,"), "{csv}");

    let (status, head, html) = dash.get("/?lang=en", Some(&cookie));
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"data-edge="school-1""#) && html.contains("Schools"),
        "{html}"
    );
    assert!(
        header(&head, "set-cookie").is_some_and(|c| c.contains("shanlu_dash_lang=en")),
        "{head}"
    );
    let (_, _, zh) = dash.get("/", Some(&format!("{cookie}; shanlu_dash_lang=zh")));
    assert!(zh.contains("学校") && zh.contains("bureau-li"), "{zh}");
    let (_, _, filtered) = dash.get("/?county=%E5%96%9C%E5%BE%B7%E5%8E%BF", Some(&cookie));
    assert!(!filtered.contains(r#"data-edge="school-1""#), "{filtered}");
    assert!(filtered.contains(r#"data-edge="school-2""#), "{filtered}");
    let (_, _, courses) = dash.get("/courses.json", Some(&cookie));
    let courses: serde_json::Value = serde_json::from_str(&courses).expect("JSON");
    assert_eq!(courses["courses"][0]["course"]["id"], "math");
    assert_eq!(courses["courses"][0]["complete"], 2);
    let (_, _, lessons) = dash.get(
        "/lessons.json?county=%E6%98%AD%E8%A7%89%E5%8E%BF",
        Some(&cookie),
    );
    let lessons: serde_json::Value = serde_json::from_str(&lessons).expect("JSON");
    assert_eq!(lessons["lessons"][0]["lesson"], "01");
    assert_eq!(lessons["lessons"][0]["opens"], 4);

    let (status, _, metrics) = dash.get("/metrics", None);
    assert_eq!(status, 200);
    for line in [
        "shanlu_fleet_edges 2",
        "shanlu_fleet_edges_behind 0",
        "shanlu_fleet_reports_total 2",
        "shanlu_fleet_reports_duplicate_total 1",
        "shanlu_origin_catalog_sequence 1",
        "shanlu_fleet_lesson_opens_total 5",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("shanlu_origin_bytes_served_total "),
        "{metrics}"
    );

    // Logging out needs the session's CSRF token.
    assert_eq!(
        dash.post_form("/logout", Some(&cookie), "csrf=forged").0,
        403
    );
    let csrf = zh
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the logout form's CSRF token");
    assert_eq!(
        dash.post_form("/logout", Some(&cookie), &format!("csrf={csrf}"))
            .0,
        303
    );
    assert_eq!(
        dash.get("/edges.json", Some(&cookie)).0,
        401,
        "the session is gone"
    );

    // A revoked administrator's session ends at once.
    let again = dash.login(&admin);
    assert_eq!(dash.get("/edges.json", Some(&again)).0, 200);
    assert!(tokens::revoke(&origin.data(), Book::Admins, "bureau-li").expect("revoke"));
    assert_eq!(dash.get("/edges.json", Some(&again)).0, 401, "revoked");
    assert_eq!(
        dash.post_form("/login", None, &format!("token={admin}")).0,
        401
    );

    let log = std::fs::read_to_string(&dash.log).expect("log");
    assert!(
        log.lines()
            .any(|l| l.contains("administrator logged in to the dashboard")
                && l.contains("bureau-li")),
        "{log}"
    );
}

#[test]
fn issue_15_the_dashboard_in_chromium_logs_in_lists_filters_and_switches_language() {
    if !require(Need::Chromium) {
        return;
    }
    let (origin, _src) = published_course(1502);
    let one = add(&origin.data(), Book::Edges, "school-1", Some("昭觉县"));
    let two = add(&origin.data(), Book::Edges, "school-2", Some("喜德县"));
    let admin = add(&origin.data(), Book::Admins, "admin-2", None);
    let dash = Dashboard::start(&origin);
    // school-1 is a real edge: its sync carries its report up.
    let edge =
        shanlu_tests::TestEdge::init_pinned(&origin, dash.quic, &dash.fingerprint, &one, "all");
    let synced = edge.sync_ok();
    assert_eq!(synced["complete"], true, "{synced:#}");
    assert!(matches!(
        send_report(dash.http, &two, &two, &report(1, 0, 2)),
        Response::Ok
    ));

    let browser = shanlu_tests::webdriver::Browser::start();
    let url = |path: &str| format!("http://{}{path}", dash.admin);
    browser.goto(&url("/?lang=en"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.find("input[name=token]").send_keys(&admin);
    browser.find("#login").click();
    let timeout = Duration::from_secs(10);
    browser.wait_for(r#"tr[data-edge="school-1"]"#, timeout);
    browser.find(r#"tr[data-edge="school-2"]"#);
    assert_eq!(browser.find("#admin").text(), "admin-2");
    assert!(
        browser
            .find(r#"tr[data-edge="school-2"]"#)
            .text()
            .contains("behind")
    );
    // The synced edge holds the catalog in force: not behind, and seen.
    let row = browser.find(r#"tr[data-edge="school-1"]"#).text();
    assert!(!row.contains("behind") && row.contains("昭觉县"), "{row}");

    // Filter by county with the form.
    browser.find(r#"#county option[value="喜德县"]"#).click();
    browser.find("#filter").click();
    assert!(shanlu_tests::webdriver::wait_until(timeout, || browser
        .try_find(r#"tr[data-edge="school-1"]"#)
        .is_none()));
    browser.find(r#"tr[data-edge="school-2"]"#);
    assert!(browser.url().contains("county="), "{}", browser.url());

    // Switch language: the choice is remembered.
    assert!(browser.find("header").text().contains("Schools"));
    browser.find(r#"header a[lang="zh"]"#).click();
    assert!(shanlu_tests::webdriver::wait_until(timeout, || browser
        .find("header")
        .text()
        .contains("学校")));
    browser.goto(&url("/courses"));
    assert!(browser.find("h1").text().contains("课程采用"));
    browser.screenshot("dashboard-courses-zh.png");
}
