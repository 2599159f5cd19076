//! `shanlu origin migrate --to s3://…` (issue 16): moving an origin that
//! keeps its content in its folder onto a bucket.
//!
//! 1. Under the publish lock, every course of the catalog in force is written
//!    into the bucket, children first ([`super::push`]); what the bucket
//!    holds already is not sent again, so a migration cut off (a dropped
//!    link, `kill -9`) resumes where it stopped when run again.
//! 2. The head is created with the catalog in force, only if the bucket has
//!    none (or already holds exactly it: a run cut off after this step).
//! 3. The token books go into the bucket (replacing what a run cut off
//!    earlier left there: the folder's books are the truth until the end).
//! 4. The bucket is verified ([`super::verify`]): head, objects, every chunk.
//! 5. Only then does `origin.toml` name the bucket: from the next start the
//!    origin serves and publishes through it. Until then it is unchanged.

use catalog::Catalog;

use super::push::{Progress, Pushed, push_catalog};
use super::verify::{BucketReport, verify};
use super::{Bucket, Mutable, Swap, block};
use crate::origin::{Origin, OriginError};
use crate::tokens::Book;

/// What a migration did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migrated {
    /// The catalog sequence now at the bucket's head.
    pub sequence: u64,
    /// What was written this run (a resumed run writes only what was left).
    pub pushed: Pushed,
    pub verified: BucketReport,
}

/// Why a migration stopped; the origin is unchanged and can be migrated again.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error(transparent)]
    Publish(Box<crate::publish::PublishError>),
    #[error("{url} names the origin's content already; it is on a bucket")]
    Already { url: String },
    #[error(
        "the bucket already holds another catalog (sequence {theirs}, this origin's is {ours}): \
         it belongs to another origin, or this one published since an earlier migration; give \
         an empty prefix"
    )]
    Taken { ours: u64, theirs: u64 },
    #[error("the bucket does not verify after the migration; origin.toml is unchanged: {problems}")]
    Unverified { problems: String },
}

/// Moves `origin` (on its folder) onto the bucket at `url`; `progress` gets
/// the bytes of each file written or found written, then of each chunk verified.
pub fn migrate(
    origin: &Origin,
    url: &str,
    progress: Progress<'_>,
    verifying: &mut dyn FnMut(u64),
) -> Result<Migrated, MigrateError> {
    if let Some(url) = crate::origin::store_url(origin.dir())? {
        return Err(MigrateError::Already { url });
    }
    if url.starts_with("file://") {
        return Err(OriginError::FolderStore {
            url: url.to_owned(),
        }
        .into());
    }
    let bucket = Bucket::from_url(url).map_err(|source| OriginError::OpenBucket {
        url: url.to_owned(),
        source: Box::new(source),
    })?;
    let _lock = crate::publish::lock(origin)?;
    let store = origin.store();
    let Some(signed) = store.signed_catalog().map_err(OriginError::from)? else {
        return Err(OriginError::NotInitialized {
            path: origin.dir().to_owned(),
        }
        .into());
    };
    let catalog: Catalog = crate::publish::current_catalog(origin)?;
    let pushed =
        push_catalog(&bucket, store, &catalog, None, progress).map_err(OriginError::from)?;

    let bytes = signed.encode();
    match block(bucket.head()).map_err(OriginError::from)? {
        None => {
            if block(bucket.swap_head(None, bytes.clone().into())).map_err(OriginError::from)?
                == Swap::Lost
            {
                return Err(taken(&bucket, catalog.sequence));
            }
        }
        Some((held, _)) if held[..] == bytes[..] => {}
        Some(_) => return Err(taken(&bucket, catalog.sequence)),
    }
    for book in [Book::Edges, Book::Admins] {
        let path = book.path(origin.dir());
        let local = match std::fs::read(&path) {
            Ok(local) => local,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(cause) => return Err(crate::origin::io("reading", &path)(cause).into()),
        };
        let which = match book {
            Book::Edges => Mutable::EdgeTokens,
            Book::Admins => Mutable::AdminTokens,
        };
        // Until the migration succeeds the folder's book is the truth: a
        // run cut off earlier may have left an older copy in the bucket.
        let held = block(bucket.read_mutable(which)).map_err(OriginError::from)?;
        let expected = match &held {
            Some((bytes, _)) if bytes[..] == local[..] => continue,
            Some((_, version)) => Some(version),
            None => None,
        };
        if block(bucket.swap_mutable(which, expected, local.into())).map_err(OriginError::from)?
            == Swap::Lost
        {
            return Err(taken(&bucket, catalog.sequence));
        }
    }
    let verified = verify(&bucket, &origin.public_key(), verifying).map_err(OriginError::from)?;
    if !verified.problems.is_empty() {
        return Err(MigrateError::Unverified {
            problems: verified.problems.join("; "),
        });
    }
    crate::origin::set_store_url(origin.dir(), url)?;
    Ok(Migrated {
        sequence: catalog.sequence,
        pushed,
        verified,
    })
}

impl From<crate::publish::PublishError> for MigrateError {
    fn from(err: crate::publish::PublishError) -> Self {
        MigrateError::Publish(Box::new(err))
    }
}

fn taken(bucket: &Bucket, ours: u64) -> MigrateError {
    let theirs = block(bucket.head())
        .ok()
        .flatten()
        .and_then(|(bytes, _)| catalog::SignedCatalog::decode(&bytes).ok())
        .and_then(|signed| catalog::Object::decode(&signed.catalog).ok())
        .and_then(|object| object.into_catalog().ok())
        .map_or(0, |catalog| catalog.sequence);
    MigrateError::Taken { ours, theirs }
}
