//! The metadata an edge lacks, computed from the catalog it says it holds
//! (issue 12): the answer to [`crate::protocol::Request::CatalogSince`].
//!
//! The edge names the course objects of its catalog. Every course the new
//! catalog names that is not among them is new to the edge; of such a course,
//! the lessons and manifests that no course the edge holds reaches are new
//! too. The origin keeps old course objects in its store, so it can walk
//! the edge's courses; a course it no longer holds only makes the answer
//! larger (the edge skips objects it already has). Unchanged courses are not
//! walked at all, so a one-page edit costs a walk of one course.
//!
//! The answer is bounded ([`MAX_SINCE_OBJECTS`], [`MAX_SINCE_BYTES`]); the
//! edge walks the new catalog anyway and asks for whatever is still missing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use catalog::format::error_chain;
use catalog::object::DecodeError;
use catalog::sign::CatalogError;
use catalog::store::StoreError;
use catalog::{Catalog, Hash, Store};
use tracing::warn;

use crate::pace::TokenBucket;
use crate::protocol::{self, FrameError, MAX_HASHES, MAX_SINCE_BYTES, MAX_SINCE_OBJECTS, Response};
use crate::serve::State;

/// Why the origin cannot answer an edge's request for the catalog. Sent to
/// the edge as its chain (`Response::Error`) and logged the same way.
#[derive(Debug, thiserror::Error)]
pub enum CatalogReadError {
    #[error("reading the catalog in force from the origin's store")]
    Store(#[source] StoreError),
    #[error(
        "the catalog in force in the origin's store is damaged; run `shanlu verify` on the origin's data folder"
    )]
    Signed(#[source] CatalogError),
    #[error(
        "the catalog object in force in the origin's store is damaged; run `shanlu verify` on the origin's data folder"
    )]
    Object(#[source] DecodeError),
    #[error("walking the courses the edge holds in the origin's store")]
    Walk(#[source] StoreError),
    #[error("the origin's catalog reader stopped")]
    Stopped(#[source] tokio::task::JoinError),
}

/// The hashes of the metadata objects reachable from `catalog` and not from
/// the courses `have` (at most [`MAX_HASHES`] of them are looked at): new
/// courses first, then their lessons, then manifests, at most
/// [`MAX_SINCE_OBJECTS`]. An object the origin cannot read or decode is
/// left out (the edge's walk then asks for it and is told it is missing).
pub fn objects_since(
    store: &Store,
    catalog: &Catalog,
    have: &[Hash],
) -> Result<Vec<Hash>, StoreError> {
    let have: HashSet<Hash> = have.iter().take(MAX_HASHES).copied().collect();
    // What the edge's courses reach.
    let mut held: HashSet<Hash> = HashSet::new();
    for hash in &have {
        let Some(course) = store.object(hash)?.and_then(|o| o.into_course().ok()) else {
            continue;
        };
        held.extend(course.files.iter().map(|f| f.manifest));
        for lesson in &course.lessons {
            if !held.insert(lesson.hash) {
                continue;
            }
            if let Some(lesson) = store
                .object(&lesson.hash)?
                .and_then(|o| o.into_lesson().ok())
            {
                held.extend(lesson.files.iter().map(|f| f.manifest));
            }
        }
    }
    let mut courses = Vec::new();
    let mut lessons = Vec::new();
    let mut manifests = Vec::new();
    let mut seen: HashSet<Hash> = HashSet::new();
    let fresh = |hash: Hash, seen: &mut HashSet<Hash>| !held.contains(&hash) && seen.insert(hash);
    for entry in catalog.courses.values() {
        if have.contains(&entry.hash) || !fresh(entry.hash, &mut seen) {
            continue;
        }
        courses.push(entry.hash);
        let Some(course) = store
            .object(&entry.hash)?
            .and_then(|o| o.into_course().ok())
        else {
            continue;
        };
        for file in &course.files {
            if fresh(file.manifest, &mut seen) {
                manifests.push(file.manifest);
            }
        }
        for lesson in &course.lessons {
            if !fresh(lesson.hash, &mut seen) {
                continue;
            }
            lessons.push(lesson.hash);
            if let Some(lesson) = store
                .object(&lesson.hash)?
                .and_then(|o| o.into_lesson().ok())
            {
                for file in &lesson.files {
                    if fresh(file.manifest, &mut seen) {
                        manifests.push(file.manifest);
                    }
                }
            }
        }
        if courses.len() + lessons.len() + manifests.len() >= MAX_SINCE_OBJECTS {
            break;
        }
    }
    let mut all = courses;
    all.append(&mut lessons);
    all.append(&mut manifests);
    all.truncate(MAX_SINCE_OBJECTS);
    Ok(all)
}

/// Writes the answer to a `CatalogSince`: the catalog frame, then the
/// objects the edge lacks (none when its catalog is current), each paid for
/// from `pace` first. Fails only if `send` fails.
pub async fn answer(
    have_sequence: Option<u64>,
    have_courses: Vec<Hash>,
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    if have_courses.len() > MAX_HASHES {
        let message = format!(
            "{} course hashes in one request; the limit is {MAX_HASHES}",
            have_courses.len()
        );
        return protocol::write_frame(send, &Response::Error { message }).await;
    }
    let store_state = state.clone();
    let found = tokio::task::spawn_blocking(move || {
        let signed = current_catalog(&store_state.store, have_sequence)?;
        let Some(bytes) = signed else {
            return Ok((None, Vec::new()));
        };
        let catalog = decode_catalog(&bytes)?;
        let objects = objects_since(&store_state.store, &catalog, &have_courses)
            .map_err(CatalogReadError::Walk)?;
        Ok((Some(bytes), objects))
    })
    .await
    .unwrap_or_else(|err| Err(CatalogReadError::Stopped(err)));
    let (signed, objects) = match found {
        Ok(found) => found,
        Err(err) => {
            let message = error_chain(&err);
            warn!(cause = %message, "cannot answer a catalog-since request");
            return protocol::write_frame(send, &Response::Error { message }).await;
        }
    };
    protocol::write_frame_paced(send, &Response::Catalog { signed }, pace).await?;
    let mut sent_bytes = 0usize;
    for hash in objects {
        let store_state = state.clone();
        let bytes = match tokio::task::spawn_blocking(move || store_state.store.object_bytes(&hash))
            .await
        {
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Err(err)) => {
                warn!(%hash, cause = %err, "cannot read an object; the edge will ask for it");
                continue;
            }
            Ok(Ok(None)) | Err(_) => continue,
        };
        sent_bytes += bytes.len();
        if sent_bytes > MAX_SINCE_BYTES {
            break;
        }
        state.stats.objects_served.fetch_add(1, Ordering::Relaxed);
        protocol::write_frame_paced(send, &Response::Object { hash, bytes }, pace).await?;
    }
    Ok(())
}

/// The encoded signed catalog, unless the edge already has this sequence.
/// A lower sequence than the edge's is sent too, so the edge refuses it as a
/// rollback and says so, instead of quietly keeping its own (issue 13: an
/// origin restored from a backup).
pub fn current_catalog(
    store: &Store,
    have_sequence: Option<u64>,
) -> Result<Option<Vec<u8>>, CatalogReadError> {
    let Some(bytes) = store
        .signed_catalog_bytes()
        .map_err(CatalogReadError::Store)?
    else {
        return Ok(None);
    };
    if let Some(have) = have_sequence
        && decode_catalog(&bytes)?.sequence == have
    {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// The catalog inside the encoded signed catalog the store holds (its
/// signature was checked when it was published).
fn decode_catalog(bytes: &[u8]) -> Result<Catalog, CatalogReadError> {
    let signed = catalog::SignedCatalog::decode(bytes).map_err(CatalogReadError::Signed)?;
    catalog::Object::decode(&signed.catalog)
        .and_then(catalog::Object::into_catalog)
        .map_err(CatalogReadError::Object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Origin;
    use catalog::store::ImportMode;
    use std::path::Path;

    fn write(dir: &Path, rel: &str, bytes: &[u8]) {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    fn publish(origin: &Origin, src: &Path) -> Catalog {
        crate::publish(
            origin,
            src,
            ImportMode::Rehash,
            &indicatif::ProgressBar::hidden(),
        )
        .expect("publish");
        let signed = origin
            .store()
            .signed_catalog()
            .expect("store")
            .expect("catalog");
        catalog::Object::decode(&signed.catalog)
            .and_then(catalog::Object::into_catalog)
            .expect("catalog decodes")
    }

    fn course_hashes(catalog: &Catalog) -> Vec<Hash> {
        catalog.courses.values().map(|entry| entry.hash).collect()
    }

    /// A new origin in a temporary folder (kept while the folder lives).
    fn new_origin() -> (tempfile::TempDir, Origin) {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin_dir = dir.path().join("origin");
        Origin::init(&origin_dir).expect("init");
        let origin = Origin::open(&origin_dir).expect("open");
        (dir, origin)
    }

    /// Issue 12: after a one-page edit, the answer is the new course, the
    /// edited lesson and the page's manifest, nothing else; an edge with no
    /// catalog gets every object, courses before lessons before manifests.
    #[test]
    fn a_one_page_edit_sends_the_course_the_lesson_and_the_manifest_issue_12() {
        let (dir, origin) = new_origin();
        let src = dir.path().join("math");
        write(&src, "01-count/index.html", b"<p>one</p>");
        write(&src, "01-count/picture.svg", b"<svg/>");
        write(&src, "02-add/index.html", b"<p>two</p>");
        let first = publish(&origin, &src);
        let store = origin.store();

        let everything = objects_since(store, &first, &[]).expect("walk");
        // One course, two lessons, three manifests.
        assert_eq!(everything.len(), 6, "{everything:?}");
        let course = store
            .object(&everything[0])
            .expect("store")
            .expect("held")
            .into_course()
            .expect("courses come first");
        assert_eq!(course.lessons.len(), 2);
        assert_eq!(
            objects_since(store, &first, &course_hashes(&first)).expect("walk"),
            Vec::<Hash>::new(),
            "an edge holding this catalog lacks nothing"
        );

        write(&src, "01-count/index.html", b"<p>one, edited</p>");
        let second = publish(&origin, &src);
        let diff = objects_since(store, &second, &course_hashes(&first)).expect("walk");
        assert_eq!(diff.len(), 3, "{diff:?}");
        let kinds: Vec<&str> = diff
            .iter()
            .map(
                |hash| match store.object(hash).expect("store").expect("held") {
                    catalog::Object::Course(_) => "course",
                    catalog::Object::Lesson(lesson) => {
                        assert_eq!(lesson.id, course.lessons[0].id, "the edited lesson");
                        "lesson"
                    }
                    catalog::Object::Manifest(_) => "manifest",
                    other => panic!("unexpected {other:?}"),
                },
            )
            .collect();
        assert_eq!(kinds, ["course", "lesson", "manifest"]);
        assert_eq!(diff[0], course_hashes(&second)[0]);
    }

    /// A course the origin no longer holds only makes the answer larger.
    #[test]
    fn an_unknown_held_course_means_sending_the_whole_new_course_issue_12() {
        let (dir, origin) = new_origin();
        let src = dir.path().join("math");
        write(&src, "01-count/index.html", b"<p>one</p>");
        let first = publish(&origin, &src);
        let unknown = Hash::of(b"a course this origin never held");
        let diff = objects_since(origin.store(), &first, &[unknown]).expect("walk");
        assert_eq!(diff.len(), 3, "course, lesson, manifest: {diff:?}");
    }

    /// Issue 12: a damaged catalog in force keeps the decode error as
    /// `source()`; the message says where it is and what to run.
    #[test]
    fn a_damaged_catalog_keeps_its_cause_issue_12() {
        use std::error::Error as _;
        let err = decode_catalog(b"\xff\xff not a signed catalog").expect_err("damaged");
        assert!(matches!(err, CatalogReadError::Signed(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("origin's store") && message.contains("shanlu verify"),
            "{message}"
        );
        let source = err.source().expect("the cause is kept");
        assert!(
            source.downcast_ref::<CatalogError>().is_some(),
            "{source:?}"
        );
    }
}
