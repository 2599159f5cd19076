//! The classroom's pages over plain HTTP: languages and their persistence,
//! filters, search in four scripts, the status page, `/metrics`, the fonts.

use std::path::Path;

use shanlu_tests::{RunningEdge, TestEdge, TestOrigin, generated, header};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Two courses with titles in four languages; the edge holds both.
fn school() -> (
    TestOrigin,
    shanlu_tests::ServedOrigin,
    TestEdge,
    RunningEdge,
) {
    let origin = TestOrigin::init();
    let math = origin.dir.path().join("math");
    write(
        &math,
        "course.toml",
        r#"id = "math3"
subject = "math"
grade = 3
languages = ["zh", "bo", "en"]
[title]
zh = "三年级数学"
bo = "ལོ་རིམ་གསུམ་པའི་རྩིས་རིག"
en = "Grade 3 mathematics"
"#,
    );
    write(
        &math,
        "01-add/lesson.toml",
        r#"entry = "index.html"
tags = ["addition"]
[title]
zh = "二十以内的加法"
bo = "ཉི་ཤུའི་ནང་གི་སྡོམ་རྩིས།"
en = "Addition within twenty"
[summary]
zh = "凑十法"
en = "Make ten first"
"#,
    );
    write(
        &math,
        "01-add/index.html",
        "<p>凑十法</p><video src='clip.mp4'></video>",
    );
    std::fs::write(math.join("01-add/clip.mp4"), generated(300_000, 3)).expect("video");
    std::fs::write(math.join("01-add/sheet.pdf"), generated(5_000, 4)).expect("pdf");
    // Issue 17: subtitles beside the video the lesson's HTML shows, a lesson
    // whose video the classroom plays itself, with subtitles and a poster,
    // and a course cover.
    write(
        &math,
        "01-add/clip.zh.vtt",
        "WEBVTT\n\n00:00.000 --> 00:03.000\n先凑成十\n",
    );
    write(
        &math,
        "02-film/lesson.toml",
        "entry = \"film.mp4\"\n[title]\nzh = \"看电影\"\nen = \"A film\"\n",
    );
    std::fs::write(math.join("02-film/film.mp4"), generated(40_000, 6)).expect("film");
    write(
        &math,
        "02-film/film.en.vtt",
        "WEBVTT\n\nNOTE not said\n\n1\n00:00.000 --> 00:02.500\n<v Narrator>The <i>pangolin</i> counts pebbles\n",
    );
    write(
        &math,
        "02-film/film.zh.vtt",
        "WEBVTT\n\n00:00.000 --> 00:02.500\n穿山甲数石子\n",
    );
    std::fs::write(math.join("02-film/film-poster.png"), generated(2_000, 7)).expect("poster");
    std::fs::write(math.join("cover.png"), generated(3_000, 8)).expect("cover");
    let yi = origin.dir.path().join("yi");
    write(
        &yi,
        "course.toml",
        r#"id = "yi1"
subject = "literacy"
grade = 1
languages = ["ii", "zh"]
[title]
zh = "彝文识字"
ii = "ꆈꌠꁱꂷ"
"#,
    );
    write(
        &yi,
        "01-tones/lesson.toml",
        r#"entry = "tones.m4a"
[title]
zh = "四个声调"
ii = "ꀀꀁꀂꀃ"
"#,
    );
    std::fs::write(yi.join("01-tones/tones.m4a"), generated(20_000, 5)).expect("audio");
    origin.publish(&math);
    origin.publish(&yi);
    let served = origin.serve();
    let token = origin.add_edge("pages");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let running = edge.run();
    (origin, served, edge, running)
}

#[test]
fn pages_speak_the_readers_language_and_remember_it() {
    let (_origin, _served, _edge, web) = school();

    // No choice yet: the browser's language, else Chinese.
    let (status, _, body) = web.get("/", "");
    assert_eq!(status, 200);
    let home = String::from_utf8(body).expect("utf-8");
    assert!(home.contains(r#"<html lang="zh">"#), "{home}");
    assert!(home.contains("<h1>课程</h1>"));
    assert!(home.contains("三年级数学") && home.contains("彝文识字"));
    let (_, _, body) = web.get("/", "Accept-Language: en-GB,en;q=0.8\r\n");
    let home = String::from_utf8(body).expect("utf-8");
    assert!(home.contains("<h1>Courses</h1>"), "{home}");
    assert!(home.contains("Grade 3 mathematics"));

    // The switch sets a cookie for a year and goes back where the reader was.
    let (status, head, _) = web.get("/lang/bo?back=%2Fcourse%2Fmath3", "");
    assert_eq!(status, 303);
    assert_eq!(header(&head, "location"), Some("/course/math3"));
    let cookie = header(&head, "set-cookie").expect("cookie");
    assert!(cookie.starts_with("shanlu_lang=bo;") && cookie.contains("Max-Age=31536000"));
    // Never a redirect off this server.
    let (_, head, _) = web.get("/lang/en?back=%2F%2Fexample.org", "");
    assert_eq!(header(&head, "location"), Some("/"));
    assert_eq!(web.get("/lang/fr", "").0, 404);

    // With the cookie: Tibetan labels, titles in Tibetan, marked as such.
    let (_, page) = web.page("/course/math3", "bo");
    assert!(page.contains(r#"<html lang="bo">"#));
    assert!(
        page.contains(r#"<span lang="bo">ལོ་རིམ་གསུམ་པའི་རྩིས་རིག</span>"#),
        "{page}"
    );
    assert!(
        page.contains("སློབ་ཚན།"),
        "the Tibetan label for lessons: {page}"
    );
    // A title missing in the chosen language falls back to Chinese, marked zh.
    let (_, page) = web.page("/course/yi1", "bo");
    assert!(
        page.contains(r#"<span lang="zh">彝文识字</span>"#),
        "{page}"
    );
    // Yi readers see Yi titles.
    let (_, page) = web.page("/course/yi1", "ii");
    assert!(page.contains(r#"<html lang="ii">"#));
    assert!(
        page.contains(r#"<span lang="ii">ꆈꌠꁱꂷ</span>"#),
        "{page}"
    );
    // Issue 17: labels the Yi file does not have yet show in Chinese, never
    // as their key; the language's own name comes from the Yi file.
    assert!(page.contains("<h2>课</h2>"), "{page}");
    assert!(!page.contains("lessons-heading"), "{page}");
    assert!(
        page.contains(r#"lang="ii" hreflang="ii" class="current" href="/lang/ii"#)
            && page.contains(">ꆈꌠꉙ</a>"),
        "{page}"
    );
    // Plurals come from the files: one lesson, not "1 lessons".
    let (_, page) = web.page("/course/yi1", "en");
    assert!(page.contains("1 lesson ·"), "{page}");
    assert!(page.contains("Grade: 1"), "{page}");
    // The cookie wins over the browser's language.
    let (_, _, body) = web.get("/", "Accept-Language: en\r\nCookie: shanlu_lang=zh\r\n");
    assert!(
        String::from_utf8(body)
            .expect("utf-8")
            .contains("<h1>课程</h1>")
    );

    // The fonts the pages name are served by the edge itself.
    let (_, css) = web.page("/static/style.css", "zh");
    for font in ["NotoSansYi-Regular.ttf", "NotoSerifTibetan-Regular.ttf"] {
        assert!(css.contains(&format!("/static/fonts/{font}")));
        let (status, head, body) = web.get(&format!("/static/fonts/{font}"), "");
        assert_eq!(status, 200);
        assert_eq!(header(&head, "content-type"), Some("font/ttf"));
        let committed = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../edge-cache/assets/fonts/{font}")),
        )
        .expect("committed font");
        assert_eq!(body, committed);
    }
    assert_eq!(web.get("/static/fonts/other.ttf", "").0, 404);
    assert_eq!(web.page("/course/nope", "en").0, 404);
}

#[test]
fn courses_filter_lessons_play_and_search_finds_every_script() {
    let (_origin, _served, _edge, web) = school();

    let (_, all) = web.page("/", "en");
    assert!(all.contains(r#"data-course="math3""#) && all.contains(r#"data-course="yi1""#));
    let (_, math) = web.page("/?subject=math&grade=&language=", "en");
    assert!(math.contains(r#"data-course="math3""#) && !math.contains(r#"data-course="yi1""#));
    let (_, grade1) = web.page("/?grade=1", "en");
    assert!(!grade1.contains(r#"data-course="math3""#) && grade1.contains(r#"data-course="yi1""#));
    let (_, yi) = web.page("/?language=ii", "en");
    assert!(!yi.contains(r#"data-course="math3""#) && yi.contains(r#"data-course="yi1""#));
    assert!(
        yi.contains(r#"<option value="ii" selected>ꆈꌠꉙ</option>"#),
        "{yi}"
    );

    // The lesson page frames the lesson's HTML (its video is its own) and offers the rest.
    let (status, lesson) = web.page("/course/math3/01-add", "en");
    assert_eq!(status, 200);
    assert!(lesson.contains(r#"<iframe class="lesson-frame" id="lesson-frame" src="/courses/math3/01-add/index.html""#), "{lesson}");
    assert!(
        !lesson.contains("<video"),
        "the video is shown by the lesson's own page"
    );
    assert!(lesson.contains(r#"download="sheet.pdf""#));
    // A lesson that is an audio file gets a player.
    let (_, audio) = web.page("/course/yi1/01-tones", "ii");
    assert!(
        audio.contains(
            r#"<audio controls preload="metadata" src="/courses/yi1/01-tones/tones.m4a""#
        ),
        "{audio}"
    );

    // Search: Chinese without spaces, Tibetan syllables, Yi, English prefixes.
    let first = |q: &str| {
        let hits = web.json(&format!("/api/v1/search?q={}", shanlu_tests::url_escape(q)));
        let hits = hits.as_array().expect("a list").clone();
        hits.first().map(|hit| {
            (
                hit["course"].clone(),
                hit["lesson"].clone(),
                hit["url"].clone(),
            )
        })
    };
    let add = Some((
        "math3".into(),
        "01-add".into(),
        "/course/math3/01-add".into(),
    ));
    assert_eq!(first("加法"), add);
    assert_eq!(first("སྡོམ"), add);
    assert_eq!(first("addi"), add);
    assert_eq!(first("ꁱꂷ").map(|hit| hit.0), Some("yi1".into()));
    assert_eq!(first("声调").map(|hit| hit.1), Some("01-tones".into()));
    assert_eq!(first("物理"), None);
    assert_eq!(first(""), None);
    // The search page links the results.
    let (_, page) = web.page(
        &format!("/search?q={}", shanlu_tests::url_escape("加法")),
        "zh",
    );
    assert!(
        page.contains(
            r#"<a href="/course/math3/01-add"><span lang="zh">二十以内的加法</span></a>"#
        ),
        "{page}"
    );
    let (_, page) = web.page("/search?q=xyzzy", "en");
    assert!(page.contains(r#"id="no-results""#));
}

#[test]
fn the_status_page_and_metrics_tell_the_it_teacher_what_is_going_on() {
    let (_origin, _served, edge, web) = school();
    // Let the start-up sync of `edge run` finish.
    assert!(shanlu_tests::wait_until(
        std::time::Duration::from_secs(30),
        || {
            let status = web.json("/api/v1/status");
            status["live"]["upstream"]["reachable"] == true && status["live"]["syncing"] == false
        }
    ));
    let status = web.json("/api/v1/status");
    assert_eq!(status["catalog_sequence"], 2);
    assert!(status["disk_free"].as_u64().expect("disk free") > 0);
    assert_eq!(status["live"]["upstream"]["reachable"], true);
    assert!(status["bytes_held"].as_u64().expect("held") >= 325_000);

    let (status_code, page) = web.page("/status", "en");
    assert_eq!(status_code, 200);
    assert!(page.contains(r#"<td id="catalog-sequence">#2"#), "{page}");
    assert!(page.contains("complete"));
    assert!(page.contains("reachable"));
    assert!(page.contains("Nothing is waiting to download."));
    // Issue 17: the languages whose files are incomplete are named.
    assert!(
        page.contains(r#"<div class="language-incomplete" data-lang="ii">"#)
            && page.contains("ꆈꌠꉙ</span>: ")
            && page.contains("labels are not translated yet and show in Chinese"),
        "{page}"
    );
    assert!(!page.contains(r#"data-lang="en""#), "{page}");

    // Files served count as hits and bytes; pages count by route.
    let (status_code, _, body) =
        web.get("/courses/math3/01-add/clip.mp4", "Range: bytes=0-999\r\n");
    assert_eq!(status_code, 206);
    assert_eq!(body.len(), 1000);
    // The client has the 1000 bytes as soon as they arrive, a moment before
    // the edge counts them as sent: wait for the count (bounded).
    let mut metrics = String::new();
    let counted = shanlu_tests::wait_until(std::time::Duration::from_secs(10), || {
        let (_, _, body) = web.get("/metrics", "");
        metrics = String::from_utf8(body).expect("utf-8");
        metrics.contains("shanlu_edge_http_bytes_served_total 1000")
    });
    assert!(counted, "{metrics}");
    assert!(
        metrics.contains("shanlu_edge_cache_hits_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"shanlu_edge_http_requests_total{route="/status",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("shanlu_edge_catalog_sequence 2"));
    assert!(
        metrics.contains(r#"shanlu_edge_sync_passes_total{outcome="complete"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("shanlu_edge_upstream_reachable 1"));
    assert!(
        metrics.contains("shanlu_edge_sync_over_fallback 0"),
        "{metrics}"
    );
    assert!(metrics.contains("shanlu_edge_files_missing 0"));
    drop(edge);
}

#[test]
fn issue_17_subtitles_posters_and_covers() {
    let (_origin, _served, _edge, web) = school();

    // The classroom's own player: every subtitle file beside the video is a
    // track, the reader's language chosen, and the poster is shown.
    let (status, lesson) = web.page("/course/math3/02-film", "zh");
    assert_eq!(status, 200);
    assert!(
        lesson.contains(r#"poster="/courses/math3/02-film/film-poster.png""#),
        "{lesson}"
    );
    assert!(
        lesson.contains(r#"<track kind="subtitles" src="/courses/math3/02-film/film.en.vtt" srclang="en" label="English">"#),
        "{lesson}"
    );
    assert!(
        lesson.contains(r#"<track kind="subtitles" src="/courses/math3/02-film/film.zh.vtt" srclang="zh" label="中文" default>"#),
        "{lesson}"
    );
    let (_, lesson) = web.page("/course/math3/02-film", "en");
    assert!(
        lesson.contains(r#"srclang="en" label="English" default>"#),
        "{lesson}"
    );
    let (status, head, vtt) = web.get("/courses/math3/02-film/film.zh.vtt", "");
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/vtt; charset=utf-8")
    );
    assert!(String::from_utf8(vtt).expect("utf-8").contains("穿山甲"));

    // A video the lesson's own HTML shows gets its tracks inside that HTML.
    let (status, head, html) = web.get("/courses/math3/01-add/index.html", "");
    assert_eq!(status, 200);
    let html = String::from_utf8(html).expect("utf-8");
    assert!(
        html.contains(r#"<video src='clip.mp4'><track kind="subtitles" src="clip.zh.vtt" srclang="zh" label="中文" default></video>"#),
        "{html}"
    );
    let etag = header(&head, "etag").expect("etag").to_owned();
    assert!(
        etag.contains("-fonts") && etag.matches('-').count() >= 2,
        "{etag}"
    );

    // Search finds words only the subtitles say, and not the notes.
    let hits = web.json("/api/v1/search?q=pangolin");
    assert_eq!(hits[0]["lesson"], "02-film", "{hits}");
    assert_eq!(
        web.json("/api/v1/search?q=%E7%A9%BF%E5%B1%B1%E7%94%B2")[0]["lesson"],
        "02-film"
    );
    assert_eq!(
        web.json("/api/v1/search?q=said").as_array().map(Vec::len),
        Some(0)
    );

    // The course card shows the cover, the lesson list the poster.
    let (_, home) = web.page("/", "en");
    assert!(
        home.contains(r#"<img class="cover" src="/assets/math3/cover.png" alt="" loading="lazy">"#),
        "{home}"
    );
    let (_, course) = web.page("/course/math3", "en");
    assert!(
        course.contains(r#"<img class="cover" src="/courses/math3/02-film/film-poster.png" alt="" loading="lazy">"#),
        "{course}"
    );
}

#[test]
fn issue_17_pages_need_no_scripts_and_a_lesson_is_small_before_its_media() {
    let (_origin, _served, _edge, web) = school();
    for lang in ["zh", "ii", "bo", "en"] {
        for path in [
            "/",
            "/course/math3",
            "/course/math3/01-add",
            "/course/math3/02-film",
            "/search?q=%E5%8A%A0%E6%B3%95",
            "/status",
        ] {
            let (status, page) = web.page(path, lang);
            assert_eq!(status, 200, "{lang} {path}");
            // Everything works with JavaScript off: there is none.
            assert!(
                !page.to_ascii_lowercase().contains("<script"),
                "{lang} {path}"
            );
            assert!(
                page.contains(r##"<a class="skip" href="#main">"##),
                "{lang} {path}"
            );
        }
    }
    // The lesson page, its style sheet and the lesson's own HTML: under
    // 100 KB before the video, pictures and fonts.
    let (_, page) = web.page("/course/math3/01-add", "bo");
    let (_, css) = web.page("/static/style.css", "bo");
    let (_, _, frame) = web.get("/courses/math3/01-add/index.html", "");
    let total = page.len() + css.len() + frame.len();
    assert!(total < 100_000, "{total} bytes before media");
}
