//! `/review`: teachers' lessons proposed by the schools (issue 17), for an
//! administrator to preview, edit, approve (published as a course of its
//! own) or decline with a note the teacher sees. See [`crate::review`].

use std::sync::Arc;

use axum::Form;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use catalog::format::bytes;
use catalog::store::OpenedBlob;
use catalog::{Lesson, tr};
use maud::{Markup, html};
use serde::Deserialize;
use tracing::{info, warn};

use super::i18n::Lang;
use super::pages::{self, Frame, ago, enc};
use super::{Dashboard, Params, blocking, page, session};
use crate::review::{self, Approval, Entry, Verdict};

/// The queue, waiting lessons first.
pub(super) async fn queue_page(
    State(dash): State<Arc<Dashboard>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let (admin, csrf) = logged_in!(dash, headers, true);
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    let dir = dash.fleet.dir().to_owned();
    let made = blocking(move || {
        let frame = Frame {
            lang,
            admin: &admin,
            csrf: &csrf,
        };
        review::entries(&dir).map(|entries| queue(&frame, &entries, super::super::model::now()))
    })
    .await;
    match made {
        Ok(Ok(body)) => page(lang, &params, body),
        Ok(Err(err)) => failed(&err),
        Err(response) => response,
    }
}

/// The origin, proposal `edge/id` and its lesson (blocking).
fn proposal(
    dash: &Dashboard,
    edge: &str,
    id: &str,
) -> Result<(Arc<crate::Origin>, Entry, Lesson), String> {
    let origin = dash.origin()?;
    let entry = review::entry(origin.dir(), edge, id).map_err(|e| e.to_string())?;
    let lesson = origin
        .store()
        .require_object(&entry.lesson)
        .ok()
        .and_then(|o| o.into_lesson().ok())
        .ok_or_else(|| format!("the lesson of proposal {} is not in the store", entry.key()))?;
    Ok((origin, entry, lesson))
}

/// One proposal: its files to preview, the approval and decline forms.
pub(super) async fn item_page(
    State(dash): State<Arc<Dashboard>>,
    Path((edge, id)): Path<(String, String)>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let (admin, csrf) = logged_in!(dash, headers, true);
    let lang = Lang::choose(params.lang.as_deref(), &headers);
    let made = blocking(move || {
        let (_, entry, lesson) = proposal(&dash, &edge, &id)?;
        let frame = Frame {
            lang,
            admin: &admin,
            csrf: &csrf,
        };
        Ok::<_, String>(item(&frame, &entry, &lesson))
    })
    .await;
    match made {
        Ok(Ok(body)) => page(lang, &params, body),
        Ok(Err(message)) => (StatusCode::NOT_FOUND, message).into_response(),
        Err(response) => response,
    }
}

/// File `n` of a proposal's lesson, for the preview: streamed from the
/// store, never run as a page of the dashboard (`sandbox`).
pub(super) async fn file(
    State(dash): State<Arc<Dashboard>>,
    Path((edge, id, n)): Path<(String, String, usize)>,
    headers: HeaderMap,
) -> Response {
    let _ = logged_in!(dash, headers, false);
    let opened = blocking(move || {
        let (origin, _, lesson) = proposal(&dash, &edge, &id)?;
        let file = lesson
            .files
            .get(n)
            .ok_or_else(|| format!("the lesson has {} files", lesson.files.len()))?;
        match origin.store().open_blob(&file.blob) {
            Ok(OpenedBlob::Verified { file: opened, len }) => Ok((
                opened,
                len,
                mime_guess::from_path(&file.path).first_or_octet_stream(),
            )),
            Ok(_) => Err(format!("{} is not whole on the origin", file.path)),
            Err(err) => Err(err.to_string()),
        }
    })
    .await;
    let (opened, len, mime) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(message)) => return (StatusCode::NOT_FOUND, message).into_response(),
        Err(response) => return response,
    };
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(opened));
    let mut response = Body::from_stream(stream).into_response();
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.essence_str()) {
        out.insert(header::CONTENT_TYPE, value);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    out.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; media-src 'self'; img-src 'self'"),
    );
    response
}

#[derive(Deserialize)]
pub(super) struct ApproveForm {
    csrf: String,
    course: String,
    title: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    subject: String,
}

#[derive(Deserialize)]
pub(super) struct DeclineForm {
    csrf: String,
    note: String,
}

/// Checks the session and the form's CSRF token; the admin's name.
fn checked(dash: &Dashboard, headers: &HeaderMap, csrf: &str) -> Result<String, Box<Response>> {
    let Some((admin, expected)) = dash.sessions.get(headers) else {
        return Err(Box::new(Redirect::to("/login").into_response()));
    };
    if csrf != expected || session::cross_site(headers) {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token does not match the session",
            )
                .into_response(),
        ));
    }
    Ok(admin)
}

/// Checks the session and form token, runs `work(dashboard, admin)` on
/// the blocking pool, and goes back to the proposal's page (or says why
/// it was refused).
async fn act(
    dash: Arc<Dashboard>,
    (edge, id): (&str, &str),
    headers: &HeaderMap,
    csrf: &str,
    work: impl FnOnce(&Dashboard, &str) -> Result<(), String> + Send + 'static,
) -> Response {
    let admin = match checked(&dash, headers, csrf) {
        Ok(admin) => admin,
        Err(response) => return *response,
    };
    let key = format!("/review/{}/{}", enc(edge), enc(id));
    match blocking(move || work(&dash, &admin)).await {
        Ok(Ok(())) => Redirect::to(&key).into_response(),
        Ok(Err(message)) => refused(&message),
        Err(response) => response,
    }
}

pub(super) async fn approve(
    State(dash): State<Arc<Dashboard>>,
    Path((edge, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ApproveForm>,
) -> Response {
    let approval = Approval {
        course: form.course.trim().to_owned(),
        title: form.title,
        grade: form.grade,
        subject: form.subject,
    };
    let (e, i) = (edge.clone(), id.clone());
    act(dash, (&edge, &id), &headers, &form.csrf, move |dash, admin| {
        let origin = dash.origin()?;
        let report = review::approve(&origin, admin, &e, &i, &approval).map_err(|e| e.to_string())?;
        info!(%admin, edge = %e, proposal = %i, course = %approval.course, sequence = report.sequence, "proposal approved and published");
        Ok(())
    })
    .await
}

pub(super) async fn decline(
    State(dash): State<Arc<Dashboard>>,
    Path((edge, id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<DeclineForm>,
) -> Response {
    let (e, i, note) = (edge.clone(), id.clone(), form.note);
    act(
        dash,
        (&edge, &id),
        &headers,
        &form.csrf,
        move |dash, admin| {
            review::decline(dash.fleet.dir(), admin, &e, &i, &note).map_err(|e| e.to_string())
        },
    )
    .await
}

fn refused(message: &str) -> Response {
    warn!(cause = %message, "a review action was refused");
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        format!("refused: {message}\n"),
    )
        .into_response()
}

fn failed(err: &review::ReviewError) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the review queue cannot be read: {err}\n"),
    )
        .into_response()
}

fn verdict(lang: Lang, verdict: &Verdict) -> Markup {
    match verdict {
        Verdict::Waiting => html! { span.flag.behind { (tr!(lang, "review-waiting")) } },
        Verdict::Approved { course } => {
            html! { span.flag { (tr!(lang, "review-approved", course = course.as_str())) } }
        }
        Verdict::Declined { .. } => html! { span.flag.failing { (tr!(lang, "review-declined")) } },
        Verdict::Unknown => html! { "—" },
    }
}

fn queue(frame: &Frame<'_>, entries: &[Entry], now: u64) -> Markup {
    let lang = frame.lang;
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    // Waiting first; newest first within each (the order given).
    sorted.sort_by_key(|e| e.verdict != Verdict::Waiting);
    pages::layout(
        lang,
        &tr!(lang, "review"),
        pages::header(frame),
        html! {
            h1 { (tr!(lang, "review")) }
            @if sorted.is_empty() { p id="review-empty" { (tr!(lang, "review-empty")) } }
            @else {
                table id="review" {
                    thead { tr {
                        th { (tr!(lang, "review-lesson")) }
                        th { (tr!(lang, "review-school")) }
                        th { (tr!(lang, "review-teacher")) }
                        th { (tr!(lang, "review-size")) }
                        th { (tr!(lang, "review-received")) }
                        th { (tr!(lang, "flags")) }
                    } }
                    tbody { @for entry in sorted { tr {
                        td { a href={ "/review/" (enc(&entry.edge)) "/" (enc(&entry.id)) } lang=(entry.lang) { (entry.title) } }
                        td { (entry.edge) }
                        td { (entry.teacher) }
                        td.n { (bytes(entry.size)) }
                        td { (ago(lang, entry.received_at, now)) }
                        td { (verdict(lang, &entry.verdict)) }
                    } } }
                }
            }
        },
    )
}

fn item(frame: &Frame<'_>, entry: &Entry, lesson: &Lesson) -> Markup {
    let lang = frame.lang;
    let base = format!("/review/{}/{}", enc(&entry.edge), enc(&entry.id));
    // A plain id the form accepts, whatever script the edge's name is in.
    let suggested = format!(
        "shared-{}",
        entry
            .id
            .to_ascii_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
            .chars()
            .take(57)
            .collect::<String>()
    );
    pages::layout(
        lang,
        &entry.title,
        pages::header(frame),
        html! {
            p { a href="/review" { "← " (tr!(lang, "review")) } }
            h1 lang=(entry.lang) { (entry.title) }
            p { (verdict(lang, &entry.verdict)) " "
                (tr!(lang, "review-from", school = entry.edge.as_str(), teacher = entry.teacher.as_str())) }
            @if let Verdict::Declined { note } = &entry.verdict {
                p id="review-note" { (tr!(lang, "review-note")) ": " (note) }
            }
            h2 { (tr!(lang, "review-files")) }
            ul id="review-files" {
                @for (n, file) in lesson.files.iter().enumerate() {
                    li {
                        a href={ (base) "/files/" (n) } { (file.path) } " (" (bytes(file.size)) ")"
                    }
                }
            }
            @if let Some((n, file)) = lesson.files.iter().enumerate().find(|(_, f)| f.path == lesson.entry) {
                @let src = format!("{base}/files/{n}");
                @if file.path.ends_with(".mp4") || file.path.ends_with(".webm") || file.path.ends_with(".m4v") {
                    video controls preload="metadata" src=(src) style="max-width:100%" {}
                } @else if [".mp3", ".m4a", ".ogg", ".oga", ".wav"].iter().any(|e| file.path.ends_with(e)) {
                    audio controls preload="metadata" src=(src) {}
                }
            }
            @if entry.verdict == Verdict::Waiting {
                h2 { (tr!(lang, "review-approve")) }
                form method="post" action={ (base) "/approve" } id="approve" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    p { label { (tr!(lang, "review-course-id")) " " input type="text" name="course" value=(suggested) required pattern="[a-z0-9][a-z0-9_-]{0,63}"; } }
                    p { label { (tr!(lang, "review-title")) " " input type="text" name="title" value=(entry.title) required; } }
                    p { label { (tr!(lang, "review-grade")) " " input type="text" name="grade" value=(entry.grade); } }
                    p { label { (tr!(lang, "review-subject")) " " input type="text" name="subject" value=(entry.subject); } }
                    button type="submit" { (tr!(lang, "review-approve")) }
                }
                h2 { (tr!(lang, "review-decline")) }
                form method="post" action={ (base) "/decline" } id="decline" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    p { label { (tr!(lang, "review-note")) " " textarea name="note" required rows="3" cols="60" {} } }
                    button type="submit" { (tr!(lang, "review-decline")) }
                }
            }
        },
    )
}
