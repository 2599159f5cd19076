//! The origin's data folder.
//!
//! ```text
//! DIR/
//!   origin.toml        public facts: format version, the origin's public key (the
//!                      newest after a rotation), `catalog_lifetime_secs` (issue 13)
//!   origin.key         the Ed25519 signing key (hex, mode 0600): never leaves this machine
//!   origin.key.next    only during `origin rotate-key` (issue 13): the new key
//!   admins.toml        administrators' names and the BLAKE3 of their tokens (issue 15);
//!                      `origin init` makes the first, named `admin`
//!   admin-token.b3     before issue 15: the first admin token's BLAKE3, adopted as `admin`
//!   admin.log          every administrator's action, one JSON line each (issue 15)
//!   fleet/             the edges' reports and the dashboard's tables (issue 15)
//!   publish.lock       held while a publish runs
//!   tls/               the QUIC certificate and its key (edges pin the certificate)
//!   edges.toml         edge names and the BLAKE3 of their tokens
//!   store/             blobs, objects and the signed catalog
//! ```
//!
//! An origin on a bucket (issue 16, `origin init --store s3://…`, named by
//! `store` in `origin.toml`) keeps the same folder, but the bucket is the
//! truth: its catalog head, objects and chunks. `store/` is then this process's
//! copy of the catalog and its metadata, brought to the head before every
//! catalog change ([`Origin::follow`]); every catalog change is written to the
//! bucket and moves its head by compare-and-swap ([`Origin::commit_catalog`]).
//! Several processes, each with a copy of the folder, share one bucket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use catalog::roots::SignedRoot;
use catalog::sign::CatalogError;
use catalog::store::{ImportBatch, StoreError};
use catalog::{Catalog, OriginKey, PublicKey, SignedCatalog, Store};
use serde::{Deserialize, Serialize};

use crate::bucket::{Bucket, Swap, block};

/// The origin's own files and folders (relative to its data folder) that no
/// course folder may publish, whatever name or hard link they appear under.
pub const PRIVATE_FILES: &[&str] = &[
    "origin.key",
    "tls",
    "tls/key.der",
    "admin-token.b3",
    "admins.toml",
    "edges.toml",
    "admin.log",
];

/// The name `origin init` gives the first administrator (issue 15).
pub const FIRST_ADMIN: &str = "admin";

/// Who may read the origin key: its owner alone.
const KEY_MODE: u32 = 0o600;

/// How long a catalog stays fresh unless `catalog_lifetime_secs` in
/// `origin.toml` says otherwise (issue 13): four weeks, so a school edge
/// cut off for a school holiday still holds a catalog in force.
pub const DEFAULT_CATALOG_LIFETIME: u64 = 28 * 86_400;

/// The sequence floor set by `--min-sequence` (issue 13), kept in the store's meta table.
pub const MIN_SEQUENCE_META: &str = "origin.min_sequence";

/// An initialized origin data folder, open.
pub struct Origin {
    dir: PathBuf,
    key: OriginKey,
    store: Store,
    /// The bucket holding the origin's content, if it is on one (issue 16).
    bucket: Option<Bucket>,
}

/// How many times a catalog change is tried again when another process
/// moved the bucket's head in between.
pub const HEAD_RETRIES: usize = 8;

/// What `origin init` hands the administrator.
pub struct InitReport {
    pub public_key: PublicKey,
    /// SHA-256 of the origin's TLS certificate, which edges pin.
    pub cert_fingerprint: String,
    /// Shown once; only its hash is kept.
    pub admin_token: String,
}

#[derive(Serialize, Deserialize)]
struct OriginToml {
    format: u32,
    public_key: String,
    /// Seconds from a catalog's publication to its expiry (issue 13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    catalog_lifetime_secs: Option<u64>,
    /// Where edges reach the origin (issue 15), for join codes.
    #[serde(default, flatten)]
    public: PublicAddresses,
    /// The bucket holding the origin's content (issue 16): `s3://bucket/prefix`.
    /// Credentials never go here: they come from the `AWS_*` environment
    /// variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<String>,
}

/// The addresses edges reach the origin at (`public_quic`, `public_https`
/// in `origin.toml`, issue 15): the origin cannot guess its public name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAddresses {
    /// `quic://HOST:PORT`.
    #[serde(
        default,
        rename = "public_quic",
        skip_serializing_if = "Option::is_none"
    )]
    pub quic: Option<String>,
    /// `https://HOST:PORT`, the fallback where UDP is blocked.
    #[serde(
        default,
        rename = "public_https",
        skip_serializing_if = "Option::is_none"
    )]
    pub https: Option<String>,
}

/// Why an origin folder could not be set up or opened.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error(
        "{path} is already an initialized origin; to start over, move it away first (its key signs every catalog edges trust)"
    )]
    AlreadyInitialized { path: PathBuf },
    #[error(
        "{path} is not an origin data folder (no origin.key); run `shanlu origin init --data {path}` first"
    )]
    NotInitialized { path: PathBuf },
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is damaged")]
    Damaged {
        path: PathBuf,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// getrandom's error implements `std::error::Error` only with its `std`
    /// feature, so it is kept as a value and shown, not chained.
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] catalog::store::StoreError),
    #[error("opening the origin's bucket {url}")]
    OpenBucket {
        url: String,
        #[source]
        source: Box<crate::bucket::OpenError>,
    },
    #[error(
        "the bucket {url} already holds an origin's catalog; to run another origin process on it, \
         copy the first origin's folder (without store/) to this machine (docs/s3.md)"
    )]
    BucketTaken { url: String },
    #[error(
        "{url}: a folder cannot move the catalog head by compare-and-swap; keep an origin's content \
         in its own folder (no --store) or in S3-compatible storage (--store s3://bucket/prefix)"
    )]
    FolderStore { url: String },
    // Boxed: these are large and rare.
    #[error(transparent)]
    Bucket(Box<crate::bucket::BucketError>),
    #[error("bringing this origin's copy up to the bucket's catalog")]
    Follow(#[source] Box<crate::bucket::follow::FollowError>),
    #[error("writing the new catalog's content into the bucket; the catalog in force is unchanged")]
    Push(#[source] Box<crate::bucket::push::PushError>),
    #[error(
        "another origin process changed the catalog {tries} times while this one tried to; \
         nothing was changed: run the command again"
    )]
    HeadMoved { tries: usize },
}

impl From<crate::bucket::BucketError> for OriginError {
    fn from(err: crate::bucket::BucketError) -> Self {
        OriginError::Bucket(Box::new(err))
    }
}

impl From<crate::bucket::follow::FollowError> for OriginError {
    fn from(err: crate::bucket::follow::FollowError) -> Self {
        OriginError::Follow(Box::new(err))
    }
}

impl From<crate::bucket::push::PushError> for OriginError {
    fn from(err: crate::bucket::push::PushError) -> Self {
        OriginError::Push(Box::new(err))
    }
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> OriginError + 'a {
    move |source| OriginError::Io {
        action,
        path: path.to_owned(),
        cause: source,
    }
}

/// A random 32-byte secret as hex.
pub fn random_token() -> Result<String, OriginError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(OriginError::Random)?;
    Ok(hex::encode(bytes))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Origin {
    /// Creates a new origin in `dir`: key, admin token, store, and an empty signed catalog.
    pub fn init(dir: &Path) -> Result<InitReport, OriginError> {
        Origin::init_with_store(dir, None)
    }

    /// [`Origin::init`], with the content in the bucket at `store` (issue 16)
    /// if given: the bucket must not hold an origin yet.
    pub fn init_with_store(dir: &Path, store_url: Option<&str>) -> Result<InitReport, OriginError> {
        let key_path = dir.join("origin.key");
        if key_path.exists() {
            return Err(OriginError::AlreadyInitialized {
                path: dir.to_owned(),
            });
        }
        if store_url.is_some_and(|url| url.starts_with("file://")) {
            return Err(OriginError::FolderStore {
                url: store_url.unwrap_or_default().to_owned(),
            });
        }
        let bucket = store_url.map(open_bucket).transpose()?;
        if let (Some(bucket), Some(url)) = (&bucket, store_url)
            && block(bucket.head())?.is_some()
        {
            return Err(OriginError::BucketTaken {
                url: url.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let key = OriginKey::generate().map_err(OriginError::Random)?;
        let admin_token = random_token()?;

        let tls =
            crate::tls::TlsIdentity::load_or_create(dir).map_err(|err| OriginError::Damaged {
                path: dir.join("tls"),
                cause: err.into(),
            })?;
        let store = Store::open(dir.join("store"))?;
        let mut first = Catalog::empty(now_secs());
        first.expires_at = first.published_at + DEFAULT_CATALOG_LIFETIME;
        let signed = key.sign(&first);
        store.commit_batch_with_catalog(ImportBatch::new(), |_| {
            Ok::<_, catalog::store::StoreError>(Some(signed.clone()))
        })?;

        crate::tokens::add_hashed(
            dir,
            crate::tokens::Book::Admins,
            FIRST_ADMIN,
            catalog::Hash::of(admin_token.as_bytes()),
        )
        .map_err(|err| OriginError::Damaged {
            path: crate::tokens::Book::Admins.path(dir),
            cause: err.into(),
        })?;
        let toml_path = dir.join("origin.toml");
        let public = OriginToml {
            format: 1,
            public_key: key.public().to_string(),
            catalog_lifetime_secs: None,
            public: PublicAddresses::default(),
            store: store_url.map(str::to_owned),
        };
        let text = toml::to_string(&public).map_err(|err| OriginError::Damaged {
            path: toml_path.clone(),
            cause: err.into(),
        })?;
        std::fs::write(&toml_path, text).map_err(io("writing", &toml_path))?;
        if let Some(bucket) = &bucket {
            // The first administrator, for every process on the bucket (kept
            // if an earlier, failed init of this bucket wrote it).
            let admins_path = crate::tokens::Book::Admins.path(dir);
            let admins = std::fs::read(&admins_path).map_err(io("reading", &admins_path))?;
            block(bucket.swap_mutable(crate::bucket::Mutable::AdminTokens, None, admins.into()))?;
        }
        // The key is written last: its presence is what marks the folder initialized.
        write_secret(&key_path, &hex::encode(key.to_bytes()))?;
        if let (Some(bucket), Some(url)) = (&bucket, store_url) {
            // Then the head, created only if absent: of two origins set up on
            // one bucket at once, one wins. The other's folder is left
            // uninitialized (without its key), so init can be run again.
            let swapped = block(bucket.swap_head(None, signed.encode().into()));
            let failed = match swapped {
                Ok(Swap::Done(_)) => None,
                Ok(Swap::Lost) => Some(OriginError::BucketTaken {
                    url: url.to_owned(),
                }),
                Err(err) => Some(err.into()),
            };
            if let Some(err) = failed {
                std::fs::remove_file(&key_path).map_err(io("removing", &key_path))?;
                return Err(err);
            }
        }
        Ok(InitReport {
            public_key: key.public(),
            cert_fingerprint: tls.fingerprint(),
            admin_token,
        })
    }

    /// Opens an initialized origin folder. A key readable by others than its
    /// owner is made owner-only again, with a warning.
    pub fn open(dir: &Path) -> Result<Origin, OriginError> {
        let Some(key) = load_key(&dir.join("origin.key"))? else {
            return Err(OriginError::NotInitialized {
                path: dir.to_owned(),
            });
        };
        adopt_first_admin(dir)?;
        let bucket = read_toml(dir)?
            .and_then(|toml| toml.store)
            .as_deref()
            .map(open_bucket)
            .transpose()?;
        // A copy of an origin's folder for another process on its bucket
        // comes without store/: it is made here and filled by following.
        let store = if bucket.is_some() {
            Store::open(dir.join("store"))?
        } else {
            Store::open_existing(dir.join("store"))?
        };
        // A rotation interrupted after its catalog committed ends here (issue 13).
        let key = crate::history::finish_rotation(dir, &store)?.unwrap_or(key);
        Ok(Origin {
            dir: dir.to_owned(),
            key,
            store,
            bucket,
        })
    }

    /// The bucket holding the origin's content, if it is on one (issue 16).
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    /// On a bucket: brings the local store to the bucket's head and returns
    /// where it stands; `None` for an origin on its local folder.
    pub fn follow(&self) -> Result<Option<crate::bucket::follow::Followed>, OriginError> {
        let Some(bucket) = &self.bucket else {
            return Ok(None);
        };
        Ok(Some(crate::bucket::follow::follow(
            bucket,
            &self.store,
            &self.public_key(),
        )?))
    }

    /// Every change of the catalog in force goes through here: `batch` and
    /// what `update` returns for the catalog in force are committed in one
    /// index transaction. On a bucket, the local store first follows the
    /// bucket's head; the new catalog's content is written into the bucket
    /// and the head moved by compare-and-swap before the local commit. If
    /// another process moved the head in between, nothing is committed and
    /// [`OriginError::HeadMoved`] comes back: call again (see
    /// [`Origin::retrying`]).
    /// `lift` turns the origin's own errors into the caller's.
    pub fn commit_catalog<E: From<StoreError>>(
        &self,
        batch: ImportBatch,
        update: impl FnOnce(Option<SignedCatalog>) -> Result<Option<SignedCatalog>, E>,
        lift: impl Fn(OriginError) -> E,
    ) -> Result<Option<SignedCatalog>, E> {
        let Some(bucket) = &self.bucket else {
            return self.store.commit_batch_with_catalog(batch, update);
        };
        // Blobs and objects first: content-addressed, harmless if the head
        // then cannot move.
        self.store.commit_batch(batch)?;
        let followed = self
            .follow()
            .map_err(&lift)?
            .expect("an origin on a bucket follows it");
        self.store
            .commit_batch_with_catalog(ImportBatch::new(), |held| {
                let Some(signed) = update(held)? else {
                    return Ok(None);
                };
                let catalog = signed.verify(&self.public_key()).map_err(|err| {
                    lift(OriginError::Damaged {
                        path: self.dir.join("store"),
                        cause: err.into(),
                    })
                })?;
                let pushed = crate::bucket::push::push_catalog(
                    bucket,
                    &self.store,
                    &catalog,
                    Some(&followed.catalog),
                    &|_| {},
                )
                .map_err(|err| lift(err.into()))?;
                match block(bucket.swap_head(Some(&followed.version), signed.encode().into()))
                    .map_err(|err| lift(err.into()))?
                {
                    Swap::Done(_) => {
                        tracing::info!(
                            sequence = catalog.sequence,
                            chunks = pushed.chunks,
                            chunk_bytes = pushed.chunk_bytes,
                            objects = pushed.objects,
                            "moved the bucket's catalog head"
                        );
                        Ok(Some(signed))
                    }
                    Swap::Lost => Err(lift(OriginError::HeadMoved { tries: 1 })),
                }
            })
    }

    /// Runs `change` (which calls [`Origin::commit_catalog`]) again while
    /// another process moved the bucket's head in between, up to
    /// [`HEAD_RETRIES`] times.
    pub fn retrying<T, E: From<OriginError>>(
        &self,
        mut change: impl FnMut() -> Result<T, E>,
        head_moved: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        for attempt in 1..=HEAD_RETRIES {
            match change() {
                Err(err) if head_moved(&err) => {
                    tracing::info!(
                        attempt,
                        "another origin process moved the catalog head; trying again"
                    );
                    // Spread the racers apart.
                    std::thread::sleep(std::time::Duration::from_millis(
                        20 * attempt as u64 + u64::from(std::process::id() % 20),
                    ));
                }
                done => return done,
            }
        }
        Err(OriginError::HeadMoved {
            tries: HEAD_RETRIES,
        }
        .into())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> &OriginKey {
        &self.key
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Seconds from publication to expiry: `catalog_lifetime_secs` in
    /// `origin.toml`, else [`DEFAULT_CATALOG_LIFETIME`].
    pub fn catalog_lifetime(&self) -> Result<u64, OriginError> {
        Ok(read_toml(&self.dir)?
            .and_then(|toml| toml.catalog_lifetime_secs)
            .unwrap_or(DEFAULT_CATALOG_LIFETIME)
            .max(1))
    }

    /// The sequence floor set by `--min-sequence`, 0 if none.
    pub fn sequence_floor(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .meta(MIN_SEQUENCE_META)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// Raises the sequence floor to `floor` (never lowers it).
    pub fn raise_sequence_floor(&self, floor: u64) -> Result<(), StoreError> {
        if floor > self.sequence_floor()? {
            self.store
                .set_meta(MIN_SEQUENCE_META, &floor.to_le_bytes())?;
        }
        Ok(())
    }

    /// What every new catalog starts from (issue 13): the catalog in force
    /// `held`, verified with this origin's key, at the next sequence (at
    /// least the floor), stamped now with a fresh expiry. Also the key
    /// roots it must carry. The caller holds the publish lock.
    pub fn next_catalog(
        &self,
        held: Option<SignedCatalog>,
        floor: u64,
        lifetime: u64,
    ) -> Result<(Catalog, Vec<SignedRoot>), CatalogError> {
        let (mut catalog, roots) = match held {
            Some(signed) => (signed.verify(&self.public_key())?, signed.roots),
            None => (Catalog::empty(now_secs()), Vec::new()),
        };
        catalog.sequence = (catalog.sequence + 1).max(floor);
        catalog.published_at = now_secs().max(catalog.published_at);
        catalog.expires_at = catalog.published_at.saturating_add(lifetime);
        prune_tombstones(&mut catalog);
        Ok((catalog, roots))
    }

    /// Replaces the key in memory after `origin rotate-key` committed.
    pub(crate) fn set_key(&mut self, key: OriginKey) {
        self.key = key;
    }
}

/// An origin made before issue 15 kept its one admin token's hash in
/// `admin-token.b3`: it becomes the administrator named [`FIRST_ADMIN`].
fn adopt_first_admin(dir: &Path) -> Result<(), OriginError> {
    let old = dir.join("admin-token.b3");
    let text = match std::fs::read_to_string(&old) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(cause) => return Err(io("reading", &old)(cause)),
    };
    let damaged = |cause: Box<dyn std::error::Error + Send + Sync>| OriginError::Damaged {
        path: old.clone(),
        cause,
    };
    let hash: catalog::Hash = text.trim().parse().map_err(|err| damaged(Box::new(err)))?;
    crate::tokens::add_hashed(dir, crate::tokens::Book::Admins, FIRST_ADMIN, hash)
        .map_err(|err| damaged(err.into()))?;
    std::fs::remove_file(&old).map_err(io("removing", &old))
}

/// How long a withdrawn course's tombstone stays in the catalog: long enough
/// for an edge offline for a school year to learn why the course went.
pub const TOMBSTONE_KEEP_SECS: u64 = 400 * 24 * 3600;
/// The most tombstones a catalog carries; the oldest go first.
pub const MAX_TOMBSTONES: usize = 1_000;

/// Drops tombstones older than [`TOMBSTONE_KEEP_SECS`] and, past
/// [`MAX_TOMBSTONES`], the oldest. A course without its tombstone is still
/// gone from the catalog; only the reason shown on edges' status pages goes.
fn prune_tombstones(catalog: &mut Catalog) {
    let cutoff = catalog.published_at.saturating_sub(TOMBSTONE_KEEP_SECS);
    catalog.withdrawn.retain(|_, t| t.withdrawn_at >= cutoff);
    if catalog.withdrawn.len() > MAX_TOMBSTONES {
        let mut ages: Vec<(u64, String)> = catalog
            .withdrawn
            .iter()
            .map(|(id, t)| (t.withdrawn_at, id.clone()))
            .collect();
        ages.sort();
        let excess = catalog.withdrawn.len() - MAX_TOMBSTONES;
        for (_, id) in ages.into_iter().take(excess) {
            catalog.withdrawn.remove(&id);
        }
    }
}

fn open_bucket(url: &str) -> Result<Bucket, OriginError> {
    Bucket::from_url(url).map_err(|source| OriginError::OpenBucket {
        url: url.to_owned(),
        source: Box::new(source),
    })
}

/// The bucket URL `origin.toml` in `dir` names (issue 16), if any.
pub fn store_url(dir: &Path) -> Result<Option<String>, OriginError> {
    Ok(read_toml(dir)?.and_then(|toml| toml.store))
}

/// Names the bucket holding the origin's content in `origin.toml` (after
/// `origin migrate`), keeping its other settings.
pub(crate) fn set_store_url(dir: &Path, url: &str) -> Result<(), OriginError> {
    let Some(mut toml) = read_toml(dir)? else {
        return Err(OriginError::NotInitialized {
            path: dir.to_owned(),
        });
    };
    toml.store = Some(url.to_owned());
    replace_toml(dir, &toml)
}

/// `DIR/origin.toml`, if present.
fn read_toml(dir: &Path) -> Result<Option<OriginToml>, OriginError> {
    let path = dir.join("origin.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OriginError::Io {
                action: "reading",
                path,
                cause: source,
            });
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|err| OriginError::Damaged {
            path,
            cause: Box::new(err),
        })
}

/// Rewrites `DIR/origin.toml` with a new public key, keeping its other settings.
pub(crate) fn write_public_key(dir: &Path, key: &PublicKey) -> Result<(), OriginError> {
    let mut toml = read_toml(dir)?.unwrap_or(OriginToml {
        format: 1,
        public_key: String::new(),
        catalog_lifetime_secs: None,
        public: PublicAddresses::default(),
        store: None,
    });
    toml.public_key = key.to_string();
    replace_toml(dir, &toml)
}

fn replace_toml(dir: &Path, toml: &OriginToml) -> Result<(), OriginError> {
    let path = dir.join("origin.toml");
    let text = toml::to_string(toml).map_err(|err| OriginError::Damaged {
        path: path.clone(),
        cause: err.into(),
    })?;
    let tmp = dir.join("origin.toml.tmp");
    std::fs::write(&tmp, text).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("replacing", &path))
}

/// The addresses edges reach the origin in `dir` at (issue 15); empty if
/// `origin.toml` names none.
pub fn public_addresses(dir: &Path) -> Result<PublicAddresses, OriginError> {
    Ok(read_toml(dir)?.map(|toml| toml.public).unwrap_or_default())
}

/// Records the addresses edges reach the origin at in `origin.toml`,
/// keeping its other settings; `None` keeps an address already there.
/// The caller checks them ([`crate::join::Address::parse`]).
pub fn set_public_addresses(dir: &Path, addresses: &PublicAddresses) -> Result<(), OriginError> {
    let Some(mut toml) = read_toml(dir)? else {
        return Err(OriginError::NotInitialized {
            path: dir.to_owned(),
        });
    };
    if addresses.quic.is_some() {
        toml.public.quic.clone_from(&addresses.quic);
    }
    if addresses.https.is_some() {
        toml.public.https.clone_from(&addresses.https);
    }
    replace_toml(dir, &toml)
}

/// Reads the origin's public key from `DIR/origin.toml`, if `dir` is an origin folder.
pub fn read_public_key(dir: &Path) -> Result<Option<PublicKey>, OriginError> {
    let path = dir.join("origin.toml");
    let Some(parsed) = read_toml(dir)? else {
        return Ok(None);
    };
    parsed
        .public_key
        .parse()
        .map(Some)
        .map_err(|err: catalog::sign::KeyError| OriginError::Damaged {
            path,
            cause: err.into(),
        })
}

/// Reads an origin key file; `None` if there is none.
pub(crate) fn load_key(key_path: &Path) -> Result<Option<OriginKey>, OriginError> {
    let text = match read_key(key_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OriginError::Io {
                action: "reading",
                path: key_path.to_owned(),
                cause: source,
            });
        }
    };
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).map_err(|_| OriginError::Damaged {
        path: key_path.to_owned(),
        cause: Box::new(catalog::sign::KeyError::Format),
    })?;
    Ok(Some(OriginKey::from_bytes(&secret)))
}

/// Reads the origin key, first making it readable by its owner only if it was not.
pub(crate) fn read_key(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & !KEY_MODE != 0 {
        // On the open file: the file checked is the file changed.
        file.set_permissions(std::fs::Permissions::from_mode(KEY_MODE))?;
        tracing::warn!(
            key = %path.display(),
            was = format_args!("{mode:04o}"),
            "the origin key was readable by others than its owner; it is now 0600 (owner only). Anyone who could read it could sign catalogs: if that may have happened, rotate the key"
        );
    }
    let mut text = String::new();
    // The key is 64 hex digits; a much larger file is not a key.
    file.take(4096).read_to_string(&mut text)?;
    Ok(text)
}

/// Writes a secret readable only by its owner.
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), OriginError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("creating", path))?;
    file.write_all(text.as_bytes())
        .map_err(io("writing", path))?;
    file.sync_all().map_err(io("syncing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 13: tombstones are bounded: older than the keep time, or past
    /// the most a catalog carries (oldest first), they go.
    #[test]
    fn issue_13_tombstones_are_pruned_by_age_then_count() {
        let now = 2_000_000_000;
        let mut catalog = Catalog::empty(now);
        let stone = |at| catalog::Tombstone {
            withdrawn_at: at,
            reason: "r".into(),
            last_version: 1,
        };
        catalog
            .withdrawn
            .insert("old".into(), stone(now - TOMBSTONE_KEEP_SECS - 1));
        catalog
            .withdrawn
            .insert("kept".into(), stone(now - TOMBSTONE_KEEP_SECS));
        prune_tombstones(&mut catalog);
        assert_eq!(catalog.withdrawn.keys().collect::<Vec<_>>(), ["kept"]);
        for i in 0..MAX_TOMBSTONES + 5 {
            catalog
                .withdrawn
                .insert(format!("c{i:05}"), stone(now - 10_000 + i as u64));
        }
        prune_tombstones(&mut catalog);
        assert_eq!(catalog.withdrawn.len(), MAX_TOMBSTONES);
        assert!(
            !catalog.withdrawn.contains_key("kept"),
            "the oldest went first"
        );
        assert!(
            catalog
                .withdrawn
                .contains_key(&format!("c{:05}", MAX_TOMBSTONES + 4))
        );
        assert!(!catalog.withdrawn.contains_key("c00004"));
        assert!(catalog.withdrawn.contains_key("c00005"));
    }

    #[test]
    fn init_then_open_gives_the_same_key_and_an_empty_signed_catalog() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = Origin::init(dir.path()).expect("init");
        assert_eq!(report.admin_token.len(), 64);
        let origin = Origin::open(dir.path()).expect("open");
        assert_eq!(origin.public_key(), report.public_key);
        assert_eq!(
            read_public_key(dir.path()).expect("read"),
            Some(report.public_key)
        );
        let signed = origin
            .store()
            .signed_catalog()
            .expect("read")
            .expect("catalog");
        let catalog = signed
            .verify(&report.public_key)
            .expect("signed by the origin");
        assert_eq!(catalog.sequence, 0);
        assert!(catalog.courses.is_empty());
        let stored = std::fs::read_to_string(dir.path().join("admins.toml")).expect("read");
        assert!(
            !stored.contains(&report.admin_token),
            "only its hash is kept"
        );
        let admins = crate::tokens::Tokens::admins(dir.path());
        assert_eq!(
            admins.check(&report.admin_token).expect("check"),
            Some(FIRST_ADMIN.to_owned())
        );
        assert_eq!(admins.check("another").expect("check"), None);
    }

    /// Issue 15: an origin made before named admin tokens kept its admin
    /// token's hash in `admin-token.b3`; opening it adopts that token as the
    /// administrator `admin`, and it keeps working.
    #[test]
    fn issue_15_an_older_origins_admin_token_becomes_the_admin_named_admin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = Origin::init(dir.path()).expect("init");
        std::fs::remove_file(dir.path().join("admins.toml")).expect("as before issue 15");
        std::fs::write(
            dir.path().join("admin-token.b3"),
            catalog::Hash::of(report.admin_token.as_bytes()).to_hex(),
        )
        .expect("write");
        Origin::open(dir.path()).expect("open");
        assert!(!dir.path().join("admin-token.b3").exists());
        let admins = crate::tokens::Tokens::admins(dir.path());
        assert_eq!(
            admins.check(&report.admin_token).expect("check"),
            Some(FIRST_ADMIN.to_owned())
        );
        // Opening again changes nothing.
        Origin::open(dir.path()).expect("open");
        let listed = crate::tokens::list(dir.path(), crate::tokens::Book::Admins).expect("list");
        assert_eq!(listed.len(), 1);
    }

    #[test]
    fn init_refuses_to_overwrite_an_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Origin::init(dir.path()).expect("init");
        let err = Origin::init(dir.path()).err().expect("second init fails");
        assert!(matches!(err, OriginError::AlreadyInitialized { .. }));
        assert_eq!(
            Origin::open(dir.path()).expect("open").public_key(),
            first.public_key
        );
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn issue_11_the_origin_key_is_owner_only_and_made_so_again_on_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let report = Origin::init(dir.path()).expect("init");
        let key_path = dir.path().join("origin.key");
        assert_eq!(mode(&key_path), 0o600, "init writes the key owner-only");
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644))
            .expect("loosen");
        let origin = Origin::open(dir.path()).expect("open");
        assert_eq!(origin.public_key(), report.public_key);
        assert_eq!(mode(&key_path), 0o600, "open tightens a loosened key");
    }

    #[test]
    fn opening_an_empty_folder_says_to_init() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Origin::open(dir.path()).err().expect("not initialized");
        assert!(err.to_string().contains("shanlu origin init"), "{err}");
    }
}
