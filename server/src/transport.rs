//! QUIC transport settings shared by the origin and the edges.
//!
//! Schools sit behind slow links with long round trips, so windows are sized
//! for a bandwidth-delay product well above what a school link reaches (20
//! Mbit/s × 600 ms ≈ 1.5 MB; the windows allow 8× that per connection), and a
//! connection survives a minute of silence. Issue 6 tunes these on an emulated
//! link; these are the starting values.

use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

/// Requests one connection may have in flight.
pub const MAX_STREAMS: u32 = 64;

pub fn transport_config() -> Arc<TransportConfig> {
    Arc::new(settings())
}

/// The same settings, but the peer may send at most `window` bytes ahead of
/// what this side has read. An edge with a bandwidth cap reads no faster than
/// the cap, so with a window of about a second's worth the cap holds on the
/// link, not only between the edge's buffers and its disk.
pub fn transport_config_with_window(window: u32) -> Arc<TransportConfig> {
    let mut config = settings();
    config
        .stream_receive_window(VarInt::from_u32(window))
        .receive_window(VarInt::from_u32(window));
    Arc::new(config)
}

fn settings() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(4 * 1024 * 1024))
        .receive_window(VarInt::from_u32(16 * 1024 * 1024))
        .send_window(16 * 1024 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(10)))
        // 120 s fits in a VarInt of milliseconds, so the conversion cannot fail.
        .max_idle_timeout(Some(
            IdleTimeout::try_from(Duration::from_secs(120)).expect("120 s is a valid idle timeout"),
        ));
    config
}
