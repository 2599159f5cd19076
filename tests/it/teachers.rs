//! Issue 17: teachers upload their own lessons at the school: the password,
//! resumable uploads over the tus protocol, what is refused, the lesson in
//! the classroom and in search, renaming and removal.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use shanlu_tests::{
    RunningEdge, ServedOrigin, TestEdge, TestOrigin, generated, header, http_request_with_body,
    run_ok, url_escape,
};

pub(crate) const PASSWORD: &str = "山路上的老师们 2026";

/// A school whose edge has a teacher password and takes uploads of up to
/// `max_mib`.
fn school(max_mib: u64) -> (TestOrigin, ServedOrigin, TestEdge, RunningEdge) {
    let origin = TestOrigin::init();
    let served = origin.serve();
    let (edge, running) = teachers_edge(&origin, &served, "teachers", max_mib, &[]);
    (origin, served, edge, running)
}

/// Sets `edge`'s teacher password ([`PASSWORD`]) and upload limit.
pub(crate) fn with_teachers(edge: &TestEdge, max_mib: u64) {
    let password = edge.dir.path().join("password.txt");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password file");
    let out = run_ok(&[
        "edge",
        "teachers",
        "set-password",
        "--data",
        &edge.data_str(),
        "--password-file",
        password.to_str().expect("utf-8"),
    ]);
    assert!(out.contains("teacher password set"), "{out}");
    run_ok(&[
        "edge",
        "teachers",
        "set-max-upload",
        "--data",
        &edge.data_str(),
        "--mib",
        &max_mib.to_string(),
    ]);
    let text = std::fs::read_to_string(edge.data().join("teachers.toml")).expect("teachers.toml");
    assert!(
        text.contains("$argon2id$") && !text.contains("山路"),
        "{text}"
    );
}

/// Edge `name` of `origin`, with a teacher password and uploads of up to
/// `max_mib`, running with `run_args`.
pub(crate) fn teachers_edge(
    origin: &TestOrigin,
    served: &ServedOrigin,
    name: &str,
    max_mib: u64,
    run_args: &[&str],
) -> (TestEdge, RunningEdge) {
    let token = origin.add_edge(name);
    let edge = TestEdge::init(origin, served, served.quic, &token, "all");
    with_teachers(&edge, max_mib);
    let running = edge.run_with(run_args, &[]);
    (edge, running)
}

/// A logged-in teacher: her cookie and CSRF token.
#[derive(Debug)]
pub(crate) struct Teacher {
    pub(crate) addr: SocketAddr,
    cookie: String,
    pub(crate) csrf: String,
}

pub(crate) fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", url_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(crate) fn login(
    addr: SocketAddr,
    name: &str,
    password: &str,
) -> Result<Teacher, (u16, String)> {
    let body = form(&[("name", name), ("password", password)]);
    let (status, head, page) = http_request_with_body(
        addr,
        "POST",
        "/teach/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        body.as_bytes(),
    );
    if status != 303 {
        return Err((status, String::from_utf8_lossy(&page).into_owned()));
    }
    let cookie = header(&head, "set-cookie")
        .expect("a session cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().expect("pair").to_owned();
    let (_, _, page) =
        http_request_with_body(addr, "GET", "/teach", &format!("Cookie: {cookie}\r\n"), b"");
    let page = String::from_utf8(page).expect("utf-8");
    let at =
        page.find(r#"name="csrf" value=""#).expect("a csrf field") + r#"name="csrf" value=""#.len();
    let csrf = page[at..at + 64].to_owned();
    Ok(Teacher { addr, cookie, csrf })
}

impl Teacher {
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        http_request_with_body(
            self.addr,
            method,
            path,
            &format!("Cookie: {}\r\n{headers}", self.cookie),
            body,
        )
    }

    /// `POST /teach/uploads`: the upload's path, or the refusal.
    pub(crate) fn create(
        &self,
        name: &str,
        length: u64,
        csrf: bool,
    ) -> Result<String, (u16, String)> {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(name);
        let token = if csrf {
            format!("X-Shanlu-Csrf: {}\r\n", self.csrf)
        } else {
            String::new()
        };
        let (status, head, body) = self.request(
            "POST",
            "/teach/uploads",
            &format!("Tus-Resumable: 1.0.0\r\nUpload-Length: {length}\r\nUpload-Metadata: filename {encoded}\r\n{token}"),
            b"",
        );
        if status != 201 {
            return Err((status, String::from_utf8_lossy(&body).into_owned()));
        }
        Ok(header(&head, "location").expect("location").to_owned())
    }

    fn offset(&self, upload: &str) -> u64 {
        let (status, head, _) = self.request("HEAD", upload, "Tus-Resumable: 1.0.0\r\n", b"");
        assert_eq!(status, 200, "{head}");
        header(&head, "upload-offset")
            .expect("offset")
            .parse()
            .expect("a number")
    }

    pub(crate) fn patch(&self, upload: &str, offset: u64, bytes: &[u8]) -> (u16, String) {
        let (status, head, body) = self.request(
            "PATCH",
            upload,
            &format!(
                "Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\nX-Shanlu-Csrf: {}\r\n",
                self.csrf
            ),
            bytes,
        );
        (status, format!("{head}{}", String::from_utf8_lossy(&body)))
    }

    /// Sends `bytes` as an append's first half of `announced` bytes, then
    /// drops the connection, as a phone leaving the Wi-Fi does.
    fn patch_and_drop(&self, upload: &str, announced: u64, bytes: &[u8]) {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        let head = format!(
            "PATCH {upload} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
             Content-Type: application/offset+octet-stream\r\nX-Shanlu-Csrf: {}\r\nContent-Length: {announced}\r\n\r\n",
            self.addr, self.cookie, self.csrf
        );
        stream.write_all(head.as_bytes()).expect("head");
        stream.write_all(bytes).expect("half the body");
        stream.flush().expect("flush");
        drop(stream);
    }

    pub(crate) fn lesson(&self, fields: &[(&str, &str)]) -> (u16, String, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let (status, head, body) = self.request(
            "POST",
            "/teach/lessons",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            form(&all).as_bytes(),
        );
        (status, head, String::from_utf8_lossy(&body).into_owned())
    }
}

/// An MP4 file's first bytes, then `len` generated bytes.
pub(crate) fn video(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2mp41".to_vec();
    bytes.extend(generated(len, seed));
    bytes
}

#[test]
fn issue_17_a_200_mb_upload_cut_at_half_sends_only_the_rest_and_becomes_a_lesson() {
    let (_origin, _served, edge, web) = school(256);
    let addr = web.addr;

    // The wrong password is refused, then the right one gives a session.
    let (status, page) = login(addr, "王老师", "not the password").expect_err("refused");
    assert_eq!(status, 403);
    assert!(
        page.contains("Wrong name or password") || page.contains("姓名或密码不对"),
        "{page}"
    );
    let teacher = login(addr, "王老师", PASSWORD).expect("logged in");

    let file = video(200_000_000, 17);
    let length = file.len() as u64;
    let upload = teacher.create("数数歌.mp4", length, true).expect("created");
    assert!(upload.starts_with("/teach/uploads/"), "{upload}");

    // Half of it, then the connection drops: what arrived is kept.
    let half = file.len() / 2;
    teacher.patch_and_drop(&upload, length, &file[..half]);
    let mut kept = 0;
    assert!(
        shanlu_tests::wait_until(Duration::from_secs(30), || {
            kept = teacher.offset(&upload);
            kept == half as u64
        }),
        "kept {kept} of the {half} bytes sent"
    );

    // The rest only, from where the edge says.
    let (status, answer) = teacher.patch(&upload, kept, &file[kept as usize..]);
    assert_eq!(status, 204, "{answer}");
    assert_eq!(teacher.offset(&upload), length);
    // Sent in all: the file once (the half, then the rest).
    assert_eq!(half as u64 + (length - kept), length);

    let (status, head, page) = teacher.lesson(&[
        ("title", "数数歌"),
        ("lang", "zh"),
        ("grade", "1"),
        ("subject", "数学"),
        ("uploads", upload.rsplit('/').next().expect("id")),
    ]);
    assert_eq!(status, 303, "{page}");
    let added = header(&head, "location")
        .expect("location")
        .trim_start_matches("/teach?added=")
        .to_owned();

    // In the classroom at once, as a course marked "this school", and in search.
    let (_, home) = web.page("/", "zh");
    assert!(
        home.contains(r#"data-course="~school""#)
            && home.contains(r#"<span class="badge school">本校</span>"#),
        "{home}"
    );
    let (_, course) = web.page("/course/~school", "zh");
    assert!(
        course.contains("数数歌") && course.contains(&format!(r#"data-lesson="{added}""#)),
        "{course}"
    );
    let hits = web.json(&format!("/api/v1/search?q={}", url_escape("数数歌")));
    assert_eq!(hits[0]["lesson"], added.as_str(), "{hits}");
    let (_, lesson) = web.page(&format!("/course/~school/{added}"), "zh");
    assert!(
        lesson.contains("<video") && lesson.contains("数数歌.mp4"),
        "{lesson}"
    );
    let (status, _, served) = web.get(
        &format!("/courses/~school/{added}/{}", url_escape("数数歌.mp4")),
        "Range: bytes=0-99\r\n",
    );
    assert_eq!(status, 206);
    assert_eq!(served, file[..100]);
    // The upload's own bytes are gone: the store holds the file.
    assert_eq!(
        std::fs::read_dir(edge.data().join("uploads"))
            .expect("uploads")
            .count(),
        0
    );

    // Proposed to the bureau: its plan (a manifest of over 3,000 chunks) is
    // larger than an edge's usual request, and still goes up whole.
    let (status, _, _) = teacher.request(
        "POST",
        &format!("/teach/lessons/{added}"),
        "Content-Type: application/x-www-form-urlencoded\r\n",
        form(&[("csrf", &teacher.csrf), ("action", "propose")]).as_bytes(),
    );
    assert_eq!(status, 303);
    run_ok(&["edge", "sync-now", "--data", &edge.data_str()]);
    let mut page = String::new();
    assert!(
        shanlu_tests::wait_until(Duration::from_secs(120), || {
            page = String::from_utf8(teacher.request("GET", "/teach", "", b"").2).expect("utf-8");
            page.contains(&format!(r#"data-sent="{length}""#))
        }),
        "{page}"
    );

    // Renamed by her; another teacher can neither rename nor remove it.
    let other = login(addr, "李老师", PASSWORD).expect("other teacher");
    let change = |who: &Teacher, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", who.csrf.as_str())];
        all.extend_from_slice(fields);
        who.request(
            "POST",
            &format!("/teach/lessons/{added}"),
            "Content-Type: application/x-www-form-urlencoded\r\n",
            form(&all).as_bytes(),
        )
        .0
    };
    assert_eq!(change(&other, &[("action", "remove")]), 404);
    assert_eq!(
        change(
            &teacher,
            &[("action", "retitle"), ("title", "一起数到二十")]
        ),
        303
    );
    let (_, course) = web.page("/course/~school", "zh");
    assert!(
        course.contains("一起数到二十") && !course.contains(">数数歌<"),
        "{course}"
    );
    assert_eq!(change(&teacher, &[("action", "remove")]), 303);
    let (_, home) = web.page("/", "zh");
    assert!(!home.contains(r#"data-course="~school""#), "{home}");
    assert_eq!(web.page(&format!("/course/~school/{added}"), "zh").0, 404);
}

#[test]
fn issue_17_uploads_without_the_token_too_large_or_of_the_wrong_kind_are_refused() {
    let (_origin, _served, _edge, web) = school(1);
    let teacher = login(web.addr, "王老师", PASSWORD).expect("logged in");

    // No CSRF token, or no session at all.
    let (status, body) = teacher.create("a.mp4", 10, false).expect_err("no token");
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = http_request_with_body(
        web.addr,
        "POST",
        "/teach/uploads",
        "Upload-Length: 1\r\n",
        b"",
    );
    assert_eq!(status, 401);
    // Another site's page posting with the teacher's cookie.
    let (status, _, _) = teacher.request(
        "POST",
        "/teach/lessons",
        "Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://evil.example\r\n",
        form(&[("csrf", &teacher.csrf), ("title", "x"), ("uploads", "0")]).as_bytes(),
    );
    assert_eq!(status, 403);

    // Over the edge's limit (1 MiB here).
    let (status, body) = teacher
        .create("big.mp4", 2 << 20, true)
        .expect_err("too large");
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 1048576 bytes"), "{body}");
    // A kind lessons do not take, by name, and a renamed file, by its bytes.
    let (status, body) = teacher.create("setup.exe", 10, true).expect_err("exe");
    assert_eq!(status, 415, "{body}");
    let fake = teacher.create("worksheet.pdf", 6, true).expect("created");
    assert_eq!(teacher.patch(&fake, 0, b"MZ\x90\0\0\0").0, 204);
    let (status, _, page) = teacher.lesson(&[
        ("title", "练习"),
        ("lang", "zh"),
        ("uploads", fake.rsplit('/').next().expect("id")),
    ]);
    assert_eq!(status, 415, "{page}");
    assert!(page.contains("not a .pdf file inside"), "{page}");
    // Nothing went into the classroom.
    let (_, home) = web.page("/", "en");
    assert!(!home.contains("~school"), "{home}");

    // Without scripts: one multipart form with the file; a real PDF is taken.
    let boundary = "shanlu-form-boundary";
    let mut body = Vec::new();
    for (name, value) in [
        ("csrf", teacher.csrf.as_str()),
        ("title", "ꆈꌠ 练习纸"),
        ("lang", "ii"),
    ] {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .expect("field");
    }
    write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"sheet.pdf\"\r\nContent-Type: application/pdf\r\n\r\n").expect("file head");
    body.extend_from_slice(b"%PDF-1.4\n% a worksheet\n");
    write!(body, "\r\n--{boundary}--\r\n").expect("end");
    let (status, _, page) = teacher.request(
        "POST",
        "/teach/lessons",
        &format!("Content-Type: multipart/form-data; boundary={boundary}\r\n"),
        &body,
    );
    assert_eq!(status, 303, "{}", String::from_utf8_lossy(&page));
    let (_, course) = web.page("/course/~school", "ii");
    assert!(
        course.contains(r#"<span lang="ii">ꆈꌠ 练习纸</span>"#),
        "{course}"
    );
}

#[test]
fn issue_17_a_teacher_uploads_through_the_real_page_in_chromium() {
    use shanlu_tests::webdriver::{Browser, wait_until};
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let (_origin, _served, edge, web) = school(64);
    let files = edge.dir.path().join("from-the-phone");
    std::fs::create_dir_all(&files).expect("folder");
    // Three pieces of the page's 8 MiB uploads, and subtitles beside it.
    let clip = files.join("elder-reading.mp4");
    std::fs::write(&clip, video(20 << 20, 5)).expect("video");
    let subtitles = files.join("elder-reading.zh.vtt");
    std::fs::write(
        &subtitles,
        "WEBVTT\n\n00:00.000 --> 00:02.000\n阿普讲的故事\n",
    )
    .expect("vtt");

    let browser = Browser::start();
    let url = |path: &str| format!("http://{}{path}", web.addr);
    browser.goto(&url("/teach"));
    browser
        .find("#teach-login input[name=name]")
        .send_keys("王老师");
    browser
        .find("#teach-login input[name=password]")
        .send_keys(PASSWORD);
    browser.find("#teach-login button[type=submit]").click();
    browser.wait_for("#upload-form", Duration::from_secs(10));

    browser
        .find("#upload-form input[name=title]")
        .send_keys("阿普讲故事");
    browser.find("#upload-files").send_keys(&format!(
        "{}\n{}",
        clip.to_str().expect("utf-8"),
        subtitles.to_str().expect("utf-8")
    ));
    browser.find("#upload-form button[type=submit]").click();
    let added = wait_until(Duration::from_secs(60), || {
        browser.url().contains("/teach?added=")
    });
    assert!(
        added,
        "the page never finished: {} {}",
        browser.url(),
        browser.find("#upload-state").text()
    );
    let lesson = browser.url().rsplit('=').next().expect("id").to_owned();
    // The page uploaded over tus, in pieces: three appends of the video's
    // 8 MiB pieces and one of the subtitles, and no other request to them.
    let (_, _, metrics) = web.get("/metrics", "");
    let metrics = String::from_utf8(metrics).expect("utf-8");
    assert!(
        metrics.contains(r#"route="/teach/uploads/{id}",status="204"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/teach/uploads",status="201"} 2"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"route="/teach/uploads/{id}",status="200""#),
        "{metrics}"
    );

    // In the classroom, with the subtitles on its player.
    browser.goto(&url(&format!("/course/~school/{lesson}")));
    assert_eq!(browser.find("h1").text(), "阿普讲故事");
    let track = browser.find("video track");
    assert_eq!(track.attr("srclang").as_deref(), Some("zh"));
    let hits = web.json(&format!("/api/v1/search?q={}", url_escape("阿普")));
    assert_eq!(hits[0]["lesson"], lesson.as_str(), "{hits}");
}

/// A zip of `entries`, deflated.
fn zipped(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).expect("start");
        zip.write_all(bytes).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// Issue 17: an HTML lesson uploaded as a .zip of its folder becomes a
/// lesson opening at its index.html; its files run in a sandbox, not as
/// the classroom (so its scripts cannot act with a teacher's login); an
/// archive with a path out of its folder is refused and keeps the upload.
#[test]
fn issue_17_an_html_folder_as_a_zip_becomes_a_sandboxed_lesson() {
    let (_origin, _served, _edge, web) = school(8);
    let teacher = login(web.addr, "阿依老师", PASSWORD).expect("logged in");
    let upload = |name: &str, bytes: &[u8]| {
        let path = teacher
            .create(name, bytes.len() as u64, true)
            .expect("created");
        let (status, answer) = teacher.patch(&path, 0, bytes);
        assert_eq!(status, 204, "{answer}");
        path.rsplit('/').next().expect("id").to_owned()
    };
    let page = "<!doctype html><h1>ꆈꌠ</h1><img src=img/moon.png><script src=app.js></script>";
    let good = upload(
        "彝文.zip",
        &zipped(&[
            ("彝文/index.html", page.as_bytes()),
            ("彝文/img/moon.png", b"\x89PNG\r\n\x1a\nmoon"),
            ("彝文/app.js", b"document.title = 'ok';"),
            (
                "彝文/subs.vtt",
                "WEBVTT\n\n00:00.000 --> 00:01.000\nꆈꌠ\n".as_bytes(),
            ),
        ]),
    );
    let bad = upload(
        "bad.zip",
        &zipped(&[("index.html", b"ok"), ("../../teachers.toml", b"x")]),
    );

    let (status, _, body) = teacher.lesson(&[("title", "彝文"), ("lang", "ii"), ("uploads", &bad)]);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("`..`"), "{body}");
    // Refused, and the upload kept for another try.
    assert!(teacher.offset(&format!("/teach/uploads/{bad}")) > 0);

    let (status, head, body) =
        teacher.lesson(&[("title", "彝文"), ("lang", "ii"), ("uploads", &good)]);
    assert_eq!(status, 303, "{body}");
    let added = header(&head, "location")
        .expect("location")
        .trim_start_matches("/teach?added=")
        .to_owned();
    let (status, lesson) = web.page(&format!("/course/~school/{added}"), "zh");
    assert_eq!(status, 200);
    assert!(lesson.contains("index.html"), "{lesson}");
    for (file, expect) in [
        ("index.html", page.as_bytes()),
        ("img/moon.png", b"\x89PNG\r\n\x1a\nmoon".as_slice()),
    ] {
        let (status, head, body) = web.get(&format!("/courses/~school/{added}/{file}"), "");
        assert_eq!(status, 200, "{file}: {head}");
        let policy = header(&head, "content-security-policy").unwrap_or_default();
        assert!(
            policy.contains("sandbox") && !policy.contains("allow-same-origin"),
            "{file}: {head}"
        );
        if file != "index.html" {
            assert_eq!(body, expect, "{file}");
        } else {
            assert!(String::from_utf8_lossy(&body).contains("ꆈꌠ"), "{file}");
        }
    }
    // The sandboxed page (an origin of its own) may load its subtitles and
    // the classroom's fonts, and read nothing else of hers.
    let cors = |path: &str| {
        let (status, head, _) = web.get(path, "");
        assert_eq!(status, 200, "{path}: {head}");
        header(&head, "access-control-allow-origin").map(str::to_owned)
    };
    assert_eq!(
        cors(&format!("/courses/~school/{added}/subs.vtt")).as_deref(),
        Some("*")
    );
    assert_eq!(
        cors("/static/fonts/NotoSansYi-Regular.ttf").as_deref(),
        Some("*")
    );
    assert_eq!(
        cors(&format!("/courses/~school/{added}/img/moon.png")),
        None
    );
    assert_eq!(cors(&format!("/courses/~school/{added}/index.html")), None);
    // Opened by its hash, the page runs sandboxed too.
    let hash = blake3::hash(page.as_bytes()).to_hex().to_string();
    let (status, head, _) = web.get(&format!("/files/{hash}"), "");
    assert_eq!(status, 200, "{head}");
    assert!(
        header(&head, "content-security-policy").is_some_and(|p| p.contains("sandbox")),
        "{head}"
    );
    // The teachers' own pages are not sandboxed.
    let (status, head, _) = web.get("/teach", "");
    assert_eq!(status, 200);
    assert!(
        !header(&head, "content-security-policy")
            .unwrap_or_default()
            .contains("sandbox allow-scripts"),
        "{head}"
    );
}

/// What a sandboxed lesson page says once its fonts and subtitles settled.
const SANDBOX_PROBE: &str = r#"
const done = arguments[arguments.length - 1];
const track = document.querySelector('track');
const settled = () => track.readyState >= 2;
const report = () => document.fonts.ready.then(() => done({
  origin: window.origin,
  faces: [...document.fonts]
    .filter(f => f.family.replace(/"/g, '') === 'shanlu-yi')
    .map(f => f.status),
  track: track.readyState,
  cues: track.track.cues ? track.track.cues.length : 0,
}));
if (settled()) { report(); } else {
  track.addEventListener('load', report);
  track.addEventListener('error', report);
}
"#;

/// In Chromium on a device without Yi fonts: a teacher's HTML lesson runs
/// as an origin of its own (the sandbox), and still draws its Yi with the
/// classroom's font and shows its subtitles, which it fetches as another
/// site's.
#[test]
fn issue_17_a_sandboxed_html_lesson_loads_the_fonts_and_subtitles_in_chromium() {
    use shanlu_tests::webdriver::Browser;
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let (_origin, _served, edge, web) = school(8);
    let teacher = login(web.addr, "阿依老师", PASSWORD).expect("logged in");
    let page = "<!doctype html><html><head><meta charset=utf-8></head><body>\
                <h1 lang=ii>ꆈꌠ ꋍ</h1>\
                <video controls crossorigin>\
                <track default kind=subtitles srclang=ii src=subs.vtt></video>\
                </body></html>";
    let bytes = zipped(&[
        ("index.html", page.as_bytes()),
        (
            "subs.vtt",
            "WEBVTT\n\n00:00.000 --> 00:01.000\nꆈꌠ\n".as_bytes(),
        ),
    ]);
    let upload = teacher
        .create("yi.zip", bytes.len() as u64, true)
        .expect("created");
    let (status, answer) = teacher.patch(&upload, 0, &bytes);
    assert_eq!(status, 204, "{answer}");
    let id = upload.rsplit('/').next().expect("id");
    let (status, head, body) =
        teacher.lesson(&[("title", "彝文"), ("lang", "ii"), ("uploads", id)]);
    assert_eq!(status, 303, "{body}");
    let added = header(&head, "location")
        .expect("location")
        .trim_start_matches("/teach?added=")
        .to_owned();

    let config = crate::lesson_fonts::without_yi_and_tibetan_fonts(edge.dir.path());
    let config = config.to_str().expect("utf-8 path");
    let browser = Browser::start_with_env(1280, 900, &[("FONTCONFIG_FILE", config)]);
    browser.set_script_timeout(Duration::from_secs(30));
    browser.goto(&format!(
        "http://{}/courses/~school/{added}/index.html",
        web.addr
    ));
    let probe = browser.execute_async(SANDBOX_PROBE, vec![]);
    assert_eq!(probe["origin"], "null", "the page is sandboxed: {probe}");
    assert_eq!(
        probe["faces"],
        serde_json::json!(["loaded"]),
        "the classroom's Yi font loads in the sandbox: {probe}"
    );
    assert_eq!(probe["track"], 2, "the subtitles load: {probe}");
    assert_eq!(probe["cues"], 1, "{probe}");
}
