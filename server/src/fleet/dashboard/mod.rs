//! `origin serve --admin ADDR`: the bureau's dashboard of its edges.
//!
//! Server-rendered (maud), no external assets, Chinese and English. An
//! administrator logs in with an admin token (`admins.toml`); the session is
//! a random cookie (HttpOnly, SameSite=Strict, expiring) in a bounded
//! table, and every form that changes something carries the session's CSRF
//! token. `/metrics` needs no login (bind the address privately).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Fleet;
use super::view::{self, CatalogCache, EdgeQuery, Snapshot, Sort};
use crate::serve::Stats;
use crate::tokens::Tokens;

pub mod i18n;
mod pages;
mod session;

pub use session::{MAX_SESSIONS, SESSION_COOKIE, SESSION_TTL};

use i18n::Lang;

/// `admin.log` as last counted: its mtime and the actions by kind.
type ActionCounts = (Option<SystemTime>, Vec<(String, u64)>);

/// What the dashboard's handlers share.
pub struct Dashboard {
    fleet: Fleet,
    catalog: CatalogCache,
    admins: Tokens,
    stats: Option<Arc<Stats>>,
    sessions: session::Sessions,
    actions: Mutex<ActionCounts>,
    /// What the pages show, until the fleet or the catalog changes.
    snapshot: Mutex<Option<Arc<Snapshot>>>,
    /// The origin, opened at the first review action that needs it.
    origin: Mutex<Option<Arc<crate::Origin>>>,
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
            sessions: session::Sessions::new(fleet.dir()),
            fleet,
            catalog: CatalogCache::new(store),
            admins,
            stats,
            actions: Mutex::new((None, Vec::new())),
            snapshot: Mutex::new(None),
            origin: Mutex::new(None),
        })
    }

    /// The origin (opened once; blocking), for the review queue's actions.
    fn origin(&self) -> Result<Arc<crate::Origin>, String> {
        let mut held = self.origin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(origin) = &*held {
            return Ok(origin.clone());
        }
        let origin = crate::Origin::open(self.fleet.dir())
            .map(Arc::new)
            .map_err(|err| format!("opening the origin: {}", catalog::format::error_chain(&err)))?;
        *held = Some(origin.clone());
        Ok(origin)
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
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/metrics", get(metrics))
        .route("/review", get(review::queue_page))
        .route("/review/{edge}/{id}", get(review::item_page))
        .route("/review/{edge}/{id}/files/{n}", get(review::file))
        .route("/review/{edge}/{id}/approve", post(review::approve))
        .route("/review/{edge}/{id}/decline", post(review::decline))
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
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; media-src 'self'; form-action 'self'; frame-ancestors 'none'"),
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
        match $dash.sessions.get(&$headers) {
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

mod review;

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
                sessions: dash.sessions.count(),
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
