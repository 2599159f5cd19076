//! Chunks an origin process on a bucket serves (issue 16): read from the
//! bucket when an edge asks, each checked against its hash, and kept in a
//! cache bounded in bytes so the chunks of this week's lessons, asked for by
//! every school, are read from the bucket once per process.
//!
//! Concurrent requests for the same chunk share one read; the number of reads
//! in flight is bounded as well, whatever number of edges ask.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use catalog::Hash;
use futures_util::StreamExt;
use tokio::sync::{OnceCell, Semaphore};

use super::{Bucket, Kind};
use crate::serve::Upstream;

/// The cache's default bound: 256 MiB of chunks.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Reads from the bucket in flight at once, over all edges.
const READS: usize = 32;
/// Chunks of one request read at once.
const READS_PER_REQUEST: usize = 8;

/// A chunk being read: every request for it waits on the same cell.
type Reading = Arc<OnceCell<Option<Bytes>>>;

/// The bucket's chunks, served through a bounded cache.
pub struct BucketChunks {
    bucket: Bucket,
    cache: Mutex<Cache>,
    reading: Mutex<HashMap<Hash, Reading>>,
    reads: Semaphore,
}

/// Least recently used chunks up to a byte bound.
struct Cache {
    chunks: lru::LruCache<Hash, Bytes>,
    bytes: u64,
    limit: u64,
    hits: u64,
    misses: u64,
}

/// How the cache is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub bytes: u64,
    pub chunks: usize,
    pub hits: u64,
    pub misses: u64,
}

impl BucketChunks {
    /// Serves `bucket`'s chunks, caching up to `cache_bytes` of them.
    pub fn new(bucket: Bucket, cache_bytes: u64) -> BucketChunks {
        BucketChunks {
            bucket,
            cache: Mutex::new(Cache {
                chunks: lru::LruCache::unbounded(),
                bytes: 0,
                limit: cache_bytes,
                hits: 0,
                misses: 0,
            }),
            reading: Mutex::new(HashMap::new()),
            reads: Semaphore::new(READS),
        }
    }

    pub fn stats(&self) -> CacheStats {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        CacheStats {
            bytes: cache.bytes,
            chunks: cache.chunks.len(),
            hits: cache.hits,
            misses: cache.misses,
        }
    }

    /// The chunk `hash`, from the cache or the bucket; `None` if the bucket
    /// does not hold it or cannot be read (logged).
    pub async fn chunk(self: &Arc<Self>, hash: Hash) -> Option<Bytes> {
        if let Some(bytes) = self.cached(&hash) {
            return Some(bytes);
        }
        let cell = {
            let mut reading = self.reading.lock().unwrap_or_else(|p| p.into_inner());
            reading.entry(hash).or_default().clone()
        };
        let this = self.clone();
        let found = cell
            .get_or_init(|| async move {
                // A read that finished while this one waited for the cell.
                if let Some(bytes) = this.cached(&hash) {
                    return Some(bytes);
                }
                let _place = this.reads.acquire().await.ok()?;
                let bucket = this.bucket.clone();
                let read = super::run(async move { bucket.get(Kind::Chunk, &hash).await }).await;
                match read {
                    Ok(Some(bytes)) => {
                        this.keep(hash, bytes.clone());
                        Some(bytes)
                    }
                    Ok(None) => None,
                    Err(err) => {
                        tracing::warn!(%hash, cause = %catalog::format::error_chain(&err), "cannot read a chunk from the bucket");
                        None
                    }
                }
            })
            .await
            .clone();
        self.reading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash);
        found
    }

    fn cached(&self, hash: &Hash) -> Option<Bytes> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let found = cache.chunks.get(hash).cloned();
        if found.is_some() {
            cache.hits += 1;
        }
        found
    }

    fn keep(&self, hash: Hash, bytes: Bytes) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.misses += 1;
        let len = bytes.len() as u64;
        if len > cache.limit {
            return;
        }
        if let Some(old) = cache.chunks.put(hash, bytes) {
            cache.bytes -= old.len() as u64;
        }
        cache.bytes += len;
        while cache.bytes > cache.limit {
            let Some((_, evicted)) = cache.chunks.pop_lru() else {
                break;
            };
            cache.bytes -= evicted.len() as u64;
        }
    }
}

impl Upstream for Arc<BucketChunks> {
    fn chunks(
        &self,
        _file: Hash,
        wanted: Vec<Hash>,
        sink: tokio::sync::mpsc::Sender<(Hash, Vec<u8>)>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let this = self.clone();
        Box::pin(async move {
            let mut found = futures_util::stream::iter(wanted)
                .map(|hash| {
                    let this = this.clone();
                    async move { (hash, this.chunk(hash).await) }
                })
                .buffer_unordered(READS_PER_REQUEST);
            while let Some((hash, bytes)) = found.next().await {
                if let Some(bytes) = bytes
                    && sink.send((hash, bytes.to_vec())).await.is_err()
                {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bucket() -> (tempfile::TempDir, Bucket) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().join("bucket").display());
        (dir, Bucket::from_url(&url).expect("bucket"))
    }

    #[tokio::test]
    async fn chunks_are_read_once_then_served_from_a_bounded_cache() {
        let (_dir, bucket) = bucket();
        let mut hashes = Vec::new();
        for i in 0..4u8 {
            let bytes = Bytes::from(vec![i; 1000]);
            let hash = Hash::of(&bytes);
            let put = bucket.clone();
            super::super::run(async move { put.put_new(Kind::Chunk, &hash, bytes).await })
                .await
                .expect("put");
            hashes.push(hash);
        }
        // Room for two chunks of 1000 bytes.
        let chunks = Arc::new(BucketChunks::new(bucket, 2500));
        let got = chunks.chunk(hashes[0]).await.expect("held");
        assert_eq!(got, vec![0u8; 1000]);
        chunks.chunk(hashes[0]).await.expect("held");
        let stats = chunks.stats();
        assert_eq!((stats.misses, stats.hits), (1, 1), "{stats:?}");
        for hash in &hashes[1..] {
            chunks.chunk(*hash).await.expect("held");
        }
        let stats = chunks.stats();
        assert_eq!(stats.chunks, 2, "{stats:?}");
        assert!(stats.bytes <= 2500, "{stats:?}");
        // The first went out first; reading it again goes to the bucket.
        chunks.chunk(hashes[0]).await.expect("held");
        assert_eq!(chunks.stats().misses, 5);
        assert_eq!(chunks.chunk(Hash::of(b"not there")).await, None);
    }

    #[tokio::test]
    async fn a_damaged_chunk_is_not_served() {
        let (_dir, bucket) = bucket();
        let hash = Hash::of(b"the real chunk");
        let key = bucket.key(Kind::Chunk, &hash);
        let store = bucket.store().clone();
        super::super::run(async move {
            store
                .put(&key, object_store::PutPayload::from_static(b"tampered"))
                .await
        })
        .await
        .expect("plant");
        let chunks = Arc::new(BucketChunks::new(bucket, 1 << 20));
        assert_eq!(chunks.chunk(hash).await, None);
        assert_eq!(chunks.stats().chunks, 0);
    }
}
