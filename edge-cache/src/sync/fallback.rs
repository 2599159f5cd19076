//! The sync protocol over HTTP(S), for schools whose carrier blocks UDP.
//!
//! Each request is a `POST /v1/sync` whose body is the request frame QUIC
//! would carry; the answer body is the same stream of response frames. The
//! token travels as `Authorization: Bearer`. Over `https://` the origin's
//! certificate is pinned exactly as for QUIC. Several requests run at once
//! on several keep-alive connections of hyper's pooled client, so the sync
//! keeps as many answers in flight as it does over QUIC.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::{Method, StatusCode, Uri, header};
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::config::ConfigError;
use crate::sync::client::{Cause, ClientError, timed_out};

/// How long a TCP connect and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the origin may take to start answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle keep-alive connections kept for the next requests.
const MAX_IDLE: usize = 16;
/// How long an idle connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Where the origin's HTTP(S) routes are: `https://HOST:PORT` (or `http://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackUrl {
    pub tls: bool,
    /// `HOST:PORT`, as written.
    pub authority: String,
}

impl FallbackUrl {
    /// Parses `https://HOST:PORT` (or `http://`) with the `url` crate: a
    /// host, an explicit port, and no path, query or user beyond that.
    pub fn parse(text: &str) -> Result<FallbackUrl, ConfigError> {
        let text = text.trim();
        let shape = || {
            ConfigError::Invalid(format!(
                "fallback {text:?} needs a host and a port and nothing after them: https://HOST:PORT (the origin's --https)"
            ))
        };
        let parsed = url::Url::parse(text).map_err(|_| shape())?;
        let tls = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "fallback {text:?} must look like https://HOST:PORT (the origin's --https)"
                )));
            }
        };
        let host = parsed.host_str().filter(|host| !host.is_empty());
        // `url` drops a scheme's default port (443 for https); the port must
        // be written, and nothing may follow it.
        let written_port = text
            .trim_end_matches('/')
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        let (Some(host), true) = (host, written_port) else {
            return Err(shape());
        };
        let port = parsed.port_or_known_default().ok_or_else(shape)?;
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return Err(shape());
        }
        Ok(FallbackUrl {
            tls,
            authority: format!("{host}:{port}"),
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

impl std::fmt::Display for FallbackUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme(), self.authority)
    }
}

/// The origin's HTTP(S) routes, through hyper's pooled client: keep-alive
/// connections are reused and at most [`MAX_IDLE`] kept idle. Every
/// connection goes to the one resolved address, over TLS with the origin's
/// pinned certificate for `https://`.
pub struct HttpLink {
    url: FallbackUrl,
    addr: SocketAddr,
    uri: Uri,
    /// `Bearer <token>`; none for a CDN (issue 16), which is never told it.
    authorization: Option<String>,
    client: PooledClient<PinnedConnector, Full<Bytes>>,
}

/// An answer body being read. Its connection goes back to the pool when
/// the body has been read to its end.
pub struct HttpAnswer {
    pub body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
}

impl HttpAnswer {
    /// The body was read to its end (the pool takes the connection back by itself).
    pub fn finished(&mut self) {}
}

impl HttpLink {
    /// Resolves the address; connections are made as requests need them.
    pub async fn new(
        url: FallbackUrl,
        pinned_cert: &str,
        token: &str,
    ) -> Result<Arc<HttpLink>, ClientError> {
        let authorization = Some(format!("Bearer {}", token.trim()));
        HttpLink::with(url, Some(pinned_cert), authorization).await
    }

    /// A caching proxy or CDN in front of the origin (issue 16): plain
    /// `http://`, no token; what it hands over is checked against its hash.
    pub async fn cdn(url: FallbackUrl) -> Result<Arc<HttpLink>, ClientError> {
        HttpLink::with(url, None, None).await
    }

    async fn with(
        url: FallbackUrl,
        pinned_cert: Option<&str>,
        authorization: Option<String>,
    ) -> Result<Arc<HttpLink>, ClientError> {
        let addr = tokio::net::lookup_host(&url.authority)
            .await
            .and_then(|mut addrs| {
                addrs.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
                })
            })
            .map_err(|err| ClientError::Resolve {
                url: url.to_string(),
                cause: Cause::new(err),
            })?;
        let tls = if let (true, Some(pinned_cert)) = (url.tls, pinned_cert) {
            let mut config = server::tls::client_config(pinned_cert)?;
            config.alpn_protocols = vec![server::tls::HTTP_ALPN.to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let uri: Uri = format!("{url}/v1/sync").parse().map_err(|err| {
            ClientError::from(ConfigError::Invalid(format!(
                "fallback {url} does not make a request address: {err}"
            )))
        })?;
        let connector = PinnedConnector {
            addr,
            tls,
            url: url.to_string(),
        };
        let client = PooledClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE)
            .pool_idle_timeout(IDLE_FOR)
            .build(connector);
        Ok(Arc::new(HttpLink {
            url,
            addr,
            uri,
            authorization,
            client,
        }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> &FallbackUrl {
        &self.url
    }

    /// Posts one request frame; the answer's frames are read from the body.
    pub async fn post(self: &Arc<Self>, frame: Vec<u8>) -> Result<HttpAnswer, ClientError> {
        let mut request = hyper::Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::HOST, &self.url.authority)
            .header(header::CONTENT_TYPE, server::http::FRAMES);
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let request =
            request
                .body(Full::new(Bytes::from(frame)))
                .map_err(|err| ClientError::Protocol {
                    addr: self.addr,
                    cause: Cause::new(err),
                })?;
        let response = self.send(request).await?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.into_body().collect().await;
            let text = body
                .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            return Err(self.refusal(status, text));
        }
        let stream = BodyDataStream::new(response.into_body()).map_err(std::io::Error::other);
        Ok(HttpAnswer {
            body: Box::new(tokio_util::io::StreamReader::new(stream)),
        })
    }

    /// `GET {url}{path}` (a CDN's `/v1/chunks/<hash>`): the body, at most
    /// `limit` bytes; `None` for 404.
    pub async fn get(&self, path: &str, limit: usize) -> Result<Option<Bytes>, ClientError> {
        let uri: Uri =
            format!("{}{path}", self.url)
                .parse()
                .map_err(|err| ClientError::Protocol {
                    addr: self.addr,
                    cause: Cause::new(err),
                })?;
        let request = hyper::Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::HOST, &self.url.authority)
            .body(Full::new(Bytes::new()))
            .map_err(|err| ClientError::Protocol {
                addr: self.addr,
                cause: Cause::new(err),
            })?;
        let response = self.send(request).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status != StatusCode::OK {
            return Err(self.refusal(status, String::new()));
        }
        let body = http_body_util::Limited::new(response.into_body(), limit);
        let bytes = tokio::time::timeout(ANSWER_TIMEOUT, body.collect())
            .await
            .map_err(|_| ClientError::Lost {
                addr: self.addr,
                cause: timed_out(format!("the body took over {} s", ANSWER_TIMEOUT.as_secs())),
            })?
            .map_err(|err| ClientError::Lost {
                addr: self.addr,
                cause: Cause::message(format!("reading {path}: {err}")),
            })?
            .to_bytes();
        Ok(Some(bytes))
    }

    /// Sends `request`; the answer's head, within [`ANSWER_TIMEOUT`].
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| ClientError::Lost {
                addr: self.addr,
                cause: timed_out(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())),
            })?
            .map_err(|err| self.request_error(err))
    }

    /// A failed request: the connection could not be made, or it was lost;
    /// hyper's error (and under it what failed: refused, TLS, timed out) is
    /// the cause.
    fn request_error(&self, err: hyper_util::client::legacy::Error) -> ClientError {
        let addr = self.addr;
        if err.is_connect() {
            ClientError::Connect {
                addr,
                cause: Cause::new(err),
            }
        } else {
            ClientError::Lost {
                addr,
                cause: Cause::new(err),
            }
        }
    }

    fn refusal(&self, status: StatusCode, text: String) -> ClientError {
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { addr: self.addr },
            StatusCode::SERVICE_UNAVAILABLE if text.starts_with(server::tokens::BROKEN_CONFIG) => {
                ClientError::OriginConfig { addr: self.addr }
            }
            // A proxy or an origin restarting: worth another try.
            status if status.is_server_error() => ClientError::ServerError {
                addr: self.addr,
                status: status.as_u16(),
                text,
            },
            StatusCode::NOT_FOUND => ClientError::NoSyncRoute {
                url: self.url.to_string(),
            },
            _ => ClientError::Refused {
                addr: self.addr,
                message: format!("HTTP {status}: {text}"),
            },
        }
    }
}

/// Makes the pool's connections: TCP to the resolved address, then TLS
/// with the pinned certificate when the URL says `https`.
#[derive(Clone)]
struct PinnedConnector {
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    /// For messages.
    url: String,
}

impl tower_service::Service<Uri> for PinnedConnector {
    type Response = TokioIo<Conn>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, this.connect()).await {
                Ok(connected) => connected,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no TCP connection to {} within {} s",
                        this.url,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )),
            }
        })
    }
}

/// A connection to the fallback that could not be made: the address, the
/// step, and the I/O error under it.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {what} failed")]
struct ConnectFailed {
    url: String,
    what: &'static str,
    #[source]
    cause: std::io::Error,
}

impl PinnedConnector {
    async fn connect(&self) -> Result<TokioIo<Conn>, std::io::Error> {
        let with_url = |err: &dyn std::fmt::Display| format!("{}: {err}", self.url);
        let failed = |what, cause: std::io::Error| {
            let kind = cause.kind();
            let url = self.url.clone();
            std::io::Error::new(kind, ConnectFailed { url, what, cause })
        };
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|err| failed("connecting", err))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(server::tls::SERVER_NAME)
                    .map_err(|err| std::io::Error::other(with_url(&err)))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|err| failed("the TLS handshake", err))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        Ok(TokioIo::new(Conn(stream)))
    }
}

/// What an HTTP connection runs over: TCP, or TLS over TCP.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// One pooled connection.
struct Conn(Box<dyn Stream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_urls_parse_or_say_what_is_wrong() {
        let url = FallbackUrl::parse("https://origin.example.edu.cn:8443/").expect("valid");
        assert!(url.tls);
        assert_eq!(url.authority, "origin.example.edu.cn:8443");
        assert_eq!(url.to_string(), "https://origin.example.edu.cn:8443");
        let plain = FallbackUrl::parse("http://10.0.0.1:8081").expect("valid");
        assert!(!plain.tls);
        for bad in [
            "origin:8443",
            "quic://origin:8443",
            "https://origin",
            "https://:8443",
            "https://origin:port",
            "https://origin:8443/v1",
        ] {
            let err = FallbackUrl::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("https://HOST:PORT"), "{bad}: {err}");
        }
    }
}
