//! `shanlu verify DIR`: re-hash everything, name what is damaged, and take
//! damaged or missing blobs out of service (quarantine) so they are never
//! served again; an edge's next sync fetches them again.

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::Context as _;
use catalog::{Hash, Object};
use serde::Serialize;

use super::DataFolder;
use crate::cli::VerifyArgs;
use crate::outln;
use crate::{format, progress};

#[derive(Serialize)]
struct VerifyReport {
    blobs_checked: u64,
    bytes_checked: u64,
    objects_checked: u64,
    catalog_sequence: Option<u64>,
    problems: Vec<String>,
    /// Blobs moved to `quarantine/` by this run.
    quarantined: Vec<Hash>,
    /// Files under `blobs/` that the index does not hold: left by a write
    /// interrupted between its rename and its index record, or put there by
    /// hand. Never served; safe to delete.
    stray_files: Vec<std::path::PathBuf>,
    /// An origin on a bucket (issue 16): what the bucket's check found.
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<server::bucket::verify::BucketReport>,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let folder = DataFolder::open(&args.dir)?;
    let store = &folder.store;
    let bar = progress::bytes_bar("verifying");
    bar.set_length(store.blob_bytes()?);
    let scrub = store.scrub(&mut |n| bar.inc(n));
    bar.finish_and_clear();
    let scrub = scrub?;
    let mut problems: Vec<String> = scrub.problems.iter().map(ToString::to_string).collect();
    let catalog_sequence = check_catalog(&folder, &scrub.quarantined, &mut problems)?;
    let stray_files = stray_files(store)?;
    let bucket = match (&folder.bucket, &folder.key) {
        (Some(url), Some(key)) => {
            let opened = server::bucket::Bucket::from_url(url)
                .with_context(|| format!("opening the origin's bucket {url}"))?;
            let bar = progress::bytes_bar("verifying the bucket");
            let checked = server::bucket::verify::verify(&opened, key, &mut |n| bar.inc(n));
            bar.finish_and_clear();
            let checked = checked.with_context(|| format!("reading the origin's bucket {url}"))?;
            problems.extend(checked.problems.iter().cloned());
            Some(checked)
        }
        _ => None,
    };

    let report = VerifyReport {
        blobs_checked: scrub.blobs_checked,
        bytes_checked: scrub.bytes_checked,
        objects_checked: scrub.objects_checked,
        catalog_sequence,
        problems,
        quarantined: scrub.quarantined.clone(),
        stray_files,
        bucket,
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for problem in &report.problems {
            outln!("BAD {problem}")?;
        }
        outln!(
            "checked {} blobs ({}) and {} objects: {}",
            report.blobs_checked,
            format::bytes(report.bytes_checked),
            report.objects_checked,
            if report.problems.is_empty() {
                "all good".to_owned()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        )?;
        if let (Some(checked), Some(url)) = (&report.bucket, &folder.bucket) {
            outln!(
                "bucket {url}: catalog sequence {}, checked {} objects and {} chunks ({})",
                checked
                    .head_sequence
                    .map_or_else(|| "none".to_owned(), |s| s.to_string()),
                checked.objects_checked,
                checked.chunks_checked,
                format::bytes(checked.chunk_bytes_checked),
            )?;
        }
        if !report.stray_files.is_empty() {
            outln!(
                "{} file(s) under {} are not in the index (left by an interrupted write, or copied in by hand): never served, safe to delete",
                report.stray_files.len(),
                store.root().join("blobs").display()
            )?;
            for path in &report.stray_files {
                outln!("  {}", path.display())?;
            }
        }
        if !report.quarantined.is_empty() {
            let remedy = if folder.is_origin {
                "publish the courses that hold them again"
            } else {
                "`shanlu edge sync` fetches them again"
            };
            outln!(
                "quarantined {} blob(s) into {}: no longer served; {remedy}",
                report.quarantined.len(),
                store.root().join("quarantine").display()
            )?;
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Files under `blobs/` that are not a blob the index holds. The walk does
/// not follow symlinks, and nothing found is opened.
fn stray_files(store: &catalog::Store) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut stray = Vec::new();
    let blobs = store.root().join("blobs");
    for entry in walkdir::WalkDir::new(&blobs)
        .min_depth(1)
        .follow_links(false)
    {
        let entry = entry.with_context(|| format!("listing {}", blobs.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let held = match entry.file_name().to_str().map(str::parse::<Hash>) {
            Some(Ok(hash)) => store.blob_path(&hash) == entry.path() && store.has_blob(&hash)?,
            _ => false,
        };
        if !held {
            stray.push(entry.into_path());
        }
    }
    Ok(stray)
}

/// Checks the signature and that every object the catalog names is present
/// (and, on an origin, every blob).
/// Blobs in `reported` (quarantined by this run's scrub, and so already
/// named as damaged) are not reported again as missing.
fn check_catalog(
    folder: &DataFolder,
    reported: &[Hash],
    problems: &mut Vec<String>,
) -> anyhow::Result<Option<u64>> {
    let store = &folder.store;
    let Some(signed) = store.signed_catalog()? else {
        return Ok(None);
    };
    let catalog = match &folder.key {
        Some(key) => match signed.verify(key) {
            Ok(catalog) => catalog,
            Err(err) => {
                problems.push(format!("catalog {}: {err}", signed.catalog_hash()));
                return Ok(None);
            }
        },
        None => match Object::decode(&signed.catalog).and_then(Object::into_catalog) {
            Ok(catalog) => catalog,
            Err(err) => {
                problems.push(format!("catalog {}: {err}", signed.catalog_hash()));
                return Ok(None);
            }
        },
    };
    let mut seen: HashSet<Hash> = reported.iter().copied().collect();
    let mut missing = |hash: Hash, what: String, problems: &mut Vec<String>| {
        if seen.insert(hash) {
            problems.push(format!("{what} {hash} is missing"));
        }
    };
    for (id, entry) in &catalog.courses {
        let course = match store.object(&entry.hash) {
            Ok(Some(object)) => object.into_course(),
            Ok(None) => {
                missing(entry.hash, format!("course {id}"), problems);
                continue;
            }
            Err(_) => continue, // already reported by the scrub
        };
        let Ok(course) = course else { continue };
        let mut files = course.files.clone();
        for lesson_ref in &course.lessons {
            match store.object(&lesson_ref.hash) {
                Ok(Some(object)) => {
                    if let Ok(lesson) = object.into_lesson() {
                        files.extend(lesson.files);
                    }
                }
                Ok(None) => missing(
                    lesson_ref.hash,
                    format!("lesson {id}/{}", lesson_ref.id),
                    problems,
                ),
                Err(_) => {}
            }
        }
        for file in files {
            // The scrub above already checked the bytes of every stored object.
            if !store.has_object(&file.manifest)? {
                missing(
                    file.manifest,
                    format!("manifest of {id}/{}", file.path),
                    problems,
                );
            }
            if folder.is_origin && folder.bucket.is_none() && !store.has_blob(&file.blob)? {
                missing(file.blob, format!("blob of {id}/{}", file.path), problems);
            }
        }
    }
    Ok(Some(catalog.sequence))
}
