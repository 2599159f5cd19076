//! The threads that move packets: per direction, a reader that takes packets from one TUN
//! device and runs them through the [`Pipeline`], and a writer that holds each admitted packet
//! until its delivery instant and writes it to the other TUN device.
//!
//! Reader and writer meet at a bounded channel: the delay line. Delivery instants never go
//! backwards, so the writer only ever waits for the packet at the head of the line.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use tracing::warn;
use tun_rs::SyncDevice;

use crate::impair::{DropReason, Gate, Pipeline, Verdict};
use crate::spec::Outages;
use crate::stats::Counters;

/// How often idle threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);

/// Packets the delay line holds at most; beyond it packets are dropped as queue overflow.
/// It only binds without a rate limit: 65 536 packets is 1 s at 780 Mbit/s of 1500-byte ones.
const DELAY_LINE_PACKETS: usize = 65_536;

/// The largest packet a TUN device hands over.
const MAX_PACKET: usize = 65_536;

/// Link-wide state the tests and the binary change while the link runs.
#[derive(Debug)]
pub(crate) struct Control {
    pub stop: AtomicBool,
    pub cut: AtomicBool,
    pub udp_blocked: AtomicBool,
    pub started: Instant,
    pub outages: Option<Outages>,
}

impl Control {
    pub fn new(udp_blocked: bool, outages: Option<Outages>) -> Self {
        Control {
            stop: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            udp_blocked: AtomicBool::new(udp_blocked),
            started: Instant::now(),
            outages,
        }
    }

    pub fn is_cut(&self, now: Instant) -> bool {
        self.cut.load(Ordering::Relaxed)
            || self
                .outages
                .is_some_and(|outages| outages.is_cut(now.saturating_duration_since(self.started)))
    }

    fn gate(&self, now: Instant) -> Gate {
        Gate {
            cut: self.is_cut(now),
            udp_blocked: self.udp_blocked.load(Ordering::Relaxed),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One direction: where packets come from and go to, and what happens on the way.
pub(crate) struct Direction {
    /// `down` or `up`, for thread names and logs.
    pub name: &'static str,
    pub from: Arc<SyncDevice>,
    pub to: Arc<SyncDevice>,
    pub pipeline: Pipeline,
    pub counters: Arc<Counters>,
}

/// A packet on the delay line.
struct InFlight {
    deliver_at: Instant,
    packet: Vec<u8>,
}

/// Starts the reader and writer threads of `direction`.
pub(crate) fn spawn(
    direction: Direction,
    control: Arc<Control>,
) -> io::Result<[JoinHandle<()>; 2]> {
    let Direction {
        name,
        from,
        to,
        pipeline,
        counters,
    } = direction;
    let (line_in, line_out) = std::sync::mpsc::sync_channel(DELAY_LINE_PACKETS);
    let writer = {
        let control = control.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name(format!("lsim-{name}-write"))
            .spawn(move || write_loop(name, &to, &control, &counters, &line_out))?
    };
    let reader = std::thread::Builder::new()
        .name(format!("lsim-{name}-read"))
        .spawn(move || read_loop(name, &from, &control, pipeline, &counters, &line_in));
    match reader {
        Ok(reader) => Ok([reader, writer]),
        Err(err) => {
            // The delay line's sender went with the reader's closure: the writer sees it closed.
            let _ = writer.join();
            Err(err)
        }
    }
}

fn read_loop(
    name: &str,
    device: &SyncDevice,
    control: &Control,
    mut pipeline: Pipeline,
    counters: &Counters,
    line: &SyncSender<InFlight>,
) {
    let mut buffer = vec![0u8; MAX_PACKET];
    while !control.stopping() {
        let len = match device.recv(&mut buffer) {
            Ok(len) => len,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(device);
                continue;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                warn!(direction = name, cause = %err, "reading the TUN device failed");
                return;
            }
        };
        let packet = &buffer[..len];
        let now = Instant::now();
        counters.offered(len);
        match pipeline.admit(packet, control.gate(now), now) {
            Verdict::Deliver(deliver_at) => {
                let in_flight = InFlight {
                    deliver_at,
                    packet: packet.to_vec(),
                };
                match line.try_send(in_flight) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => counters.dropped(DropReason::Queue),
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
            Verdict::Drop(reason) => counters.dropped(reason),
        }
    }
}

/// Waits until `device` has a packet or a tick has passed.
fn wait_readable(device: &SyncDevice) {
    let mut fds = [PollFd::new(device, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(TICK.subsec_nanos()),
    };
    // An error (EINTR) only means looking at the stop flag a little early.
    let _ = poll(&mut fds, Some(&timeout));
}

fn write_loop(
    name: &str,
    device: &SyncDevice,
    control: &Control,
    counters: &Counters,
    line: &Receiver<InFlight>,
) {
    loop {
        let in_flight = match line.recv_timeout(TICK) {
            Ok(in_flight) => in_flight,
            Err(RecvTimeoutError::Timeout) if control.stopping() => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if !sleep_until(in_flight.deliver_at, control) {
            return;
        }
        // Packets in flight when the link is cut are lost with it.
        if control.is_cut(Instant::now()) {
            counters.dropped(DropReason::Outage);
            continue;
        }
        match device.send(&in_flight.packet) {
            Ok(_) => counters.carried(in_flight.packet.len()),
            Err(err) => {
                warn!(direction = name, cause = %err, "writing to the TUN device failed");
            }
        }
    }
}

/// Sleeps until `deadline`; false if the link is stopping.
fn sleep_until(deadline: Instant, control: &Control) -> bool {
    loop {
        if control.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(TICK));
    }
}
