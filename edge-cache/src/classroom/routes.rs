//! The classroom's one route table, read by both doors: the axum router is
//! built from [`ROUTES`] ([`table_router`]), and the sendfile front door
//! ([`crate::classroom::front`]) asks [`held_file`] whether a request path is a
//! file route it may answer itself. A unit test walks every route and checks
//! that the two agree on which route a path takes and what its pieces decode
//! to (issue 12).
//!
//! Paths are matched as sent (percent-encoded), one `{name}` per segment
//! (empty only between two slashes) and `{*name}` for a non-empty rest, as
//! axum's router does; the
//! pieces are then percent-decoded with the `percent-encoding` crate, as
//! axum's `Path` extractor does. [`url_path`] is the other direction, for
//! the links the classroom writes.

use axum::Router;
use axum::routing::MethodRouter;
use catalog::Hash;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::classroom::files::PlaceKey;

/// What a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A held file by its BLAKE3: `/files/{hash}`.
    FileByHash,
    /// A lesson's file by its place.
    LessonFile,
    /// A course-level file (cover, syllabus).
    CourseFile,
    ApiCourses,
    ApiCourse,
    ApiSearch,
    ApiStatus,
    Metrics,
    HomePage,
    CoursePage,
    LessonPage,
    SearchPage,
    StatusPage,
    /// `POST` only.
    SyncNow,
    Language,
    Style,
    Font,
    /// The teachers' page (issue 17).
    Teach,
    TeachLogin,
    TeachLogout,
    /// `POST`: a new resumable upload.
    TeachUploads,
    /// `HEAD|PATCH|DELETE` of one upload.
    TeachUpload,
    /// `POST`: a new lesson.
    TeachLessons,
    /// `POST`: rename or remove a lesson.
    TeachLesson,
}

impl Kind {
    /// Whether the front door may answer a plain `GET`/`HEAD` of this route
    /// with `sendfile` when the file is held.
    pub fn is_file(self) -> bool {
        matches!(self, Kind::FileByHash | Kind::LessonFile | Kind::CourseFile)
    }
}

/// One route: its axum pattern (also its `route` label in the metrics) and what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub pattern: &'static str,
    pub kind: Kind,
}

const fn route(pattern: &'static str, kind: Kind) -> Route {
    Route { pattern, kind }
}

/// Every route of the classroom.
pub const ROUTES: &[Route] = &[
    route("/files/{hash}", Kind::FileByHash),
    route("/courses/{course}/{lesson}/{*path}", Kind::LessonFile),
    route("/assets/{course}/{*path}", Kind::CourseFile),
    route("/api/v1/courses", Kind::ApiCourses),
    route("/api/v1/courses/{id}", Kind::ApiCourse),
    route("/api/v1/search", Kind::ApiSearch),
    route("/api/v1/status", Kind::ApiStatus),
    route("/metrics", Kind::Metrics),
    route("/", Kind::HomePage),
    route("/course/{course}", Kind::CoursePage),
    route("/course/{course}/{lesson}", Kind::LessonPage),
    route("/search", Kind::SearchPage),
    route("/status", Kind::StatusPage),
    route("/status/sync-now", Kind::SyncNow),
    route("/lang/{code}", Kind::Language),
    route("/static/style.css", Kind::Style),
    route("/static/fonts/{name}", Kind::Font),
    route("/teach", Kind::Teach),
    route("/teach/login", Kind::TeachLogin),
    route("/teach/logout", Kind::TeachLogout),
    route("/teach/uploads", Kind::TeachUploads),
    route("/teach/uploads/{id}", Kind::TeachUpload),
    route("/teach/lessons", Kind::TeachLessons),
    route("/teach/lessons/{id}", Kind::TeachLesson),
];

/// A router with every route of [`ROUTES`], each served by what `each` gives it.
pub fn table_router<S: Clone + Send + Sync + 'static>(
    each: impl Fn(&Route) -> MethodRouter<S>,
) -> Router<S> {
    ROUTES.iter().fold(Router::new(), |router, route| {
        router.route(route.pattern, each(route))
    })
}

/// The route `target` (a path, maybe with a query) takes, with its pieces
/// as sent (still percent-encoded), in the pattern's order.
pub fn classify(target: &str) -> Option<(&'static Route, Vec<&str>)> {
    let path = target.split(['?', '#']).next()?;
    ROUTES
        .iter()
        .find_map(|route| matches(route.pattern, path).map(|pieces| (route, pieces)))
}

/// The pieces of `path` if it matches `pattern`.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut rest = path.strip_prefix('/')?;
    let pattern = pattern.strip_prefix('/')?;
    if pattern.is_empty() {
        return rest.is_empty().then(Vec::new);
    }
    let mut pieces = Vec::new();
    let mut segments = pattern.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.starts_with("{*") {
            if rest.is_empty() {
                return None;
            }
            pieces.push(rest);
            return Some(pieces);
        }
        let (piece, after) = match rest.split_once('/') {
            Some((piece, after)) if segments.peek().is_some() => (piece, after),
            Some(_) => return None,
            None if segments.peek().is_none() => (rest, ""),
            None => return None,
        };
        if segment.starts_with('{') {
            // As axum's router (matchit) does: a piece may be empty between
            // two slashes, not at the end of the path.
            if piece.is_empty() && segments.peek().is_none() {
                return None;
            }
            pieces.push(piece);
        } else if piece != segment {
            return None;
        }
        rest = after;
    }
    Some(pieces)
}

/// Percent-decodes one piece of a path; `None` if it is not UTF-8.
pub fn decode(piece: &str) -> Option<String> {
    percent_decode_str(piece)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

/// What a file route names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    Blob(Hash),
    Place(PlaceKey),
}

/// The file a request target names, if it takes a file route: the route and
/// the blob or place. `None` for every other route, and for a file route
/// whose pieces do not decode (the router answers those).
pub fn held_file(target: &str) -> Option<(&'static Route, Named)> {
    let (route, pieces) = classify(target)?;
    let named = match (route.kind, pieces.as_slice()) {
        (Kind::FileByHash, [hash]) => Named::Blob(decode(hash)?.parse().ok()?),
        (Kind::LessonFile, [course, lesson, path]) => Named::Place(PlaceKey {
            course: decode(course)?,
            lesson: Some(decode(lesson)?),
            path: decode(path)?,
        }),
        (Kind::CourseFile, [course, path]) => Named::Place(PlaceKey {
            course: decode(course)?,
            lesson: None,
            path: decode(path)?,
        }),
        _ => return None,
    };
    Some((route, named))
}

/// What stays as it is in a path: letters, digits, `-._~` and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// What stays as it is in a query value: as [`PATH`], but `/` is encoded too.
const QUERY_VALUE: &AsciiSet = &PATH.add(b'/');

/// `/` and unreserved characters stay; everything else is percent-encoded.
pub fn url_path(text: &str) -> String {
    utf8_percent_encode(text, PATH).to_string()
}

/// Percent-encodes a value for a query string.
pub fn query_value(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Path;
    use axum::extract::rejection::PathRejection;
    use axum::http::{Method, Request, StatusCode};
    use axum::routing::{MethodFilter, get, on};
    use hyper::service::Service as _;
    use hyper_util::service::TowerToHyperService;

    use super::*;

    #[test]
    fn url_paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            url_path("/courses/数学/01 a/b.mp4"),
            "/courses/%E6%95%B0%E5%AD%A6/01%20a/b.mp4"
        );
        assert_eq!(url_path("/a-b_c.d~e"), "/a-b_c.d~e");
        assert_eq!(
            query_value("/search?q=加 法"),
            "%2Fsearch%3Fq%3D%E5%8A%A0%20%E6%B3%95"
        );
        assert_eq!(decode("%2e%2E/x%"), Some("../x%".into()));
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn file_routes_decode_like_the_router() {
        let Some((route, Named::Place(key))) =
            held_file("/courses/%E6%95%B0%E5%AD%A6/01/video/a%20b.mp4?x=1")
        else {
            panic!("a lesson file");
        };
        assert_eq!(key.course, "数学");
        assert_eq!(key.lesson.as_deref(), Some("01"));
        assert_eq!(key.path, "video/a b.mp4");
        assert_eq!(route.pattern, "/courses/{course}/{lesson}/{*path}");
        let Some((_, Named::Place(key))) = held_file("/assets/c/cover.png") else {
            panic!("a course file");
        };
        assert_eq!(
            (key.course.as_str(), key.lesson, key.path.as_str()),
            ("c", None, "cover.png")
        );
        assert!(held_file("/courses/a/b").is_none());
        assert!(held_file("/courses/a/b/%FF").is_none(), "not UTF-8");
        assert!(held_file("/files/not-a-hash").is_none());
        assert!(held_file("/status").is_none());
        assert!(held_file("/api/v1/courses").is_none());
    }

    /// Sample paths for every route, and paths near them that must take
    /// another route or none.
    fn samples() -> Vec<String> {
        let hash = Hash::of(b"a lesson file").to_string();
        let mut paths: Vec<String> = [
            "/files/HASH",
            "/files/HASH/",
            "/files/HASH/x",
            "/files/",
            "/files/not-a-hash",
            "/courses/math/01/index.html",
            "/courses/%E6%95%B0%E5%AD%A6/01%2F02/video/a%20b.mp4",
            "/courses/math/01/a/b/c/d.png",
            "/courses/math/01/",
            "/courses/math/01",
            "/courses/math//x.png",
            "/courses//01/x.png",
            "/courses/math/01/%FF.png",
            "/courses/math/01/%2e%2e/x",
            "/assets/math/cover.png",
            "/assets/math/a/b.png",
            "/assets/math/",
            "/assets/math",
            "/assets//cover.png",
            "/api/v1/courses",
            "/api/v1/courses/",
            "/api/v1/courses/math",
            "/api/v1/courses/math/x",
            "/api/v1/search?q=a",
            "/api/v1/status",
            "/metrics",
            "/metrics/",
            "/",
            "//",
            "/course/math",
            "/course/math/01",
            "/course/math/01/x",
            "/course/",
            "/search",
            "/status",
            "/status/sync-now",
            "/lang/zh?back=/",
            "/static/style.css",
            "/static/fonts/yi.ttf",
            "/static/fonts/",
            "/nothing",
            "/%63ourses/math/01/x.png",
            "/courses/math/01/x.png?back=/courses/a/b/c",
            "/files/HASH?download=1",
            "/COURSES/math/01/x.png",
        ]
        .iter()
        .map(|path| path.replace("HASH", &hash))
        .collect();
        // Every pattern with its pieces filled in.
        for route in ROUTES {
            let filled = route
                .pattern
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        "x"
                    } else {
                        segment
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            paths.push(filled.replace("/files/x", &format!("/files/{hash}")));
        }
        paths
    }

    /// Issue 12: the router and the front door read one table. For every
    /// route and the paths around them, the route axum's router picks is the
    /// one [`classify`] finds, the pieces the router's `Path` extractor
    /// decodes are what [`decode`] gives, and the front door takes a path for
    /// `sendfile` exactly when the router would serve it as a file.
    #[tokio::test]
    async fn the_router_and_the_front_door_agree_on_every_route_issue_12() {
        let probe = TowerToHyperService::new(table_router::<()>(|route| {
            let (pattern, kind) = (route.pattern, route.kind);
            let answer = move |params: Result<Path<Vec<(String, String)>>, PathRejection>| async move {
                match params {
                    Ok(Path(params)) => {
                        let values: Vec<String> = params.into_iter().map(|(_, v)| v).collect();
                        (StatusCode::OK, format!("{pattern}\n{}", values.join("\n")))
                    }
                    Err(_) => (StatusCode::BAD_REQUEST, pattern.to_owned()),
                }
            };
            if kind == Kind::SyncNow {
                on(MethodFilter::POST, answer)
            } else {
                get(answer)
            }
        }));
        let mut file_routes_seen = 0;
        for path in samples() {
            let (route, pieces) = match classify(&path) {
                Some((route, pieces)) => (Some(route), pieces),
                None => (None, Vec::new()),
            };
            let method = if route.is_some_and(|r| r.kind == Kind::SyncNow) {
                Method::POST
            } else {
                Method::GET
            };
            let request = Request::builder()
                .method(method)
                .uri(&path)
                .body(Body::empty())
                .expect("a request");
            let response = probe.call(request).await.expect("an answer");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .expect("a body");
            let body = String::from_utf8(body.to_vec()).expect("text");
            let Some(route) = route else {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{path}: no route here, but the router has {body}"
                );
                assert!(held_file(&path).is_none());
                continue;
            };
            let mut lines = body.lines();
            assert_eq!(
                lines.next(),
                Some(route.pattern),
                "{path}: the router took another route"
            );
            let decoded: Option<Vec<String>> = pieces.iter().map(|piece| decode(piece)).collect();
            match decoded {
                Some(decoded) => {
                    assert_eq!(status, StatusCode::OK, "{path}");
                    assert_eq!(
                        lines.map(str::to_owned).collect::<Vec<_>>(),
                        decoded,
                        "{path}"
                    );
                }
                None => assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: not UTF-8"),
            }
            let sendfile = held_file(&path).is_some();
            if sendfile {
                file_routes_seen += 1;
            }
            let hash_ok = route.kind != Kind::FileByHash
                || pieces
                    .first()
                    .and_then(|p| p.parse::<Hash>().ok())
                    .is_some();
            assert_eq!(
                sendfile,
                route.kind.is_file() && status == StatusCode::OK && hash_ok,
                "{path}: the front door and the router disagree on whether it is a file"
            );
        }
        assert!(file_routes_seen >= 8, "the samples reach the file routes");
    }
}
