//! Finding and reading lesson files fast enough for forty tablets at once.
//!
//! - [`Places`]: which blob a lesson path names, remembered per catalog, so a
//!   range request does not decode the catalog, the course, the lesson and a
//!   large manifest each time. Rechecked against the catalog in force at most
//!   every [`RECHECK`]. Every map in it is a [`Bounded`] one, capped in entries
//!   and in bytes: places found ([`MAX_PLACES`], [`MAX_PLACE_BYTES`]), places
//!   not found, kept apart so a flood of missing paths cannot push out the
//!   files a class is watching ([`MAX_MISSES`], [`MAX_MISS_BYTES`]), and media
//!   types by blob ([`MAX_MEDIA`], [`MAX_MEDIA_BYTES`]) (issue 11).
//! - [`read_stream`]: a file's bytes in [`BLOCK`]-sized pieces read into
//!   recycled buffers (a [`Buffers`] pool the classroom owns), so serving
//!   neither copies twice nor makes the kernel zero fresh pages for every
//!   piece. A piece already in the page cache is
//!   read at once (`preadv2` with `RWF_NOWAIT`, which never waits for the
//!   disk); only a piece that must come from the disk goes to the blocking
//!   pool, so a slow SD card never stalls the other classrooms.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use catalog::{Hash, Store};
use futures_util::Stream;

use crate::classroom;
use crate::classroom::error::ReadError;
use crate::classroom::{lesson_html, media};
use crate::lock;

/// How stale the remembered places may get after a sync changes the catalog.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Bytes read and sent at a time.
pub const BLOCK: usize = 128 * 1024;
/// Spare buffers kept for reuse.
const POOLED: usize = 256;

/// Most places found remembered: a province catalog of 200 courses of 30
/// lessons with a dozen files each is 72,000 files, but a school watches a
/// few hundred at a time; a place not remembered is looked up again (a few
/// index reads), never served wrongly.
pub const MAX_PLACES: usize = 16 * 1024;
/// Most bytes the places found may take, keys and values counted as [`Bounded`] does.
pub const MAX_PLACE_BYTES: usize = 8 * 1024 * 1024;
/// Most places not found remembered (a broken link asked for by a whole class).
pub const MAX_MISSES: usize = 1024;
/// Most bytes the places not found may take.
pub const MAX_MISS_BYTES: usize = 1024 * 1024;
/// Most blobs whose media type is remembered.
pub const MAX_MEDIA: usize = 8 * 1024;
/// Most bytes the remembered media types may take.
pub const MAX_MEDIA_BYTES: usize = 4 * 1024 * 1024;
/// What one remembered entry costs beyond the bytes of its strings: the
/// hash-table slot, the queue slot and the string headers, rounded up.
const ENTRY_OVERHEAD: usize = 192;

/// A lesson file, or a course-level file when `lesson` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlaceKey {
    pub course: String,
    pub lesson: Option<String>,
    pub path: String,
}

impl PlaceKey {
    /// Bytes of its strings.
    fn text_len(&self) -> usize {
        self.course.len() + self.lesson.as_ref().map_or(0, String::len) + self.path.len()
    }
}

/// What a place holds.
#[derive(Debug, Clone)]
pub struct Placed {
    pub blob: Hash,
    pub manifest: Hash,
    pub media: String,
    /// For an HTML file of a lesson with subtitle files: its path and the
    /// subtitle files' paths, so its videos get their tracks (issue 17).
    pub subtitles: Option<Arc<PageSubtitles>>,
}

/// A lesson page's path and its lesson's subtitle files.
#[derive(Debug, PartialEq, Eq)]
pub struct PageSubtitles {
    pub page: String,
    pub files: Vec<String>,
}

impl PageSubtitles {
    fn len(&self) -> usize {
        self.page.len() + self.files.iter().map(String::len).sum::<usize>()
    }
}

/// A map capped at `max_entries` entries and `max_bytes` bytes (each entry
/// costs what its caller says). When full it forgets by "second chance": the
/// oldest entry goes unless it was read since it was last passed over, so
/// what is in use stays and a burst of one-off keys only cycles through.
/// An entry costing more than a sixteenth of the bytes is not kept at all, so
/// one huge key cannot empty the map.
#[derive(Debug)]
pub struct Bounded<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Every key of `map` once, oldest first.
    order: VecDeque<K>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    cost: usize,
    read: bool,
}

impl<K: std::hash::Hash + Eq + Clone, V> Bounded<K, V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Bounded<K, V> {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    pub fn get(&mut self, key: &K) -> Option<&V> {
        let slot = self.map.get_mut(key)?;
        slot.read = true;
        Some(&slot.value)
    }

    /// Remembers `value` under `key`, forgetting others to stay in bounds.
    pub fn insert(&mut self, key: K, value: V, cost: usize) {
        if let Some(slot) = self.map.get_mut(&key) {
            self.bytes = self.bytes - slot.cost + cost;
            slot.value = value;
            slot.cost = cost;
            slot.read = true;
        } else {
            if cost > self.max_bytes / 16 || self.max_entries == 0 {
                return;
            }
            self.bytes += cost;
            self.order.push_back(key.clone());
            self.map.insert(
                key,
                Slot {
                    value,
                    cost,
                    read: false,
                },
            );
        }
        self.shrink();
    }

    /// Forgets entries until within bounds; each key is passed over at most
    /// once, so this takes at most twice as many steps as there are entries.
    fn shrink(&mut self) {
        while self.map.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            match self.map.get_mut(&oldest) {
                Some(slot) if slot.read => {
                    slot.read = false;
                    self.order.push_back(oldest);
                }
                Some(_) => {
                    if let Some(slot) = self.map.remove(&oldest) {
                        self.bytes -= slot.cost;
                    }
                }
                None => {}
            }
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes the entries cost, as their callers counted them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Where lesson files are, remembered within bounds (see the module docs).
pub struct Places {
    inner: Mutex<PlacesInner>,
}

impl Default for Places {
    fn default() -> Places {
        Places {
            inner: Mutex::new(PlacesInner {
                sequence: None,
                checked: None,
                found: Bounded::new(MAX_PLACES, MAX_PLACE_BYTES),
                missing: Bounded::new(MAX_MISSES, MAX_MISS_BYTES),
                media: Bounded::new(MAX_MEDIA, MAX_MEDIA_BYTES),
            }),
        }
    }
}

struct PlacesInner {
    sequence: Option<u64>,
    checked: Option<Instant>,
    found: Bounded<PlaceKey, Placed>,
    missing: Bounded<PlaceKey, ()>,
    /// Media types by blob: content-addressed, so never stale.
    media: Bounded<Hash, String>,
}

/// What remembering `key` with `value_len` bytes of strings costs: the key
/// is held twice (map and queue).
fn place_cost(key: &PlaceKey, value_len: usize) -> usize {
    2 * key.text_len() + value_len + ENTRY_OVERHEAD
}

impl Places {
    /// What `key` holds, if known and recently checked; `None` means look it up.
    pub fn cached(&self, key: &PlaceKey) -> Option<Option<Placed>> {
        let mut inner = lock(&self.inner);
        if inner.checked.is_none_or(|at| at.elapsed() > RECHECK) {
            return None;
        }
        if let Some(placed) = inner.found.get(key) {
            return Some(Some(placed.clone()));
        }
        inner.missing.get(key).map(|()| None)
    }

    /// Looks `key` up in the catalog in force (blocking) and remembers it;
    /// `Ok(None)` if the catalog has no file there, an error if the store
    /// cannot be read (then nothing is remembered).
    pub fn look_up(&self, store: &Store, key: &PlaceKey) -> Result<Option<Placed>, ReadError> {
        let Some(catalog) = classroom::catalog(store)? else {
            return Ok(None);
        };
        let found = match classroom::course(store, &catalog, &key.course)? {
            None => None,
            Some(course) => match &key.lesson {
                Some(lesson_id) => {
                    classroom::lesson(store, &course, lesson_id)?.and_then(|lesson| {
                        let subtitles: Vec<String> = lesson
                            .files
                            .iter()
                            .filter(|f| media::is_subtitles(&f.path))
                            .map(|f| f.path.clone())
                            .collect();
                        let file = lesson.files.into_iter().find(|f| f.path == key.path)?;
                        Some((file, subtitles))
                    })
                }
                None => course
                    .files
                    .into_iter()
                    .find(|f| f.path == key.path)
                    .map(|file| (file, Vec::new())),
            },
        };
        let placed = match found {
            Some((file, subtitles)) => {
                let media = match self.media(&file.blob) {
                    Some(media) => media,
                    None => {
                        store
                            .manifest(&file.manifest)
                            .map_err(ReadError::object("manifest", file.manifest))?
                            .media_type
                    }
                };
                self.set_media(file.blob, &media);
                let subtitles =
                    (!subtitles.is_empty() && lesson_html::wants_fonts(&media)).then(|| {
                        Arc::new(PageSubtitles {
                            page: file.path.clone(),
                            files: subtitles,
                        })
                    });
                Some(Placed {
                    blob: file.blob,
                    manifest: file.manifest,
                    media,
                    subtitles,
                })
            }
            None => None,
        };
        self.remember(catalog.sequence, key, placed.clone());
        Ok(placed)
    }

    /// Remembers what `key` holds in the catalog numbered `sequence`,
    /// forgetting every place of an older catalog.
    fn remember(&self, sequence: u64, key: &PlaceKey, placed: Option<Placed>) {
        let mut inner = lock(&self.inner);
        if inner.sequence != Some(sequence) {
            inner.found.clear();
            inner.missing.clear();
            inner.sequence = Some(sequence);
        }
        inner.checked = Some(Instant::now());
        match placed {
            Some(found) => {
                let subtitles = found.subtitles.as_ref().map_or(0, |s| s.len());
                let cost = place_cost(key, found.media.len() + 2 * 32 + subtitles);
                inner.found.insert(key.clone(), found, cost);
            }
            None => {
                let cost = place_cost(key, 0);
                inner.missing.insert(key.clone(), (), cost);
            }
        }
    }

    pub fn media(&self, blob: &Hash) -> Option<String> {
        lock(&self.inner).media.get(blob).cloned()
    }

    pub fn set_media(&self, blob: Hash, media: &str) {
        let cost = 2 * 32 + media.len() + ENTRY_OVERHEAD;
        lock(&self.inner).media.insert(blob, media.to_owned(), cost);
    }

    /// How many entries and bytes each map holds: (found, missing, media).
    pub fn sizes(&self) -> [(usize, usize); 3] {
        let inner = lock(&self.inner);
        [
            (inner.found.len(), inner.found.bytes()),
            (inner.missing.len(), inner.missing.bytes()),
            (inner.media.len(), inner.media.bytes()),
        ]
    }
}

/// Spare read buffers, reused so serving does not make the kernel zero fresh
/// pages for every piece; the classroom owns one (no process-wide state).
#[derive(Default)]
pub struct Buffers {
    spare: Mutex<Vec<Box<[u8]>>>,
}

impl Buffers {
    fn take(&self) -> Box<[u8]> {
        lock(&self.spare)
            .pop()
            .unwrap_or_else(|| vec![0u8; BLOCK].into_boxed_slice())
    }

    fn give(&self, buffer: Box<[u8]>) {
        let mut spare = lock(&self.spare);
        if spare.len() < POOLED {
            spare.push(buffer);
        }
    }

    /// How many spare buffers are kept now.
    pub fn spare(&self) -> usize {
        lock(&self.spare).len()
    }
}

/// A read piece; its buffer goes back to its pool when the bytes are sent.
struct Piece {
    buffer: Box<[u8]>,
    len: usize,
    pool: Arc<Buffers>,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for Piece {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buffer));
    }
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

/// Bytes `start..end` of `file`, a block at a time, in buffers from `pool`.
pub fn read_stream(
    file: Arc<std::fs::File>,
    start: u64,
    end: u64,
    pool: Arc<Buffers>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((file, start), move |(file, at)| {
        let pool = pool.clone();
        async move {
            if at >= end {
                return None;
            }
            let len = (end - at).min(BLOCK as u64) as usize;
            let mut buffer = pool.take();
            let read = match read_cached(&file, &mut buffer[..len], at) {
                Some(()) => Ok(Bytes::from_owner(Piece { buffer, len, pool })),
                None => {
                    let reader = file.clone();
                    tokio::task::spawn_blocking(move || {
                        reader
                            .read_exact_at(&mut buffer[..len], at)
                            .map(|()| Bytes::from_owner(Piece { buffer, len, pool }))
                    })
                    .await
                    .unwrap_or_else(|_| Err(std::io::Error::other("a file read stopped")))
                }
            };
            match read {
                Ok(bytes) => Some((Ok(bytes), (file, at + len as u64))),
                Err(err) => Some((Err(err), (file, end))),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    fn key(path: &str) -> PlaceKey {
        PlaceKey {
            course: "math".into(),
            lesson: Some("01".into()),
            path: path.into(),
        }
    }

    fn placed(n: u8) -> Placed {
        Placed {
            blob: Hash::of(&[n]),
            manifest: Hash::of(&[n, n]),
            media: "video/mp4".into(),
            subtitles: None,
        }
    }

    #[test]
    fn bounded_map_stays_within_entries_and_bytes() {
        let mut map: Bounded<u32, u32> = Bounded::new(100, 10_000);
        for n in 0..10_000 {
            map.insert(n, n, 50);
            assert!(map.len() <= 100 && map.bytes() <= 10_000, "after {n}");
        }
        assert_eq!(map.len(), 100);
        assert_eq!(map.order.len(), map.len(), "one queue slot per entry");
        // Bytes bind before entries do.
        let mut map: Bounded<u32, u32> = Bounded::new(1000, 1000);
        for n in 0..1000 {
            map.insert(n, n, 60);
        }
        assert_eq!((map.len(), map.bytes()), (16, 960));
        // Replacing an entry recounts its bytes.
        map.insert(999, 0, 10);
        assert_eq!(map.bytes(), 910);
        // An entry costing over a sixteenth of the bytes is not kept.
        map.insert(5000, 5000, 63);
        assert_eq!(map.get(&5000), None);
        map.clear();
        assert!(map.is_empty() && map.bytes() == 0 && map.order.is_empty());
    }

    #[test]
    fn bounded_map_keeps_what_is_read_through_a_burst_of_new_keys() {
        let mut map: Bounded<u32, u32> = Bounded::new(10, usize::MAX);
        for n in 0..10 {
            map.insert(n, n, 1);
        }
        for n in 100..1000 {
            assert_eq!(map.get(&3), Some(&3));
            map.insert(n, n, 1);
        }
        assert_eq!(map.get(&3), Some(&3), "read between every insert");
        assert_eq!(map.get(&4), None, "never read");
        assert_eq!(map.len(), 10);
    }

    /// Issue 11: 4,000 missing 60 KB paths grew the edge by 225 MB and were
    /// never forgotten; now misses are capped in entries and bytes, and they
    /// cannot push out the places that were found.
    #[test]
    fn issue_11_missing_places_are_bounded_and_spare_the_found_ones() {
        let places = Places::default();
        places.remember(7, &key("clip.mp4"), Some(placed(1)));
        let long = "x".repeat(60 * 1024);
        for n in 0..4000 {
            places.remember(7, &key(&format!("{n}{long}")), None);
        }
        let short = |n: usize| format!("missing-{n}.png");
        for n in 0..4000 {
            places.remember(7, &key(&short(n)), None);
        }
        let [(found, found_bytes), (missing, missing_bytes), _] = places.sizes();
        assert_eq!(found, 1);
        assert!(found_bytes < 1024);
        assert_eq!(missing, MAX_MISSES);
        assert!(missing_bytes <= MAX_MISS_BYTES, "{missing_bytes}");
        let hit = places
            .cached(&key("clip.mp4"))
            .expect("known")
            .expect("found");
        assert_eq!(hit.blob, placed(1).blob);
        assert!(matches!(places.cached(&key(&short(3999))), Some(None)));
        assert!(places.cached(&key(&short(0))).is_none(), "forgotten");
        // A new catalog forgets every place.
        places.remember(8, &key("other"), None);
        assert!(places.cached(&key("clip.mp4")).is_none());
        let [(found, _), (missing, _), _] = places.sizes();
        assert_eq!((found, missing), (0, 1));
    }

    #[test]
    fn issue_11_media_types_are_bounded() {
        let places = Places::default();
        for n in 0..(MAX_MEDIA as u32 + 500) {
            places.set_media(Hash::of(&n.to_le_bytes()), "text/html");
        }
        let [_, _, (media, bytes)] = places.sizes();
        assert_eq!(media, MAX_MEDIA);
        assert!(bytes <= MAX_MEDIA_BYTES);
    }

    #[tokio::test]
    async fn streams_exactly_the_range_across_blocks() {
        let data: Vec<u8> = (0..BLOCK * 2 + 1000).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        let pool = Arc::new(Buffers::default());
        for (start, end) in [(0, data.len()), (5, BLOCK + 7), (BLOCK, BLOCK), (10, 11)] {
            let pieces: Vec<Bytes> =
                read_stream(file.clone(), start as u64, end as u64, pool.clone())
                    .map(|piece| piece.expect("read"))
                    .collect()
                    .await;
            let joined: Vec<u8> = pieces.concat();
            assert_eq!(joined, data[start..end], "{start}..{end}");
            assert!(pieces.iter().all(|p| p.len() <= BLOCK));
        }
        // The pieces are dropped: their buffers went back to this pool.
        assert!((1..=3).contains(&pool.spare()), "{}", pool.spare());
        // Past the end of the file is an error, not short data.
        let mut past = std::pin::pin!(read_stream(
            file,
            data.len() as u64 - 1,
            data.len() as u64 + 1,
            pool
        ));
        assert!(past.next().await.expect("an item").is_err());
    }
}
