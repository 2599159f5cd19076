//! `shanlu verify` of an origin on a bucket (issue 16): the catalog head
//! verifies with the origin's key, and everything it reaches is in the
//! bucket and hashes to its name: courses, lessons, manifests and every chunk
//! (read whole). After a publish killed at any point this still holds: the
//! head only ever names what was written before it moved.

use std::collections::HashSet;

use catalog::{Hash, Object, PublicKey, SignedCatalog};
use futures_util::StreamExt;

use super::{Bucket, BucketError, Kind, block};

/// Chunks read at once.
const READING: usize = 16;

/// What a bucket verify found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BucketReport {
    pub head_sequence: Option<u64>,
    pub objects_checked: u64,
    pub chunks_checked: u64,
    pub chunk_bytes_checked: u64,
    /// One line per problem, naming the key and what to do.
    pub problems: Vec<String>,
}

/// Checks the bucket's head and everything it reaches; `progress` gets the
/// bytes of each chunk checked. Problems are collected, not returned as errors;
/// an error means the bucket could not be read at all.
pub fn verify(
    bucket: &Bucket,
    key: &PublicKey,
    progress: &mut dyn FnMut(u64),
) -> Result<BucketReport, BucketError> {
    let mut report = BucketReport::default();
    let Some((bytes, _)) = block(bucket.head())? else {
        report
            .problems
            .push(format!("{}: no catalog head", bucket.head_key()));
        return Ok(report);
    };
    let catalog = match SignedCatalog::decode(&bytes).and_then(|signed| signed.verify(key)) {
        Ok(catalog) => catalog,
        Err(err) => {
            report.problems.push(format!(
                "{}: does not verify with the origin's key: {}",
                bucket.head_key(),
                catalog::format::error_chain(&err)
            ));
            return Ok(report);
        }
    };
    report.head_sequence = Some(catalog.sequence);
    let mut seen = HashSet::new();
    let mut chunks = HashSet::new();
    let mut lessons = Vec::new();
    for entry in catalog.courses.values() {
        let Some(Object::Course(course)) = object(bucket, entry.hash, &mut seen, &mut report)?
        else {
            continue;
        };
        lessons.extend(course.lessons.iter().map(|l| l.hash));
        for file in &course.files {
            manifest(bucket, file.manifest, &mut seen, &mut chunks, &mut report)?;
        }
    }
    for hash in lessons {
        let Some(Object::Lesson(lesson)) = object(bucket, hash, &mut seen, &mut report)? else {
            continue;
        };
        for file in &lesson.files {
            manifest(bucket, file.manifest, &mut seen, &mut chunks, &mut report)?;
        }
    }
    block(async {
        let mut checked = futures_util::stream::iter(chunks)
            .map(|hash| async move {
                let got = bucket.get(Kind::Chunk, &hash).await;
                (hash, got.map(|found| found.map(|bytes| bytes.len())))
            })
            .buffer_unordered(READING);
        while let Some((hash, got)) = checked.next().await {
            match got {
                Ok(Some(len)) => {
                    report.chunks_checked += 1;
                    report.chunk_bytes_checked += len as u64;
                    progress(len as u64);
                }
                Ok(None) => report.problems.push(format!(
                    "{}: missing; publish the course again to write it",
                    bucket.key(Kind::Chunk, &hash)
                )),
                Err(err @ BucketError::Corrupt { .. }) => {
                    report.problems.push(catalog::format::error_chain(&err));
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// Reads and checks one metadata object (once); `None` after a problem.
fn object(
    bucket: &Bucket,
    hash: Hash,
    seen: &mut HashSet<Hash>,
    report: &mut BucketReport,
) -> Result<Option<Object>, BucketError> {
    if !seen.insert(hash) {
        return Ok(None);
    }
    let key = bucket.key(Kind::Object, &hash);
    match block(bucket.get(Kind::Object, &hash)) {
        Ok(Some(bytes)) => {
            report.objects_checked += 1;
            match Object::decode(&bytes) {
                Ok(object) => Ok(Some(object)),
                Err(err) => {
                    report.problems.push(format!("{key}: not an object: {err}"));
                    Ok(None)
                }
            }
        }
        Ok(None) => {
            report.problems.push(format!(
                "{key}: missing; publish the course that names it again"
            ));
            Ok(None)
        }
        Err(err @ BucketError::Corrupt { .. }) => {
            report.problems.push(catalog::format::error_chain(&err));
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn manifest(
    bucket: &Bucket,
    hash: Hash,
    seen: &mut HashSet<Hash>,
    chunks: &mut HashSet<Hash>,
    report: &mut BucketReport,
) -> Result<(), BucketError> {
    if let Some(Object::Manifest(manifest)) = object(bucket, hash, seen, report)? {
        chunks.extend(manifest.chunks.iter().map(|c| c.hash));
    }
    Ok(())
}
