//! An S3 server in the test process: `s3s-fs` (files in a temp dir) behind the
//! `s3s` HTTP service, on 127.0.0.1 port 0, with fixed test credentials and one
//! bucket. It runs on its own thread and runtime, so sync and async tests can
//! both use it, and stops when its [`S3Server`] is dropped.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::sync::{RwLock, oneshot};

/// The test server's access key.
pub const ACCESS_KEY: &str = "shanlu-test";
/// The test server's secret key.
pub const SECRET_KEY: &str = "shanlu-test-secret";
/// The region the test server's clients sign for.
pub const REGION: &str = "us-east-1";
/// The one bucket the test server starts with.
pub const BUCKET: &str = "shanlu";

/// A running test S3 server; dropping it stops the server and deletes its files.
pub struct S3Server {
    endpoint: String,
    reads: Arc<Reads>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server with an empty bucket [`BUCKET`].
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir for the S3 server");
        // s3s-fs keeps a bucket as a folder under its root.
        std::fs::create_dir(root.path().join(BUCKET)).expect("creating the test bucket");
        let store = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs over the temp dir");
        let reads = Arc::new(Reads::default());
        let mut builder = S3ServiceBuilder::new(AtomicWrites {
            inner: store,
            lock: RwLock::new(()),
            reads: reads.clone(),
        });
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the S3 server");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("the S3 server's runtime");
            runtime.block_on(serve(listener, service, stopped));
            // Dropping the runtime ends every connection's task.
            runtime.shutdown_timeout(Duration::from_secs(5));
        });
        S3Server {
            endpoint,
            reads,
            stop: Some(stop),
            thread: Some(thread),
            root,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// GET requests answered so far, and the bytes they carried.
    pub fn reads(&self) -> (u64, u64) {
        (
            self.reads.gets.load(Ordering::Relaxed),
            self.reads.bytes.load(Ordering::Relaxed),
        )
    }

    /// The bucket's name, [`BUCKET`].
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// `s3://BUCKET/prefix`, for `Bucket::from_url`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// How many objects the bucket holds under `key_prefix` (e.g.
    /// `province/v1/chunks`), counted in the server's folder.
    pub fn objects_under(&self, key_prefix: &str) -> usize {
        fn count(dir: &std::path::Path) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.file_type() {
                    Ok(kind) if kind.is_dir() => count(&entry.path()),
                    Ok(kind) if kind.is_file() => 1,
                    _ => 0,
                })
                .sum()
        }
        count(&self.folder().join(key_prefix))
    }

    /// The folder holding the bucket's objects, one file per key.
    pub fn folder(&self) -> std::path::PathBuf {
        self.root.path().join(BUCKET)
    }

    /// `shanlu` with this server's endpoint and credentials in its environment.
    pub fn shanlu(&self) -> std::process::Command {
        let mut command = crate::shanlu();
        command.envs(self.env());
        command
    }

    /// `origin init --store s3://BUCKET/prefix` in a new temporary folder:
    /// the origin, and the first administrator's token.
    pub fn init_origin(&self, prefix: &str) -> (crate::TestOrigin, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("origin");
        let out = crate::command_ok(
            self.shanlu(),
            &[
                "origin",
                "init",
                "--data",
                data.to_str().expect("utf-8 path"),
                "--store",
                &self.url(prefix),
            ],
        );
        let line = |prefix: &str| {
            out.lines()
                .find_map(|line| line.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("origin init prints {prefix:?}"))
                .to_owned()
        };
        let origin = crate::TestOrigin {
            dir,
            key: line("origin key: "),
        };
        (origin, line("admin token: "))
    }

    /// The environment an S3 client needs to reach this server (object_store's
    /// `AmazonS3Builder::from_env` reads exactly these).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped`, one task each.
async fn serve(listener: TcpListener, service: S3Service, mut stopped: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let socket = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(_) => continue,
            },
        };
        let service = service.clone();
        tokio::spawn(async move {
            let _ = ConnBuilder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

/// `s3s_fs::FileSystem` with its writes made atomic.
///
/// s3s-fs checks `If-None-Match: *` and `If-Match: <etag>` in `put_object`
/// and then writes without a lock, so two racing conditional writes can both
/// pass the check and both "win"; real S3, MinIO and Ceph RGW let exactly one
/// win. It also renames the new bytes into place before it records their ETag,
/// so a read in between would pair new bytes with the old ETag. Here every
/// write (put, copy, multipart completion, delete) holds a lock exclusively and
/// every read shares it, so a conditional write's check and write happen with
/// nothing in between, and a read sees bytes and ETag from the same write (a
/// GET opens its file under the lock and streams it after).
struct AtomicWrites {
    inner: s3s_fs::FileSystem,
    lock: RwLock<()>,
    reads: Arc<Reads>,
}

/// What the server's clients read: GET requests answered and their bytes.
#[derive(Debug, Default)]
pub struct Reads {
    pub gets: AtomicU64,
    pub bytes: AtomicU64,
}

#[async_trait::async_trait]
impl S3 for AtomicWrites {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let _write = self.lock.write().await;
        self.inner.put_object(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let _write = self.lock.write().await;
        self.inner.copy_object(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let _write = self.lock.write().await;
        self.inner.complete_multipart_upload(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let _write = self.lock.write().await;
        self.inner.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let _write = self.lock.write().await;
        self.inner.delete_objects(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let _read = self.lock.read().await;
        let answer = self.inner.get_object(req).await?;
        self.reads.gets.fetch_add(1, Ordering::Relaxed);
        let len = answer.output.content_length.unwrap_or(0).max(0) as u64;
        self.reads.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(answer)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let _read = self.lock.read().await;
        self.inner.head_object(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let _read = self.lock.read().await;
        self.inner.list_objects_v2(req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.inner.create_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.inner.head_bucket(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.inner.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.inner.upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let _read = self.lock.read().await;
        self.inner.list_parts(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.inner.abort_multipart_upload(req).await
    }
}
