//! The classroom of `shanlu demo` in a real headless Chromium, as a pupil
//! uses it: the course list in Chinese, Yi and Tibetan (rendered with the
//! fonts the edge serves, the choice remembered in a cookie), search in all
//! three scripts, the sample video inside a lesson's frame loading, seeking
//! and playing, and the pages fitting a 360-px phone without sideways
//! scrolling.
//!
//! Screenshots go to `target/test-artifacts/` (`classroom-*.png`); they are
//! for people to look at, never compared.

use std::net::SocketAddr;
use std::process::Child;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};
use shanlu_tests::webdriver::{Browser, wait_until};

use crate::demo::{interrupt, start_demo};

/// How long a page may take to show what a click or a search asked for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A small phone's screen, in CSS pixels.
const PHONE_WIDTH: u32 = 360;

/// Pages checked on the phone, in every language.
const PHONE_PAGES: [&str; 6] = [
    "/",
    "/course/grade3-math",
    "/course/grade3-math/01-counting",
    "/course/yi-literacy/02-numbers",
    "/search?q=%E5%8A%A0%E6%B3%95",
    "/status",
];

/// `shanlu demo` on its own data folder; killed if the test fails before [`Demo::stop`].
pub(crate) struct Demo {
    child: Child,
    addr: SocketAddr,
    errors: Option<JoinHandle<String>>,
    _data: tempfile::TempDir,
}

impl Demo {
    pub(crate) fn start() -> Demo {
        let data = tempfile::tempdir().expect("tempdir for the demo");
        let (child, addr, printed, errors) = start_demo(&data.path().join("demo"));
        assert!(printed.contains("edge synced over QUIC"), "{printed}");
        Demo {
            child,
            addr,
            errors: Some(errors),
            _data: data,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Ctrl-C: the demo must exit successfully and without warnings.
    pub(crate) fn stop(mut self) {
        let exit = interrupt(&mut self.child);
        assert!(exit.success(), "the demo did not stop cleanly: {exit}");
        let stderr = self
            .errors
            .take()
            .expect("stderr is read once")
            .join()
            .expect("stderr reader");
        assert!(stderr.trim().is_empty(), "the demo warned:\n{stderr}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// After `document.fonts.ready`: the page's FontFaces of family `arguments[0]`,
/// and whether `document.fonts.check` finds it ready for the text `arguments[1]`.
const FONT_STATUS_JS: &str = r#"
const [family, sample, done] = arguments;
document.fonts.ready.then(() => {
  const faces = [...document.fonts].filter(f => f.family.replace(/["']/g, '') === family);
  done({
    statuses: faces.map(f => f.status),
    loaded: faces.some(f => f.status === 'loaded'),
    check: document.fonts.check(`16px "${family}"`, sample),
  });
});
"#;

/// How wide the page is, and the innermost elements reaching past
/// `arguments[0]` px with the start of their HTML.
const OVERFLOW_JS: &str = r#"
const width = arguments[0];
const wide = [...document.body.querySelectorAll('*')].filter(e =>
  e.getBoundingClientRect().right > width + 0.5 &&
  ![...e.children].some(c => c.getBoundingClientRect().right > width + 0.5));
return {
  scrollWidth: document.documentElement.scrollWidth,
  innerWidth: window.innerWidth,
  tooWide: wide.slice(0, 2).map(e => ({
    right: e.getBoundingClientRect().right,
    html: e.outerHTML.slice(0, 200),
    parent: e.parentElement.outerHTML.slice(0, 200),
  })),
};
"#;

/// The video inside the lesson frame and a snapshot of its state, for the
/// video scripts below (each ends by calling `done(report(event))`).
const VIDEO_JS: &str = r#"
const done = arguments[arguments.length - 1];
const video = document.querySelector('#lesson-frame').contentDocument.querySelector('video');
const report = (event) => ({
  event,
  readyState: video.readyState,
  duration: Number.isFinite(video.duration) ? video.duration : String(video.duration),
  currentTime: video.currentTime,
  paused: video.paused,
  errorCode: video.error ? video.error.code : null,
  errorMessage: video.error ? video.error.message : null,
  src: video.currentSrc,
});
video.addEventListener('error', () => done(report('error')), { once: true });
"#;

/// Waits for the video's metadata (its `preload="metadata"` asks for it).
const VIDEO_METADATA_JS: &str = r#"
if (video.error) { done(report('error')); }
else if (video.readyState >= 1) { done(report('loadedmetadata')); }
else {
  video.addEventListener('loadedmetadata', () => done(report('loadedmetadata')), { once: true });
  setTimeout(() => done(report('timeout')), 20000);
}
"#;

const VIDEO_SEEK_JS: &str = r#"
video.addEventListener('seeked', () => done(report('seeked')), { once: true });
setTimeout(() => done(report('timeout')), 10000);
video.currentTime = 7;
"#;

/// Plays (muted) until the clock has moved past 7.3 s.
const VIDEO_PLAY_JS: &str = r#"
video.muted = true;
const check = () => {
  if (!video.paused && video.currentTime > 7.3) { done(report('playing')); }
};
video.addEventListener('timeupdate', check);
setTimeout(() => done(report('timeout')), 10000);
video.play().then(check, (err) => done({ ...report('play rejected'), rejection: String(err) }));
"#;

#[test]
fn classroom_speaks_yi_and_tibetan_searches_every_script_and_plays_the_video() {
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let demo = Demo::start();
    let browser = Browser::start();

    // 1. A first visit speaks the browser's language (Chinese when the
    //    classroom has none of them); then Chinese from the switcher. Both
    //    sample courses are listed.
    browser.goto(&demo.url("/"));
    let preferred = browser.execute("return navigator.languages", vec![]);
    assert_eq!(
        page_lang(&browser),
        default_lang(&preferred),
        "the browser prefers {preferred}"
    );
    switch_language(&browser, "zh");
    assert_eq!(browser.find("h1").text(), "课程");
    assert_eq!(browser.find("a.site").text(), "山路课堂");
    assert_eq!(course_ids(&browser), ["grade3-math", "yi-literacy"]);
    assert_eq!(
        browser.find("li.card[data-course=grade3-math] h2").text(),
        "三年级数学"
    );
    // The switcher's own names ꆈꌠꉙ and བོད་ཡིག need both fonts, from the edge.
    let mut fonts = Value::Null;
    let fetched = wait_until(PAGE_TIMEOUT, || {
        fonts = browser.execute(
            "return performance.getEntriesByType('resource').map(e => e.name)
               .filter(n => n.includes('/static/fonts/')).sort()",
            vec![],
        );
        fonts.as_array().is_some_and(|names| names.len() == 2)
    });
    assert!(
        fetched,
        "the page did not fetch both fonts from the edge: {fonts}"
    );
    assert_eq!(
        fonts,
        json!([
            demo.url("/static/fonts/NotoSansYi-Regular.ttf"),
            demo.url("/static/fonts/NotoSerifTibetan-Regular.ttf"),
        ])
    );
    screenshot(&browser, "classroom-home-zh.png");

    // 2. Yi: catalog titles in Yi script, drawn with the served Yi font.
    switch_language(&browser, "ii");
    assert_eq!(course_ids(&browser), ["grade3-math", "yi-literacy"]);
    let yi_title = browser.find("li.card[data-course=yi-literacy] h2 span");
    assert_eq!(yi_title.text(), "ꆈꌠꁱꂷ");
    assert_eq!(yi_title.attr("lang").as_deref(), Some("ii"));
    let yi_summary = browser
        .find("li.card[data-course=grade3-math] p[lang]")
        .text();
    assert!(
        is_mostly_yi(&yi_summary),
        "not a Yi summary: {yi_summary:?}"
    );
    assert_eq!(
        browser.find(".langs a.current").attr("hreflang").as_deref(),
        Some("ii")
    );
    assert_eq!(browser.find(".langs a[hreflang=ii]").text(), "ꆈꌠꉙ");
    assert_font_loaded(&browser, "shanlu-yi", "ꆈꌠ");
    screenshot(&browser, "classroom-home-ii.png");

    // 3. Tibetan: the page's own words too, with the served Tibetan font;
    //    the choice holds on another page (the cookie).
    switch_language(&browser, "bo");
    assert_eq!(browser.find("h1").text(), "སློབ་ཁྲིད།");
    assert_eq!(
        browser.find("li.card[data-course=grade3-math] h2").text(),
        "ལོ་རིམ་གསུམ་པའི་རྩིས་རིག"
    );
    assert_font_loaded(&browser, "shanlu-tibetan", "བོད་ཡིག");
    screenshot(&browser, "classroom-home-bo.png");
    browser.goto(&demo.url("/status"));
    browser.find("table#status");
    assert_eq!(page_lang(&browser), "bo", "the language was forgotten");
    let cookie = browser.execute("return document.cookie", vec![]);
    assert!(
        cookie
            .as_str()
            .is_some_and(|c| c.contains("shanlu_lang=bo")),
        "cookie: {cookie}"
    );

    // 4. Back to Chinese, then search in Chinese, Tibetan and Yi.
    switch_language(&browser, "zh");
    assert!(browser.url().ends_with("/status"), "{}", browser.url());
    browser.find("table#status");

    let hits = search(&browser, "加法");
    assert!(
        hits.iter().any(|href| href == "/course/grade3-math"),
        "{hits:?}"
    );
    screenshot(&browser, "classroom-search.png");
    open_first_result(&browser, &demo.url("/course/grade3-math/02-addition"));
    assert_eq!(browser.find("h1").text(), "二十以内的加法");

    let hits = search(&browser, "སྡོམ");
    assert_eq!(
        hits.first().map(String::as_str),
        Some("/course/grade3-math/02-addition"),
        "{hits:?}"
    );
    screenshot(&browser, "classroom-search-bo.png");
    open_first_result(&browser, &demo.url("/course/grade3-math/02-addition"));

    let hits = search(&browser, "ꆈꌠꁱꂷ");
    for expected in ["/course/yi-literacy", "/course/yi-literacy/03-nuosu-script"] {
        assert!(hits.iter().any(|href| href == expected), "{hits:?}");
    }
    assert!(
        hits.iter()
            .all(|href| href.starts_with("/course/yi-literacy")),
        "{hits:?}"
    );
    let first = demo.url(&hits[0]);
    open_first_result(&browser, &first);

    // 5. The lesson's video, inside its frame: metadata, seek, play.
    browser.goto(&demo.url("/course/grade3-math/01-counting"));
    let framed = wait_until(PAGE_TIMEOUT, || {
        browser.execute(
            "const frame = document.querySelector('#lesson-frame');
             const doc = frame && frame.contentDocument;
             return !!(doc && doc.readyState !== 'loading' && doc.querySelector('video'));",
            vec![],
        ) == true
    });
    assert!(framed, "no video in the lesson frame");
    browser.set_script_timeout(Duration::from_secs(25));
    let video = video_step(&browser, VIDEO_METADATA_JS);
    assert_eq!(video["event"], "loadedmetadata", "no metadata: {video}");
    assert!(
        video["src"]
            .as_str()
            .is_some_and(|src| src.ends_with("/courses/grade3-math/01-counting/video/intro.mp4")),
        "{video}"
    );
    let duration = video["duration"].as_f64().unwrap_or(0.0);
    assert!(
        duration > 10.0 && duration < 20.0,
        "the clip is 14 s: {video}"
    );
    let video = video_step(&browser, VIDEO_SEEK_JS);
    assert_eq!(video["event"], "seeked", "seeking failed: {video}");
    let at = video["currentTime"].as_f64().unwrap_or(-1.0);
    assert!((at - 7.0).abs() < 0.1, "seeked to {at}: {video}");
    let video = video_step(&browser, VIDEO_PLAY_JS);
    assert_eq!(video["event"], "playing", "playing failed: {video}");
    assert_eq!(video["paused"], false, "{video}");
    screenshot(&browser, "classroom-lesson-video.png");

    drop(browser);
    demo.stop();
}

#[test]
fn classroom_fits_a_phone_without_sideways_scrolling() {
    if !shanlu_tests::require(shanlu_tests::Need::Chromium) {
        return;
    }
    let demo = Demo::start();
    let browser = Browser::start_with_window(PHONE_WIDTH, 740);
    let mut overflows = Vec::new();
    for lang in ["zh", "ii", "bo", "en"] {
        for path in PHONE_PAGES {
            browser.goto(&demo.url(&format!(
                "/lang/{lang}?back={}",
                shanlu_tests::url_escape(path)
            )));
            assert_eq!(page_lang(&browser), lang, "on {path}");
            let input = browser.find("form[role=search] input[name=q]");
            assert!(input.is_displayed(), "no search box on {path} in {lang}");
            let rect = browser.execute(
                "const r = arguments[0].getBoundingClientRect();
                 return { left: r.left, right: r.right };",
                vec![input.to_json()],
            );
            let left = rect["left"].as_f64().expect("left");
            let right = rect["right"].as_f64().expect("right");
            assert!(
                left >= 0.0 && right <= f64::from(PHONE_WIDTH) && right - left >= 100.0,
                "the search box on {path} in {lang} is off screen or too small: {rect}"
            );
            if lang == "zh" && path == "/" {
                assert_eq!(course_ids(&browser), ["grade3-math", "yi-literacy"]);
                screenshot(&browser, "classroom-phone.png");
            }
            if lang == "zh" && path == "/course/grade3-math/01-counting" {
                browser.find("iframe#lesson-frame");
                screenshot(&browser, "classroom-phone-lesson.png");
            }
            let widths = browser.execute(OVERFLOW_JS, vec![json!(PHONE_WIDTH)]);
            let scroll = widths["scrollWidth"].as_u64().expect("scrollWidth");
            let inner = widths["innerWidth"].as_u64().expect("innerWidth");
            // Content wider than the phone also widens the layout viewport
            // (innerWidth), so compare with the phone's width itself.
            if scroll > u64::from(PHONE_WIDTH) || inner != u64::from(PHONE_WIDTH) {
                if overflows.is_empty() {
                    screenshot(&browser, "classroom-phone-overflow.png");
                }
                overflows.push(format!("{path} in {lang}: {widths:#}"));
            }
        }
    }
    assert!(
        overflows.is_empty(),
        "pages scroll sideways on a {PHONE_WIDTH}-px phone:\n{}",
        overflows.join("\n")
    );
    drop(browser);
    demo.stop();
}

/// `<html lang>` of the page shown.
fn page_lang(browser: &Browser) -> String {
    browser
        .find("html")
        .attr("lang")
        .expect("the page says its language")
}

/// The `data-course` of every course card, in order.
fn course_ids(browser: &Browser) -> Vec<String> {
    browser
        .find_all("ul#courses li.card[data-course]")
        .iter()
        .map(|card| card.attr("data-course").expect("data-course"))
        .collect()
}

/// Clicks the switcher's link to `code` and waits for the page in that language.
pub(crate) fn switch_language(browser: &Browser, code: &str) {
    let before = browser.url();
    browser.find(&format!(".langs a[hreflang={code}]")).click();
    let switched = wait_until(PAGE_TIMEOUT, || {
        browser.execute("return document.documentElement.lang", vec![]) == code
    });
    assert!(switched, "the page never switched to {code}");
    assert_eq!(browser.url(), before, "the switch did not come back");
}

/// The language a first visit should get: the first of the browser's
/// languages the classroom speaks, else Chinese.
fn default_lang(preferred: &Value) -> &'static str {
    preferred
        .as_array()
        .expect("navigator.languages is an array")
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|tag| {
            let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
            ["zh", "ii", "bo", "en"]
                .into_iter()
                .find(|code| *code == primary)
        })
        .next()
        .unwrap_or("zh")
}

/// Whether most of `text`'s letters are Yi syllables (U+A000–A4CF).
fn is_mostly_yi(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let yi = text
        .chars()
        .filter(|c| ('\u{A000}'..='\u{A4CF}').contains(c))
        .count();
    yi > 0 && yi * 2 >= letters
}

fn assert_font_loaded(browser: &Browser, family: &str, sample: &str) {
    let mut status = Value::Null;
    let loaded = wait_until(PAGE_TIMEOUT, || {
        status = browser.execute_async(FONT_STATUS_JS, vec![json!(family), json!(sample)]);
        status["loaded"] == true && status["check"] == true
    });
    assert!(
        loaded,
        "the page did not render with the {family} font: {status}"
    );
}

/// Types `query` into the header's search box, presses Enter and waits for
/// results; returns their links.
fn search(browser: &Browser, query: &str) -> Vec<String> {
    let input = browser.find("form[role=search] input[name=q]");
    input.send_keys(query);
    input.send_keys("\u{E007}");
    let arrived = wait_until(PAGE_TIMEOUT, || {
        browser.url().contains("/search?q=") && browser.try_find("ol#results li").is_some()
    });
    assert!(
        arrived,
        "no results for {query:?} on {}: {:?}",
        browser.url(),
        browser.try_find("main").map(|main| main.text())
    );
    let heading = browser.find("h1").text();
    assert!(heading.contains(query), "{heading:?}");
    browser
        .find_all("ol#results li h2 a")
        .iter()
        .map(|link| link.attr("href").expect("href"))
        .collect()
}

fn open_first_result(browser: &Browser, expected: &str) {
    browser.find("ol#results li h2 a").click();
    let opened = wait_until(PAGE_TIMEOUT, || browser.url() == expected);
    assert!(opened, "opened {}, expected {expected}", browser.url());
    browser.find("main h1");
}

/// Runs one video step (`VIDEO_JS` then `step`); returns the video's report.
fn video_step(browser: &Browser, step: &str) -> Value {
    let video = browser.execute_async(&format!("{VIDEO_JS}{step}"), vec![]);
    if let Some(code) = video["errorCode"].as_u64() {
        panic!(
            "Chromium cannot play the sample video: MediaError code {code} ({}): {video}",
            video["errorMessage"]
        );
    }
    video
}

fn screenshot(browser: &Browser, name: &str) {
    let path = browser.screenshot(name);
    eprintln!("screenshot: {}", path.display());
}
