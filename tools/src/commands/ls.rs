//! `shanlu ls --data DIR [--json]`: the catalog as a tree.

use std::process::ExitCode;

use anyhow::Context;
use catalog::{Catalog, Hash, LocalizedText, Object, Store};
use serde::Serialize;

use super::DataFolder;
use crate::cli::LsArgs;
use crate::format;
use crate::outln;

#[derive(Serialize)]
struct Listing {
    sequence: u64,
    published_at: u64,
    catalog_hash: Hash,
    /// Whether the signature was checked against the origin key.
    signature_verified: bool,
    courses: Vec<ListedCourse>,
}

#[derive(Serialize)]
struct ListedCourse {
    id: String,
    version: u64,
    hash: Hash,
    title: LocalizedText,
    description: LocalizedText,
    subject: Option<String>,
    grade: Option<String>,
    languages: Vec<String>,
    tags: Vec<String>,
    total_size: u64,
    files: Vec<ListedFile>,
    lessons: Vec<ListedLesson>,
}

#[derive(Serialize)]
struct ListedLesson {
    id: String,
    hash: Hash,
    title: LocalizedText,
    summary: LocalizedText,
    entry: String,
    tags: Vec<String>,
    languages: Vec<String>,
    duration_secs: Option<u32>,
    size: u64,
    files: Vec<ListedFile>,
}

#[derive(Serialize)]
struct ListedFile {
    path: String,
    size: u64,
    blake3: Hash,
    manifest: Hash,
    media_type: String,
    chunks: usize,
    held: bool,
}

pub fn run(args: &LsArgs) -> anyhow::Result<ExitCode> {
    let folder = DataFolder::open(&args.data)?;
    let listing = list(&folder)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&listing)?)?;
    } else {
        print_tree(&listing)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list(folder: &DataFolder) -> anyhow::Result<Listing> {
    let store = &folder.store;
    let signed = store.signed_catalog()?.context(
        "this data folder holds no catalog yet; publish a course or sync the edge first",
    )?;
    let catalog: Catalog = match &folder.key {
        Some(key) => signed
            .verify(key)
            .context("the stored catalog fails its signature check")?,
        None => Object::decode(&signed.catalog)?.into_catalog()?,
    };
    let mut courses = Vec::new();
    for (id, entry) in &catalog.courses {
        let course = store
            .require_object(&entry.hash)?
            .into_course()
            .with_context(|| format!("course {id}"))?;
        let mut lessons = Vec::new();
        for lesson_ref in &course.lessons {
            let lesson = store
                .require_object(&lesson_ref.hash)?
                .into_lesson()
                .with_context(|| format!("lesson {} of course {id}", lesson_ref.id))?;
            lessons.push(ListedLesson {
                id: lesson.id,
                hash: lesson_ref.hash,
                title: lesson.title,
                summary: lesson.summary,
                entry: lesson.entry,
                tags: lesson.tags,
                languages: lesson.languages,
                duration_secs: lesson.duration_secs,
                size: lesson_ref.size,
                files: list_files(store, &lesson.files)?,
            });
        }
        courses.push(ListedCourse {
            id: course.id,
            version: course.version,
            hash: entry.hash,
            total_size: entry.total_size,
            files: list_files(store, &course.files)?,
            title: course.title,
            description: course.description,
            subject: course.subject,
            grade: course.grade,
            languages: course.languages,
            tags: course.tags,
            lessons,
        });
    }
    Ok(Listing {
        sequence: catalog.sequence,
        published_at: catalog.published_at,
        catalog_hash: signed.catalog_hash(),
        signature_verified: folder.key.is_some(),
        courses,
    })
}

fn list_files(store: &Store, files: &[catalog::FileEntry]) -> anyhow::Result<Vec<ListedFile>> {
    files
        .iter()
        .map(|file| {
            let manifest = store.manifest(&file.manifest)?;
            Ok(ListedFile {
                path: file.path.clone(),
                size: file.size,
                blake3: file.blob,
                manifest: file.manifest,
                media_type: manifest.media_type,
                chunks: manifest.chunks.len(),
                held: store.has_blob(&file.blob)?,
            })
        })
        .collect()
}

fn print_tree(listing: &Listing) -> std::io::Result<()> {
    outln!(
        "catalog sequence {}, published {}, {} course(s){}",
        listing.sequence,
        format::time(listing.published_at),
        listing.courses.len(),
        if listing.signature_verified {
            ", signature verified"
        } else {
            ""
        }
    )?;
    for course in &listing.courses {
        outln!(
            "{}  v{}  {}  {} lesson(s)  {}",
            course.id,
            course.version,
            course.title.get(&[]).unwrap_or(""),
            course.lessons.len(),
            format::bytes(course.total_size)
        )?;
        print_files(&course.files, "  ")?;
        for lesson in &course.lessons {
            outln!("  {}  {}", lesson.id, lesson.title.get(&[]).unwrap_or(""))?;
            print_files(&lesson.files, "    ")?;
        }
    }
    Ok(())
}

fn print_files(files: &[ListedFile], indent: &str) -> std::io::Result<()> {
    for file in files {
        outln!(
            "{indent}{}  {}  {}{}",
            file.path,
            format::bytes(file.size),
            file.blake3,
            if file.held { "" } else { "  (not held)" }
        )?;
    }
    Ok(())
}
