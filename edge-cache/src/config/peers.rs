//! `[[peers]]` in `edge.toml` (issue 14): other edges on the school or
//! county LAN that serve the sync protocol (`edge run --serve-edges`), asked
//! for chunks before the upstream. Listed by hand (`shanlu edge add-peer`):
//! there is no discovery (no mDNS).
//!
//! A peer is untrusted transport: every chunk it sends is hashed, and the
//! catalog still comes from, and is verified against, the pinned origin key.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::fields::{CertPin, OriginAddr};
use super::{ConfigError, EdgeConfig};
use crate::sync::client::Transport;
use crate::sync::fallback::FallbackUrl;

/// One `[[peers]]` table: the same fields, checked the same way, as the
/// origin's connection (`origin`, `origin_cert`, `token`, `fallback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// `quic://HOST:PORT`: the peer's `--serve-edges` address.
    #[serde(with = "peer_url")]
    pub url: OriginAddr,
    /// This edge's token on the peer, printed by `shanlu edge add-edge` there.
    #[serde(deserialize_with = "peer_token")]
    pub token: String,
    /// The fingerprint of the peer's certificate (its `edge run
    /// --serve-edges` prints it).
    #[serde(with = "peer_cert")]
    pub cert: CertPin,
    /// The peer's HTTPS fallback, `https://HOST:PORT`, if UDP is blocked on the LAN.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "super::fields::optional_fallback"
    )]
    pub fallback: Option<FallbackUrl>,
}

impl fmt::Display for Peer {
    /// `peer HOST:PORT`, as logs and reports name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {}", self.url.authority())
    }
}

impl Peer {
    /// A peer from the command line's strings, checked like `edge.toml`.
    pub fn parse(
        url: &str,
        token: &str,
        cert: &str,
        fallback: Option<&str>,
    ) -> Result<Peer, ConfigError> {
        let url = url
            .parse::<OriginAddr>()
            .map_err(|err| ConfigError::Invalid(peer_url::message(url, &err)))?;
        let cert = cert
            .parse::<CertPin>()
            .map_err(|_| ConfigError::Invalid(peer_cert::message(cert)))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(ConfigError::Invalid(EMPTY_TOKEN.into()));
        }
        let fallback = fallback
            .map(FallbackUrl::parse)
            .transpose()
            .map_err(|err| ConfigError::Invalid(format!("peer fallback: {err}")))?;
        Ok(Peer {
            url,
            token: token.to_owned(),
            cert,
            fallback,
        })
    }
}

const EMPTY_TOKEN: &str = "the peer's token is empty; write the token `shanlu edge add-edge --name THIS-SCHOOL` printed on the peer";

impl EdgeConfig {
    /// The configuration a [`Client`](crate::sync::client::Client) uses to
    /// reach `peer`: the peer's address, certificate, token and fallback in
    /// place of the origin's. The pinned origin KEY stays: whatever a peer
    /// sends is verified against it. Unpaced (a LAN link; `max_rate` is for
    /// the upstream), QUIC first and then the peer's fallback if any.
    pub fn peer_config(&self, peer: &Peer) -> EdgeConfig {
        EdgeConfig {
            origin: peer.url.clone(),
            origin_cert: peer.cert,
            token: peer.token.clone(),
            fallback: peer.fallback.clone(),
            // A peer is asked directly, never through the origin's CDN.
            cdn: None,
            transport: Transport::Auto,
            max_rate: None,
            windows: Vec::new(),
            peers: Vec::new(),
            ..self.clone()
        }
    }

    /// Adds `peer` (`shanlu edge add-peer`); one with the same address is
    /// replaced. Returns whether one was replaced.
    pub fn add_peer(&mut self, peer: Peer) -> bool {
        let before = self.peers.len();
        self.peers.retain(|p| p.url != peer.url);
        let replaced = self.peers.len() != before;
        self.peers.push(peer);
        replaced
    }
}

fn peer_token<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let token = String::deserialize(deserializer)?;
    if token.trim().is_empty() {
        return Err(serde::de::Error::custom(EMPTY_TOKEN));
    }
    Ok(token.trim().to_owned())
}

/// `url = "quic://HOST:PORT"`, with a message about peers.
mod peer_url {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::OriginAddr;
    use crate::config::FieldError;

    pub fn message(text: &str, err: &FieldError) -> String {
        let problem = match err {
            FieldError::Origin { problem, .. } => *problem,
            _ => "it is not an address",
        };
        format!(
            "peer url {text:?} is not usable: {problem}; write quic://HOST:PORT, the address the peer's `shanlu edge run --serve-edges` listens on"
        )
    }

    pub fn serialize<S: Serializer>(url: &OriginAddr, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(url)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OriginAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|err| de::Error::custom(message(&text, &err)))
    }
}

/// `cert = "<fingerprint>"`, with a message about peers.
mod peer_cert {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::CertPin;

    pub fn message(text: &str) -> String {
        format!(
            "peer cert {text:?} is not a certificate fingerprint; give the fingerprint the peer's `shanlu edge run --serve-edges` printed (64 hex digits)"
        )
    }

    pub fn serialize<S: Serializer>(pin: &CertPin, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(pin)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CertPin, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| de::Error::custom(message(&text)))
    }
}

/// Adds `peer` to `DIR/edge.toml` (`shanlu edge add-peer`): the file is
/// read, checked, and written back whole through a temporary file renamed
/// over it (mode 0600: it holds tokens). Comments written by hand are not
/// kept. Returns whether a peer with the same address was replaced.
pub fn add_peer(dir: &std::path::Path, peer: Peer) -> Result<bool, ConfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut config = EdgeConfig::load(dir)?;
    let replaced = config.add_peer(peer);
    let path = super::config_path(dir);
    config.check_peers(&path)?;
    let text = config.to_toml(&path)?;
    let temporary = dir.join("edge.toml.new");
    let io = |action: &'static str, path: &std::path::Path| {
        let path = path.to_owned();
        move |cause| ConfigError::Io {
            action,
            path,
            cause,
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io("creating", &temporary))?;
    file.write_all(text.as_bytes())
        .map_err(io("writing", &temporary))?;
    file.sync_all().map_err(io("syncing", &temporary))?;
    std::fs::rename(&temporary, &path).map_err(io("replacing", &path))?;
    Ok(replaced)
}
