//! Finding and reading lesson files fast enough for forty tablets at once.
//!
//! - [`Places`]: which blob a lesson path names, remembered per catalog, so a
//!   range request does not decode the catalog, the course, the lesson and a
//!   large manifest each time. Rechecked against the catalog in force at most
//!   every [`RECHECK`].
//! - [`read_stream`]: a file's bytes in [`BLOCK`]-sized pieces read into
//!   recycled buffers, so serving neither copies twice nor makes the kernel
//!   zero fresh pages for every piece. A piece already in the page cache is
//!   read at once (`preadv2` with `RWF_NOWAIT`, which never waits for the
//!   disk); only a piece that must come from the disk goes to the blocking
//!   pool, so a slow SD card never stalls the other classrooms.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catalog::{Hash, Store};
use futures_util::Stream;

use crate::classroom;
use crate::lock;

/// How stale the remembered places may get after a sync changes the catalog.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Bytes read and sent at a time.
pub const BLOCK: usize = 128 * 1024;
/// Spare buffers kept for reuse.
const POOLED: usize = 256;

/// A lesson file, or a course-level file when `lesson` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlaceKey {
    pub course: String,
    pub lesson: Option<String>,
    pub path: String,
}

/// What a place holds.
#[derive(Debug, Clone)]
pub struct Placed {
    pub blob: Hash,
    pub manifest: Hash,
    pub media: String,
}

#[derive(Default)]
pub struct Places {
    inner: Mutex<PlacesInner>,
}

#[derive(Default)]
struct PlacesInner {
    sequence: Option<u64>,
    checked: Option<Instant>,
    by_place: HashMap<PlaceKey, Option<Placed>>,
    /// Media types by blob: content-addressed, so never stale.
    media: HashMap<Hash, String>,
}

impl Places {
    /// What `key` holds, if known and recently checked; `None` means look it up.
    pub fn cached(&self, key: &PlaceKey) -> Option<Option<Placed>> {
        let inner = lock(&self.inner);
        if inner.checked.is_none_or(|at| at.elapsed() > RECHECK) {
            return None;
        }
        inner.by_place.get(key).cloned()
    }

    /// Looks `key` up in the catalog in force (blocking) and remembers it.
    pub fn look_up(&self, store: &Store, key: &PlaceKey) -> Option<Placed> {
        let catalog = classroom::catalog(store)?;
        let course = classroom::course(store, &catalog, &key.course)?;
        let found = match &key.lesson {
            Some(lesson_id) => classroom::lesson(store, &course, lesson_id)?
                .files
                .into_iter()
                .find(|f| f.path == key.path),
            None => course.files.into_iter().find(|f| f.path == key.path),
        };
        let placed = match found {
            Some(file) => {
                let media = match self.media(&file.blob) {
                    Some(media) => media,
                    None => store.manifest(&file.manifest).ok()?.media_type,
                };
                self.set_media(file.blob, &media);
                Some(Placed {
                    blob: file.blob,
                    manifest: file.manifest,
                    media,
                })
            }
            None => None,
        };
        let mut inner = lock(&self.inner);
        if inner.sequence != Some(catalog.sequence) {
            inner.by_place.clear();
            inner.sequence = Some(catalog.sequence);
        }
        inner.checked = Some(Instant::now());
        inner.by_place.insert(key.clone(), placed.clone());
        placed
    }

    pub fn media(&self, blob: &Hash) -> Option<String> {
        lock(&self.inner).media.get(blob).cloned()
    }

    pub fn set_media(&self, blob: Hash, media: &str) {
        lock(&self.inner).media.insert(blob, media.to_owned());
    }
}

static POOL: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// A read piece; its buffer goes back to the pool when the bytes are sent.
struct Piece {
    buffer: Box<[u8]>,
    len: usize,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.buffer);
        let mut pool = lock(&POOL);
        if pool.len() < POOLED {
            pool.push(buffer);
        }
    }
}

fn take_buffer() -> Box<[u8]> {
    lock(&POOL)
        .pop()
        .unwrap_or_else(|| vec![0u8; BLOCK].into_boxed_slice())
}

/// Fills `buffer` from `at` if every byte is in the page cache; `None` if
/// any would have to wait for the disk (or the kernel cannot tell).
fn read_cached(file: &std::fs::File, buffer: &mut [u8], at: u64) -> Option<()> {
    let want = buffer.len();
    let mut slices = [std::io::IoSliceMut::new(buffer)];
    match rustix::io::preadv2(file, &mut slices, at, rustix::io::ReadWriteFlags::NOWAIT) {
        Ok(read) if read == want => Some(()),
        _ => None,
    }
}

/// Bytes `start..end` of `file`, a block at a time.
pub fn read_stream(
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((file, start), move |(file, at)| async move {
        if at >= end {
            return None;
        }
        let len = (end - at).min(BLOCK as u64) as usize;
        let mut buffer = take_buffer();
        let read = match read_cached(&file, &mut buffer[..len], at) {
            Some(()) => Ok(Bytes::from_owner(Piece { buffer, len })),
            None => {
                let reader = file.clone();
                tokio::task::spawn_blocking(move || {
                    reader
                        .read_exact_at(&mut buffer[..len], at)
                        .map(|()| Bytes::from_owner(Piece { buffer, len }))
                })
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("a file read stopped")))
            }
        };
        match read {
            Ok(bytes) => Some((Ok(bytes), (file, at + len as u64))),
            Err(err) => Some((Err(err), (file, end))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    #[tokio::test]
    async fn streams_exactly_the_range_across_blocks() {
        let data: Vec<u8> = (0..BLOCK * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        for (start, end) in [(0, data.len()), (5, BLOCK + 7), (BLOCK, BLOCK), (10, 11)] {
            let pieces: Vec<Bytes> = read_stream(file.clone(), start as u64, end as u64)
                .map(|piece| piece.expect("read"))
                .collect()
                .await;
            let joined: Vec<u8> = pieces.concat();
            assert_eq!(joined, data[start..end], "{start}..{end}");
            assert!(pieces.iter().all(|p| p.len() <= BLOCK));
        }
        // Past the end of the file is an error, not short data.
        let mut past = std::pin::pin!(read_stream(
            file,
            data.len() as u64 - 1,
            data.len() as u64 + 1
        ));
        assert!(past.next().await.expect("an item").is_err());
    }
}
