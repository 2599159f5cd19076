//! The classroom's words, from the Fluent files in `edge-cache/locales/`
//! (one per language, compiled in; see `catalog::i18n`). Course and lesson
//! titles come from the catalog; these are the labels around them.
//!
//! A language is whatever file is there: adding `locales/lis.ftl` adds
//! Lisu to the switch, with no Rust to change (docs/translating.md). Keys
//! a file lacks show in Chinese, then English, and the status page names
//! the languages that are incomplete.

use axum::http::HeaderMap;
use axum::http::header;
use catalog::i18n;

catalog::ui_words!();

/// The cookie that remembers a reader's choice.
pub const COOKIE: &str = "shanlu_lang";

impl Lang {
    /// Catalog texts are shown in this order: the reader's language, then
    /// Chinese (every school reads it), then English.
    pub fn fallbacks(self) -> [&'static str; 3] {
        [self.code(), i18n::CHINESE, i18n::ENGLISH]
    }

    /// The reader's language: the cookie they chose, else their browser's
    /// `Accept-Language`, else Chinese.
    pub fn of_request(headers: &HeaderMap) -> Lang {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .and_then(|(_, value)| Lang::from_code(value));
        if let Some(lang) = cookie {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| WORDS.from_accept_language(value))
            .map(Lang)
            .unwrap_or(Lang::ZH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn lang(code: &str) -> Lang {
        Lang::from_code(code).expect("a compiled-in language")
    }

    #[test]
    fn the_cookie_wins_over_the_browser_language() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("en-US,en;q=0.9"),
        );
        assert_eq!(Lang::of_request(&headers), lang("en"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; shanlu_lang=bo"),
        );
        assert_eq!(Lang::of_request(&headers), lang("bo"));
        assert_eq!(Lang::of_request(&HeaderMap::new()), Lang::ZH);
    }

    #[test]
    fn codes_round_trip_and_regions_are_ignored() {
        for lang in Lang::all() {
            assert_eq!(Lang::from_code(lang.code()), Some(lang));
        }
        assert_eq!(Lang::from_code("zh-Hans-CN"), Some(Lang::ZH));
        assert_eq!(Lang::from_code("fr"), None);
    }

    #[test]
    fn the_compiled_in_files_pass_the_check() {
        let check = words().check();
        assert!(check.passed(), "{check}");
        assert_eq!(Lang::ZH.code(), "zh");
        assert_eq!(Lang::all().last().map(Lang::code), Some("en"));
    }

    #[test]
    fn a_yi_reader_sees_chinese_for_a_missing_key_and_yi_for_its_name() {
        let yi = lang("ii");
        assert!(words().missing(yi.0).contains(&"sync-now"));
        assert_eq!(catalog::tr!(yi, "sync-now"), "立即同步");
        assert_eq!(yi.name(), "ꆈꌠꉙ");
        assert!(words().needs_review(yi.0));
    }
}
