//! Administrators' requests about edges (issue 15), answered into a buffer
//! and read back frame by frame.

use super::*;
use crate::origin::Origin;
use crate::tokens::Tokens;

async fn ask(request: AdminRequest, admin: &str, desk: &Desk) -> Response {
    let mut sent = Vec::new();
    answer(request, admin, desk, &mut sent)
        .await
        .expect("answered");
    let mut read = sent.as_slice();
    let response = protocol::read_frame::<Response>(&mut read, 1 << 20)
        .await
        .expect("a frame")
        .expect("one response");
    assert!(read.is_empty(), "exactly one frame");
    response
}

fn origin() -> (tempfile::TempDir, Desk) {
    let dir = tempfile::tempdir().expect("tempdir");
    Origin::init(dir.path()).expect("init");
    let desk = Desk::new(dir.path());
    (dir, desk)
}

#[tokio::test]
async fn issue_15_remote_add_edge_answers_a_token_and_a_join_code_from_origin_toml() {
    let (dir, desk) = origin();
    let request = || AdminRequest::AddEdge {
        name: "zhaojue-1".to_owned(),
        county: Some("昭觉县".to_owned()),
    };
    // Without public addresses: a token, no join code.
    let Response::Admin(AdminResponse::EdgeAdded { token, join_code }) =
        ask(request(), "alice", &desk).await
    else {
        panic!("not an EdgeAdded")
    };
    assert_eq!(join_code, None);
    assert_eq!(
        Tokens::new(dir.path()).check(&token).expect("check"),
        Some("zhaojue-1".to_owned())
    );
    // The same name again is refused, naming it, and the refusal is logged.
    let Response::Error { message } = ask(request(), "alice", &desk).await else {
        panic!("a second zhaojue-1 must be refused")
    };
    assert!(
        message.contains("zhaojue-1") && message.contains("already exists"),
        "{message}"
    );

    crate::origin::set_public_addresses(
        dir.path(),
        &PublicAddresses {
            quic: Some("quic://origin.example:7443".to_owned()),
            https: Some("https://origin.example:8443".to_owned()),
        },
    )
    .expect("addresses");
    let Response::Admin(AdminResponse::EdgeAdded { token, join_code }) = ask(
        AdminRequest::AddEdge {
            name: "zhaojue-2".to_owned(),
            county: None,
        },
        "bob",
        &desk,
    )
    .await
    else {
        panic!("not an EdgeAdded")
    };
    let join = JoinCode::decode(&join_code.expect("a join code")).expect("decodes");
    assert_eq!(join.token_hex(), token);
    assert_eq!(join.quic_url(), "quic://origin.example:7443");
    assert_eq!(
        join.https_url().as_deref(),
        Some("https://origin.example:8443")
    );
    let key = crate::origin::read_public_key(dir.path())
        .expect("read")
        .expect("key");
    assert_eq!(join.origin_key_hex(), key.to_string());
    let tls = crate::tls::TlsIdentity::load_or_create(dir.path()).expect("tls");
    assert_eq!(join.cert_hex(), tls.fingerprint());

    let logged = log::recent(dir.path(), 10).expect("log");
    let lines: Vec<(&str, &str, &str)> = logged
        .iter()
        .map(|a| (a.admin.as_str(), a.action.as_str(), a.subject.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("alice", "add-edge", "zhaojue-1"),
            ("alice", "add-edge", "zhaojue-1"),
            ("bob", "add-edge", "zhaojue-2"),
        ]
    );
    assert_eq!(logged[0].detail, "county 昭觉县");
    assert!(logged[1].detail.starts_with("refused: "), "{:?}", logged[1]);
}

#[tokio::test]
async fn issue_15_remote_revoke_and_list_edges() {
    let (dir, desk) = origin();
    let token = tokens::add(dir.path(), Book::Edges, "school-a", Some("美姑县")).expect("add");
    tokens::add(dir.path(), Book::Edges, "school-b", None).expect("add");
    let revoke = || AdminRequest::RevokeEdge {
        name: "school-a".to_owned(),
    };
    assert_eq!(
        ask(revoke(), "alice", &desk).await,
        Response::Admin(AdminResponse::EdgeRevoked { already: false })
    );
    assert_eq!(Tokens::new(dir.path()).check(&token).expect("check"), None);
    assert_eq!(
        ask(revoke(), "alice", &desk).await,
        Response::Admin(AdminResponse::EdgeRevoked { already: true })
    );
    let Response::Error { message } = ask(
        AdminRequest::RevokeEdge {
            name: "nobody".to_owned(),
        },
        "alice",
        &desk,
    )
    .await
    else {
        panic!("an unknown name is refused")
    };
    assert!(message.contains("nobody"), "{message}");

    let Response::Admin(AdminResponse::Edges { json }) =
        ask(AdminRequest::ListEdges, "alice", &desk).await
    else {
        panic!("not Edges")
    };
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let edges = value["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["name"], "school-a");
    assert_eq!(edges[0]["county"], "美姑县");
    assert_eq!(edges[0]["revoked"], true);
    assert!(edges[0]["revoked_at"].as_u64().is_some());
    assert_eq!(edges[1]["name"], "school-b");
    assert_eq!(edges[1]["revoked"], false);
    assert!(
        !json.contains("token"),
        "no token hashes in the listing: {json}"
    );

    let actions: Vec<String> = log::recent(dir.path(), 10)
        .expect("log")
        .into_iter()
        .map(|a| format!("{} {} {} {}", a.admin, a.action, a.subject, a.detail))
        .collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(actions[0], "alice revoke school-a ");
    assert_eq!(actions[1], "alice revoke school-a already revoked");
    assert!(
        actions[2].starts_with("alice revoke nobody refused: "),
        "{actions:?}"
    );
}

#[test]
fn issue_15_bad_public_addresses_issue_no_token() {
    let (dir, _desk) = origin();
    let bad = PublicAddresses {
        quic: Some("origin.example:7443".to_owned()),
        https: None,
    };
    let err = add_edge(dir.path(), log::LOCAL, "school-x", None, &bad).expect_err("bad address");
    assert!(
        catalog::format::error_chain(&err).contains("quic://HOST:PORT"),
        "{err}"
    );
    assert!(list(dir.path(), Book::Edges).expect("list").is_empty());
}

/// Issue 15: the public addresses sit in origin.toml beside its other
/// settings, and a key rotation's rewrite of the file keeps them.
#[test]
fn issue_15_public_addresses_survive_other_origin_toml_settings_and_a_key_rewrite() {
    let (dir, _desk) = origin();
    let toml = dir.path().join("origin.toml");
    let text = std::fs::read_to_string(&toml).expect("read");
    std::fs::write(&toml, format!("{text}catalog_lifetime_secs = 4\n")).expect("write");
    let addresses = PublicAddresses {
        quic: Some("quic://origin.example:7443".to_owned()),
        https: Some("https://origin.example:8443".to_owned()),
    };
    crate::origin::set_public_addresses(dir.path(), &addresses).expect("set");
    // `None` keeps what is there.
    crate::origin::set_public_addresses(dir.path(), &PublicAddresses::default()).expect("keep");
    let opened = Origin::open(dir.path()).expect("open");
    assert_eq!(opened.catalog_lifetime().expect("lifetime"), 4);
    crate::origin::write_public_key(dir.path(), &opened.public_key()).expect("rewrite");
    assert_eq!(
        crate::origin::public_addresses(dir.path()).expect("read"),
        addresses
    );
    let text = std::fs::read_to_string(&toml).expect("read");
    assert!(
        text.contains("public_quic = \"quic://origin.example:7443\""),
        "{text}"
    );
    assert!(text.contains("catalog_lifetime_secs = 4"), "{text}");
}
