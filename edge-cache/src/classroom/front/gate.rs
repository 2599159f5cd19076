//! Who may hold a classroom connection (issue 11, defect 6).
//!
//! One machine opening a thousand connections and sending nothing, or half a
//! request head, must not lock the classroom out. The gate keeps:
//!
//! - a cap on connections open at once ([`Limits::connections`]), below the
//!   open-file limit so the store keeps descriptors to open lesson files;
//! - a share per client address ([`Limits::per_client`]), a quarter of the
//!   cap: a classroom of forty tablets behind one NAT address fits many times
//!   over, yet one host cannot take every place;
//! - the connections waiting for a request head, oldest wait first. When a
//!   client's share or the cap is full, the oldest connection still waiting
//!   for its head (a slow or idle one; of that client, or of anyone for the
//!   cap) is closed for the newcomer. Only when none is waiting — every place
//!   busy answering — is the newcomer refused.
//!
//! What was shed is counted in [`Shed`] and logged as one summary line a
//! second at most ([`report_task`]), not one line per connection.
//!
//! [`Limits::connections`]: super::Limits::connections
//! [`Limits::per_client`]: super::Limits::per_client

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tracing::{debug, warn};

use crate::lock;

/// The connection places and who holds them.
pub(crate) struct Gate {
    connections: usize,
    per_client: usize,
    state: Mutex<State>,
    pub(crate) shed: Shed,
}

#[derive(Default)]
struct State {
    open: usize,
    /// Orders the waits: a smaller number started waiting earlier.
    next_wait: u64,
    clients: HashMap<IpAddr, Client>,
    /// Connections waiting for a request head, oldest wait first.
    waiting: BTreeMap<u64, (IpAddr, CancellationToken)>,
}

#[derive(Default)]
struct Client {
    open: usize,
    waiting: BTreeSet<u64>,
}

impl State {
    /// Closes the connection waiting as `wait`, freeing its place at once.
    fn evict(&mut self, wait: u64) {
        let Some((ip, token)) = self.waiting.remove(&wait) else {
            return;
        };
        self.release(ip, Some(wait));
        // Under the lock: a ticket sees it cancelled before it can leave `waiting`.
        token.cancel();
    }

    fn release(&mut self, ip: IpAddr, wait: Option<u64>) {
        self.open = self.open.saturating_sub(1);
        if let Some(client) = self.clients.get_mut(&ip) {
            if let Some(wait) = wait {
                client.waiting.remove(&wait);
            }
            client.open = client.open.saturating_sub(1);
            if client.open == 0 {
                self.clients.remove(&ip);
            }
        }
    }
}

impl Gate {
    pub(crate) fn new(connections: usize, per_client: usize) -> Gate {
        Gate {
            connections: connections.max(1),
            per_client: per_client.clamp(1, connections.max(1)),
            state: Mutex::new(State::default()),
            shed: Shed::default(),
        }
    }

    /// A place for a new connection from `ip`, if one can be had (see the module docs).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let ip = ip.to_canonical();
        let mut state = lock(&self.state);
        if state
            .clients
            .get(&ip)
            .is_some_and(|c| c.open >= self.per_client)
        {
            let oldest = state
                .clients
                .get(&ip)
                .and_then(|c| c.waiting.first().copied());
            let Some(wait) = oldest else {
                self.shed.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            state.evict(wait);
            self.shed.evicted.fetch_add(1, Ordering::Relaxed);
        }
        if state.open >= self.connections {
            let Some(wait) = state.waiting.keys().next().copied() else {
                self.shed.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            state.evict(wait);
            self.shed.evicted.fetch_add(1, Ordering::Relaxed);
        }
        state.open += 1;
        state.clients.entry(ip).or_default().open += 1;
        Some(Ticket {
            gate: self.clone(),
            ip,
            evicted: CancellationToken::new(),
            wait: None,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.state).open
    }
}

/// One connection's place; given back when dropped.
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
    /// Cancelled (under the gate's lock) when the place was given to another.
    evicted: CancellationToken,
    /// Set while waiting for a request head.
    wait: Option<u64>,
}

impl Ticket {
    /// The connection now waits for a request head: it may be evicted.
    pub(crate) fn waiting(&mut self) {
        if self.wait.is_some() {
            return;
        }
        let mut state = lock(&self.gate.state);
        if self.evicted.is_cancelled() {
            return;
        }
        let wait = state.next_wait;
        state.next_wait += 1;
        state.waiting.insert(wait, (self.ip, self.evicted.clone()));
        if let Some(client) = state.clients.get_mut(&self.ip) {
            client.waiting.insert(wait);
        }
        self.wait = Some(wait);
    }

    /// The connection has a whole request head and is being answered: it
    /// keeps its place. False if the place was already given to another.
    pub(crate) fn busy(&mut self) -> bool {
        let mut state = lock(&self.gate.state);
        if self.evicted.is_cancelled() {
            return false;
        }
        if let Some(wait) = self.wait.take() {
            state.waiting.remove(&wait);
            if let Some(client) = state.clients.get_mut(&self.ip) {
                client.waiting.remove(&wait);
            }
        }
        true
    }

    /// Resolves when the place was given to another connection.
    pub(crate) fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evicted.cancelled()
    }

    /// The client's address.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = lock(&self.gate.state);
        if self.evicted.is_cancelled() {
            // Released when it was evicted.
            return;
        }
        let wait = self.wait.take();
        if let Some(wait) = wait {
            state.waiting.remove(&wait);
        }
        state.release(self.ip, wait);
    }
}

/// Connections shed since the last summary line.
#[derive(Default)]
pub(crate) struct Shed {
    /// Refused at once: the share or the cap full and nobody waiting to evict.
    pub(crate) refused: AtomicU64,
    /// Closed while waiting for a head, for a newcomer.
    pub(crate) evicted: AtomicU64,
    /// Closed with part of a head, not completed in time.
    pub(crate) head_timeouts: AtomicU64,
    /// Closed having sent nothing in time (browsers' spare connections do this too).
    pub(crate) silent: AtomicU64,
    /// Answered 414 or 431 and closed.
    pub(crate) oversized: AtomicU64,
    /// `accept` failed (out of file descriptors, usually).
    pub(crate) accept_errors: AtomicU64,
    last_accept_error: Mutex<Option<String>>,
}

impl Shed {
    pub(crate) fn accept_failed(&self, err: &std::io::Error) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_accept_error) = Some(err.to_string());
    }
}

/// Logs what the gate shed, one line a second at most, until `shutdown`.
pub(crate) async fn report_task(gate: Arc<Gate>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        report(&gate);
    }
}

fn report(gate: &Gate) {
    let shed = &gate.shed;
    let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
    let (refused, evicted, head_timeouts, silent, oversized, accept_errors) = (
        take(&shed.refused),
        take(&shed.evicted),
        take(&shed.head_timeouts),
        take(&shed.silent),
        take(&shed.oversized),
        take(&shed.accept_errors),
    );
    let last_accept_error = lock(&shed.last_accept_error).take();
    let open = gate.open();
    if refused + evicted + head_timeouts + oversized + accept_errors > 0 {
        warn!(
            refused,
            evicted,
            head_timeouts,
            silent,
            oversized,
            accept_errors,
            last_accept_error = last_accept_error.as_deref().unwrap_or(""),
            open,
            cap = gate.connections,
            per_client = gate.per_client,
            "classroom connections shed in the last second (a client holding many slow or idle connections?)"
        );
    } else if silent > 0 {
        debug!(
            silent,
            open, "closed connections that sent no request in time"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn a_full_share_evicts_that_clients_oldest_waiting_connection() {
        let gate = Arc::new(Gate::new(100, 3));
        let mut first = gate.admit(ip("10.0.0.1")).expect("room");
        let mut second = gate.admit(ip("10.0.0.1")).expect("room");
        let mut third = gate.admit(ip("10.0.0.1")).expect("room");
        second.waiting();
        first.waiting();
        assert!(third.busy());
        // The share is full: the oldest wait (second) gives way.
        let fourth = gate.admit(ip("10.0.0.1")).expect("room by eviction");
        assert!(second.evicted.is_cancelled());
        assert!(!second.busy(), "an evicted connection cannot carry on");
        assert!(!first.evicted.is_cancelled());
        assert_eq!(gate.open(), 3);
        drop(second);
        assert_eq!(gate.open(), 3, "an evicted place is not given back twice");
        // Another client is not affected by this one's share.
        let other = gate.admit(ip("10.0.0.2")).expect("room");
        assert_eq!(gate.open(), 4);
        drop((first, third, fourth, other));
        assert_eq!(gate.open(), 0);
        assert!(lock(&gate.state).clients.is_empty());
        assert!(lock(&gate.state).waiting.is_empty());
    }

    #[test]
    fn busy_places_are_never_evicted_and_the_newcomer_is_refused() {
        let gate = Arc::new(Gate::new(100, 2));
        let mut a = gate.admit(ip("10.0.0.1")).expect("room");
        let mut b = gate.admit(ip("10.0.0.1")).expect("room");
        assert!(a.busy() && b.busy());
        assert!(gate.admit(ip("10.0.0.1")).is_none());
        assert_eq!(gate.shed.refused.load(Ordering::Relaxed), 1);
        // Waiting again (keep-alive between requests) makes a place evictable.
        b.waiting();
        assert!(gate.admit(ip("10.0.0.1")).is_some());
        assert!(b.evicted.is_cancelled());
        assert!(a.busy());
    }

    #[test]
    fn the_global_cap_evicts_the_oldest_wait_of_anyone() {
        let gate = Arc::new(Gate::new(3, 3));
        let mut slow = gate.admit(ip("192.0.2.7")).expect("room");
        slow.waiting();
        let mut reader = gate.admit(ip("10.0.0.1")).expect("room");
        assert!(reader.busy());
        let mut later = gate.admit(ip("10.0.0.2")).expect("room");
        later.waiting();
        let newcomer = gate.admit(ip("10.0.0.3")).expect("room by eviction");
        assert!(slow.evicted.is_cancelled(), "the oldest wait goes first");
        assert!(!later.evicted.is_cancelled());
        assert_eq!(gate.open(), 3);
        drop((slow, reader, later, newcomer));
        assert_eq!(gate.open(), 0);
    }

    #[test]
    fn ipv4_mapped_addresses_share_one_client() {
        let gate = Arc::new(Gate::new(10, 1));
        let mut first = gate.admit(ip("::ffff:10.0.0.9")).expect("room");
        assert!(first.busy());
        assert!(gate.admit(ip("10.0.0.9")).is_none());
    }

    #[test]
    fn a_second_of_floods_is_one_report_and_the_counters_start_again() {
        let gate = Arc::new(Gate::new(1, 1));
        let mut only = gate.admit(ip("10.0.0.1")).expect("room");
        assert!(only.busy());
        for _ in 0..500 {
            assert!(gate.admit(ip("10.0.0.1")).is_none());
        }
        assert_eq!(gate.shed.refused.load(Ordering::Relaxed), 500);
        report(&gate);
        assert_eq!(gate.shed.refused.load(Ordering::Relaxed), 0);
    }
}
