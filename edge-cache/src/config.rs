//! The edge's data folder and its configuration (`DIR/edge.toml`).
//!
//! ```text
//! DIR/
//!   edge.toml    origin address, pinned origin key and certificate, token,
//!                optional bandwidth cap and sync windows, subscriptions (mode 0600)
//!   store/       blobs, partial blobs, objects, the signed catalog in force
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use catalog::PublicKey;
use serde::{Deserialize, Serialize};

use crate::sync::client::Transport;
use crate::sync::fallback::FallbackUrl;
use crate::sync::schedule::Window;
use crate::sync::throttle::Rate;

/// What `edge init` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConfig {
    /// `quic://HOST:PORT`.
    pub origin: String,
    /// The origin's Ed25519 key: catalogs not signed by it are refused.
    pub origin_key: String,
    /// SHA-256 fingerprint of the origin's TLS certificate.
    pub origin_cert: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// `auto` (QUIC, else the fallback), `quic` or `http` (only the fallback).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub transport: Transport,
    /// Last: written as a table when it lists courses.
    pub subscribe: Subscription,
}

fn is_auto(transport: &Transport) -> bool {
    *transport == Transport::Auto
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
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

impl EdgeConfig {
    /// Checks every field, so a typo is caught at `edge init`, not at the first sync.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.origin_addr_text()?;
        self.fallback_url()?;
        self.public_key()?;
        server::tls::parse_fingerprint(&self.origin_cert)
            .map_err(|err| ConfigError::Invalid(err.to_string()))?;
        if self.token.trim().is_empty() {
            return Err(ConfigError::Invalid(
                "--token is empty; give the token `shanlu origin add-edge` printed".into(),
            ));
        }
        Ok(())
    }

    /// The fallback address, if edge.toml names one.
    pub fn fallback_url(&self) -> Result<Option<FallbackUrl>, ConfigError> {
        self.fallback.as_deref().map(FallbackUrl::parse).transpose()
    }

    pub fn public_key(&self) -> Result<PublicKey, ConfigError> {
        self.origin_key.parse().map_err(|err| {
            ConfigError::Invalid(format!(
                "origin key {:?}: {err}; give the key `shanlu origin init` printed",
                self.origin_key
            ))
        })
    }

    /// `HOST:PORT` from `quic://HOST:PORT`.
    pub fn origin_addr_text(&self) -> Result<&str, ConfigError> {
        let rest = self.origin.strip_prefix("quic://").ok_or_else(|| {
            ConfigError::Invalid(format!(
                "origin {:?} must look like quic://HOST:PORT",
                self.origin
            ))
        })?;
        if !rest.contains(':') {
            return Err(ConfigError::Invalid(format!(
                "origin {:?} needs a port: quic://HOST:PORT",
                self.origin
            )));
        }
        Ok(rest.trim_end_matches('/'))
    }

    /// Resolves the origin's address.
    pub fn origin_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs;
        let text = self.origin_addr_text()?;
        text.to_socket_addrs()
            .map_err(|err| {
                ConfigError::Invalid(format!("cannot resolve the origin {text}: {err}"))
            })?
            .next()
            .ok_or_else(|| {
                ConfigError::Invalid(format!("the origin {text} resolves to no address"))
            })
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
        let text = toml::to_string(self).map_err(|err| ConfigError::Damaged {
            path: path.clone(),
            reason: err.to_string(),
        })?;
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
        let config: EdgeConfig = toml::from_str(&text).map_err(|err| ConfigError::Damaged {
            path: path.clone(),
            reason: err.to_string(),
        })?;
        config.validate().map_err(|err| ConfigError::Damaged {
            path,
            reason: err.to_string(),
        })?;
        Ok(config)
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
            origin: "quic://127.0.0.1:4433".into(),
            origin_key: catalog::OriginKey::from_bytes(&[3; 32])
                .public()
                .to_string(),
            origin_cert: "ab".repeat(32),
            token: "cd".repeat(32),
            max_rate: None,
            windows: Vec::new(),
            fallback: Some("https://127.0.0.1:8443".into()),
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

    #[test]
    fn bad_fields_are_refused_at_init() {
        let mut bad = sample();
        bad.fallback = Some("origin:8443".into());
        assert!(
            bad.validate()
                .expect_err("bad fallback")
                .to_string()
                .contains("https://HOST:PORT")
        );
        let mut bad = sample();
        bad.origin = "http://x".into();
        assert!(bad.validate().is_err());
        let mut bad = sample();
        bad.origin_key = "nope".into();
        assert!(
            bad.validate()
                .expect_err("bad key")
                .to_string()
                .contains("origin init")
        );
        let mut bad = sample();
        bad.origin_cert = "12".into();
        assert!(bad.validate().is_err());
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
        let err = EdgeConfig::load(dir.path())
            .expect_err("ambiguous rate")
            .to_string();
        assert!(
            err.contains("edge.toml") && err.contains("write Mbit for bits"),
            "{err}"
        );
        std::fs::write(&path, with.replace("06:00", "6pm")).expect("write");
        let err = EdgeConfig::load(dir.path())
            .expect_err("bad window")
            .to_string();
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
