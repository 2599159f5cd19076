//! `/teach`: the teachers' page and its endpoints.
//!
//! - `GET /teach`: the login form, or (logged in) the upload form, the
//!   teacher's unfinished uploads and her lessons with their rename and
//!   remove forms.
//! - `POST /teach/login`, `POST /teach/logout`.
//! - `POST /teach/uploads` (tus creation: `Upload-Length`,
//!   `Upload-Metadata: filename <base64>`), `HEAD|PATCH|DELETE
//!   /teach/uploads/<id>` (tus core): the page's script uploads this way,
//!   in pieces, and goes on after a dropped connection.
//! - `POST /teach/lessons`: makes the lesson, from finished uploads
//!   (`uploads=<id>,<id>`) or, without scripts, from the form's files.
//! - `POST /teach/lessons/<id>`: `action=retitle` or `action=remove`.
//!
//! Every request but the login needs the session cookie (`HttpOnly`,
//! `SameSite=Strict`, path `/teach`) and every change the session's CSRF
//! token (the form's `csrf` field or the `X-Shanlu-Csrf` header); a request
//! whose `Origin` names another site is refused as well.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use catalog::{LocalizedText, format, tr};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use crate::classroom::front::Peer;
use crate::classroom::i18n::Lang;
use crate::classroom::ui::{Reader, page_with_status};
use crate::classroom::{Classroom, url_path};
use crate::teachers::sessions::{COOKIE, Refusal, Session};
use crate::teachers::shelf::{self, NewFile, NewLesson};
use crate::teachers::uploads::UploadError;
use crate::teachers::{HEAD_BYTES, check_ending, kind_of, password, zipped};

/// The tus version spoken.
const TUS: &str = "1.0.0";
/// Most files one lesson takes.
pub const MAX_FILES: usize = 20;

/// The session of the request's cookie.
fn session(state: &Classroom, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())?;
    let session = state.teachers.sessions.get(&id)?;
    Some((id, session))
}

/// An `Origin` naming another site.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn refuse(status: StatusCode, why: impl Into<String>) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        format!("{}\n", why.into()),
    )
        .into_response()
}

/// The session, checked for a change: its CSRF token given as `token`.
#[expect(
    clippy::result_large_err,
    reason = "the refusal is the answer, returned at once"
)]
fn for_change(
    state: &Classroom,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Session, Response> {
    let Some((_, session)) = session(state, headers) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "not logged in: open /teach and log in with the school's teacher password",
        ));
    };
    let header_token = headers.get("x-shanlu-csrf").and_then(|v| v.to_str().ok());
    let given = token.or(header_token);
    if foreign_origin(headers) || given != Some(session.csrf.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "refused: this change did not come from this edge's own teacher page \
             (missing or wrong form token); reload /teach and try again",
        ));
    }
    Ok(session)
}

fn upload_refusal(err: &UploadError) -> Response {
    let status = match err {
        UploadError::NotFound(_) => StatusCode::NOT_FOUND,
        UploadError::TooLarge { .. } | UploadError::PastEnd { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        UploadError::TooMany(_) | UploadError::Busy => StatusCode::TOO_MANY_REQUESTS,
        UploadError::WrongOffset { .. } => StatusCode::CONFLICT,
        UploadError::BadName { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        UploadError::Unfinished { .. } => StatusCode::CONFLICT,
        UploadError::NoRoom { .. } => StatusCode::INSUFFICIENT_STORAGE,
        UploadError::Io { .. } | UploadError::Damaged { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::warn!(cause = %err, "a teacher's upload failed");
    }
    refuse(status, err.to_string())
}

/// The school's course title in every language that has one.
fn course_title() -> LocalizedText {
    let mut title = LocalizedText::new();
    let words = crate::classroom::i18n::words();
    for lang in Lang::all() {
        if let Some(index) = words.index(lang.code())
            && !words.missing(index).contains(&"this-school")
        {
            title.insert(lang.code(), tr!(lang, "this-school").into_owned());
        }
    }
    title
}

// ---- pages ----

pub(crate) async fn home(
    State(state): State<Arc<Classroom>>,
    reader: Reader,
    headers: HeaderMap,
) -> Response {
    let lang = reader.lang;
    match session(&state, &headers) {
        None => login_page(lang, StatusCode::OK, None),
        Some((_, session)) => teacher_page(&state, lang, &session, None).await,
    }
}

fn login_page(lang: Lang, status: StatusCode, notice: Option<String>) -> Response {
    let body = html! {
        h1 { (tr!(lang, "teach-title")) }
        @if let Some(notice) = notice { div.notice #teach-refused role="alert" { (notice) } }
        form #teach-login method="post" action="/teach/login" {
            p { label { (tr!(lang, "teach-name")) br; input type="text" name="name" required maxlength="64" autocomplete="name"; } }
            p { label { (tr!(lang, "teach-password")) br; input type="password" name="password" required autocomplete="current-password"; } }
            button type="submit" { (tr!(lang, "teach-login")) }
        }
        p.meta { (tr!(lang, "teach-login-help")) }
    };
    let mut response = page_with_status(status, lang, "/teach", &tr!(lang, "teach-title"), body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn teacher_page(
    state: &Arc<Classroom>,
    lang: Lang,
    session: &Session,
    notice: Option<String>,
) -> Response {
    let store = state.store.clone();
    let teacher = session.teacher.clone();
    let mine = crate::classroom::read(move || {
        shelf::lessons(&store)
            .map(|all| {
                all.into_iter()
                    .filter(|e| e.teacher == teacher)
                    .collect::<Vec<_>>()
            })
            .map_err(|err| crate::classroom::error::ReadError::Shelf(Box::new(err)))
    })
    .await;
    let mine = match mine {
        Ok(mine) => mine,
        Err(err) => return crate::classroom::ui::error_page(lang, "/teach", &err),
    };
    let unfinished = state.teachers.uploads.of_teacher(&session.teacher);
    let max = state.teachers.uploads.max_bytes();
    let body = html! {
        h1 { (tr!(lang, "teach-title")) }
        p { (tr!(lang, "teach-signed-in", name = session.teacher.as_str())) }
        form method="post" action="/teach/logout" {
            input type="hidden" name="csrf" value=(session.csrf);
            button type="submit" { (tr!(lang, "teach-logout")) }
        }
        @if let Some(notice) = notice { div.notice #teach-notice role="status" { (notice) } }
        h2 { (tr!(lang, "teach-new-lesson")) }
        form #upload-form method="post" action="/teach/lessons" enctype="multipart/form-data" data-max=(max) {
            input type="hidden" name="csrf" value=(session.csrf);
            p { label { (tr!(lang, "teach-lesson-title")) br; input type="text" name="title" required maxlength="200"; } }
            p { label { (tr!(lang, "language")) br;
                select name="lang" {
                    @for other in Lang::all() { option value=(other.code()) selected[other == lang] { (other.name()) } }
                }
            } }
            p { label { (tr!(lang, "grade")) br; input type="text" name="grade" maxlength="40"; } }
            p { label { (tr!(lang, "subject")) br; input type="text" name="subject" maxlength="40"; } }
            p { label { (tr!(lang, "teach-files")) br; input #upload-files type="file" name="file" multiple required
                accept=".mp4,.m4v,.webm,.mp3,.m4a,.ogg,.oga,.wav,.pdf,.png,.jpg,.jpeg,.webp,.vtt,.zip"; } }
            p.meta { (tr!(lang, "teach-files-help", max = format::bytes(max))) }
            progress #upload-progress max="1" value="0" hidden {}
            p #upload-state role="status" {}
            button type="submit" { (tr!(lang, "teach-upload")) }
        }
        @if !unfinished.is_empty() {
            h2 { (tr!(lang, "teach-unfinished")) }
            ul #unfinished {
                @for (id, record) in &unfinished {
                    li data-upload=(id) { (record.name) " · " (format::bytes(record.offset)) " / " (format::bytes(record.length)) }
                }
            }
        }
        h2 { (tr!(lang, "teach-my-lessons")) }
        @if mine.is_empty() { p #no-lessons { (tr!(lang, "teach-none-yet")) } }
        ul.cards #my-lessons {
            @for entry in &mine {
                li.card data-lesson=(entry.id) {
                    a href=(url_path(&format!("/course/{}/{}", shelf::COURSE_ID, entry.id))) { (entry.id) }
                    " " span.meta { (format::bytes(entry.size)) " · " (format::time(entry.created_at)) }
                    form method="post" action=(url_path(&format!("/teach/lessons/{}", entry.id))) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="action" value="retitle";
                        label { (tr!(lang, "teach-lesson-title")) " " input type="text" name="title" required maxlength="200"; }
                        " " button type="submit" { (tr!(lang, "teach-rename")) }
                    }
                    form method="post" action=(url_path(&format!("/teach/lessons/{}", entry.id))) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        input type="hidden" name="action" value="remove";
                        button type="submit" { (tr!(lang, "teach-remove")) }
                    }
                    (proposal(lang, entry, &session.csrf))
                }
            }
        }
        script { (PreEscaped(UPLOAD_JS)) }
    };
    let mut response = page_with_status(
        StatusCode::OK,
        lang,
        "/teach",
        &tr!(lang, "teach-title"),
        body,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where a lesson's proposal to the bureau stands, and the button to make one.
fn proposal(lang: Lang, entry: &shelf::Entry, csrf: &str) -> Markup {
    use shelf::ProposalState;
    let state = entry.proposal.as_ref().map(|p| &p.state);
    let can_propose = matches!(state, None | Some(ProposalState::Declined { .. }));
    html! {
        div.proposal data-proposal=(match state {
            None => "none",
            Some(ProposalState::Queued) => "queued",
            Some(ProposalState::Sent { .. }) => "sent",
            Some(ProposalState::Approved { .. }) => "approved",
            Some(ProposalState::Declined { .. }) => "declined",
        }) data-sent=[match state {
            Some(ProposalState::Sent { sent_bytes, .. }) => Some(sent_bytes),
            _ => None,
        }] {
            @match state {
                None => {}
                Some(ProposalState::Queued) => {
                    p { (tr!(lang, "teach-proposal-queued")) }
                    @if let Some(why) = entry.proposal.as_ref().and_then(|p| p.not_sent.as_deref()) {
                        p.not-sent { (tr!(lang, "teach-proposal-not-sent")) " " (why) }
                    }
                }
                Some(ProposalState::Sent { sent_bytes, .. }) => {
                    p { (tr!(lang, "teach-proposal-sent", bytes = format::bytes(*sent_bytes))) }
                }
                Some(ProposalState::Approved { course }) => {
                    p { (tr!(lang, "teach-proposal-approved", course = course.as_str())) }
                }
                Some(ProposalState::Declined { note }) => {
                    p { (tr!(lang, "teach-proposal-declined")) }
                    blockquote.note { (note) }
                }
            }
            @if can_propose {
                form method="post" action=(url_path(&format!("/teach/lessons/{}", entry.id))) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value="propose";
                    button type="submit" { (tr!(lang, "teach-propose")) }
                }
            }
        }
    }
}

/// With scripts on, the form uploads each file in pieces over tus (going
/// on after a dropped connection, also after a reload: the upload's address
/// is kept in `localStorage`), then makes the lesson from the uploads.
/// Without scripts the form posts its files in one request.
const UPLOAD_JS: &str = r#"
(() => {
  const form = document.getElementById('upload-form');
  if (!form || !window.fetch || !window.localStorage) return;
  const PIECE = 8 * 1024 * 1024;
  const state = document.getElementById('upload-state');
  const bar = document.getElementById('upload-progress');
  const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const csrf = form.elements.csrf.value;
    const files = [...document.getElementById('upload-files').files];
    const total = files.reduce((n, f) => n + f.size, 0) || 1;
    let done = 0;
    const ids = [];
    bar.hidden = false;
    try {
      for (const file of files) {
        const key = 'shanlu-upload:' + file.name + ':' + file.size + ':' + file.lastModified;
        let url = localStorage.getItem(key);
        let offset = 0;
        if (url) {
          const r = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
          if (r.ok) offset = Number(r.headers.get('Upload-Offset')); else url = null;
        }
        if (!url) {
          const r = await fetch('/teach/uploads', { method: 'POST', headers: {
            'Tus-Resumable': '1.0.0', 'Upload-Length': String(file.size),
            'Upload-Metadata': 'filename ' + b64(file.name), 'X-Shanlu-Csrf': csrf } });
          if (!r.ok) throw new Error(await r.text());
          url = r.headers.get('Location');
          localStorage.setItem(key, url);
        }
        let tries = 0;
        while (offset < file.size) {
          bar.value = (done + offset) / total;
          try {
            const r = await fetch(url, { method: 'PATCH', headers: {
              'Tus-Resumable': '1.0.0', 'Upload-Offset': String(offset),
              'Content-Type': 'application/offset+octet-stream', 'X-Shanlu-Csrf': csrf },
              body: file.slice(offset, Math.min(offset + PIECE, file.size)) });
            if (r.ok) {
              offset = Number(r.headers.get('Upload-Offset'));
              tries = 0;
            } else if (r.status === 409) {
              const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
              offset = Number(head.headers.get('Upload-Offset'));
            } else if (r.status >= 400 && r.status < 500) {
              throw new Error(await r.text());
            } else { throw new Error('server ' + r.status); }
          } catch (err) {
            if (err instanceof Error && err.message && !/server|fetch|network/i.test(err.message)) throw err;
            tries += 1;
            state.textContent = '…';
            await wait(Math.min(30000, 1000 * 2 ** Math.min(tries, 5)));
            const head = await fetch(url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } }).catch(() => null);
            if (head && head.ok) offset = Number(head.headers.get('Upload-Offset'));
          }
        }
        done += file.size;
        ids.push([key, url.split('/').pop()]);
      }
      bar.value = 1;
      const body = new URLSearchParams();
      for (const name of ['csrf', 'title', 'lang', 'grade', 'subject']) body.set(name, form.elements[name].value);
      body.set('uploads', ids.map(([, id]) => id).join(','));
      const r = await fetch('/teach/lessons', { method: 'POST', body });
      if (!r.ok) throw new Error(await r.text());
      for (const [key] of ids) localStorage.removeItem(key);
      location.href = r.url;
    } catch (err) {
      state.textContent = String(err.message || err);
    }
  });
})();
"#;

// ---- login ----

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
}

pub(crate) async fn login(
    State(state): State<Arc<Classroom>>,
    reader: Reader,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let lang = reader.lang;
    if foreign_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: a login must come from this edge's own page",
        );
    }
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0);
    let Ok(axum::Form(form)) = axum::Form::<LoginForm>::from_request(request, &()).await else {
        return login_page(
            lang,
            StatusCode::BAD_REQUEST,
            Some(tr!(lang, "teach-refused").into_owned()),
        );
    };
    let stored = password::load(&state.data_dir).ok();
    match state
        .teachers
        .sessions
        .login(peer, &form.name, &form.password, stored)
        .await
    {
        Ok((id, _)) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/teach".to_owned()),
                (
                    header::SET_COOKIE,
                    format!("{COOKIE}={id}; Path=/teach; HttpOnly; SameSite=Strict; Max-Age=28800"),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response(),
        Err(Refusal::Locked) => login_page(
            lang,
            StatusCode::TOO_MANY_REQUESTS,
            Some(tr!(lang, "teach-locked").into_owned()),
        ),
        Err(Refusal::BadName | Refusal::Wrong) => login_page(
            lang,
            StatusCode::FORBIDDEN,
            Some(tr!(lang, "teach-refused").into_owned()),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

pub(crate) async fn logout(
    State(state): State<Arc<Classroom>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(refused) = for_change(&state, &headers, form.csrf.as_deref()) {
        return refused;
    }
    if let Some((id, _)) = session(&state, &headers) {
        state.teachers.sessions.logout(&id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/teach".to_owned()),
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; Path=/teach; HttpOnly; SameSite=Strict; Max-Age=0"),
            ),
        ],
    )
        .into_response()
}

// ---- tus ----

fn tus_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(TUS));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// `filename` from a tus `Upload-Metadata` header.
fn metadata_filename(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("upload-metadata")?.to_str().ok()?;
    value.split(',').find_map(|pair| {
        let (key, encoded) = pair.trim().split_once(' ')?;
        (key == "filename").then_some(())?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        String::from_utf8(bytes).ok()
    })
}

pub(crate) async fn create_upload(
    State(state): State<Arc<Classroom>>,
    headers: HeaderMap,
) -> Response {
    let session = match for_change(&state, &headers, None) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let Some(length) = headers
        .get("upload-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an upload needs Upload-Length (bytes)",
        );
    };
    let Some(name) = metadata_filename(&headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an upload needs Upload-Metadata: filename <base64>",
        );
    };
    // The ending is checked now; the bytes when the lesson is made.
    if let Err(why) = check_ending(&name) {
        return refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    match state
        .teachers
        .uploads
        .create(&session.teacher, &name, length)
    {
        Ok(id) => {
            let mut response = (
                StatusCode::CREATED,
                [(header::LOCATION, format!("/teach/uploads/{id}"))],
            )
                .into_response();
            tus_headers(&mut response);
            response
        }
        Err(err) => upload_refusal(&err),
    }
}

pub(crate) async fn upload_offset(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((_, session)) = session(&state, &headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "not logged in");
    };
    match state.teachers.uploads.record_of(&id, &session.teacher) {
        Ok(record) => {
            let mut response = StatusCode::OK.into_response();
            tus_headers(&mut response);
            let headers = response.headers_mut();
            headers.insert("upload-offset", HeaderValue::from(record.offset));
            if !record.open_ended {
                headers.insert("upload-length", HeaderValue::from(record.length));
            }
            response
        }
        Err(err) => upload_refusal(&err),
    }
}

pub(crate) async fn append_upload(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let session = match for_change(&state, &headers, None) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/offset+octet-stream") {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an append is Content-Type: application/offset+octet-stream",
        );
    }
    let Some(offset) = headers
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return refuse(StatusCode::BAD_REQUEST, "an append needs Upload-Offset");
    };
    let stream = body.into_data_stream();
    match state
        .teachers
        .uploads
        .append(&id, &session.teacher, offset, stream)
        .await
    {
        Ok(at) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            tus_headers(&mut response);
            response
                .headers_mut()
                .insert("upload-offset", HeaderValue::from(at));
            response
        }
        Err(err) => upload_refusal(&err),
    }
}

pub(crate) async fn delete_upload(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let session = match for_change(&state, &headers, None) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    match state.teachers.uploads.record_of(&id, &session.teacher) {
        Ok(_) => {
            state.teachers.uploads.delete(&id);
            let mut response = StatusCode::NO_CONTENT.into_response();
            tus_headers(&mut response);
            response
        }
        Err(err) => upload_refusal(&err),
    }
}

// ---- lessons ----

#[derive(Deserialize, Default)]
pub(crate) struct LessonForm {
    csrf: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    grade: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    uploads: String,
}

impl LessonForm {
    fn about(&self) -> NewLesson {
        let lang = Lang::from_code(&self.lang).unwrap_or(Lang::ZH);
        NewLesson {
            title: self.title.clone(),
            lang: lang.code().to_owned(),
            grade: self.grade.chars().take(40).collect(),
            subject: self.subject.chars().take(40).collect(),
        }
    }
}

pub(crate) async fn create_lesson(
    State(state): State<Arc<Classroom>>,
    reader: Reader,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let lang = reader.lang;
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (form, ids) = if is_multipart {
        let Some((_, session)) = session(&state, &headers) else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "not logged in: open /teach and log in",
            );
        };
        let Ok(multipart) = Multipart::from_request(request, &()).await else {
            return refuse(StatusCode::BAD_REQUEST, "a lesson form could not be read");
        };
        match form_uploads(&state, &session, &headers, multipart).await {
            Ok(got) => got,
            Err(refused) => return refused,
        }
    } else {
        let Ok(axum::Form(form)) = axum::Form::<LessonForm>::from_request(request, &()).await
        else {
            return refuse(StatusCode::BAD_REQUEST, "a lesson form could not be read");
        };
        let ids: Vec<String> = form
            .uploads
            .split(',')
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
            .collect();
        (form, ids)
    };
    let session = match for_change(&state, &headers, form.csrf.as_deref()) {
        Ok(session) => session,
        Err(refused) => {
            for id in &ids {
                state.teachers.uploads.delete(id);
            }
            return refused;
        }
    };
    match make_lesson(&state, &session, &form, &ids).await {
        Ok(id) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, format!("/teach?added={id}")),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
        )
            .into_response(),
        Err((status, why)) => {
            let mut response = teacher_page(&state, lang, &session, Some(why)).await;
            *response.status_mut() = status;
            response
        }
    }
}

/// A multipart form's fields, its files streamed into new uploads.
async fn form_uploads(
    state: &Arc<Classroom>,
    session: &Session,
    headers: &HeaderMap,
    mut multipart: Multipart,
) -> Result<(LessonForm, Vec<String>), Response> {
    let mut form = LessonForm::default();
    let mut ids = Vec::new();
    let fail = |state: &Arc<Classroom>, ids: &[String], response: Response| {
        for id in ids {
            state.teachers.uploads.delete(id);
        }
        response
    };
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(err) => {
                return Err(fail(
                    state,
                    &ids,
                    refuse(
                        StatusCode::BAD_REQUEST,
                        format!("the form broke off: {err}"),
                    ),
                ));
            }
        };
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            // The token comes before the files in the page's form.
            if form.csrf.as_deref() != Some(session.csrf.as_str()) || foreign_origin(headers) {
                return Err(fail(
                    state,
                    &ids,
                    refuse(
                        StatusCode::FORBIDDEN,
                        "refused: missing or wrong form token",
                    ),
                ));
            }
            let file_name = field.file_name().unwrap_or("").to_owned();
            if file_name.is_empty() {
                continue;
            }
            if ids.len() >= MAX_FILES {
                return Err(fail(
                    state,
                    &ids,
                    refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("a lesson takes at most {MAX_FILES} files"),
                    ),
                ));
            }
            let id = match state
                .teachers
                .uploads
                .create_unsized(&session.teacher, &file_name)
            {
                Ok(id) => id,
                Err(err) => return Err(fail(state, &ids, upload_refusal(&err))),
            };
            ids.push(id.clone());
            let stream = Box::pin(field);
            if let Err(err) = state
                .teachers
                .uploads
                .append(&id, &session.teacher, 0, stream)
                .await
            {
                return Err(fail(state, &ids, upload_refusal(&err)));
            }
            if let Err(err) = state.teachers.uploads.seal(&id, &session.teacher) {
                return Err(fail(state, &ids, upload_refusal(&err)));
            }
            continue;
        }
        let Ok(text) = field.text().await else {
            return Err(fail(
                state,
                &ids,
                refuse(StatusCode::BAD_REQUEST, "a form field was not text"),
            ));
        };
        let text: String = text.chars().take(1000).collect();
        match name.as_str() {
            "csrf" => form.csrf = Some(text),
            "title" => form.title = text,
            "lang" => form.lang = text,
            "grade" => form.grade = text,
            "subject" => form.subject = text,
            _ => {}
        }
    }
    Ok((form, ids))
}

/// Checks the finished uploads `ids` and makes the lesson of them.
async fn make_lesson(
    state: &Arc<Classroom>,
    session: &Session,
    form: &LessonForm,
    ids: &[String],
) -> Result<String, (StatusCode, String)> {
    if ids.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "choose at least one file".into()));
    }
    if ids.len() > MAX_FILES {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a lesson takes at most {MAX_FILES} files"),
        ));
    }
    let uploads = state.teachers.uploads.clone();
    let store = state.store.clone();
    let teacher = session.teacher.clone();
    let about = form.about();
    let ids = ids.to_vec();
    let made = tokio::task::spawn_blocking(move || {
        let mut unpacked: Vec<std::path::PathBuf> = Vec::new();
        let made = make_from_uploads(&uploads, &store, &teacher, &about, &ids, &mut unpacked);
        for folder in unpacked {
            let _ = std::fs::remove_dir_all(folder);
        }
        made
    })
    .await
    .map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the edge is stopping".to_owned(),
        )
    })?;
    if let Ok(id) = &made {
        tracing::info!(teacher = %session.teacher, lesson = %id, "a teacher added a lesson");
    }
    made
}

/// Checks the finished uploads `ids`, unpacks any .zip into a folder named
/// in `unpacked` (the caller removes them), and adds the lesson.
fn make_from_uploads(
    uploads: &crate::teachers::uploads::Uploads,
    store: &catalog::Store,
    teacher: &str,
    about: &NewLesson,
    ids: &[String],
    unpacked: &mut Vec<std::path::PathBuf>,
) -> Result<String, (StatusCode, String)> {
    let mut found = Vec::new();
    for id in ids {
        let (record, path) = uploads
            .finished(id, teacher)
            .map_err(|err| (StatusCode::CONFLICT, err.to_string()))?;
        let mut head = [0u8; HEAD_BYTES];
        let read = std::fs::File::open(&path)
            .and_then(|mut f| {
                use std::io::Read as _;
                let mut n = 0;
                while n < head.len() {
                    let got = f.read(&mut head[n..])?;
                    if got == 0 {
                        break;
                    }
                    n += got;
                }
                Ok(n)
            })
            .map_err(|err| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {err}", path.display()),
                )
            })?;
        let media = kind_of(&record.name, &head[..read])
            .map_err(|why| (StatusCode::UNSUPPORTED_MEDIA_TYPE, why))?;
        if media == "application/zip" {
            // An HTML lesson's folder: its files become the lesson's.
            let into = uploads.unpack_path();
            let files = zipped::unpack(&path, &into, uploads.max_bytes())
                .map_err(|why| (StatusCode::UNPROCESSABLE_ENTITY, why))?;
            unpacked.push(into);
            found.extend(files.into_iter().map(|f| (f.name, f.path, f.media_type)));
            continue;
        }
        found.push((record.name, path, media));
    }
    let files: Vec<NewFile<'_>> = found
        .iter()
        .map(|(name, path, media)| NewFile {
            name: name.clone(),
            path,
            media_type: media,
        })
        .collect();
    let id = shelf::add(store, teacher, about, &files, &course_title())
        .map_err(|err| (StatusCode::UNPROCESSABLE_ENTITY, err.to_string()))?;
    for id in ids {
        uploads.delete(id);
    }
    Ok(id)
}

#[derive(Deserialize)]
pub(crate) struct ChangeForm {
    csrf: Option<String>,
    action: String,
    #[serde(default)]
    title: String,
}

pub(crate) async fn change_lesson(
    State(state): State<Arc<Classroom>>,
    Path(id): Path<String>,
    reader: Reader,
    headers: HeaderMap,
    axum::Form(form): axum::Form<ChangeForm>,
) -> Response {
    let session = match for_change(&state, &headers, form.csrf.as_deref()) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let store = state.store.clone();
    let teacher = session.teacher.clone();
    let lesson = id.clone();
    let done = tokio::task::spawn_blocking(move || match form.action.as_str() {
        "retitle" => shelf::retitle(&store, &teacher, &lesson, &form.title, &course_title()),
        "remove" => shelf::remove(&store, &teacher, &lesson, &course_title()),
        "propose" => shelf::propose(&store, &teacher, &lesson),
        _ => Err(shelf::ShelfError::Refused(
            "action is retitle, remove or propose".into(),
        )),
    })
    .await;
    match done {
        Ok(Ok(())) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/teach")]).into_response(),
        Ok(Err(err)) => {
            let status = match err {
                shelf::ShelfError::NotYours(_) => StatusCode::NOT_FOUND,
                shelf::ShelfError::BadTitle | shelf::ShelfError::Refused(_) => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut response =
                teacher_page(&state, reader.lang, &session, Some(err.to_string())).await;
            *response.status_mut() = status;
            response
        }
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the edge is stopping"),
    }
}
