//! QUIC transport settings shared by the origin and the edges.
//!
//! Schools sit behind slow links with long round trips and some loss. What the
//! settings are and why (measured on `tools/linksim`; BENCHMARKS.md has the runs):
//!
//! - **Windows.** The windows must cover the link's bandwidth-delay product or
//!   the sender stalls every round trip; far above it, a sender that
//!   overestimates the link can fill the bottleneck's queue and lose a queue's
//!   worth at once. A satellite school link is about 20 Mbit/s × 600 ms ≈ 1.5
//!   MB. The connection window starts at 16 MiB and a stream's at 4 MiB (a
//!   request's answers travel on one stream and several are in flight); the
//!   edge then keeps its connection window at four times the BDP it measures
//!   (`edge_cache::sync::window`). An edge with a bandwidth cap sizes its windows
//!   from the cap instead ([`transport_config_with_window`]), so the cap holds
//!   on the link.
//! - **Outages.** Keep-alives every 10 s and a 120 s idle timeout: a connection
//!   outlives a minute-long cut, and the edge resumes on it without a new
//!   handshake. (A longer cut ends the connection and the edge reconnects; it
//!   keeps every chunk it already has.)
//! - **Congestion control** is the sender's, so the origin's `--congestion`
//!   chooses it. The default is [`Congestion::Rural`] (see
//!   [`crate::congestion`]). Measured with `tools/bench/links.sh` (20 MB,
//!   10 Mbit/s, 100 ms, 1 % loss): `rural` 18.7 s, quinn's BBR 19.1 s while
//!   offering the link 2.2× the course (the rest dropped in its full queue),
//!   Cubic 110 s. At 200 MB `rural` reached 94 % of that link and 78–81 % of
//!   a 20 Mbit/s, 600 ms satellite link with 1 % loss (BENCHMARKS.md).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use quinn::congestion::{BbrConfig, CubicConfig, NewRenoConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

/// Requests one connection may have in flight.
pub const MAX_STREAMS: u32 = 64;

/// How often an idle connection sends a keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How long a connection may hear nothing before it is given up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A QUIC congestion controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
    /// shanlu's own ([`crate::congestion`]): BBR's model with a window sized
    /// to it; not put off by random loss, and does not overfill queues.
    #[default]
    Rural,
    /// quinn's BBR: model-based, not put off by random loss, but with quinn's
    /// pacing it sends well beyond what the link carries.
    Bbr,
    /// Loss-based, the usual default of TCP stacks.
    Cubic,
    /// Loss-based, the classic.
    NewReno,
}

impl Congestion {
    pub const ALL: [Congestion; 4] = [
        Congestion::Rural,
        Congestion::Bbr,
        Congestion::Cubic,
        Congestion::NewReno,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Congestion::Rural => "rural",
            Congestion::Bbr => "bbr",
            Congestion::Cubic => "cubic",
            Congestion::NewReno => "newreno",
        }
    }
}

impl fmt::Display for Congestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Congestion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Congestion::ALL
            .into_iter()
            .find(|choice| choice.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                format!("{text:?} is not a congestion controller: use rural, bbr, cubic or newreno")
            })
    }
}

/// A client's settings (an edge's, an administrator's): the default
/// congestion controller, and requests sent whole one after another rather
/// than interleaved. A client's large requests are an administrator's
/// uploads; sent in order, they reach the origin in order, and the origin
/// hashes each file as its chunks arrive instead of reading it back.
pub fn transport_config() -> Arc<TransportConfig> {
    Arc::new(client_settings(settings(Congestion::default())))
}

fn client_settings(mut config: TransportConfig) -> TransportConfig {
    config.send_fairness(false);
    config
}

/// The settings with the given congestion controller.
pub fn transport_config_with(congestion: Congestion) -> Arc<TransportConfig> {
    Arc::new(settings(congestion))
}

/// The same settings, but the peer may send at most `window` bytes ahead of
/// what this side has read. An edge with a bandwidth cap reads no faster than
/// the cap, so with a window of about a second's worth the cap holds on the
/// link, not only between the edge's buffers and its disk.
pub fn transport_config_with_window(window: u32) -> Arc<TransportConfig> {
    let mut config = client_settings(settings(Congestion::default()));
    config
        .stream_receive_window(VarInt::from_u32(window))
        .receive_window(VarInt::from_u32(window));
    Arc::new(config)
}

/// The origin's settings for one connection from `addr` with the default
/// controller resuming from the link model `memory` holds for that address
/// (see [`crate::congestion`], "Resuming").
pub fn transport_config_resuming(
    memory: Arc<crate::congestion::LinkMemory>,
    addr: std::net::IpAddr,
) -> Arc<TransportConfig> {
    let mut config = settings(Congestion::Rural);
    config
        .congestion_controller_factory(Arc::new(crate::congestion::ResumingRural { memory, addr }));
    Arc::new(config)
}

fn settings(congestion: Congestion) -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(4 * 1024 * 1024))
        .receive_window(VarInt::from_u32(16 * 1024 * 1024))
        .send_window(16 * 1024 * 1024)
        .keep_alive_interval(Some(KEEP_ALIVE))
        // 120 s fits in a VarInt of milliseconds, so the conversion cannot fail.
        .max_idle_timeout(Some(
            IdleTimeout::try_from(IDLE_TIMEOUT).expect("120 s is a valid idle timeout"),
        ));
    match congestion {
        Congestion::Rural => {
            config.congestion_controller_factory(Arc::new(crate::congestion::RuralConfig))
        }
        Congestion::Bbr => config.congestion_controller_factory(Arc::new(BbrConfig::default())),
        Congestion::Cubic => config.congestion_controller_factory(Arc::new(CubicConfig::default())),
        Congestion::NewReno => {
            config.congestion_controller_factory(Arc::new(NewRenoConfig::default()))
        }
    };
    config
}

/// Socket buffer each QUIC endpoint asks for, both ways. The system's
/// default (208 KiB on Linux) fills in under a millisecond at loopback and
/// LAN speeds whenever the process is busy for a moment, and every datagram
/// past it is lost: retransmitted and counted as congestion. The kernel
/// grants at most `net.core.rmem_max`/`wmem_max` (docs/install.md).
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// A UDP socket bound to `addr` for a QUIC endpoint, with buffers of
/// [`SOCKET_BUFFER`] where the system allows (less is not an error; the
/// first socket that gets less says so in the log, once per process).
/// `dual_stack`: an IPv6 socket also carries IPv4, as quinn's own client
/// endpoints do (best effort); otherwise the system's default holds, as for
/// `UdpSocket::bind`.
pub fn udp_socket(
    addr: std::net::SocketAddr,
    dual_stack: bool,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if dual_stack && addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    // Linux reports twice what it grants (the rest is its bookkeeping).
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    static TOLD: std::sync::Once = std::sync::Once::new();
    if granted < SOCKET_BUFFER {
        TOLD.call_once(|| tracing::info!(
            granted_kib = granted / 1024,
            wanted_kib = SOCKET_BUFFER / 1024,
            "the system limits this QUIC socket's receive buffer; fast uploads on a LAN may lose \
             packets (raise net.core.rmem_max, see docs/install.md)"
        ));
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A QUIC socket gets the buffer it asks for, up to what the system
    /// allows (Linux reports twice what it grants).
    #[cfg(target_os = "linux")]
    #[test]
    fn quic_sockets_ask_for_big_buffers() {
        let most = |name: &str| -> usize {
            std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .expect("the system's socket buffer limit")
        };
        let socket = udp_socket("127.0.0.1:0".parse().expect("addr"), false).expect("bind");
        let socket = socket2::SockRef::from(&socket);
        assert_eq!(
            socket.recv_buffer_size().expect("SO_RCVBUF"),
            2 * SOCKET_BUFFER.min(most("rmem_max"))
        );
        assert_eq!(
            socket.send_buffer_size().expect("SO_SNDBUF"),
            2 * SOCKET_BUFFER.min(most("wmem_max"))
        );
    }

    #[test]
    fn congestion_names_parse_back() {
        for choice in Congestion::ALL {
            assert_eq!(choice.name().parse::<Congestion>(), Ok(choice));
            assert_eq!(choice.to_string().to_uppercase().parse(), Ok(choice));
        }
        let err = "vegas".parse::<Congestion>().expect_err("not offered");
        assert!(err.contains("rural, bbr, cubic or newreno"), "{err}");
    }
}
