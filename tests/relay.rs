//! A UDP relay on loopback between an edge and the origin.

/// A UDP relay on loopback between an edge and the origin: counts the bytes
/// that cross it, can throttle them, and can cut the link. Stops when dropped.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    shared: std::sync::Arc<RelayShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct RelayShared {
    to_origin: std::sync::atomic::AtomicU64,
    to_edge: std::sync::atomic::AtomicU64,
    cut: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
    /// Bytes per second towards the edge; 0 for no limit.
    rate: std::sync::atomic::AtomicU64,
}

impl Relay {
    pub fn start(origin: std::net::SocketAddr) -> Relay {
        use std::sync::atomic::Ordering;
        let front = std::net::UdpSocket::bind("127.0.0.1:0").expect("relay socket");
        let back = std::net::UdpSocket::bind("127.0.0.1:0").expect("relay socket");
        front
            .set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .expect("timeout");
        back.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .expect("timeout");
        let addr = front.local_addr().expect("addr");
        let shared = std::sync::Arc::new(RelayShared::default());
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let front = std::sync::Arc::new(front);
            let back = std::sync::Arc::new(back);
            let edge_addr = std::sync::Arc::new(std::sync::Mutex::new(None));
            let (f2, b2, s2, e2) = (
                front.clone(),
                back.clone(),
                state.clone(),
                edge_addr.clone(),
            );
            // Origin → edge, throttled.
            let downstream = std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut started = std::time::Instant::now();
                let mut sent = 0u64;
                let mut last_rate = 0;
                while !s2.stop.load(Ordering::Relaxed) {
                    let Ok(n) = b2.recv(&mut buf) else { continue };
                    if s2.cut.load(Ordering::Relaxed) {
                        continue;
                    }
                    let rate = s2.rate.load(Ordering::Relaxed);
                    if rate != last_rate {
                        // A new rate counts from now, not from the relay's start.
                        (started, sent, last_rate) = (std::time::Instant::now(), 0, rate);
                    }
                    if rate > 0 {
                        sent += n as u64;
                        let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                    s2.to_edge.fetch_add(n as u64, Ordering::Relaxed);
                    let target = *e2.lock().expect("lock");
                    if let Some(target) = target {
                        let _ = f2.send_to(&buf[..n], target);
                    }
                }
            });
            let mut buf = vec![0u8; 65_536];
            while !state.stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                if state.cut.load(Ordering::Relaxed) {
                    continue;
                }
                *edge_addr.lock().expect("lock") = Some(from);
                state.to_origin.fetch_add(n as u64, Ordering::Relaxed);
                let _ = back.send_to(&buf[..n], origin);
            }
            let _ = downstream.join();
        });
        Relay {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// Bytes relayed towards the edge so far.
    pub fn to_edge(&self) -> u64 {
        self.shared
            .to_edge
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes relayed towards the origin so far.
    pub fn to_origin(&self) -> u64 {
        self.shared
            .to_origin
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every packet while `cut` is true.
    pub fn set_cut(&self, cut: bool) {
        self.shared
            .cut
            .store(cut, std::sync::atomic::Ordering::Relaxed);
    }

    /// Limits the bytes per second towards the edge (0: no limit).
    pub fn set_rate(&self, bytes_per_second: u64) {
        self.shared
            .rate
            .store(bytes_per_second, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
