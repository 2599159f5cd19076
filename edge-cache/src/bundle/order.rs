//! Whole-file BLAKE3s taken on the reading thread as a bundle's chunks pass
//! in file order (issue 14), so a finished file is not read back and hashed
//! again (`Store::finish_partials_hashed`).
//!
//! `bundle create` writes each file's chunks in file order (a chunk shared
//! with an earlier file only once, at its first place), so almost every
//! missing file sees its chunks go by as 0, 1, 2, … and its hasher is fed
//! the very checked bytes the writing thread writes. A file whose
//! chunks do not all pass in order (a shared chunk came earlier, a chunk
//! held already or in no pack, a resumed partial file) gets no hash here and
//! is hashed whole from its file when finished, as before. The writing
//! thread ignores the hash of any file fed a record it did not verify and
//! write ([`super::assemble::Files::taint`]).

use std::collections::HashMap;

use catalog::Hash;

use crate::sync::plan::FileJob;

/// Files hashed at once, at most; past this a file starting gets no hash
/// here (it is hashed from its file when finished). Each costs ~2 KiB.
const MAX_HASHING: usize = 4096;

/// The in-order hashers of the files being assembled, by file number (the
/// writing side's numbering).
pub(super) struct InOrder {
    /// Each chunk's places: (file, chunk index), indices ascending per file.
    places: HashMap<Hash, Vec<(usize, usize)>>,
    files: Vec<FileState>,
    hashing: usize,
}

struct FileState {
    chunks: usize,
    /// The next chunk index its hasher expects.
    next: usize,
    hasher: Option<Box<blake3::Hasher>>,
}

impl InOrder {
    /// For the missing files `jobs` (numbered by their place in it).
    pub(super) fn new(jobs: &[FileJob]) -> InOrder {
        let mut places: HashMap<Hash, Vec<(usize, usize)>> = HashMap::new();
        for (file, job) in jobs.iter().enumerate() {
            for (index, chunk) in job.manifest.chunks.iter().enumerate() {
                places.entry(chunk.hash).or_default().push((file, index));
            }
        }
        let files = jobs
            .iter()
            .map(|job| FileState {
                chunks: job.manifest.chunks.len(),
                next: 0,
                hasher: None,
            })
            .collect();
        InOrder {
            places,
            files,
            hashing: 0,
        }
    }

    /// Whether a missing file holds the chunk `hash`.
    pub(super) fn wants(&self, hash: &Hash) -> bool {
        self.places.contains_key(hash)
    }

    /// Feeds a chunk's checked bytes to every file whose next chunk it is;
    /// returns the files it completed, with their BLAKE3.
    pub(super) fn feed(&mut self, hash: &Hash, bytes: &[u8]) -> Vec<(usize, Hash)> {
        let mut done = Vec::new();
        let Some(places) = self.places.get(hash) else {
            return done;
        };
        for &(file, index) in places {
            let state = &mut self.files[file];
            if index != state.next {
                continue;
            }
            if index == 0 {
                if self.hashing >= MAX_HASHING {
                    // Never started: it is hashed from its file when finished.
                    state.next = usize::MAX;
                    continue;
                }
                self.hashing += 1;
                state.hasher = Some(Box::new(blake3::Hasher::new()));
            }
            let Some(hasher) = state.hasher.as_mut() else {
                continue;
            };
            hasher.update(bytes);
            state.next += 1;
            if state.next == state.chunks {
                done.push((file, Hash::from(hasher.finalize())));
                state.hasher = None;
                self.hashing -= 1;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(chunks: &[&[u8]]) -> FileJob {
        FileJob {
            label: "c/l/f".into(),
            manifest_hash: Hash::of(b"m"),
            manifest: catalog::testdata::manifest_of_chunks(chunks, "text/plain"),
            previous: None,
        }
    }

    #[test]
    fn issue_14_files_whose_chunks_pass_in_order_get_their_whole_hash() {
        // File 0: a b a (a repeated); file 1: c a (a first seen in file 0).
        let (a, b, c) = (&b"aaaa"[..], &b"bb"[..], &b"c"[..]);
        let jobs = vec![job(&[a, b, a]), job(&[c, a])];
        let mut order = InOrder::new(&jobs);
        assert!(order.feed(&Hash::of(a), a).is_empty());
        assert!(order.feed(&Hash::of(b), b).is_empty());
        // The bundle carries `a` once: file 0's third place needs it again,
        // so file 0 gets no hash here (it is hashed whole when finished).
        assert!(order.feed(&Hash::of(c), c).is_empty());
        assert!(!order.wants(&Hash::of(b"zz")));
        let mut order = InOrder::new(&jobs);
        order.feed(&Hash::of(c), c);
        let done = order.feed(&Hash::of(a), a);
        // File 1 (c a) completes in order; file 0 only took its first place.
        assert_eq!(done, vec![(1, jobs[1].manifest.blob)]);
        order.feed(&Hash::of(b), b);
        let done = order.feed(&Hash::of(a), a);
        assert_eq!(done, vec![(0, jobs[0].manifest.blob)]);
    }
}
