//! Teachers' proposals on USB sticks (issue 17), for schools whose only
//! link to the bureau is a stick.
//!
//! 1. `edge have` puts the school's proposals on the have list
//!    ([`HaveList::add_proposals`]): each queued one is carried whole
//!    ([`StickProposal::Carry`]: the lesson, its files' manifests, and the
//!    chunks of those files that no file of the catalog the edge holds has,
//!    so chunks the origin published are not carried; at most
//!    [`MAX_CARRIED`], the oldest first), each one sent before is only asked
//!    about ([`StickProposal::Ask`]). The list is sealed with the edge's
//!    key, so no one else can propose in the school's name.
//! 2. `bundle create --for` on the origin files them as the network path
//!    does ([`take_proposals`]: plan, the chunks the origin still lacks,
//!    submit, through [`server::review::take`]) and writes the answers,
//!    sealed with the edge's key, into the bundle ([`ANSWERS`]). On a
//!    county edge, for a school below it, they join the county's queue of
//!    its children's proposals, which its sync pass forwards.
//! 3. `edge import` applies the answers for its own key ([`apply`]): filed
//!    proposals are "with the bureau", verdicts reach the teacher. A
//!    proposal the origin could not complete (it no longer holds chunks the
//!    stick left out) is carried whole on the next have list.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;
use catalog::{FileManifest, Hash, Object, Store};
use serde::{Deserialize, Serialize};
use server::admin::{Desk, IndexedChunk};
use server::review::{Proposal, ProposeAnswer, ProposeRequest, Verdict};
use server::tokens::{self, Book as TokenBook};
use tracing::{info, warn};

use super::have::{HaveError, HaveList};
use crate::teachers::shelf::{self, ProposalState};

/// The answers file in a bundle folder.
pub const ANSWERS: &str = "proposals.json";
/// The largest proposals section of a have list (lessons and manifests).
pub const MAX_META: usize = 64 * 1024 * 1024;
/// Proposals carried on one have list: as many as the bureau keeps waiting
/// from one school.
pub const MAX_CARRIED: usize = server::review::MAX_WAITING_PER_EDGE;
/// Proposals asked about on one have list.
pub const MAX_ASKED: usize = server::review::MAX_STATUS_IDS;
/// Chunk bytes handed to the origin's writer at a time.
const PUT_BYTES: usize = 8 * 1024 * 1024;

/// A proposal on a have list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickProposal {
    /// Sent before (over the network or a stick): where does it stand?
    Ask { id: String },
    /// Carried: the proposal, its files' encoded manifests, and per file
    /// the chunk indices (ascending) whose bytes follow in the payload.
    Carry {
        proposal: Proposal,
        manifests: Vec<Vec<u8>>,
        chunks: Vec<Vec<u32>>,
    },
}

/// The origin's answer to one proposal on a have list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StickAnswer {
    /// In the review queue: this lesson object, with `carried` chunk bytes
    /// from the stick the origin lacked.
    Filed { lesson: Hash, carried: u64 },
    /// Where a proposal sent before stands.
    Heard(Verdict),
    /// Not filed, and why; `whole`: the next have list carries every chunk.
    NotFiled { reason: String, whole: bool },
}

/// `proposals.json`: the answers for one edge, sealed with its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// The edge's name at the origin.
    pub edge: String,
    /// Per proposal id.
    pub answers: Vec<(String, StickAnswer)>,
    pub seal: [u8; 32],
}

fn proposals_key(report_key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("shanlu 2026-12 stick proposals", report_key)
}

fn answers_key(report_key: &[u8; 32]) -> [u8; 32] {
    blake3::derive_key("shanlu 2026-12 stick proposal answers", report_key)
}

fn encoded<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("postcard encodes plain data")
}

/// The seal of `proposals` under the edge's report key.
pub fn seal_proposals(report_key: &[u8; 32], proposals: &[StickProposal]) -> [u8; 32] {
    *blake3::keyed_hash(&proposals_key(report_key), &encoded(&proposals)).as_bytes()
}

impl Answers {
    pub fn seal(report_key: &[u8; 32], edge: String, answers: Vec<(String, StickAnswer)>) -> Self {
        let seal =
            *blake3::keyed_hash(&answers_key(report_key), &encoded(&(&edge, &answers))).as_bytes();
        Answers {
            edge,
            answers,
            seal,
        }
    }

    /// Whether the answers were sealed with `report_key` (in constant time).
    pub fn verify(&self, report_key: &[u8; 32]) -> bool {
        blake3::keyed_hash(
            &answers_key(report_key),
            &encoded(&(&self.edge, &self.answers)),
        ) == self.seal
    }
}

/// A carried file: its manifest's hash, the manifest, and the carried
/// chunks as (index, offset in the file, length).
type CarriedFile = (Hash, FileManifest, Vec<(u32, u64, u32)>);

/// The files of a [`StickProposal::Carry`], checked: every manifest decodes
/// to a file manifest, and the chunk indices are ascending and its own.
fn carried_files(manifests: &[Vec<u8>], chunks: &[Vec<u32>]) -> Option<Vec<CarriedFile>> {
    if manifests.len() != chunks.len() || manifests.len() > catalog::limits::MAX_FILES {
        return None;
    }
    let mut files = Vec::with_capacity(manifests.len());
    for (bytes, wanted) in manifests.iter().zip(chunks) {
        let Ok(Object::Manifest(manifest)) = Object::decode(bytes) else {
            return None;
        };
        if !wanted.windows(2).all(|pair| pair[0] < pair[1]) {
            return None;
        }
        let offsets: Vec<(u64, u32)> = manifest
            .chunk_offsets()
            .map(|(offset, chunk)| (offset, chunk.len))
            .collect();
        let mut spans = Vec::with_capacity(wanted.len());
        for &index in wanted {
            let &(offset, len) = offsets.get(index as usize)?;
            spans.push((index, offset, len));
        }
        files.push((Hash::of(bytes), manifest, spans));
    }
    Some(files)
}

/// The chunk bytes `proposals` carry; `None` when one names chunks its
/// files do not have.
pub fn payload_len(proposals: &[StickProposal]) -> Option<u64> {
    let mut total = 0u64;
    for proposal in proposals {
        if let StickProposal::Carry {
            manifests, chunks, ..
        } = proposal
        {
            for (_, _, spans) in carried_files(manifests, chunks)? {
                total += spans.iter().map(|&(_, _, len)| u64::from(len)).sum::<u64>();
            }
        }
    }
    Some(total)
}

impl HaveList {
    /// Adds the teachers' proposals of the edge whose store is `store` and
    /// whose token is `token`, sealed. Chunks in [`HaveList::chunks`] (held
    /// in the catalog's files) are not carried. Blocking.
    pub fn add_proposals(&mut self, store: &Store, token: &str) -> Result<(), HaveError> {
        let entries = shelf::proposed(store).map_err(|e| HaveError::Proposals(e.to_string()))?;
        let mut queued: Vec<&shelf::Entry> = entries
            .iter()
            .filter(|e| {
                e.proposal
                    .as_ref()
                    .is_some_and(|p| p.state == ProposalState::Queued)
            })
            .collect();
        queued.sort_by_key(|e| e.proposal.as_ref().map_or(0, |p| p.asked_at));
        let mut proposals = Vec::new();
        // What the carried proposals add to the list's metadata, kept well
        // under what a have list may hold (the rest go on the next one).
        let mut meta = 0usize;
        for entry in queued {
            if proposals.len() == MAX_CARRIED {
                break;
            }
            let whole = entry.proposal.as_ref().is_some_and(|p| p.stick_whole);
            match carry(store, entry, if whole { None } else { Some(&self.chunks) }) {
                Ok(carried) => {
                    let len = encoded(&carried).len();
                    if len > MAX_META / 2 {
                        let why = "its files' descriptions are too large for a have list; it goes with a sync over the network";
                        let _ = shelf::not_sent(store, &entry.id, why);
                        continue;
                    }
                    meta += len;
                    if meta > MAX_META / 2 {
                        break;
                    }
                    proposals.push(carried);
                }
                Err(why) => {
                    warn!(lesson = %entry.id, cause = %why, "a proposed lesson cannot go on the have list");
                    let _ = shelf::not_sent(store, &entry.id, &why);
                }
            }
        }
        proposals.extend(
            (entries.iter())
                .filter(|e| {
                    e.proposal
                        .as_ref()
                        .is_some_and(|p| matches!(p.state, ProposalState::Sent { .. }))
                })
                .take(MAX_ASKED)
                .map(|e| StickProposal::Ask { id: e.id.clone() }),
        );
        self.seal = seal_proposals(&server::report::report_key_of_token(token), &proposals);
        self.proposals = proposals;
        Ok(())
    }
}

/// The [`StickProposal::Carry`] of one queued lesson: every chunk of its
/// files, less those in `held` (when given).
fn carry(
    store: &Store,
    entry: &shelf::Entry,
    held: Option<&BTreeSet<Hash>>,
) -> Result<StickProposal, String> {
    let object = store
        .require_object(&entry.lesson)
        .map_err(|e| format!("reading the lesson: {e}"))?;
    let lesson = object
        .clone()
        .into_lesson()
        .map_err(|e| format!("the lesson object: {e}"))?;
    let mut manifests = Vec::with_capacity(lesson.files.len());
    let mut chunks = Vec::with_capacity(lesson.files.len());
    for file in &lesson.files {
        let manifest = match store.require_object(&file.manifest) {
            Ok(Object::Manifest(manifest)) => manifest,
            Ok(_) => return Err(format!("{}: not a file manifest", file.path)),
            Err(e) => return Err(format!("{}: {e}", file.path)),
        };
        if !store
            .check_held(&manifest.blob)
            .map_err(|e| e.to_string())?
        {
            return Err(format!(
                "{} is not whole in the edge's store (the scrub may have set it aside); upload the lesson again",
                file.path
            ));
        }
        chunks.push(
            (manifest.chunks.iter().enumerate())
                .filter(|(_, chunk)| held.is_none_or(|held| !held.contains(&chunk.hash)))
                .map(|(index, _)| index as u32)
                .collect(),
        );
        manifests.push(Object::Manifest(manifest).encode());
    }
    Ok(StickProposal::Carry {
        proposal: Proposal {
            id: entry.id.clone(),
            teacher: entry.teacher.clone(),
            lesson: object.encode(),
            grade: entry.grade.clone(),
            subject: entry.subject.clone(),
            asked_at: entry.proposal.as_ref().map_or(0, |p| p.asked_at),
        },
        manifests,
        chunks,
    })
}

/// Writes the chunk bytes `proposals` carry, read from `store`.
pub(super) fn write_payload(
    proposals: &[StickProposal],
    store: &Store,
    out: &mut impl Write,
    progress: &indicatif::ProgressBar,
) -> Result<(), HaveError> {
    let mut buffer = Vec::new();
    for proposal in proposals {
        let StickProposal::Carry {
            manifests, chunks, ..
        } = proposal
        else {
            continue;
        };
        let files = carried_files(manifests, chunks)
            .ok_or_else(|| HaveError::Proposals("a proposal's manifests do not decode".into()))?;
        for (_, manifest, spans) in files {
            if spans.is_empty() {
                continue;
            }
            let not_whole = |detail: String| {
                HaveError::Proposals(format!(
                    "file {} of a proposed lesson: {detail}; make the have list again",
                    manifest.blob
                ))
            };
            let mut file = match store.open_blob(&manifest.blob)? {
                catalog::store::OpenedBlob::Verified { file, .. } => file,
                _ => return Err(not_whole("not whole in the store".into())),
            };
            for (_, offset, len) in spans {
                buffer.resize(len as usize, 0);
                file.seek(SeekFrom::Start(offset))
                    .and_then(|_| file.read_exact(&mut buffer))
                    .map_err(|e| not_whole(format!("reading it: {e}")))?;
                out.write_all(&buffer)
                    .map_err(|e| HaveError::Proposals(format!("writing the have list: {e}")))?;
                progress.inc(u64::from(len));
            }
        }
    }
    Ok(())
}

/// What [`take_proposals`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Taken {
    /// Proposals now in the review queue.
    pub filed: u64,
    /// Chunk bytes from the stick the origin lacked.
    pub bytes: u64,
    /// Proposals sent before whose standing the bundle carries back.
    pub asked: u64,
    /// Proposals not filed (the reason goes back to the teacher).
    pub refused: u64,
}

/// Files the have list's proposals on `desk` (the origin's, or a county
/// edge's for the edges below it, whose tokens are in `data`) and answers
/// those asked about; the answers, sealed for the edge, or `None` when
/// there is nothing to answer (no proposals, an edge not served here, or a
/// seal that is not the edge's).
pub fn take_proposals(data: &Path, desk: &Desk, have: &HaveList) -> (Option<Answers>, Taken) {
    let mut taken = Taken::default();
    if have.proposals.is_empty() {
        return (None, taken);
    }
    let Some(edge) = have.edge.as_deref() else {
        warn!("the have list's proposals name no edge (it never synced); they stay on the edge");
        return (None, taken);
    };
    let record = match tokens::list(data, TokenBook::Edges) {
        Ok(records) => records.into_iter().find(|r| r.name == edge),
        Err(err) => {
            warn!(cause = %err, "cannot read the origin's edges to take the stick's proposals");
            return (None, taken);
        }
    };
    let Some(record) = record else {
        warn!(%edge, "the have list's edge is not one this origin or county edge serves; its proposals stay on the edge");
        return (None, taken);
    };
    let key = server::report::report_key(&record.token_b3);
    if seal_proposals(&key, &have.proposals) != have.seal {
        warn!(%edge, "the have list's proposals are not sealed with that edge's key; ignored");
        return (None, taken);
    }
    let mut answers = Vec::with_capacity(have.proposals.len());
    let mut payload = have.payload.clone().map(|at| (at, None::<std::fs::File>));
    let mut offset = 0u64;
    let mut asked = Vec::new();
    for proposal in &have.proposals {
        match proposal {
            StickProposal::Ask { id } => asked.push(id.clone()),
            StickProposal::Carry {
                proposal,
                manifests,
                chunks,
            } => {
                let files = carried_files(manifests, chunks).unwrap_or_default();
                let len: u64 = (files.iter())
                    .flat_map(|(_, _, spans)| spans.iter().map(|&(_, _, len)| u64::from(len)))
                    .sum();
                let answer = file_one(desk, edge, proposal, manifests, &files, |at, buf| {
                    read_payload(&mut payload, offset + at, buf)
                });
                offset += len;
                match &answer {
                    StickAnswer::Filed { carried, .. } => {
                        taken.filed += 1;
                        taken.bytes += carried;
                        info!(%edge, proposal = %proposal.id, carried, "a teacher's lesson arrived on a stick for review");
                    }
                    StickAnswer::NotFiled { reason, .. } => {
                        taken.refused += 1;
                        warn!(%edge, proposal = %proposal.id, cause = %reason, "a proposal on the stick was not filed; the teacher is told");
                    }
                    StickAnswer::Heard(_) => {}
                }
                answers.push((proposal.id.clone(), answer));
            }
        }
    }
    if !asked.is_empty() {
        match server::review::take(desk, edge, ProposeRequest::Status { ids: asked.clone() }) {
            Ok(ProposeAnswer::Status { verdicts }) if verdicts.len() == asked.len() => {
                taken.asked = asked.len() as u64;
                answers.extend(
                    asked
                        .into_iter()
                        .zip(verdicts)
                        .map(|(id, v)| (id, StickAnswer::Heard(v))),
                );
            }
            Ok(_) => warn!(%edge, "the review queue answered the stick's questions unexpectedly"),
            Err(err) => {
                warn!(%edge, cause = %err, "cannot read the review queue for the stick's proposals")
            }
        }
    }
    (Some(Answers::seal(&key, edge.to_owned(), answers)), taken)
}

/// Reads `buf.len()` payload bytes at `at` (from the payload's start).
fn read_payload(
    payload: &mut Option<(super::have::Payload, Option<std::fs::File>)>,
    at: u64,
    buf: &mut [u8],
) -> Result<(), String> {
    let Some((place, file)) = payload else {
        return Err("the have list carries no chunk bytes".to_owned());
    };
    if at + buf.len() as u64 > place.len {
        return Err("the have list is cut short; make it again on the edge".to_owned());
    }
    if file.is_none() {
        *file = Some(
            std::fs::File::open(&place.path)
                .map_err(|e| format!("opening {}: {e}", place.path.display()))?,
        );
    }
    let Some(file) = file else {
        return Err("the have list is not open".to_owned());
    };
    file.seek(SeekFrom::Start(place.offset + at))
        .and_then(|_| file.read_exact(buf))
        .map_err(|e| format!("reading {}: {e}", place.path.display()))
}

/// Files one carried proposal; `read(at, buf)` reads its chunk bytes from
/// `at` within its part of the payload.
fn file_one(
    desk: &Desk,
    edge: &str,
    proposal: &Proposal,
    manifests: &[Vec<u8>],
    files: &[CarriedFile],
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> StickAnswer {
    let refused = |reason: String| StickAnswer::NotFiled {
        reason,
        whole: false,
    };
    if files.len() != manifests.len() {
        return refused("its files' manifests do not decode".to_owned());
    }
    let needed = match server::review::take(
        desk,
        edge,
        ProposeRequest::Plan {
            manifests: manifests.to_vec(),
        },
    ) {
        Ok(ProposeAnswer::Needed { files: needed }) if needed.len() == files.len() => needed,
        Ok(_) => return refused("the origin answered its plan unexpectedly".to_owned()),
        Err(err) => return refused(err),
    };
    let mut at = 0u64;
    let mut carried = 0u64;
    let mut lacking = 0usize;
    for ((hash, _, spans), needed) in files.iter().zip(needed) {
        let needed: BTreeSet<u32> = needed.into_iter().collect();
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut on_stick = BTreeSet::new();
        for &(index, _, len) in spans {
            on_stick.insert(index);
            let here = at;
            at += u64::from(len);
            if !needed.contains(&index) {
                continue;
            }
            let mut bytes = vec![0u8; len as usize];
            if let Err(err) = read(here, &mut bytes) {
                return refused(err);
            }
            batch.push(IndexedChunk(index, Bytes::from(bytes)));
            batch_bytes += len as usize;
            if batch_bytes >= PUT_BYTES {
                if let Err(err) = put(desk, edge, *hash, std::mem::take(&mut batch)) {
                    return refused(err);
                }
                carried += batch_bytes as u64;
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            if let Err(err) = put(desk, edge, *hash, batch) {
                return refused(err);
            }
            carried += batch_bytes as u64;
        }
        lacking += needed.difference(&on_stick).count();
    }
    if lacking > 0 {
        return StickAnswer::NotFiled {
            reason: format!(
                "the bureau's server no longer holds {lacking} piece(s) of its files that the stick left out \
                 (they were in lessons it has since removed); the next have list carries the whole lesson"
            ),
            whole: true,
        };
    }
    match server::review::take(desk, edge, ProposeRequest::Submit(proposal.clone())) {
        Ok(ProposeAnswer::Queued) => StickAnswer::Filed {
            lesson: Hash::of(&proposal.lesson),
            carried,
        },
        Ok(_) => refused("the origin answered its submission unexpectedly".to_owned()),
        Err(err) => refused(err),
    }
}

fn put(desk: &Desk, edge: &str, manifest: Hash, chunks: Vec<IndexedChunk>) -> Result<(), String> {
    match server::review::take(
        desk,
        edge,
        ProposeRequest::Chunks {
            files: vec![(manifest, chunks)],
        },
    )? {
        ProposeAnswer::Stored { .. } => Ok(()),
        _ => Err("the origin answered its chunks unexpectedly".to_owned()),
    }
}

/// What [`apply`] changed on the edge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Heard {
    /// Proposals now with the bureau.
    pub filed: u64,
    /// Verdicts the teachers now see.
    pub decided: u64,
    /// Proposals the origin could not file (the reason is on /teach).
    pub not_filed: u64,
}

/// Applies the bundle's answers sealed for this edge (`token`); never an
/// error (each problem is logged, and the proposals stay as they were).
pub fn apply(folder: &Path, store: &Store, token: &str) -> Heard {
    let mut heard = Heard::default();
    let path = folder.join(ANSWERS);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return heard,
        Err(err) => {
            warn!(path = %path.display(), cause = %err, "cannot read the bundle's answers to proposals; ignored");
            return heard;
        }
    };
    let answers: Answers = match serde_json::from_slice(&bytes) {
        Ok(answers) => answers,
        Err(err) => {
            warn!(path = %path.display(), cause = %err, "the bundle's answers to proposals do not read; ignored");
            return heard;
        }
    };
    if !answers.verify(&server::report::report_key_of_token(token)) {
        info!(edge = %answers.edge, "the bundle's answers to proposals are for another edge; left alone");
        return heard;
    }
    let entries = match shelf::proposed(store) {
        Ok(entries) => entries,
        Err(err) => {
            warn!(cause = %err, "cannot read the teachers' proposals to apply the bundle's answers");
            return heard;
        }
    };
    for (id, answer) in answers.answers.into_iter().take(MAX_CARRIED + MAX_ASKED) {
        let Some((entry, proposal)) = (entries.iter())
            .find(|e| e.id == id)
            .and_then(|e| Some((e, e.proposal.as_ref()?)))
        else {
            continue;
        };
        let changed = match (answer, &proposal.state) {
            (StickAnswer::Filed { lesson, carried }, ProposalState::Queued)
                if lesson == entry.lesson =>
            {
                heard.filed += 1;
                shelf::set_proposal(
                    store,
                    &id,
                    ProposalState::Sent {
                        at: server::origin::now_secs(),
                        lesson,
                        sent_bytes: carried,
                    },
                )
            }
            (StickAnswer::Heard(verdict), ProposalState::Sent { .. }) => {
                let state = match verdict {
                    Verdict::Waiting => continue,
                    Verdict::Approved { course } => ProposalState::Approved { course },
                    Verdict::Declined { note } => ProposalState::Declined { note },
                    Verdict::Unknown => ProposalState::Queued,
                };
                heard.decided += 1;
                shelf::set_proposal(store, &id, state)
            }
            (StickAnswer::NotFiled { reason, whole }, ProposalState::Queued) => {
                heard.not_filed += 1;
                shelf::not_sent_by_stick(store, &id, &reason, whole)
            }
            // Answers to what the edge has since moved past (sent over the
            // network meanwhile, retitled, decided): nothing to change.
            _ => continue,
        };
        if let Err(err) = changed {
            warn!(lesson = %id, cause = %err, "cannot record the bundle's answer to a proposal");
        }
    }
    heard
}

#[cfg(test)]
mod tests {
    use catalog::testdata::manifest_of_chunks;

    use super::*;

    fn carried(chunks: Vec<u32>) -> StickProposal {
        let manifest = manifest_of_chunks(&[b"aaaa", b"bbbbbb", b"cc"], "audio/mpeg");
        StickProposal::Carry {
            proposal: Proposal {
                id: "t-1".into(),
                teacher: "li".into(),
                lesson: vec![1, 2, 3],
                grade: String::new(),
                subject: String::new(),
                asked_at: 5,
            },
            manifests: vec![Object::Manifest(manifest).encode()],
            chunks: vec![chunks],
        }
    }

    /// Version 3 carries the proposals and, after them, the chunk bytes,
    /// whose place is noted and whose length must be exactly what the
    /// proposals name; the seal is the edge's.
    #[test]
    fn issue_17_have_list_carries_sealed_proposals_and_their_chunks() {
        let key = server::report::report_key_of_token("school-token");
        let proposals = vec![carried(vec![0, 2]), StickProposal::Ask { id: "t-0".into() }];
        let have = HaveList {
            sequence: Some(4),
            edge: Some("school-7".into()),
            seal: seal_proposals(&key, &proposals),
            proposals,
            ..HaveList::default()
        };
        assert_eq!(payload_len(&have.proposals), Some(4 + 2));
        let mut bytes = have.encode();
        let head = bytes.len() as u64;
        bytes.extend_from_slice(b"aaaacc");
        let path = Path::new("have.bin");
        let read = HaveList::decode(path, &bytes).expect("decodes");
        let payload = read.payload.clone().expect("a payload");
        assert_eq!((payload.offset, payload.len), (head, 6));
        assert_eq!(read.proposals, have.proposals);
        assert_eq!(seal_proposals(&key, &read.proposals), read.seal);
        let other = server::report::report_key_of_token("another-school");
        assert_ne!(seal_proposals(&other, &read.proposals), read.seal);
        // Cut short, or with bytes after the chunks: refused.
        for (bytes, why) in [
            (&bytes[..bytes.len() - 1], "truncated"),
            (&[&bytes[..], b"x"].concat()[..], "bytes after its end"),
        ] {
            let err = HaveList::decode(path, bytes).expect_err("refused");
            assert!(err.to_string().contains(why), "{err}");
        }
        // A chunk index the file does not have, or indices out of order.
        for chunks in [vec![3], vec![2, 0], vec![1, 1]] {
            let bad = HaveList {
                proposals: vec![carried(chunks.clone())],
                ..HaveList::default()
            };
            let err = HaveList::decode(path, &bad.encode()).expect_err("refused");
            assert!(err.to_string().contains("do not have"), "{chunks:?}: {err}");
        }
    }

    /// The answers verify only with the key of the edge they were sealed
    /// for, and not once changed.
    #[test]
    fn issue_17_answers_are_sealed_for_one_edge() {
        let key = server::report::report_key_of_token("school-token");
        let answers = Answers::seal(
            &key,
            "school-7".into(),
            vec![(
                "t-1".into(),
                StickAnswer::Heard(Verdict::Declined {
                    note: "too short".into(),
                }),
            )],
        );
        assert!(answers.verify(&key));
        assert!(!answers.verify(&server::report::report_key_of_token("x")));
        let mut changed = answers.clone();
        changed.answers[0].1 = StickAnswer::Heard(Verdict::Approved { course: "c".into() });
        assert!(!changed.verify(&key));
        let json = serde_json::to_vec(&answers).expect("encodes");
        let back: Answers = serde_json::from_slice(&json).expect("decodes");
        assert!(back.verify(&key));
    }
}
