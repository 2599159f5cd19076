//! Join codes (issue 15): everything `shanlu edge init` needs in one line a
//! person can read over the phone, type, or scan from a QR code.
//!
//! A code carries the origin's QUIC address, its HTTPS fallback, its public
//! key, its certificate fingerprint and the edge's token. It is written as
//! `SL1-` (the format's version) and upper-case base32 without padding in
//! dash-separated groups of five; reading ignores case, spaces and dashes.
//! The bytes end with a CRC-32 of everything before it: a CRC-32 catches
//! every error burst up to 32 bits, and a mistyped base32 character changes
//! at most 5 adjacent bits, so every single wrong character is refused with
//! a checksum error before anything touches the network.
//!
//! Goals: short enough for a QR code a phone reads off a terminal (upper
//! case, digits and `-` are QR's compact alphanumeric mode). Non-goals:
//! secrecy (the code holds the token: hand it over as you would the token).
//!
//! Bytes (version 1): `1`, quic host (u8 length + UTF-8), quic port (u16 BE),
//! https host (u8 length + UTF-8; empty = the quic host), https port (u16 BE;
//! 0 = no fallback), origin key (32), certificate SHA-256 (32), token (32),
//! then the CRC-32 (u32 BE) of all of the above.

use std::fmt;
use std::path::Path;

use crate::origin::{OriginError, PublicAddresses};

/// What every join code starts with: the format's version.
pub const PREFIX: &str = "SL1-";
/// The version byte inside a version-1 code.
const VERSION: u8 = 1;
/// Characters between dashes in a written code.
const GROUP: usize = 5;
/// RFC 4648 base32: no 0/1/8/9, so O/I/B are not confused with digits.
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// The longest text [`JoinCode::decode`] looks at: codes are about 250
/// characters; anything far longer is not one.
const MAX_TEXT: usize = 4096;

/// Why a join code was refused, or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "this is not a shanlu join code: a join code starts with {PREFIX} (the line after `join code: ` that `shanlu origin add-edge` printed)"
    )]
    NotAJoinCode,
    #[error(
        "join code version {0} is newer than this shanlu reads ({PREFIX} codes); update shanlu on this machine, or set the edge up with --origin, --origin-key, --origin-cert and --token"
    )]
    Version(String),
    #[error(
        "the join code is mistyped: {character:?} (character {position}) is not used in join codes (only A-Z, 2-7 and dashes), so it cannot match the code's checksum; compare the code with the one `shanlu origin add-edge` printed, or scan its QR code"
    )]
    BadCharacter { character: char, position: usize },
    #[error(
        "the join code is mistyped: its checksum does not match, so a character is wrong, missing or extra; compare it character by character with the code `shanlu origin add-edge` printed, or scan its QR code"
    )]
    Checksum,
    #[error(
        "the join code passed its checksum but does not hold what a join code holds ({0}); ask the origin's administrator for a new one"
    )]
    Damaged(&'static str),
    #[error(
        "{text:?} is not an address edges can reach: {reason} (write it as {scheme}://HOST:PORT)"
    )]
    Address {
        text: String,
        scheme: &'static str,
        reason: &'static str,
    },
    #[error("the edge token is not 64 hex digits, so it cannot go into a join code")]
    Token,
    #[error("cannot draw the join code as a QR code: {0}")]
    Qr(String),
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("cannot read the origin's TLS certificate in {path}")]
    Tls {
        path: std::path::PathBuf,
        #[source]
        cause: crate::tls::TlsError,
    },
}

/// Where edges reach the origin: a host name or address (IPv6 in brackets)
/// and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

impl Address {
    /// Parses `SCHEME://HOST:PORT` (`quic` or `https`), by the rules edges
    /// use for `--origin`.
    pub fn parse(text: &str, scheme: &'static str) -> Result<Address, JoinError> {
        let bad = |reason| JoinError::Address {
            text: text.to_owned(),
            scheme,
            reason,
        };
        let rest = text
            .trim()
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .ok_or_else(|| bad("it must start with the scheme"))?
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("it needs a port"))?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.is_empty()
            || host.len() > 253
            || host.contains(['/', '@', '?', '#', ' '])
            || (host.contains(':') && !bracketed)
        {
            return Err(bad("the host is missing or not a host name or address"));
        }
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
        Ok(Address {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Address {
    /// `HOST:PORT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What a join code carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCode {
    pub quic: Address,
    /// The HTTPS fallback, if the origin serves one edges can reach.
    pub https: Option<Address>,
    pub origin_key: [u8; 32],
    /// SHA-256 of the origin's TLS certificate.
    pub cert: [u8; 32],
    pub token: [u8; 32],
}

impl JoinCode {
    /// The code for an edge with `token` of the origin in `dir`, reached at
    /// `addresses`; `None` when they hold no QUIC address.
    pub fn for_origin(
        dir: &Path,
        addresses: &PublicAddresses,
        token: &str,
    ) -> Result<Option<JoinCode>, JoinError> {
        let Some(quic) = addresses.quic.as_deref() else {
            return Ok(None);
        };
        let quic = Address::parse(quic, "quic")?;
        let https = addresses
            .https
            .as_deref()
            .map(|text| Address::parse(text, "https"))
            .transpose()?;
        let key =
            crate::origin::read_public_key(dir)?.ok_or_else(|| OriginError::NotInitialized {
                path: dir.to_owned(),
            })?;
        let tls = crate::tls::TlsIdentity::load_or_create(dir).map_err(|cause| JoinError::Tls {
            path: dir.join("tls"),
            cause,
        })?;
        let mut cert = [0u8; 32];
        hex::decode_to_slice(tls.fingerprint(), &mut cert)
            .map_err(|_| JoinError::Damaged("certificate fingerprint"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(token.trim(), &mut bytes).map_err(|_| JoinError::Token)?;
        Ok(Some(JoinCode {
            quic,
            https,
            origin_key: key.to_bytes(),
            cert,
            token: bytes,
        }))
    }

    /// `quic://HOST:PORT`, as `edge init --origin` takes it.
    pub fn quic_url(&self) -> String {
        format!("quic://{}", self.quic)
    }

    /// `https://HOST:PORT`, as `edge init --fallback` takes it.
    pub fn https_url(&self) -> Option<String> {
        self.https.as_ref().map(|https| format!("https://{https}"))
    }

    pub fn origin_key_hex(&self) -> String {
        hex::encode(self.origin_key)
    }

    pub fn cert_hex(&self) -> String {
        hex::encode(self.cert)
    }

    pub fn token_hex(&self) -> String {
        hex::encode(self.token)
    }

    fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.push(VERSION);
        put_host(&mut out, &self.quic.host);
        out.extend_from_slice(&self.quic.port.to_be_bytes());
        match &self.https {
            Some(https) => {
                put_host(
                    &mut out,
                    if https.host == self.quic.host {
                        ""
                    } else {
                        &https.host
                    },
                );
                out.extend_from_slice(&https.port.to_be_bytes());
            }
            None => out.extend_from_slice(&[0, 0, 0]),
        }
        out.extend_from_slice(&self.origin_key);
        out.extend_from_slice(&self.cert);
        out.extend_from_slice(&self.token);
        out
    }

    /// The written code: `SL1-XXXXX-XXXXX-…`.
    pub fn encode(&self) -> String {
        let mut bytes = self.payload();
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        let body = base32(&bytes);
        let mut out = String::with_capacity(PREFIX.len() + body.len() * 6 / 5);
        out.push_str(PREFIX);
        for (i, group) in body.as_bytes().chunks(GROUP).enumerate() {
            if i > 0 {
                out.push('-');
            }
            out.extend(group.iter().map(|&b| char::from(b)));
        }
        out
    }

    /// Reads a written code, ignoring case, spaces and dashes. Touches
    /// nothing but `text`.
    pub fn decode(text: &str) -> Result<JoinCode, JoinError> {
        if text.len() > MAX_TEXT {
            return Err(JoinError::NotAJoinCode);
        }
        // (character, its 1-based position in `text`), separators dropped.
        let kept: Vec<(char, usize)> = text
            .chars()
            .enumerate()
            .filter(|(_, c)| *c != '-' && !c.is_whitespace())
            .map(|(i, c)| (c.to_ascii_uppercase(), i + 1))
            .collect();
        let starts = |prefix: &str| {
            kept.len() >= prefix.len() && kept.iter().zip(prefix.chars()).all(|(k, p)| k.0 == p)
        };
        if !starts("SL1") {
            if starts("SL") && kept.get(2).is_some_and(|(c, _)| c.is_ascii_digit()) {
                let version = text
                    .trim()
                    .chars()
                    .skip(2)
                    .take_while(char::is_ascii_digit)
                    .collect();
                return Err(JoinError::Version(version));
            }
            return Err(JoinError::NotAJoinCode);
        }
        let mut values = Vec::with_capacity(kept.len());
        for &(character, position) in &kept[3..] {
            match ALPHABET.iter().position(|&a| char::from(a) == character) {
                Some(value) => values.push(value as u8),
                None => {
                    return Err(JoinError::BadCharacter {
                        character,
                        position,
                    });
                }
            }
        }
        let bytes = unbase32(&values).ok_or(JoinError::Checksum)?;
        let (payload, crc) = bytes.split_last_chunk::<4>().ok_or(JoinError::Checksum)?;
        if crc32fast::hash(payload) != u32::from_be_bytes(*crc) {
            return Err(JoinError::Checksum);
        }
        parse_payload(payload)
    }
}

fn put_host(out: &mut Vec<u8>, host: &str) {
    // Address::parse keeps hosts to 253 bytes.
    let host = &host.as_bytes()[..host.len().min(usize::from(u8::MAX))];
    out.push(host.len() as u8);
    out.extend_from_slice(host);
}

fn parse_payload(payload: &[u8]) -> Result<JoinCode, JoinError> {
    let mut rest = payload;
    let version = take::<1>(&mut rest)?[0];
    if version != VERSION {
        return Err(JoinError::Version(version.to_string()));
    }
    let quic_host = take_host(&mut rest)?;
    let quic_port = u16::from_be_bytes(take::<2>(&mut rest)?);
    if quic_host.is_empty() || quic_port == 0 {
        return Err(JoinError::Damaged("no QUIC address"));
    }
    let https_host = take_host(&mut rest)?;
    let https_port = u16::from_be_bytes(take::<2>(&mut rest)?);
    let https = (https_port != 0).then(|| Address {
        host: if https_host.is_empty() {
            quic_host.clone()
        } else {
            https_host
        },
        port: https_port,
    });
    let origin_key = take::<32>(&mut rest)?;
    let cert = take::<32>(&mut rest)?;
    let token = take::<32>(&mut rest)?;
    if !rest.is_empty() {
        return Err(JoinError::Damaged("bytes after the token"));
    }
    Ok(JoinCode {
        quic: Address {
            host: quic_host,
            port: quic_port,
        },
        https,
        origin_key,
        cert,
        token,
    })
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], JoinError> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or(JoinError::Damaged("it ends early"))?;
    *rest = tail;
    Ok(*head)
}

fn take_host(rest: &mut &[u8]) -> Result<String, JoinError> {
    let len = usize::from(take::<1>(rest)?[0]);
    if rest.len() < len {
        return Err(JoinError::Damaged("it ends early"));
    }
    let (host, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(host.to_vec()).map_err(|_| JoinError::Damaged("a host is not UTF-8"))
}

/// RFC 4648 base32 without padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of base32 `values` (0..32 each); `None` unless they are
/// exactly what [`base32`] writes for some bytes (a character missing,
/// extra, or changed in the unused last bits).
fn unbase32(values: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &value in values {
        buffer = ((buffer << 5) | u32::from(value)) & 0xFFFF;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    let canonical = bits < 5 && buffer & ((1 << bits) - 1) == 0;
    canonical.then_some(out)
}

/// The code as a QR code for a terminal: two rows of modules per line with
/// Unicode half blocks, light modules drawn (terminals write light on dark),
/// with the quiet zone around it.
pub fn qr(code: &str) -> Result<String, JoinError> {
    use qrcode::render::unicode::Dense1x2;
    let qr = qrcode::QrCode::with_error_correction_level(code, qrcode::EcLevel::M)
        .map_err(|err| JoinError::Qr(err.to_string()))?;
    Ok(qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
