//! Issue 15: enrolling an edge with a join code, revoking edges and
//! administrators, and listing edges.

use std::time::{Duration, Instant};

use server::admin::{AdminRequest, AdminResponse};
use server::protocol::{Request, Response, encode};
use shanlu_tests::{ServedOrigin, TestEdge, TestOrigin, run, run_ok};

use crate::sync::published_course;

/// `origin add-edge` with the served origin's loopback addresses: (token, join code, stderr).
fn add_edge(
    origin: &TestOrigin,
    served: &ServedOrigin,
    name: &str,
    county: Option<&str>,
) -> (String, String, String) {
    let quic = format!("quic://{}", served.quic);
    let https = format!("https://{}", served.https);
    let data = origin.data_str();
    let mut args = vec![
        "origin",
        "add-edge",
        "--data",
        &data,
        "--name",
        name,
        "--public-quic",
        &quic,
        "--public-https",
        &https,
    ];
    if let Some(county) = county {
        args.extend(["--county", county]);
    }
    let output = run(&args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "add-edge failed: {stdout}\n{stderr}"
    );
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("add-edge prints {prefix:?}: {stdout}"))
            .to_owned()
    };
    (line("edge token: "), line("join code: "), stderr)
}

/// `edge init --join CODE` into a new folder: (the folder, exit success, stderr, seconds).
fn init_joined(code: &str) -> (TestEdge, bool, String, Duration) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("edge");
    let started = Instant::now();
    let output = run(&[
        "edge",
        "init",
        "--data",
        data.to_str().expect("utf-8"),
        "--join",
        code,
        "--min-free",
        "1MB",
    ]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (TestEdge { dir }, output.status.success(), stderr, took)
}

/// One frame of the sync protocol posted to `/v1/sync` with `token`: (status, answer).
fn post(served: &ServedOrigin, token: &str, request: &Request) -> (u16, Option<Response>) {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let (status, _, body) = shanlu_tests::http_request_with_body(
        served.http,
        "POST",
        "/v1/sync",
        &auth,
        &encode(request),
    );
    let response = (status == 200).then(|| {
        let len = u32::from_le_bytes(body[..4].try_into().expect("a frame")) as usize;
        server::protocol::decode(&body[4..4 + len]).expect("a response")
    });
    (status, response)
}

/// Issue 15: `origin add-edge --county` prints a token, a join code and a
/// QR code; `edge init --join` sets up an edge that syncs; a code with one
/// character changed is refused at once with a checksum message and
/// nothing is created.
#[test]
fn issue_15_a_join_code_enrolls_an_edge_and_a_mistyped_one_is_refused_at_once() {
    let (origin, _src) = published_course(151);
    let served = origin.serve();
    let (token, code, stderr) = add_edge(&origin, &served, "zhaojue-1", Some("昭觉县"));
    assert!(code.starts_with("SL1-"), "{code}");
    assert!(
        stderr.contains('█') && stderr.contains('▀'),
        "a QR code on stderr: {stderr}"
    );

    // One character changed, in the middle of the code.
    let mut chars: Vec<char> = code.chars().collect();
    let at = chars.len() / 2 + usize::from(chars[chars.len() / 2] == '-');
    chars[at] = if chars[at] == 'Q' { 'R' } else { 'Q' };
    let typo: String = chars.into_iter().collect();
    let (bad, ok, stderr, took) = init_joined(&typo);
    assert!(!ok, "a mistyped code must be refused");
    assert!(stderr.contains("checksum"), "{stderr}");
    assert!(
        !bad.data().exists(),
        "nothing is created for a mistyped code"
    );
    assert!(
        took < Duration::from_secs(5),
        "refused at once, took {took:?}"
    );

    let (edge, ok, stderr, _) = init_joined(&code.to_lowercase());
    assert!(ok, "edge init --join failed: {stderr}");
    let config = std::fs::read_to_string(edge.data().join("edge.toml")).expect("edge.toml");
    assert!(config.contains(&format!("token = \"{token}\"")), "{config}");
    assert!(
        config.contains(&format!("origin = \"quic://{}\"", served.quic)),
        "{config}"
    );
    assert!(
        config.contains(&format!("fallback = \"https://{}\"", served.https)),
        "{config}"
    );
    assert!(config.contains(&origin.key), "{config}");
    assert!(config.contains(&served.fingerprint), "{config}");
    let report = edge.sync_ok();
    assert_eq!(report["complete"], true);
    assert_eq!(report["files_held"], 5);

    // --join and the long form do not mix.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("edge");
    let err = shanlu_tests::run_err(&[
        "edge",
        "init",
        "--data",
        data.to_str().expect("utf-8"),
        "--join",
        &code,
        "--token",
        &token,
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Issue 15: without public addresses add-edge prints the token and says
/// how to get a join code; origin init's addresses are used when set.
#[test]
fn issue_15_add_edge_without_public_addresses_says_how_to_get_a_join_code() {
    let origin = TestOrigin::init();
    let output = run(&[
        "origin",
        "add-edge",
        "--data",
        &origin.data_str(),
        "--name",
        "s1",
    ]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.starts_with("edge token: "), "{stdout}");
    assert!(!stdout.contains("join code"), "{stdout}");
    assert!(stderr.contains("--public-quic"), "{stderr}");

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("origin");
    let data = data.to_str().expect("utf-8");
    let bad = shanlu_tests::run_err(&[
        "origin",
        "init",
        "--data",
        data,
        "--public-quic",
        "origin:7443",
    ]);
    assert!(bad.contains("quic://HOST:PORT"), "{bad}");
    assert!(
        !dir.path().join("origin").exists(),
        "checked before anything is made"
    );
    run_ok(&[
        "origin",
        "init",
        "--data",
        data,
        "--public-quic",
        "quic://origin.example:7443",
    ]);
    let out = run_ok(&["origin", "add-edge", "--data", data, "--name", "s2"]);
    let code = out
        .lines()
        .find_map(|line| line.strip_prefix("join code: "))
        .expect("a join code from origin.toml's address");
    let joined = server::join::JoinCode::decode(code).expect("decodes");
    assert_eq!(joined.quic_url(), "quic://origin.example:7443");
    assert_eq!(joined.https_url(), None);
}

/// Issue 15: `origin revoke NAME` refuses that edge's next sync while
/// another edge still syncs; `origin edges --json` shows the county and
/// the revocation.
#[test]
fn issue_15_a_revoked_edge_is_refused_while_another_still_syncs() {
    let (origin, _src) = published_course(152);
    let served = origin.serve();
    let (_, code_a, _) = add_edge(&origin, &served, "meigu-a", Some("美姑县"));
    let (_, code_b, _) = add_edge(&origin, &served, "meigu-b", None);
    let (edge_a, ok_a, _, _) = init_joined(&code_a);
    let (edge_b, ok_b, _, _) = init_joined(&code_b);
    assert!(ok_a && ok_b);
    edge_a.sync_ok();
    edge_b.sync_ok();

    let data = origin.data_str();
    let out = run_ok(&["origin", "revoke", "--data", &data, "meigu-a"]);
    assert!(out.contains("revoked edge meigu-a"), "{out}");
    let (code, _, stderr) = edge_a.sync();
    assert_eq!(code, 1, "a revoked edge's sync fails: {stderr}");
    assert!(stderr.contains("refused this edge's token"), "{stderr}");
    let again = edge_b.sync_ok();
    assert_eq!(again["complete"], true);

    let listed: serde_json::Value =
        serde_json::from_str(&run_ok(&["origin", "edges", "--data", &data, "--json"]))
            .expect("edges --json prints JSON");
    let edges = listed["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 2, "{listed}");
    assert_eq!(edges[0]["name"], "meigu-a");
    assert_eq!(edges[0]["county"], "美姑县");
    assert_eq!(edges[0]["revoked"], true);
    assert!(edges[0]["revoked_at"].as_u64().is_some(), "{listed}");
    assert_eq!(edges[1]["name"], "meigu-b");
    assert_eq!(edges[1]["county"], serde_json::Value::Null);
    assert_eq!(edges[1]["revoked"], false);
    let text = run_ok(&["origin", "edges", "--data", &data]);
    assert!(text.contains("meigu-a\t美姑县\tadded "), "{text}");
    assert!(text.contains("revoked "), "{text}");

    let out = run_ok(&["origin", "revoke", "--data", &data, "meigu-a"]);
    assert!(out.contains("already revoked"), "{out}");
    let err = shanlu_tests::run_err(&["origin", "revoke", "--data", &data, "nobody"]);
    assert!(err.contains("\"nobody\""), "{err}");
}

/// Issue 15: `origin add-admin`'s token is accepted by the origin (it may
/// add edges remotely, logged with its name) and a revoked admin's is not.
#[test]
fn issue_15_an_added_admins_token_is_accepted_and_a_revoked_ones_is_not() {
    let origin = TestOrigin::init();
    let data = origin.data_str();
    let out = run_ok(&["origin", "add-admin", "--data", &data, "--name", "carol"]);
    let token = out
        .trim()
        .strip_prefix("admin token: ")
        .expect("add-admin prints the token")
        .to_owned();
    let served = origin.serve();
    let (status, answer) = post(&served, &token, &Request::Admin(AdminRequest::Whoami));
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        Some(Response::Admin(AdminResponse::Whoami {
            name: "carol".to_owned()
        }))
    );
    let add = Request::Admin(AdminRequest::AddEdge {
        name: "remote-1".to_owned(),
        county: Some("布拖县".to_owned()),
    });
    let (status, answer) = post(&served, &token, &add);
    assert_eq!(status, 200);
    let Some(Response::Admin(AdminResponse::EdgeAdded {
        token: edge_token, ..
    })) = answer
    else {
        panic!("not EdgeAdded: {answer:?}")
    };
    assert_eq!(edge_token.len(), 64);

    let out = run_ok(&["origin", "revoke", "--data", &data, "--admin", "carol"]);
    assert!(out.contains("revoked administrator carol"), "{out}");
    let (status, answer) = post(&served, &token, &Request::Admin(AdminRequest::Whoami));
    assert_eq!(
        status, 401,
        "a revoked admin's token is refused: {answer:?}"
    );
    // The edge it added stays.
    let listed = run_ok(&["origin", "edges", "--data", &data, "--json"]);
    assert!(
        listed.contains("\"remote-1\"") && listed.contains("布拖县"),
        "{listed}"
    );

    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    let actions: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    let summary: Vec<String> = actions
        .iter()
        .map(|a| format!("{} {} {}", a["admin"], a["action"], a["subject"]))
        .collect();
    assert_eq!(
        summary,
        [
            "\"(origin machine)\" \"add-admin\" \"carol\"",
            "\"carol\" \"add-edge\" \"remote-1\"",
            "\"(origin machine)\" \"revoke-admin\" \"carol\"",
        ]
    );
}

/// Issue 15: an administrator enrolls, lists and revokes schools from her
/// own machine (`--origin`): the join code comes from the origin's
/// origin.toml, the enrolled edge syncs, the revoked one is refused, and
/// `admin.log` names her for each action.
#[test]
fn issue_15_an_administrator_enrolls_and_revokes_schools_from_her_own_machine() {
    let (origin, _src) = published_course(153);
    let served = origin.serve();
    server::origin::set_public_addresses(
        &origin.data(),
        &server::origin::PublicAddresses {
            quic: Some(format!("quic://{}", served.quic)),
            https: Some(format!("https://{}", served.https)),
        },
    )
    .expect("public addresses");
    let data = origin.data_str();
    let token = run_ok(&[
        "origin",
        "add-admin",
        "--data",
        &data,
        "--name",
        "bureau-wang",
    ])
    .trim()
    .strip_prefix("admin token: ")
    .expect("add-admin prints the token")
    .to_owned();
    let url = format!("quic://{}", served.quic);
    let remote = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(
            [
                "--origin",
                &url,
                "--origin-cert",
                &served.fingerprint,
                "--token",
                &token,
            ]
            .map(str::to_owned),
        );
        all
    };
    let added = remote(&[
        "origin",
        "add-edge",
        "--name",
        "butuo-1",
        "--county",
        "布拖县",
    ]);
    let added = run_ok(&added.iter().map(String::as_str).collect::<Vec<_>>());
    let code = added
        .lines()
        .find_map(|l| l.strip_prefix("join code: "))
        .unwrap_or_else(|| panic!("a join code: {added}"))
        .to_owned();
    let (edge, ok, stderr, _) = init_joined(&code);
    assert!(ok, "{stderr}");
    assert_eq!(edge.sync_ok()["complete"], true);

    let listed = remote(&["origin", "edges", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&run_ok(
        &listed.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .expect("JSON");
    assert_eq!(listed["edges"][0]["name"], "butuo-1");
    assert_eq!(listed["edges"][0]["county"], "布拖县");

    let revoked = remote(&["origin", "revoke", "butuo-1"]);
    let out = run_ok(&revoked.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.contains("revoked edge butuo-1"), "{out}");
    let (code, _, stderr) = edge.sync();
    assert_eq!(code, 1, "{stderr}");
    // Administrators are revoked on the origin machine only.
    let admin = remote(&["origin", "revoke", "--admin", "admin"]);
    let err = shanlu_tests::run_err(&admin.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("origin machine"), "{err}");

    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    for action in ["add-edge", "revoke"] {
        assert!(
            log.lines().any(|l| l.contains("bureau-wang")
                && l.contains(&format!("\"action\":\"{action}\""))
                && l.contains("butuo-1")),
            "{action} by bureau-wang: {log}"
        );
    }
}
