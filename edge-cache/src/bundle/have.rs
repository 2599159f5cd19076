//! The have list: what an edge holds, for `bundle create --for` (issue 14).
//!
//! ```text
//! "SHANLUHV" | version u8 (1) | sequence u64 LE (u64::MAX: no catalog)
//!   | object count u32 LE | object hashes, sorted
//!   | chunk count u32 LE  | chunk hashes, sorted
//! ```
//!
//! Objects: every metadata object the edge's catalog reaches that it holds.
//! Chunks: every chunk of every file it holds whole and verified in place
//! (chunks of files still partial are not named: a bundle sends them again).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use catalog::store::{StoreError, reachable};
use catalog::{Hash, Object, PublicKey, Store};

/// The magic bytes of a have list.
pub const MAGIC: &[u8; 8] = b"SHANLUHV";
const VERSION: u8 = 1;
/// The most hashes (objects and chunks together) a have list may name:
/// 16 M, a 512 MiB file, about 1 TB of lesson files at 64 KiB a chunk.
pub const MAX_HASHES: usize = 16 * 1024 * 1024;

/// What an edge holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaveList {
    pub sequence: Option<u64>,
    pub objects: BTreeSet<Hash>,
    pub chunks: BTreeSet<Hash>,
}

/// Why a have list could not be made, written or read.
#[derive(Debug, thiserror::Error)]
pub enum HaveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the catalog held in {path} does not verify against the pinned key")]
    BadCatalog {
        path: PathBuf,
        #[source]
        source: catalog::sign::CatalogError,
    },
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a have list made by `shanlu edge have` ({detail}); make it again on the edge"
    )]
    Malformed { path: PathBuf, detail: &'static str },
}

impl HaveList {
    /// What the edge whose store is `store` (pinned to `key`) holds.
    pub fn of_store(store: &Store, key: &PublicKey) -> Result<HaveList, HaveError> {
        let Some(signed) = store.signed_catalog()? else {
            return Ok(HaveList::default());
        };
        let catalog = signed.verify(key).map_err(|source| HaveError::BadCatalog {
            path: store.root().to_owned(),
            source,
        })?;
        let catalog_hash = Hash::of(&Object::Catalog(catalog.clone()).encode());
        // An edge may lack some objects (an interrupted pass): walk what it holds.
        let reached = reachable(
            &[(catalog_hash, catalog.clone())],
            |hash| store.object(hash),
            |hash| StoreError::MissingObject { hash },
        );
        let mut have = HaveList {
            sequence: Some(catalog.sequence),
            ..HaveList::default()
        };
        let Ok(reached) = reached else {
            return Ok(have);
        };
        for hash in &reached.objects {
            if *hash != catalog_hash && store.has_object(hash)? {
                have.objects.insert(*hash);
            }
        }
        for hash in &reached.objects {
            if let Some(Object::Manifest(manifest)) = store.object(hash)?
                && store.has_blob(&manifest.blob)?
            {
                have.chunks
                    .extend(manifest.chunks.iter().map(|chunk| chunk.hash));
            }
        }
        Ok(have)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(VERSION);
        out.extend_from_slice(&self.sequence.unwrap_or(u64::MAX).to_le_bytes());
        for set in [&self.objects, &self.chunks] {
            // Bounded by MAX_HASHES when read; a store this big is not an edge's.
            out.extend_from_slice(&(set.len() as u32).to_le_bytes());
            for hash in set {
                out.extend_from_slice(hash.as_bytes());
            }
        }
        out
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<HaveList, HaveError> {
        let bad = |detail| HaveError::Malformed {
            path: path.to_owned(),
            detail,
        };
        if bytes.len() < 17 || &bytes[..8] != MAGIC {
            return Err(bad("wrong magic bytes"));
        }
        if bytes[8] != VERSION {
            return Err(bad("an unknown version"));
        }
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&bytes[9..17]);
        let sequence = u64::from_le_bytes(sequence);
        let mut rest = &bytes[17..];
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        let mut total = 0usize;
        for set in &mut sets {
            if rest.len() < 4 {
                return Err(bad("truncated"));
            }
            let mut count = [0u8; 4];
            count.copy_from_slice(&rest[..4]);
            let count = u32::from_le_bytes(count) as usize;
            total += count;
            if total > MAX_HASHES {
                return Err(bad("more hashes than allowed"));
            }
            rest = &rest[4..];
            if rest.len() < count * 32 {
                return Err(bad("truncated"));
            }
            for hash in rest[..count * 32].chunks_exact(32) {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(hash);
                set.insert(Hash::from_bytes(bytes));
            }
            rest = &rest[count * 32..];
        }
        if !rest.is_empty() {
            return Err(bad("bytes after its end"));
        }
        let [objects, chunks] = sets;
        Ok(HaveList {
            sequence: (sequence != u64::MAX).then_some(sequence),
            objects,
            chunks,
        })
    }

    /// Reads a have list file (bounded by [`MAX_HASHES`]).
    pub fn read(path: &Path) -> Result<HaveList, HaveError> {
        let io = |action| {
            move |source| HaveError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let len = std::fs::metadata(path).map_err(io("reading"))?.len();
        if len > 17 + 8 + 32 * MAX_HASHES as u64 {
            return Err(HaveError::Malformed {
                path: path.to_owned(),
                detail: "too large",
            });
        }
        let bytes = std::fs::read(path).map_err(io("reading"))?;
        HaveList::decode(path, &bytes)
    }

    /// Writes the have list to `path` (a temporary name, synced, renamed).
    pub fn write(&self, path: &Path) -> Result<(), HaveError> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| HaveError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = std::fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        file.write_all(&self.encode())
            .map_err(io("writing", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("renaming", &tmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_have_list_round_trips_and_refuses_damage() {
        let have = HaveList {
            sequence: Some(7),
            objects: [Hash::of(b"a"), Hash::of(b"b")].into(),
            chunks: [Hash::of(b"c")].into(),
        };
        let bytes = have.encode();
        assert_eq!(bytes.len(), 17 + 4 + 64 + 4 + 32);
        let path = Path::new("have.bin");
        assert_eq!(HaveList::decode(path, &bytes).expect("decodes"), have);
        let none = HaveList::default();
        assert_eq!(
            HaveList::decode(path, &none.encode()).expect("decodes"),
            none
        );
        for cut in [0, 8, 17, 20, bytes.len() - 1] {
            assert!(HaveList::decode(path, &bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = bytes[..17].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = HaveList::decode(path, &huge).expect_err("refused");
        assert!(
            err.to_string().contains("more hashes than allowed"),
            "{err}"
        );
    }
}
