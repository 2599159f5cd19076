//! Named network namespaces, managed with iproute2 (`ip netns add/del`) and entered per thread
//! with `setns(2)`.
//!
//! A thread that enters a namespace stays there until it ends, so work in a namespace runs on
//! a scoped thread of its own ([`run_in`]); sockets and TUN devices made there keep their
//! namespace and can be used from any thread afterwards.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use tracing::{debug, warn};

use crate::LinkError;

/// Where iproute2 keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Every namespace this crate makes is called `shl-<pid>-<n>-<side>`.
pub(crate) const PREFIX: &str = "shl-";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates the namespace `name` (`ip netns add`).
    pub fn create(name: String) -> Result<Self, LinkError> {
        ip(&["netns", "add", &name])?;
        debug!(namespace = %name, "created");
        Ok(Namespace { name })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        match ip(&["netns", "del", &self.name]) {
            Ok(()) => debug!(namespace = %self.name, "deleted"),
            Err(err) => warn!(namespace = %self.name, cause = %err, "could not delete"),
        }
    }
}

/// Runs `ip` with `args`; an error carries its stderr.
pub(crate) fn ip(args: &[&str]) -> Result<(), LinkError> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LinkError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LinkError::Command {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn path_of(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Moves the calling thread into the namespace `name`.
fn enter(name: &str) -> Result<(), LinkError> {
    let path = path_of(name);
    let error = |source: io::Error| LinkError::EnterNamespace {
        namespace: name.to_owned(),
        source,
    };
    let file = File::open(&path).map_err(error)?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|errno| error(errno.into()))
}

/// Runs `f` on a new thread inside the namespace `name` and returns its result.
///
/// A panic in `f` is carried on to the caller.
pub(crate) fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, LinkError> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("linksim-netns".to_owned())
            .spawn_scoped(scope, || {
                enter(name)?;
                Ok(f())
            })
            .map_err(|source| LinkError::Thread { source })?;
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Deletes namespaces `shl-<pid>-…` left behind by processes that no longer run.
pub(crate) fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match ip(&["netns", "del", &name]) {
            Ok(()) => warn!(namespace = %name, pid, "deleted a namespace left by a dead process"),
            Err(err) => {
                warn!(namespace = %name, cause = %err, "could not delete a stale namespace")
            }
        }
    }
}

/// Whether a namespace called `name` exists.
pub fn exists(name: &str) -> bool {
    path_of(name).exists()
}
