//! Objects and chunks through a caching proxy or CDN in front of the origin
//! (issue 16, `cdn = "http://HOST:PORT"` in edge.toml).
//!
//! The origin's `/v1/objects/<hash>` and `/v1/chunks/<hash>` never change, so
//! any HTTP cache can keep them; a bureau's proxy or a CDN then serves the
//! second school and every one after it, and the origin (and its bucket) is
//! read once per object. The edge asks the CDN for what a request to the
//! origin would have asked for, a few at a time, and hands the answers on as
//! if the origin had sent them, once each has hashed to its name. What the CDN cannot give (a 404, an error, a dropped link)
//! is asked of the origin afterwards, on the edge's own connection. The
//! catalog, which changes, always comes from the origin, but without the
//! metadata objects it would send along (`Client::catalog_since`): those are
//! asked of the CDN level by level, like chunks.
//!
//! The edge's token is never sent to the CDN: objects and chunks are named
//! by BLAKE3 hashes that only the signed catalog and its manifests (which
//! need a token) reveal. The CDN proves itself to the origin with a shared
//! secret (`origin serve --cdn-secret-file`, docs/s3.md).

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use catalog::Hash;
use futures_util::{Stream, StreamExt};
use server::codec::Encoding;
use server::protocol::{ChunkWant, Request, Response};

use super::client::ClientError;
use super::fallback::{FallbackUrl, HttpLink};
use crate::config::ConfigError;

/// Requests to the CDN in flight at once, per request to the origin.
const FETCHING: usize = 8;

/// Parses `http://HOST:PORT` for `cdn` in edge.toml.
pub fn parse_url(text: &str) -> Result<FallbackUrl, ConfigError> {
    let url = FallbackUrl::parse(text)?;
    if url.tls {
        return Err(ConfigError::Invalid(format!(
            "cdn {text:?}: give http://HOST:PORT; what it serves is checked against hashes, so \
             TLS adds nothing the edge needs, and its certificate could not be pinned"
        )));
    }
    Ok(url)
}

/// What a request asks the CDN for, if it is a request the CDN can answer.
pub(crate) fn wanted(request: &Request) -> Option<(Kind, Vec<Hash>)> {
    match request {
        Request::GetObjects { hashes } => Some((Kind::Objects, hashes.clone())),
        Request::GetChunks { wants } => {
            Some((Kind::Chunks, wants.iter().map(|w| w.hash).collect()))
        }
        Request::GetFileChunks { files } => Some((
            Kind::Chunks,
            files
                .iter()
                .flat_map(|f| f.wants.iter().map(|w| w.hash))
                .collect(),
        )),
        _ => None,
    }
}

/// Objects or chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Objects,
    Chunks,
}

type Fetched = (Hash, Result<Option<Bytes>, ClientError>);

/// The CDN's answers to one request, as they arrive.
pub(crate) struct CdnAnswers {
    kind: Kind,
    fetching: Pin<Box<dyn Stream<Item = Fetched> + Send>>,
    /// What the CDN did not give, for the origin.
    failed: Vec<Hash>,
}

impl CdnAnswers {
    pub(crate) fn new(link: Arc<HttpLink>, kind: Kind, hashes: Vec<Hash>) -> CdnAnswers {
        let folder = match kind {
            Kind::Objects => "objects",
            Kind::Chunks => "chunks",
        };
        let limit = server::protocol::MAX_RESPONSE;
        let fetching = futures_util::stream::iter(hashes)
            .map(move |hash| {
                let link = link.clone();
                async move {
                    let got = link.get(&format!("/v1/{folder}/{hash}"), limit).await;
                    (hash, got)
                }
            })
            .buffer_unordered(FETCHING);
        CdnAnswers {
            kind,
            fetching: Box::pin(fetching),
            failed: Vec::new(),
        }
    }

    /// The next answer the CDN gave; `None` when every one was asked.
    pub(crate) async fn next(&mut self) -> Option<Response> {
        loop {
            let (hash, got) = self.fetching.next().await?;
            match got {
                // A CDN is not trusted: what does not hash to its name (a
                // poisoned or damaged cache) is asked of the origin, so it
                // cannot keep a school from ever completing.
                Ok(Some(bytes)) if Hash::of(&bytes) != hash => {
                    tracing::warn!(%hash, "the CDN sent bytes that are not this object or chunk; asking the origin");
                    self.failed.push(hash);
                }
                Ok(Some(bytes)) => {
                    let bytes = bytes.to_vec();
                    return Some(match self.kind {
                        Kind::Objects => Response::Object { hash, bytes },
                        Kind::Chunks => Response::Chunk {
                            hash,
                            encoding: Encoding::Raw,
                            bytes,
                        },
                    });
                }
                Ok(None) => self.failed.push(hash),
                Err(err) => {
                    if self.failed.is_empty() {
                        tracing::warn!(cause = %crate::sync::error_chain(&err), "the CDN did not answer; asking the origin");
                    }
                    self.failed.push(hash);
                }
            }
        }
    }

    /// The request to the origin for what the CDN did not give, if anything.
    pub(crate) fn rest(&mut self) -> Option<Request> {
        if self.failed.is_empty() {
            return None;
        }
        let failed = std::mem::take(&mut self.failed);
        Some(match self.kind {
            Kind::Objects => Request::GetObjects { hashes: failed },
            Kind::Chunks => Request::GetChunks {
                wants: failed
                    .into_iter()
                    .map(|hash| ChunkWant {
                        hash,
                        bases: Vec::new(),
                    })
                    .collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cdn_is_plain_http_with_a_port() {
        assert!(parse_url("http://127.0.0.1:8080").is_ok());
        let err = parse_url("https://cdn.example:443").expect_err("https");
        assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
        assert!(parse_url("http://cdn.example").is_err(), "a port is needed");
    }

    #[test]
    fn only_object_and_chunk_requests_go_to_the_cdn() {
        let hash = Hash::of(b"x");
        let objects = Request::GetObjects { hashes: vec![hash] };
        assert_eq!(wanted(&objects), Some((Kind::Objects, vec![hash])));
        let chunks = Request::GetChunks {
            wants: vec![ChunkWant {
                hash,
                bases: vec![Hash::of(b"base")],
            }],
        };
        assert_eq!(wanted(&chunks), Some((Kind::Chunks, vec![hash])));
        let catalog = Request::GetCatalog {
            have_sequence: None,
        };
        assert_eq!(wanted(&catalog), None);
    }
}
