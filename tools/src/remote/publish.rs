//! `shanlu publish DIR --origin …` (issue 15): the folder is read and
//! chunked here, exactly as a local publish would, and only the chunks the
//! origin lacks are sent.
//!
//! Reading and sending overlap: two threads read and chunk the files
//! ([`catalog::manifest::manifest_of`]) while the manifests already made
//! travel in batches. For each batch: (1) `PlanFiles`: the origin keeps
//! the manifests and answers which chunk indices it lacks per file (a file
//! it holds, or can assemble from chunks it holds, needs none); (2) changed
//! chunks of files it held before as deltas (`deltas`); (3) the rest in
//! `PutChunks`, several in flight, each at most `MAX_ADMIN_REQUEST`. Once
//! every file is read and sent: (4) `PutObjects` (the lessons, built by
//! the local publish's builders); (5) `Publish` (the course): the origin
//! picks the version and signs. An upload cut off resumes at (1), where the
//! origin answers only what it still lacks.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use catalog::{ChunkingProfile, FileEntry, FileManifest, Hash, Object};
use edge_cache::sync::client::Client;
use indicatif::{MultiProgress, ProgressBar};
use server::PublishReport;
use server::admin::upload::MAX_PUT_FILES;
use server::admin::{AdminRequest, AdminResponse, IndexedChunk};
use server::buffers::BufferPool;
use server::folder::{self, CoursePlan, SourceFile};
use server::protocol::MAX_ADMIN_REQUEST;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{RemoteArgs, ask, deltas, runtime};
use crate::{format, outln, progress};

/// Chunk bytes in one `PutChunks`: the request limit less room for framing.
pub(super) const PUT_BYTES: usize = MAX_ADMIN_REQUEST - 64 * 1024;
/// Encoded objects in one `PlanFiles` or `PutObjects`.
const PLAN_BYTES: usize = MAX_ADMIN_REQUEST / 2;
/// Threads reading and chunking the folder.
const PLAN_THREADS: usize = 2;
/// Manifests made and not yet planned with the origin.
const READ_AHEAD: usize = 256;
/// `PutChunks` requests in flight at once.
const IN_FLIGHT: usize = 4;
/// Tests: wait this many milliseconds before each `PutChunks` (to cut an upload midway).
const DELAY_ENV: &str = "SHANLU_TEST_UPLOAD_DELAY_MS";

/// A file to send: its manifest and where its bytes are.
pub(super) struct Upload {
    pub manifest_hash: Hash,
    pub manifest: FileManifest,
    /// Index into the course's files.
    pub source: usize,
}

/// The course folder, walked and checked (not yet read).
pub(super) struct Course {
    pub plan: CoursePlan,
    /// Every file of the course, in the plan's order.
    pub files: Vec<SourceFile>,
    /// Where each file is: its lesson (`None`: a course file) and path in it.
    pub places: Vec<(Option<String>, String)>,
}

/// A file read: its index in the course's files and its manifest.
type FileRead = anyhow::Result<(usize, FileManifest)>;

/// What the upload did, for the summary.
#[derive(Default)]
struct Sent {
    distinct_files: usize,
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
    let course =
        walk(folder).with_context(|| format!("reading {} (nothing was sent)", folder.display()))?;
    let runtime = runtime()?;
    let admin = runtime.block_on(remote.connect())?;
    let origin = admin.origin.clone();
    let bars = MultiProgress::new();
    let stop = AtomicBool::new(false);
    let (sender, reads) = mpsc::channel::<FileRead>(READ_AHEAD);
    let reading = bars.add(progress::bytes_bar("reading"));
    reading.set_length(course.plan.total_bytes());
    let next = AtomicUsize::new(0);
    let result = std::thread::scope(|scope| {
        for _ in 0..PLAN_THREADS {
            let sender = sender.clone();
            let (course, reading, next, stop) = (&course, &reading, &next, &stop);
            scope.spawn(move || read_files(course, next, stop, reading, &sender));
        }
        drop(sender);
        let sending = bars.add(progress::bytes_bar("sending"));
        let result = runtime.block_on(async {
            let result = send(&admin.client, &course, reads, &sending, min_sequence).await;
            admin.client.close().await;
            result
        });
        // The readers stop at their next file once the sending has ended.
        stop.store(true, Ordering::Relaxed);
        reading.finish_and_clear();
        sending.finish_and_clear();
        result
    });
    let (report, sent) = result.with_context(|| {
        format!(
            "publishing {} to {origin} as {} (the catalog in force is unchanged, and the chunks \
             sent are kept: run it again to resume)",
            folder.display(),
            admin.name
        )
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
        sent.distinct_files,
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

/// Walks the folder and checks the course's limits, reading no file yet.
fn walk(folder: &Path) -> anyhow::Result<Course> {
    let plan = folder::read_course(folder)?;
    server::publish::check_limits(&plan)?;
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
    Ok(Course {
        plan,
        files,
        places,
    })
}

/// One reading thread: takes the next unread file, chunks and hashes it and
/// sends its manifest, until every file is taken, `stop` is set or nobody
/// listens; a file it cannot read is sent as the error and ends the thread.
fn read_files(
    course: &Course,
    next: &AtomicUsize,
    stop: &AtomicBool,
    bar: &ProgressBar,
    sender: &mpsc::Sender<FileRead>,
) {
    while !stop.load(Ordering::Relaxed) {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(file) = course.files.get(index) else {
            return;
        };
        let read = read_one(course, file, bar).map(|manifest| (index, manifest));
        let failed = read.is_err();
        if sender.blocking_send(read).is_err() || failed {
            return;
        }
    }
}

/// The manifest of one file, as a local publish would make it.
fn read_one(course: &Course, file: &SourceFile, bar: &ProgressBar) -> anyhow::Result<FileManifest> {
    let opened = course.plan.open(file)?;
    // The chunker reads several MiB at a time: no buffering needed.
    let manifest = catalog::manifest::manifest_of(
        &opened,
        ChunkingProfile::DEFAULT,
        &file.media_type,
        &mut |n| bar.inc(n),
    )
    .with_context(|| format!("reading {}", file.path.display()))?;
    if manifest.size != file.size {
        bail!("{} changed while it was read", file.path.display());
    }
    Ok(manifest)
}

/// Builds every object a local publish would, from every file's entry.
fn objects(
    course: &Course,
    entries: Vec<Option<FileEntry>>,
) -> anyhow::Result<(Vec<Vec<u8>>, Vec<u8>)> {
    let entries: Vec<FileEntry> = entries
        .into_iter()
        .collect::<Option<_>>()
        .context("a file was not read")?;
    // The plan lists course files first, then each lesson's, as `all_files` walks them.
    let plan = &course.plan;
    let mut entries = entries.into_iter();
    let course_files: Vec<FileEntry> = entries.by_ref().take(plan.files.len()).collect();
    let mut lessons = Vec::with_capacity(plan.lessons.len());
    let mut refs = Vec::with_capacity(plan.lessons.len());
    for lesson in &plan.lessons {
        let files = entries.by_ref().take(lesson.files.len()).collect();
        let object = Object::Lesson(server::publish::checked_lesson(lesson, files)?);
        let bytes = object.encode();
        refs.push(server::publish::lesson_ref(&object, Hash::of(&bytes)));
        lessons.push(bytes);
    }
    let course =
        Object::Course(server::publish::build_course(plan, course_files, refs, 1)).encode();
    Ok((lessons, course))
}

/// Plans and sends the files as they are read, then the lessons and the
/// course, over a welcomed connection.
async fn send(
    client: &Client,
    course: &Course,
    mut reads: mpsc::Receiver<FileRead>,
    bar: &ProgressBar,
    min_sequence: Option<u64>,
) -> anyhow::Result<(PublishReport, Sent)> {
    let mut sent = Sent::default();
    let mut entries: Vec<Option<FileEntry>> = vec![None; course.files.len()];
    let mut uploads: Vec<Upload> = Vec::new();
    let mut seen: HashSet<Hash> = HashSet::new();
    let mut blobs: HashSet<Hash> = HashSet::new();
    let mut in_flight = JoinSet::new();
    let delay = std::env::var(DELAY_ENV)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    // A batch: what has been read by the time the previous batch is planned.
    while let Some(first) = reads.recv().await {
        let mut batch = vec![first?];
        let mut batch_bytes = 0usize;
        while batch_bytes < PLAN_BYTES / 2 {
            let Ok(read) = reads.try_recv() else { break };
            let read = read?;
            batch_bytes += read.1.chunks.len() * 40 + 64;
            batch.push(read);
        }
        let first_new = uploads.len();
        let mut encoded = Vec::new();
        for (index, manifest) in batch {
            let bytes = Object::Manifest(manifest.clone()).encode();
            let manifest_hash = Hash::of(&bytes);
            entries[index] = Some(FileEntry {
                path: course.files[index].rel.clone(),
                size: manifest.size,
                blob: manifest.blob,
                manifest: manifest_hash,
            });
            // Each distinct manifest is sent (the same bytes under another media
            // type is another manifest); the chunks of a blob travel once.
            if seen.insert(manifest_hash) {
                uploads.push(Upload {
                    manifest_hash,
                    manifest,
                    source: index,
                });
                encoded.push(bytes);
            }
        }
        if encoded.is_empty() {
            continue;
        }
        let requests = plan_batch(
            client, course, &uploads, first_new, encoded, &mut blobs, &mut sent,
        )
        .await?;
        let to_send: u64 = requests
            .iter()
            .flatten()
            .flat_map(|(_, chunks)| chunks.iter().map(|c| u64::from(c.2)))
            .sum();
        bar.inc_length(to_send);
        for request in requests {
            while in_flight.len() >= IN_FLIGHT {
                count_done(&mut in_flight, &mut sent, bar).await?;
            }
            let mut files = Vec::with_capacity(request.len());
            for (number, chunks) in request {
                let upload = &uploads[number];
                let source = &course.files[upload.source];
                let file = course.plan.open(source)?;
                files.push((file, source.path.clone(), upload.manifest_hash, chunks));
            }
            in_flight.spawn(put_chunks(client.clone(), files, delay));
        }
    }
    while !in_flight.is_empty() {
        count_done(&mut in_flight, &mut sent, bar).await?;
    }
    sent.distinct_files = uploads.len();
    let (lessons, course_object) = objects(course, entries)?;
    // The lessons.
    for batch in batches(&lessons, PLAN_BYTES, Clone::clone) {
        match ask(client, AdminRequest::PutObjects { objects: batch }).await? {
            AdminResponse::ObjectsStored { .. } => {}
            _ => bail!("the origin answered lessons with something else"),
        }
    }
    // The course.
    let request = AdminRequest::Publish {
        course: course_object,
        min_sequence,
    };
    match ask(client, request).await? {
        AdminResponse::Published { json } => {
            let mut report: PublishReport =
                serde_json::from_str(&json).context("reading the origin's publish report")?;
            report.files_read = course.files.len();
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

/// `PutChunks` requests to make: per file (upload number), the chunks to read.
type Requests = Vec<Vec<(usize, Vec<ChunkAt>)>>;

/// Plans `uploads[first..]` (their manifests `encoded`) with the origin,
/// sends the changed chunks it can take as deltas, and groups the rest
/// into `PutChunks` requests.
async fn plan_batch(
    client: &Client,
    course: &Course,
    uploads: &[Upload],
    first: usize,
    encoded: Vec<Vec<u8>>,
    blobs: &mut HashSet<Hash>,
    sent: &mut Sent,
) -> anyhow::Result<Requests> {
    // 1. What the origin lacks.
    let mut needed = Vec::with_capacity(encoded.len());
    for batch in batches(&encoded, PLAN_BYTES, Clone::clone) {
        let count = batch.len();
        match ask(client, AdminRequest::PlanFiles { manifests: batch }).await? {
            AdminResponse::Needed { files } if files.len() == count => needed.extend(files),
            _ => bail!("the origin answered a plan with something else"),
        }
    }
    // The chunks that travel, `(upload number, index)`: each once per
    // file (a chunk repeated in a file is written everywhere by the origin).
    let mut chosen: Vec<(usize, u32)> = Vec::new();
    let mut wanted: Vec<(usize, u32)> = Vec::new();
    for (number, missing) in (first..).zip(&needed) {
        let upload = &uploads[number];
        if !blobs.insert(upload.manifest.blob) {
            continue;
        }
        sent.chunks_total += upload.manifest.chunks.len() as u64;
        sent.chunks_needed += missing.len() as u64;
        let mut queued = HashSet::new();
        let first_chosen = chosen.len();
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
            wanted.extend_from_slice(&chosen[first_chosen..]);
        }
    }
    // 2. Changed chunks of files the origin held before, as deltas.
    if !wanted.is_empty() {
        let mut planned = deltas::plan(client, course, uploads, &wanted).await?;
        sent.signature_bytes += planned.signature_bytes;
        let as_delta = std::mem::take(&mut planned.as_delta);
        let delta_sent = deltas::send(client, planned).await?;
        sent.delta_chunks += delta_sent.chunks;
        sent.delta_bytes += delta_sent.bytes;
        sent.deltas_refused += delta_sent.refused.len() as u64;
        let refused: HashSet<(usize, u32)> = delta_sent.refused.into_iter().collect();
        chosen.retain(|key| !as_delta.contains(key) || refused.contains(key));
    }
    // 3. The rest whole, small files packed together.
    let mut requests: Requests = Vec::new();
    let mut request: Vec<(usize, Vec<ChunkAt>)> = Vec::new();
    let mut bytes = 0usize;
    let mut offsets: HashMap<usize, Vec<u64>> = HashMap::new();
    for (number, index) in chosen {
        let manifest = &uploads[number].manifest;
        let offset = offsets
            .entry(number)
            .or_insert_with(|| manifest.chunk_offsets().map(|(o, _)| o).collect())[index as usize];
        let len = manifest.chunks[index as usize].len;
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
            chunks.push((index, offset, len));
        }
        bytes += len as usize;
    }
    if !request.is_empty() {
        requests.push(request);
    }
    Ok(requests)
}

/// A file's chunks to read and send: the open file, its path (for errors),
/// its manifest's hash and the chunks.
type FileToSend = (std::fs::File, std::path::PathBuf, Hash, Vec<ChunkAt>);

/// Reads the chunks of `files` and sends them in one `PutChunks`; returns
/// the chunks and bytes sent.
async fn put_chunks(
    client: Client,
    files: Vec<FileToSend>,
    delay: Option<Duration>,
) -> anyhow::Result<(u64, u64)> {
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let read = tokio::task::spawn_blocking(move || {
        // One buffer for the request's chunks, kept for the next request
        // once quinn has sent them (see `server::buffers`).
        let total: usize = files
            .iter()
            .flat_map(|(_, _, _, chunks)| chunks.iter().map(|c| c.2 as usize))
            .sum();
        let mut buffer = CHUNK_BUFFERS.take(total);
        let mut places = Vec::with_capacity(files.len());
        for (file, path, manifest, chunks) in files {
            let at = read_chunks(&file, &chunks, &mut buffer)
                .with_context(|| format!("reading {}", path.display()))?;
            places.push((manifest, at));
        }
        let buffer = CHUNK_BUFFERS.share(buffer);
        let read: Vec<(Hash, Vec<IndexedChunk>)> = places
            .into_iter()
            .map(|(manifest, at)| {
                let chunks = at
                    .into_iter()
                    .map(|(index, range)| IndexedChunk(index, buffer.slice(range)))
                    .collect();
                (manifest, chunks)
            })
            .collect();
        anyhow::Ok(read)
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
}

/// Waits for one `PutChunks` in flight and counts it.
async fn count_done(
    in_flight: &mut JoinSet<anyhow::Result<(u64, u64)>>,
    sent: &mut Sent,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    if let Some(done) = in_flight.join_next().await {
        let (chunks, bytes) = done.context("an upload task stopped")??;
        sent.chunks_sent += chunks;
        sent.bytes_sent += bytes;
        bar.inc(bytes);
    }
    Ok(())
}

/// A chunk to send: its index in the file, offset and length.
type ChunkAt = (u32, u64, u32);

/// Buffers of `PutChunks` requests kept for the next ones: one per request
/// in flight, and one being read.
static CHUNK_BUFFERS: BufferPool = BufferPool::new(IN_FLIGHT + 1);

/// Reads chunks of an open file onto the end of `buffer`; returns each
/// chunk's index and where it is in `buffer`.
fn read_chunks(
    file: &std::fs::File,
    chunks: &[ChunkAt],
    buffer: &mut Vec<u8>,
) -> std::io::Result<Vec<(u32, std::ops::Range<usize>)>> {
    use std::io::{Read, Seek, SeekFrom};
    // This call's own handle: seeking it disturbs no one. Read into spare
    // capacity (zeroing each buffer first cost a sixth of the client's time).
    let mut reader = file;
    chunks
        .iter()
        .map(|&(index, offset, len)| {
            reader.seek(SeekFrom::Start(offset))?;
            let start = buffer.len();
            reader.take(u64::from(len)).read_to_end(buffer)?;
            if buffer.len() - start != len as usize {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok((index, start..buffer.len()))
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
