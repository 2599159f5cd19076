//! The QUIC side of the connection: the pinned handshake, and replacing a
//! connection that stalled after an outage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use server::protocol;
use tracing::{debug, warn};

use super::ClientError;
use super::error::{Cause, timed_out};
use crate::config::EdgeConfig;
use crate::sync::throttle::TokenBucket;

/// A QUIC connection to the origin, pinned to its certificate (no hello yet).
pub(super) async fn handshake(
    config: &EdgeConfig,
    bucket: Option<&TokenBucket>,
    timeout: Duration,
) -> Result<(quinn::Endpoint, quinn::Connection, SocketAddr), ClientError> {
    let addr = config.origin.resolve().await?;
    let mut crypto = server::tls::client_config(&config.origin_cert.to_string())?;
    crypto.alpn_protocols = edge_alpn();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(crypto)
        .map_err(server::tls::TlsError::Quic)?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(quic));
    client_config.transport_config(match bucket {
        Some(bucket) => server::transport::transport_config_with_window(bucket.receive_window()),
        None => server::transport::transport_config(),
    });
    let bind: SocketAddr = if addr.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let connect_error = |cause: Cause| ClientError::Connect { addr, cause };
    let socket =
        server::transport::udp_socket(bind, true).map_err(|err| connect_error(Cause::new(err)))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| connect_error(Cause::new(std::io::Error::other("no async runtime"))))?;
    let mut endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)
            .map_err(|err| connect_error(Cause::new(err)))?;
    endpoint.set_default_client_config(client_config);
    let connecting = endpoint
        .connect(addr, server::tls::SERVER_NAME)
        .map_err(|err| connect_error(Cause::new(err)))?;
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(connection)) => Ok((endpoint, connection, addr)),
        Ok(Err(err)) => Err(connect_error(Cause::new(err))),
        Err(_) => Err(connect_error(timed_out(format!(
            "no answer within {} s (is UDP to that port open?)",
            timeout.as_secs()
        )))),
    }
}

/// The ALPN names the edge offers, preferred first: `shanlu/2` (an origin
/// that takes requests pipelined behind the hello) and `shanlu/1`, which
/// every origin offers.
pub(super) fn edge_alpn() -> Vec<Vec<u8>> {
    vec![
        server::tls::ALPN_PIPELINED.to_vec(),
        server::tls::ALPN.to_vec(),
    ]
}

/// Whether the origin at the other end of `connection` negotiated
/// `shanlu/2`: it takes a request sent behind the hello, before its Welcome.
pub(super) fn takes_pipelined(connection: &quinn::Connection) -> bool {
    connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|alpn| alpn == server::tls::ALPN_PIPELINED)
}

/// How long answers may bring no data before the edge checks the link.
/// Only short cuts meet it: after a long one the silence already exceeds it
/// when the link returns, and the next check replaces the connection. After
/// a cut of a few seconds under a full queue, QUIC's own doubled resend can
/// come 8–10 s after the last data; waiting 15 s lets the connection live
/// on, and costs a cut of 5–15 s at most a few seconds more.
pub const STALL: Duration = Duration::from_secs(15);
/// How long a check's handshake may take, and how often checks repeat.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Replaces a connection that stalled although the link works again.
///
/// After an outage QUIC waits twice as long before each resend, so a
/// connection that lived through a cut of a minute may send nothing for
/// another minute after the link is back (and a keep-alive is sent only
/// once per silence). So while requests are waiting and no stream data has
/// arrived for [`STALL`], the edge tries a fresh handshake every few seconds;
/// once one succeeds, the link is back, and the stalled connection is closed:
/// its requests fail as lost, and the sync reconnects at once and asks again
/// for what had not arrived. Chunks already received are kept.
pub(super) fn watch_stalls(
    connection: quinn::Connection,
    config: EdgeConfig,
    busy: Arc<AtomicUsize>,
) {
    tokio::spawn(async move {
        let mut seen = connection.stats().frame_rx.stream;
        let mut progress_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = connection.closed() => return,
            }
            let frames = connection.stats().frame_rx.stream;
            if frames != seen || busy.load(Ordering::Relaxed) == 0 {
                seen = frames;
                progress_at = tokio::time::Instant::now();
                continue;
            }
            if progress_at.elapsed() < STALL {
                continue;
            }
            match handshake(&config, None, PROBE_TIMEOUT).await {
                Ok((endpoint, probe, _)) => {
                    probe.close(quinn::VarInt::from_u32(protocol::CLOSE_DONE), b"probe");
                    drop(endpoint);
                    warn!(
                        stalled_s = progress_at.elapsed().as_secs(),
                        "no data from the origin although it answers again; replacing the connection"
                    );
                    connection.close(quinn::VarInt::from_u32(protocol::CLOSE_DONE), STALLED);
                    return;
                }
                Err(err) => debug!(
                    cause = %crate::sync::error_chain(&err),
                    "the link is still down"
                ),
            }
        }
    });
}

/// Why the edge closed a stalled connection.
pub(super) const STALLED: &[u8] = b"stalled after an outage; reconnecting";

#[cfg(test)]
mod tests {
    use super::*;

    /// A handshake on loopback between the edge's ALPN offer and an origin
    /// offering `origin_alpn`: whether the edge would pipeline.
    async fn pipelines_with(origin_alpn: Option<Vec<Vec<u8>>>) -> bool {
        let identity = server::tls::TlsIdentity::generate().expect("identity");
        let mut tls = identity.server_config().expect("server tls");
        if let Some(alpn) = origin_alpn {
            tls.alpn_protocols = alpn;
        }
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).expect("quic tls");
        let origin = quinn::Endpoint::server(
            quinn::ServerConfig::with_crypto(Arc::new(crypto)),
            "127.0.0.1:0".parse().expect("addr"),
        )
        .expect("origin endpoint");
        let addr = origin.local_addr().expect("origin addr");
        let accept = tokio::spawn(async move {
            let connection = origin.accept().await.expect("incoming").await;
            (origin, connection)
        });
        let mut crypto = server::tls::client_config(&identity.fingerprint()).expect("edge tls");
        crypto.alpn_protocols = edge_alpn();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).expect("quic");
        let mut edge =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("edge endpoint");
        edge.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let connection = edge
            .connect(addr, server::tls::SERVER_NAME)
            .expect("connect")
            .await
            .expect("handshake");
        let (_origin, accepted) = accept.await.expect("accept task");
        accepted.expect("the origin accepted the edge");
        takes_pipelined(&connection)
    }

    /// Issue 12: an origin of this version negotiates `shanlu/2`, so the
    /// edge sends its catalog question behind the hello; an older origin
    /// offers only `shanlu/1`, still accepts this edge, and gets the
    /// question after its Welcome.
    #[tokio::test]
    async fn issue_12_the_edge_pipelines_only_with_an_origin_that_offers_shanlu_2() {
        assert!(pipelines_with(None).await);
        assert!(!pipelines_with(Some(vec![server::tls::ALPN.to_vec()])).await);
    }
}
