//! shanlu's sync protocol, spoken over QUIC (ALPN `shanlu/1`).
//!
//! Goals: an edge fetches exactly what it lacks — the signed catalog if newer,
//! metadata objects by hash, chunks by hash — with several requests in flight,
//! and every byte it receives can be checked against a hash it already trusts.
//! Non-goals: listing or browsing (the catalog's Merkle tree is the listing),
//! uploads (publishing happens on the origin), and trusting the transport:
//! TLS keeps the token private and the stream intact, but the receiver still
//! verifies every object and chunk before it touches its store.
//!
//! Each request travels on its own bidirectional stream: the client writes one
//! [`Request`] frame and finishes its side; the server answers with one or more
//! [`Response`] frames and finishes. The first stream of a connection must be a
//! [`Request::Hello`] carrying the edge's token; until it succeeds nothing else
//! is served, and a wrong token closes the connection with
//! [`CLOSE_UNAUTHORIZED`].
//!
//! A frame is a little-endian `u32` length and that many bytes of postcard.
//! The length is checked against a limit before any buffer is allocated.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use bytes::Bytes;
use catalog::Hash;

/// Protocol version spoken by this build: what a hello carries, and what an
/// origin requires of it. Every edge and origin since the first speaks 1.
pub const VERSION: u32 = 1;
/// The newest revision of version 1 this build answers, carried in the
/// [`Response::Welcome`]'s `version` (an edge that predates revisions ignores
/// it). Revision 2 adds [`Request::CatalogSince`]; an edge asks it only of an
/// origin whose welcome says 2 or more, and an older origin's welcome says 1.
/// Revision 3 adds [`Request::GetFileChunks`]; revision 4 (issue 15) adds
/// [`Request::Report`] and [`Request::Admin`]; revision 5 (issue 15) adds
/// the administrators' `Bases` and `PutDeltas` (uploads as deltas);
/// revision 6 (issue 17) adds [`Request::Propose`]; revision 7 (issue 17)
/// adds its `SubmitFor` and `StatusFor`, a county edge forwarding the
/// proposals of the edges below it.
pub const REVISION: u32 = 7;
/// The first revision that answers [`Request::CatalogSince`].
pub const REVISION_CATALOG_SINCE: u32 = 2;
/// The first revision that answers [`Request::GetFileChunks`].
pub const REVISION_FILE_CHUNKS: u32 = 3;
/// The first revision that takes [`Request::Report`] and [`Request::Admin`].
pub const REVISION_BUREAU: u32 = 4;
/// The first revision that answers `AdminRequest::Bases` and `PutDeltas`.
pub const REVISION_DELTAS: u32 = 5;
/// The first revision that takes [`Request::Propose`].
pub const REVISION_PROPOSALS: u32 = 6;
/// The first revision that takes proposals forwarded by a county edge.
pub const REVISION_FORWARDED_PROPOSALS: u32 = 7;
/// Most metadata objects sent after the catalog in one [`Request::CatalogSince`]
/// answer; the edge asks for any others with [`Request::GetObjects`].
pub const MAX_SINCE_OBJECTS: usize = 4096;
/// Most bytes of metadata objects in one such answer.
pub const MAX_SINCE_BYTES: usize = 16 * 1024 * 1024;

/// Largest request frame accepted (a request for 1024 hashes is ~33 KiB).
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response frame accepted: one object or one chunk with room to spare.
pub const MAX_RESPONSE: usize = catalog::object::MAX_OBJECT_LEN + 1024;
/// Most hashes in one [`Request::GetObjects`] or [`Request::GetChunks`].
pub const MAX_HASHES: usize = 1024;
/// Largest request frame on an administrator's connection, after its hello
/// (issue 15): uploads carry chunks. Everyone else keeps [`MAX_REQUEST`].
pub const MAX_ADMIN_REQUEST: usize = 8 * 1024 * 1024;

/// QUIC application close codes.
pub const CLOSE_DONE: u32 = 0;
pub const CLOSE_UNAUTHORIZED: u32 = 1;
pub const CLOSE_PROTOCOL: u32 = 2;
pub const CLOSE_VERSION: u32 = 3;
/// The origin cannot check tokens: its own configuration is broken (issue 11).
pub const CLOSE_ORIGIN_CONFIG: u32 = 4;

/// What an edge asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First on every connection.
    Hello { version: u32, token: String },
    /// The signed catalog, unless the edge already holds this sequence or a newer one.
    GetCatalog { have_sequence: Option<u64> },
    /// Metadata objects by hash.
    GetObjects { hashes: Vec<Hash> },
    /// Chunks by hash, each with the chunks it probably replaces (which the
    /// edge holds) so the origin can send it as a delta against them.
    GetChunks { wants: Vec<ChunkWant> },
    /// The edge's status, for the origin's fleet view (JSON text).
    ReportStatus { status: String },
    /// Sent by an edge with a bandwidth cap on the hello stream, right after
    /// the [`Request::Hello`]: the origin sends this connection's answers no
    /// faster than this. An origin that predates it reads only the hello.
    Pace { bytes_per_second: u64 },
    /// Revision 2: the signed catalog if newer than `have_sequence`, then,
    /// on the same stream, every metadata object (course, lesson, manifest)
    /// reachable from it and not reachable from the courses the edge holds
    /// (`have_courses`, the course hashes of its catalog; at most
    /// [`MAX_HASHES`]), up to [`MAX_SINCE_OBJECTS`] objects and
    /// [`MAX_SINCE_BYTES`] bytes. One round trip instead of one per level.
    CatalogSince {
        have_sequence: Option<u64>,
        have_courses: Vec<Hash>,
    },
    /// Revision 3: [`Request::GetChunks`] with the file each chunk is for (its
    /// manifest's hash). An origin answers it like `GetChunks`; a county edge
    /// serving edges below it fetches from upstream, once, the chunks of a
    /// file it does not hold yet. At most [`MAX_HASHES`] wants in all.
    GetFileChunks { files: Vec<FileWants> },
    /// Revision 4 (issue 15): one sealed report ([`crate::report::Envelope`],
    /// encoded): the sender's own, or one it forwards from an edge below it.
    /// Answered [`Response::Ok`] once kept (or already held): the sender may
    /// then forget it.
    Report {
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
    },
    /// Revision 4 (issue 15): an administrator's request; only on a
    /// connection whose hello carried an admin token.
    Admin(crate::admin::AdminRequest),
    /// Revision 6 (issue 17): a teacher's lesson proposed to the bureau, or
    /// where proposals stand ([`crate::review`]). Only from an edge; a
    /// request carrying chunks may be up to
    /// [`crate::review::MAX_PROPOSAL_REQUEST`] bytes.
    Propose(crate::review::ProposeRequest),
}

impl Request {
    /// The request's name in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::GetCatalog { .. } => "get_catalog",
            Request::GetObjects { .. } => "get_objects",
            Request::GetChunks { .. } => "get_chunks",
            Request::ReportStatus { .. } => "report_status",
            Request::Pace { .. } => "pace",
            Request::CatalogSince { .. } => "catalog_since",
            Request::GetFileChunks { .. } => "get_file_chunks",
            Request::Report { .. } => "report",
            Request::Admin(_) => "admin",
            Request::Propose(_) => "propose",
        }
    }
}

/// One chunk asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkWant {
    pub hash: Hash,
    /// Up to [`MAX_BASES`] chunks the edge holds, in file order.
    pub bases: Vec<Hash>,
}

/// The chunks wanted of one file, named by its manifest's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWants {
    pub file: Hash,
    pub wants: Vec<ChunkWant>,
}

impl FileWants {
    /// Every want of `files`, in order, without their files.
    pub fn flatten(files: Vec<FileWants>) -> Vec<ChunkWant> {
        files.into_iter().flat_map(|f| f.wants).collect()
    }

    /// How many chunks `files` ask for.
    pub fn count(files: &[FileWants]) -> usize {
        files.iter().map(|f| f.wants.len()).sum()
    }
}

/// Most base chunks named for one delta.
pub const MAX_BASES: usize = 4;

/// What the origin answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Welcome {
        version: u32,
        edge_name: String,
    },
    /// The encoded signed catalog, or `None` if the edge's is current.
    Catalog {
        #[serde(with = "serde_bytes")]
        signed: Option<Vec<u8>>,
    },
    Object {
        hash: Hash,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A chunk, encoded as `encoding` says (a delta uses all the requested bases).
    Chunk {
        hash: Hash,
        encoding: crate::codec::Encoding,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// The origin does not hold this object or chunk.
    Missing {
        hash: Hash,
    },
    Ok,
    /// The request was refused; the message says why.
    Error {
        message: String,
    },
    /// Revision 4 (issue 15): the answer to a [`Request::Admin`].
    Admin(crate::admin::AdminResponse),
    /// Revision 6 (issue 17): the answer to a [`Request::Propose`].
    Proposal(crate::review::ProposeAnswer),
}

/// Why a frame could not be read or written. The stream's peer is named by
/// the caller, which knows it (the connection's span, `ClientError`).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is over the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("frame does not decode as a message of this protocol")]
    Malformed(#[source] postcard::Error),
    #[error("frame has {extra} bytes after its message")]
    TrailingBytes { extra: usize },
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("reading a frame")]
    Read(#[source] std::io::Error),
    #[error("writing a frame")]
    Write(#[source] std::io::Error),
}

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Plain data always encodes. Sized first, so the bytes (a request may
    // carry 8 MiB of chunks) are copied once, into a buffer of the right size.
    let len = postcard::serialize_with_flavor::<T, _, usize>(
        message,
        postcard::ser_flavors::Size::default(),
    )
    .expect("postcard encodes plain data");
    let mut frame = Vec::with_capacity(4 + len);
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    let frame = postcard::to_extend(message, frame).expect("postcard encodes plain data");
    debug_assert_eq!(frame.len(), 4 + len);
    frame
}

/// Byte strings that travel without being copied into or out of a frame
/// (chunks in an administrator's upload): encoded by [`encode_pieces`] as
/// pieces of their own, decoded by [`decode_shared`] as slices of the frame.
/// Elsewhere (plain [`encode`] and [`decode`]) they are ordinary byte strings.
pub mod shared_bytes {
    use std::cell::RefCell;

    use bytes::Bytes;
    use serde::{Deserializer, Serializer};

    thread_local! {
        /// While [`super::encode_pieces`] runs: the byte strings serialized, in order.
        pub(super) static SERIALIZED: RefCell<Option<Vec<Bytes>>> = const { RefCell::new(None) };
        /// While [`super::decode_shared`] runs: the frame being decoded.
        pub(super) static FRAME: RefCell<Option<Bytes>> = const { RefCell::new(None) };
    }

    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.with_borrow_mut(|seen| {
            if let Some(seen) = seen {
                seen.push(bytes.clone());
            }
        });
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        deserializer.deserialize_bytes(Visitor)
    }

    struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(FRAME.with_borrow(|frame| match frame {
                Some(frame) if within(frame, v) => frame.slice_ref(v),
                _ => Bytes::copy_from_slice(v),
            }))
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }
    }

    fn within(frame: &[u8], part: &[u8]) -> bool {
        let (start, end) = (
            frame.as_ptr() as usize,
            frame.as_ptr() as usize + frame.len(),
        );
        let at = part.as_ptr() as usize;
        at >= start && at + part.len() <= end
    }
}

/// A byte string at least this long, serialized through [`shared_bytes`],
/// becomes a piece of its own in [`encode_pieces`].
const SHARED_PIECE: usize = 4096;

/// Collects postcard's output as pieces: byte strings serialized through
/// [`shared_bytes`] by reference, everything between them copied.
struct Pieces {
    shared: std::collections::VecDeque<Bytes>,
    glue: Vec<u8>,
    pieces: Vec<Bytes>,
}

impl postcard::ser_flavors::Flavor for Pieces {
    type Output = Vec<Bytes>;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.glue.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // postcard writes a byte string's bytes in one call, from the
        // string's own memory: that is how a shared one is recognised.
        while let Some(next) = self.shared.front() {
            if next.len() < SHARED_PIECE {
                self.shared.pop_front();
                continue;
            }
            if next.as_ptr() == data.as_ptr() && next.len() == data.len() {
                if !self.glue.is_empty() {
                    self.pieces
                        .push(Bytes::from(std::mem::take(&mut self.glue)));
                }
                self.pieces.extend(self.shared.pop_front());
                return Ok(());
            }
            break;
        }
        self.glue.extend_from_slice(data);
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Vec<Bytes>> {
        if !self.glue.is_empty() {
            self.pieces.push(Bytes::from(self.glue));
        }
        Ok(self.pieces)
    }
}

/// Encodes a frame like [`encode`], as pieces whose concatenation is the
/// frame: byte strings serialized through [`shared_bytes`] are not copied.
pub fn encode_pieces<T: Serialize>(message: &T) -> Vec<Bytes> {
    // Sizing the frame also collects the shared byte strings, in the order written.
    shared_bytes::SERIALIZED.set(Some(Vec::new()));
    let len = postcard::serialize_with_flavor::<T, _, usize>(
        message,
        postcard::ser_flavors::Size::default(),
    );
    let shared = shared_bytes::SERIALIZED.take().unwrap_or_default();
    let len = len.expect("postcard encodes plain data");
    let mut glue = Vec::with_capacity(if shared.is_empty() { 4 + len } else { 256 });
    glue.extend_from_slice(&(len as u32).to_le_bytes());
    let pieces = Pieces {
        shared: shared.into(),
        glue,
        pieces: Vec::new(),
    };
    postcard::serialize_with_flavor(message, pieces).expect("postcard encodes plain data")
}

/// Decodes a frame body like [`decode`]; byte strings deserialized through
/// [`shared_bytes`] are slices of `body`, not copies.
pub fn decode_shared<T: for<'de> Deserialize<'de>>(body: Bytes) -> Result<T, FrameError> {
    shared_bytes::FRAME.set(Some(body.clone()));
    let decoded = decode(&body);
    shared_bytes::FRAME.set(None);
    decoded
}

/// Decodes a frame body, refusing trailing bytes.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(body) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(FrameError::TrailingBytes { extra: rest.len() }),
        Err(err) => Err(FrameError::Malformed(err)),
    }
}

/// Reads one frame from a stream (a QUIC stream, or an HTTP body); `None`
/// at a clean end of stream.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<Option<T>, FrameError> {
    read_frame_in(stream, limit, usize::MAX, None, |_| std::future::ready(())).await
}

/// Reads one frame like [`read_frame`] into a buffer of `pool`, which
/// gets it back once nothing decoded from the frame uses it (an
/// administrator's upload, frame after frame of 8 MiB).
pub async fn read_frame_pooled<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
    pool: &'static crate::buffers::BufferPool,
) -> Result<Option<T>, FrameError> {
    read_frame_in(stream, limit, usize::MAX, Some(pool), |_| {
        std::future::ready(())
    })
    .await
}

/// The most bytes [`read_frame_paced`] reads before it calls `pace` again.
pub const PACE_PIECE: usize = 16 * 1024;

/// Reads one frame like [`read_frame`], awaiting `pace(n)` after each piece
/// of `n` bytes (at most [`PACE_PIECE`]) before reading on. A receiver with
/// a bandwidth cap waits there; the bytes it has not read yet hold QUIC's
/// flow-control credit back, so the sender slows down too.
pub async fn read_frame_paced<T, P, F>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
    pace: P,
) -> Result<Option<T>, FrameError>
where
    T: for<'de> Deserialize<'de>,
    P: FnMut(usize) -> F,
    F: std::future::Future<Output = ()>,
{
    read_frame_in(stream, limit, PACE_PIECE, None, pace).await
}

/// Reads one frame in reads of at most `piece` bytes, awaiting `pace` after
/// each, into a buffer of `pool` if given.
async fn read_frame_in<T, P, F>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
    piece: usize,
    pool: Option<&'static crate::buffers::BufferPool>,
    mut pace: P,
) -> Result<Option<T>, FrameError>
where
    T: for<'de> Deserialize<'de>,
    P: FnMut(usize) -> F,
    F: std::future::Future<Output = ()>,
{
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        match stream.read(&mut header[filled..]).await {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => {
                filled += n;
                pace(n).await;
            }
            Err(err) => return Err(FrameError::Read(err)),
        }
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLarge { len, limit });
    }
    // Read into capacity, not zeroed first (8 MiB for an administrator's request).
    let mut body = match pool {
        Some(pool) => pool.take(len),
        None => Vec::with_capacity(len),
    };
    while body.len() < len {
        let want = (len - body.len()).min(piece);
        match stream
            .read_buf(&mut bytes::BufMut::limit(&mut body, want))
            .await
        {
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => pace(n).await,
            Err(err) => return Err(FrameError::Read(err)),
        }
    }
    let body = match pool {
        Some(pool) => pool.share(body),
        None => Bytes::from(body),
    };
    decode_shared(body).map(Some)
}

/// Writes one frame to a stream (a QUIC stream, or an HTTP body).
pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    write_frame_paced(stream, message, None).await
}

/// Writes one frame to a QUIC stream, handing the encoded frame to quinn
/// in pieces ([`encode_pieces`]): neither the frame nor the chunks it
/// carries are copied on the way.
pub async fn write_frame_quic<T: Serialize>(
    stream: &mut quinn::SendStream,
    message: &T,
) -> Result<(), FrameError> {
    stream
        .write_all_chunks(&mut encode_pieces(message))
        .await
        .map_err(|err| FrameError::Write(err.into()))
}

/// Writes one frame like [`write_frame`], first paying for it from `pace`
/// (if any), so the frame leaves no earlier than the pace allows.
pub async fn write_frame_paced<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
    pace: Option<&crate::pace::TokenBucket>,
) -> Result<(), FrameError> {
    let frame = encode(message);
    if let Some(pace) = pace {
        pace.take(frame.len()).await;
    }
    stream.write_all(&frame).await.map_err(FrameError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload's chunks travel uncopied both ways (issue 15), and the
    /// frame is exactly the one [`encode`] makes, whatever the lengths
    /// (varint boundaries, a chunk too small to be a piece, an empty one).
    #[test]
    fn chunks_are_pieces_of_the_frame_and_slices_of_it_when_decoded() {
        use crate::admin::{AdminRequest, IndexedChunk};
        let sizes = [0usize, 5, 127, 128, 4095, 4096, 16_383, 16_384, 70_000];
        let chunks: Vec<Bytes> = sizes
            .iter()
            .map(|&n| Bytes::from((0..n).map(|i| (i * 7 + n) as u8).collect::<Vec<u8>>()))
            .collect();
        let request = Request::Admin(AdminRequest::PutChunks {
            files: vec![
                (
                    Hash::of(b"a"),
                    chunks[..5]
                        .iter()
                        .enumerate()
                        .map(|(i, c)| IndexedChunk(i as u32, c.clone()))
                        .collect(),
                ),
                (
                    Hash::of(b"b"),
                    chunks[5..]
                        .iter()
                        .enumerate()
                        .map(|(i, c)| IndexedChunk(300 + i as u32, c.clone()))
                        .collect(),
                ),
            ],
        });
        let pieces = encode_pieces(&request);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, encode(&request));
        // The chunks of 4 KiB and more are pieces themselves, not copies.
        let shared = chunks
            .iter()
            .filter(|c| c.len() >= SHARED_PIECE)
            .filter(|c| pieces.iter().any(|p| p.as_ptr() == c.as_ptr()))
            .count();
        assert_eq!(shared, sizes.iter().filter(|&&n| n >= SHARED_PIECE).count());
        assert!(shared >= 4);

        let body = Bytes::from(joined[4..].to_vec());
        let decoded: Request = decode_shared(body.clone()).expect("decodes");
        assert_eq!(decoded, request);
        let Request::Admin(AdminRequest::PutChunks { files }) = decoded else {
            unreachable!("decoded as encoded");
        };
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        for IndexedChunk(_, bytes) in files.iter().flat_map(|(_, chunks)| chunks) {
            if !bytes.is_empty() {
                assert!(range.contains(&(bytes.as_ptr() as usize)), "copied");
            }
        }
        // Plain decoding (an HTTPS body) still works, copying.
        let plain: Request = decode(&body).expect("decodes");
        assert_eq!(plain, request);
    }

    /// An administrator's request read into a pooled buffer decodes the
    /// same, and the buffer goes back once its last chunk is dropped; the
    /// next request is read into the same memory.
    #[tokio::test]
    async fn pooled_frames_return_their_buffer_when_their_chunks_are_dropped() {
        use crate::admin::{AdminRequest, IndexedChunk};
        static POOL: crate::buffers::BufferPool = crate::buffers::BufferPool::new(1);
        let chunk = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let request = Request::Admin(AdminRequest::PutChunks {
            files: vec![(Hash::of(b"a"), vec![IndexedChunk(0, chunk.clone())])],
        });
        let frame = encode(&request);
        let read = |frame: Vec<u8>| async move {
            let mut stream = frame.as_slice();
            read_frame_pooled::<Request>(&mut stream, MAX_ADMIN_REQUEST, &POOL)
                .await
                .expect("reads")
                .expect("a frame")
        };
        let decoded = read(frame.clone()).await;
        assert_eq!(decoded, request);
        let Request::Admin(AdminRequest::PutChunks { mut files }) = decoded else {
            unreachable!("decoded as encoded");
        };
        let kept = files.remove(0).1.remove(0).1;
        assert_eq!(kept, chunk);
        assert_eq!(POOL.kept(), 0, "the chunk still uses the buffer");
        let address = kept.as_ptr();
        drop(kept);
        assert_eq!(POOL.kept(), 1);
        let again = read(frame).await;
        assert_eq!(POOL.kept(), 0, "taken again");
        let Request::Admin(AdminRequest::PutChunks { files }) = again else {
            unreachable!("decoded as encoded");
        };
        assert_eq!(files[0].1[0].1, chunk);
        assert_eq!(
            files[0].1[0].1.as_ptr(),
            address,
            "read into the kept buffer"
        );
    }

    #[test]
    fn golden_request_frame() {
        let frame = encode(&Request::GetCatalog {
            have_sequence: Some(7),
        });
        assert_eq!(hex::encode(frame), "030000000101 07".replace(' ', ""));
    }

    #[test]
    fn frames_roundtrip_and_refuse_trailing_bytes() {
        let request = Request::GetChunks {
            wants: vec![
                ChunkWant {
                    hash: Hash::of(b"a"),
                    bases: vec![],
                },
                ChunkWant {
                    hash: Hash::of(b"b"),
                    bases: vec![Hash::of(b"c")],
                },
            ],
        };
        let frame = encode(&request);
        let body = &frame[4..];
        // A revision-2 request keeps the variants before it where they were.
        assert_eq!(
            hex::encode(encode(&Request::CatalogSince {
                have_sequence: None,
                have_courses: vec![],
            })),
            "03000000060000"
        );
        assert_eq!(
            u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize,
            body.len()
        );
        assert_eq!(decode::<Request>(body).expect("decodes"), request);
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(decode::<Request>(&longer).is_err());
        assert!(decode::<Request>(&[200, 1, 2]).is_err());
    }

    /// Issue 12: frame errors keep their cause as `source()`: the reader's
    /// I/O error, postcard's decode error; trailing bytes are counted.
    #[tokio::test]
    async fn frame_errors_keep_their_cause_issue_12() {
        use std::error::Error as _;
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "peer reset",
                )))
            }
        }
        let err = read_frame::<Request>(&mut Broken, MAX_REQUEST)
            .await
            .expect_err("a broken stream");
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the I/O error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(
            catalog::format::error_chain(&err),
            "reading a frame: peer reset"
        );

        let err = decode::<Request>(&[200, 1, 2]).expect_err("not a request");
        assert!(
            err.source()
                .is_some_and(|s| s.downcast_ref::<postcard::Error>().is_some()),
            "{err:?}"
        );
        let mut longer = encode(&Request::GetCatalog {
            have_sequence: None,
        })[4..]
            .to_vec();
        longer.extend_from_slice(&[0, 0]);
        let err = decode::<Request>(&longer).expect_err("trailing bytes");
        assert!(
            matches!(err, FrameError::TrailingBytes { extra: 2 }),
            "{err:?}"
        );
    }
}
