//! The have list: what an edge holds, for `bundle create --for` (issue 14).
//!
//! ```text
//! "SHANLUHV" | version u8 (1) | sequence u64 LE (u64::MAX: no catalog)
//!   | object count u32 LE | object hashes, sorted
//!   | chunk count u32 LE  | chunk hashes, sorted
//! ```
//!
//! Version 2 (issue 15) appends the edge's reports, for the origin to take
//! from the stick (version 1 is still read, with none):
//!
//! ```text
//!   | name length u16 LE | the edge's name at its upstream, UTF-8 (empty: unknown)
//!   | report count u32 LE | each: length u32 LE | sealed envelope
//! ```
//!
//! Version 3 (issue 17) appends the teachers' proposals, sealed with the
//! edge's key, and the chunks they carry (version 2 is still read, with none):
//!
//! ```text
//!   | meta length u32 LE (0: no proposals) | seal [32] | postcard of the proposals
//!   | chunk bytes of the carried proposals, in their order, to the file's end
//! ```
//!
//! The chunks are not read into memory: [`HaveList::read`] notes where they
//! start ([`Payload`]) and `bundle create --for` streams them from the file.
//!
//! Objects: every metadata object the edge's catalog reaches that it holds.
//! Chunks: every chunk of every file it holds whole and verified in place
//! (chunks of files still partial are not named: a bundle sends them again).
//! Reports: every envelope in the edge's report queue, oldest first.
//! Proposals: see [`super::proposals`].

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use catalog::store::{StoreError, reachable};
use catalog::{Hash, Object, PublicKey, Store};

use super::proposals::{MAX_META, StickProposal};

/// The magic bytes of a have list.
pub const MAGIC: &[u8; 8] = b"SHANLUHV";
const VERSION: u8 = 3;
/// Most reports a have list carries: the edge's queue at its fullest.
pub const MAX_REPORTS: usize = crate::report::book::MAX_OWN + crate::report::book::MAX_FORWARDED;
/// The most hashes (objects and chunks together) a have list may name:
/// 16 M, a 512 MiB file, about 1 TB of lesson files at 64 KiB a chunk.
pub const MAX_HASHES: usize = 16 * 1024 * 1024;

/// What an edge holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaveList {
    pub sequence: Option<u64>,
    pub objects: BTreeSet<Hash>,
    pub chunks: BTreeSet<Hash>,
    /// The edge's name at its upstream, from the welcome (issue 15).
    pub edge: Option<String>,
    /// The sealed envelopes of its report queue, oldest first.
    pub reports: Vec<Vec<u8>>,
    /// The teachers' proposals (issue 17) and their seal.
    pub proposals: Vec<StickProposal>,
    pub seal: [u8; 32],
    /// Where the carried proposals' chunk bytes are, once read from a file.
    pub payload: Option<Payload>,
}

/// The chunk bytes of a have list's carried proposals: `len` bytes from
/// `offset` of the file `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
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
    #[error("the teachers' proposals: {0}")]
    Proposals(String),
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

    /// Adds the report queue of the edge in `data` (issue 15). Blocking.
    pub fn add_reports(&mut self, data: &Path) -> Result<(), crate::report::BookError> {
        let open = crate::report::Book::new(data).open()?;
        self.edge = open.ledger.name.clone();
        self.reports = (open.queued()?.into_iter())
            .take(MAX_REPORTS)
            .map(|queued| queued.bytes)
            .collect();
        Ok(())
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
        let name = self.edge.as_deref().unwrap_or("").as_bytes();
        let name = if name.len() > usize::from(u16::MAX) {
            &[][..]
        } else {
            name
        };
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name);
        let reports = &self.reports[..self.reports.len().min(MAX_REPORTS)];
        out.extend_from_slice(&(reports.len() as u32).to_le_bytes());
        for report in reports {
            out.extend_from_slice(&(report.len() as u32).to_le_bytes());
            out.extend_from_slice(report);
        }
        if self.proposals.is_empty() {
            out.extend_from_slice(&0u32.to_le_bytes());
        } else {
            let meta = postcard::to_stdvec(&self.proposals).expect("postcard encodes plain data");
            out.extend_from_slice(&((meta.len() + 32) as u32).to_le_bytes());
            out.extend_from_slice(&self.seal);
            out.extend_from_slice(&meta);
        }
        out
    }

    /// Decodes a have list held in memory (its payload, if any, is taken
    /// to be in the file `path`).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<HaveList, HaveError> {
        HaveList::decode_from(path, bytes, bytes.len() as u64)
    }

    /// Decodes a have list of `len` bytes from `input`, reading all but the
    /// carried chunks, whose place it notes.
    fn decode_from(path: &Path, input: impl Read, len: u64) -> Result<HaveList, HaveError> {
        let bad = |detail| HaveError::Malformed {
            path: path.to_owned(),
            detail,
        };
        let mut input = Input {
            inner: std::io::BufReader::new(input),
            left: len,
        };
        let head = input.take(17).ok_or_else(|| bad("wrong magic bytes"))?;
        if &head[..8] != MAGIC {
            return Err(bad("wrong magic bytes"));
        }
        let version = head[8];
        if !(1..=VERSION).contains(&version) {
            return Err(bad("an unknown version"));
        }
        let sequence = u64::from_le_bytes(head[9..17].try_into().expect("8 bytes"));
        let mut sets = [BTreeSet::new(), BTreeSet::new()];
        let mut total = 0usize;
        for set in &mut sets {
            let count = input.u32().ok_or_else(|| bad("truncated"))? as usize;
            total += count;
            if total > MAX_HASHES {
                return Err(bad("more hashes than allowed"));
            }
            if input.left < count as u64 * 32 {
                return Err(bad("truncated"));
            }
            for _ in 0..count {
                let mut bytes = [0u8; 32];
                input.read(&mut bytes).ok_or_else(|| bad("truncated"))?;
                set.insert(Hash::from_bytes(bytes));
            }
        }
        let (edge, reports) = if version >= 2 {
            read_reports(&mut input).ok_or_else(|| bad("its reports are truncated or too many"))?
        } else {
            (None, Vec::new())
        };
        let mut have = HaveList {
            sequence: (sequence != u64::MAX).then_some(sequence),
            edge,
            reports,
            ..HaveList::default()
        };
        [have.objects, have.chunks] = sets;
        if version >= 3 {
            let meta = input.u32().ok_or_else(|| bad("truncated"))? as usize;
            if meta > MAX_META {
                return Err(bad("its proposals are larger than allowed"));
            }
            if meta > 0 {
                let meta = (input.take(meta))
                    .filter(|meta| meta.len() >= 32)
                    .ok_or_else(|| bad("its proposals are truncated"))?;
                have.seal.copy_from_slice(&meta[..32]);
                have.proposals = postcard::from_bytes(&meta[32..])
                    .map_err(|_| bad("its proposals do not decode"))?;
            }
        }
        let carried = super::proposals::payload_len(&have.proposals)
            .ok_or_else(|| bad("its proposals name chunks their files do not have"))?;
        if input.left != carried {
            return Err(bad(if input.left < carried {
                "truncated"
            } else {
                "bytes after its end"
            }));
        }
        if carried > 0 {
            have.payload = Some(Payload {
                path: path.to_owned(),
                offset: len - carried,
                len: carried,
            });
        }
        Ok(have)
    }

    /// Reads a have list file: all but the carried chunks, bounded by
    /// [`MAX_HASHES`], [`MAX_REPORTS`] and the proposals' limits.
    pub fn read(path: &Path) -> Result<HaveList, HaveError> {
        let io = |action| {
            move |source| HaveError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let file = std::fs::File::open(path).map_err(io("opening"))?;
        let len = file.metadata().map_err(io("reading"))?.len();
        HaveList::decode_from(path, file, len)
    }

    /// Writes the have list to `path` (a temporary name, synced, renamed),
    /// with the chunks its proposals carry read from `store`; `progress`
    /// counts their bytes.
    pub fn write(
        &self,
        path: &Path,
        store: &Store,
        progress: &indicatif::ProgressBar,
    ) -> Result<(), HaveError> {
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
        let written = (|| {
            file.write_all(&self.encode())
                .map_err(io("writing", &tmp))?;
            let mut out = std::io::BufWriter::new(&mut file);
            progress.set_length(super::proposals::payload_len(&self.proposals).unwrap_or(0));
            super::proposals::write_payload(&self.proposals, store, &mut out, progress)?;
            out.flush().map_err(io("writing", &tmp))?;
            drop(out);
            file.sync_all().map_err(io("syncing", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io("renaming", &tmp))
        })();
        if written.is_err() {
            // A full stick keeps nothing half written.
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// A have list being read: at most `left` more bytes.
struct Input<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Input<R> {
    /// Fills `buf`, if that many bytes are left.
    fn read(&mut self, buf: &mut [u8]) -> Option<()> {
        if (buf.len() as u64) > self.left {
            return None;
        }
        self.inner.read_exact(buf).ok()?;
        self.left -= buf.len() as u64;
        Some(())
    }

    /// The next `n` bytes (never allocated past what the file holds).
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if n as u64 > self.left {
            return None;
        }
        let mut bytes = vec![0; n];
        self.read(&mut bytes)?;
        Some(bytes)
    }

    fn u16(&mut self) -> Option<u16> {
        let mut bytes = [0; 2];
        self.read(&mut bytes)?;
        Some(u16::from_le_bytes(bytes))
    }

    fn u32(&mut self) -> Option<u32> {
        let mut bytes = [0; 4];
        self.read(&mut bytes)?;
        Some(u32::from_le_bytes(bytes))
    }
}

/// The version 2 tail: the edge's name and its sealed reports, bounded.
fn read_reports(input: &mut Input<impl Read>) -> Option<(Option<String>, Vec<Vec<u8>>)> {
    let len = input.u16()?;
    let name = String::from_utf8(input.take(usize::from(len))?).ok()?;
    let count = input.u32()? as usize;
    if count > MAX_REPORTS {
        return None;
    }
    let mut reports = Vec::with_capacity(count);
    for _ in 0..count {
        let len = input.u32()? as usize;
        if len > server::report::MAX_ENVELOPE {
            return None;
        }
        reports.push(input.take(len)?);
    }
    Some(((!name.is_empty()).then_some(name), reports))
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
            ..HaveList::default()
        };
        let bytes = have.encode();
        assert_eq!(bytes.len(), 17 + 4 + 64 + 4 + 32 + 2 + 4 + 4);
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

    /// Issue 15: version 2 carries the edge's name and its queued reports;
    /// a version 1 list (from an older edge) is still read, with none.
    #[test]
    fn issue_15_have_list_v2_carries_reports_and_v1_still_reads() {
        let have = HaveList {
            sequence: Some(3),
            objects: [Hash::of(b"a")].into(),
            chunks: BTreeSet::new(),
            edge: Some("school-7".into()),
            reports: vec![vec![1, 2, 3], vec![4; 100]],
            ..HaveList::default()
        };
        let path = Path::new("have.bin");
        let mut bytes = have.encode();
        assert_eq!(bytes[8], 3);
        assert_eq!(HaveList::decode(path, &bytes).expect("decodes"), have);
        // Version 2: the same, without the proposals' length.
        bytes.truncate(bytes.len() - 4);
        bytes[8] = 2;
        assert_eq!(HaveList::decode(path, &bytes).expect("v2 decodes"), have);
        for cut in [bytes.len() - 1, bytes.len() - 100, bytes.len() - 105] {
            assert!(HaveList::decode(path, &bytes[..cut]).is_err(), "cut {cut}");
        }
        // Version 1: the same hashes, no tail.
        let mut v1 = bytes[..17 + 4 + 32 + 4].to_vec();
        v1[8] = 1;
        let read = HaveList::decode(path, &v1).expect("v1 decodes");
        assert_eq!(read.objects, have.objects);
        assert_eq!((read.edge, read.reports.len()), (None, 0));
        // Too many reports, or one too large, is refused.
        let mut many = bytes[..17 + 4 + 32 + 4].to_vec();
        many.extend_from_slice(&0u16.to_le_bytes());
        many.extend_from_slice(&(MAX_REPORTS as u32 + 1).to_le_bytes());
        assert!(HaveList::decode(path, &many).is_err());
    }
}
