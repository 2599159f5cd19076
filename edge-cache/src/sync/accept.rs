//! Step 1 of a pass: whether the catalog the origin offers may be put in
//! force (issue 13 moved it here from `sync::mod`).
//!
//! A catalog is accepted when it decodes, its signature verifies against the
//! key reached from the pinned origin key through the chain of key roots it
//! carries (`catalog::roots`), that chain reaches at least the highest root
//! version this edge accepted before (a key retired by a rotation cannot
//! sign again), and its sequence is not lower than the held one (a
//! rollback). An expired catalog is accepted: school clocks are often wrong,
//! and rollback protection is the sequence. It is only warned about
//! ([`expiry_warning`]).

use catalog::{Catalog, PublicKey, SignedCatalog, Store};

use super::SyncError;

/// The highest key root version this edge has accepted, in the store's meta table.
pub const KEY_ROOT_VERSION: &str = "edge.key_root_version";

/// A catalog that passed every check, not yet in force.
pub(crate) struct Accepted {
    pub catalog: Catalog,
    pub signed: SignedCatalog,
    /// The key root version that signed it (0: the pinned key).
    pub root_version: u64,
}

/// The catalog held locally, verified from the pinned key.
pub(crate) fn held(store: &Store, key: &PublicKey) -> Result<Option<Catalog>, SyncError> {
    match store.signed_catalog()? {
        Some(signed) => Ok(Some(signed.verify(key).map_err(SyncError::held_catalog)?)),
        None => Ok(None),
    }
}

/// Checks the catalog bytes the origin offered against the pinned `key`,
/// the root version accepted so far and the `held` sequence.
pub(crate) fn offered(
    store: &Store,
    key: &PublicKey,
    bytes: &[u8],
    held: Option<u64>,
) -> Result<Accepted, SyncError> {
    let signed = SignedCatalog::decode(bytes).map_err(SyncError::offered_catalog)?;
    let (catalog, followed) = signed
        .verify_followed(key)
        .map_err(SyncError::offered_catalog)?;
    check(
        &catalog,
        followed.version,
        accepted_root_version(store)?,
        held,
    )?;
    Ok(Accepted {
        catalog,
        signed,
        root_version: followed.version,
    })
}

/// The checks after the signature: the key's root version, then the sequence.
fn check(
    catalog: &Catalog,
    root_version: u64,
    accepted: u64,
    held: Option<u64>,
) -> Result<(), SyncError> {
    if root_version < accepted {
        return Err(SyncError::RetiredKey {
            version: root_version,
            accepted,
        });
    }
    if let Some(held) = held
        && catalog.sequence < held
    {
        return Err(SyncError::Rollback {
            offered: catalog.sequence,
            held,
        });
    }
    Ok(())
}

/// The highest key root version accepted so far (0 before any rotation).
pub fn accepted_root_version(store: &Store) -> Result<u64, SyncError> {
    Ok(store
        .meta(KEY_ROOT_VERSION)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map_or(0, u64::from_le_bytes))
}

/// Makes an accepted catalog the one in force and records its key root
/// version, once its metadata is held.
pub(crate) fn put_in_force(store: &Store, accepted: &Accepted) -> Result<(), SyncError> {
    store.set_signed_catalog(&accepted.signed)?;
    if accepted.root_version > accepted_root_version(store)? {
        store.set_meta(KEY_ROOT_VERSION, &accepted.root_version.to_le_bytes())?;
    }
    Ok(())
}

/// The warning for a catalog in force that has expired at `now`, if it has.
pub fn expiry_warning(catalog: &Catalog, now: u64) -> Option<String> {
    catalog.is_expired(now).then(|| {
        format!(
            "the catalog expired on {}; the edge may be cut off from updates, check the link to the origin",
            catalog::format::time(catalog.expires_at)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::OriginKey;
    use catalog::roots::KeyRoot;
    use catalog::sign::CatalogError;

    fn key(n: u8) -> OriginKey {
        OriginKey::from_bytes(&[n; 32])
    }

    fn catalog(sequence: u64) -> Catalog {
        let mut catalog = Catalog::empty(1_790_000_000);
        catalog.sequence = sequence;
        catalog.expires_at = 1_790_000_000 + 100;
        catalog
    }

    fn root(from: &OriginKey, to: &OriginKey, version: u64) -> catalog::roots::SignedRoot {
        from.sign_root(&KeyRoot {
            version,
            key: to.public().to_bytes(),
            made_at: 1_790_000_000,
        })
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("store")).expect("store");
        (dir, store)
    }

    /// Issue 13: an edge pinned to the first key follows a rotation, records
    /// it, and then refuses a catalog the retired key signed (even a higher sequence).
    #[test]
    fn issue_13_a_rotation_is_followed_then_the_retired_key_is_refused() {
        let (_dir, store) = store();
        let (k0, k1) = (key(1), key(2));
        let rotated = k1.sign_with_roots(&catalog(5), vec![root(&k0, &k1, 1)]);
        let accepted = offered(&store, &k0.public(), &rotated.encode(), Some(4)).expect("follows");
        assert_eq!(accepted.root_version, 1);
        put_in_force(&store, &accepted).expect("in force");
        assert_eq!(accepted_root_version(&store).expect("meta"), 1);

        let by_retired = k0.sign(&catalog(9));
        let err = offered(&store, &k0.public(), &by_retired.encode(), Some(5))
            .err()
            .expect("retired key");
        assert!(
            matches!(
                err,
                SyncError::RetiredKey {
                    version: 0,
                    accepted: 1
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("retired"), "{err}");
    }

    /// Issue 13: a catalog signed by a key the chain does not reach is refused.
    #[test]
    fn issue_13_an_unrelated_key_is_refused() {
        let (_dir, store) = store();
        let (k0, stranger) = (key(1), key(9));
        let err = offered(
            &store,
            &k0.public(),
            &stranger.sign(&catalog(5)).encode(),
            None,
        )
        .err()
        .expect("unrelated key");
        assert!(
            matches!(
                err,
                SyncError::BadCatalog {
                    source: CatalogError::BadSignature { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        // A stranger's root in front of its catalog does not help.
        let chained = stranger.sign_with_roots(&catalog(5), vec![root(&stranger, &stranger, 1)]);
        let err = offered(&store, &k0.public(), &chained.encode(), None)
            .err()
            .expect("chain not from the pinned key");
        assert!(
            matches!(
                err,
                SyncError::BadCatalog {
                    source: CatalogError::Roots(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    /// Issue 13: a lower sequence is a rollback, and the message says how an
    /// administrator of a restored origin gets past it.
    #[test]
    fn issue_13_a_rollback_names_the_min_sequence_fix() {
        let (_dir, store) = store();
        let k0 = key(1);
        let err = offered(
            &store,
            &k0.public(),
            &k0.sign(&catalog(3)).encode(),
            Some(5),
        )
        .err()
        .expect("rollback");
        assert!(matches!(
            err,
            SyncError::Rollback {
                offered: 3,
                held: 5
            }
        ));
        assert!(
            err.to_string()
                .contains("run `shanlu origin renew --min-sequence 6` on it"),
            "{err}"
        );
        // The same sequence, or a higher one, is accepted.
        assert!(
            offered(
                &store,
                &k0.public(),
                &k0.sign(&catalog(5)).encode(),
                Some(5)
            )
            .is_ok()
        );
    }

    /// Issue 13: an expired catalog is accepted, and warned about.
    #[test]
    fn issue_13_an_expired_catalog_is_accepted_with_a_warning() {
        let (_dir, store) = store();
        let k0 = key(1);
        let old = catalog(2);
        let accepted =
            offered(&store, &k0.public(), &k0.sign(&old).encode(), Some(1)).expect("accepted");
        let warning = expiry_warning(&accepted.catalog, old.expires_at + 1).expect("expired");
        assert_eq!(
            warning,
            "the catalog expired on 2026-09-21 14:15 UTC; the edge may be cut off from updates, check the link to the origin"
        );
        assert!(expiry_warning(&accepted.catalog, old.expires_at - 1).is_none());
        assert!(
            expiry_warning(&Catalog::empty(0), u64::MAX).is_none(),
            "no expiry"
        );
    }
}
