//! Answering one request (not a hello), over QUIC or in an HTTP body: the
//! catalog, objects, chunks in their smallest encoding, status reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::collections::HashMap;

use catalog::{Hash, Store};
use tracing::{info, warn};

use super::{Caller, State, current_catalog};
use crate::codec::Encoding;
use crate::pace::TokenBucket;
use crate::protocol::{self, ChunkWant, FrameError, Request, Response};
use crate::since::CatalogReadError;

/// Writes the answers to one request (not a hello) to `send`, over QUIC or
/// in an HTTP body, each paid for from `pace` first when the edge asked for
/// one. Fails only if `send` fails.
pub async fn answer(
    request: Request,
    caller: &Caller,
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    match request {
        Request::Pace { .. } | Request::Hello { .. } => {
            let message = match request {
                Request::Pace { .. } => "a pace is sent with the hello, not on its own",
                _ => "already welcomed",
            };
            let message = message.to_owned();
            protocol::write_frame(send, &Response::Error { message }).await?;
        }
        Request::GetCatalog { have_sequence } => {
            let state = state.clone();
            let signed =
                tokio::task::spawn_blocking(move || current_catalog(&state.store, have_sequence))
                    .await
                    .unwrap_or_else(|err| Err(CatalogReadError::Stopped(err)));
            let response = match signed {
                Ok(signed) => Response::Catalog { signed },
                Err(err) => {
                    let message = catalog::format::error_chain(&err);
                    warn!(cause = %message, "cannot answer a catalog request");
                    Response::Error { message }
                }
            };
            protocol::write_frame(send, &response).await?;
        }
        Request::GetObjects { hashes } if hashes.len() > protocol::MAX_HASHES => {
            let message = format!(
                "{} hashes in one request; the limit is {}",
                hashes.len(),
                protocol::MAX_HASHES
            );
            protocol::write_frame(send, &Response::Error { message }).await?;
        }
        Request::GetObjects { hashes } => {
            for hash in hashes {
                let state2 = state.clone();
                let found =
                    tokio::task::spawn_blocking(move || state2.store.object_bytes(&hash)).await;
                let response = match found {
                    Ok(Ok(Some(bytes))) => {
                        state.stats.objects_served.fetch_add(1, Ordering::Relaxed);
                        Response::Object { hash, bytes }
                    }
                    Ok(Ok(None)) => Response::Missing { hash },
                    Ok(Err(err)) => {
                        warn!(%hash, cause = %err, "cannot read an object");
                        Response::Missing { hash }
                    }
                    Err(_) => Response::Missing { hash },
                };
                protocol::write_frame_paced(send, &response, pace).await?;
            }
        }
        Request::GetChunks { wants } => {
            answer_chunks(vec![(None, wants)], state, send, pace).await?;
        }
        Request::GetFileChunks { files } => {
            let files = files.into_iter().map(|f| (Some(f.file), f.wants)).collect();
            answer_chunks(files, state, send, pace).await?;
        }
        Request::CatalogSince {
            have_sequence,
            have_courses,
        } => {
            crate::since::answer(have_sequence, have_courses, state, send, pace).await?;
        }
        Request::ReportStatus { status } => {
            info!(status = %status, "edge status");
            protocol::write_frame(send, &Response::Ok).await?;
        }
        Request::Report { envelope } => {
            let response = take_report(caller, envelope, state).await;
            protocol::write_frame(send, &response).await?;
        }
        Request::Admin(request) => match (caller, &state.desk) {
            (Caller::Admin(admin), Some(desk)) => {
                crate::admin::answer(request, admin, desk, state, send).await?;
            }
            (Caller::Edge(_), _) | (_, None) => {
                let message = "administrators' requests need an admin token (`shanlu origin add-admin`), sent to the origin itself".to_owned();
                protocol::write_frame(send, &Response::Error { message }).await?;
            }
        },
        Request::Propose(request) => {
            let response = match caller {
                Caller::Edge(edge) => crate::review::answer(request, edge, state).await,
                Caller::Admin(_) => Response::Error {
                    message: "lessons are proposed by edges, with an edge's token".to_owned(),
                },
            };
            protocol::write_frame(send, &response).await?;
        }
    }
    Ok(())
}

/// Hands an edge's sealed report to the [`ReportSink`](crate::report::ReportSink).
async fn take_report(caller: &Caller, envelope: Vec<u8>, state: &Arc<State>) -> Response {
    let (Caller::Edge(sender), Some(sink)) = (caller, state.reports.clone()) else {
        let message = "reports are taken from edges by a server that keeps them".to_owned();
        return Response::Error { message };
    };
    let sender = sender.clone();
    let taken = tokio::task::spawn_blocking(move || sink.accept(&sender, &envelope)).await;
    match taken {
        Ok(Ok(())) => Response::Ok,
        Ok(Err(message)) => {
            warn!(%caller, cause = %message, "refused a report");
            Response::Error { message }
        }
        Err(_) => Response::Error {
            message: "the report could not be kept; send it again later".to_owned(),
        },
    }
}

/// Answers a request for chunks, grouped by the file they are for when the
/// edge said. Chunks held here go first; with an [`Upstream`](super::Upstream)
/// (a county edge), the others are fetched from it per file and sent as they
/// arrive. Anything not had is answered [`Response::Missing`].
async fn answer_chunks(
    files: Vec<(Option<Hash>, Vec<ChunkWant>)>,
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    let count: usize = files.iter().map(|(_, wants)| wants.len()).sum();
    let too_many_bases = files
        .iter()
        .flat_map(|(_, wants)| wants)
        .any(|w| w.bases.len() > protocol::MAX_BASES);
    if count > protocol::MAX_HASHES || files.len() > protocol::MAX_HASHES || too_many_bases {
        let message = format!(
            "{count} chunks in one request (limit {}), or more than {} bases for one",
            protocol::MAX_HASHES,
            protocol::MAX_BASES
        );
        return protocol::write_frame(send, &Response::Error { message }).await;
    }
    let mut misses: Vec<(Hash, Vec<ChunkWant>)> = Vec::new();
    for (file, wants) in files {
        let mut missed = Vec::new();
        for want in wants {
            let state2 = state.clone();
            let want2 = want.clone();
            let found = tokio::task::spawn_blocking(move || {
                let raw = state2.store.chunk_bytes(&want2.hash)?;
                raw.map(|raw| encode_against_bases(&state2.store, raw, &want2))
                    .transpose()
            })
            .await;
            match found {
                Ok(Ok(Some(encoded))) => send_chunk(want.hash, encoded, state, send, pace).await?,
                // A bucket (issue 16) needs no file to find a chunk.
                Ok(Ok(None))
                    if state.upstream.is_some() && (file.is_some() || state.bucket.is_some()) =>
                {
                    missed.push(want)
                }
                Ok(Ok(None)) | Err(_) => {
                    missing(want.hash, send, pace).await?;
                }
                Ok(Err(err)) => {
                    // Damaged data is never sent; the edge will report the chunk missing.
                    tracing::error!(hash = %want.hash, cause = %err, "refusing to serve a damaged chunk");
                    missing(want.hash, send, pace).await?;
                }
            }
        }
        if !missed.is_empty() {
            // Without a file (only with a bucket), the chunks' own hash stands in.
            let file = file.unwrap_or(missed[0].hash);
            misses.push((file, missed));
        }
    }
    let Some(upstream) = state.upstream.clone() else {
        return Ok(());
    };
    // Every file's chunks are fetched at once (a request may span many
    // small files), each bounded by the upstream's own deadline, and sent
    // on as they arrive.
    let mut pending: HashMap<Hash, ChunkWant> = HashMap::new();
    let (sink, mut arriving) = tokio::sync::mpsc::channel(UPSTREAM_CHUNKS_BUFFERED);
    let mut fetches = Vec::with_capacity(misses.len());
    for (file, wants) in misses {
        let hashes = wants.iter().map(|w| w.hash).collect();
        pending.extend(wants.into_iter().map(|w| (w.hash, w)));
        fetches.push(tokio::spawn(upstream.chunks(file, hashes, sink.clone())));
    }
    drop(sink);
    let sent = async {
        while let Some((hash, raw)) = arriving.recv().await {
            let Some(want) = pending.remove(&hash) else {
                continue;
            };
            // On a bucket the bases are there too (issue 16): a small edit
            // still travels as a delta.
            let bases = match &state.bucket {
                Some(bucket) if !want.bases.is_empty() => bucket_bases(bucket, &want).await,
                _ => None,
            };
            let state2 = state.clone();
            let encoded = tokio::task::spawn_blocking(move || match bases {
                Some(dictionary) => Ok(encode_with(raw, &want, dictionary)),
                None => encode_against_bases(&state2.store, raw, &want),
            })
            .await;
            match encoded {
                Ok(Ok(encoded)) => send_chunk(hash, encoded, state, send, pace).await?,
                _ => missing(hash, send, pace).await?,
            }
        }
        Ok::<(), FrameError>(())
    }
    .await;
    // The edge below is gone or every fetch ended: none is left running for it.
    for fetch in fetches {
        fetch.abort();
    }
    sent?;
    for hash in pending.into_keys() {
        missing(hash, send, pace).await?;
    }
    Ok(())
}

/// Chunks an [`Upstream`](super::Upstream) may have ready before they are sent on.
const UPSTREAM_CHUNKS_BUFFERED: usize = 16;

async fn missing(
    hash: Hash,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    protocol::write_frame_paced(send, &Response::Missing { hash }, pace).await
}

async fn send_chunk(
    hash: Hash,
    (encoding, bytes): (Encoding, Vec<u8>),
    state: &Arc<State>,
    send: &mut (impl tokio::io::AsyncWrite + Unpin),
    pace: Option<&TokenBucket>,
) -> Result<(), FrameError> {
    state.stats.chunks_served.fetch_add(1, Ordering::Relaxed);
    state
        .stats
        .chunk_bytes_served
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    let response = Response::Chunk {
        hash,
        encoding,
        bytes,
    };
    protocol::write_frame_paced(send, &response, pace).await
}

/// The requested bases of `want`, concatenated, read through an origin's
/// bucket cache; `None` unless every one could be had (the local store is
/// tried first by [`encode_against_bases`]).
async fn bucket_bases(
    bucket: &Arc<crate::bucket::chunks::BucketChunks>,
    want: &ChunkWant,
) -> Option<Vec<u8>> {
    let mut dictionary = Vec::new();
    for base in &want.bases {
        dictionary.extend_from_slice(&bucket.chunk(*base).await?);
    }
    Some(dictionary)
}

/// Chunk `raw` in its smallest encoding: a delta against the requested bases
/// if this store holds them all, else zstd or raw.
fn encode_against_bases(
    store: &Store,
    raw: Vec<u8>,
    want: &ChunkWant,
) -> Result<(Encoding, Vec<u8>), catalog::store::StoreError> {
    let mut dictionary = Vec::new();
    for base in &want.bases {
        match store.chunk_bytes(base) {
            Ok(Some(bytes)) => dictionary.extend_from_slice(&bytes),
            _ => {
                dictionary.clear();
                break;
            }
        }
    }
    Ok(encode_with(raw, want, dictionary))
}

/// Chunk `raw` in its smallest encoding against `dictionary` (the requested
/// bases concatenated; empty if they could not all be had).
fn encode_with(mut raw: Vec<u8>, want: &ChunkWant, dictionary: Vec<u8>) -> (Encoding, Vec<u8>) {
    if corrupts_chunks()
        && let Some(last) = raw.last_mut()
    {
        *last ^= 0xff;
    }
    let usable = !want.bases.is_empty() && !dictionary.is_empty();
    crate::codec::encode(&raw, usable.then_some(dictionary.as_slice()))
}

/// Test hook (issue 14): with `SHANLU_TEST_CORRUPT_CHUNKS=1` in its
/// environment, a server flips one byte of every chunk it sends, to play a
/// county edge or peer that lies. Edges must refuse each such chunk.
fn corrupts_chunks() -> bool {
    static CORRUPT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CORRUPT
        .get_or_init(|| std::env::var_os("SHANLU_TEST_CORRUPT_CHUNKS").is_some_and(|v| v == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::Upstream;
    use crate::tokens::EdgeTokens;

    /// Gives the chunks it holds, like a county edge's upstream.
    struct FakeUpstream(HashMap<Hash, Vec<u8>>);

    impl Upstream for FakeUpstream {
        fn chunks(
            &self,
            _file: Hash,
            wanted: Vec<Hash>,
            sink: tokio::sync::mpsc::Sender<(Hash, Vec<u8>)>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
            let found: Vec<_> = wanted
                .iter()
                .filter_map(|h| self.0.get(h).map(|b| (*h, b.clone())))
                .collect();
            Box::pin(async move {
                for item in found {
                    let _ = sink.send(item).await;
                }
            })
        }
    }

    /// An origin holding one file of several chunks; returns its folder,
    /// the store and the file's manifest hash and chunk hashes.
    fn one_file() -> (tempfile::TempDir, Arc<Store>, Hash, Vec<Hash>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let origin_dir = dir.path().join("origin");
        crate::Origin::init(&origin_dir).expect("init");
        let origin = crate::Origin::open(&origin_dir).expect("open");
        let src = dir.path().join("course");
        std::fs::create_dir_all(src.join("01")).expect("mkdir");
        std::fs::write(src.join("course.toml"), "id = \"c\"\n").expect("write");
        let bytes: Vec<u8> = (0..600_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(src.join("01/video.mp4"), &bytes).expect("write");
        crate::publish(
            &origin,
            &src,
            catalog::store::ImportMode::Rehash,
            &indicatif::ProgressBar::hidden(),
        )
        .expect("publish");
        drop(origin);
        let store = Arc::new(Store::open_existing(origin_dir.join("store")).expect("store"));
        let signed = store.signed_catalog().expect("store").expect("catalog");
        let catalog = catalog::Object::decode(&signed.catalog)
            .and_then(catalog::Object::into_catalog)
            .expect("catalog");
        let course = catalog.courses.values().next().expect("a course").hash;
        let Some(catalog::Object::Course(course)) = store.object(&course).expect("store") else {
            panic!("a course")
        };
        let lesson = course.lessons[0].hash;
        let Some(catalog::Object::Lesson(lesson)) = store.object(&lesson).expect("store") else {
            panic!("a lesson")
        };
        let manifest_hash = lesson.files[0].manifest;
        let manifest = store.manifest(&manifest_hash).expect("manifest");
        assert_eq!(manifest.blob, catalog::Hash::of(&bytes));
        assert!(manifest.chunks.len() >= 3, "a file of several chunks");
        let chunks = manifest.chunks.iter().map(|c| c.hash).collect();
        (dir, store, manifest_hash, chunks)
    }

    fn state(
        store: Arc<Store>,
        upstream: Option<Arc<dyn Upstream>>,
        dir: &std::path::Path,
    ) -> Arc<State> {
        Arc::new(State {
            store,
            tokens: EdgeTokens::new(dir),
            stats: Arc::default(),
            upstream,
            admins: None,
            desk: None,
            reports: None,
            bucket: None,
            cdn_secret: None,
        })
    }

    /// The answers written for `request`, decoded.
    async fn answers(request: Request, state: &Arc<State>) -> Vec<Response> {
        let mut written = Vec::new();
        answer(
            request,
            &Caller::Edge("e".into()),
            state,
            &mut written,
            None,
        )
        .await
        .expect("answer");
        let mut reader = written.as_slice();
        let mut out = Vec::new();
        while let Some(response) =
            protocol::read_frame::<Response>(&mut reader, protocol::MAX_RESPONSE)
                .await
                .expect("frame")
        {
            out.push(response);
        }
        out
    }

    fn want(hash: Hash) -> ChunkWant {
        ChunkWant {
            hash,
            bases: Vec::new(),
        }
    }

    /// Issue 14: a serving edge answers what it holds, then what its upstream
    /// fetched, then missing for the rest; without an upstream, missing.
    #[tokio::test]
    async fn issue_14_file_chunks_come_from_the_store_then_the_upstream() {
        let (dir, store, file, chunks) = one_file();
        let stranger = Hash::of(b"a chunk nobody holds");
        let fetched = Hash::of(b"a chunk only upstream holds");
        let in_other_file = Hash::of(b"a chunk of another file, upstream only");
        let upstream = FakeUpstream(HashMap::from([
            (fetched, b"from upstream".to_vec()),
            (in_other_file, b"other file".to_vec()),
        ]));
        let request = Request::GetFileChunks {
            files: vec![
                protocol::FileWants {
                    file,
                    wants: vec![want(chunks[0]), want(fetched), want(stranger)],
                },
                protocol::FileWants {
                    file: Hash::of(b"another file"),
                    wants: vec![want(in_other_file)],
                },
            ],
        };
        let relaying = state(store.clone(), Some(Arc::new(upstream)), dir.path());
        let mut got = answers(request.clone(), &relaying).await;
        // The other file's chunk, fetched at the same time, comes too.
        let other = got
            .iter()
            .position(|r| matches!(r, Response::Chunk { hash, .. } if *hash == in_other_file))
            .expect("the other file's chunk");
        got.remove(other);
        assert_eq!(got.len(), 3, "{got:?}");
        let Response::Chunk {
            hash,
            encoding,
            bytes,
        } = &got[0]
        else {
            panic!("{got:?}")
        };
        assert_eq!(*hash, chunks[0]);
        let raw = crate::codec::decode(*encoding, bytes.clone(), None, 1 << 20).expect("decodes");
        assert_eq!(Hash::of(&raw), chunks[0]);
        let Response::Chunk {
            hash,
            encoding,
            bytes,
        } = &got[1]
        else {
            panic!("{got:?}")
        };
        assert_eq!(*hash, fetched);
        let raw = crate::codec::decode(*encoding, bytes.clone(), None, 1 << 20).expect("decodes");
        assert_eq!(raw, b"from upstream");
        assert_eq!(got[2], Response::Missing { hash: stranger });
        // The origin (no upstream) answers the same request like GetChunks.
        let origin = state(store, None, dir.path());
        let got = answers(request, &origin).await;
        assert!(matches!(&got[0], Response::Chunk { hash, .. } if *hash == chunks[0]));
        assert_eq!(got[1], Response::Missing { hash: fetched });
        assert_eq!(got[2], Response::Missing { hash: stranger });
        assert_eq!(
            got[3],
            Response::Missing {
                hash: in_other_file
            }
        );
    }

    #[tokio::test]
    async fn issue_14_file_chunks_over_the_limit_are_refused() {
        let (dir, store, file, _) = one_file();
        let files = (0..=protocol::MAX_HASHES)
            .map(|i| protocol::FileWants {
                file,
                wants: vec![want(Hash::of(&i.to_le_bytes()))],
            })
            .collect();
        let got = answers(
            Request::GetFileChunks { files },
            &state(store, None, dir.path()),
        )
        .await;
        assert!(matches!(&got[..], [Response::Error { .. }]), "{got:?}");
    }
}
