//! The redb tables. Values are fixed little-endian layouts, not serde, so the
//! index stays readable across serde changes.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::import::SourceStamp;
use super::integrity::FileIdentity;
use super::quarantine::{QuarantineReason, QuarantineRecord};
use super::{BlobInfo, ChunkLocation, StoreError};
use crate::hash::Hash;
use crate::sign::SignedCatalog;

/// chunk hash → blob (32) ‖ offset (u64 LE) ‖ length (u32 LE): one place the chunk can be read.
pub(crate) const CHUNKS: TableDefinition<&[u8; 32], &[u8; 44]> = TableDefinition::new("chunks");
/// blob hash → size (u64 LE) ‖ manifest hash (32): complete, verified blobs.
pub(crate) const BLOBS: TableDefinition<&[u8; 32], &[u8; 40]> = TableDefinition::new("blobs");
/// blob hash → manifest hash (32) ‖ bitmap of chunks present and durable.
pub(crate) const PARTIALS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("partials");
/// object hash → encoded object.
pub(crate) const OBJECTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("objects");
/// source file path → dev, inode, size, mtime, ctime (u64/i64 LE) ‖ blob hash: what
/// the last publish found there, so an unchanged file need not be read again.
pub(crate) const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("sources");
/// blob hash → the identity of its file when it was last verified: dev, inode,
/// size (u64 LE), mtime, ctime (seconds and nanoseconds, i64 LE).
pub(crate) const IDENTITIES: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("blob_identities");
/// blob hash → size (u64 LE) ‖ manifest hash (32) ‖ when (unix seconds, u64 LE)
/// ‖ reason (u8): blobs found bad or gone, no longer held, to be fetched again.
pub(crate) const QUARANTINE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("quarantine");
/// catalog sequence → encoded signed catalog: every catalog an origin
/// published, kept until `shanlu origin gc` lets it go (issue 13).
pub(crate) const CATALOGS: TableDefinition<u64, &[u8]> = TableDefinition::new("catalogs");
/// blob hash → what kind of file (see `collect::Doomed`): files a collection
/// took out of the index and still has to delete (issue 13).
pub(crate) const DOOMED: TableDefinition<&[u8; 32], u8> = TableDefinition::new("doomed");
/// blob hash → when it was last opened (served by the classroom) or, never
/// opened, added: unix seconds. The edge evicts least-recently-opened
/// cached blobs first (issue 13, see `opened`).
pub(crate) const OPENED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("blob_opened");
/// name → value: `catalog` holds the signed catalog in force.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

pub(crate) const META_CATALOG: &str = "catalog";

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(CHUNKS).map_err(StoreError::index)?;
    txn.open_table(BLOBS).map_err(StoreError::index)?;
    txn.open_table(PARTIALS).map_err(StoreError::index)?;
    txn.open_table(OBJECTS).map_err(StoreError::index)?;
    txn.open_table(META).map_err(StoreError::index)?;
    txn.open_table(SOURCES).map_err(StoreError::index)?;
    txn.open_table(IDENTITIES).map_err(StoreError::index)?;
    txn.open_table(QUARANTINE).map_err(StoreError::index)?;
    txn.open_table(CATALOGS).map_err(StoreError::index)?;
    txn.open_table(DOOMED).map_err(StoreError::index)?;
    txn.open_table(OPENED).map_err(StoreError::index)?;
    Ok(())
}

pub(crate) fn encode_chunk(location: &ChunkLocation) -> [u8; 44] {
    let mut out = [0u8; 44];
    out[..32].copy_from_slice(location.blob.as_bytes());
    out[32..40].copy_from_slice(&location.offset.to_le_bytes());
    out[40..].copy_from_slice(&location.len.to_le_bytes());
    out
}

pub(crate) fn decode_chunk(bytes: &[u8; 44]) -> ChunkLocation {
    let mut blob = [0u8; 32];
    blob.copy_from_slice(&bytes[..32]);
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&bytes[32..40]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[40..]);
    ChunkLocation {
        blob: Hash::from_bytes(blob),
        offset: u64::from_le_bytes(offset),
        len: u32::from_le_bytes(len),
    }
}

pub(crate) fn encode_blob(info: &BlobInfo) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&info.size.to_le_bytes());
    out[8..].copy_from_slice(info.manifest.as_bytes());
    out
}

pub(crate) fn decode_blob(bytes: &[u8; 40]) -> BlobInfo {
    let mut size = [0u8; 8];
    size.copy_from_slice(&bytes[..8]);
    let mut manifest = [0u8; 32];
    manifest.copy_from_slice(&bytes[8..]);
    BlobInfo {
        size: u64::from_le_bytes(size),
        manifest: Hash::from_bytes(manifest),
    }
}

pub(crate) fn encode_source(stamp: &SourceStamp, blob: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(88);
    for value in [stamp.dev, stamp.ino, stamp.size] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    for value in [stamp.mtime.0, stamp.mtime.1, stamp.ctime.0, stamp.ctime.1] {
        out.extend_from_slice(&value.to_le_bytes());
    }
    out.extend_from_slice(blob.as_bytes());
    out
}

/// A damaged record decodes to a stamp that matches no file.
pub(crate) fn decode_source(bytes: &[u8]) -> (SourceStamp, Hash) {
    let word = |i: usize| -> [u8; 8] {
        bytes
            .get(i * 8..i * 8 + 8)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0xff; 8])
    };
    let stamp = SourceStamp {
        dev: u64::from_le_bytes(word(0)),
        ino: u64::from_le_bytes(word(1)),
        size: u64::from_le_bytes(word(2)),
        mtime: (i64::from_le_bytes(word(3)), i64::from_le_bytes(word(4))),
        ctime: (i64::from_le_bytes(word(5)), i64::from_le_bytes(word(6))),
    };
    let blob = bytes
        .get(56..88)
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .unwrap_or([0; 32]);
    (stamp, Hash::from_bytes(blob))
}

pub(crate) fn encode_identity(identity: &FileIdentity) -> [u8; 56] {
    let mut out = [0u8; 56];
    let words = [
        identity.dev.to_le_bytes(),
        identity.ino.to_le_bytes(),
        identity.size.to_le_bytes(),
        identity.mtime.0.to_le_bytes(),
        identity.mtime.1.to_le_bytes(),
        identity.ctime.0.to_le_bytes(),
        identity.ctime.1.to_le_bytes(),
    ];
    for (i, word) in words.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(word);
    }
    out
}

/// A damaged record decodes to an identity that matches no file.
pub(crate) fn decode_identity(bytes: &[u8]) -> FileIdentity {
    let word = |i: usize| -> [u8; 8] {
        bytes
            .get(i * 8..i * 8 + 8)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0xff; 8])
    };
    FileIdentity {
        dev: u64::from_le_bytes(word(0)),
        ino: u64::from_le_bytes(word(1)),
        size: u64::from_le_bytes(word(2)),
        mtime: (i64::from_le_bytes(word(3)), i64::from_le_bytes(word(4))),
        ctime: (i64::from_le_bytes(word(5)), i64::from_le_bytes(word(6))),
    }
}

pub(crate) fn encode_quarantine(record: &QuarantineRecord) -> [u8; 49] {
    let mut out = [0u8; 49];
    out[..40].copy_from_slice(&encode_blob(&record.info));
    out[40..48].copy_from_slice(&record.at.to_le_bytes());
    out[48] = record.reason.code();
    out
}

pub(crate) fn decode_quarantine(bytes: &[u8]) -> QuarantineRecord {
    let mut blob = [0u8; 40];
    if let Some(head) = bytes.get(..40) {
        blob.copy_from_slice(head);
    }
    let at = bytes
        .get(40..48)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_le_bytes);
    QuarantineRecord {
        info: decode_blob(&blob),
        at,
        reason: QuarantineReason::from_code(bytes.get(48).copied().unwrap_or(0)),
    }
}

/// Records a complete blob, the identity of its file, and every chunk in it
/// not already indexed. Returns whether the blob was in quarantine (it is not
/// any more).
pub(crate) fn put_blob(
    txn: &WriteTransaction,
    blob: &Hash,
    info: &BlobInfo,
    identity: Option<&FileIdentity>,
    chunks: &[(Hash, u64, u32)],
) -> Result<bool, StoreError> {
    let mut blobs = txn.open_table(BLOBS).map_err(StoreError::index)?;
    blobs
        .insert(blob.as_bytes(), &encode_blob(info))
        .map_err(StoreError::index)?;
    let mut identities = txn.open_table(IDENTITIES).map_err(StoreError::index)?;
    match identity {
        Some(identity) => identities
            .insert(blob.as_bytes(), encode_identity(identity).as_slice())
            .map(|_| ()),
        None => identities.remove(blob.as_bytes()).map(|_| ()),
    }
    .map_err(StoreError::index)?;
    let mut quarantine = txn.open_table(QUARANTINE).map_err(StoreError::index)?;
    let was_quarantined = quarantine
        .remove(blob.as_bytes())
        .map_err(StoreError::index)?
        .is_some();
    let mut table = txn.open_table(CHUNKS).map_err(StoreError::index)?;
    for (chunk, offset, len) in chunks {
        if table
            .get(chunk.as_bytes())
            .map_err(StoreError::index)?
            .is_none()
        {
            let location = ChunkLocation {
                blob: *blob,
                offset: *offset,
                len: *len,
            };
            table
                .insert(chunk.as_bytes(), &encode_chunk(&location))
                .map_err(StoreError::index)?;
        }
    }
    Ok(was_quarantined)
}

/// For each chunk in `orphans`, a place in one of the `candidates` (held
/// blobs), read from the manifest each blob's record names; chunks found
/// leave `orphans`. Quarantines and collections use it: there is no reverse
/// index from chunks to every blob holding them.
pub(crate) fn locate_chunks(
    blobs: &redb::ReadOnlyTable<&'static [u8; 32], &'static [u8; 40]>,
    objects: &redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    candidates: impl IntoIterator<Item = Hash>,
    orphans: &mut std::collections::HashSet<Hash>,
) -> Result<std::collections::HashMap<Hash, ChunkLocation>, StoreError> {
    let mut found = std::collections::HashMap::new();
    for blob in candidates {
        if orphans.is_empty() {
            break;
        }
        let Some(info) = blobs.get(blob.as_bytes()).map_err(StoreError::index)? else {
            continue;
        };
        let manifest = decode_blob(info.value()).manifest;
        let Some(bytes) = objects
            .get(manifest.as_bytes())
            .map_err(StoreError::index)?
        else {
            continue;
        };
        let Ok(crate::object::Object::Manifest(manifest)) =
            crate::object::Object::decode(bytes.value())
        else {
            continue;
        };
        for (offset, chunk) in manifest.chunk_offsets() {
            if orphans.remove(&chunk.hash) {
                let location = ChunkLocation {
                    blob,
                    offset,
                    len: chunk.len,
                };
                found.insert(chunk.hash, location);
            }
        }
    }
    Ok(found)
}

/// Stores the catalog object and makes the signed catalog the one in force;
/// with `history`, also records it under its sequence in [`CATALOGS`].
pub(crate) fn put_catalog(
    txn: &WriteTransaction,
    signed: &SignedCatalog,
    history: bool,
) -> Result<(), StoreError> {
    if history {
        let sequence = crate::object::Object::decode(&signed.catalog)
            .and_then(crate::object::Object::into_catalog)
            .map_err(|cause| StoreError::BadObject {
                hash: signed.catalog_hash(),
                cause,
            })?
            .sequence;
        let mut catalogs = txn.open_table(CATALOGS).map_err(StoreError::index)?;
        // A store from before the history: its catalog in force starts it.
        if catalogs.is_empty().map_err(StoreError::index)? {
            let meta = txn.open_table(META).map_err(StoreError::index)?;
            if let Some(bytes) = meta.get(META_CATALOG).map_err(StoreError::index)?
                && let Ok(held) = SignedCatalog::decode(bytes.value())
                && let Ok(catalog) = crate::object::Object::decode(&held.catalog)
                    .and_then(crate::object::Object::into_catalog)
                && catalog.sequence < sequence
            {
                catalogs
                    .insert(catalog.sequence, bytes.value())
                    .map_err(StoreError::index)?;
            }
        }
        catalogs
            .insert(sequence, signed.encode().as_slice())
            .map_err(StoreError::index)?;
    }
    let mut objects = txn.open_table(OBJECTS).map_err(StoreError::index)?;
    objects
        .insert(signed.catalog_hash().as_bytes(), signed.catalog.as_slice())
        .map_err(StoreError::index)?;
    let mut meta = txn.open_table(META).map_err(StoreError::index)?;
    meta.insert(META_CATALOG, signed.encode().as_slice())
        .map_err(StoreError::index)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_value_layouts_roundtrip() {
        let location = ChunkLocation {
            blob: Hash::of(b"b"),
            offset: 1 << 40,
            len: 65_536,
        };
        assert_eq!(decode_chunk(&encode_chunk(&location)), location);
        let info = BlobInfo {
            size: 123_456_789_012,
            manifest: Hash::of(b"m"),
        };
        assert_eq!(decode_blob(&encode_blob(&info)), info);
        let identity = FileIdentity {
            dev: 2049,
            ino: 1 << 33,
            size: 5_000_000,
            mtime: (1_700_000_000, 123_456_789),
            ctime: (-1, 999_999_999),
        };
        assert_eq!(decode_identity(&encode_identity(&identity)), identity);
        let record = QuarantineRecord {
            info,
            at: 1_780_000_000,
            reason: QuarantineReason::Damaged,
        };
        assert_eq!(decode_quarantine(&encode_quarantine(&record)), record);
    }
}
