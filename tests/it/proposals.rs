//! Issue 17: a teacher proposes her lessons to the bureau. They travel up
//! with the school's sync, sending only the chunks the origin lacks, and
//! wait in the review queue on the dashboard; an administrator previews,
//! edits and approves one (published as a course every school receives)
//! and declines the other with a note the teacher then sees.

use std::net::SocketAddr;
use std::time::Duration;

use shanlu_tests::{
    TestOrigin, header, http_request_with_body, run_ok, shanlu, url_escape, wait_until,
};

use crate::teachers::{PASSWORD, Teacher, form, login, teachers_edge, video};

/// Publishes a course "counting" whose one lesson is `video`.
fn publish_video(origin: &TestOrigin, video: &[u8]) {
    let src = origin.dir.path().join("counting");
    std::fs::create_dir_all(src.join("01-intro")).expect("course folder");
    std::fs::write(src.join("01-intro").join("intro.mp4"), video).expect("video");
    origin.publish(&src);
}

/// The origin served with its dashboard, and an administrator: the served
/// origin, the dashboard's address and the admin token.
fn bureau(origin: &TestOrigin) -> (shanlu_tests::ServedOrigin, SocketAddr, String) {
    let token = crate::remote_publish::add_admin(origin, "review-desk");
    let served = origin.serve_with(
        shanlu(),
        "127.0.0.1:0",
        "127.0.0.1",
        &["--admin", "127.0.0.1:0"],
    );
    let admin = served.admin.expect("the dashboard's address");
    (served, admin, token)
}

/// Uploads `files` (name, bytes) and makes a lesson of them; its id.
fn lesson_of(teacher: &Teacher, title: &str, files: &[(&str, &[u8])]) -> String {
    let mut ids = Vec::new();
    for (name, bytes) in files {
        let upload = teacher
            .create(name, bytes.len() as u64, true)
            .expect("upload created");
        let (status, answer) = teacher.patch(&upload, 0, bytes);
        assert_eq!(status, 204, "{answer}");
        ids.push(upload.rsplit('/').next().expect("id").to_owned());
    }
    let uploads = ids.join(",");
    let (status, head, page) = teacher.lesson(&[
        ("title", title),
        ("lang", "zh"),
        ("grade", "三年级"),
        ("subject", "数学"),
        ("uploads", &uploads),
    ]);
    assert_eq!(status, 303, "{page}");
    header(&head, "location")
        .expect("location")
        .trim_start_matches("/teach?added=")
        .to_owned()
}

/// Presses "Propose to the bureau" for lesson `id`.
fn propose(teacher: &Teacher, id: &str) {
    let (status, _, body) = teacher.request(
        "POST",
        &format!("/teach/lessons/{id}"),
        "Content-Type: application/x-www-form-urlencoded\r\n",
        form(&[("csrf", &teacher.csrf), ("action", "propose")]).as_bytes(),
    );
    assert_eq!(status, 303, "{}", String::from_utf8_lossy(&body));
}

/// The `/teach` page's proposal block of lesson `id`.
fn proposal_of(teacher: &Teacher, id: &str) -> String {
    let (_, _, page) = teacher.request("GET", "/teach", "", b"");
    let page = String::from_utf8(page).expect("utf-8");
    let at = page
        .find(&format!(r#"data-lesson="{id}""#))
        .unwrap_or_else(|| panic!("lesson {id} on /teach: {page}"));
    let rest = &page[at..];
    let block = rest
        .find(r#"class="proposal""#)
        .map(|from| &rest[from..])
        .expect("a proposal block");
    block[..block.find("</li>").unwrap_or(block.len())].to_owned()
}

fn post_form(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> (u16, String, String) {
    let (status, head, body) = http_request_with_body(
        addr,
        "POST",
        path,
        &format!("Content-Type: application/x-www-form-urlencoded\r\nCookie: {cookie}\r\n"),
        body.as_bytes(),
    );
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

fn get(addr: SocketAddr, path: &str, cookie: &str) -> (u16, Vec<u8>) {
    let (status, _, body) =
        http_request_with_body(addr, "GET", path, &format!("Cookie: {cookie}\r\n"), b"");
    (status, body)
}

#[test]
fn issue_17_a_proposed_lesson_is_reviewed_and_a_second_school_receives_it() {
    // The bureau published a course with a video the teacher will reuse.
    let origin = TestOrigin::init();
    let shared = video(1_500_000, 5);
    publish_video(&origin, &shared);
    let (served, admin, admin_token) = bureau(&origin);

    // School A: the teacher makes two lessons and proposes both.
    let (school_a, web_a) = teachers_edge(&origin, &served, "liangshan-1", 64, &[]);
    let teacher = login(web_a.addr, "阿依老师", PASSWORD).expect("logged in");
    let new = video(700_000, 99);
    let counting = lesson_of(
        &teacher,
        "数到二十",
        &[("intro.mp4", &shared), ("practice.mp4", &new)],
    );
    let other = lesson_of(&teacher, "草稿", &[("draft.mp4", &video(300_000, 7))]);
    assert!(proposal_of(&teacher, &counting).contains(r#"data-proposal="none""#));
    for id in [&counting, &other] {
        propose(&teacher, id);
        assert!(proposal_of(&teacher, id).contains(r#"data-proposal="queued""#));
    }

    // The next sync carries both up; of the first, only the new video's
    // bytes travel (the origin held every chunk of the other file).
    run_ok(&["edge", "sync-now", "--data", &school_a.data_str()]);
    let mut block = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            block = proposal_of(&teacher, &counting);
            block.contains(r#"data-proposal="sent""#)
                && proposal_of(&teacher, &other).contains(r#"data-proposal="sent""#)
        }),
        "{block}"
    );
    assert!(
        block.contains(&format!(r#"data-sent="{}""#, new.len())),
        "only the {} new bytes were to travel: {block}",
        new.len()
    );

    // Renamed while with the bureau: it goes up again, under its new title.
    let (status, _, _) = teacher.request(
        "POST",
        &format!("/teach/lessons/{counting}"),
        "Content-Type: application/x-www-form-urlencoded\r\n",
        form(&[
            ("csrf", &teacher.csrf),
            ("action", "retitle"),
            ("title", "数到二十（新版）"),
        ])
        .as_bytes(),
    );
    assert_eq!(status, 303);
    assert!(proposal_of(&teacher, &counting).contains(r#"data-proposal="queued""#));
    run_ok(&["edge", "sync-now", "--data", &school_a.data_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            block = proposal_of(&teacher, &counting);
            block.contains(r#"data-proposal="sent""#)
        }),
        "{block}"
    );

    // The review queue on the dashboard.
    let cookie = admin_cookie(admin, &admin_token);
    let (status, queue) = get(admin, "/review?lang=zh", &cookie);
    let queue = String::from_utf8(queue).expect("utf-8");
    assert_eq!(status, 200);
    assert!(
        queue.contains("数到二十（新版）")
            && queue.contains("草稿")
            && queue.contains("liangshan-1"),
        "{queue}"
    );
    let item = format!("/review/liangshan-1/{counting}");
    let (status, page) = get(admin, &item, &cookie);
    let page = String::from_utf8(page).expect("utf-8");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("practice.mp4") && page.contains("阿依老师"),
        "{page}"
    );
    let at = page.find(r#"name="csrf" value=""#).expect("csrf") + r#"name="csrf" value=""#.len();
    let csrf = page[at..at + 64].to_owned();
    // The preview plays the very bytes the teacher uploaded.
    let (status, preview) = get(admin, &format!("{item}/files/1"), &cookie);
    assert_eq!(status, 200);
    assert!(preview == new, "the preview differs from the upload");

    // Refused without the form's token; approved with an edited title.
    let approve = |csrf: &str| {
        post_form(
            admin,
            &format!("{item}/approve"),
            &cookie,
            &form(&[
                ("csrf", csrf),
                ("course", "liangshan-counting"),
                ("title", "一起数到二十"),
                ("grade", "三年级"),
                ("subject", "数学"),
            ]),
        )
    };
    assert_eq!(approve("not-the-token").0, 403);
    let (status, _, body) = approve(&csrf);
    assert_eq!(status, 303, "{body}");
    let (status, _, body) = post_form(
        admin,
        &format!("/review/liangshan-1/{other}/decline"),
        &cookie,
        &form(&[("csrf", &csrf), ("note", "请加上字幕再提交")]),
    );
    assert_eq!(status, 303, "{body}");
    // Decided once: approving the declined one is refused.
    let (status, _, _) = post_form(
        admin,
        &format!("/review/liangshan-1/{other}/approve"),
        &cookie,
        &form(&[("csrf", &csrf), ("course", "x"), ("title", "x")]),
    );
    assert_eq!(status, 422);

    // A second school receives the approved lesson by a normal sync.
    let token_b = origin.add_edge("ganzi-1");
    let school_b = shanlu_tests::TestEdge::init(&origin, &served, served.quic, &token_b, "all");
    let report = school_b.sync_ok();
    assert_eq!(report["complete"], true, "{report}");
    let web_b = school_b.run();
    let (status, course) = web_b.page("/course/liangshan-counting", "zh");
    assert_eq!(status, 200, "{course}");
    assert!(course.contains("一起数到二十"), "{course}");
    let (status, _, served_bytes) = web_b.get(
        &format!(
            "/courses/liangshan-counting/lesson/{}",
            url_escape("practice.mp4")
        ),
        "",
    );
    assert_eq!(status, 200);
    assert!(served_bytes == new, "school B serves other bytes");

    // School A hears both verdicts at its next sync; the teacher sees them.
    run_ok(&["edge", "sync-now", "--data", &school_a.data_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            block = proposal_of(&teacher, &other);
            proposal_of(&teacher, &counting).contains(r#"data-proposal="approved""#)
                && block.contains(r#"data-proposal="declined""#)
        }),
        "{block}"
    );
    assert!(block.contains("请加上字幕再提交"), "{block}");
    // A declined lesson may be proposed again; an approved one is not.
    assert!(block.contains(r#"value="propose""#), "{block}");
    assert!(!proposal_of(&teacher, &counting).contains(r#"value="propose""#));
    // Proposed again after the decline, it waits for review again.
    propose(&teacher, &other);
    run_ok(&["edge", "sync-now", "--data", &school_a.data_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            block = proposal_of(&teacher, &other);
            block.contains(r#"data-proposal="sent""#)
        }),
        "{block}"
    );
    let (_, page) = get(admin, &format!("/review/liangshan-1/{other}"), &cookie);
    let page = String::from_utf8(page).expect("utf-8");
    assert!(page.contains(r#"id="approve""#), "{page}");
    let log = std::fs::read_to_string(origin.data().join("admin.log")).expect("admin.log");
    assert!(
        log.contains("review-desk") && log.contains("approve") && log.contains("decline"),
        "{log}"
    );
}

/// Declines the proposal at `item` (whose page is `page`) with `note`.
fn decline(admin: SocketAddr, cookie: &str, item: &str, page: &str, note: &str) {
    let at = page.find(r#"name="csrf" value=""#).expect("csrf") + r#"name="csrf" value=""#.len();
    let csrf = &page[at..at + 64];
    let (status, _, body) = post_form(
        admin,
        &format!("{item}/decline"),
        cookie,
        &form(&[("csrf", csrf), ("note", note)]),
    );
    assert_eq!(status, 303, "{body}");
}

/// Logs in to the dashboard at `admin` with `token`; the session cookie.
fn admin_cookie(admin: SocketAddr, token: &str) -> String {
    let (status, head, body) = post_form(admin, "/login", "", &format!("token={token}"));
    assert_eq!(status, 303, "{body}");
    header(&head, "set-cookie")
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned()
}

/// The chunk bytes and chunks sent again that the origin logged as
/// received from edge `edge`'s proposals.
fn received_from(log: &std::path::Path, edge: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(log).expect("origin log");
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    text.lines()
        .filter(|l| {
            l.contains("upload received chunks") && l.contains(&format!("admin=edge:{edge}"))
        })
        .fold((0, 0), |(bytes, again), line| {
            (bytes + field(line, "bytes"), again + field(line, "again"))
        })
}

/// Runs a pass of `edge` capped at 500 KB/s and kills it once the first
/// piece of a proposal reached the server logging to `log` (from `name`);
/// whether one did.
fn cut_off_pass(edge: &shanlu_tests::TestEdge, log: &std::path::Path, name: &str) -> bool {
    let mut slow = shanlu()
        .env("RUST_LOG", "warn")
        .args([
            "edge",
            "sync",
            "--data",
            &edge.data_str(),
            "--max-rate",
            "500KB",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("edge sync");
    let arrived = wait_until(Duration::from_secs(60), || received_from(log, name).0 > 0);
    let _ = slow.kill();
    let _ = slow.wait();
    arrived
}

/// A proposal cut off mid-upload (the edge killed) goes on at the next
/// pass with the chunks still missing only: nothing is sent twice.
#[test]
fn issue_17_a_proposal_cut_off_mid_upload_sends_only_the_rest_next_pass() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("counting");
    std::fs::create_dir_all(src.join("01-intro")).expect("course folder");
    std::fs::write(src.join("01-intro").join("intro.mp4"), video(200_000, 5)).expect("video");
    origin.publish(&src);
    let served = origin.serve();
    // The running edge starts no pass of its own: this test's passes carry
    // the proposal.
    let window = shanlu_tests::far_window();
    let (school, web) = teachers_edge(&origin, &served, "liangshan-2", 64, &["--window", &window]);
    let teacher = login(web.addr, "阿依老师", PASSWORD).expect("logged in");
    let new = video(3_000_000, 41);
    let id = lesson_of(&teacher, "彝文歌谣", &[("songs.mp4", &new)]);
    propose(&teacher, &id);
    drop(web);

    // A slow pass, killed once the first piece of the lesson has arrived.
    let arrived = cut_off_pass(&school, &served.log, "liangshan-2");
    assert!(arrived, "no chunk of the proposal reached the origin");
    let (first, _) = received_from(&served.log, "liangshan-2");
    assert!(
        first < new.len() as u64,
        "the pass was to be cut off before the whole lesson arrived ({first} bytes)"
    );
    let waiting = server::review::entries(&origin.data()).expect("queue");
    assert!(waiting.is_empty(), "{waiting:?}");

    // The next pass finishes it, sending each chunk once.
    school.sync_ok();
    let (bytes, again) = received_from(&served.log, "liangshan-2");
    assert_eq!(again, 0, "chunks sent twice");
    assert_eq!(bytes, new.len() as u64);
    let queued = server::review::entries(&origin.data()).expect("queue");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (queued[0].edge.as_str(), queued[0].id.as_str()),
        ("liangshan-2", id.as_str())
    );
}

/// A school that syncs through a county edge proposes through it: the
/// county keeps the proposal, forwards it at its own pass under the
/// school's name, and hands the bureau's note back down.
#[test]
fn issue_17_a_school_below_a_county_edge_proposes_through_it() {
    let origin = TestOrigin::init();
    crate::county::course(&origin, "c", 100_000, 1717);
    let (served, admin, admin_token) = bureau(&origin);
    let (county, _county_run, serving) = crate::county::county(&origin, &served, "all", &[]);
    let token = county.add_edge("village-1");
    let village = shanlu_tests::TestEdge::init_below(&origin, &serving, &token, "all", &[]);
    crate::teachers::with_teachers(&village, 8);
    let window = shanlu_tests::far_window();
    let web = village.run_with(&["--window", &window], &[]);
    let teacher = login(web.addr, "扎西老师", PASSWORD).expect("logged in");
    let alphabet = video(200_000, 3);
    let id = lesson_of(&teacher, "藏文字母", &[("alphabet.mp4", &alphabet)]);
    propose(&teacher, &id);

    // The village's pass leaves it with the county edge.
    let (code, report, stderr) = village.sync();
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let block = proposal_of(&teacher, &id);
    assert!(block.contains(r#"data-proposal="sent""#), "{block}");

    // The county's next pass forwards it; the bureau sees it under the
    // village's name below the county.
    let cookie = admin_cookie(admin, &admin_token);
    let item = format!("/review/{}/{id}", url_escape("county/village-1"));
    run_ok(&["edge", "sync-now", "--data", &county.data_str()]);
    let mut page = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (status, body) = get(admin, &item, &cookie);
            page = String::from_utf8_lossy(&body).into_owned();
            status == 200
        }),
        "{page}"
    );
    assert!(
        page.contains("藏文字母") && page.contains("扎西老师"),
        "{page}"
    );
    let (status, preview) = get(admin, &format!("{item}/files/0"), &cookie);
    assert_eq!(status, 200);
    assert!(preview == alphabet, "the preview differs from the upload");

    // Declined; the note goes down through the county to the teacher.
    decline(admin, &cookie, &item, &page, "请配上藏文字幕");
    run_ok(&["edge", "sync-now", "--data", &county.data_str()]);
    let mut block = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (code, _, _) = village.sync();
            block = proposal_of(&teacher, &id);
            code == 0 && block.contains(r#"data-proposal="declined""#)
        }),
        "{block}"
    );
    assert!(block.contains("请配上藏文字幕"), "{block}");
}

/// A school whose only link to the bureau is a USB stick: its proposal
/// travels on the have list (without the chunks of published files), is
/// filed by `bundle create --for` on the origin, and the bureau's answers
/// come back on the bundle: first "with the bureau", then the decline and
/// its note. The answers are sealed for that school alone.
#[test]
fn issue_17_proposals_travel_on_usb_sticks_and_their_answers_come_back() {
    use crate::edge_reports::{bundle_for, have_list, import_stick};

    let origin = TestOrigin::init();
    let shared = video(900_000, 15);
    publish_video(&origin, &shared);
    let (served, admin, admin_token) = bureau(&origin);
    // The school synced once (it knows its name and holds the course),
    // then its link went down: its edge starts no pass of its own.
    let token = origin.add_edge("ganzi-stick");
    let school = shanlu_tests::TestEdge::init(&origin, &served, served.quic, &token, "all");
    school.sync_ok();
    crate::teachers::with_teachers(&school, 64);
    let window = shanlu_tests::far_window();
    let run = || school.run_with(&["--window", &window], &[]);
    let mut web = run();
    let mut teacher = login(web.addr, "卓玛老师", PASSWORD).expect("logged in");
    let new = video(600_000, 77);
    let id = lesson_of(
        &teacher,
        "藏文字母",
        &[("intro.mp4", &shared), ("letters.mp4", &new)],
    );
    propose(&teacher, &id);

    // The have list carries the lesson with the new file's chunks only.
    let sticks = tempfile::tempdir().expect("tempdir");
    let have = sticks.path().join("have.bin");
    have_list(&school, &have);
    let len = std::fs::metadata(&have).expect("have list").len();
    assert!(
        len >= new.len() as u64 && len < new.len() as u64 + 200_000,
        "a have list of {len} bytes for {} new bytes (the published video is not carried)",
        new.len()
    );
    // Sealed by the school: a have list changed on the way files nothing.
    let stick = sticks.path().join("stick-1");
    let bytes = std::fs::read(&have).expect("have list");
    let (name, forged) = ("卓玛老师".as_bytes(), "某某老师".as_bytes());
    let at = (bytes.windows(name.len()).position(|w| w == name)).expect("the teacher's name");
    let mut changed = bytes.clone();
    changed[at..at + name.len()].copy_from_slice(forged);
    let forged_have = sticks.path().join("forged.bin");
    std::fs::write(&forged_have, &changed).expect("forged have list");
    let out = bundle_for(&origin.data(), &forged_have, &stick);
    assert!(!out.contains("filed for review"), "{out}");
    let out = bundle_for(&origin.data(), &have, &stick);
    assert!(out.contains("1 filed for review"), "{out}");

    // It waits on the dashboard like one sent over the network.
    let cookie = admin_cookie(admin, &admin_token);
    let item = format!("/review/ganzi-stick/{id}");
    let (status, page) = get(admin, &item, &cookie);
    let page = String::from_utf8(page).expect("utf-8");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("藏文字母") && page.contains("卓玛老师"),
        "{page}"
    );
    let (status, preview) = get(admin, &format!("{item}/files/1"), &cookie);
    assert_eq!(status, 200);
    assert!(preview == new, "the preview differs from the upload");

    // Back at school, the bundle says it is with the bureau, and which
    // bytes the stick carried for it.
    drop(web);
    let out = import_stick(&school, &stick);
    web = run();
    teacher = login(web.addr, "卓玛老师", PASSWORD).expect("logged in");
    assert!(out.contains("1 now with the bureau"), "{out}");
    let block = proposal_of(&teacher, &id);
    assert!(
        block.contains(r#"data-proposal="sent""#)
            && block.contains(&format!(r#"data-sent="{}""#, new.len())),
        "{block}"
    );

    // Declined on the dashboard; the next stick carries the note back.
    decline(admin, &cookie, &item, &page, "请加上朗读录音");
    have_list(&school, &have);
    assert!(
        std::fs::metadata(&have).expect("have list").len() < 100_000,
        "a proposal sent before is only asked about"
    );
    let stick = sticks.path().join("stick-2");
    let out = bundle_for(&origin.data(), &have, &stick);
    assert!(out.contains("1 asked about"), "{out}");

    // The answers are sealed for this school: changed on the way, they
    // are not applied.
    let answers = stick.join("shanlu-bundle").join("proposals.json");
    let sealed = std::fs::read_to_string(&answers).expect("the bundle's answers");
    assert!(sealed.contains("请加上朗读录音"), "{sealed}");
    std::fs::write(&answers, sealed.replace("请加上朗读录音", "内容很好可以")).expect("changed");
    drop(web);
    let out = import_stick(&school, &stick);
    web = run();
    teacher = login(web.addr, "卓玛老师", PASSWORD).expect("logged in");
    assert!(!out.contains("decided"), "{out}");
    assert!(proposal_of(&teacher, &id).contains(r#"data-proposal="sent""#));
    std::fs::write(&answers, &sealed).expect("restored");
    drop(web);
    let out = import_stick(&school, &stick);
    web = run();
    teacher = login(web.addr, "卓玛老师", PASSWORD).expect("logged in");
    assert!(out.contains("1 decided"), "{out}");
    let block = proposal_of(&teacher, &id);
    assert!(
        block.contains(r#"data-proposal="declined""#) && block.contains("请加上朗读录音"),
        "{block}"
    );
}

/// Runs one pass of the running county edge and waits for its end.
fn county_pass(county: &shanlu_tests::TestEdge, running: &shanlu_tests::RunningEdge) {
    let before = running.json("/api/v1/status")["last_sync"].clone();
    run_ok(&["edge", "sync-now", "--data", &county.data_str()]);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let status = running.json("/api/v1/status");
            status["live"]["syncing"] == false && status["last_sync"] != before
        }),
        "the county edge's pass did not end"
    );
}

/// A proposal cut off on its way to the county edge keeps what arrived
/// through the county's restart and its own pass's collection: the
/// school's next pass sends only the rest, and the county forwards it whole.
#[test]
fn issue_17_a_proposal_cut_off_on_its_way_to_a_county_edge_goes_on_after_its_passes() {
    let origin = TestOrigin::init();
    crate::county::course(&origin, "c", 100_000, 1718);
    let served = origin.serve();
    let (county, county_run, serving) = crate::county::county(&origin, &served, "all", &[]);
    let county_log = county.dir.path().join("county.log");
    let token = county.add_edge("village-2");
    let village = shanlu_tests::TestEdge::init_below(&origin, &serving, &token, "all", &[]);
    crate::teachers::with_teachers(&village, 8);
    let window = shanlu_tests::far_window();
    let web = village.run_with(&["--window", &window], &[]);
    let teacher = login(web.addr, "扎西老师", PASSWORD).expect("logged in");
    let new = video(3_000_000, 43);
    let id = lesson_of(&teacher, "牧区童谣", &[("songs.mp4", &new)]);
    propose(&teacher, &id);
    drop(web);

    // A slow pass, killed once the first piece reached the county edge.
    let arrived = cut_off_pass(&village, &county_log, "village-2");
    assert!(arrived, "no chunk of the proposal reached the county edge");
    let (first, _) = received_from(&county_log, "village-2");
    assert!(first < new.len() as u64, "cut off too late ({first} bytes)");

    // The county edge loses power (its upload writer had a second to
    // record what arrived) and starts again on the same address; its
    // first pass collects what its catalog does not reach, but keeps the
    // upload in progress.
    std::thread::sleep(Duration::from_secs(2));
    drop(county_run);
    let county_log_2 = county.dir.path().join("county-2.log");
    let (county_run, _) = county.run_serving_in(
        shanlu(),
        &serving.quic.to_string(),
        &[],
        &[("RUST_LOG", "info")],
        &county_log_2,
    );
    assert!(
        wait_until(Duration::from_secs(60), || {
            let status = county_run.json("/api/v1/status");
            status["live"]["syncing"] == false && !status["last_sync"].is_null()
        }),
        "the county edge's first pass did not end"
    );
    village.sync_ok();
    let (before, again_before) = received_from(&county_log, "village-2");
    let (after, again) = received_from(&county_log_2, "village-2");
    assert_eq!(again + again_before, 0, "chunks sent twice");
    assert_eq!(
        before + after,
        new.len() as u64,
        "only the rest was to be sent"
    );

    // Whole at the county; its next pass forwards it.
    assert!(
        server::review::entries(&origin.data())
            .expect("queue")
            .is_empty()
    );
    county_pass(&county, &county_run);
    let queued = server::review::entries(&origin.data()).expect("queue");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        (
            queued[0].edge.as_str(),
            queued[0].id.as_str(),
            queued[0].size
        ),
        ("county/village-2", id.as_str(), new.len() as u64)
    );
}

/// A school below a county edge with only a stick between them: its
/// proposal goes on the have list to the county edge, which files it with
/// its children's and forwards it at its pass; the bureau's note comes
/// back on the county's next bundle.
#[test]
fn issue_17_a_school_below_a_county_edge_proposes_on_a_stick() {
    use crate::edge_reports::{bundle_for, have_list, import_stick};

    let origin = TestOrigin::init();
    crate::county::course(&origin, "c", 100_000, 1719);
    let served = origin.serve();
    let (county, county_run, serving) = crate::county::county(&origin, &served, "all", &[]);
    let token = county.add_edge("village-3");
    let village = shanlu_tests::TestEdge::init_below(&origin, &serving, &token, "all", &[]);
    village.sync_ok();
    crate::teachers::with_teachers(&village, 8);
    let window = shanlu_tests::far_window();
    let web = village.run_with(&["--window", &window], &[]);
    let teacher = login(web.addr, "阿呷老师", PASSWORD).expect("logged in");
    let id = lesson_of(
        &teacher,
        "彝文数字",
        &[("numbers.mp4", &video(300_000, 19))],
    );
    propose(&teacher, &id);
    drop(web);

    let sticks = tempfile::tempdir().expect("tempdir");
    let have = sticks.path().join("have.bin");
    have_list(&village, &have);
    let out = bundle_for(&county.data(), &have, &sticks.path().join("stick-1"));
    assert!(
        out.contains("1 filed for review") && out.contains("forwards them"),
        "{out}"
    );
    county_pass(&county, &county_run);
    let queued = server::review::entries(&origin.data()).expect("queue");
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].edge, "county/village-3");
    server::review::decline(
        &origin.data(),
        "review-desk",
        "county/village-3",
        &id,
        "请再录一遍",
    )
    .expect("declined");
    county_pass(&county, &county_run);

    // The first stick's answers say it went up; the next stick brings the note.
    let out = import_stick(&village, &sticks.path().join("stick-1"));
    assert!(out.contains("1 now with the bureau"), "{out}");
    have_list(&village, &have);
    let stick = sticks.path().join("stick-2");
    let out = bundle_for(&county.data(), &have, &stick);
    assert!(out.contains("1 asked about"), "{out}");
    let out = import_stick(&village, &stick);
    assert!(out.contains("1 decided"), "{out}");
    let web = village.run_with(&["--window", &window], &[]);
    let teacher = login(web.addr, "阿呷老师", PASSWORD).expect("logged in");
    let block = proposal_of(&teacher, &id);
    assert!(
        block.contains(r#"data-proposal="declined""#) && block.contains("请再录一遍"),
        "{block}"
    );
}

/// A stick too small for the proposed lessons: `edge have` fails saying
/// so, and leaves nothing half written on it. Needs root (a small tmpfs
/// for the stick).
#[test]
fn issue_17_a_have_list_that_does_not_fit_the_stick_leaves_nothing_behind() {
    if !shanlu_tests::require(shanlu_tests::Need::Root) {
        return;
    }
    let origin = TestOrigin::init();
    publish_video(&origin, &video(100_000, 3));
    let served = origin.serve();
    let window = shanlu_tests::far_window();
    let (school, web) = teachers_edge(&origin, &served, "small-stick", 64, &["--window", &window]);
    school.sync_ok();
    let teacher = login(web.addr, "阿依老师", PASSWORD).expect("logged in");
    let id = lesson_of(
        &teacher,
        "彝文歌谣",
        &[("songs.mp4", &video(3_000_000, 44))],
    );
    propose(&teacher, &id);

    let stick = tempfile::tempdir().expect("tempdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(stick.path())
        .status()
        .expect("mount");
    if !mounted.success() {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    let _guard = crate::quota::Mounted(stick.path().to_owned());
    let have = stick.path().join("have.bin");
    let output = shanlu()
        .args(["edge", "have", "--data", &school.data_str(), "--out"])
        .arg(&have)
        .output()
        .expect("edge have");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("have list") && stderr.contains("No space left"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(stick.path())
        .expect("stick")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left on the stick: {left:?}");
}
