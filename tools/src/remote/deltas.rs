//! Changed chunks as deltas (issue 15): for a chunk the origin lacks in a
//! file it held a previous version of (same course, lesson and path), the
//! origin sends a base's signature (`AdminRequest::Bases`) and only what
//! differs from it travels (`AdminRequest::PutDeltas`); see
//! [`server::admin::delta`].
//!
//! Asked only of origins at protocol revision [`REVISION_DELTAS`] or later,
//! and only for files that keep some of their chunks (or have at most
//! [`SMALL_FILE_CHUNKS`]): a file new or rewritten throughout travels whole
//! without a round trip. A delta is sent only when it is under
//! [`WORTH`] of its chunk; a delta the origin refuses is sent whole instead.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;

use anyhow::{Context, bail};
use edge_cache::sync::client::Client;
use server::admin::delta::{self, DeltaChunk, MAX_DELTA_CHUNKS, MAX_WANTS, WantBase, wire_len};
use server::admin::{AdminRequest, AdminResponse};
use server::protocol::REVISION_DELTAS;

use super::ask;
use super::publish::{Course, PUT_BYTES, Upload};

/// Files of at most this many chunks are asked about even when every chunk changed.
pub(super) const SMALL_FILE_CHUNKS: usize = 2;
/// A delta is sent when its encoding is under this fraction of its chunk (in percent).
pub(super) const WORTH: u64 = 75;
/// Tests: flip a byte of every delta's first literal run (the origin must refuse them).
const CORRUPT_ENV: &str = "SHANLU_TEST_CORRUPT_DELTAS";

/// The chunks that travel as deltas, in requests.
#[derive(Default)]
pub(super) struct Deltas {
    /// `(upload number, chunk index)`: not sent whole.
    pub as_delta: HashSet<(usize, u32)>,
    pub requests: Vec<Vec<(usize, DeltaChunk)>>,
    /// `Bases` requests and answers, encoded.
    pub signature_bytes: u64,
}

/// What sending the deltas did.
#[derive(Default)]
pub(super) struct DeltasSent {
    pub chunks: u64,
    pub bytes: u64,
    /// Chunks whose delta the origin refused: to send whole.
    pub refused: Vec<(usize, u32)>,
}

/// Asks the origin for bases of the chunks `wanted` (`(upload number,
/// chunk index)`, from the upload's plan) and makes the deltas worth sending.
pub(super) async fn plan(
    client: &Client,
    course: &Course,
    uploads: &[Upload],
    wanted: &[(usize, u32)],
) -> anyhow::Result<Deltas> {
    let mut deltas = Deltas::default();
    if client.origin_revision < REVISION_DELTAS || wanted.is_empty() {
        return Ok(deltas);
    }
    let mut request: Vec<(usize, DeltaChunk)> = Vec::new();
    let mut request_bytes = 0usize;
    let corrupt = std::env::var_os(CORRUPT_ENV).is_some();
    for batch in wanted.chunks(MAX_WANTS) {
        let wants: Vec<WantBase> = batch
            .iter()
            .map(|&(number, index)| {
                let upload = &uploads[number];
                let (lesson, path) = course.places[upload.source].clone();
                WantBase {
                    lesson,
                    path,
                    manifest: upload.manifest_hash,
                    index,
                }
            })
            .collect();
        let ask_for = AdminRequest::Bases {
            course: course.plan.id.clone(),
            wants,
        };
        deltas.signature_bytes += wire_len(&ask_for);
        let answer = ask(client, ask_for).await?;
        deltas.signature_bytes += wire_len(&answer);
        let AdminResponse::Bases { bases } = answer else {
            bail!("the origin answered a question for bases with something else");
        };
        if bases.len() != batch.len() {
            bail!("the origin answered bases for other chunks than asked");
        }
        for (&(number, index), base) in batch.iter().zip(bases) {
            let Some(base) = base else { continue };
            let upload = &uploads[number];
            let source = &course.files[upload.source];
            let (offset, entry) = upload
                .manifest
                .chunk_offsets()
                .nth(index as usize)
                .context("the origin answered a base for a chunk the file does not have")?;
            let file = course.plan.open(source)?;
            let made = tokio::task::block_in_place(|| -> anyhow::Result<_> {
                let mut bytes = vec![0u8; entry.len as usize];
                file.read_exact_at(&mut bytes, offset)
                    .with_context(|| format!("reading {}", source.path.display()))?;
                Ok(delta::delta(&base.signature, &bytes).ok())
            })?;
            let Some(mut ops) = made else { continue };
            if corrupt
                && let Some(delta::DeltaOp::Literal(bytes)) = ops
                    .iter_mut()
                    .find(|op| matches!(op, delta::DeltaOp::Literal(_)))
                && let Some(byte) = bytes.first_mut()
            {
                *byte ^= 0xff;
            }
            let chunk = DeltaChunk {
                manifest: upload.manifest_hash,
                index,
                base: base.chunks,
                ops,
            };
            let size = wire_len(&chunk) as usize;
            if size as u64 * 100 >= u64::from(entry.len) * WORTH {
                continue;
            }
            if !request.is_empty()
                && (request.len() >= MAX_DELTA_CHUNKS || request_bytes + size > PUT_BYTES)
            {
                deltas.requests.push(std::mem::take(&mut request));
                request_bytes = 0;
            }
            request_bytes += size;
            deltas.as_delta.insert((number, index));
            request.push((number, chunk));
        }
    }
    if !request.is_empty() {
        deltas.requests.push(request);
    }
    Ok(deltas)
}

/// Sends the deltas, one request at a time (they are small); a request the
/// origin refuses is reported, for its chunks to be sent whole.
pub(super) async fn send(client: &Client, deltas: Deltas) -> anyhow::Result<DeltasSent> {
    let mut sent = DeltasSent::default();
    for request in deltas.requests {
        let keys: Vec<(usize, u32)> = request.iter().map(|(n, c)| (*n, c.index)).collect();
        let chunks: Vec<DeltaChunk> = request.into_iter().map(|(_, c)| c).collect();
        let bytes: u64 = chunks.iter().map(wire_len).sum();
        let count = chunks.len() as u64;
        sent.bytes += bytes;
        match ask(client, AdminRequest::PutDeltas { chunks }).await {
            Ok(AdminResponse::ChunksStored { .. }) => sent.chunks += count,
            Ok(_) => bail!("the origin answered deltas with something else"),
            Err(err) => {
                eprintln!(
                    "warning: {count} chunks sent as deltas were refused; sending them whole ({err:#})"
                );
                sent.refused.extend(keys);
            }
        }
    }
    Ok(sent)
}
