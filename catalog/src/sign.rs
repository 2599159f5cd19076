//! Ed25519 signing of the catalog.
//!
//! The origin signs the encoded [`Catalog`] object; edges pin the origin's
//! public key and accept a catalog only if the signature verifies, whichever
//! way it arrived (QUIC, HTTP, USB, another edge). The signed message is the
//! catalog bytes behind a context string, so a signature over anything else
//! shanlu might sign one day can never pass as a catalog signature.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::object::{Catalog, DecodeError, Object};

const CATALOG_CONTEXT: &[u8] = b"shanlu catalog signature v1\0";

/// The origin's secret signing key.
pub struct OriginKey(SigningKey);

/// The origin's public key, as edges pin it: 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// Why a catalog is refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("signed catalog does not decode")]
    Malformed(#[source] postcard::Error),
    #[error("signed catalog has {extra} bytes after its end")]
    TrailingBytes { extra: usize },
    #[error("catalog signature does not verify against the pinned origin key {key}")]
    BadSignature { key: String },
    #[error("catalog object is invalid: {0}")]
    Object(#[from] DecodeError),
}

/// Why a key does not parse.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a shanlu key is 64 hex digits")]
    Format,
    #[error("not a valid Ed25519 public key")]
    Invalid,
}

impl OriginKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        Ok(OriginKey(SigningKey::from_bytes(&secret)))
    }

    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        OriginKey(SigningKey::from_bytes(secret))
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Encodes and signs a catalog.
    pub fn sign(&self, catalog: &Catalog) -> SignedCatalog {
        let catalog_bytes = Object::Catalog(catalog.clone()).encode();
        let signature = self.0.sign(&signed_message(&catalog_bytes));
        SignedCatalog {
            catalog: catalog_bytes,
            signature: signature.to_bytes().to_vec(),
        }
    }
}

fn signed_message(catalog_bytes: &[u8]) -> Vec<u8> {
    [CATALOG_CONTEXT, catalog_bytes].concat()
}

impl PublicKey {
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut bytes).map_err(|_| KeyError::Format)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::Invalid)
    }
}

/// The catalog bytes with the origin's signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCatalog {
    /// An encoded [`Object::Catalog`].
    #[serde(with = "serde_bytes")]
    pub catalog: Vec<u8>,
    /// 64-byte Ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl SignedCatalog {
    /// The bytes that travel and are stored.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data always encodes.
        postcard::to_stdvec(self).expect("postcard encodes plain data into a Vec")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CatalogError> {
        match postcard::take_from_bytes::<SignedCatalog>(bytes) {
            Ok((signed, [])) => Ok(signed),
            Ok((_, rest)) => Err(CatalogError::TrailingBytes { extra: rest.len() }),
            Err(err) => Err(CatalogError::Malformed(err)),
        }
    }

    /// The hash of the catalog object inside.
    pub fn catalog_hash(&self) -> Hash {
        Hash::of(&self.catalog)
    }

    /// Checks the signature against `key` and decodes the catalog.
    pub fn verify(&self, key: &PublicKey) -> Result<Catalog, CatalogError> {
        let signature: [u8; 64] =
            self.signature
                .as_slice()
                .try_into()
                .map_err(|_| CatalogError::BadSignature {
                    key: key.to_string(),
                })?;
        key.0
            .verify_strict(
                &signed_message(&self.catalog),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| CatalogError::BadSignature {
                key: key.to_string(),
            })?;
        Ok(Object::decode(&self.catalog)?.into_catalog()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::sample_catalog;

    fn fixed_key() -> OriginKey {
        OriginKey::from_bytes(&[42; 32])
    }

    #[test]
    fn signed_catalog_verifies_and_roundtrips() {
        let key = fixed_key();
        let signed = key.sign(&sample_catalog());
        let decoded = SignedCatalog::decode(&signed.encode()).expect("decodes");
        assert_eq!(
            decoded.verify(&key.public()).expect("verifies"),
            sample_catalog()
        );
    }

    #[test]
    fn golden_signed_catalog() {
        // Ed25519 is deterministic: same key and catalog, same bytes.
        let signed = fixed_key().sign(&sample_catalog());
        assert_eq!(hex::encode(signed.encode()), GOLDEN_SIGNED);
    }

    const GOLDEN_SIGNED: &str = "4001030780f7c4d506808001808004808010010b6772616465332d6d617468edcaf09befd267bfab6b8f439491ddf07206b9b22df2b11aba0574b2cd5dd2d302054016b8691fc666fab4a74e87cd183a37eaf71210f209ae6bdf308d5f38156cfb3e2860c973e7c26f7690d221b458b15663b5859895813f1125e98de0829f310b02";

    #[test]
    fn any_flipped_byte_is_rejected() {
        let key = fixed_key();
        let signed = key.sign(&sample_catalog());
        for index in 0..signed.catalog.len() {
            let mut tampered = signed.clone();
            tampered.catalog[index] ^= 0x20;
            assert!(
                tampered.verify(&key.public()).is_err(),
                "catalog byte {index}"
            );
        }
        for index in 0..signed.signature.len() {
            let mut tampered = signed.clone();
            tampered.signature[index] ^= 0x01;
            assert!(
                tampered.verify(&key.public()).is_err(),
                "signature byte {index}"
            );
        }
    }

    #[test]
    fn another_key_is_rejected() {
        let signed = fixed_key().sign(&sample_catalog());
        let other = OriginKey::from_bytes(&[7; 32]).public();
        let err = signed.verify(&other).expect_err("wrong key");
        assert!(matches!(err, CatalogError::BadSignature { .. }));
        assert!(err.to_string().contains(&other.to_string()));
    }

    #[test]
    fn unsigned_catalog_is_rejected() {
        let mut signed = fixed_key().sign(&sample_catalog());
        signed.signature.clear();
        assert!(signed.verify(&fixed_key().public()).is_err());
    }

    #[test]
    fn public_key_parses_from_its_display() {
        let public = fixed_key().public();
        let parsed: PublicKey = public.to_string().parse().expect("parses");
        assert_eq!(parsed, public);
        assert!("zz".parse::<PublicKey>().is_err());
    }
}
