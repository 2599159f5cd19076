//! Pack files (`pack-0001.slp`, …): the records a bundle carries.
//!
//! ```text
//! pack   = magic "SHANLUPK" | version u8 (1) | record*
//! record = kind u8 | hash [32] | length u32 LE | bytes[length]
//! ```
//!
//! Kinds: 1 the signed catalog (its bytes as the store holds them, key
//! roots included; the hash is the BLAKE3 of those bytes), 2 a metadata
//! object (encoded; the hash names it), 3 a chunk (raw bytes; the hash names
//! it). The reader checks every length against [`MAX_RECORD`] and what is
//! left of the pack before it allocates, so a damaged or hostile pack costs
//! at most one record's worth of memory. It does not check hashes: the
//! importer does, before anything is kept.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use catalog::Hash;

/// The first bytes of every pack.
pub const MAGIC: &[u8; 8] = b"SHANLUPK";
/// The pack format this code writes and reads.
pub const PACK_VERSION: u8 = 1;
/// Bytes of a pack's header (magic and version).
pub const HEADER_LEN: u64 = 9;
/// Bytes of a record's head (kind, hash, length).
pub const RECORD_HEAD: u64 = 1 + 32 + 4;
/// The largest pack create writes and import reads: 256 MiB, under FAT32's
/// 4 GiB file limit with room to spare.
pub const MAX_PACK_BYTES: u64 = 256 * 1024 * 1024;
/// The largest record: no chunk (256 KiB) or metadata object comes near.
pub const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Catalog = 1,
    Object = 2,
    Chunk = 3,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Catalog),
            2 => Some(Kind::Object),
            3 => Some(Kind::Chunk),
            _ => None,
        }
    }
}

/// One record read from a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub hash: Hash,
    pub bytes: Vec<u8>,
}

/// Why a pack could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a shanlu pack (wrong magic bytes or version {version})")]
    NotAPack { path: PathBuf, version: u8 },
    #[error("{path}: record at byte {offset} has an unknown kind {kind}")]
    UnknownKind {
        path: PathBuf,
        offset: u64,
        kind: u8,
    },
    #[error(
        "{path}: record at byte {offset} claims {length} bytes, more than the {limit} left in the pack or allowed for a record"
    )]
    TooLong {
        path: PathBuf,
        offset: u64,
        length: u32,
        limit: u64,
    },
    #[error("{path} ends in the middle of the record at byte {offset} (truncated)")]
    Truncated { path: PathBuf, offset: u64 },
}

/// Writes one pack to `NAME.tmp`, then (in [`PackWriter::finish`]) syncs it
/// and renames it to its name.
pub struct PackWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: io::BufWriter<std::fs::File>,
    hasher: blake3::Hasher,
    len: u64,
    /// The most bytes this pack may hold (at most [`MAX_PACK_BYTES`]).
    limit: u64,
    pub catalogs: u64,
    pub objects: u64,
    pub chunks: u64,
}

impl PackWriter {
    /// A pack of at most `limit` bytes (capped at [`MAX_PACK_BYTES`]; a
    /// record bigger than the limit still gets a pack of its own).
    pub fn create(path: &Path, limit: u64) -> Result<PackWriter, PackError> {
        let tmp = path.with_extension("slp.tmp");
        let file = std::fs::File::create(&tmp).map_err(|source| PackError::Io {
            action: "creating",
            path: tmp.clone(),
            source,
        })?;
        let mut writer = PackWriter {
            path: path.to_owned(),
            tmp,
            out: io::BufWriter::with_capacity(1024 * 1024, file),
            hasher: blake3::Hasher::new(),
            len: 0,
            limit: limit.min(MAX_PACK_BYTES),
            catalogs: 0,
            objects: 0,
            chunks: 0,
        };
        let mut header = MAGIC.to_vec();
        header.push(PACK_VERSION);
        writer.put(&header)?;
        Ok(writer)
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether a record of `bytes` bytes still fits under [`MAX_PACK_BYTES`].
    pub fn fits(&self, bytes: usize) -> bool {
        self.len + RECORD_HEAD + bytes as u64 <= self.limit
    }

    /// Whether the pack holds no record yet.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    pub fn record(&mut self, kind: Kind, hash: &Hash, bytes: &[u8]) -> Result<(), PackError> {
        let length = u32::try_from(bytes.len())
            .ok()
            .filter(|length| *length <= MAX_RECORD)
            .ok_or_else(|| PackError::TooLong {
                path: self.path.clone(),
                offset: self.len,
                length: u32::MAX,
                limit: u64::from(MAX_RECORD),
            })?;
        let mut head = [0u8; RECORD_HEAD as usize];
        head[0] = kind as u8;
        head[1..33].copy_from_slice(hash.as_bytes());
        head[33..].copy_from_slice(&length.to_le_bytes());
        self.put(&head)?;
        self.put(bytes)?;
        match kind {
            Kind::Catalog => self.catalogs += 1,
            Kind::Object => self.objects += 1,
            Kind::Chunk => self.chunks += 1,
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), PackError> {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes).map_err(|source| PackError::Io {
            action: "writing",
            path: self.tmp.clone(),
            source,
        })
    }

    /// Syncs the pack and renames it into place: its BLAKE3 and size.
    pub fn finish(self) -> Result<(Hash, u64), PackError> {
        let io_err = |action, path: &Path| {
            let path = path.to_owned();
            move |source| PackError::Io {
                action,
                path,
                source,
            }
        };
        let file = self
            .out
            .into_inner()
            .map_err(|err| err.into_error())
            .map_err(io_err("writing", &self.tmp))?;
        file.sync_all().map_err(io_err("syncing", &self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_err("renaming", &self.tmp))?;
        Ok((Hash::from(self.hasher.finalize()), self.len))
    }
}

/// Reads the records of one pack in order. It does not hash the pack: every
/// byte of it is a checked header, a record head or a record's bytes, which
/// the importer hashes (see `import`).
pub struct PackReader<R> {
    path: PathBuf,
    input: R,
    offset: u64,
    len: u64,
    /// The next record's head, read with the record before it (one read
    /// call a record, no buffer to copy through).
    next_head: Option<[u8; RECORD_HEAD as usize]>,
}

impl PackReader<std::fs::File> {
    pub fn open(path: &Path) -> Result<Self, PackError> {
        let file = std::fs::File::open(path).map_err(|source| PackError::Io {
            action: "opening",
            path: path.to_owned(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| PackError::Io {
                action: "reading the size of",
                path: path.to_owned(),
                source,
            })?
            .len();
        // Unbuffered: each record (and the next head) is read straight
        // into the record's own buffer.
        PackReader::new(path, file, len)
    }
}

impl<R: Read> PackReader<R> {
    /// A reader over `len` bytes of `input`; checks the header.
    pub fn new(path: &Path, input: R, len: u64) -> Result<Self, PackError> {
        let mut input = input;
        let mut header = [0u8; HEADER_LEN as usize];
        let path = path.to_owned();
        if len < HEADER_LEN || input.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
            return Err(PackError::NotAPack { path, version: 0 });
        }
        if header[8] != PACK_VERSION {
            return Err(PackError::NotAPack {
                path,
                version: header[8],
            });
        }
        Ok(PackReader {
            path,
            input,
            offset: HEADER_LEN,
            len,
            next_head: None,
        })
    }

    /// The next record, `None` at the end of the pack.
    pub fn next_record(&mut self) -> Result<Option<Record>, PackError> {
        self.next_record_in(Vec::new())
    }

    /// [`PackReader::next_record`], its bytes read into `spare` (a buffer
    /// used before, emptied first; grown if too small).
    pub fn next_record_in(&mut self, spare: Vec<u8>) -> Result<Option<Record>, PackError> {
        if self.offset == self.len {
            return Ok(None);
        }
        let start = self.offset;
        let truncated = |path: &Path| PackError::Truncated {
            path: path.to_owned(),
            offset: start,
        };
        if self.len - self.offset < RECORD_HEAD {
            return Err(truncated(&self.path));
        }
        let head = match self.next_head.take() {
            Some(head) => head,
            None => {
                let mut head = [0u8; RECORD_HEAD as usize];
                self.input
                    .read_exact(&mut head)
                    .map_err(|_| truncated(&self.path))?;
                head
            }
        };
        let kind = Kind::from_byte(head[0]).ok_or_else(|| PackError::UnknownKind {
            path: self.path.clone(),
            offset: start,
            kind: head[0],
        })?;
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&head[1..33]);
        let mut length = [0u8; 4];
        length.copy_from_slice(&head[33..]);
        let length = u32::from_le_bytes(length);
        let left = self.len - self.offset - RECORD_HEAD;
        if length > MAX_RECORD || u64::from(length) > left {
            return Err(PackError::TooLong {
                path: self.path.clone(),
                offset: start,
                length,
                limit: left.min(u64::from(MAX_RECORD)),
            });
        }
        // The next head too, when the pack has room for one after this record.
        let ahead = if left - u64::from(length) >= RECORD_HEAD {
            RECORD_HEAD as usize
        } else {
            0
        };
        let want = length as usize + ahead;
        // Not zeroed first: read straight into the spare capacity.
        let mut bytes = spare;
        bytes.clear();
        bytes.reserve_exact(want);
        let read = (&mut self.input)
            .take(want as u64)
            .read_to_end(&mut bytes)
            .map_err(|_| truncated(&self.path))?;
        if read != want {
            return Err(truncated(&self.path));
        }
        if ahead > 0 {
            let mut next = [0u8; RECORD_HEAD as usize];
            next.copy_from_slice(&bytes[length as usize..]);
            bytes.truncate(length as usize);
            self.next_head = Some(next);
        }
        self.offset += RECORD_HEAD + u64::from(length);
        Ok(Some(Record {
            kind,
            hash: Hash::from_bytes(hash),
            bytes,
        }))
    }
}

impl<R> PackReader<R> {
    /// Bytes of the pack read so far (header and whole records).
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// The pack's size as it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the pack is only a header.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack_bytes(records: &[(Kind, Hash, Vec<u8>)]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pack-0001.slp");
        let mut writer = PackWriter::create(&path, MAX_PACK_BYTES).expect("create");
        for (kind, hash, bytes) in records {
            writer.record(*kind, hash, bytes).expect("record");
        }
        let (hash, len) = writer.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(len, bytes.len() as u64);
        assert_eq!(hash, Hash::of(&bytes));
        assert!(!path.with_extension("slp.tmp").exists());
        bytes
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, PackError> {
        let mut reader = PackReader::new(Path::new("p.slp"), bytes, bytes.len() as u64)?;
        let mut out = Vec::new();
        // Bounded: every record consumes at least RECORD_HEAD bytes.
        for _ in 0..=bytes.len() {
            match reader.next_record()? {
                Some(record) => out.push(record),
                None => return Ok(out),
            }
        }
        panic!("the reader did not end");
    }

    #[test]
    fn issue_14_pack_records_round_trip() {
        let chunk = vec![7u8; 1000];
        let records = vec![
            (Kind::Catalog, Hash::of(b"cat"), b"cat".to_vec()),
            (Kind::Object, Hash::of(b"obj"), b"obj".to_vec()),
            (Kind::Chunk, Hash::of(&chunk), chunk.clone()),
            (Kind::Chunk, Hash::of(b""), Vec::new()),
        ];
        let bytes = pack_bytes(&records);
        assert_eq!(&bytes[..8], MAGIC);
        let read = read_all(&bytes).expect("reads");
        assert_eq!(read.len(), 4);
        for (record, (kind, hash, data)) in read.iter().zip(&records) {
            assert_eq!(
                (record.kind, record.hash, &record.bytes),
                (*kind, *hash, data)
            );
        }
    }

    #[test]
    fn issue_14_a_record_length_past_the_pack_is_refused_before_allocating() {
        let mut bytes = pack_bytes(&[(Kind::Chunk, Hash::of(b"abcd"), b"abcd".to_vec())]);
        // Claim 5 bytes where 4 are left.
        bytes[HEADER_LEN as usize + 33..HEADER_LEN as usize + 37]
            .copy_from_slice(&5u32.to_le_bytes());
        let err = read_all(&bytes).expect_err("refused");
        assert!(
            matches!(
                err,
                PackError::TooLong {
                    length: 5,
                    limit: 4,
                    ..
                }
            ),
            "{err}"
        );
        // A huge length: refused by the limit, not by an allocation failure.
        bytes[HEADER_LEN as usize + 33..HEADER_LEN as usize + 37]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_all(&bytes).expect_err("refused");
        assert!(
            matches!(
                err,
                PackError::TooLong {
                    length: u32::MAX,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("p.slp"), "{err}");
    }

    #[test]
    fn issue_14_an_unknown_kind_is_refused() {
        let mut bytes = pack_bytes(&[(Kind::Object, Hash::of(b"x"), b"x".to_vec())]);
        bytes[HEADER_LEN as usize] = 9;
        let err = read_all(&bytes).expect_err("refused");
        assert!(
            matches!(
                err,
                PackError::UnknownKind {
                    kind: 9,
                    offset: 9,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn issue_14_a_truncated_pack_is_refused_at_the_cut_record() {
        let bytes = pack_bytes(&[
            (Kind::Chunk, Hash::of(b"first"), b"first".to_vec()),
            (Kind::Chunk, Hash::of(b"second"), b"second".to_vec()),
        ]);
        let second = HEADER_LEN + RECORD_HEAD + 5;
        for cut in [bytes.len() - 1, second as usize + 10, second as usize + 1] {
            let err = read_all(&bytes[..cut]).expect_err("refused");
            // A cut inside the head is `Truncated`; inside the bytes, the
            // length is past what is left.
            assert!(
                matches!(err, PackError::Truncated { offset, .. } | PackError::TooLong { offset, .. } if offset == second),
                "cut {cut}: {err}"
            );
        }
        let err = read_all(&bytes[..4]).expect_err("no header");
        assert!(matches!(err, PackError::NotAPack { .. }), "{err}");
        let mut wrong = bytes.clone();
        wrong[8] = 2;
        assert!(matches!(
            read_all(&wrong),
            Err(PackError::NotAPack { version: 2, .. })
        ));
    }
}
