//! The edge's side of the sync protocol: one QUIC connection to the origin.

use std::net::SocketAddr;
use std::sync::Arc;

use catalog::Hash;
use server::protocol::{self, FrameError, Request, Response};
use tracing::debug;

use crate::config::EdgeConfig;
use crate::throttle::TokenBucket;

/// How long a handshake may take before the attempt counts as failed.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why talking to the origin failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the origin at {addr} refused this edge's token; ask the administrator for a new one (`shanlu origin add-edge`) and put it in edge.toml"
    )]
    Unauthorized { addr: SocketAddr },
    #[error(
        "the origin at {addr} speaks another protocol version; upgrade shanlu on the edge or the origin"
    )]
    Version { addr: SocketAddr },
    #[error("cannot reach the origin at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("the connection to the origin at {addr} was lost: {reason}")]
    Lost { addr: SocketAddr, reason: String },
    #[error("the origin at {addr} answered something unexpected: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    #[error("the origin at {addr} refused a request: {message}")]
    Refused { addr: SocketAddr, message: String },
    #[error("edge configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("TLS: {0}")]
    Tls(#[from] server::tls::TlsError),
}

impl ClientError {
    /// Whether trying again later may help (the link, not the credentials, failed).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Connect { .. } | ClientError::Lost { .. })
    }
}

/// A connection to the origin that has been welcomed.
#[derive(Clone)]
pub struct Client {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    addr: SocketAddr,
    /// Paces every answer read on this connection (a sync's bandwidth cap).
    bucket: Option<Arc<TokenBucket>>,
    pub edge_name: String,
}

impl Client {
    /// Connects, pins the certificate, and says hello with the token.
    pub async fn connect(config: &EdgeConfig) -> Result<Client, ClientError> {
        Client::connect_paced(config, None).await
    }

    /// Like [`Client::connect`]; with a `bucket`, every answer is read no
    /// faster than its rate and the receive windows are sized to it.
    pub async fn connect_paced(
        config: &EdgeConfig,
        bucket: Option<Arc<TokenBucket>>,
    ) -> Result<Client, ClientError> {
        let addr = config.origin_addr()?;
        let crypto = server::tls::client_config(&config.origin_cert)?;
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
            .map_err(|err| server::tls::TlsError::Config(err.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(quic));
        client_config.transport_config(match &bucket {
            Some(bucket) => {
                server::transport::transport_config_with_window(bucket.receive_window())
            }
            None => server::transport::transport_config(),
        });
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .map_err(|_| ClientError::Connect {
            addr,
            reason: "no local address".into(),
        })?;
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|err| ClientError::Connect {
            addr,
            reason: err.to_string(),
        })?;
        endpoint.set_default_client_config(client_config);
        let connecting = endpoint
            .connect(addr, server::tls::SERVER_NAME)
            .map_err(|err| ClientError::Connect {
                addr,
                reason: err.to_string(),
            })?;
        let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(connected) => connected.map_err(|err| ClientError::Connect {
                addr,
                reason: err.to_string(),
            })?,
            Err(_) => {
                let reason = format!(
                    "no answer within {} s (is UDP to that port open?)",
                    CONNECT_TIMEOUT.as_secs()
                );
                return Err(ClientError::Connect { addr, reason });
            }
        };
        let mut client = Client {
            endpoint,
            connection,
            addr,
            bucket,
            edge_name: String::new(),
        };
        let hello = Request::Hello {
            version: protocol::VERSION,
            token: config.token.trim().to_owned(),
        };
        let mut responses = client.request(&hello).await?;
        match responses.next().await? {
            Some(Response::Welcome { edge_name, .. }) => client.edge_name = edge_name,
            Some(other) => return Err(client.unexpected(&other)),
            None => return Err(client.lost("the origin closed the hello stream")),
        }
        debug!(edge = %client.edge_name, %addr, "welcomed by the origin");
        Ok(client)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the connection has ended (closed, reset or timed out).
    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    /// Sends one request on a new stream; the answers are read from the returned reader.
    pub async fn request(&self, request: &Request) -> Result<Responses, ClientError> {
        let (mut send, recv) = self
            .connection
            .open_bi()
            .await
            .map_err(|err| self.connection_error(err))?;
        protocol::write_frame(&mut send, request)
            .await
            .map_err(|err| self.frame_error(err))?;
        let _ = send.finish();
        Ok(Responses {
            recv,
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
            while let Some(response) = responses.next().await? {
                match response {
                    Response::Object { hash, bytes } => found.push((hash, Some(bytes))),
                    Response::Missing { hash } => found.push((hash, None)),
                    other => return Err(self.unexpected(&other)),
                }
            }
        }
        Ok(found)
    }

    /// Sends our status to the origin's log.
    pub async fn report_status(&self, status: String) -> Result<(), ClientError> {
        let mut responses = self.request(&Request::ReportStatus { status }).await?;
        match responses.next().await? {
            Some(Response::Ok) | None => Ok(()),
            Some(other) => Err(self.unexpected(&other)),
        }
    }

    /// Closes the connection politely and waits for the origin to hear it.
    pub async fn close(self) {
        self.connection
            .close(quinn::VarInt::from_u32(protocol::CLOSE_DONE), b"done");
        self.endpoint.wait_idle().await;
    }

    fn connection_error(&self, err: quinn::ConnectionError) -> ClientError {
        if let quinn::ConnectionError::ApplicationClosed(close) = &err {
            let code = close.error_code.into_inner();
            if code == u64::from(protocol::CLOSE_UNAUTHORIZED) {
                return ClientError::Unauthorized { addr: self.addr };
            }
            if code == u64::from(protocol::CLOSE_VERSION) {
                return ClientError::Version { addr: self.addr };
            }
        }
        ClientError::Lost {
            addr: self.addr,
            reason: err.to_string(),
        }
    }

    fn frame_error(&self, err: FrameError) -> ClientError {
        // A closed connection shows up as a read or write error; ask the connection why.
        if let Some(reason) = self.connection.close_reason() {
            return self.connection_error(reason);
        }
        match err {
            FrameError::Read(reason) | FrameError::Write(reason) => ClientError::Lost {
                addr: self.addr,
                reason,
            },
            other => ClientError::Protocol {
                addr: self.addr,
                reason: other.to_string(),
            },
        }
    }

    fn unexpected(&self, response: &Response) -> ClientError {
        match response {
            Response::Error { message } => ClientError::Refused {
                addr: self.addr,
                message: message.clone(),
            },
            other => ClientError::Protocol {
                addr: self.addr,
                reason: format!("{other:?}").chars().take(120).collect(),
            },
        }
    }

    fn lost(&self, reason: &str) -> ClientError {
        match self.connection.close_reason() {
            Some(err) => self.connection_error(err),
            None => ClientError::Lost {
                addr: self.addr,
                reason: reason.to_owned(),
            },
        }
    }
}

/// The answers to one request, read frame by frame.
pub struct Responses {
    recv: quinn::RecvStream,
    client: Client,
}

impl Responses {
    /// The next answer; `None` when the origin has finished the stream.
    pub async fn next(&mut self) -> Result<Option<Response>, ClientError> {
        let bucket = self.client.bucket.as_deref();
        let pace = |bytes| async move {
            if let Some(bucket) = bucket {
                bucket.take(bytes).await;
            }
        };
        let read = protocol::read_frame_paced::<Response, _, _>(
            &mut self.recv,
            protocol::MAX_RESPONSE,
            pace,
        );
        match read.await {
            Ok(response) => Ok(response),
            Err(err) => Err(self.client.frame_error(err)),
        }
    }
}
