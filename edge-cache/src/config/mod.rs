//! The edge's data folder and its configuration (`DIR/edge.toml`).
//!
//! ```text
//! DIR/
//!   edge.toml    origin address, pinned origin key and certificate, token,
//!                optional bandwidth cap and sync windows, scrub rate and cycle,
//!                subscriptions, LAN peers (mode 0600)
//!   store/       blobs, partial blobs, objects, the signed catalog in force
//! ```

use std::path::{Path, PathBuf};

use catalog::PublicKey;
use serde::{Deserialize, Serialize};

use crate::quota::limits::{Size, StoreLimit};
use crate::sync::client::Transport;
use crate::sync::fallback::FallbackUrl;
use crate::sync::schedule::Window;
use crate::sync::throttle::Rate;

mod fields;
mod peers;
#[cfg(test)]
mod tests;

pub use fields::{CertPin, FieldError, OriginAddr};
pub use peers::{Peer, add_peer};

/// What `edge init` records, parsed and checked once when it is read: a bad
/// field is refused at load with the file, the line and what to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeConfig {
    /// `quic://HOST:PORT`.
    pub origin: OriginAddr,
    /// The origin's Ed25519 key: catalogs not signed by it are refused.
    #[serde(with = "fields::as_text")]
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
        with = "fields::optional_fallback"
    )]
    pub fallback: Option<FallbackUrl>,
    /// `auto` (QUIC, else the fallback), `quic` or `http` (only the fallback).
    #[serde(default, skip_serializing_if = "is_auto")]
    pub transport: Transport,
    /// A caching proxy or CDN in front of the origin's immutable routes,
    /// `http://HOST:PORT` (issue 16): objects and chunks are fetched from it
    /// by hash (and checked against it); the catalog and everything else
    /// still come from the origin. The edge's token is never sent to it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "fields::optional_fallback"
    )]
    pub cdn: Option<FallbackUrl>,
    /// The most the store may hold (issue 13): a size (`"40GB"`) or a share
    /// of the filesystem holding the data folder (`"80%"`); none means only
    /// `min_free` limits. `--max-store` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_store: Option<StoreLimit>,
    /// Bytes a pass leaves free on the filesystem (issue 13), default 2GB.
    /// `--min-free` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_free: Option<Size>,
    /// The background scrub's read rate (`scrub_rate = "8MiB"`, the syntax
    /// of `max_rate`); default 8 MiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub_rate: Option<Rate>,
    /// How often a full scrub cycle starts (`scrub_every = "7d"`; `h`, `m`,
    /// `s` too); default 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrub_every: Option<crate::scrub::Every>,
    /// Last: written as a table when it lists courses.
    pub subscribe: Subscription,
    /// Edges on the LAN asked for chunks before the origin (issue 14):
    /// `[[peers]]` tables, after every other field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<Peer>,
}

/// Most `[[peers]]` an edge lists (issue 14).
pub const MAX_PEERS: usize = 16;

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
        config.check_peers(path)?;
        Ok(config)
    }

    /// At most [`MAX_PEERS`] peers: each is asked before the origin and
    /// connected to at the start of every pass.
    fn check_peers(&self, path: &Path) -> Result<(), ConfigError> {
        if self.peers.len() > MAX_PEERS {
            return Err(ConfigError::Invalid(format!(
                "{}: {} peers are listed; at most {MAX_PEERS} (each is asked before the origin and connected to every pass): keep the edges nearest on the LAN",
                path.display(),
                self.peers.len()
            )));
        }
        Ok(())
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
