//! `shanlu publish DIR --origin …` (issue 15): the folder is read and
//! chunked here, exactly as a local publish would, and only the chunks the
//! origin lacks are sent.
//!
//! Steps: (1) plan: every file's manifest ([`catalog::manifest::manifest_of`]),
//! the lesson objects and the course object, from the same builders a local
//! publish uses; (2) `PlanFiles`: the origin keeps the manifests and answers
//! which chunk indices it lacks per file (a file it holds, or can assemble
//! from chunks it holds, needs none); (3) `PutChunks`, several in flight,
//! each at most `MAX_ADMIN_REQUEST`; (4) `PutObjects` (lessons); (5) `Publish`
//! (the course): the origin picks the version and signs. An upload cut off
//! resumes at step 2, where the origin answers only what it still lacks.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use catalog::{ChunkingProfile, FileEntry, FileManifest, Hash, Object};
use server::PublishReport;
use server::admin::upload::MAX_PUT_FILES;
use server::admin::{AdminRequest, AdminResponse, IndexedChunk};
use server::folder::{self, CoursePlan, SourceFile};
use server::protocol::MAX_ADMIN_REQUEST;

use super::{RemoteArgs, ask, deltas, runtime};
use crate::{format, outln, progress};

/// Chunk bytes in one `PutChunks`: the request limit less room for framing.
pub(super) const PUT_BYTES: usize = MAX_ADMIN_REQUEST - 64 * 1024;
/// Encoded objects in one `PlanFiles` or `PutObjects`.
const PLAN_BYTES: usize = MAX_ADMIN_REQUEST / 2;
/// Threads reading and chunking the folder.
const PLAN_THREADS: usize = 2;
/// `PutChunks` requests in flight at once.
const IN_FLIGHT: usize = 4;
/// Tests: wait this many milliseconds before each `PutChunks` (to cut an upload midway).
const DELAY_ENV: &str = "SHANLU_TEST_UPLOAD_DELAY_MS";

/// A file to send: its manifest and where its bytes are.
pub(super) struct Upload {
    pub manifest_hash: Hash,
    pub manifest: FileManifest,
    /// Index into the plan's files.
    pub source: usize,
}

/// The course, read and chunked.
pub(super) struct Planned {
    pub plan: CoursePlan,
    /// Every file of the course, in the plan's order.
    pub files: Vec<SourceFile>,
    /// Where each file is: its lesson (`None`: a course file) and path in it.
    pub places: Vec<(Option<String>, String)>,
    /// One per distinct manifest (two for one blob under two media types).
    pub uploads: Vec<Upload>,
    lessons: Vec<Vec<u8>>,
    course: Vec<u8>,
}

/// What the upload did, for the summary.
#[derive(Default)]
struct Sent {
    chunks_needed: u64,
    chunks_total: u64,
    chunks_sent: u64,
    bytes_sent: u64,
    delta_chunks: u64,
    delta_bytes: u64,
    deltas_refused: u64,
    signature_bytes: u64,
}

pub fn run(
    folder: &Path,
    remote: &RemoteArgs,
    min_sequence: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let planned =
        plan(folder).with_context(|| format!("reading {} (nothing was sent)", folder.display()))?;
    let runtime = runtime()?;
    let (report, sent) = runtime.block_on(async {
        let admin = remote.connect().await?;
        let origin = admin.origin.clone();
        let result = send(&admin.client, &planned, min_sequence).await;
        admin.client.close().await;
        result.with_context(|| {
            format!(
                "publishing {} to {origin} as {} (the catalog in force is unchanged; run it again to resume)",
                folder.display(),
                admin.name
            )
        })
    })?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::commands::publish::print_outcome(&report)?;
    outln!(
        "  {} lessons, {} files ({}); {} distinct files, {} chunks",
        report.lessons,
        report.files,
        format::bytes(report.bytes),
        planned.uploads.len(),
        sent.chunks_total
    )?;
    outln!(
        "  sent {} chunks ({}); {} chunks were already on the origin",
        sent.chunks_sent,
        format::bytes(sent.bytes_sent),
        sent.chunks_total - sent.chunks_needed
    )?;
    if sent.delta_chunks + sent.deltas_refused > 0 {
        outln!(
            "  {} changed chunks as deltas ({}; signatures {}){}",
            sent.delta_chunks,
            format::bytes(sent.delta_bytes),
            format::bytes(sent.signature_bytes),
            if sent.deltas_refused > 0 {
                format!(", {} refused and sent whole", sent.deltas_refused)
            } else {
                String::new()
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the folder and builds every object a local publish would.
fn plan(folder: &Path) -> anyhow::Result<Planned> {
    let plan = folder::read_course(folder)?;
    server::publish::check_limits(&plan)?;
    let bar = progress::bytes_bar("reading");
    bar.set_length(plan.total_bytes());
    let files: Vec<SourceFile> = plan.all_files().cloned().collect();
    let places: Vec<(Option<String>, String)> = plan
        .files
        .iter()
        .map(|file| (None, file.rel.clone()))
        .chain(plan.lessons.iter().flat_map(|lesson| {
            lesson
                .files
                .iter()
                .map(|file| (Some(lesson.id.clone()), file.rel.clone()))
        }))
        .collect();
    // Files are read on `PLAN_THREADS` threads, taking them in turn.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read_one = |index: usize| -> anyhow::Result<FileManifest> {
        let file = &files[index];
        let opened = plan.open(file)?;
        let manifest = catalog::manifest::manifest_of(
            std::io::BufReader::with_capacity(1 << 20, &opened),
            ChunkingProfile::DEFAULT,
            &file.media_type,
            &mut |n| bar.inc(n),
        )
        .with_context(|| format!("reading {}", file.path.display()))?;
        if manifest.size != file.size {
            bail!("{} changed while it was read", file.path.display());
        }
        Ok(manifest)
    };
    let mut manifests: Vec<Option<FileManifest>> = vec![None; files.len()];
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..PLAN_THREADS)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<Vec<(usize, FileManifest)>> {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if index >= files.len() {
                            return Ok(done);
                        }
                        done.push((index, read_one(index)?));
                    }
                })
            })
            .collect();
        for worker in workers {
            let done = worker
                .join()
                .map_err(|_| anyhow::anyhow!("a reading thread panicked"))??;
            for (index, manifest) in done {
                manifests[index] = Some(manifest);
            }
        }
        Ok(())
    })?;
    let mut uploads = Vec::new();
    let mut seen = HashMap::new();
    let mut entries = HashMap::new();
    for (index, (file, manifest)) in files.iter().zip(manifests).enumerate() {
        let manifest = manifest.context("a file was not read")?;
        let manifest_hash = Object::Manifest(manifest.clone()).hash();
        entries.insert(
            index,
            FileEntry {
                path: file.rel.clone(),
                size: manifest.size,
                blob: manifest.blob,
                manifest: manifest_hash,
            },
        );
        // Each distinct manifest is sent (the same bytes under another media
        // type is another manifest); the chunks of a blob travel once.
        if seen.insert(manifest_hash, ()).is_none() {
            uploads.push(Upload {
                manifest_hash,
                manifest,
                source: index,
            });
        }
    }
    bar.finish_and_clear();
    // The plan lists course files first, then each lesson's, as `all_files` walks them.
    let mut next = 0usize;
    let mut take = |count: usize| -> Vec<FileEntry> {
        let taken = (next..next + count).map(|i| entries[&i].clone()).collect();
        next += count;
        taken
    };
    let course_files = take(plan.files.len());
    let mut lessons = Vec::with_capacity(plan.lessons.len());
    let mut refs = Vec::with_capacity(plan.lessons.len());
    for lesson in &plan.lessons {
        let object = Object::Lesson(server::publish::checked_lesson(
            lesson,
            take(lesson.files.len()),
        )?);
        let bytes = object.encode();
        refs.push(server::publish::lesson_ref(&object, Hash::of(&bytes)));
        lessons.push(bytes);
    }
    let course =
        Object::Course(server::publish::build_course(&plan, course_files, refs, 1)).encode();
    Ok(Planned {
        plan,
        files,
        places,
        uploads,
        lessons,
        course,
    })
}

/// Steps 2 to 5 over a welcomed connection.
async fn send(
    client: &edge_cache::sync::client::Client,
    planned: &Planned,
    min_sequence: Option<u64>,
) -> anyhow::Result<(PublishReport, Sent)> {
    let mut sent = Sent::default();
    // 2. What the origin lacks.
    let mut needed = Vec::with_capacity(planned.uploads.len());
    for batch in batches(&planned.uploads, PLAN_BYTES, |u| {
        Object::Manifest(u.manifest.clone()).encode()
    }) {
        let count = batch.len();
        match ask(client, AdminRequest::PlanFiles { manifests: batch }).await? {
            AdminResponse::Needed { files } if files.len() == count => needed.extend(files),
            _ => bail!("the origin answered a plan with something else"),
        }
    }
    // 3. The chunks that travel, `(upload number, index)`: each once per
    // file (a chunk repeated in a file is written everywhere by the origin).
    let mut chosen: Vec<(usize, u32)> = Vec::new();
    let mut wanted: Vec<(usize, u32)> = Vec::new();
    let mut blobs = std::collections::HashSet::new();
    for (number, (upload, missing)) in planned.uploads.iter().zip(&needed).enumerate() {
        if !blobs.insert(upload.manifest.blob) {
            continue;
        }
        sent.chunks_total += upload.manifest.chunks.len() as u64;
        sent.chunks_needed += missing.len() as u64;
        let mut queued = std::collections::HashSet::new();
        let first = chosen.len();
        for &index in missing {
            let chunk = upload
                .manifest
                .chunks
                .get(index as usize)
                .context("the origin asked for a chunk the file does not have")?;
            if queued.insert(chunk.hash) {
                chosen.push((number, index));
            }
        }
        // Deltas are asked for where the file kept some chunks (or is small).
        let chunks = upload.manifest.chunks.len();
        if missing.len() < chunks || chunks <= deltas::SMALL_FILE_CHUNKS {
            wanted.extend_from_slice(&chosen[first..]);
        }
    }
    // 3a. Changed chunks of files the origin held before, as deltas.
    let mut planned_deltas = deltas::plan(client, planned, &wanted).await?;
    sent.signature_bytes = planned_deltas.signature_bytes;
    let as_delta = std::mem::take(&mut planned_deltas.as_delta);
    let delta_sent = deltas::send(client, planned_deltas).await?;
    sent.delta_chunks = delta_sent.chunks;
    sent.delta_bytes = delta_sent.bytes;
    sent.deltas_refused = delta_sent.refused.len() as u64;
    let refused: std::collections::HashSet<(usize, u32)> = delta_sent.refused.into_iter().collect();
    chosen.retain(|key| !as_delta.contains(key) || refused.contains(key));
    // 3b. The rest whole, small files packed together.
    let mut requests: Vec<Vec<(usize, Vec<ChunkAt>)>> = Vec::new();
    let mut request: Vec<(usize, Vec<ChunkAt>)> = Vec::new();
    let mut bytes = 0usize;
    let mut offsets: (usize, Vec<u64>) = (usize::MAX, Vec::new());
    for (number, index) in chosen {
        let upload = &planned.uploads[number];
        if offsets.0 != number {
            offsets = (
                number,
                upload.manifest.chunk_offsets().map(|(o, _)| o).collect(),
            );
        }
        let len = upload.manifest.chunks[index as usize].len;
        let full = bytes + len as usize > PUT_BYTES;
        let new_file = request.last().is_none_or(|(n, _)| *n != number);
        if !request.is_empty() && (full || (new_file && request.len() >= MAX_PUT_FILES)) {
            requests.push(std::mem::take(&mut request));
            bytes = 0;
        }
        if request.last().is_none_or(|(n, _)| *n != number) {
            request.push((number, Vec::new()));
        }
        if let Some((_, chunks)) = request.last_mut() {
            chunks.push((index, offsets.1[index as usize], len));
        }
        bytes += len as usize;
    }
    if !request.is_empty() {
        requests.push(request);
    }
    let to_send: u64 = requests
        .iter()
        .flatten()
        .flat_map(|(_, chunks)| chunks.iter().map(|c| u64::from(c.2)))
        .sum();
    let bar = progress::bytes_bar("sending");
    bar.set_length(to_send);
    let delay = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut queue = requests.into_iter();
    loop {
        while in_flight.len() < IN_FLIGHT {
            let Some(request) = queue.next() else {
                break;
            };
            let mut files = Vec::with_capacity(request.len());
            for (number, chunks) in request {
                let upload = &planned.uploads[number];
                let source = &planned.files[upload.source];
                let file = planned.plan.open(source)?;
                files.push((file, source.path.clone(), upload.manifest_hash, chunks));
            }
            let client = client.clone();
            in_flight.spawn(async move {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let read = tokio::task::spawn_blocking(move || {
                    files
                        .into_iter()
                        .map(|(file, path, manifest, chunks)| {
                            read_chunks(&file, &chunks)
                                .map(|read| (manifest, read))
                                .with_context(|| format!("reading {}", path.display()))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .await
                .context("reading chunks stopped")??;
                let count: usize = read.iter().map(|(_, chunks)| chunks.len()).sum();
                let bytes: u64 = read
                    .iter()
                    .flat_map(|(_, chunks)| chunks.iter().map(|IndexedChunk(_, b)| b.len() as u64))
                    .sum();
                match ask(&client, AdminRequest::PutChunks { files: read }).await? {
                    AdminResponse::ChunksStored { .. } => Ok((count as u64, bytes)),
                    _ => bail!("the origin answered chunks with something else"),
                }
            });
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (chunks, bytes) = done.context("an upload task stopped")??;
        sent.chunks_sent += chunks;
        sent.bytes_sent += bytes;
        bar.inc(bytes);
    }
    bar.finish_and_clear();
    // 4. The lessons.
    for batch in batches(&planned.lessons, PLAN_BYTES, Clone::clone) {
        match ask(client, AdminRequest::PutObjects { objects: batch }).await? {
            AdminResponse::ObjectsStored { .. } => {}
            _ => bail!("the origin answered lessons with something else"),
        }
    }
    // 5. The course.
    let request = AdminRequest::Publish {
        course: planned.course.clone(),
        min_sequence,
    };
    match ask(client, request).await? {
        AdminResponse::Published { json } => {
            let mut report: PublishReport =
                serde_json::from_str(&json).context("reading the origin's publish report")?;
            report.files_read = planned.files.len();
            report.sent_chunk_bytes = sent.bytes_sent;
            report.sent_delta_bytes = sent.delta_bytes;
            report.delta_chunks = sent.delta_chunks;
            report.deltas_refused = sent.deltas_refused;
            report.signature_bytes = sent.signature_bytes;
            Ok((report, sent))
        }
        _ => bail!("the origin answered the publish with something else"),
    }
}

/// A chunk to send: its index in the file, offset and length.
type ChunkAt = (u32, u64, u32);

/// Reads chunks of an open file.
fn read_chunks(file: &std::fs::File, chunks: &[ChunkAt]) -> std::io::Result<Vec<IndexedChunk>> {
    use std::io::{Read, Seek, SeekFrom};
    // This call's own handle: seeking it disturbs no one. Read into fresh
    // capacity (zeroing each buffer first cost a sixth of the client's time).
    let mut reader = file;
    chunks
        .iter()
        .map(|&(index, offset, len)| {
            reader.seek(SeekFrom::Start(offset))?;
            let mut bytes = Vec::with_capacity(len as usize);
            reader.take(u64::from(len)).read_to_end(&mut bytes)?;
            if bytes.len() != len as usize {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(IndexedChunk(index, bytes))
        })
        .collect()
}

/// Groups items' encodings into batches of at most `most` bytes.
fn batches<T>(items: &[T], most: usize, encode: impl Fn(&T) -> Vec<u8>) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for item in items {
        let encoded = encode(item);
        if bytes + encoded.len() > most && !batch.is_empty() {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += encoded.len();
        batch.push(encoded);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}
