//! The link memory behind resuming (issue 12): the last model of each edge
//! address, kept for [`RESUME_FOR`] and for at most [`MEMORY_ADDRESSES`]
//! addresses, and the controller factory that starts a connection from it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};

use super::{LOCAL_RTT, Rural};

/// How long a remembered link model is used for a new connection.
pub const RESUME_FOR: Duration = Duration::from_secs(6 * 3600);
/// The largest window a resumed connection starts with.
pub const RESUME_MAX: u64 = 4 * 1024 * 1024;
/// Most edge addresses remembered; the oldest is forgotten first.
pub const MEMORY_ADDRESSES: usize = 4096;

/// What the origin remembers of one edge address's link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Remembered {
    /// Bottleneck rate, bytes per second.
    pub rate: f64,
    pub min_rtt: Duration,
    pub at: Instant,
}

/// The last link model of each edge address (bounded), shared by the
/// origin's connections; see the module documentation.
#[derive(Debug, Default)]
pub struct LinkMemory {
    models: Mutex<HashMap<IpAddr, Remembered>>,
}

impl LinkMemory {
    /// The model remembered for `addr`, if recent.
    pub fn recall(&self, addr: IpAddr, now: Instant) -> Option<Remembered> {
        let models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        models
            .get(&addr)
            .filter(|m| now.saturating_duration_since(m.at) < RESUME_FOR)
            .copied()
    }

    /// Keeps `model` for `addr`. A model of fewer than three full rounds
    /// (a short connection that never had more to send than its window, as
    /// a small update has) does not lower a recent one: it has not seen the
    /// link's rate, only its own.
    pub(super) fn remember(&self, addr: IpAddr, model: Remembered, rounds: usize) {
        let mut models = self
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rounds < 3
            && models.get(&addr).is_some_and(|old| {
                old.rate > model.rate && model.at.saturating_duration_since(old.at) < RESUME_FOR
            })
        {
            return;
        }
        if models.len() >= MEMORY_ADDRESSES && !models.contains_key(&addr) {
            let oldest = models.iter().min_by_key(|(_, m)| m.at).map(|(a, _)| *a);
            if let Some(oldest) = oldest {
                models.remove(&oldest);
            }
        }
        models.insert(addr, model);
    }
}

/// Builds [`Rural`] controllers for connections from one address that
/// start from the model remembered for it and keep it up to date.
#[derive(Debug, Clone)]
pub struct ResumingRural {
    pub memory: Arc<LinkMemory>,
    pub addr: IpAddr,
}

impl ControllerFactory for ResumingRural {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let mut rural = Rural::new(now, current_mtu);
        if let Some(model) = self.memory.recall(self.addr, now)
            && model.min_rtt >= LOCAL_RTT
        {
            let bdp = model.rate * model.min_rtt.as_secs_f64();
            rural.window = ((bdp / 2.0) as u64).clamp(rural.window, RESUME_MAX);
            // The model starts from half the remembered rate as well, so a
            // loss in the first small rounds backs off from there rather
            // than from the few bytes those rounds carried.
            rural.seed(model.rate / 2.0, model.min_rtt);
            tracing::debug!(addr = %self.addr, window = rural.window, "resuming from the remembered link");
        }
        rural.memory = Some((self.memory.clone(), self.addr));
        Box::new(rural)
    }
}
