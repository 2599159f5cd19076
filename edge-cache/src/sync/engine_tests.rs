//! The download engine without sockets (issue 12): an in-memory source that
//! counts requests and can return wrong bytes.

use super::*;
use crate::lock;
use catalog::{ChunkRef, ChunkingProfile};
use futures_util::future::BoxFuture;
use std::sync::Mutex;

/// Chunks in memory; counts what is asked; can lie; can hold requests.
struct MemorySource {
    name: &'static str,
    chunks: HashMap<Hash, Vec<u8>>,
    /// Chunks answered with wrong bytes.
    bad: HashSet<Hash>,
    asked: Mutex<Vec<Vec<Hash>>>,
    /// Requests wait for a permit when set.
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Every request fails so (a peer that cannot be reached or refuses):
    /// `Some(true)` transient, `Some(false)` permanent.
    fails: Option<bool>,
    /// Chunks it can fetch from its own upstream when asked to relay.
    behind: HashMap<Hash, Vec<u8>>,
    /// Whether each request allowed relaying.
    relayed: Mutex<Vec<bool>>,
}

impl MemorySource {
    fn new(name: &'static str, files: &[&[u8]], size: usize) -> MemorySource {
        let chunks = files
            .iter()
            .flat_map(|data| data.chunks(size))
            .map(|c| (Hash::of(c), c.to_vec()))
            .collect();
        MemorySource {
            name,
            chunks,
            bad: HashSet::new(),
            asked: Mutex::new(Vec::new()),
            gate: None,
            fails: None,
            behind: HashMap::new(),
            relayed: Mutex::new(Vec::new()),
        }
    }

    fn asked_for(&self, hash: &Hash) -> usize {
        lock(&self.asked)
            .iter()
            .flatten()
            .filter(|h| *h == hash)
            .count()
    }

    fn total_asked(&self) -> usize {
        lock(&self.asked).iter().map(Vec::len).sum()
    }
}

impl ChunkSource for MemorySource {
    fn name(&self) -> String {
        self.name.to_owned()
    }

    fn fetch(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
    ) -> BoxFuture<'_, Result<(), SourceError>> {
        self.fetch_relayed(wants, sink, false)
    }

    fn fetch_relayed(
        &self,
        wants: Vec<FileWants>,
        sink: mpsc::Sender<Delivery>,
        relay: bool,
    ) -> BoxFuture<'_, Result<(), SourceError>> {
        lock(&self.relayed).push(relay);
        let wants = FileWants::flatten(wants);
        Box::pin(async move {
            lock(&self.asked).push(wants.iter().map(|w| w.hash).collect());
            if let Some(gate) = &self.gate {
                gate.acquire().await.expect("gate").forget();
            }
            match self.fails {
                Some(true) => {
                    return Err(SourceError::Transient {
                        source_name: self.name.to_owned(),
                        cause: "connecting failed: no answer within 2 s".into(),
                    });
                }
                Some(false) => {
                    return Err(SourceError::Permanent {
                        source_name: self.name.to_owned(),
                        cause: "the token was refused".into(),
                    });
                }
                None => {}
            }
            for want in wants {
                let held = self.chunks.get(&want.hash);
                let relayed = relay.then(|| self.behind.get(&want.hash)).flatten();
                let delivery = match held.or(relayed) {
                    Some(bytes) => {
                        let mut bytes = bytes.clone();
                        if self.bad.contains(&want.hash) {
                            bytes[0] ^= 0xff;
                        }
                        Delivery::Chunk {
                            hash: want.hash,
                            encoding: server::codec::Encoding::Raw,
                            bytes,
                        }
                    }
                    None => Delivery::Missing { hash: want.hash },
                };
                if sink.send(delivery).await.is_err() {
                    break;
                }
            }
            Ok(())
        })
    }
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn job_of(label: &str, bytes: &[u8], size: usize, media: &str) -> FileJob {
    let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
    let manifest = catalog::testdata::manifest_of_chunks(&chunks, media);
    FileJob {
        label: label.into(),
        manifest_hash: Hash::of(label.as_bytes()),
        manifest,
        previous: None,
    }
}

fn lane(name: &'static str, sources: Vec<Arc<dyn ChunkSource>>) -> Arc<Lane> {
    Lane::new(name, sources, 3, CancellationToken::new(), None)
}

async fn outcome(mut rx: watch::Receiver<JobState>) -> Outcome {
    let state = tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| s.outcome.is_some()),
    )
    .await
    .expect("the file ended within 20 s")
    .expect("engine alive");
    state.outcome.clone().expect("outcome")
}

fn new_store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Store::open(dir.path().join("store")).expect("store"));
    (dir, store)
}

fn held_bytes(store: &Store, blob: &Hash) -> Vec<u8> {
    std::fs::read(store.blob_path(blob)).expect("held blob")
}

/// Asks `engine` for `job` on `lane` (as the prefetch) and checks that the
/// file was assembled and holds `bytes`.
async fn assemble(engine: &Engine, store: &Store, job: &FileJob, lane: &Arc<Lane>, bytes: &[u8]) {
    let rx = engine
        .want(job.clone(), Priority::Prefetch, lane)
        .await
        .expect("want");
    assert_eq!(outcome(rx).await, Outcome::Done { assembled: true });
    assert_eq!(held_bytes(store, &job.manifest.blob), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_reader_and_a_prefetch_of_one_file_fetch_each_chunk_once() {
    let (_dir, store) = new_store();
    let bytes = data(600 * 1024, 1);
    let job = job_of("c/l/video.mp4", &bytes, 16 * 1024, "video/mp4");
    let origin = Arc::new(MemorySource::new("origin", &[&bytes], 16 * 1024));
    let engine = Engine::start(store.clone());
    let sync = lane("sync", vec![origin.clone()]);
    let reader = lane("read-through", vec![origin.clone()]);
    let a = engine
        .want(job.clone(), Priority::Prefetch, &sync)
        .await
        .expect("want");
    let b = engine
        .want(job.clone(), Priority::OpenedInClass, &reader)
        .await
        .expect("want");
    engine.urgent(job.manifest.blob, 30..38, &reader).await;
    assert_eq!(outcome(a).await, Outcome::Done { assembled: true });
    assert_eq!(outcome(b).await, Outcome::Done { assembled: true });
    assert_eq!(held_bytes(&store, &job.manifest.blob), bytes);
    for chunk in &job.manifest.chunks {
        assert_eq!(origin.asked_for(&chunk.hash), 1, "chunk {}", chunk.hash);
    }
    assert_eq!(origin.total_asked(), job.manifest.chunks.len());
    // Asked again once held: nothing fetched, the held file given.
    let again = engine
        .want(job.clone(), Priority::Reader, &reader)
        .await
        .expect("want");
    assert_eq!(outcome(again).await, Outcome::Done { assembled: false });
    assert_eq!(origin.total_asked(), job.manifest.chunks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_two_files_sharing_chunks_fetch_them_once() {
    let (_dir, store) = new_store();
    let shared = data(256 * 1024, 2);
    let mut other = shared.clone();
    other.extend(data(64 * 1024, 3));
    let one = job_of("c/l/a.bin", &shared, 16 * 1024, "application/octet-stream");
    let two = job_of("c/l/b.bin", &other, 16 * 1024, "application/octet-stream");
    let origin = Arc::new(MemorySource::new("origin", &[&other], 16 * 1024));
    let engine = Engine::start(store.clone());
    let sync = lane("sync", vec![origin.clone()]);
    let a = engine
        .want(one.clone(), Priority::Prefetch, &sync)
        .await
        .expect("want");
    let b = engine
        .want(two.clone(), Priority::Prefetch, &sync)
        .await
        .expect("want");
    assert!(matches!(outcome(a).await, Outcome::Done { .. }));
    assert!(matches!(outcome(b).await, Outcome::Done { .. }));
    assert_eq!(held_bytes(&store, &two.manifest.blob), other);
    assert_eq!(origin.total_asked(), two.manifest.chunks.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_bad_chunk_is_not_written_and_is_fetched_from_the_next_source() {
    let (_dir, store) = new_store();
    let bytes = data(200 * 1024, 4);
    let job = job_of("c/l/page.html", &bytes, 16 * 1024, "text/html");
    let bad_chunk = job.manifest.chunks[3].hash;
    let mut liar = MemorySource::new("lying peer", &[&bytes], 16 * 1024);
    liar.bad.insert(bad_chunk);
    let liar = Arc::new(liar);
    let origin = Arc::new(MemorySource::new("origin", &[&bytes], 16 * 1024));
    let engine = Engine::start(store.clone());
    let both = lane("sync", vec![liar.clone(), origin.clone()]);
    assemble(&engine, &store, &job, &both, &bytes).await;
    assert_eq!(liar.asked_for(&bad_chunk), 1);
    assert_eq!(origin.asked_for(&bad_chunk), 1, "asked of the next source");
    assert_eq!(origin.total_asked(), 1, "only the refused chunk");

    // With only the liar, the file gives up after a few tries, naming the chunk.
    let (_dir2, store2) = new_store();
    let engine = Engine::start(store2.clone());
    let alone = lane("sync", vec![liar.clone()]);
    let rx = engine
        .want(job.clone(), Priority::Prefetch, &alone)
        .await
        .expect("want");
    match outcome(rx).await {
        Outcome::Failed(JobError::Failed(why)) => {
            assert!(why.to_string().contains(&bad_chunk.to_string()), "{why}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!store2.blob_path(&job.manifest.blob).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_12_a_readers_range_jumps_the_queue() {
    let (_dir, store) = new_store();
    let chunk = 4 * 1024;
    let count = CHUNKS_PER_REQUEST * (REQUESTS_IN_FLIGHT + 4);
    let bytes = data(chunk * count, 5);
    let job = job_of("c/l/film.mp4", &bytes, chunk, "application/octet-stream");
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut source = MemorySource::new("origin", &[&bytes], chunk);
    source.gate = Some(gate.clone());
    let origin = Arc::new(source);
    let engine = Engine::start(store.clone());
    let sync = lane("sync", vec![origin.clone()]);
    let reader = lane("read-through", vec![origin.clone()]);
    let rx = engine
        .want(job.clone(), Priority::Prefetch, &sync)
        .await
        .expect("want");
    // The prefetch fills every request slot but those kept for classes.
    let background = REQUESTS_IN_FLIGHT - RESERVED_FOR_CLASS;
    for _ in 0..200 {
        if lock(&origin.asked).len() == background {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lock(&origin.asked).len(), background);
    let wanted = count - 5..count - 3;
    engine
        .urgent(job.manifest.blob, wanted.clone(), &reader)
        .await;
    for _ in 0..200 {
        if lock(&origin.asked).len() > background {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let next = lock(&origin.asked)[background].clone();
    let expected: Vec<Hash> = wanted.map(|i| job.manifest.chunks[i].hash).collect();
    assert_eq!(next, expected, "the reader's chunks go at once, alone");
    gate.add_permits(1000);
    assert_eq!(outcome(rx).await, Outcome::Done { assembled: true });
    assert_eq!(origin.total_asked(), count);
}

#[test]
fn issue_12_queue_order_reader_first_video_heads_before_the_rest() {
    let lane = lane("t", vec![]);
    let entry = |priority, seq| Entry {
        priority,
        seq,
        blob: Hash::of(b"x"),
        index: 0,
        lane: lane.clone(),
    };
    let mut heap = BinaryHeap::new();
    heap.push(entry(Priority::Prefetch, 1));
    heap.push(entry(Priority::PrefetchHead, 5));
    heap.push(entry(Priority::Reader, 9));
    heap.push(entry(Priority::Prefetch, 2));
    heap.push(entry(Priority::OpenedInClass, 7));
    heap.push(entry(Priority::Cleanup, 0));
    heap.push(entry(Priority::PrefetchHead, 3));
    let order: Vec<(Priority, u64)> =
        std::iter::from_fn(|| heap.pop().map(|e| (e.priority, e.seq))).collect();
    assert_eq!(
        order,
        [
            (Priority::Reader, 9),
            (Priority::OpenedInClass, 7),
            (Priority::PrefetchHead, 3),
            (Priority::PrefetchHead, 5),
            (Priority::Prefetch, 1),
            (Priority::Prefetch, 2),
            (Priority::Cleanup, 0),
        ]
    );
}

/// The chunks starting in a video's first [`HEAD_BYTES`] are its head: the
/// chunk that starts just before the mark is in it, the next one is not.
#[test]
fn issue_12_a_videos_head_is_the_chunks_starting_in_its_first_bytes() {
    let chunk = |len: u32| ChunkRef {
        hash: Hash::of(&len.to_le_bytes()),
        len,
    };
    let mib = 1024 * 1024;
    let manifest = |lens: &[u32]| FileManifest {
        size: lens.iter().map(|&l| u64::from(l)).sum(),
        blob: Hash::of(b"video"),
        media_type: "video/mp4".into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: lens.iter().map(|&l| chunk(l)).collect(),
    };
    // Starts at 0, 1, 2, 3.5 (in the head), 4 and 5 MiB (not).
    let lens = [mib, mib, 3 * mib / 2, mib / 2, mib, mib];
    assert_eq!(head_chunks(&manifest(&lens)), 4);
    assert_eq!(head_chunks(&manifest(&[])), 0);
    assert_eq!(head_chunks(&manifest(&[64 * mib])), 1);
}

#[path = "engine_peer_tests.rs"]
mod peers;
