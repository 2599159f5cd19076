//! Key rotation (issue 13): a chain of small versioned root documents.
//!
//! The key an edge pins is root version 0. `shanlu origin rotate-key` makes
//! a new key and a [`KeyRoot`] naming it with the next version, signed by the
//! key it replaces under its own context string (a root signature can never
//! pass as a catalog signature, nor the reverse). The whole chain travels
//! with every signed catalog after a rotation, so an edge that slept through
//! several rotations follows them in one sync: from its pinned key, root by
//! root, to the key that signed the catalog ([`follow`]).
//!
//! Non-goals: revoking a key that leaked. Whoever holds a retired key can
//! sign a rival root of the same version; edges that already accepted a
//! higher version refuse catalogs whose chain stops lower, which is all this
//! scheme promises.

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::sign::{OriginKey, PublicKey};

const ROOT_CONTEXT: &[u8] = b"shanlu key root v1\0";

/// At most this many roots travel with a catalog (a rotation a week for over
/// a year); an origin that needs more starts over with a new pinned key.
pub const MAX_ROOTS: usize = 64;

/// The origin key from `version` on, signed by the key of `version - 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRoot {
    /// 1 for the first rotation; the pinned key is version 0.
    pub version: u64,
    /// The new Ed25519 public key.
    pub key: [u8; 32],
    /// Seconds since the Unix epoch.
    pub made_at: u64,
}

/// A [`KeyRoot`] as it travels: its postcard bytes and the previous key's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoot {
    #[serde(with = "serde_bytes")]
    pub root: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Why a chain of roots does not lead from the pinned key to a signer.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("key root {index} of the chain does not decode")]
    Malformed {
        index: usize,
        #[source]
        source: postcard::Error,
    },
    #[error("the chain of key roots holds {count} roots, over the limit of {MAX_ROOTS}")]
    TooLong { count: usize },
    #[error(
        "key root version {version} is not signed by the key it replaces ({key}); the chain does not start from this edge's pinned origin key"
    )]
    BadSignature { version: u64, key: String },
    #[error("key root version {found} follows version {previous}; the chain of roots has a gap")]
    Gap { previous: u64, found: u64 },
    #[error("key root version {version} names a key that is not a valid Ed25519 key")]
    BadKey { version: u64 },
}

impl KeyRoot {
    pub fn public(&self) -> Result<PublicKey, RootError> {
        VerifyingKey::from_bytes(&self.key)
            .map(PublicKey::from_verifying)
            .map_err(|_| RootError::BadKey {
                version: self.version,
            })
    }
}

impl OriginKey {
    /// Signs the root that hands over from this key to the next.
    pub fn sign_root(&self, root: &KeyRoot) -> SignedRoot {
        // Plain data always encodes.
        let bytes = postcard::to_stdvec(root).expect("postcard encodes plain data into a Vec");
        let signature = self.signing().sign(&[ROOT_CONTEXT, &bytes].concat());
        SignedRoot {
            root: bytes,
            signature: signature.to_bytes().to_vec(),
        }
    }
}

impl SignedRoot {
    pub fn decode_root(&self, index: usize) -> Result<KeyRoot, RootError> {
        match postcard::take_from_bytes::<KeyRoot>(&self.root) {
            Ok((root, [])) => Ok(root),
            Ok(_) => Err(RootError::Malformed {
                index,
                source: postcard::Error::DeserializeBadEncoding,
            }),
            Err(source) => Err(RootError::Malformed { index, source }),
        }
    }

    fn verified_by(&self, key: &PublicKey) -> bool {
        let Ok(signature) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        key.verifying()
            .verify_strict(
                &[ROOT_CONTEXT, &self.root].concat(),
                &Signature::from_bytes(&signature),
            )
            .is_ok()
    }
}

/// Where a chain leads from a pinned key: the key that may sign catalogs and its root version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Followed {
    pub key: PublicKey,
    pub version: u64,
}

/// Follows `chain` from `pinned`. A pinned key that a root of the chain names
/// (an edge set up after a rotation) starts there; any other starts before
/// the first root, which it must have signed. Each root must carry the next
/// version and be signed by the key before it.
pub fn follow(pinned: &PublicKey, chain: &[SignedRoot]) -> Result<Followed, RootError> {
    if chain.len() > MAX_ROOTS {
        return Err(RootError::TooLong { count: chain.len() });
    }
    let roots = chain
        .iter()
        .enumerate()
        .map(|(index, signed)| signed.decode_root(index))
        .collect::<Result<Vec<_>, _>>()?;
    let mut at = Followed {
        key: *pinned,
        version: 0,
    };
    let start = match roots.iter().rposition(|root| root.key == pinned.to_bytes()) {
        Some(index) => {
            at.version = roots[index].version;
            index + 1
        }
        None => 0,
    };
    for (signed, root) in chain.iter().zip(&roots).skip(start) {
        if root.version != at.version + 1 {
            return Err(RootError::Gap {
                previous: at.version,
                found: root.version,
            });
        }
        if !signed.verified_by(&at.key) {
            return Err(RootError::BadSignature {
                version: root.version,
                key: at.key.to_string(),
            });
        }
        at = Followed {
            key: root.public()?,
            version: root.version,
        };
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> OriginKey {
        OriginKey::from_bytes(&[n; 32])
    }

    /// Root `version` handing over from `from` to `to`.
    fn root(from: &OriginKey, to: &OriginKey, version: u64) -> SignedRoot {
        from.sign_root(&KeyRoot {
            version,
            key: to.public().to_bytes(),
            made_at: 1_790_000_000 + version,
        })
    }

    #[test]
    fn issue_13_a_chain_leads_from_the_pinned_key_to_the_newest() {
        let (k0, k1, k2) = (key(1), key(2), key(3));
        let chain = [root(&k0, &k1, 1), root(&k1, &k2, 2)];
        let followed = follow(&k0.public(), &chain).expect("follows");
        assert_eq!(followed.key, k2.public());
        assert_eq!(followed.version, 2);
        // An edge pinned to a later key starts where its key is named.
        let later = follow(&k1.public(), &chain).expect("follows from k1");
        assert_eq!((later.key, later.version), (k2.public(), 2));
        // No chain: the pinned key itself, version 0.
        let none = follow(&k0.public(), &[]).expect("no chain");
        assert_eq!((none.key, none.version), (k0.public(), 0));
    }

    #[test]
    fn issue_13_a_chain_from_another_key_is_refused() {
        let (k0, stranger, k1) = (key(1), key(9), key(2));
        let chain = [root(&stranger, &k1, 1)];
        let err = follow(&k0.public(), &chain).expect_err("not from the pinned key");
        assert!(matches!(err, RootError::BadSignature { version: 1, .. }));
        assert!(err.to_string().contains(&k0.public().to_string()), "{err}");
    }

    #[test]
    fn issue_13_a_gap_or_a_repeated_version_is_refused() {
        let (k0, k1, k2) = (key(1), key(2), key(3));
        let gap = [root(&k0, &k1, 1), root(&k1, &k2, 3)];
        assert!(matches!(
            follow(&k0.public(), &gap),
            Err(RootError::Gap {
                previous: 1,
                found: 3
            })
        ));
        let skipped = [root(&k0, &k1, 2)];
        assert!(matches!(
            follow(&k0.public(), &skipped),
            Err(RootError::Gap { .. })
        ));
    }

    #[test]
    fn issue_13_a_catalog_signature_is_not_a_root_signature() {
        let (k0, k1) = (key(1), key(2));
        let mut forged = root(&k0, &k1, 1);
        // The catalog context signs different bytes: swap in a signature over the root bytes without it.
        forged.signature = k0.signing().sign(&forged.root).to_bytes().to_vec();
        assert!(matches!(
            follow(&k0.public(), &[forged]),
            Err(RootError::BadSignature { .. })
        ));
        let mut garbage = root(&k0, &k1, 1);
        garbage.root.push(0);
        assert!(matches!(
            follow(&k0.public(), &[garbage]),
            Err(RootError::Malformed { index: 0, .. })
        ));
    }

    #[test]
    fn issue_13_a_root_naming_no_valid_key_is_refused() {
        let k0 = key(1);
        let bad = (0u8..=255)
            .map(|n| [n; 32])
            .find(|bytes| hex::encode(bytes).parse::<PublicKey>().is_err())
            .expect("some 32-byte strings are not Ed25519 keys");
        let chain = [k0.sign_root(&KeyRoot {
            version: 1,
            key: bad,
            made_at: 0,
        })];
        let err = follow(&k0.public(), &chain).expect_err("not a key");
        assert!(matches!(err, RootError::BadKey { version: 1 }), "{err}");
    }

    #[test]
    fn issue_13_an_overlong_chain_is_refused() {
        let k0 = key(1);
        let chain = vec![root(&k0, &k0, 1); MAX_ROOTS + 1];
        assert!(matches!(
            follow(&k0.public(), &chain),
            Err(RootError::TooLong { .. })
        ));
    }
}
