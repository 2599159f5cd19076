//! The QUIC side of the connection: the pinned handshake, and replacing a
//! connection that stalled after an outage.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use server::protocol;
use tracing::{debug, warn};

use super::ClientError;
use crate::config::EdgeConfig;
use crate::sync::throttle::TokenBucket;

/// A QUIC connection to the origin, pinned to its certificate (no hello yet).
pub(super) async fn handshake(
    config: &EdgeConfig,
    bucket: Option<&TokenBucket>,
    timeout: Duration,
) -> Result<(quinn::Endpoint, quinn::Connection, SocketAddr), ClientError> {
    let addr = config.origin.resolve().await?;
    let crypto = server::tls::client_config(&config.origin_cert.to_string())?;
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
    let connect_error = |reason: String| ClientError::Connect { addr, reason };
    let mut endpoint =
        quinn::Endpoint::client(bind).map_err(|err| connect_error(err.to_string()))?;
    endpoint.set_default_client_config(client_config);
    let connecting = endpoint
        .connect(addr, server::tls::SERVER_NAME)
        .map_err(|err| connect_error(err.to_string()))?;
    match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(connection)) => Ok((endpoint, connection, addr)),
        Ok(Err(err)) => Err(connect_error(err.to_string())),
        Err(_) => Err(connect_error(format!(
            "no answer within {} s (is UDP to that port open?)",
            timeout.as_secs()
        ))),
    }
}

/// How long answers may bring no data before the edge checks the link.
pub const STALL: Duration = Duration::from_secs(8);
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
                Err(err) => debug!(cause = %err, "the link is still down"),
            }
        }
    });
}

/// Why the edge closed a stalled connection.
pub(super) const STALLED: &[u8] = b"stalled after an outage; reconnecting";
