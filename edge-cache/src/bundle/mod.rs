//! USB bundles (issue 14): the catalog, metadata objects and chunks on a
//! stick, for schools whose link is down for weeks.
//!
//! # Format (version 1)
//!
//! ```text
//! STICK/shanlu-bundle/
//!   index.json        written last: {"format": 1, "origin_key": hex, "sequence": n,
//!                     "catalog": hex of the signed catalog, "packs": [{"name",
//!                     "size", "blake3", "catalogs", "objects", "chunks"}, …]}
//!   pack-0001.slp     records (see [`pack`]), at most 256 MiB each
//!   pack-0002.slp     …
//! ```
//!
//! Pack names are 8.3-safe on FAT32, exFAT and Windows. Packs are written to
//! `NAME.slp.tmp`, synced and renamed; the index last, the same way. A folder
//! without `index.json` is an interrupted create: import refuses it, and a
//! new create empties the folder first. The first pack holds the signed
//! catalog and the metadata objects; chunks start in a pack of their own,
//! so import reads each pack once. The signed catalog is also in the index
//! so import can refuse a bundle (another origin, an older catalog) before
//! it reads a pack, and a resumed import has it without pack 1.
//!
//! # Have list
//!
//! `edge have` writes what an edge holds so `bundle create --for` can leave it
//! out ([`have`]): magic `SHANLUHV`, version 1, the catalog sequence (u64 LE,
//! `u64::MAX` for none), the object count and hashes, the chunk count and
//! hashes, each list sorted (32 bytes a hash). At most [`have::MAX_HASHES`].
//! Version 2 adds the edge's queued reports ([`receipts`] brings back their
//! receipts), version 3 its teachers' proposals and their chunks
//! ([`proposals`] brings back the answers, `proposals.json`).
//!
//! # Goals and non-goals
//!
//! Import verifies exactly as a sync pass does (`sync::accept`, every object
//! and chunk hashed before it is kept) and resumes by pack: the index's
//! BLAKE3 of a pack is only its name, recorded once every record in it was
//! checked and used. A pack is never trusted for content, and not hashed
//! whole on import (`create` still writes its BLAKE3).
//! The quota (issue 13) is kept as a sync pass keeps it: the same plan
//! evicts cached files to make room and leaves out what does not fit.
//! Non-goals: compression (lesson media is already compressed), encryption.

mod assemble;
pub mod create;
pub mod have;
pub mod import;
mod order;
pub mod pack;
pub mod proposals;
mod read;
pub mod receipts;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The bundle format this code writes and reads.
pub const FORMAT: u32 = 1;
/// The folder a bundle lives in, under the stick's root.
pub const FOLDER: &str = "shanlu-bundle";
/// The index's name inside [`FOLDER`].
pub const INDEX: &str = "index.json";
/// The largest index import reads.
pub const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;
/// The most packs a bundle may list (a 2.5 TB stick).
pub const MAX_PACKS: usize = 10_000;

/// `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleIndex {
    pub format: u32,
    /// The origin key (hex) the catalog verifies against.
    pub origin_key: String,
    /// The catalog's sequence.
    pub sequence: u64,
    /// The signed catalog, hex of its bytes as the store holds them.
    pub catalog: String,
    pub packs: Vec<PackEntry>,
}

/// One pack as the index lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackEntry {
    pub name: String,
    pub size: u64,
    /// BLAKE3 of the whole pack file, hex.
    pub blake3: String,
    pub catalogs: u64,
    pub objects: u64,
    pub chunks: u64,
}

/// The bundle folder for a stick (or the bundle folder itself when given).
pub fn bundle_dir(stick: &Path) -> PathBuf {
    if stick.file_name().is_some_and(|name| name == FOLDER) || stick.join(INDEX).is_file() {
        stick.to_owned()
    } else {
        stick.join(FOLDER)
    }
}

/// The name of the pack numbered `n` (from 1): `pack-0001.slp`.
pub fn pack_name(n: usize) -> String {
    format!("pack-{n:04}.slp")
}

/// Whether `name` is one this code writes: `pack-` four or more digits `.slp`.
/// Import reads no other file, so an index cannot point outside the folder.
pub fn is_pack_name(name: &str) -> bool {
    name.strip_prefix("pack-")
        .and_then(|rest| rest.strip_suffix(".slp"))
        .is_some_and(|digits| {
            (4..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_pack_names_are_safe_and_checked() {
        assert_eq!(pack_name(1), "pack-0001.slp");
        assert!(is_pack_name(&pack_name(1)));
        assert!(is_pack_name(&pack_name(12345)));
        for bad in [
            "../x.slp",
            "pack-1.slp",
            "pack-0001.slp/..",
            "pack-000a.slp",
            "index.json",
        ] {
            assert!(!is_pack_name(bad), "{bad}");
        }
    }
}
