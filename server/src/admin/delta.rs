//! Sub-chunk deltas for remote publishing (issue 15): rsync's idea in
//! shanlu's terms.
//!
//! For a chunk the origin lacks in a file whose previous version it holds,
//! the origin sends a *base* (the old file's chunks overlapping the same
//! byte range) as a [`signature`]: per full [`BLOCK`] of the base, a rolling
//! weak checksum (4 bytes) and a truncated BLAKE3 (8 bytes). The
//! administrator's machine finds the new chunk's blocks in it ([`delta`]:
//! the weak checksum rolled byte by byte, every candidate confirmed by the
//! strong one) and sends literal runs and block references; the origin
//! rebuilds the chunk ([`apply`]) and checks its BLAKE3 against the manifest
//! before anything is written, as for a chunk sent whole.
//!
//! Everything is bounded: a base is at most [`MAX_BASE_BYTES`] in at most
//! [`MAX_BASE_CHUNKS`] chunks, a delta at most [`MAX_DELTA_OPS`] runs, and a
//! rebuild never grows past the length the manifest names.

use std::collections::HashMap;

use catalog::Hash;
use serde::{Deserialize, Serialize};

/// Bytes per signature block.
pub const BLOCK: usize = 1024;
/// Signature bytes per block: weak checksum (4) and truncated BLAKE3 (8).
pub const SIGNATURE_ENTRY: usize = 12;
/// Most bytes of one base (four of the largest default chunks).
pub const MAX_BASE_BYTES: usize = 1024 * 1024;
/// Most chunks one base is made of.
pub const MAX_BASE_CHUNKS: usize = 64;
/// Most runs in one chunk's delta: literal runs alternate with block runs,
/// each block run at least one block, in a chunk of at most 256 KiB.
pub const MAX_DELTA_OPS: usize = 2 * (256 * 1024 / BLOCK) + 2;
/// Most chunks asked about in one [`super::AdminRequest::Bases`].
pub const MAX_WANTS: usize = 1024;
/// The origin stops adding bases to one answer after this many signature
/// bytes (the rest are answered `None`: sent whole).
pub const MAX_SIGNATURE_REPLY: usize = 2 * 1024 * 1024;
/// Most chunks in one [`super::AdminRequest::PutDeltas`].
pub const MAX_DELTA_CHUNKS: usize = 64;

/// A chunk the administrator's machine would send as a delta: chunk `index`
/// of the file whose new manifest (sent in the plan) is `manifest`, at
/// `path` (in `lesson`, or a course file) of course `course`'s previous version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantBase {
    pub lesson: Option<String>,
    pub path: String,
    pub manifest: Hash,
    pub index: u32,
}

/// The base of one chunk: held chunks, in order, and the [`signature`] of
/// their bytes end to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub chunks: Vec<Hash>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// One run of a delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeltaOp {
    /// `count` blocks of the base from block `block` on.
    Copy { block: u32, count: u32 },
    /// Bytes that are not in the base.
    Literal(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Chunk `index` of the file named by `manifest`, as a delta against `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaChunk {
    pub manifest: Hash,
    pub index: u32,
    pub base: Vec<Hash>,
    pub ops: Vec<DeltaOp>,
}

/// Why a signature or delta cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error(
        "a signature of {len} bytes is not whole {SIGNATURE_ENTRY}-byte entries, or covers more than {MAX_BASE_BYTES} bytes"
    )]
    BadSignature { len: usize },
    #[error("a delta of {ops} runs; at most {MAX_DELTA_OPS}")]
    TooManyOps { ops: usize },
    #[error("a delta copies blocks {block}+{count} of a base of {blocks} whole blocks")]
    CopyOutside {
        block: u32,
        count: u32,
        blocks: usize,
    },
    #[error("a delta rebuilds {got} bytes where the chunk has {want}")]
    WrongLength { got: usize, want: usize },
}

/// rsync's rolling checksum of one block: two 16-bit sums.
#[derive(Debug, Clone, Copy)]
struct Rolling {
    a: u32,
    b: u32,
}

impl Rolling {
    fn of(block: &[u8]) -> Rolling {
        let len = block.len() as u32;
        let mut a = 0u32;
        let mut b = 0u32;
        for (i, &x) in block.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((len - i as u32).wrapping_mul(u32::from(x)));
        }
        Rolling { a, b }
    }

    /// Slides the window one byte: `out` leaves, `into` enters.
    fn roll(&mut self, out: u8, into: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(into));
        self.b = self
            .b
            .wrapping_sub((BLOCK as u32).wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }

    fn value(self) -> u32 {
        (self.a & 0xffff) | (self.b << 16)
    }
}

fn strong(block: &[u8]) -> [u8; 8] {
    let hash = blake3::hash(block);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hash.as_bytes()[..8]);
    out
}

/// The signature of a base: one entry per whole [`BLOCK`] (a short tail is
/// left out; it travels as literal bytes if it is needed).
pub fn signature(base: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(base.len() / BLOCK * SIGNATURE_ENTRY);
    for block in base.chunks_exact(BLOCK) {
        out.extend_from_slice(&Rolling::of(block).value().to_le_bytes());
        out.extend_from_slice(&strong(block));
    }
    out
}

/// The runs that rebuild `new` from a base with this `signature`.
pub fn delta(signature: &[u8], new: &[u8]) -> Result<Vec<DeltaOp>, DeltaError> {
    if !signature.len().is_multiple_of(SIGNATURE_ENTRY)
        || signature.len() / SIGNATURE_ENTRY > MAX_BASE_BYTES / BLOCK
    {
        return Err(DeltaError::BadSignature {
            len: signature.len(),
        });
    }
    let mut by_weak: HashMap<u32, Vec<(u32, [u8; 8])>> = HashMap::new();
    for (number, entry) in signature.chunks_exact(SIGNATURE_ENTRY).enumerate() {
        let mut weak = [0u8; 4];
        weak.copy_from_slice(&entry[..4]);
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&entry[4..]);
        by_weak
            .entry(u32::from_le_bytes(weak))
            .or_default()
            .push((number as u32, hash));
    }
    let mut ops: Vec<DeltaOp> = Vec::new();
    let mut literal_from = 0usize;
    let mut at = 0usize;
    // The block after the last one copied: preferred among equal candidates.
    let mut expect = None;
    let mut rolling = (new.len() >= BLOCK).then(|| Rolling::of(&new[..BLOCK]));
    while let Some(window) = rolling
        && at + BLOCK <= new.len()
    {
        let found = by_weak.get(&window.value()).and_then(|candidates| {
            let hash = strong(&new[at..at + BLOCK]);
            let matching = |&&(_, h): &&(u32, [u8; 8])| h == hash;
            candidates
                .iter()
                .filter(matching)
                .find(|(number, _)| Some(*number) == expect)
                .or_else(|| candidates.iter().find(matching))
                .map(|(number, _)| *number)
        });
        if let Some(number) = found {
            if literal_from < at {
                ops.push(DeltaOp::Literal(new[literal_from..at].to_vec()));
            }
            match ops.last_mut() {
                Some(DeltaOp::Copy { block, count }) if *block + *count == number => *count += 1,
                _ => ops.push(DeltaOp::Copy {
                    block: number,
                    count: 1,
                }),
            }
            at += BLOCK;
            literal_from = at;
            expect = Some(number + 1);
            rolling = (at + BLOCK <= new.len()).then(|| Rolling::of(&new[at..at + BLOCK]));
        } else {
            if at + BLOCK < new.len()
                && let Some(window) = &mut rolling
            {
                window.roll(new[at], new[at + BLOCK]);
            }
            at += 1;
        }
    }
    if literal_from < new.len() {
        ops.push(DeltaOp::Literal(new[literal_from..].to_vec()));
    }
    if ops.len() > MAX_DELTA_OPS {
        return Err(DeltaError::TooManyOps { ops: ops.len() });
    }
    Ok(ops)
}

/// Rebuilds a chunk of `len` bytes from `base` and a delta (its hash is the
/// caller's to check).
pub fn apply(base: &[u8], ops: &[DeltaOp], len: usize) -> Result<Vec<u8>, DeltaError> {
    if ops.len() > MAX_DELTA_OPS {
        return Err(DeltaError::TooManyOps { ops: ops.len() });
    }
    let blocks = base.len() / BLOCK;
    let mut out = Vec::with_capacity(len);
    for op in ops {
        let grows = match op {
            DeltaOp::Copy { block, count } => {
                let outside = DeltaError::CopyOutside {
                    block: *block,
                    count: *count,
                    blocks,
                };
                let end = (*block as usize)
                    .checked_add(*count as usize)
                    .filter(|&end| end <= blocks)
                    .ok_or(outside)?;
                &base[*block as usize * BLOCK..end * BLOCK]
            }
            DeltaOp::Literal(bytes) => bytes.as_slice(),
        };
        if out.len() + grows.len() > len {
            return Err(DeltaError::WrongLength {
                got: out.len() + grows.len(),
                want: len,
            });
        }
        out.extend_from_slice(grows);
    }
    if out.len() != len {
        return Err(DeltaError::WrongLength {
            got: out.len(),
            want: len,
        });
    }
    Ok(out)
}

/// What a value takes on the wire (postcard), for the publish report.
pub fn wire_len<T: Serialize>(value: &T) -> u64 {
    postcard::to_allocvec(value).map_or(0, |bytes| bytes.len() as u64)
}

#[cfg(test)]
#[path = "delta_tests.rs"]
mod tests;
