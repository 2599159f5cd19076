//! The origin's bucket (server::bucket) against an S3 server in this process
//! and against a local folder: create-if-absent content, hash-checked reads,
//! and a catalog head moved only by compare-and-swap.

use std::sync::Arc;

use bytes::Bytes;
use catalog::Hash;
use object_store::PutPayload;
use server::bucket::{Bucket, BucketError, Kind, Put, Swap, UpdateVersion};
use shanlu_tests::s3::S3Server;

/// The same bucket API over both stores; the servers stop when this drops.
struct Backends {
    _s3: S3Server,
    _dir: tempfile::TempDir,
    s3: Bucket,
    file: Bucket,
}

impl Backends {
    fn start() -> Backends {
        let s3_server = S3Server::start();
        let s3 = Bucket::from_url_with(&s3_server.url("province/origin"), s3_server.env())
            .expect("opening the S3 bucket");
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("file://{}", dir.path().join("bucket").display());
        let file = Bucket::from_url(&url).expect("opening the file bucket");
        Backends {
            _s3: s3_server,
            _dir: dir,
            s3,
            file,
        }
    }

    fn both(&self) -> [(&'static str, &Bucket); 2] {
        [("s3", &self.s3), ("file", &self.file)]
    }
}

#[tokio::test]
async fn put_new_creates_once_and_never_overwrites() {
    let backends = Backends::start();
    for (store, bucket) in backends.both() {
        let bytes = Bytes::from_static(b"lesson 1: addition");
        let hash = Hash::of(&bytes);
        let first = bucket.put_new(Kind::Object, &hash, bytes.clone()).await;
        assert_eq!(first.expect(store), Put::Created, "{store}");
        // A second writer with other bytes under the same key changes nothing.
        let second = bucket
            .put_new(Kind::Object, &hash, Bytes::from_static(b"impostor"))
            .await;
        assert_eq!(second.expect(store), Put::AlreadyThere, "{store}");
        let got = bucket.get(Kind::Object, &hash).await.expect(store);
        assert_eq!(got, Some(bytes), "{store}");
        assert!(
            bucket.has(Kind::Object, &hash).await.expect(store),
            "{store}"
        );
    }
}

#[tokio::test]
async fn get_refuses_bytes_that_do_not_match_their_key() {
    let backends = Backends::start();
    for (store, bucket) in backends.both() {
        let hash = Hash::of(b"the real chunk");
        let key = bucket.key(Kind::Chunk, &hash);
        bucket
            .store()
            .put(&key, PutPayload::from_static(b"a damaged chunk"))
            .await
            .expect(store);
        let err = bucket
            .get(Kind::Chunk, &hash)
            .await
            .expect_err("damaged bytes must not be returned");
        match &err {
            BucketError::Corrupt {
                expected, actual, ..
            } => {
                assert_eq!(*expected, hash, "{store}");
                assert_eq!(*actual, Hash::of(b"a damaged chunk"), "{store}");
            }
            other => panic!("{store}: expected Corrupt, got {other:?}"),
        }
        assert!(err.to_string().contains(key.as_ref()), "{store}: {err}");
    }
}

#[tokio::test]
async fn missing_keys_are_absent_not_errors() {
    let backends = Backends::start();
    for (store, bucket) in backends.both() {
        let hash = Hash::of(b"never published");
        assert!(
            !bucket.has(Kind::Chunk, &hash).await.expect(store),
            "{store}"
        );
        assert_eq!(bucket.get(Kind::Chunk, &hash).await.expect(store), None);
        assert_eq!(bucket.head().await.expect(store), None, "{store}");
    }
}

#[tokio::test]
async fn swap_head_moves_only_from_the_version_read() {
    let backends = Backends::start();
    let bucket = &backends.s3;
    let first = Bytes::from_static(b"catalog 1");
    let Swap::Done(v1) = bucket.swap_head(None, first.clone()).await.expect("create") else {
        panic!("the first head must be created");
    };
    let (bytes, version) = bucket.head().await.expect("head").expect("a head");
    assert_eq!((bytes, &version), (first, &v1));
    // A second "first" head loses: there is one now.
    let again = bucket
        .swap_head(None, Bytes::from_static(b"catalog 1'"))
        .await;
    assert_eq!(again.expect("create again"), Swap::Lost);

    let second = Bytes::from_static(b"catalog 2");
    let Swap::Done(v2) = bucket
        .swap_head(Some(&v1), second.clone())
        .await
        .expect("swap")
    else {
        panic!("swapping from the current version must win");
    };
    assert_ne!(v1, v2);
    let stale = bucket
        .swap_head(Some(&v1), Bytes::from_static(b"catalog 2'"))
        .await;
    assert_eq!(stale.expect("stale swap"), Swap::Lost);
    let (bytes, version) = bucket.head().await.expect("head").expect("a head");
    assert_eq!((bytes, version), (second, v2));
}

#[tokio::test]
async fn a_file_bucket_creates_the_head_but_says_it_cannot_swap_it() {
    let backends = Backends::start();
    let bucket = &backends.file;
    let first = Bytes::from_static(b"catalog 1");
    let Swap::Done(v1) = bucket.swap_head(None, first).await.expect("create") else {
        panic!("the first head must be created");
    };
    let again = bucket
        .swap_head(None, Bytes::from_static(b"catalog 1'"))
        .await;
    assert_eq!(again.expect("create again"), Swap::Lost);
    // object_store's LocalFileSystem has no conditional replace.
    let err = bucket
        .swap_head(Some(&v1), Bytes::from_static(b"catalog 2"))
        .await
        .expect_err("a file bucket cannot compare-and-swap");
    assert!(
        matches!(err, BucketError::NoCompareAndSwap { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("v1/catalog/head"), "{err}");
}

/// 16 publishers race from the same head; exactly one moves it, and the head
/// holds that one's bytes. Each race's bytes are new: an S3 ETag is the MD5
/// of the bytes, so a head rewritten with the bytes it held keeps its version.
async fn race(store: &str, bucket: &Bucket, from: Option<&UpdateVersion>) -> Bytes {
    let bucket = Arc::new(bucket.clone());
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let bucket = bucket.clone();
            let from = from.cloned();
            let bytes = Bytes::from(format!("catalog after {from:?} from publisher {n}"));
            tokio::spawn(async move {
                let swap = bucket.swap_head(from.as_ref(), bytes.clone()).await;
                (swap.expect("swap_head"), bytes)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (swap, bytes) = task.await.expect("task");
        if let Swap::Done(version) = swap {
            winners.push((bytes, version));
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{store} from {from:?}: exactly one publisher must win"
    );
    let (bytes, version) = winners.remove(0);
    let head = bucket.head().await.expect("head").expect("a head");
    assert_eq!(head, (bytes.clone(), version), "{store}");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_swaps_have_exactly_one_winner() {
    let backends = Backends::start();
    for (store, bucket) in backends.both() {
        race(store, bucket, None).await;
    }
    let (_, start) = backends.s3.head().await.expect("head").expect("a head");
    race("s3", &backends.s3, Some(&start)).await;
}
