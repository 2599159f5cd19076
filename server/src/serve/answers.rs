//! Answering one request (not a hello), over QUIC or in an HTTP body: the
//! catalog, objects, chunks in their smallest encoding, status reports.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use catalog::Store;
use tracing::{info, warn};

use super::{State, current_catalog};
use crate::pace::TokenBucket;
use crate::protocol::{self, FrameError, Request, Response};
use crate::since::CatalogReadError;

/// Writes the answers to one request (not a hello) to `send`, over QUIC or
/// in an HTTP body, each paid for from `pace` first when the edge asked for
/// one. Fails only if `send` fails.
pub async fn answer(
    request: Request,
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
        Request::GetChunks { wants }
            if wants.len() > protocol::MAX_HASHES
                || wants.iter().any(|w| w.bases.len() > protocol::MAX_BASES) =>
        {
            let message = format!(
                "{} chunks in one request (limit {}), or more than {} bases for one",
                wants.len(),
                protocol::MAX_HASHES,
                protocol::MAX_BASES
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
            for want in wants {
                let hash = want.hash;
                let state2 = state.clone();
                let found =
                    tokio::task::spawn_blocking(move || encoded_chunk(&state2.store, &want)).await;
                let response = match found {
                    Ok(Ok(Some((encoding, bytes)))) => {
                        state.stats.chunks_served.fetch_add(1, Ordering::Relaxed);
                        state
                            .stats
                            .chunk_bytes_served
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        Response::Chunk {
                            hash,
                            encoding,
                            bytes,
                        }
                    }
                    Ok(Ok(None)) => Response::Missing { hash },
                    Ok(Err(err)) => {
                        // Damaged data is never sent; the edge will report the chunk missing.
                        tracing::error!(%hash, cause = %err, "refusing to serve a damaged chunk");
                        Response::Missing { hash }
                    }
                    Err(_) => Response::Missing { hash },
                };
                protocol::write_frame_paced(send, &response, pace).await?;
            }
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
    }
    Ok(())
}

/// A chunk in its smallest encoding: a delta against the requested bases if
/// the origin holds them all, else zstd or raw.
fn encoded_chunk(
    store: &Store,
    want: &protocol::ChunkWant,
) -> Result<Option<(crate::codec::Encoding, Vec<u8>)>, catalog::store::StoreError> {
    let Some(raw) = store.chunk_bytes(&want.hash)? else {
        return Ok(None);
    };
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
    let usable = !want.bases.is_empty() && !dictionary.is_empty();
    Ok(Some(crate::codec::encode(
        &raw,
        usable.then_some(dictionary.as_slice()),
    )))
}
