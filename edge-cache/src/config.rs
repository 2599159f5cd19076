//! The edge's data folder and its configuration (`DIR/edge.toml`).
//!
//! ```text
//! DIR/
//!   edge.toml    origin address, pinned origin key and certificate, token,
//!                optional bandwidth cap and sync windows, subscriptions (mode 0600)
//!   store/       blobs, partial blobs, objects, the signed catalog in force
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use catalog::PublicKey;
use serde::{Deserialize, Serialize};

use crate::sync::client::Transport;
use crate::sync::fallback::FallbackUrl;
use crate::sync::schedule::Window;
use crate::sync::throttle::Rate;

/// What `edge init` records, parsed and checked once when it is read: a bad
/// field is refused at load with the file, the line and what to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConfig {
    /// `quic://HOST:PORT`.
    pub origin: OriginAddr,
    /// The origin's Ed25519 key: catalogs not signed by it are refused.
    #[serde(with = "as_text")]
    pub origin_key: PublicKey,
    /// SHA-256 fingerprint of the origin's TLS certificate.
    pub origin_cert: CertPin,
    /// This edge's token, issued by `shanlu origin add-edge`.
    pub token: String,
    /// The bandwidth cap of sync passes (`max_rate = "2Mbit"`); `--max-rate` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<Rate>,
    /// When `edge run` may start sync passes (`windows = ["22:00-06:00"]`);
    /// none means any time. `--window` overrides them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// The origin's HTTPS fallback, `https://HOST:PORT` (its `--https`): used
    /// when QUIC cannot connect, e.g. where the carrier blocks UDP.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_fallback"
    )]
    pub fallback: Option<FallbackUrl>,
    /// `auto` (QUIC, else the fallback), `quic` or `http` (only the fallback).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub transport: Transport,
    /// Last: written as a table when it lists courses.
    pub subscribe: Subscription,
}

fn is_auto(transport: &Transport) -> bool {
    *transport == Transport::Auto
}

/// Where the origin listens for QUIC: `quic://HOST:PORT`, checked when read.
/// Resolved (without blocking the runtime) each time a connection is made,
/// so a name that moves to another address is followed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OriginAddr {
    /// A name, an IPv4 address or a bracketed IPv6 address.
    host: String,
    port: u16,
}

impl OriginAddr {
    /// `HOST:PORT`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The first address the host resolves to, looked up on tokio's blocking
    /// pool ([`tokio::net::lookup_host`]), never on the async runtime's threads.
    pub async fn resolve(&self) -> Result<SocketAddr, ConfigError> {
        let authority = self.authority();
        let mut addrs = tokio::net::lookup_host(authority.as_str())
            .await
            .map_err(|cause| ConfigError::Resolve {
                origin: self.clone(),
                cause,
            })?;
        addrs.next().ok_or_else(|| ConfigError::NoAddress {
            origin: self.clone(),
        })
    }
}

impl FromStr for OriginAddr {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<OriginAddr, FieldError> {
        let bad = |problem: &'static str| FieldError::Origin {
            text: text.to_owned(),
            problem,
        };
        let rest = text
            .trim()
            .strip_prefix("quic://")
            .ok_or_else(|| bad("it must start with quic://"))?
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("it needs a port"))?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty()
            || host.contains(['/', '@', '?', '#'])
            || (host.contains(':') && !bracketed)
        {
            return Err(bad("the host is missing or not a host name or address"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
        Ok(OriginAddr {
            host: host.to_owned(),
            port,
        })
    }
}

impl TryFrom<String> for OriginAddr {
    type Error = FieldError;

    fn try_from(text: String) -> Result<OriginAddr, FieldError> {
        text.parse()
    }
}

impl From<OriginAddr> for String {
    fn from(addr: OriginAddr) -> String {
        addr.to_string()
    }
}

impl fmt::Display for OriginAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "quic://{}:{}", self.host, self.port)
    }
}

/// The SHA-256 fingerprint of the origin's TLS certificate, which the edge
/// pins: written as 64 lowercase hex digits (`sha256:` and colons are
/// accepted when read).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CertPin([u8; 32]);

impl CertPin {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for CertPin {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<CertPin, FieldError> {
        let bad = || FieldError::Cert {
            text: text.to_owned(),
        };
        let hex_text = server::tls::parse_fingerprint(text).map_err(|_| bad())?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_text, &mut bytes).map_err(|_| bad())?;
        Ok(CertPin(bytes))
    }
}

impl TryFrom<String> for CertPin {
    type Error = FieldError;

    fn try_from(text: String) -> Result<CertPin, FieldError> {
        text.parse()
    }
}

impl From<CertPin> for String {
    fn from(pin: CertPin) -> String {
        pin.to_string()
    }
}

impl fmt::Display for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for CertPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertPin({self})")
    }
}

/// A value that is written as text and parsed with `FromStr` (the origin key).
mod as_text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = catalog::sign::KeyError>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|cause| {
            de::Error::custom(super::FieldError::Key {
                text: text.clone(),
                cause,
            })
        })
    }
}

/// `fallback = "https://HOST:PORT"`, parsed with [`FallbackUrl::parse`].
mod optional_fallback {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::sync::fallback::FallbackUrl;

    pub fn serialize<S: Serializer>(
        url: &Option<FallbackUrl>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match url {
            Some(url) => serializer.collect_str(url),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<FallbackUrl>, D::Error> {
        let text = String::deserialize(deserializer)?;
        FallbackUrl::parse(&text)
            .map(Some)
            .map_err(de::Error::custom)
    }
}

/// Which courses' files an edge holds. Metadata of every course is always synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subscription {
    All,
    Courses(Vec<String>),
}

impl Subscription {
    /// `all` or a comma-separated list of course ids.
    pub fn parse(text: &str) -> Result<Subscription, ConfigError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("all") {
            return Ok(Subscription::All);
        }
        let ids: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return Err(ConfigError::Invalid(
                "--subscribe needs `all` or course ids separated by commas".into(),
            ));
        }
        Ok(Subscription::Courses(ids))
    }

    pub fn includes(&self, course_id: &str) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Courses(ids) => ids.iter().any(|id| id == course_id),
        }
    }
}

/// Why one field of the edge configuration is wrong: the field, what was
/// written, and what to write instead.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error(
        "origin {text:?} is not usable: {problem}; write quic://HOST:PORT, the address `shanlu origin serve` listens on"
    )]
    Origin { text: String, problem: &'static str },
    #[error(
        "origin_key {text:?} is not an origin key; give the key `shanlu origin init` printed (64 hex digits)"
    )]
    Key {
        text: String,
        #[source]
        cause: catalog::sign::KeyError,
    },
    #[error(
        "origin_cert {text:?} is not a certificate fingerprint; give the fingerprint `shanlu origin init` printed (64 hex digits)"
    )]
    Cert { text: String },
}

/// Why the edge configuration could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path} is not an edge data folder (no edge.toml); run `shanlu edge init --data {path} …` first"
    )]
    NotInitialized { path: PathBuf },
    #[error(
        "{path} is already an edge data folder; to change it, edit {path}/edge.toml or move the folder away"
    )]
    AlreadyInitialized { path: PathBuf },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("{path} cannot be used: fix the field at the line shown, then run the command again")]
    Damaged {
        path: PathBuf,
        #[source]
        cause: toml::de::Error,
    },
    #[error("cannot write the edge configuration {path}")]
    Encode {
        path: PathBuf,
        #[source]
        cause: toml::ser::Error,
    },
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(
        "cannot resolve the origin {origin}; check the host name in edge.toml and the school's DNS"
    )]
    Resolve {
        origin: OriginAddr,
        #[source]
        cause: std::io::Error,
    },
    #[error("the origin {origin} resolves to no address; check the host name in edge.toml")]
    NoAddress { origin: OriginAddr },
    #[error("{0}")]
    Invalid(String),
}

impl EdgeConfig {
    /// Checks what the field types cannot: the token is not empty.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.token.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "--token is empty; give the token `shanlu origin add-edge` printed".into(),
            ));
        }
        Ok(())
    }

    /// The file's text: what [`EdgeConfig::create`] writes.
    pub fn to_toml(&self, path: &Path) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|cause| ConfigError::Encode {
            path: path.to_owned(),
            cause,
        })
    }

    /// Parses an `edge.toml` read from `path`, every field checked.
    pub fn from_toml(path: &Path, text: &str) -> Result<EdgeConfig, ConfigError> {
        let config: EdgeConfig = toml::from_str(text).map_err(|cause| ConfigError::Damaged {
            path: path.to_owned(),
            cause,
        })?;
        if config.token.trim().is_empty() {
            return Err(ConfigError::Invalid(format!(
                "{}: the token is empty; write the token `shanlu origin add-edge` printed",
                path.display()
            )));
        }
        Ok(config)
    }

    /// Writes `DIR/edge.toml` (readable only by its owner: it holds the token).
    pub fn create(&self, dir: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        self.validate()?;
        let path = config_path(dir);
        if path.exists() {
            return Err(ConfigError::AlreadyInitialized {
                path: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|cause| ConfigError::Io {
            action: "creating",
            path: dir.to_owned(),
            cause,
        })?;
        let text = self.to_toml(&path)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|cause| ConfigError::Io {
                action: "creating",
                path: path.clone(),
                cause,
            })?;
        file.write_all(text.as_bytes())
            .map_err(|cause| ConfigError::Io {
                action: "writing",
                path: path.clone(),
                cause,
            })?;
        file.sync_all().map_err(|cause| ConfigError::Io {
            action: "syncing",
            path,
            cause,
        })
    }

    pub fn load(dir: &Path) -> Result<EdgeConfig, ConfigError> {
        let path = config_path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotInitialized {
                    path: dir.to_owned(),
                });
            }
            Err(cause) => {
                return Err(ConfigError::Io {
                    action: "reading",
                    path,
                    cause,
                });
            }
        };
        EdgeConfig::from_toml(&path, &text)
    }
}

pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("edge.toml")
}

/// The edge's store folder.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join("store")
}

#[cfg(test)]
mod tests {
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
            subscribe: Subscription::Courses(vec!["grade3-math".into()]),
        }
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
}
