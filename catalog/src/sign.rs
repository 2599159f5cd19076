//! Ed25519 signing of the catalog.
//!
//! The origin signs the encoded [`Catalog`] object; edges pin the origin's
//! public key and accept a catalog only if the signature verifies, whichever
//! way it arrived (QUIC, HTTP, USB, another edge). The signed message is the
//! catalog bytes behind a context string, so a signature over anything else
//! shanlu might sign one day can never pass as a catalog signature.
//!
//! After a key rotation (issue 13, [`crate::roots`]) the chain of key roots
//! travels behind the signed catalog, in the same bytes: an origin that never
//! rotated encodes exactly as before.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::object::{Catalog, DecodeError, Object};
use crate::roots::{self, Followed, RootError, SignedRoot};

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
    #[error(
        "catalog signature does not verify against origin key {key}, which the pinned origin key {pinned} reaches through key root version {version}"
    )]
    BadRotatedSignature {
        key: String,
        pinned: String,
        version: u64,
    },
    #[error("the key roots behind the catalog do not lead from the pinned origin key")]
    Roots(#[from] RootError),
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
        self.sign_with_roots(catalog, Vec::new())
    }

    /// Encodes and signs a catalog that carries the chain of key roots from
    /// the first key to this one (empty if the origin never rotated).
    pub fn sign_with_roots(&self, catalog: &Catalog, roots: Vec<SignedRoot>) -> SignedCatalog {
        let catalog_bytes = Object::Catalog(catalog.clone()).encode();
        let signature = self.0.sign(&signed_message(&catalog_bytes));
        SignedCatalog {
            catalog: catalog_bytes,
            signature: signature.to_bytes().to_vec(),
            roots,
        }
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.0
    }
}

fn signed_message(catalog_bytes: &[u8]) -> Vec<u8> {
    [CATALOG_CONTEXT, catalog_bytes].concat()
}

impl PublicKey {
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub(crate) fn from_verifying(key: VerifyingKey) -> Self {
        PublicKey(key)
    }

    pub(crate) fn verifying(&self) -> &VerifyingKey {
        &self.0
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
    /// The key roots from the first origin key to the one that signed
    /// (issue 13). Encoded after the two fields above, and only when there
    /// is one, so an origin that never rotated encodes as before.
    #[serde(skip)]
    pub roots: Vec<SignedRoot>,
}

impl SignedCatalog {
    /// The bytes that travel and are stored.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data always encodes.
        let mut bytes = postcard::to_stdvec(self).expect("postcard encodes plain data into a Vec");
        if !self.roots.is_empty() {
            bytes = postcard::to_extend(&self.roots, bytes)
                .expect("postcard encodes plain data into a Vec");
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CatalogError> {
        let (mut signed, rest) =
            postcard::take_from_bytes::<SignedCatalog>(bytes).map_err(CatalogError::Malformed)?;
        if rest.is_empty() {
            return Ok(signed);
        }
        // Bounded: each root is at least a few bytes, and the caller bounded `bytes`.
        match postcard::take_from_bytes::<Vec<SignedRoot>>(rest) {
            Ok((roots, [])) if !roots.is_empty() => {
                signed.roots = roots;
                Ok(signed)
            }
            _ => Err(CatalogError::TrailingBytes { extra: rest.len() }),
        }
    }

    /// The hash of the catalog object inside.
    pub fn catalog_hash(&self) -> Hash {
        Hash::of(&self.catalog)
    }

    /// Follows the key roots from the pinned `key`, checks the signature
    /// against the key they lead to, and decodes the catalog.
    pub fn verify(&self, key: &PublicKey) -> Result<Catalog, CatalogError> {
        self.verify_followed(key).map(|(catalog, _)| catalog)
    }

    /// [`SignedCatalog::verify`], also saying which key signed and its root
    /// version (0: the pinned key itself), so an edge can refuse a key
    /// retired by a rotation it already followed.
    pub fn verify_followed(&self, pinned: &PublicKey) -> Result<(Catalog, Followed), CatalogError> {
        let followed = roots::follow(pinned, &self.roots)?;
        let bad = || {
            if followed.key == *pinned {
                CatalogError::BadSignature {
                    key: pinned.to_string(),
                }
            } else {
                CatalogError::BadRotatedSignature {
                    key: followed.key.to_string(),
                    pinned: pinned.to_string(),
                    version: followed.version,
                }
            }
        };
        let signature: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
        followed
            .key
            .0
            .verify_strict(
                &signed_message(&self.catalog),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| bad())?;
        Ok((Object::decode(&self.catalog)?.into_catalog()?, followed))
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
        assert_eq!(hex::encode(signed.encode()), GOLDEN_SIGNED_V2);
    }

    const GOLDEN_SIGNED_V2: &str = "4201040780f7c4d506808001808004808010010b6772616465332d6d617468edcaf09befd267bfab6b8f439491ddf07206b9b22df2b11aba0574b2cd5dd2d302050000406e4d62b53e4ccbb9f00593ce8382eebb6bb5b78911da45374ce8f5333d1a883ae56ab466053d25a6153dd6994190df027832ad7382a8ba17b4222a209902fb0d";

    /// Issue 13: a signed catalog stored before issue 13 (old catalog layout,
    /// no key roots) still decodes and verifies, and encodes back to the same
    /// bytes: the envelope of an origin that never rotated is unchanged.
    #[test]
    fn issue_13_a_signed_catalog_from_before_still_verifies() {
        let bytes = hex::decode(GOLDEN_SIGNED).expect("hex");
        let signed = SignedCatalog::decode(&bytes).expect("decodes");
        assert!(signed.roots.is_empty());
        assert_eq!(signed.encode(), bytes);
        let (catalog, followed) = signed
            .verify_followed(&fixed_key().public())
            .expect("verifies");
        assert_eq!(catalog, sample_catalog());
        assert_eq!(followed.version, 0);
    }

    fn rotated() -> (OriginKey, OriginKey, SignedRoot) {
        let (old, new) = (fixed_key(), OriginKey::from_bytes(&[43; 32]));
        let root = old.sign_root(&crate::roots::KeyRoot {
            version: 1,
            key: new.public().to_bytes(),
            made_at: 1_790_000_000,
        });
        (old, new, root)
    }

    /// Issue 13: after a rotation the catalog carries the root; an edge
    /// pinned to the old key follows it to the new key in one step.
    #[test]
    fn issue_13_a_rotated_catalog_verifies_from_the_first_key() {
        let (old, new, root) = rotated();
        let signed = new.sign_with_roots(&sample_catalog(), vec![root]);
        let decoded = SignedCatalog::decode(&signed.encode()).expect("decodes");
        assert_eq!(decoded, signed);
        let (catalog, followed) = decoded.verify_followed(&old.public()).expect("follows");
        assert_eq!(catalog, sample_catalog());
        assert_eq!((followed.key, followed.version), (new.public(), 1));
        // Whoever pins the new key verifies it too.
        assert!(decoded.verify(&new.public()).is_ok());
    }

    /// Issue 13: the retired key cannot sign behind the chain that retired it.
    #[test]
    fn issue_13_the_retired_key_cannot_sign_behind_the_chain() {
        let (old, _new, root) = rotated();
        let signed = old.sign_with_roots(&sample_catalog(), vec![root]);
        let err = signed
            .verify(&old.public())
            .expect_err("signed by the retired key");
        assert!(
            matches!(err, CatalogError::BadRotatedSignature { version: 1, .. }),
            "{err:?}"
        );
    }

    /// Issue 13: garbage behind the signed catalog is not a chain of roots.
    #[test]
    fn issue_13_garbage_after_the_catalog_is_refused() {
        let mut bytes = fixed_key().sign(&sample_catalog()).encode();
        bytes.push(0);
        assert!(matches!(
            SignedCatalog::decode(&bytes),
            Err(CatalogError::TrailingBytes { extra: 1 })
        ));
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
