//! `origin serve --admin ADDR`: the bureau's dashboard of its edges.
//!
//! Server-rendered (maud), no external assets, Chinese and English. An
//! administrator logs in with an admin token (`admins.toml`); the session is
//! a random cookie (HttpOnly, SameSite=Strict, expiring) in a bounded
//! table, and every form that changes something carries the session's CSRF
//! token. `/metrics` needs no login (bind the address privately).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Fleet;
use super::view::{self, CatalogCache, EdgeQuery, Snapshot, Sort};
use crate::serve::Stats;
use crate::tokens::Tokens;

pub mod i18n;
mod pages;

use i18n::Lang;

/// The session cookie.
pub const SESSION_COOKIE: &str = "shanlu_session";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first.
pub const MAX_SESSIONS: usize = 256;

/// `admin.log` as last counted: its mtime and the actions by kind.
type ActionCounts = (Option<SystemTime>, Vec<(String, u64)>);

struct Session {
    admin: String,
    csrf: String,
    expires: Instant,
}

/// What the dashboard's handlers share.
pub struct Dashboard {
    fleet: Fleet,
    catalog: CatalogCache,
    admins: Tokens,
    stats: Option<Arc<Stats>>,
    sessions: Mutex<HashMap<String, Session>>,
    actions: Mutex<ActionCounts>,
    /// Administrators revoked in `admins.toml`, re-read when it changes:
    /// their sessions end at once.
    revoked: Mutex<(Option<SystemTime>, Vec<String>)>,
    /// What the pages show, until the fleet or the catalog changes.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
}

impl Dashboard {
    /// The dashboard of `fleet`, reading the catalog from `store` and
    /// counting what the origin served in `stats`.
    pub fn new(
        fleet: Fleet,
        store: Arc<catalog::Store>,
        stats: Option<Arc<Stats>>,
    ) -> Arc<Dashboard> {
        let admins = Tokens::admins(fleet.dir());
        Arc::new(Dashboard {
            fleet,
            catalog: CatalogCache::new(store),
            admins,
            stats,
            sessions: Mutex::new(HashMap::new()),
            actions: Mutex::new((None, Vec::new())),
            revoked: Mutex::new((None, Vec::new())),
            snapshot: Mutex::new(None),
        })
    }

    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let session = sessions.get(&id)?;
        if session.expires <= Instant::now() || self.is_revoked(&session.admin) {
            sessions.remove(&id);
            return None;
        }
        Some((session.admin.clone(), session.csrf.clone()))
    }

    /// The current snapshot, made again if the fleet or the catalog
    /// changed. Blocking; one request makes it while the others wait.
    fn snapshot(&self) -> Arc<Snapshot> {
        let catalog = self.catalog.get();
        let generation = self.fleet.read(|m| m.generation);
        let mut held = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = &*held
            && snapshot.is_current(generation, &catalog)
        {
            return snapshot.clone();
        }
        let snapshot = Arc::new(Snapshot::take(&self.fleet, catalog, super::model::now()));
        *held = Some(snapshot.clone());
        snapshot
    }

    /// Whether `admin` was revoked since logging in.
    fn is_revoked(&self, admin: &str) -> bool {
        let dir = self.fleet.dir();
        let path = crate::tokens::Book::Admins.path(dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
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
                    self.admins.log_broken(&err);
                    return true;
                }
            }
        }
        revoked.1.iter().any(|name| name == admin)
    }

    fn open_session(&self, admin: String) -> Result<String, getrandom::Error> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Administrators' actions by kind, from `admin.log` (re-read when it changes).
    fn actions(&self) -> Vec<(String, u64)> {
        let dir = self.fleet.dir();
        let path = crate::admin::log::path(dir);
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut held = self.actions.lock().unwrap_or_else(|p| p.into_inner());
        if modified.is_some() && held.0 != modified {
            let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
            match crate::admin::log::recent(dir, 1_000_000) {
                Ok(actions) => {
                    for action in actions {
                        *counts.entry(action.action).or_default() += 1;
                    }
                }
                Err(err) => {
                    warn!(cause = %catalog::format::error_chain(&err), "cannot read admin.log for /metrics")
                }
            }
            *held = (modified, counts.into_iter().collect());
        }
        held.1.clone()
    }
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// The routes of the dashboard.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(edges_page))
        .route("/courses", get(courses_page))
        .route("/lessons", get(lessons_page))
        .route("/edges.csv", get(edges_csv))
        .route("/edges.json", get(edges_json))
        .route("/courses.json", get(courses_json))
        .route("/lessons.json", get(lessons_json))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/metrics", get(metrics))
        .with_state(dashboard)
}

/// Serves the dashboard on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dashboard: Arc<Dashboard>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(dashboard))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The query string every page takes.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    pub lang: Option<String>,
    pub county: Option<String>,
    pub q: Option<String>,
    pub flagged: Option<String>,
    pub sort: Option<String>,
    pub desc: Option<String>,
    pub page: Option<usize>,
    pub grade: Option<String>,
}

impl Params {
    fn query(&self) -> EdgeQuery {
        EdgeQuery {
            county: self.county.clone().filter(|c| c != "*"),
            name: self.q.clone().filter(|q| !q.is_empty()),
            flagged: self
                .flagged
                .as_deref()
                .is_some_and(|f| !f.is_empty() && f != "0"),
            sort: Sort::from_code(self.sort.as_deref().unwrap_or("")),
            desc: self.desc.as_deref().is_some_and(|d| d == "1"),
        }
    }
}

/// A page's response, setting the language cookie when `?lang=` chose one.
fn page(lang: Lang, params: &Params, body: maud::Markup) -> Response {
    let mut response = axum::response::Html(body.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    if params.lang.is_some()
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{}={}; Path=/; Max-Age=31536000; SameSite=Strict",
            i18n::COOKIE,
            lang.code()
        ))
    {
        headers.append(header::SET_COOKIE, value);
    }
    response
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be made",
        )
            .into_response()
    })
}

macro_rules! logged_in {
    ($dash:expr, $headers:expr, $html:expr) => {
        match $dash.session(&$headers) {
            Some(session) => session,
            None if $html => return Redirect::to("/login").into_response(),
            None => {
                return (
                    StatusCode::UNAUTHORIZED,
                    "log in first: POST /login with an admin token",
                )
                    .into_response()
            }
        }
    };
}

async fn edges_page(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let (admin, csrf) = logged_in!(dash, headers, true);
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    let query = params.query();
    let page_no = params.page.unwrap_or(1).max(1);
    let made = blocking(move || {
        let snap = dash.snapshot();
        let rows = view::select(&snap.rows, &query);
        let frame = pages::Frame {
            lang,
            admin: &admin,
            csrf: &csrf,
        };
        pages::edges(
            &frame,
            &snap.catalog,
            &snap.summary,
            &snap.counties,
            &query,
            &rows,
            page_no,
            snap.now,
        )
    })
    .await;
    match made {
        Ok(body) => page(lang, &params, body),
        Err(response) => response,
    }
}

async fn courses_page(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let (admin, csrf) = logged_in!(dash, headers, true);
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    let made = blocking(move || {
        let snap = dash.snapshot();
        let frame = pages::Frame {
            lang,
            admin: &admin,
            csrf: &csrf,
        };
        pages::courses(&frame, &snap.catalog, &snap.adoption)
    })
    .await;
    match made {
        Ok(body) => page(lang, &params, body),
        Err(response) => response,
    }
}

async fn lessons_page(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let (admin, csrf) = logged_in!(dash, headers, true);
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    let county = params.county.clone().filter(|c| c != "*");
    let grade = params.grade.clone().filter(|g| g != "*");
    let made = blocking(move || {
        let snap = dash.snapshot();
        let rows = view::pick_lessons(&snap.lessons, county.as_deref(), grade.as_deref());
        let frame = pages::Frame {
            lang,
            admin: &admin,
            csrf: &csrf,
        };
        pages::lessons(
            &frame,
            &snap.catalog,
            &rows,
            &snap.counties,
            &snap.grades,
            county.as_deref(),
            grade.as_deref(),
        )
    })
    .await;
    match made {
        Ok(body) => page(lang, &params, body),
        Err(response) => response,
    }
}

fn attachment(content_type: &'static str, name: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn json_body(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
}

async fn edges_csv(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    logged_in!(dash, headers, false);
    let query = params.query();
    match blocking(move || {
        let snap = dash.snapshot();
        view::csv(view::select(&snap.rows, &query))
    })
    .await
    {
        Ok(body) => attachment(
            "text/csv; charset=utf-8",
            "attachment; filename=\"edges.csv\"",
            body,
        ),
        Err(response) => response,
    }
}

#[derive(serde::Serialize)]
struct EdgesJson<'a> {
    catalog_sequence: Option<u64>,
    summary: &'a view::Summary,
    edges: Vec<&'a view::EdgeRow>,
}

async fn edges_json(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    logged_in!(dash, headers, false);
    let query = params.query();
    match blocking(move || {
        let snap = dash.snapshot();
        json_body(&EdgesJson {
            catalog_sequence: snap.catalog.sequence,
            summary: &snap.summary,
            edges: view::select(&snap.rows, &query),
        })
    })
    .await
    {
        Ok(body) => attachment("application/json", "inline", body),
        Err(response) => response,
    }
}

async fn courses_json(State(dash): State<Arc<Dashboard>>, headers: HeaderMap) -> Response {
    logged_in!(dash, headers, false);
    match blocking(move || {
        let snap = dash.snapshot();
        json_body(&serde_json::json!({
            "catalog_sequence": snap.catalog.sequence,
            "courses": snap.adoption,
        }))
    })
    .await
    {
        Ok(body) => attachment("application/json", "inline", body),
        Err(response) => response,
    }
}

async fn lessons_json(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    logged_in!(dash, headers, false);
    match blocking(move || {
        let snap = dash.snapshot();
        let rows = view::pick_lessons(
            &snap.lessons,
            params.county.as_deref().filter(|c| *c != "*"),
            params.grade.as_deref().filter(|g| *g != "*"),
        );
        json_body(&serde_json::json!({ "window_days": super::model::WINDOW_DAYS, "lessons": rows }))
    })
    .await
    {
        Ok(body) => attachment("application/json", "inline", body),
        Err(response) => response,
    }
}

async fn metrics(State(dash): State<Arc<Dashboard>>) -> Response {
    match blocking(move || {
        let snap = dash.snapshot();
        let actions = dash.actions();
        let duplicates = dash.fleet.read(|m| m.duplicates);
        super::metrics::render(
            &snap.summary,
            &snap.catalog,
            &super::metrics::OriginCounts {
                stats: dash.stats.as_deref(),
                actions: &actions,
                duplicates,
            },
        )
    })
    .await
    {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn login_page(Query(params): Query<Params>, headers: HeaderMap) -> Response {
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    page(lang, &params, pages::login(lang, false))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// A form posted from another site is refused (the browser says so in
/// `Sec-Fetch-Site` or `Origin`).
fn cross_site(headers: &HeaderMap) -> bool {
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

async fn login(
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
    let Ok(id) = dash.open_session(admin) else {
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
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(dash): State<Arc<Dashboard>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some((admin, csrf)) = dash.session(&headers) else {
        return Redirect::to("/login").into_response();
    };
    if form.csrf != csrf || cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token does not match the session",
        )
            .into_response();
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        dash.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
    info!(%admin, "administrator logged out of the dashboard");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("shanlu_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}
