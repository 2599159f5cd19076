//! The sync protocol over HTTP(S), for schools whose carrier blocks UDP.
//!
//! Each request is a `POST /v1/sync` whose body is the request frame QUIC
//! would carry; the answer body is the same stream of response frames. The
//! token travels as `Authorization: Bearer`. Over `https://` the origin's
//! certificate is pinned exactly as for QUIC. Several requests run at once
//! on several keep-alive connections, so the sync keeps as many answers in
//! flight as it does over QUIC.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyDataStream, BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, StatusCode, header};
use tracing::debug;

use crate::config::ConfigError;
use crate::lock;
use crate::sync::client::ClientError;

/// How long a TCP connect and TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the origin may take to start answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle keep-alive connections kept for the next requests.
const MAX_IDLE: usize = 16;

/// Where the origin's HTTP(S) routes are: `https://HOST:PORT` (or `http://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackUrl {
    pub tls: bool,
    /// `HOST:PORT`, as written.
    pub authority: String,
}

impl FallbackUrl {
    pub fn parse(text: &str) -> Result<FallbackUrl, ConfigError> {
        let text = text.trim().trim_end_matches('/');
        let (tls, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(ConfigError::Invalid(format!(
                "fallback {text:?} must look like https://HOST:PORT (the origin's --https)"
            )));
        };
        let valid = rest
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid || rest.contains('/') {
            return Err(ConfigError::Invalid(format!(
                "fallback {text:?} needs a host and a port and nothing after them: https://HOST:PORT"
            )));
        }
        Ok(FallbackUrl {
            tls,
            authority: rest.to_owned(),
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

/// Connections to the origin's HTTP(S) routes.
pub struct HttpLink {
    url: FallbackUrl,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsConnector>,
    authorization: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// An answer body being read; hands its connection back when it is read to the end.
pub struct HttpAnswer {
    pub body: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    sender: Option<SendRequest<Full<Bytes>>>,
    link: Arc<HttpLink>,
}

impl HttpAnswer {
    /// The body was read to its end: its connection can carry the next request.
    pub fn finished(&mut self) {
        if let Some(sender) = self.sender.take() {
            let mut idle = lock(&self.link.idle);
            if idle.len() < MAX_IDLE && !sender.is_closed() {
                idle.push(sender);
            }
        }
    }
}

impl HttpLink {
    /// Resolves the address; connections are made as requests need them.
    pub async fn new(
        url: FallbackUrl,
        pinned_cert: &str,
        token: &str,
    ) -> Result<Arc<HttpLink>, ClientError> {
        let addr = tokio::net::lookup_host(&url.authority)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                ClientError::Config(ConfigError::Invalid(format!(
                    "cannot resolve the fallback address {url}"
                )))
            })?;
        let tls = if url.tls {
            let mut config = server::tls::client_config(pinned_cert)?;
            config.alpn_protocols = vec![server::tls::HTTP_ALPN.to_vec()];
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Arc::new(HttpLink {
            url,
            addr,
            tls,
            authorization: format!("Bearer {}", token.trim()),
            idle: Mutex::new(Vec::new()),
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
        let mut sender = self.sender().await?;
        let request = hyper::Request::builder()
            .method(Method::POST)
            .uri("/v1/sync")
            .header(header::HOST, &self.url.authority)
            .header(header::AUTHORIZATION, &self.authorization)
            .header(header::CONTENT_TYPE, server::http::FRAMES)
            .body(Full::new(Bytes::from(frame)))
            .map_err(|err| self.protocol(err.to_string()))?;
        let response = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| self.lost(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())))?
            .map_err(|err| self.lost(err.to_string()))?;
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
            sender: Some(sender),
            link: self.clone(),
        })
    }

    /// An idle connection, or a new one.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        loop {
            let Some(mut sender) = lock(&self.idle).pop() else {
                break;
            };
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| ClientError::Connect {
                addr: self.addr,
                reason: format!(
                    "no TCP connection to {} within {} s",
                    self.url,
                    CONNECT_TIMEOUT.as_secs()
                ),
            })?
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let connect_error = |reason: String| ClientError::Connect {
            addr: self.addr,
            reason: format!("{}: {reason}", self.url),
        };
        let tcp = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|err| connect_error(err.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(server::tls::SERVER_NAME)
                    .map_err(|err| connect_error(err.to_string()))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|err| connect_error(format!("TLS: {err}")))?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|err| connect_error(err.to_string()))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                debug!(cause = %err, "HTTP connection to the origin ended");
            }
        });
        Ok(sender)
    }

    fn lost(&self, reason: String) -> ClientError {
        ClientError::Lost {
            addr: self.addr,
            reason,
        }
    }

    fn protocol(&self, reason: String) -> ClientError {
        ClientError::Protocol {
            addr: self.addr,
            reason,
        }
    }

    fn refusal(&self, status: StatusCode, text: String) -> ClientError {
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized { addr: self.addr },
            StatusCode::SERVICE_UNAVAILABLE if text.starts_with(server::tokens::BROKEN_CONFIG) => {
                ClientError::OriginConfig { addr: self.addr }
            }
            // A proxy or an origin restarting: worth another try.
            status if status.is_server_error() => self.lost(format!("HTTP {status}: {text}")),
            StatusCode::NOT_FOUND => ClientError::Protocol {
                addr: self.addr,
                reason: format!(
                    "{} has no /v1/sync (HTTP 404); is it the origin's --https address?",
                    self.url
                ),
            },
            _ => ClientError::Refused {
                addr: self.addr,
                message: format!("HTTP {status}: {text}"),
            },
        }
    }
}

/// What an HTTP connection runs over: TCP, or TLS over TCP.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

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
