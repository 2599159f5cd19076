//! Content-defined chunking with FastCDC (the 2020 variant of the `fastcdc` crate).
//!
//! Cut points depend only on the bytes, so an edit moves only the chunks around
//! it. The profile (min/avg/max) is recorded in every manifest so it can change
//! later without confusing old content. The `fastcdc` version is pinned exactly:
//! a different cut-point algorithm would make every published chunk new again,
//! and the golden cut points in the tests below fail loudly if it changes.

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;
use serde::{Deserialize, Serialize};

/// Chunk size limits in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkingProfile {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkingProfile {
    /// 16 / 64 / 256 KiB: the default for lesson media and pages.
    pub const DEFAULT: ChunkingProfile = ChunkingProfile {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };

    /// Whether FastCDC accepts these limits.
    pub fn is_valid(&self) -> bool {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MINIMUM_MIN};
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        min >= MINIMUM_MIN
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && max <= MAXIMUM_MAX
            && min <= avg
            && avg <= max
    }
}

impl Default for ChunkingProfile {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Cuts an in-memory buffer; yields `(offset, length)` of each chunk.
pub fn cut_points(profile: ChunkingProfile, data: &[u8]) -> Vec<(u64, u32)> {
    FastCDC::new(
        data,
        profile.min as usize,
        profile.avg as usize,
        profile.max as usize,
    )
    .map(|chunk| (chunk.offset as u64, chunk.length as u32))
    .collect()
}

/// Whole chunks cut from a stretch of the input, as one owned buffer, so the
/// chunking and the hashing of a file can run on different threads.
#[derive(Debug, Default)]
pub struct Block {
    /// Offset in the input of `data[0]`.
    pub offset: u64,
    /// A reusable buffer; its first `len` bytes are whole chunks, back to back.
    buffer: Vec<u8>,
    len: usize,
    /// Length of each chunk, in order.
    pub lengths: Vec<u32>,
}

impl Block {
    /// The bytes of the block's chunks, back to back.
    pub fn data(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    /// `(offset within data, bytes)` of each chunk.
    pub fn chunks(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.lengths.iter().scan(0usize, |start, &len| {
            let at = *start;
            *start += len as usize;
            Some((at, &self.buffer[at..at + len as usize]))
        })
    }
}

/// A streaming chunker over any reader: memory stays bounded whatever the
/// size of the input, and buffers are recycled.
///
/// Produces exactly the cut points [`cut_points`] would give for the whole input.
pub struct Chunker<R> {
    profile: ChunkingProfile,
    source: R,
    /// Bytes read but not yet cut (less than `max` unless at the end).
    tail: Vec<u8>,
    /// Offset in the input of `tail[0]`.
    offset: u64,
    block_size: usize,
    eof: bool,
    /// The block handed in for the call that found the end, for reuse.
    unused: Option<Block>,
}

/// Block size in maximum-size chunks: large reads, few hand-offs.
const BLOCK_CHUNKS: usize = 16;

impl<R: Read> Chunker<R> {
    pub fn new(profile: ChunkingProfile, source: R) -> Self {
        Chunker {
            profile,
            source,
            tail: Vec::new(),
            offset: 0,
            block_size: profile.max as usize * BLOCK_CHUNKS,
            eof: false,
            unused: None,
        }
    }

    /// The next block of whole chunks, reusing `spare`'s allocation if given;
    /// `None` at the end of the input.
    pub fn next_block(&mut self, spare: Option<Block>) -> io::Result<Option<Block>> {
        let mut block = spare.unwrap_or_default();
        block.lengths.clear();
        block.offset = self.offset;
        // The buffer keeps its length between uses, so it is zeroed only once.
        if block.buffer.len() < self.block_size.max(self.tail.len()) {
            block.buffer.resize(self.block_size.max(self.tail.len()), 0);
        }
        block.buffer[..self.tail.len()].copy_from_slice(&self.tail);
        let mut filled = self.tail.len();
        while filled < block.buffer.len() && !self.eof {
            match self.source.read(&mut block.buffer[filled..]) {
                Ok(0) => self.eof = true,
                Ok(read) => filled += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        if filled == 0 {
            self.unused = Some(block);
            return Ok(None);
        }
        let max = self.profile.max as usize;
        let window = &block.buffer[..filled];
        let cdc = FastCDC::new(
            window,
            self.profile.min as usize,
            self.profile.avg as usize,
            max,
        );
        // A cut is final only if FastCDC saw `max` bytes after the chunk start, or the end.
        let mut position = 0;
        while window.len() - position >= max || (self.eof && position < window.len()) {
            let (_, cut) = cdc.cut(position, window.len() - position);
            block.lengths.push((cut - position) as u32);
            position = cut;
        }
        self.tail.clear();
        self.tail.extend_from_slice(&window[position..]);
        block.len = position;
        self.offset += position as u64;
        Ok(Some(block))
    }
}

impl<R> Chunker<R> {
    /// The block passed to the call of [`Chunker::next_block`] that found
    /// the end, to pass to another chunker.
    pub fn take_spare(&mut self) -> Option<Block> {
        self.unused.take()
    }
}

#[cfg(test)]
impl<R: Read> Chunker<R> {
    /// Calls `each(offset, bytes)` for every chunk in input order; returns the total length.
    pub fn for_each_chunk(
        mut self,
        mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut spare = None;
        while let Some(block) = self.next_block(spare.take())? {
            for (start, bytes) in block.chunks() {
                each(block.offset + start as u64, bytes)?;
            }
            spare = Some(block);
        }
        Ok(self.offset)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) use crate::testdata::generated;

    fn stream_cuts(profile: ChunkingProfile, data: &[u8]) -> Vec<(u64, u32)> {
        let mut cuts = Vec::new();
        let total = Chunker::new(profile, data)
            .for_each_chunk(|offset, bytes| {
                cuts.push((offset, bytes.len() as u32));
                Ok(())
            })
            .expect("reading from memory cannot fail");
        assert_eq!(total, data.len() as u64);
        cuts
    }

    #[test]
    fn golden_cut_points_for_generated_input() {
        // If this fails, the chunker changed and every published chunk would be new:
        // pin the old `fastcdc` version instead of updating these numbers.
        let data = generated(1_000_000, 0x5EED);
        let lengths: Vec<u32> = cut_points(ChunkingProfile::DEFAULT, &data)
            .iter()
            .map(|c| c.1)
            .collect();
        assert_eq!(lengths, GOLDEN_LENGTHS);
    }

    const GOLDEN_LENGTHS: &[u32] = &[
        70860, 32337, 69488, 147106, 80103, 19470, 35570, 67267, 41465, 26848, 68082, 83047,
        140936, 117421,
    ];

    #[test]
    fn boundary_sizes_chunk_as_expected() {
        let p = ChunkingProfile::DEFAULT;
        let (min, avg, max) = (p.min as usize, p.avg as usize, p.max as usize);
        // (input length, expected number of chunks or None for "several")
        let table: &[(usize, Option<usize>)] = &[
            (0, Some(0)),
            (1, Some(1)),
            (min - 1, Some(1)),
            (min, Some(1)),
            (avg, None),
            (max, None),
            (max + 1, None),
            (20 * max + 12_345, None),
        ];
        for &(len, expected) in table {
            let data = generated(len, len as u64);
            let cuts = cut_points(p, &data);
            if let Some(count) = expected {
                assert_eq!(cuts.len(), count, "length {len}");
            } else {
                assert!(!cuts.is_empty(), "length {len}");
            }
            let total: u64 = cuts.iter().map(|c| u64::from(c.1)).sum();
            assert_eq!(total, len as u64, "length {len}");
            for (i, &(_, chunk_len)) in cuts.iter().enumerate() {
                assert!(chunk_len as usize <= max, "length {len}: chunk over max");
                if i + 1 < cuts.len() {
                    assert!(
                        chunk_len as usize >= min,
                        "length {len}: inner chunk under min"
                    );
                }
            }
            if len == max + 1 {
                assert!(cuts.len() >= 2, "max+1 must be cut at least once");
            }
            assert_eq!(
                stream_cuts(p, &data),
                cuts,
                "streaming differs at length {len}"
            );
        }
    }

    #[test]
    fn an_edit_moves_only_nearby_chunks() {
        let mut data = generated(4_000_000, 9);
        let before = cut_points(ChunkingProfile::DEFAULT, &data);
        data[2_000_000..2_000_010].copy_from_slice(b"0123456789");
        let after = cut_points(ChunkingProfile::DEFAULT, &data);
        let changed = after.iter().filter(|cut| !before.contains(cut)).count();
        assert!(changed <= 2, "{changed} chunks changed for a 10-byte edit");
    }

    /// A reader that returns at most `step` bytes per call, like a slow pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn streaming_matches_whole_buffer(len in 0usize..3_000_000, seed: u64, step in 1usize..200_000) {
            let profile = ChunkingProfile { min: 4096, avg: 16384, max: 65536 };
            let data = generated(len, seed);
            let whole = cut_points(profile, &data);
            let mut streamed = Vec::new();
            Chunker::new(profile, Trickle { data: &data, step })
                .for_each_chunk(|offset, bytes| {
                    streamed.push((offset, bytes.len() as u32));
                    Ok(())
                })
                .expect("memory reader");
            prop_assert_eq!(streamed, whole);
        }
    }
}
