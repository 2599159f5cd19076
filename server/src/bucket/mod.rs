//! The origin in S3-compatible object storage (DESIGN.md, "Where it goes past
//! one machine", issue 16).
//!
//! A [`Bucket`] is an [`ObjectStore`] (AWS S3, MinIO, Ceph RGW, … or a local
//! folder) plus a key prefix, laid out as:
//!
//! - `v1/objects/<hex hash>` and `v1/chunks/<hex hash>`: immutable,
//!   content-addressed bytes, written only if absent ([`Bucket::put_new`]) and
//!   checked against their hash when read ([`Bucket::get`]).
//! - `v1/catalog/head`: the one mutable key, moved only by compare-and-swap
//!   ([`Bucket::swap_head`]), so several origin processes can share a bucket.
//!
//! Goals: writers never overwrite content, a damaged or foreign object is never
//! handed on, and two publishers racing for the head cannot both win.
//! Non-goals here: listing, garbage collection. No object needs a multipart
//! upload: chunks are at most 16 MiB (FastCDC's largest maximum; 256 KiB by
//! default) and metadata objects at most [`catalog::object::MAX_OBJECT_LEN`],
//! far under S3's 5 GiB for one PUT.
//!
//! - [`follow`]: bringing a process's local store to the bucket's head.
//! - [`push`]: writing what a new catalog reaches, then moving the head.
//! - [`chunks`]: chunks fetched on demand for serving, with a bounded cache.
//! - [`verify`]: checking the head and everything it reaches.
//! - [`migrate`]: moving an origin on its folder onto a bucket.
//!
//! Every request runs on one runtime of this module's own ([`run`], [`block`]),
//! whichever runtime (or none) the caller is on: the S3 client's pooled
//! connections then never outlive the runtime that opened them.

pub mod chunks;
pub mod follow;
pub mod migrate;
pub mod push;
pub mod verify;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use catalog::Hash;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};

pub use object_store::UpdateVersion;

/// The layout version: every key starts with it, after the bucket's prefix.
const LAYOUT: &str = "v1";

/// The largest object read from the bucket: a metadata object, a chunk or the
/// head (a signed catalog), with room for the signature and roots.
pub const MAX_READ: u64 = catalog::object::MAX_OBJECT_LEN as u64 + 64 * 1024;

/// One request's time limit; a stalled connection fails and is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting's time limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries of a failed request (server errors, timeouts), within [`RETRY_FOR`].
const RETRIES: usize = 4;
const RETRY_FOR: Duration = Duration::from_secs(90);

/// The runtime every bucket request runs on.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shanlu-bucket")
        .enable_all()
        .build()
        .expect("the operating system refused the threads of the bucket's runtime")
});

/// Runs `work` on the bucket's runtime and waits for it, from async code.
pub async fn run<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match RUNTIME.spawn(work).await {
        Ok(done) => done,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

/// Runs `work` on the bucket's runtime and waits for it, from blocking code
/// (a publish, a command, `spawn_blocking`); never from async code.
pub fn block<T>(work: impl std::future::Future<Output = T>) -> T {
    RUNTIME.block_on(work)
}

/// Which content-addressed family a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Metadata objects (manifests, lessons, courses, catalogs): `v1/objects/`.
    Object,
    /// File chunks: `v1/chunks/`.
    Chunk,
}

impl Kind {
    fn folder(self) -> &'static str {
        match self {
            Kind::Object => "objects",
            Kind::Chunk => "chunks",
        }
    }
}

/// The keys that change, each only by compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutable {
    /// `v1/catalog/head`: the signed catalog in force.
    Head,
    /// `v1/tokens/edges.toml`: the edges' names and token hashes.
    EdgeTokens,
    /// `v1/tokens/admins.toml`: the administrators' names and token hashes.
    AdminTokens,
}

/// What [`Bucket::put_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The bytes were written.
    Created,
    /// The key existed already; since keys are hashes, it holds the same bytes.
    AlreadyThere,
}

/// What [`Bucket::swap_head`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The head now holds the new bytes, at this version.
    Done(UpdateVersion),
    /// The head was not at the expected version: somebody else moved it. Read
    /// it again, then retry or give up.
    Lost,
}

/// Why a bucket could not be opened from its URL.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Neither `s3://` nor `file:///`.
    #[error("{url} is not a bucket URL: use s3://bucket/prefix or file:///absolute/path")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// The S3 client could not be set up.
    #[error(
        "setting up S3 access to {url} failed; the endpoint, region and credentials come from \
         the AWS_* environment variables (AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY, and AWS_ALLOW_HTTP=true for a plain-HTTP server)"
    )]
    S3 {
        /// The URL as given.
        url: String,
        /// What object_store said.
        #[source]
        source: object_store::Error,
    },
    /// The local folder could not be created or opened.
    #[error("opening the local bucket folder {path} failed")]
    Local {
        /// The folder.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a bucket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The store refused or could not be reached.
    #[error(
        "{action} {key} failed; check that the store is reachable and the credentials allow it"
    )]
    Store {
        /// What was being done: `writing`, `reading`, `checking`.
        action: &'static str,
        /// The full key.
        key: Path,
        /// What object_store said.
        #[source]
        source: object_store::Error,
    },
    /// The bytes under a hash key are not the bytes of that hash.
    #[error(
        "{key} holds bytes that hash to {actual}, not {expected}: the bucket's copy is damaged \
         or was written by something else; delete it and publish again"
    )]
    Corrupt {
        /// The full key.
        key: Path,
        /// The hash in the key.
        expected: Hash,
        /// The hash of the bytes found.
        actual: Hash,
    },
    /// An object larger than anything the origin writes.
    #[error(
        "{key} is {size} bytes, more than the {MAX_READ} any object of the origin's can be; \
         it was not written by shanlu: delete it"
    )]
    TooLarge {
        /// The full key.
        key: Path,
        /// Its size as the store reports it.
        size: u64,
    },
    /// The store has no conditional replace, so the head cannot move safely.
    #[error(
        "the store cannot replace {key} conditionally; keep the catalog head on S3-compatible \
         storage with conditional writes (AWS S3, MinIO, Ceph RGW)"
    )]
    NoCompareAndSwap {
        /// The head's full key.
        key: Path,
        /// What object_store said.
        #[source]
        source: object_store::Error,
    },
}

/// An object store and the prefix under which the origin's keys live.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Bucket {
    /// The origin's keys in `store`, under `prefix` (`""` for the store's root).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Bucket {
        Bucket {
            store,
            prefix: Path::from(prefix),
        }
    }

    /// Opens `s3://bucket/prefix` or `file:///absolute/path` (a folder, created
    /// if missing; for tests and single machines). For S3 the endpoint, region
    /// and credentials come from the `AWS_*` environment variables, never from
    /// the URL. The URL is taken literally: no percent-decoding.
    pub fn from_url(url: &str) -> Result<Bucket, OpenError> {
        Bucket::from_url_with(url, std::env::vars())
    }

    /// [`Bucket::from_url`] with the `AWS_*` settings taken from `vars`
    /// instead of the environment (tests, where setting the environment would
    /// race with other threads).
    pub fn from_url_with<K, V>(
        url: &str,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Bucket, OpenError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // Set first, so the environment's AWS_* settings can override them.
            let retry = RetryConfig {
                max_retries: RETRIES,
                retry_timeout: RETRY_FOR,
                ..RetryConfig::default()
            };
            let mut builder = AmazonS3Builder::new()
                .with_client_options(
                    ClientOptions::new()
                        .with_timeout(REQUEST_TIMEOUT)
                        .with_connect_timeout(CONNECT_TIMEOUT),
                )
                .with_retry(retry);
            for (key, value) in vars {
                let key = key.as_ref();
                // As `AmazonS3Builder::from_env` does: AWS_ENDPOINT → aws_endpoint.
                if key.starts_with("AWS_")
                    && let Ok(config_key) = key.to_ascii_lowercase().parse()
                {
                    builder = builder.with_config(config_key, value);
                }
            }
            let store = builder
                .with_bucket_name(name)
                .build()
                .map_err(|source| OpenError::S3 {
                    url: url.to_owned(),
                    source,
                })?;
            return Ok(Bucket::new(Arc::new(store), prefix));
        }
        match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => {
                let local = |source: Box<dyn std::error::Error + Send + Sync>| OpenError::Local {
                    path: path.to_owned(),
                    source,
                };
                std::fs::create_dir_all(path).map_err(|err| local(err.into()))?;
                let store =
                    LocalFileSystem::new_with_prefix(path).map_err(|err| local(err.into()))?;
                Ok(Bucket::new(Arc::new(store), ""))
            }
            _ => Err(OpenError::Scheme {
                url: url.to_owned(),
            }),
        }
    }

    /// The store underneath, for what this module does not wrap yet.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full key of `hash` of `kind`: `<prefix>/v1/objects/<hex>` or `…/chunks/<hex>`.
    pub fn key(&self, kind: Kind, hash: &Hash) -> Path {
        self.path(&[kind.folder(), &hash.to_hex()])
    }

    /// The full key of the catalog head: `<prefix>/v1/catalog/head`.
    pub fn head_key(&self) -> Path {
        self.path(&["catalog", "head"])
    }

    fn path(&self, parts: &[&str]) -> Path {
        let mut path = self.prefix.child(LAYOUT);
        for part in parts {
            path = path.child(*part);
        }
        path
    }

    /// Writes `bytes` under `hash` unless the key exists already. The caller
    /// vouches that `bytes` hash to `hash`.
    pub async fn put_new(&self, kind: Kind, hash: &Hash, bytes: Bytes) -> Result<Put, BucketError> {
        self.create(self.key(kind, hash), bytes).await
    }

    /// Writes `bytes` under `key` unless it exists already.
    async fn create(&self, key: Path, bytes: Bytes) -> Result<Put, BucketError> {
        let options = PutOptions::from(PutMode::Create);
        match self.store.put_opts(&key, bytes.into(), options).await {
            Ok(_) => Ok(Put::Created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Put::AlreadyThere),
            Err(source) => Err(BucketError::Store {
                action: "writing",
                key,
                source,
            }),
        }
    }

    /// The bytes under `hash`, checked against it; `None` if the key is absent.
    pub async fn get(&self, kind: Kind, hash: &Hash) -> Result<Option<Bytes>, BucketError> {
        let key = self.key(kind, hash);
        let Some((bytes, _)) = self.read(&key).await? else {
            return Ok(None);
        };
        // Inline rather than in spawn_blocking: objects and chunks are small
        // (chunks at most the chunking profile's max, 256 KiB by default).
        let actual = Hash::of(&bytes);
        if actual != *hash {
            return Err(BucketError::Corrupt {
                key,
                expected: *hash,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// Whether the key of `hash` exists (a HEAD request; the bytes are not checked).
    pub async fn has(&self, kind: Kind, hash: &Hash) -> Result<bool, BucketError> {
        let key = self.key(kind, hash);
        match self.store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(BucketError::Store {
                action: "checking",
                key,
                source,
            }),
        }
    }

    /// The catalog head's bytes and the version to pass to [`Bucket::swap_head`];
    /// `None` before the first swap.
    pub async fn head(&self) -> Result<Option<(Bytes, UpdateVersion)>, BucketError> {
        self.read_mutable(Mutable::Head).await
    }

    /// The catalog head's ETag (a HEAD request, no body); `None` if there is
    /// no head. Cheap enough to ask every few seconds.
    pub async fn head_tag(&self) -> Result<Option<String>, BucketError> {
        let key = self.head_key();
        match self.store.head(&key).await {
            Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_default())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(BucketError::Store {
                action: "checking",
                key,
                source,
            }),
        }
    }

    /// Replaces the catalog head with `new` if it is still at `expected`
    /// (`None`: if there is no head yet).
    ///
    /// The version is the store's ETag, which on S3 is the MD5 of the bytes:
    /// rewriting the bytes a head held keeps its version, so every new head
    /// must differ from the last (a catalog's sequence number sees to that).
    pub async fn swap_head(
        &self,
        expected: Option<&UpdateVersion>,
        new: Bytes,
    ) -> Result<Swap, BucketError> {
        self.swap_mutable(Mutable::Head, expected, new).await
    }

    /// The bytes of one of the mutable keys and their version; `None` if absent.
    pub async fn read_mutable(
        &self,
        which: Mutable,
    ) -> Result<Option<(Bytes, UpdateVersion)>, BucketError> {
        self.read(&self.mutable_key(which)).await
    }

    /// Replaces a mutable key with `new` if it is still at `expected`
    /// (`None`: if it does not exist yet), like [`Bucket::swap_head`].
    pub async fn swap_mutable(
        &self,
        which: Mutable,
        expected: Option<&UpdateVersion>,
        new: Bytes,
    ) -> Result<Swap, BucketError> {
        let key = self.mutable_key(which);
        let mode = match expected {
            None => PutMode::Create,
            Some(version) => PutMode::Update(version.clone()),
        };
        match self
            .store
            .put_opts(&key, PutPayload::from(new), mode.into())
            .await
        {
            Ok(done) => Ok(Swap::Done(done.into())),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Swap::Lost),
            Err(source @ object_store::Error::NotImplemented) => {
                Err(BucketError::NoCompareAndSwap { key, source })
            }
            Err(source) => Err(BucketError::Store {
                action: "writing",
                key,
                source,
            }),
        }
    }

    /// Files an edge's report (issue 16) under the hour `hour` (hours since
    /// the epoch) as `name`, unless it is there already.
    pub async fn put_report(
        &self,
        hour: u64,
        name: &str,
        bytes: Bytes,
    ) -> Result<Put, BucketError> {
        self.create(self.report_folder(hour).child(name), bytes)
            .await
    }

    /// The names of the reports filed under `hour`.
    pub async fn list_reports(&self, hour: u64) -> Result<Vec<String>, BucketError> {
        use futures_util::TryStreamExt;
        let folder = self.report_folder(hour);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|source| BucketError::Store {
                action: "listing",
                key: folder.clone(),
                source,
            })?;
        Ok(listed
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .collect())
    }

    /// The report `name` filed under `hour`; `None` if it is gone.
    pub async fn get_report(&self, hour: u64, name: &str) -> Result<Option<Bytes>, BucketError> {
        let key = self.report_folder(hour).child(name);
        Ok(self.read(&key).await?.map(|(bytes, _)| bytes))
    }

    /// `<prefix>/v1/reports/<hour, 10 digits>`.
    fn report_folder(&self, hour: u64) -> Path {
        self.path(&["reports", &format!("{hour:010}")])
    }

    /// The full key of a mutable key.
    pub fn mutable_key(&self, which: Mutable) -> Path {
        match which {
            Mutable::Head => self.head_key(),
            Mutable::EdgeTokens => self.path(&["tokens", "edges.toml"]),
            Mutable::AdminTokens => self.path(&["tokens", "admins.toml"]),
        }
    }

    /// The bytes and version under `key`, or `None` if it is absent.
    async fn read(&self, key: &Path) -> Result<Option<(Bytes, UpdateVersion)>, BucketError> {
        let failed = |source| BucketError::Store {
            action: "reading",
            key: key.clone(),
            source,
        };
        let found = match self.store.get(key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(failed(source)),
        };
        if found.meta.size > MAX_READ {
            return Err(BucketError::TooLarge {
                key: key.clone(),
                size: found.meta.size,
            });
        }
        let version = UpdateVersion {
            e_tag: found.meta.e_tag.clone(),
            version: found.meta.version.clone(),
        };
        let bytes = found.bytes().await.map_err(failed)?;
        Ok(Some((bytes, version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, Bucket) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().join("bucket").display());
        let bucket = Bucket::from_url(&url).expect("open the file bucket");
        (dir, bucket)
    }

    #[test]
    fn keys_follow_the_v1_layout() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let hash = Hash::of(b"lesson");
        let bucket = Bucket::new(store.clone(), "province/origin");
        assert_eq!(
            bucket.key(Kind::Object, &hash).as_ref(),
            format!("province/origin/v1/objects/{hash}")
        );
        assert_eq!(
            bucket.key(Kind::Chunk, &hash).as_ref(),
            format!("province/origin/v1/chunks/{hash}")
        );
        assert_eq!(
            Bucket::new(store, "").head_key().as_ref(),
            "v1/catalog/head"
        );
    }

    #[test]
    fn from_url_refuses_other_schemes_and_relative_paths() {
        for url in ["http://example.invalid/b", "file://relative/path", "bucket"] {
            let err = Bucket::from_url(url).expect_err(url);
            assert!(matches!(err, OpenError::Scheme { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn from_url_s3_takes_the_bucket_and_prefix() {
        let vars = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT", "http://127.0.0.1:9"),
        ];
        let bucket = Bucket::from_url_with("s3://courses/province/a", vars).expect("s3 bucket");
        assert_eq!(bucket.head_key().as_ref(), "province/a/v1/catalog/head");
    }

    #[tokio::test]
    async fn bucket_put_new_then_get_checks_the_hash() {
        let (_dir, bucket) = local();
        let bytes = Bytes::from_static(b"a chunk of a lesson video");
        let hash = Hash::of(&bytes);
        assert!(!bucket.has(Kind::Chunk, &hash).await.expect("has"));
        let first = bucket.put_new(Kind::Chunk, &hash, bytes.clone()).await;
        assert_eq!(first.expect("first put"), Put::Created);
        let second = bucket.put_new(Kind::Chunk, &hash, bytes.clone()).await;
        assert_eq!(second.expect("second put"), Put::AlreadyThere);
        assert_eq!(
            bucket.get(Kind::Chunk, &hash).await.expect("get"),
            Some(bytes)
        );
        // The same hash as an object is another key.
        assert_eq!(bucket.get(Kind::Object, &hash).await.expect("get"), None);

        let wrong = Hash::of(b"something else");
        let key = bucket.key(Kind::Chunk, &wrong);
        bucket
            .store()
            .put(&key, PutPayload::from_static(b"not it"))
            .await
            .expect("plant wrong bytes");
        let err = bucket.get(Kind::Chunk, &wrong).await.expect_err("corrupt");
        assert!(matches!(err, BucketError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(key.as_ref()), "{err}");
    }
}
