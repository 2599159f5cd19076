//! The edge's side of the sync protocol: one QUIC connection to the origin,
//! or, when QUIC cannot connect (a carrier blocking UDP), the same protocol
//! over the origin's HTTPS fallback.
//!
//! Which way: [`Transport::Auto`] (the default) tries QUIC first. When QUIC
//! fails to connect and `fallback` is set in edge.toml, the edge uses HTTPS
//! and remembers for [`QUIC_RETRY`] that QUIC did not work, so reconnections
//! and the passes in between do not wait for a QUIC handshake that cannot
//! succeed; after that, QUIC is tried again first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use catalog::Hash;
use serde::{Deserialize, Serialize};
use server::protocol::{self, Request, Response};
use tracing::{debug, info, warn};

use crate::config::{ConfigError, EdgeConfig};
use crate::sync::fallback::{FallbackUrl, HttpLink};
use crate::sync::memory::TransportMemory;
use crate::sync::throttle::TokenBucket;

mod error;
mod quic;
mod responses;

pub use error::{Cause, ClientError, Message};
pub(crate) use error::{timed_out, unexpected};

pub use quic::STALL;
use quic::{handshake, takes_pipelined, watch_stalls};
pub use responses::Responses;
use responses::{Reader, Waiting};

/// The CDN named in edge.toml, if any. One that cannot be resolved is
/// left out of this connection (everything comes from the origin), never a
/// reason not to sync.
async fn cdn_link(config: &EdgeConfig) -> Option<Arc<HttpLink>> {
    let url = config.cdn.clone()?;
    match HttpLink::cdn(url.clone()).await {
        Ok(link) => Some(link),
        Err(err) => {
            warn!(cdn = %url, cause = %crate::sync::error_chain(&err), "the CDN cannot be reached; everything comes from the origin this time");
            None
        }
    }
}

/// After QUIC failed to connect, how long the edge keeps to the fallback
/// before trying QUIC again.
pub const QUIC_RETRY: Duration = Duration::from_secs(10 * 60);

/// How long one answer frame may take to arrive over HTTP before the
/// connection counts as lost (QUIC has its idle timeout for this).
const HTTP_FRAME_TIMEOUT: Duration = Duration::from_secs(120);

/// Which way an edge talks to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// QUIC, or the fallback when QUIC cannot connect.
    #[default]
    Auto,
    /// Only QUIC.
    Quic,
    /// Only the HTTP(S) fallback.
    #[serde(alias = "https")]
    Http,
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Transport::Auto),
            "quic" => Ok(Transport::Quic),
            "http" | "https" => Ok(Transport::Http),
            _ => Err(format!(
                "{text:?} is not a transport: use auto, quic or http"
            )),
        }
    }
}

/// How long the status report waits for its Ok (see [`Client::report_status`]).
const STATUS_WAIT: Duration = Duration::from_millis(50);

/// How long closing waits for the connection to drain (see [`Client::close`]).
const CLOSE_LINGER: Duration = Duration::from_millis(50);

/// How long a handshake may take before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first question of a sync pass: the catalog since the one held (see
/// [`Client::catalog_since`]). Given to [`Client::connect_asking`], it goes
/// out behind the hello when the origin negotiated ALPN `shanlu/2`.
#[derive(Debug, Clone, Default)]
pub struct SinceAsk {
    /// The sequence of the catalog held, if any.
    pub have: Option<u64>,
    /// The course objects of the catalog held.
    pub courses: Arc<Vec<Hash>>,
}

/// The answer to a [`SinceAsk`]: the encoded signed catalog unless ours is
/// current, and the metadata objects that came with it (not yet verified).
pub type SinceAnswer = (Option<Vec<u8>>, Vec<(Hash, Vec<u8>)>);

/// A connection to the origin that has been welcomed.
#[derive(Clone)]
pub struct Client {
    wire: Wire,
    addr: SocketAddr,
    /// Paces every answer read on this connection (a sync's bandwidth cap);
    /// dropped when the origin paces its answers itself.
    bucket: Option<Arc<TokenBucket>>,
    /// The sync's cap, kept for what the edge sends (a proposed lesson).
    cap: Option<Arc<TokenBucket>>,
    pub edge_name: String,
    /// Why QUIC is not used, when this client is on the fallback.
    pub fallback_reason: Option<String>,
    /// The protocol revision the origin's welcome named (1 for an origin
    /// that predates revisions); decides whether [`Client::catalog_since`]
    /// may ask in one round trip.
    pub origin_revision: u32,
    /// A caching proxy or CDN in front of the origin (issue 16): objects and
    /// chunks are asked of it first.
    cdn: Option<Arc<HttpLink>>,
}

/// What carries the requests.
#[derive(Clone)]
enum Wire {
    Quic {
        endpoint: quinn::Endpoint,
        connection: quinn::Connection,
        /// Requests waiting for answers, for the stall watch.
        busy: Arc<AtomicUsize>,
    },
    Http(Arc<HttpLink>),
}

impl Client {
    /// Connects the way edge.toml says, pins the certificate, and says hello with the token.
    pub async fn connect(
        config: &EdgeConfig,
        memory: &TransportMemory,
    ) -> Result<Client, ClientError> {
        Client::connect_paced(config, None, config.transport, memory).await
    }

    /// Like [`Client::connect`] over `transport`; with a `bucket`, every
    /// answer is read no faster than its rate and QUIC's receive windows are
    /// sized to it.
    pub async fn connect_paced(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        transport: Transport,
        memory: &TransportMemory,
    ) -> Result<Client, ClientError> {
        let (client, _) =
            Client::connect_inner(config, bucket, transport, CONNECT_TIMEOUT, memory, None).await?;
        Ok(client)
    }

    /// Like [`Client::connect_paced`], and asks `ask` as early as the
    /// protocol allows (issue 12): to an origin that negotiated ALPN
    /// `shanlu/2`, the `CatalogSince` leaves right behind the hello, in the
    /// same flight, so its answer follows the Welcome without a round trip
    /// of its own; otherwise (an older origin, the HTTPS fallback) it is
    /// asked after the Welcome. The connection's failure is the outer error;
    /// the question's, the inner one (the caller may retry it on a new
    /// connection).
    pub async fn connect_asking(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        transport: Transport,
        memory: &TransportMemory,
        ask: &SinceAsk,
    ) -> Result<(Client, Result<SinceAnswer, ClientError>), ClientError> {
        // With a CDN the question is asked after the welcome, without objects.
        let early_ask = config.cdn.is_none().then_some(ask);
        let (client, early) = Client::connect_inner(
            config,
            bucket,
            transport,
            CONNECT_TIMEOUT,
            memory,
            early_ask,
        )
        .await?;
        let answer = match early {
            Some(responses) => client.read_since(responses, ask.have).await,
            None => client.catalog_since(ask.have, &ask.courses).await,
        };
        Ok((client, answer))
    }

    /// Like [`Client::connect`], but a QUIC handshake may take only
    /// `quic_timeout` before the fallback (if any) is tried: for a teacher
    /// waiting on a lesson.
    pub async fn connect_within(
        config: &EdgeConfig,
        quic_timeout: Duration,
        memory: &TransportMemory,
    ) -> Result<Client, ClientError> {
        let (client, _) =
            Client::connect_inner(config, None, config.transport, quic_timeout, memory, None)
                .await?;
        Ok(client)
    }

    /// Connects over `transport`; with `ask`, also the answers to that
    /// question if it could be sent behind the hello.
    async fn connect_inner(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        transport: Transport,
        quic_timeout: Duration,
        memory: &TransportMemory,
        ask: Option<&SinceAsk>,
    ) -> Result<(Client, Option<Responses>), ClientError> {
        let fallback = config.fallback.clone();
        match (transport, fallback) {
            (Transport::Quic, _) | (Transport::Auto, None) => {
                Client::connect_quic(config, bucket, quic_timeout, ask).await
            }
            (Transport::Http, None) => Err(ConfigError::Invalid(
                "the HTTP transport needs `fallback = \"https://HOST:PORT\"` in edge.toml (`edge init --fallback`)"
                    .into(),
            )
            .into()),
            (Transport::Http, Some(url)) => {
                Ok((Client::connect_http(config, bucket, url, None).await?, None))
            }
            (Transport::Auto, Some(url)) => {
                if let Some(reason) = memory.quic_recently_failed() {
                    let client = Client::connect_http(config, bucket, url, Some(reason)).await?;
                    return Ok((client, None));
                }
                match Client::connect_quic(config, bucket.clone(), quic_timeout, ask).await {
                    Ok(connected) => {
                        memory.quic_worked();
                        Ok(connected)
                    }
                    Err(quic) if quic.is_transient() => {
                        let reason = crate::sync::error_chain(&quic);
                        warn!(cause = %reason, fallback = %url, "QUIC cannot connect; trying the HTTPS fallback");
                        match Client::connect_http(config, bucket, url, Some(reason.clone())).await {
                            Ok(client) => {
                                info!(
                                    retry_after_s = QUIC_RETRY.as_secs(),
                                    "syncing over the fallback; QUIC is tried again later"
                                );
                                memory.quic_failed(reason);
                                Ok((client, None))
                            }
                            Err(http) => Err(ClientError::NoTransport {
                                quic: Box::new(quic),
                                fallback: Cause::new(http),
                            }),
                        }
                    }
                    Err(other) => Err(other),
                }
            }
        }
    }

    /// Says hello over the HTTP(S) fallback.
    async fn connect_http(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        url: FallbackUrl,
        fallback_reason: Option<String>,
    ) -> Result<Client, ClientError> {
        let link = HttpLink::new(url, &config.origin_cert.to_string(), &config.token).await?;
        let mut client = Client {
            addr: link.addr(),
            wire: Wire::Http(link),
            cap: bucket.clone(),
            bucket,
            edge_name: String::new(),
            fallback_reason,
            origin_revision: 1,
            cdn: cdn_link(config).await,
        };
        client.hello(config, None).await?;
        Ok(client)
    }

    async fn connect_quic(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
        timeout: Duration,
        ask: Option<&SinceAsk>,
    ) -> Result<(Client, Option<Responses>), ClientError> {
        let (endpoint, connection, addr) = handshake(config, bucket.as_deref(), timeout).await?;
        if bucket.is_none() {
            // A capped sync keeps the window the cap set.
            crate::sync::window::tune(connection.clone());
        }
        // Only an origin of revision 2 or later offers `shanlu/2`.
        let ask = ask.filter(|ask| {
            takes_pipelined(&connection) && ask.courses.len() <= protocol::MAX_HASHES
        });
        let busy = Arc::new(AtomicUsize::new(0));
        watch_stalls(connection.clone(), config.clone(), busy.clone());
        let mut client = Client {
            wire: Wire::Quic {
                endpoint,
                connection,
                busy,
            },
            addr,
            cap: bucket.clone(),
            bucket,
            edge_name: String::new(),
            fallback_reason: None,
            origin_revision: 1,
            cdn: cdn_link(config).await,
        };
        let early = client.hello(config, ask).await?;
        Ok((client, early))
    }

    /// Says hello; with `ask`, sends that question right behind it, before
    /// the Welcome (the origin accepts it once it has welcomed the edge;
    /// QUIC holds the stream until then), and returns its answers' reader.
    async fn hello(
        &mut self,
        config: &EdgeConfig,
        ask: Option<&SinceAsk>,
    ) -> Result<Option<Responses>, ClientError> {
        let hello = Request::Hello {
            version: protocol::VERSION,
            token: config.token.trim().to_owned(),
        };
        // A capped edge asks the origin to pace this connection (over QUIC;
        // each HTTPS request is a separate POST, paced here only).
        let pace = match (&self.wire, &self.bucket) {
            (Wire::Quic { .. }, Some(bucket)) => Some(Request::Pace {
                bytes_per_second: bucket.bytes_per_second(),
            }),
            _ => None,
        };
        let mut responses = self.request_then(&hello, pace.as_ref()).await?;
        let mut early = match ask {
            Some(ask) => Some(self.request(&since_request(ask.have, &ask.courses)).await?),
            None => None,
        };
        match responses.next().await? {
            Some(Response::Welcome { edge_name, version }) => {
                self.edge_name = edge_name;
                self.origin_revision = version;
            }
            Some(other) => return Err(self.unexpected(&other)),
            None => return Err(self.lost("the origin closed the hello stream")),
        }
        // An origin that paces says so after the welcome; reading at the cap
        // as well would only make the two buckets' bursts add up.
        if pace.is_some() && matches!(responses.next().await?, Some(Response::Ok)) {
            debug!(addr = %self.addr, "the origin paces this connection");
            self.bucket = None;
        }
        debug!(edge = %self.edge_name, addr = %self.addr, transport = self.transport_name(), "welcomed by the origin");
        if let Some(early) = &mut early {
            // Read its answers with what the welcome settled (the pacing).
            early.client = self.clone();
        }
        Ok(early)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `quic`, `https` or `http`: what carries this client's requests.
    pub fn transport_name(&self) -> &'static str {
        match &self.wire {
            Wire::Quic { .. } => "quic",
            Wire::Http(link) => link.url().scheme(),
        }
    }

    /// The connection's smoothed round-trip time (QUIC only).
    pub fn rtt(&self) -> Option<Duration> {
        match &self.wire {
            Wire::Quic { connection, .. } => Some(connection.rtt()),
            Wire::Http(_) => None,
        }
    }

    /// Bytes received on this connection so far (QUIC only), for logs.
    pub fn received_bytes(&self) -> Option<u64> {
        match &self.wire {
            Wire::Quic { connection, .. } => Some(connection.stats().udp_rx.bytes),
            Wire::Http(_) => None,
        }
    }

    /// Waits for the sync's bandwidth cap to allow sending `bytes` (what
    /// an edge sends upstream, such as a proposed lesson's chunks).
    pub async fn pace_send(&self, bytes: usize) {
        if let Some(bucket) = &self.cap {
            bucket.take(bytes).await;
        }
    }

    /// Whether the connection has ended (closed, reset or timed out).
    pub fn is_closed(&self) -> bool {
        match &self.wire {
            Wire::Quic { connection, .. } => connection.close_reason().is_some(),
            Wire::Http(_) => false,
        }
    }

    /// Sends one request on a new stream (or HTTP request); the answers are
    /// read from the returned reader. With a CDN, objects and chunks are
    /// asked of it first (see [`crate::sync::cdn`]).
    pub async fn request(&self, request: &Request) -> Result<Responses, ClientError> {
        if let (Some(link), Some((kind, hashes))) = (&self.cdn, crate::sync::cdn::wanted(request)) {
            let answers = crate::sync::cdn::CdnAnswers::new(link.clone(), kind, hashes);
            return Ok(Responses {
                reader: Reader::Cdn {
                    answers: Box::new(answers),
                    rest: None,
                },
                client: self.clone(),
            });
        }
        self.request_then(request, None).await
    }

    /// Sends one request to the origin itself, never to the CDN.
    pub(super) async fn request_origin(&self, request: &Request) -> Result<Responses, ClientError> {
        self.request_then(request, None).await
    }

    /// Like [`Client::request`], with a second request on the same QUIC
    /// stream (the pace after the hello); ignored over HTTP.
    async fn request_then(
        &self,
        request: &Request,
        then: Option<&Request>,
    ) -> Result<Responses, ClientError> {
        debug!(
            request = request.kind(),
            transport = self.transport_name(),
            "request sent"
        );
        let reader = match &self.wire {
            Wire::Quic {
                connection, busy, ..
            } => {
                let (mut send, recv) = connection
                    .open_bi()
                    .await
                    .map_err(|err| self.connection_error(err))?;
                for request in std::iter::once(request).chain(then) {
                    protocol::write_frame_quic(&mut send, request)
                        .await
                        .map_err(|err| self.frame_error(err))?;
                }
                let _ = send.finish();
                Reader::Quic {
                    recv,
                    _waiting: Waiting::new(busy),
                }
            }
            Wire::Http(link) => Reader::Http(link.post(protocol::encode(request)).await?),
        };
        Ok(Responses {
            reader,
            client: self.clone(),
        })
    }

    /// The encoded signed catalog, unless ours (`have`) is current.
    pub async fn catalog(&self, have: Option<u64>) -> Result<Option<Vec<u8>>, ClientError> {
        let mut responses = self
            .request(&Request::GetCatalog {
                have_sequence: have,
            })
            .await?;
        match responses.next().await? {
            Some(Response::Catalog { signed }) => Ok(signed),
            Some(other) => Err(self.unexpected(&other)),
            None => Err(self.lost("no answer to the catalog request")),
        }
    }

    /// The encoded signed catalog unless ours (`have`, with the course
    /// objects `courses` of the catalog we hold) is current, and with it
    /// every metadata object the origin sees we lack, in one round trip
    /// (issue 12). An origin older than revision 2, or one that refuses the
    /// request, is asked with [`Client::catalog`] instead and no objects come
    /// along; the sync's walk then asks for them level by level. The
    /// objects' bytes are not yet verified.
    pub async fn catalog_since(
        &self,
        have: Option<u64>,
        courses: &[Hash],
    ) -> Result<SinceAnswer, ClientError> {
        // With a CDN (issue 16) the objects come from it, level by level:
        // a few more round trips, none of their bytes from the origin.
        if self.origin_revision < protocol::REVISION_CATALOG_SINCE
            || courses.len() > protocol::MAX_HASHES
            || self.cdn.is_some()
        {
            return Ok((self.catalog(have).await?, Vec::new()));
        }
        let responses = self.request(&since_request(have, courses)).await?;
        self.read_since(responses, have).await
    }

    /// Reads the answers to a `CatalogSince` (see [`Client::catalog_since`]).
    async fn read_since(
        &self,
        mut responses: Responses,
        have: Option<u64>,
    ) -> Result<SinceAnswer, ClientError> {
        let signed = match responses.next().await? {
            Some(Response::Catalog { signed }) => signed,
            Some(Response::Error { message }) => {
                warn!(addr = %self.addr, %message, "the origin refused a catalog-since request; asking level by level");
                return Ok((self.catalog(have).await?, Vec::new()));
            }
            Some(other) => return Err(self.unexpected(&other)),
            None => return Err(self.lost("no answer to the catalog request")),
        };
        let mut objects = Vec::new();
        let mut bytes = 0usize;
        while let Some(response) = responses.next().await? {
            match response {
                Response::Object {
                    hash,
                    bytes: object,
                } if objects.len() < protocol::MAX_SINCE_OBJECTS
                    && bytes + object.len() <= protocol::MAX_SINCE_BYTES =>
                {
                    bytes += object.len();
                    objects.push((hash, object));
                }
                other => return Err(self.unexpected(&other)),
            }
        }
        debug!(
            objects = objects.len(),
            bytes, "metadata came with the catalog"
        );
        Ok((signed, objects))
    }

    /// Objects by hash; `None` for each the origin does not hold. Bytes are not yet verified.
    pub async fn objects(
        &self,
        hashes: &[Hash],
    ) -> Result<Vec<(Hash, Option<Vec<u8>>)>, ClientError> {
        let mut found = Vec::with_capacity(hashes.len());
        for batch in hashes.chunks(protocol::MAX_HASHES) {
            let mut responses = self
                .request(&Request::GetObjects {
                    hashes: batch.to_vec(),
                })
                .await?;
            let mut answered = 0;
            while let Some(response) = responses.next().await.map_err(|err| match err {
                // Answers come in request order: name the object whose answer
                // is unreadable (e.g. over the frame limit, issue 11).
                ClientError::Protocol { addr, .. } => match batch.get(answered) {
                    Some(hash) => ClientError::ObjectAnswer {
                        addr,
                        hash: *hash,
                        cause: Cause::new(err),
                    },
                    None => err,
                },
                other => other,
            })? {
                answered += 1;
                match response {
                    Response::Object { hash, bytes } => found.push((hash, Some(bytes))),
                    Response::Missing { hash } => found.push((hash, None)),
                    other => return Err(self.unexpected(&other)),
                }
            }
        }
        Ok(found)
    }

    /// Sends our status to the origin's log. It is the last request of a
    /// pass and only logged, so the edge waits at most [`STATUS_WAIT`] for
    /// the origin's Ok instead of a whole round trip (issue 12): the status
    /// leaves before the close that follows, and arrives before it.
    pub async fn report_status(&self, status: String) -> Result<(), ClientError> {
        let mut responses = self.request(&Request::ReportStatus { status }).await?;
        match tokio::time::timeout(STATUS_WAIT, responses.next()).await {
            Err(_) | Ok(Ok(Some(Response::Ok) | None)) => Ok(()),
            Ok(Ok(Some(other))) => Err(self.unexpected(&other)),
            Ok(Err(err)) => Err(err),
        }
    }

    /// Closes the connection politely: the close leaves at once, and the
    /// edge lingers at most [`CLOSE_LINGER`] for the connection to drain
    /// (which takes three probe timeouts, seconds on a satellite link, and
    /// would only delay the end of a pass that has everything; issue 12).
    /// If the close is lost, the origin drops the connection at its idle
    /// timeout.
    pub async fn close(self) {
        if let Wire::Quic {
            endpoint,
            connection,
            ..
        } = self.wire
        {
            connection.close(quinn::VarInt::from_u32(protocol::CLOSE_DONE), b"done");
            let _ = tokio::time::timeout(CLOSE_LINGER, endpoint.wait_idle()).await;
        }
    }
}

/// The revision-2 question for the catalog since `have`.
fn since_request(have: Option<u64>, courses: &[Hash]) -> Request {
    Request::CatalogSince {
        have_sequence: have,
        have_courses: courses.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_parse_from_flags_and_edge_toml() {
        assert_eq!("auto".parse(), Ok(Transport::Auto));
        assert_eq!("QUIC".parse(), Ok(Transport::Quic));
        assert_eq!("https".parse(), Ok(Transport::Http));
        let err = "tcp".parse::<Transport>().expect_err("not a transport");
        assert!(err.contains("auto, quic or http"), "{err}");
    }
}
