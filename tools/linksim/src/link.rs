//! [`Link`]: two namespaces, a TUN device in each, and the forwarder between them; stopped and
//! cleaned up on drop or when its lifetime runs out.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info};
use tun_rs::{DeviceBuilder, SyncDevice};

use crate::LinkError;
use crate::forwarder::{self, Control, Direction};
use crate::impair::Pipeline;
use crate::netns::{self, Namespace};
use crate::spec::LinkSpec;
use crate::stats::{Counters, Stats};

/// The name of the TUN device in each namespace.
pub const DEVICE_NAME: &str = "linksim0";

/// The TUN queue in packets, above the kernel's 500 so bursts from a fast sender wait for the
/// reader instead of being dropped where no counter sees them.
const TX_QUEUE_LEN: u32 = 10_000;

/// Links started by this process, for unique names and addresses.
static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// One end of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Where the origin server runs: the `…-o` namespace, address `10.99.<n>.1`.
    Origin,
    /// Where the school edge runs: the `…-e` namespace, address `10.99.<n>.2`.
    Edge,
}

/// A running emulated link. Dropping it stops the forwarder and deletes the namespaces.
pub struct Link {
    inner: Arc<Inner>,
    /// Dropped to wake the watchdog early.
    wake_watchdog: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

struct Inner {
    spec: LinkSpec,
    namespace_names: [String; 2],
    ips: [Ipv4Addr; 2],
    control: Arc<Control>,
    down: Arc<Counters>,
    up: Arc<Counters>,
    running: Mutex<Option<Running>>,
}

/// What [`Inner::shutdown`] takes apart, in order: threads first, then namespaces.
struct Running {
    threads: Vec<JoinHandle<()>>,
    namespaces: [Namespace; 2],
}

impl Inner {
    /// Stops the threads and deletes the namespaces, once; holds the lock throughout so that
    /// [`Inner::is_running`] turns false only when all is gone.
    fn shutdown(&self) {
        let mut slot = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(running) = slot.take() else {
            return;
        };
        self.control.stop.store(true, Ordering::Relaxed);
        for thread in running.threads {
            let _ = thread.join();
        }
        // The threads held the TUN devices; with them closed, the namespaces go.
        drop(running.namespaces);
        drop(slot);
        info!(origin = %self.namespace_names[0], edge = %self.namespace_names[1], "link stopped");
    }

    fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

impl Link {
    /// Creates the namespaces and devices and starts forwarding; the link stops by itself
    /// after `max_lifetime`.
    pub fn start(spec: LinkSpec, max_lifetime: Duration) -> Result<Link, LinkError> {
        spec.validate()?;
        netns::remove_stale();

        let pid = std::process::id();
        let n = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
        let subnet = (n % 256) as u8;
        let ips = [
            Ipv4Addr::new(10, 99, subnet, 1),
            Ipv4Addr::new(10, 99, subnet, 2),
        ];
        let names = [
            format!("{}{pid}-{n}-o", netns::PREFIX),
            format!("{}{pid}-{n}-e", netns::PREFIX),
        ];
        let origin_ns = Namespace::create(names[0].clone())?;
        let edge_ns = Namespace::create(names[1].clone())?;
        let origin_device = Arc::new(make_device(&names[0], ips[0], ips[1], spec.mtu)?);
        let edge_device = Arc::new(make_device(&names[1], ips[1], ips[0], spec.mtu)?);

        let control = Arc::new(Control::new(spec.drop_udp, spec.outages));
        let down = Arc::new(Counters::default());
        let up = Arc::new(Counters::default());
        let now = Instant::now();
        let directions = [
            Direction {
                name: "down",
                from: origin_device.clone(),
                to: edge_device.clone(),
                pipeline: Pipeline::new(&spec.down, spec.queue_limit(&spec.down), spec.seed, now),
                counters: down.clone(),
            },
            Direction {
                name: "up",
                from: edge_device,
                to: origin_device,
                pipeline: Pipeline::new(
                    &spec.up,
                    spec.queue_limit(&spec.up),
                    spec.seed ^ 0x9e37_79b9_7f4a_7c15,
                    now,
                ),
                counters: up.clone(),
            },
        ];
        let mut threads = Vec::new();
        for direction in directions {
            match forwarder::spawn(direction, control.clone()) {
                Ok(pair) => threads.extend(pair),
                Err(source) => {
                    control.stop.store(true, Ordering::Relaxed);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(LinkError::Thread { source });
                }
            }
        }

        let inner = Arc::new(Inner {
            spec,
            namespace_names: names,
            ips,
            control,
            down,
            up,
            running: Mutex::new(Some(Running {
                threads,
                namespaces: [origin_ns, edge_ns],
            })),
        });
        let (wake_watchdog, woken) = mpsc::channel::<()>();
        let watched = inner.clone();
        let watchdog = std::thread::Builder::new()
            .name("lsim-watchdog".to_owned())
            .spawn(move || {
                if woken.recv_timeout(max_lifetime) == Err(RecvTimeoutError::Timeout) {
                    info!(lifetime = ?max_lifetime, "link lifetime over");
                    watched.shutdown();
                }
            });
        let watchdog = match watchdog {
            Ok(watchdog) => watchdog,
            Err(source) => {
                inner.shutdown();
                return Err(LinkError::Thread { source });
            }
        };
        info!(
            origin = %inner.namespace_names[0],
            edge = %inner.namespace_names[1],
            spec = ?inner.spec,
            "link started"
        );
        Ok(Link {
            inner,
            wake_watchdog: Some(wake_watchdog),
            watchdog: Some(watchdog),
        })
    }

    /// The spec the link was started with.
    pub fn spec(&self) -> &LinkSpec {
        &self.inner.spec
    }

    /// The name of the namespace on `side`.
    pub fn ns(&self, side: Side) -> &str {
        &self.inner.namespace_names[side.index()]
    }

    /// The origin's namespace, e.g. `shl-4242-0-o`.
    pub fn origin_ns(&self) -> &str {
        self.ns(Side::Origin)
    }

    /// The edge's namespace, e.g. `shl-4242-0-e`.
    pub fn edge_ns(&self) -> &str {
        self.ns(Side::Edge)
    }

    /// The address of the TUN device on `side`.
    pub fn ip(&self, side: Side) -> Ipv4Addr {
        self.inner.ips[side.index()]
    }

    /// The origin's address, `10.99.<n>.1`.
    pub fn origin_ip(&self) -> Ipv4Addr {
        self.ip(Side::Origin)
    }

    /// The edge's address, `10.99.<n>.2`.
    pub fn edge_ip(&self) -> Ipv4Addr {
        self.ip(Side::Edge)
    }

    /// What the link has carried and dropped so far.
    pub fn stats(&self) -> Stats {
        let control = &self.inner.control;
        Stats {
            elapsed_s: control.started.elapsed().as_secs_f64(),
            cut: control.is_cut(Instant::now()),
            udp_blocked: control.udp_blocked.load(Ordering::Relaxed),
            down: self.inner.down.snapshot(),
            up: self.inner.up.snapshot(),
        }
    }

    /// Blocks or unblocks all UDP, in both directions.
    pub fn set_udp_blocked(&self, blocked: bool) {
        debug!(blocked, "udp");
        self.inner
            .control
            .udp_blocked
            .store(blocked, Ordering::Relaxed);
    }

    /// Cuts or restores the link by hand, on top of any outage schedule; packets in flight
    /// when it is cut are lost.
    pub fn set_cut(&self, cut: bool) {
        debug!(cut, "link cut");
        self.inner.control.cut.store(cut, Ordering::Relaxed);
    }

    /// False once the lifetime has run out (or the link was stopped).
    pub fn is_running(&self) -> bool {
        self.inner.is_running()
    }

    /// A command that runs `program` inside the namespace on `side`
    /// (`ip netns exec NS program`); add arguments as usual.
    pub fn command_in(&self, side: Side, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", self.ns(side)]).arg(program);
        command
    }

    /// Runs `f` on a thread inside the namespace on `side` and returns what it returns.
    ///
    /// Sockets keep the namespace they were made in: bind or connect them here and use them
    /// from any thread or runtime afterwards (e.g. `tokio::net::TcpListener::from_std`).
    pub fn run_in<T: Send>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, LinkError> {
        netns::run_in(self.ns(side), f)
    }

    /// Stops the forwarder and deletes the namespaces, as dropping the link does.
    pub fn stop(self) {}
}

impl Drop for Link {
    fn drop(&mut self) {
        drop(self.wake_watchdog.take());
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        self.inner.shutdown();
    }
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Origin => 0,
            Side::Edge => 1,
        }
    }
}

/// Creates the TUN device in `namespace` as `local` with the point-to-point `peer`; IPv6 is
/// switched off there first, so only the traffic of the programs under test crosses the link.
fn make_device(
    namespace: &str,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    mtu: u16,
) -> Result<SyncDevice, LinkError> {
    netns::run_in(namespace, || {
        for setting in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{setting}/disable_ipv6");
            match std::fs::write(&path, "1") {
                Ok(()) => {}
                // A kernel without IPv6 has nothing to switch off.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(LinkError::Configure { path, source }),
            }
        }
        let device = DeviceBuilder::new()
            .name(DEVICE_NAME)
            .mtu(mtu)
            .ipv4(local, 32, Some(peer))
            .tx_queue_len(TX_QUEUE_LEN)
            .build_sync()
            .map_err(|source| LinkError::Tun {
                namespace: namespace.to_owned(),
                source,
            })?;
        device
            .set_nonblocking(true)
            .map_err(|source| LinkError::Tun {
                namespace: namespace.to_owned(),
                source,
            })?;
        Ok(device)
    })?
    .and_then(|device| {
        netns::ip(&["-n", namespace, "link", "set", "lo", "up"])?;
        Ok(device)
    })
}
