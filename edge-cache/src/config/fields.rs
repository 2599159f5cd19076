//! The typed fields of `edge.toml`: the origin's address, its certificate
//! pin, and the serde adapters for the origin key and the fallback URL.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde_with::{DeserializeFromStr, SerializeDisplay};

use super::ConfigError;

/// Where the origin listens for QUIC: `quic://HOST:PORT`, checked when read.
/// Resolved (without blocking the runtime) each time a connection is made,
/// so a name that moves to another address is followed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, SerializeDisplay, DeserializeFromStr)]
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
        if !text.trim().starts_with("quic://") {
            return Err(bad("it must start with quic://"));
        }
        // The same rules as the addresses in a join code.
        match server::join::Address::parse(text, "quic") {
            Ok(address) => Ok(OriginAddr {
                host: address.host,
                port: address.port,
            }),
            Err(server::join::JoinError::Address { reason, .. }) => Err(bad(reason)),
            Err(_) => Err(bad("it is not quic://HOST:PORT")),
        }
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
#[derive(Clone, Copy, PartialEq, Eq, Hash, SerializeDisplay, DeserializeFromStr)]
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
pub(super) mod as_text {
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
pub(super) mod optional_fallback {
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
