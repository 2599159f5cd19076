//! Issue 12, item 7: a lesson's own HTML renders Yi and Tibetan with the
//! fonts the edge serves, on a device without those fonts. The edge inserts
//! its font style after `<head>` of HTML lesson files as it serves them; the
//! store keeps the publisher's bytes, `/files/<hash>` still serves exactly
//! them, and the inserted answer has its own ETag and length.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use shanlu_tests::webdriver::Browser;
use shanlu_tests::{Need, RunningEdge, TestEdge, TestOrigin, header};

const LESSON: &str = "/courses/yi-literacy/02-numbers/index.html";
const STYLE_TAG: &str = "<style id=\"shanlu-fonts\">";

fn sample_course() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/sample-courses/yi-literacy")
}

/// The sample Yi course published, synced to an edge, and the edge running;
/// with the BLAKE3 of the lesson page "一到十".
fn edge_with_the_yi_course() -> (TestOrigin, TestEdge, RunningEdge, String) {
    let origin = TestOrigin::init();
    origin.publish(&sample_course());
    let served = origin.serve();
    let token = origin.add_edge("fonts-school");
    let edge = TestEdge::init(&origin, &served, served.quic, &token, "all");
    edge.sync_ok();
    let listing = edge.ls();
    let blake3 = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .filter(|course| course["id"] == "yi-literacy")
        .flat_map(|course| course["lessons"].as_array().expect("lessons"))
        .filter(|lesson| lesson["id"] == "02-numbers")
        .flat_map(|lesson| lesson["files"].as_array().expect("files"))
        .find(|file| file["path"] == "index.html")
        .and_then(|file| file["blake3"].as_str())
        .unwrap_or_else(|| panic!("no 02-numbers/index.html in {listing:#}"))
        .to_owned();
    let running = edge.run();
    (origin, edge, running, blake3)
}

/// Over plain HTTP: the served page carries the style right after `<head>`
/// and is otherwise the publisher's bytes; ETag, length, 304 and ranges are
/// those of the served bytes; `/files/<hash>` is untouched.
#[test]
fn issue_12_lesson_html_is_served_with_the_font_style_and_an_honest_etag() {
    let (_origin, _edge, web, blake3) = edge_with_the_yi_course();
    let raw = std::fs::read(sample_course().join("02-numbers/index.html")).expect("sample page");

    let (status, head, body) = web.get(LESSON, "");
    assert_eq!(status, 200, "{head}");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let at = text.find(STYLE_TAG).unwrap_or_else(|| {
        panic!(
            "the font style is inserted: {head}\n{}",
            &text[..text.len().min(300)]
        )
    });
    assert!(
        text[..at].ends_with("<head>"),
        "right after <head>: {}",
        &text[..at]
    );
    assert!(text.contains("url(\"/static/fonts/NotoSansYi-Regular.ttf\")"));
    assert!(text.contains("url(\"/static/fonts/NotoSerifTibetan-Regular.ttf\")"));
    let end = at + text[at..].find("</style>").expect("style closes") + "</style>".len();
    let mut without = body[..at].to_vec();
    without.extend_from_slice(&body[end..]);
    // Issue 17: the video gets a track for each subtitle file beside it.
    let tracks = concat!(
        r#"<track kind="subtitles" src="video/intro.zh.vtt" srclang="zh" label="中文" default>"#,
        r#"<track kind="subtitles" src="video/intro.en.vtt" srclang="en" label="English">"#,
        r#"<track kind="subtitles" src="video/intro.ii.vtt" srclang="ii" label="ꆈꌠꉙ">"#,
    );
    let without = String::from_utf8(without).expect("utf-8");
    assert!(
        without.contains(&format!(r#"src="video/intro.mp4">{tracks}"#)),
        "{without}"
    );
    let without = without.replacen(tracks, "", 1);
    assert_eq!(
        without.as_bytes(),
        raw,
        "apart from the style and tracks, the publisher's bytes"
    );
    assert_eq!(
        header(&head, "content-length"),
        Some(body.len().to_string().as_str())
    );
    let etag = header(&head, "etag").expect("an ETag").to_owned();
    assert_ne!(etag, format!("\"{blake3}\""), "not the raw file's ETag");
    assert!(etag.contains(&blake3), "{etag}");

    // Conditionals and ranges are about the served bytes.
    let (status, _, body304) = web.get(LESSON, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!((status, body304.len()), (304, 0));
    let (status, _, _) = web.get(LESSON, &format!("If-None-Match: \"{blake3}\"\r\n"));
    assert_eq!(
        status, 200,
        "the raw file's ETag does not match the served page"
    );
    let (status, head, part) = web.get(LESSON, "Range: bytes=-20\r\n");
    assert_eq!(status, 206);
    assert_eq!(part, body[body.len() - 20..]);
    assert_eq!(
        header(&head, "content-range"),
        Some(
            format!(
                "bytes {}-{}/{}",
                body.len() - 20,
                body.len() - 1,
                body.len()
            )
            .as_str()
        )
    );

    // By hash, the exact bytes of the hash.
    let (status, head, by_hash) = web.get(&format!("/files/{blake3}"), "");
    assert_eq!(status, 200);
    assert_eq!(by_hash, raw);
    assert_eq!(
        header(&head, "etag"),
        Some(format!("\"{blake3}\"").as_str())
    );
    // Other lesson files are untouched too.
    let (status, _, svg) = web.get("/courses/yi-literacy/02-numbers/img/dots.svg", "");
    assert_eq!(status, 200);
    assert_eq!(
        svg,
        std::fs::read(sample_course().join("02-numbers/img/dots.svg")).expect("svg")
    );
}

/// A fontconfig setup with the system's fonts less every one that has Yi
/// (U+A000) or Tibetan (U+0F40) glyphs: a device without those fonts,
/// whatever this machine has installed. (An empty font list makes Chromium
/// fail every web font, so the system's other fonts stay.)
pub(crate) fn without_yi_and_tibetan_fonts(dir: &Path) -> PathBuf {
    let cache = dir.join("fontconfig-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let config = dir.join("fonts.conf");
    std::fs::write(
        &config,
        format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n\
             <include ignore_missing=\"yes\">/etc/fonts/fonts.conf</include>\n\
             <cachedir>{}</cachedir>\n<selectfont><rejectfont>\n\
             <glob>*Yi*</glob><glob>*Tibet*</glob><glob>*Nuosu*</glob><glob>*unifont*</glob>\n\
             <pattern><patelt name=\"charset\"><charset><int>0xa000</int></charset></patelt></pattern>\n\
             <pattern><patelt name=\"charset\"><charset><int>0x0f40</int></charset></patelt></pattern>\n\
             </rejectfont></selectfont>\n</fontconfig>\n",
            cache.display()
        ),
    )
    .expect("fonts.conf");
    // Where fontconfig's tools are installed, check the premise.
    for charset in ["a000", "0f40"] {
        if let Ok(out) = std::process::Command::new("fc-list")
            .env("FONTCONFIG_FILE", &config)
            .arg(format!(":charset={charset}"))
            .output()
        {
            let listed = String::from_utf8_lossy(&out.stdout);
            assert!(
                listed.trim().is_empty(),
                "fonts with U+{charset} remain: {listed}"
            );
        }
    }
    config
}

/// What the page says about its Yi text once its fonts settled: the width
/// of the numerals row, whether "Noto Sans Yi" is a loaded face, and the
/// font files it fetched.
const PROBE: &str = r#"
const done = arguments[arguments.length - 1];
document.fonts.ready.then(() => {
  const cells = document.querySelector('tr[lang="ii"] td').parentElement;
  const yi = [...cells.querySelectorAll('td')].map(td => td.getBoundingClientRect().width);
  const faces = [...document.fonts]
    .filter(f => f.family.replace(/"/g, '') === 'Noto Sans Yi')
    .map(f => f.status);
  const fetched = performance.getEntriesByType('resource')
    .map(e => new URL(e.name).pathname)
    .filter(p => p.startsWith('/static/fonts/'));
  done({
    yi_width: yi.reduce((a, b) => a + b, 0),
    heading_width: document.querySelector('h1 span[lang="ii"]').getBoundingClientRect().width,
    faces: faces,
    check: document.fonts.check('40px "Noto Sans Yi"', 'ꋍ'),
    fetched: fetched,
  });
});
"#;

/// In headless Chromium that sees no Yi or Tibetan system font: the lesson page as served
/// draws its Yi with the served Noto Sans Yi (the face is loaded from the
/// edge's font route and the Yi text is laid out with its glyphs), while the
/// same bytes without the style (`/files/<hash>`) cannot.
#[test]
fn issue_12_lesson_pages_render_yi_with_the_served_font_in_chromium_without_yi_fonts() {
    if !shanlu_tests::require(Need::Chromium) {
        return;
    }
    let (_origin, edge, web, blake3) = edge_with_the_yi_course();
    let config = without_yi_and_tibetan_fonts(edge.dir.path());
    let config = config.to_str().expect("utf-8 path");
    let browser = Browser::start_with_env(1280, 900, &[("FONTCONFIG_FILE", config)]);
    browser.set_script_timeout(Duration::from_secs(30));

    // The same bytes without the style: the device's own fonts only.
    browser.goto(&format!("http://{}/files/{blake3}", web.addr));
    let bare = browser.execute_async(PROBE, vec![]);
    assert_eq!(
        bare["faces"],
        json!([]),
        "no served face without the style: {bare}"
    );
    assert_eq!(bare["fetched"], json!([]), "{bare}");

    browser.goto(&format!("http://{}{LESSON}", web.addr));
    let served = browser.execute_async(PROBE, vec![]);
    assert_eq!(
        served["faces"],
        json!(["loaded"]),
        "Noto Sans Yi is a loaded face: {served}"
    );
    assert_eq!(served["check"], true, "{served}");
    assert!(
        served["fetched"]
            .as_array()
            .expect("fetched")
            .contains(&json!("/static/fonts/NotoSansYi-Regular.ttf")),
        "the glyphs come from the edge's font route: {served}"
    );
    let width = |probe: &Value, key: &str| probe[key].as_f64().expect("a width");
    assert!(width(&served, "heading_width") > 0.0, "{served}");
    assert_ne!(
        width(&served, "heading_width"),
        width(&bare, "heading_width"),
        "the Yi heading is laid out with other glyphs than on the bare page: {served} vs {bare}"
    );
    let metrics = web.metrics();
    assert!(
        metrics.lines().any(|line| line.starts_with(
            r#"shanlu_edge_http_requests_total{route="/static/fonts/{name}",status="200"}"#
        )),
        "the edge served the font:\n{metrics}"
    );
}
