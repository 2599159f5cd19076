use super::*;

fn sample() -> EdgeConfig {
    EdgeConfig {
        origin: "quic://127.0.0.1:4433".parse().expect("origin"),
        origin_key: catalog::OriginKey::from_bytes(&[3; 32]).public(),
        origin_cert: "ab".repeat(32).parse().expect("pin"),
        token: "cd".repeat(32),
        max_rate: None,
        windows: Vec::new(),
        fallback: Some(FallbackUrl::parse("https://127.0.0.1:8443").expect("url")),
        transport: Transport::Auto,
        cdn: None,
        max_store: Some("40GB".parse().expect("size")),
        min_free: None,
        scrub_rate: None,
        scrub_every: None,
        subscribe: Subscription::Courses(vec!["grade3-math".into()]),
        peers: Vec::new(),
    }
}

/// Issue 13: `max_store` and `min_free` are read at load; a bad value is
/// refused with its line and what to write.
#[test]
fn issue_13_quota_fields_are_checked_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    let path = config_path(dir.path());
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("max_store = \"40GB\""), "{text}");
    let shared = text.replace(
        "max_store = \"40GB\"",
        "max_store = \"80%\"\nmin_free = \"5GiB\"",
    );
    let config = EdgeConfig::from_toml(&path, &shared).expect("80% and 5GiB parse");
    assert_eq!(
        config.max_store,
        Some(crate::quota::limits::StoreLimit::Share(80.0))
    );
    assert_eq!(config.min_free, Some(crate::quota::limits::Size(5 << 30)));
    let bad = text.replace("max_store = \"40GB\"", "max_store = \"40 gigs\"");
    let err = EdgeConfig::from_toml(&path, &bad).expect_err("a bad size is refused");
    let chain = crate::sync::error_chain(&err);
    assert!(chain.contains("line 6") && chain.contains("GiB"), "{chain}");
}

#[test]
fn config_roundtrips_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    assert_eq!(EdgeConfig::load(dir.path()).expect("load"), sample());
    let mode = std::fs::metadata(config_path(dir.path()))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "edge.toml holds the token");
    assert!(matches!(
        sample().create(dir.path()),
        Err(ConfigError::AlreadyInitialized { .. })
    ));
}

#[test]
fn a_transport_other_than_auto_is_written_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = sample();
    config.transport = Transport::Http;
    config.create(dir.path()).expect("create");
    let text = std::fs::read_to_string(config_path(dir.path())).expect("read");
    assert!(text.contains("transport = \"http\""), "{text}");

    assert_eq!(EdgeConfig::load(dir.path()).expect("load"), config);
    // As on the command line, "https" names the fallback too.
    let text = text.replace("transport = \"http\"", "transport = \"https\"");
    std::fs::write(config_path(dir.path()), text).expect("rewrite");
    assert_eq!(EdgeConfig::load(dir.path()).expect("load"), config);
}

/// `err` and its causes, as `{err:#}` prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text = format!("{text}: {cause}");
        next = cause.source();
    }
    text
}

/// Issue 12: a bad `edge.toml` is refused when it is read, with the file,
/// the field and what to write, not at the first sync.
#[test]
fn issue_12_bad_edge_toml_fields_are_refused_at_load() {
    let good = sample().to_toml(Path::new("edge.toml")).expect("encode");
    let key = sample().origin_key.to_string();
    let cases: [(&str, &str, &[&str]); 11] = [
        (
            "quic://127.0.0.1:4433",
            "http://127.0.0.1:4433",
            &["origin", "quic://HOST:PORT", "must start with quic://"],
        ),
        (
            "quic://127.0.0.1:4433",
            "quic://127.0.0.1",
            &["origin", "needs a port"],
        ),
        (
            "quic://127.0.0.1:4433",
            "quic://127.0.0.1:99999",
            &["origin", "1 to 65535"],
        ),
        (
            "quic://127.0.0.1:4433",
            "quic://:4433",
            &["origin", "host is missing"],
        ),
        (
            "quic://127.0.0.1:4433",
            "quic://a/b:4433",
            &["origin", "host"],
        ),
        (
            &key,
            "nope",
            &["origin_key", "origin init", "64 hex digits"],
        ),
        (&key, &"0".repeat(63), &["origin_key", "origin init"]),
        (
            &"ab".repeat(32),
            "12",
            &["origin_cert", "fingerprint", "origin init"],
        ),
        (
            "https://127.0.0.1:8443",
            "origin:8443",
            &["fallback", "https://HOST:PORT"],
        ),
        (
            "https://127.0.0.1:8443",
            "https://origin",
            &["fallback", "https://HOST:PORT"],
        ),
        (
            &"cd".repeat(32),
            "  ",
            &["token is empty", "origin add-edge"],
        ),
    ];
    for (from, to, expected) in cases {
        assert!(good.contains(&format!("\"{from}\"")), "{from} in {good}");
        let bad = good.replace(&format!("\"{from}\""), &format!("\"{to}\""));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(config_path(dir.path()), &bad).expect("write");
        let err = EdgeConfig::load(dir.path()).expect_err(to);
        let text = chain(&err);
        assert!(text.contains("edge.toml"), "{to}: {text}");
        for word in expected {
            assert!(text.contains(word), "{to}: {word:?} missing from: {text}");
        }
    }
}

/// Issue 12: the typed fields parse from the spellings people write and
/// from the command line, and refuse the same bad values there.
#[test]
fn issue_12_typed_fields_parse_once() {
    let origin: OriginAddr = "quic://origin.example:4433/".parse().expect("origin");
    assert_eq!((origin.host(), origin.port()), ("origin.example", 4433));
    assert_eq!(origin.to_string(), "quic://origin.example:4433");
    let v6: OriginAddr = "quic://[::1]:4433".parse().expect("v6");
    assert_eq!(v6.authority(), "[::1]:4433");
    assert!("quic://::1:4433".parse::<OriginAddr>().is_err());
    let pin: CertPin = format!("sha256:{}", "AB:".repeat(31) + "AB")
        .parse()
        .expect("pin");
    assert_eq!(pin.as_bytes(), &[0xab; 32]);
    assert_eq!(pin.to_string(), "ab".repeat(32));
    let err = "12".parse::<CertPin>().expect_err("short pin");
    assert!(err.to_string().contains("origin_cert"), "{err}");
}

/// Issue 12: the origin is resolved with `tokio::net::lookup_host` (on
/// the blocking pool, so even a current-thread runtime keeps running its
/// other tasks meanwhile), and a name that does not resolve is an error
/// naming the origin.
#[tokio::test(flavor = "current_thread")]
async fn issue_12_the_origin_resolves_without_blocking_the_runtime() {
    let origin: OriginAddr = "quic://localhost:4433".parse().expect("origin");
    let addr = origin.resolve().await.expect("localhost resolves");
    assert_eq!(addr.port(), 4433);
    assert!(addr.ip().is_loopback(), "{addr}");
    let nowhere: OriginAddr = "quic://no-such-origin.invalid:4433"
        .parse()
        .expect("origin");
    let err = nowhere.resolve().await.expect_err("an .invalid name");
    assert!(chain(&err).contains("no-such-origin.invalid"), "{err}");
}

/// Issue 12: a good file written by `edge init` is read back into the
/// same values and written back byte for byte.
#[test]
fn issue_12_a_good_edge_toml_round_trips_byte_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = sample();
    config.max_rate = Some("2Mbit".parse().expect("rate"));
    config.windows = vec!["22:00-06:00".parse().expect("window")];
    config.transport = Transport::Http;
    config.create(dir.path()).expect("create");
    let path = config_path(dir.path());
    let written = std::fs::read_to_string(&path).expect("read");
    let loaded = EdgeConfig::load(dir.path()).expect("load");
    assert_eq!(loaded, config);
    assert_eq!(loaded.to_toml(&path).expect("encode"), written);
    for field in [
        "origin = \"quic://127.0.0.1:4433\"",
        "fallback = \"https://127.0.0.1:8443\"",
    ] {
        assert!(written.contains(field), "{field} in {written}");
    }
    assert!(written.contains(&format!("origin_cert = \"{}\"", "ab".repeat(32))));
}

#[test]
fn the_cap_and_windows_are_read_from_edge_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    let path = config_path(dir.path());
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        !text.contains("max_rate") && !text.contains("windows"),
        "{text}"
    );
    let with =
        format!("max_rate = \"2Mbit\"\nwindows = [\"22:00-06:00\", \"12:00-13:00\"]\n{text}");
    std::fs::write(&path, &with).expect("write");
    let config = EdgeConfig::load(dir.path()).expect("load");
    assert_eq!(config.max_rate.map(Rate::bytes_per_second), Some(250_000));
    let windows: Vec<String> = config.windows.iter().map(ToString::to_string).collect();
    assert_eq!(windows, ["22:00-06:00", "12:00-13:00"]);
    // Written back the same way.
    let again = toml::to_string(&config).expect("toml");
    assert!(again.contains("max_rate = \"2Mbit\""), "{again}");

    std::fs::write(&path, with.replace("2Mbit", "2Mb")).expect("write");
    let err = chain(&EdgeConfig::load(dir.path()).expect_err("ambiguous rate"));
    assert!(
        err.contains("edge.toml") && err.contains("write Mbit for bits"),
        "{err}"
    );
    std::fs::write(&path, with.replace("06:00", "6pm")).expect("write");
    let err = chain(&EdgeConfig::load(dir.path()).expect_err("bad window"));
    assert!(err.contains("HH:MM-HH:MM"), "{err}");
}

#[test]
fn subscriptions_parse() {
    assert_eq!(Subscription::parse("all").expect("all"), Subscription::All);
    let some = Subscription::parse("a, b").expect("list");
    assert!(some.includes("b") && !some.includes("c"));
    assert!(Subscription::parse(" , ").is_err());
}

fn a_peer() -> Peer {
    Peer::parse(
        "quic://192.168.1.20:7450",
        "ef".repeat(16).as_str(),
        &"12".repeat(32),
        Some("https://192.168.1.20:7451"),
    )
    .expect("peer")
}

/// Issue 14: `[[peers]]` tables are written after every other field, read
/// back to the same values, and `add_peer` replaces a peer of the same
/// address rather than listing it twice.
#[test]
fn issue_14_peers_round_trip_and_are_added_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    assert!(!add_peer(dir.path(), a_peer()).expect("add"));
    let mut other = a_peer();
    other.url = "quic://192.168.1.21:7450".parse().expect("url");
    other.fallback = None;
    assert!(!add_peer(dir.path(), other.clone()).expect("add"));
    let mut again = a_peer();
    again.token = "01".repeat(16);
    assert!(
        add_peer(dir.path(), again.clone()).expect("add"),
        "replaced"
    );
    let loaded = EdgeConfig::load(dir.path()).expect("load");
    assert_eq!(loaded.peers, [other, again.clone()]);
    let text = std::fs::read_to_string(config_path(dir.path())).expect("read");
    assert!(text.contains("[[peers]]"), "{text}");
    assert!(
        text.contains("url = \"quic://192.168.1.20:7450\""),
        "{text}"
    );
    assert!(
        text.contains("fallback = \"https://192.168.1.20:7451\""),
        "{text}"
    );
    assert!(
        text.contains("subscribe") && text.find("subscribe") < text.find("[[peers]]"),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config_path(dir.path()))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "edge.toml holds the peers' tokens");
    }
    // The connection to a peer: its address, certificate, token and
    // fallback; the pinned origin key kept; unpaced.
    let mut capped = loaded.clone();
    capped.max_rate = Some("2Mbit".parse().expect("rate"));
    let to_peer = capped.peer_config(&again);
    assert_eq!(to_peer.origin.to_string(), "quic://192.168.1.20:7450");
    assert_eq!(to_peer.origin_cert, again.cert);
    assert_eq!(to_peer.token, again.token);
    assert_eq!(to_peer.fallback, again.fallback);
    assert_eq!(to_peer.origin_key, sample().origin_key);
    assert_eq!(to_peer.max_rate, None);
    assert_eq!(again.to_string(), "peer 192.168.1.20:7450");
}

/// Issue 14: a bad `[[peers]]` entry is refused at load with the file, its
/// line, and what to write.
#[test]
fn issue_14_bad_peer_entries_are_refused_at_load_with_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    add_peer(dir.path(), a_peer()).expect("add");
    let path = config_path(dir.path());
    let good = std::fs::read_to_string(&path).expect("read");
    // The line of a field in the peer's table.
    let table = good
        .lines()
        .position(|line| line == "[[peers]]")
        .expect("a peers table");
    let line_of = |needle: &str| {
        good.lines()
            .skip(table)
            .position(|line| line.starts_with(needle))
            .expect("field present")
            + table
            + 1
    };
    let cases: [(&str, String, &[&str]); 5] = [
        (
            "url = ",
            good.replace("quic://192.168.1.20:7450", "http://192.168.1.20:7450"),
            &["peer url", "quic://HOST:PORT", "--serve-edges"],
        ),
        (
            "cert = ",
            good.replace(&"12".repeat(32), "zz"),
            &["peer cert", "fingerprint", "64 hex digits"],
        ),
        (
            "token = ",
            good.replace(&format!("token = \"{}\"", "ef".repeat(16)), "token = \" \""),
            &["token is empty", "edge add-edge"],
        ),
        (
            "fallback = \"https://192",
            good.replace("https://192.168.1.20:7451", "192.168.1.20:7451"),
            &["https://HOST:PORT"],
        ),
        (
            "url = ",
            good.replace("url = ", "address = "),
            &["unknown field `address`", "url"],
        ),
    ];
    for (field, bad, expected) in cases {
        assert_ne!(bad, good, "{field}");
        std::fs::write(&path, &bad).expect("write");
        let err = EdgeConfig::load(dir.path()).expect_err(field);
        let text = chain(&err);
        let line = format!("line {}", line_of(field));
        assert!(
            text.contains("edge.toml") && text.contains(&line),
            "{line}: {text}"
        );
        for word in expected {
            assert!(text.contains(word), "{word:?} missing from: {text}");
        }
    }
    // The command line's spellings are checked the same way.
    let err = Peer::parse("quic://host", "t", &"12".repeat(32), None).expect_err("no port");
    assert!(err.to_string().contains("needs a port"), "{err}");
    let err = Peer::parse("quic://host:1", " ", &"12".repeat(32), None).expect_err("token");
    assert!(err.to_string().contains("edge add-edge"), "{err}");
}

/// Issue 14: the peer list is bounded; `add_peer` past the bound changes
/// nothing and says why, and a hand-edited file past it is refused at load.
#[test]
fn issue_14_at_most_max_peers_are_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    sample().create(dir.path()).expect("create");
    let peer = |i: usize| {
        Peer::parse(
            &format!("quic://192.168.1.{}:7450", 10 + i),
            "ef".repeat(16).as_str(),
            &"12".repeat(32),
            None,
        )
        .expect("peer")
    };
    for i in 0..super::MAX_PEERS {
        add_peer(dir.path(), peer(i)).expect("add");
    }
    let path = config_path(dir.path());
    let before = std::fs::read_to_string(&path).expect("read");
    let err = add_peer(dir.path(), peer(super::MAX_PEERS)).expect_err("one too many");
    assert!(err.to_string().contains("at most 16"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
    let one_more = format!(
        "{before}\n[[peers]]\nurl = \"quic://192.168.2.1:7450\"\ntoken = \"{}\"\ncert = \"{}\"\n",
        "ef".repeat(16),
        "12".repeat(32)
    );
    std::fs::write(&path, one_more).expect("write");
    let err = EdgeConfig::load(dir.path()).expect_err("refused at load");
    assert!(err.to_string().contains("17 peers are listed"), "{err}");
}
