//! Lessons teachers propose to the bureau, carried upstream by the sync
//! pass (so within its window and under its bandwidth cap).
//!
//! For each queued proposal: the lesson's file manifests go first and the
//! origin answers which chunks it lacks; only those travel, read from the
//! store and checked there again; then the lesson itself, which lands in
//! the origin's review queue ([`server::review`]). A pass cut off in the
//! middle leaves the proposal queued: the next pass plans again and sends
//! only what is still missing. Every pass also asks where the proposals
//! sent stand, and records the bureau's approval or note for the teacher.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use catalog::{Hash, Object, Store};
use server::admin::IndexedChunk;
use server::protocol::{REVISION_PROPOSALS, Request, Response};
use server::review::{MAX_PROPOSAL_REQUEST, ProposeAnswer, ProposeRequest, Verdict};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::shelf::{self, Entry, ProposalState};
use crate::sync::client::Client;

/// Chunk bytes in one request: under the origin's limit, with room for the
/// request's own bytes.
const REQUEST_BYTES: usize = MAX_PROPOSAL_REQUEST - 16 * 1024;

/// What [`send`] did in one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// Proposals that reached the review queue.
    pub sent: usize,
    /// Chunk bytes sent (those the origin lacked).
    pub bytes: u64,
    /// Verdicts newly heard.
    pub decided: usize,
}

/// Why a proposal could not be carried this pass (it stays queued).
#[derive(Debug, thiserror::Error)]
enum CarryError {
    #[error("{0}")]
    Local(String),
    #[error("the origin refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Link(String),
    #[error("the sync window closed")]
    Stopped,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, CarryError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(CarryError::Local(message)),
        Err(_) => Err(CarryError::Local("the edge is stopping".to_owned())),
    }
}

/// One request, one answer.
async fn ask(client: &Client, request: ProposeRequest) -> Result<ProposeAnswer, CarryError> {
    let mut responses = client
        .request(&Request::Propose(request))
        .await
        .map_err(|err| CarryError::Link(crate::sync::error_chain(&err)))?;
    match responses.next().await {
        Ok(Some(Response::Proposal(answer))) => Ok(answer),
        Ok(Some(Response::Error { message })) => Err(CarryError::Refused(message)),
        Ok(other) => Err(CarryError::Link(format!("unexpected answer {other:?}"))),
        Err(err) => Err(CarryError::Link(crate::sync::error_chain(&err))),
    }
}

/// Carries queued proposals upstream and hears verdicts on those sent; on
/// a county edge (with a review queue in `data/downstream`), also those of
/// the edges below it ([`forward`]).
pub async fn send(
    store: &Arc<Store>,
    client: &Client,
    data: &Path,
    stop: &CancellationToken,
) -> Carried {
    let mut carried = own(store, client, stop).await;
    let below = data.join(crate::downstream::DOWNSTREAM_DIR);
    if server::review::queue_path(&below).is_file() && !stop.is_cancelled() {
        let forwarded = forward(store, client, &below, stop).await;
        carried.sent += forwarded.sent;
        carried.bytes += forwarded.bytes;
        carried.decided += forwarded.decided;
    }
    carried
}

/// The school's own teachers' proposals.
async fn own(store: &Arc<Store>, client: &Client, stop: &CancellationToken) -> Carried {
    let mut carried = Carried::default();
    if client.origin_revision < REVISION_PROPOSALS {
        return carried;
    }
    let proposed = {
        let store = store.clone();
        blocking(move || shelf::proposed(&store).map_err(|e| e.to_string())).await
    };
    let proposed = match proposed {
        Ok(proposed) => proposed,
        Err(err) => {
            warn!(cause = %err, "cannot read the teachers' proposals");
            return carried;
        }
    };
    for entry in proposed.iter().filter(|e| {
        e.proposal
            .as_ref()
            .is_some_and(|p| p.state == ProposalState::Queued)
    }) {
        if stop.is_cancelled() {
            return carried;
        }
        let asked_at = entry.proposal.as_ref().map_or(0, |p| p.asked_at);
        let outgoing = Outgoing::new(entry.lesson, &entry.id, &entry.teacher, asked_at, None)
            .about(&entry.grade, &entry.subject);
        match carry(store, client, &outgoing, stop).await {
            Ok(bytes) => {
                carried.sent += 1;
                carried.bytes += bytes;
                info!(lesson = %entry.id, teacher = %entry.teacher, sent_bytes = bytes, "a teacher's lesson reached the bureau's review queue");
                let state = ProposalState::Sent {
                    at: server::origin::now_secs(),
                    lesson: entry.lesson,
                    sent_bytes: bytes,
                };
                record(store, &entry.id, state).await;
            }
            Err(CarryError::Stopped) => return carried,
            Err(err) => {
                warn!(lesson = %entry.id, cause = %err, "a proposed lesson could not be sent upstream; it goes with the next pass");
                let (store, id, why) = (store.clone(), entry.id.clone(), err.to_string());
                let noted =
                    blocking(move || shelf::not_sent(&store, &id, &why).map_err(|e| e.to_string()))
                        .await;
                if let Err(err) = noted {
                    warn!(cause = %err, "cannot record why a proposed lesson was not sent");
                }
            }
        }
    }
    let sent: Vec<&Entry> = proposed
        .iter()
        .filter(|e| {
            e.proposal
                .as_ref()
                .is_some_and(|p| matches!(p.state, ProposalState::Sent { .. }))
        })
        .take(server::review::MAX_STATUS_IDS)
        .collect();
    if sent.is_empty() || stop.is_cancelled() {
        return carried;
    }
    let ids = sent.iter().map(|e| e.id.clone()).collect();
    let verdicts = match ask(client, ProposeRequest::Status { ids }).await {
        Ok(ProposeAnswer::Status { verdicts }) if verdicts.len() == sent.len() => verdicts,
        Ok(other) => {
            warn!(answer = ?other, "the origin answered the proposals' status unexpectedly");
            return carried;
        }
        Err(err) => {
            warn!(cause = %err, "cannot ask where the proposed lessons stand; asking again next pass");
            return carried;
        }
    };
    for (entry, verdict) in sent.into_iter().zip(verdicts) {
        let state = match verdict {
            Verdict::Waiting => continue,
            Verdict::Approved { course } => ProposalState::Approved { course },
            Verdict::Declined { note } => ProposalState::Declined { note },
            // Forgotten by the origin (its queue reset): sent again.
            Verdict::Unknown => ProposalState::Queued,
        };
        info!(lesson = %entry.id, state = ?state, "the bureau decided on a proposed lesson");
        carried.decided += 1;
        record(store, &entry.id, state).await;
    }
    carried
}

async fn record(store: &Arc<Store>, id: &str, state: ProposalState) {
    let (store, id) = (store.clone(), id.to_owned());
    let done =
        blocking(move || shelf::set_proposal(&store, &id, state).map_err(|e| e.to_string())).await;
    if let Err(err) = done {
        warn!(cause = %err, "cannot record where a proposed lesson stands");
    }
}

/// A lesson's object and its files' manifests, from the store.
type Planned = (Vec<u8>, Vec<(Hash, catalog::FileManifest)>);

/// The children's proposals waiting in a county edge's queue (`below`):
/// those not yet forwarded go upstream under the child's name (chunks the
/// origin lacks only, within this pass's window and cap, as the school's
/// own do); the bureau's verdicts on those forwarded are recorded there,
/// where the children ask for them.
async fn forward(
    store: &Arc<Store>,
    client: &Client,
    below: &Path,
    stop: &CancellationToken,
) -> Carried {
    let mut carried = Carried::default();
    if client.origin_revision < server::protocol::REVISION_FORWARDED_PROPOSALS {
        warn!(
            "the upstream server predates forwarded proposals; the edges below keep theirs waiting here"
        );
        return carried;
    }
    let dir = below.to_owned();
    let queue = blocking(move || server::review::to_forward(&dir).map_err(|e| e.to_string())).await;
    let (pending, waiting) = match queue {
        Ok(queue) => queue,
        Err(err) => {
            warn!(cause = %err, "cannot read the proposals of the edges below");
            return carried;
        }
    };
    for entry in pending {
        if stop.is_cancelled() {
            return carried;
        }
        let outgoing = Outgoing::new(
            entry.lesson,
            &entry.id,
            &entry.teacher,
            entry.asked_at,
            Some(&entry.edge),
        )
        .about(&entry.grade, &entry.subject);
        match carry(store, client, &outgoing, stop).await {
            Ok(bytes) => {
                carried.sent += 1;
                carried.bytes += bytes;
                info!(edge = %entry.edge, lesson = %entry.id, sent_bytes = bytes, "forwarded a proposal of an edge below to the bureau");
                let (dir, edge, id, hash) = (
                    below.to_owned(),
                    entry.edge.clone(),
                    entry.id.clone(),
                    entry.lesson,
                );
                let done = blocking(move || {
                    server::review::set_forwarded(&dir, &edge, &id, Some(hash))
                        .map_err(|e| e.to_string())
                })
                .await;
                if let Err(err) = done {
                    warn!(cause = %err, "cannot record a forwarded proposal");
                }
            }
            Err(CarryError::Stopped) => return carried,
            Err(err) => {
                warn!(edge = %entry.edge, lesson = %entry.id, cause = %err, "a proposal of an edge below could not be forwarded; it goes with the next pass");
            }
        }
    }
    // Where the forwarded ones stand, asked per child.
    let mut by_child: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in waiting {
        by_child.entry(entry.edge).or_default().push(entry.id);
    }
    for (child, ids) in by_child {
        for ids in ids.chunks(server::review::MAX_STATUS_IDS) {
            if stop.is_cancelled() {
                return carried;
            }
            let request = ProposeRequest::StatusFor {
                child: child.clone(),
                ids: ids.to_vec(),
            };
            let verdicts = match ask(client, request).await {
                Ok(ProposeAnswer::Status { verdicts }) if verdicts.len() == ids.len() => verdicts,
                Ok(other) => {
                    warn!(answer = ?other, "the origin answered the forwarded proposals' status unexpectedly");
                    continue;
                }
                Err(err) => {
                    warn!(cause = %err, "cannot ask where the forwarded proposals stand; asking again next pass");
                    return carried;
                }
            };
            for (id, verdict) in ids.iter().zip(verdicts) {
                let (dir, child, id) = (below.to_owned(), child.clone(), id.clone());
                let done = match verdict {
                    Verdict::Waiting => continue,
                    Verdict::Unknown => {
                        blocking(move || {
                            server::review::set_forwarded(&dir, &child, &id, None)
                                .map_err(|e| e.to_string())
                        })
                        .await
                    }
                    decided => {
                        carried.decided += 1;
                        blocking(move || {
                            server::review::heard_upstream(&dir, &child, &id, decided)
                                .map_err(|e| e.to_string())
                        })
                        .await
                    }
                };
                if let Err(err) = done {
                    warn!(cause = %err, "cannot record where a forwarded proposal stands");
                }
            }
        }
    }
    carried
}

/// A proposal to send: its lesson object, the proposal (the lesson's bytes
/// are filled in when sent), and the edge below it came from, if any.
struct Outgoing {
    lesson: Hash,
    proposal: server::review::Proposal,
    child: Option<String>,
}

impl Outgoing {
    fn new(lesson: Hash, id: &str, teacher: &str, asked_at: u64, child: Option<&str>) -> Self {
        Outgoing {
            lesson,
            proposal: server::review::Proposal {
                id: id.to_owned(),
                teacher: teacher.to_owned(),
                lesson: Vec::new(),
                grade: String::new(),
                subject: String::new(),
                asked_at,
            },
            child: child.map(str::to_owned),
        }
    }

    /// With the teacher's grade and subject.
    fn about(mut self, grade: &str, subject: &str) -> Self {
        self.proposal.grade = grade.to_owned();
        self.proposal.subject = subject.to_owned();
        self
    }
}

/// Sends one proposal; the chunk bytes sent.
async fn carry(
    store: &Arc<Store>,
    client: &Client,
    outgoing: &Outgoing,
    stop: &CancellationToken,
) -> Result<u64, CarryError> {
    let (lesson, manifests): Planned = {
        let (store, hash) = (store.clone(), outgoing.lesson);
        blocking(move || {
            let object = store
                .require_object(&hash)
                .map_err(|e| format!("reading the lesson: {e}"))?;
            let lesson = object
                .clone()
                .into_lesson()
                .map_err(|e| format!("the lesson object: {e}"))?;
            let mut manifests = Vec::new();
            for file in &lesson.files {
                match store.require_object(&file.manifest) {
                    Ok(Object::Manifest(manifest)) => manifests.push((file.manifest, manifest)),
                    Ok(_) => return Err(format!("{}: not a file manifest", file.path)),
                    Err(e) => return Err(format!("{}: {e}", file.path)),
                }
            }
            Ok((object.encode(), manifests))
        })
        .await?
    };
    let mut needed = Vec::with_capacity(manifests.len());
    for batch in plan_batches(
        manifests
            .iter()
            .map(|(_, m)| Object::Manifest(m.clone()).encode())
            .collect(),
    ) {
        let count = batch.len();
        match ask(client, ProposeRequest::Plan { manifests: batch }).await? {
            ProposeAnswer::Needed { files } if files.len() == count => needed.extend(files),
            other => return Err(CarryError::Link(format!("unexpected answer {other:?}"))),
        }
    }
    let mut sent = 0u64;
    for ((manifest_hash, manifest), wanted) in manifests.iter().zip(needed) {
        if wanted.is_empty() {
            continue;
        }
        let offsets: Vec<(u64, u32)> = manifest
            .chunk_offsets()
            .map(|(offset, chunk)| (offset, chunk.len))
            .collect();
        let mut pending: Vec<u32> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut wanted = wanted.into_iter().peekable();
        while let Some(index) = wanted.next() {
            let Some(&(_, len)) = offsets.get(index as usize) else {
                return Err(CarryError::Refused(format!(
                    "asked for chunk {index} of a file of {} chunks",
                    offsets.len()
                )));
            };
            pending.push(index);
            pending_bytes += len as usize;
            let full = wanted
                .peek()
                .and_then(|next| offsets.get(*next as usize))
                .is_none_or(|(_, next)| pending_bytes + *next as usize > REQUEST_BYTES);
            if !full {
                continue;
            }
            if stop.is_cancelled() {
                return Err(CarryError::Stopped);
            }
            let chunks =
                read_chunks(store, manifest.blob, &offsets, std::mem::take(&mut pending)).await?;
            client.pace_send(pending_bytes).await;
            sent += pending_bytes as u64;
            pending_bytes = 0;
            match ask(
                client,
                ProposeRequest::Chunks {
                    files: vec![(*manifest_hash, chunks)],
                },
            )
            .await?
            {
                ProposeAnswer::Stored { .. } => {}
                other => return Err(CarryError::Link(format!("unexpected answer {other:?}"))),
            }
        }
    }
    let proposal = server::review::Proposal {
        lesson,
        ..outgoing.proposal.clone()
    };
    let request = match &outgoing.child {
        None => ProposeRequest::Submit(proposal),
        Some(child) => ProposeRequest::SubmitFor {
            child: child.clone(),
            proposal,
        },
    };
    match ask(client, request).await? {
        ProposeAnswer::Queued => Ok(sent),
        other => Err(CarryError::Link(format!("unexpected answer {other:?}"))),
    }
}

/// Manifests in plans the origin takes: together under the usual request
/// limit, and a larger one alone (up to [`server::review::MAX_PROPOSAL_PLAN`]).
fn plan_batches(manifests: Vec<Vec<u8>>) -> Vec<Vec<Vec<u8>>> {
    const ROOM: usize = server::protocol::MAX_REQUEST - 4 * 1024;
    let mut batches: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut bytes = 0;
    for manifest in manifests {
        let len = manifest.len() + 8;
        let fits = batches.last().is_some_and(|b| !b.is_empty()) && bytes + len <= ROOM;
        if fits {
            bytes += len;
            if let Some(last) = batches.last_mut() {
                last.push(manifest);
            }
        } else {
            bytes = len;
            batches.push(vec![manifest]);
        }
    }
    batches
}

/// Reads chunks `indices` of blob `blob` from the store.
async fn read_chunks(
    store: &Arc<Store>,
    blob: Hash,
    offsets: &[(u64, u32)],
    indices: Vec<u32>,
) -> Result<Vec<IndexedChunk>, CarryError> {
    let store = store.clone();
    let spans: Vec<(u32, u64, u32)> = indices
        .into_iter()
        .map(|i| (i, offsets[i as usize].0, offsets[i as usize].1))
        .collect();
    blocking(move || {
        let mut file = match store.open_blob(&blob) {
            Ok(catalog::store::OpenedBlob::Verified { file, .. }) => file,
            Ok(_) => {
                return Err(format!(
                    "file {blob} is not whole in the store (the scrub may have set it aside)"
                ));
            }
            Err(e) => return Err(format!("opening file {blob}: {e}")),
        };
        let mut chunks = Vec::with_capacity(spans.len());
        for (index, offset, len) in spans {
            use std::io::Seek;
            let mut bytes = vec![0u8; len as usize];
            file.seek(std::io::SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| format!("reading file {blob}: {e}"))?;
            chunks.push(IndexedChunk(index, Bytes::from(bytes)));
        }
        Ok(chunks)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small manifests share a plan under the usual limit; a large one goes
    /// alone, so every plan is one the origin takes.
    #[test]
    fn issue_17_plans_keep_small_manifests_together_and_large_ones_alone() {
        let small = || vec![0u8; 10_000];
        let large = vec![0u8; 200_000];
        let batches = plan_batches(vec![
            small(),
            small(),
            large.clone(),
            small(),
            small(),
            small(),
            small(),
            small(),
            small(),
            small(),
        ]);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 6, 1]);
        for batch in &batches {
            let request = Request::Propose(ProposeRequest::Plan {
                manifests: batch.clone(),
            });
            let len = server::protocol::encode(&request).len() - 4;
            let edge = server::serve::Caller::Edge("school".into());
            assert!(
                edge.allows(len, &request),
                "a plan of {} manifests, {len} bytes",
                batch.len()
            );
        }
    }
}
