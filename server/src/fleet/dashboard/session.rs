//! The dashboard's sessions: login with an admin token, logout, and the
//! bounded table of random session cookies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tracing::{info, warn};

use super::i18n::Lang;
use super::{Dashboard, Params, blocking, cookie, page, pages};
use crate::tokens::Tokens;

/// The session cookie.
pub const SESSION_COOKIE: &str = "shanlu_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first.
pub const MAX_SESSIONS: usize = 256;

struct Session {
    admin: String,
    csrf: String,
    expires: Instant,
}

/// Open sessions, at most [`MAX_SESSIONS`].
pub struct Sessions {
    dir: PathBuf,
    table: Mutex<HashMap<String, Session>>,
    /// Administrators revoked in `admins.toml`, re-read when it changes:
    /// their sessions end at once.
    revoked: Mutex<(Option<crate::tokens::FileStamp>, Vec<String>)>,
}

impl Sessions {
    pub fn new(dir: &Path) -> Sessions {
        Sessions {
            dir: dir.to_owned(),
            table: Mutex::new(HashMap::new()),
            revoked: Mutex::new((None, Vec::new())),
        }
    }

    /// The administrator and CSRF token of the request's session, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get(&id)?;
        if session.expires <= Instant::now() || self.is_revoked(&session.admin) {
            sessions.remove(&id);
            return None;
        }
        Some((session.admin.clone(), session.csrf.clone()))
    }

    /// Whether `admin` was revoked since logging in.
    fn is_revoked(&self, admin: &str) -> bool {
        let dir = &self.dir;
        let path = crate::tokens::Book::Admins.path(dir);
        // Every change replaces the file (a new inode): a change within one
        // tick of a coarse clock is still seen.
        let modified = std::fs::metadata(&path)
            .and_then(|m| Ok((m.modified()?, std::os::unix::fs::MetadataExt::ino(&m))))
            .ok();
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if revoked.0 != modified {
            match crate::tokens::list(dir, crate::tokens::Book::Admins) {
                Ok(list) => {
                    revoked.1 = list
                        .into_iter()
                        .filter(|record| record.revoked_at.is_some())
                        .map(|record| record.name)
                        .collect();
                    revoked.0 = modified;
                }
                // Unreadable: every session ends (fail closed).
                Err(err) => {
                    Tokens::admins(dir).log_broken(&err);
                    return true;
                }
            }
        }
        revoked.1.iter().any(|name| name == admin)
    }

    /// A new session for `admin`; its cookie value.
    pub fn open(&self, admin: String) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        while sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                admin,
                csrf,
                expires: now + SESSION_TTL,
            },
        );
        Ok(id)
    }

    fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
    }

    /// Sessions open (for `/metrics`).
    pub fn count(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

pub(super) async fn login_page(Query(params): Query<Params>, headers: HeaderMap) -> Response {
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    page(lang, &params, pages::login(lang, false))
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// A form posted from another site is refused (the browser says so in
/// `Sec-Fetch-Site` or `Origin`).
pub(super) fn cross_site(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|site| site != "same-origin" && site != "none") {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            origin != "null" && origin_host != host
        }
        (Some(_), None) => true,
        _ => false,
    }
}

pub(super) async fn login(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let lang = Lang::choose(None, &headers);
    if cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form came from another site",
        )
            .into_response();
    }
    let work = dash.clone();
    let checked = blocking(move || work.admins.check(&form.token)).await;
    let admin = match checked {
        Ok(Ok(Some(admin))) => admin,
        Ok(Ok(None)) => {
            warn!("dashboard login refused: the token is not an administrator's (or was revoked)");
            return (
                StatusCode::UNAUTHORIZED,
                axum::response::Html(pages::login(lang, true).into_string()),
            )
                .into_response();
        }
        Ok(Err(err)) => {
            dash.admins.log_broken(&err);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the admin tokens cannot be read: {err}"),
            )
                .into_response();
        }
        Err(response) => return response,
    };
    info!(%admin, "administrator logged in to the dashboard");
    let Ok(id) = dash.sessions.open(admin) else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness for a session",
        )
            .into_response();
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

pub(super) async fn logout(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some((admin, csrf)) = dash.sessions.get(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if form.csrf != csrf || cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token does not match the session",
        )
            .into_response();
    }
    dash.sessions.end(&headers);
    info!(%admin, "administrator logged out of the dashboard");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("shanlu_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{self, Book};

    fn with_cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("a=b; {SESSION_COOKIE}={id}")).expect("ascii");
        headers.insert(header::COOKIE, value);
        headers
    }

    #[test]
    fn issue_15_sessions_are_bounded_random_and_end_when_the_admin_is_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        tokens::add(dir.path(), Book::Admins, "li", None).expect("add");
        tokens::add(dir.path(), Book::Admins, "wang", None).expect("add");
        let sessions = Sessions::new(dir.path());
        let first = sessions.open("li".into()).expect("random");
        assert_eq!(first.len(), 64);
        let (admin, csrf) = sessions.get(&with_cookie(&first)).expect("open");
        assert_eq!(admin, "li");
        assert_ne!(csrf, first);
        assert_eq!(sessions.get(&with_cookie("forged")), None);
        let ids: Vec<String> = (0..MAX_SESSIONS + 10)
            .map(|_| sessions.open("wang".into()).expect("random"))
            .collect();
        assert_eq!(sessions.count(), MAX_SESSIONS);
        assert_eq!(
            sessions.get(&with_cookie(&first)),
            None,
            "the oldest went first"
        );
        let last = ids.last().expect("some");
        assert!(sessions.get(&with_cookie(last)).is_some());
        assert!(tokens::revoke(dir.path(), Book::Admins, "wang").expect("revoke"));
        assert_eq!(sessions.get(&with_cookie(last)), None, "revoked");
        sessions.end(&with_cookie(&ids[20]));
        assert!(sessions.count() < MAX_SESSIONS);
    }

    #[test]
    fn issue_15_forms_from_other_sites_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://10.0.0.5:8090"),
            ("host", "10.0.0.5:8090")
        ])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "10.0.0.5:8090")
        ])));
    }
}
