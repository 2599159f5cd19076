//! Teachers' logins: a name and the school's teacher password give a
//! session cookie and a CSRF token for the session's forms and uploads.
//!
//! Bounds: at most [`MAX_SESSIONS`] sessions (the least recently used goes
//! first), each idle at most [`IDLE`]; one password check at a time (Argon2
//! is meant to be slow); after [`MAX_FAILURES`] wrong passwords from one
//! address, that address waits [`LOCKOUT`]; at most [`MAX_ADDRESSES`]
//! addresses remembered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_SESSIONS: usize = 256;
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
pub const MAX_FAILURES: u32 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(60);
pub const MAX_ADDRESSES: usize = 1024;
/// Longest teacher name, in characters.
pub const MAX_NAME: usize = 64;

/// The cookie that carries a session.
pub const COOKIE: &str = "shanlu_teacher";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub teacher: String,
    pub csrf: String,
}

struct Held {
    session: Session,
    used: Instant,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Wrong password (or no password set).
    Wrong,
    /// Too many wrong passwords from this address lately.
    Locked,
    /// The name is empty, too long or has control characters.
    BadName,
}

pub struct Sessions {
    held: Mutex<HashMap<String, Held>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    checking: tokio::sync::Semaphore,
}

fn token() -> String {
    let mut raw = [0u8; 32];
    // The OS's random source failing leaves no safe way on.
    getrandom::fill(&mut raw).expect("the operating system's random source");
    hex::encode(raw)
}

/// A teacher's name as given at login, trimmed; `None` if unusable.
pub fn clean_name(name: &str) -> Option<String> {
    let name = name.trim();
    let chars = name.chars().count();
    (chars > 0 && chars <= MAX_NAME && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

impl Default for Sessions {
    fn default() -> Sessions {
        Sessions::new()
    }
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions {
            held: Mutex::default(),
            failures: Mutex::default(),
            checking: tokio::sync::Semaphore::new(1),
        }
    }

    /// Checks `password` against `stored` (a PHC string, `None` when no
    /// password is set) for `name` from `from`; a new session id and its
    /// session.
    pub async fn login(
        &self,
        from: IpAddr,
        name: &str,
        password: &str,
        stored: Option<String>,
    ) -> Result<(String, Session), Refusal> {
        let teacher = clean_name(name).ok_or(Refusal::BadName)?;
        if self.locked(from) {
            return Err(Refusal::Locked);
        }
        let Ok(_permit) = self.checking.acquire().await else {
            return Err(Refusal::Wrong);
        };
        let password = password.to_owned();
        let good = match stored {
            Some(stored) => {
                tokio::task::spawn_blocking(move || super::password::matches(&stored, &password))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        if !good {
            self.failed(from);
            return Err(Refusal::Wrong);
        }
        crate::lock(&self.failures).remove(&from);
        let session = Session {
            teacher,
            csrf: token(),
        };
        let id = token();
        let mut held = crate::lock(&self.held);
        held.retain(|_, h| h.used.elapsed() < IDLE);
        if held.len() >= MAX_SESSIONS
            && let Some(oldest) = held
                .iter()
                .min_by_key(|(_, h)| h.used)
                .map(|(k, _)| k.clone())
        {
            held.remove(&oldest);
        }
        held.insert(
            id.clone(),
            Held {
                session: session.clone(),
                used: Instant::now(),
            },
        );
        Ok((id, session))
    }

    fn locked(&self, from: IpAddr) -> bool {
        let failures = crate::lock(&self.failures);
        failures
            .get(&from)
            .is_some_and(|(count, at)| *count >= MAX_FAILURES && at.elapsed() < LOCKOUT)
    }

    fn failed(&self, from: IpAddr) {
        let mut failures = crate::lock(&self.failures);
        if failures.len() >= MAX_ADDRESSES && !failures.contains_key(&from) {
            failures.retain(|_, (_, at)| at.elapsed() < LOCKOUT);
            if failures.len() >= MAX_ADDRESSES {
                return;
            }
        }
        let entry = failures.entry(from).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOCKOUT {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    /// The session of cookie value `id`, if it is live.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut held = crate::lock(&self.held);
        let found = held.get_mut(id)?;
        if found.used.elapsed() >= IDLE {
            held.remove(id);
            return None;
        }
        found.used = Instant::now();
        Some(found.session.clone())
    }

    pub fn logout(&self, id: &str) {
        crate::lock(&self.held).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logins_are_checked_locked_out_and_bounded() {
        let sessions = Sessions::new();
        let stored = super::super::password::hash("correct horse").expect("hash");
        let from: IpAddr = "10.0.0.5".parse().expect("ip");
        let (id, session) = sessions
            .login(from, " 王老师 ", "correct horse", Some(stored.clone()))
            .await
            .expect("login");
        assert_eq!(session.teacher, "王老师");
        assert_eq!(sessions.get(&id), Some(session));
        assert_eq!(sessions.get("nope"), None);
        sessions.logout(&id);
        assert_eq!(sessions.get(&id), None);
        assert_eq!(
            sessions
                .login(from, "", "correct horse", Some(stored.clone()))
                .await,
            Err(Refusal::BadName)
        );
        assert_eq!(
            sessions.login(from, "t", "correct horse", None).await,
            Err(Refusal::Wrong)
        );
        for _ in 1..MAX_FAILURES {
            assert_eq!(
                sessions
                    .login(from, "t", "wrong", Some(stored.clone()))
                    .await,
                Err(Refusal::Wrong)
            );
        }
        // Now even the right password waits; another address does not.
        assert_eq!(
            sessions
                .login(from, "t", "correct horse", Some(stored.clone()))
                .await,
            Err(Refusal::Locked)
        );
        let other: IpAddr = "10.0.0.6".parse().expect("ip");
        assert!(
            sessions
                .login(other, "t", "correct horse", Some(stored))
                .await
                .is_ok()
        );
    }
}
