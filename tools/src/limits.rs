//! Process limits raised at start (issue 11).
//!
//! Linux starts a process with a soft limit of 1,024 open files (the hard
//! limit is often far higher). A classroom server at 1,024 descriptors runs
//! out under a thousand slow connections, so every `shanlu` raises its soft
//! limit to the hard one before anything else; the systemd units set the
//! hard limit with `LimitNOFILE`. The edge sizes its connection cap from the
//! limit it ends up with ([`edge_cache::classroom::front::Limits::for_open_files`]).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{debug, warn};

/// Where Linux's `fs.nr_open` (the most a hard limit can allow) is read.
const NR_OPEN: &str = "/proc/sys/fs/nr_open";
/// `fs.nr_open` when it cannot be read: the kernel's default.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// Raises the soft open-file limit to the hard one. Returns the soft limit
/// in force afterwards (`None`: unlimited). Never fails: a process that
/// cannot raise it runs on with what it has, and says so.
pub fn raise_open_files() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit still stops at fs.nr_open.
    let target = limit.maximum.unwrap_or_else(|| {
        std::fs::read_to_string(NR_OPEN)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(NR_OPEN_DEFAULT)
    });
    let current = limit.current?;
    if current >= target {
        return Some(current);
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            debug!(from = current, to = target, "raised the open-file limit");
            Some(target)
        }
        Err(err) => {
            warn!(
                limit = current,
                wanted = target,
                cause = %err,
                "cannot raise the open-file limit; fewer classroom connections will be served (set LimitNOFILE in the systemd unit)"
            );
            Some(current)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let raised = raise_open_files();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(raised, limit.current);
        if let Some(maximum) = limit.maximum {
            assert_eq!(limit.current, Some(maximum));
        }
    }
}
