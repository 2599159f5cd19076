//! [`Hash`]: the BLAKE3 name of every blob, chunk and metadata object.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A BLAKE3 hash. Its hex form is exactly what `b3sum` prints for the same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The length of a hash in bytes.
    pub const LEN: usize = 32;

    /// Hashes `bytes` with BLAKE3.
    pub fn of(bytes: &[u8]) -> Self {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The full lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 10 hex digits, for logs and progress lines.
    pub fn fmt_short(&self) -> String {
        hex::encode(&self.0[..5])
    }
}

impl From<blake3::Hash> for Hash {
    fn from(hash: blake3::Hash) -> Self {
        Hash(*hash.as_bytes())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.fmt_short())
    }
}

/// Why a string is not a hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseHashError {
    #[error("a BLAKE3 hash is 64 hex digits, got {0} characters")]
    Length(usize),
    #[error("a BLAKE3 hash is 64 hex digits, found a character that is not hex")]
    NotHex,
}

impl FromStr for Hash {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(ParseHashError::Length(s.chars().count()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHashError::NotHex)?;
        Ok(Hash(bytes))
    }
}

/// Binary formats carry the 32 raw bytes; JSON and TOML carry hex.
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Hash)
        }
    }
}

/// An incremental hasher for data that arrives in pieces.
#[derive(Default, Clone)]
pub struct Hasher(blake3::Hasher);

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    /// Hashes a large buffer on several threads; same result as [`Hasher::update`].
    pub fn update_parallel(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update_rayon(bytes);
        self
    }

    pub fn finalize(&self) -> Hash {
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_b3sum_of_empty_input() {
        // `printf '' | b3sum`
        assert_eq!(
            Hash::of(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn hash_display_parse_roundtrip() {
        let hash = Hash::of(b"shanlu");
        let parsed: Hash = hash.to_string().parse().expect("valid hex");
        assert_eq!(parsed, hash);
        assert_eq!(hash.fmt_short().len(), 10);
    }

    #[test]
    fn hash_parse_rejects_bad_input() {
        assert_eq!("abc".parse::<Hash>(), Err(ParseHashError::Length(3)));
        let not_hex = "g".repeat(64);
        assert_eq!(not_hex.parse::<Hash>(), Err(ParseHashError::NotHex));
    }

    #[test]
    fn hash_wire_format_is_raw_bytes() {
        let hash = Hash::from_bytes([7; 32]);
        let bytes = postcard::to_stdvec(&hash).expect("encodes");
        assert_eq!(bytes, vec![7; 32]);
        let json = serde_json::to_string(&hash).expect("encodes");
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        let back: Hash = serde_json::from_str(&json).expect("decodes");
        assert_eq!(back, hash);
    }

    #[test]
    fn parallel_and_serial_hashing_agree() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut serial = Hasher::new();
        serial.update(&data);
        let mut parallel = Hasher::new();
        parallel.update_parallel(&data);
        assert_eq!(serial.finalize(), parallel.finalize());
        assert_eq!(serial.finalize(), Hash::of(&data));
    }
}
