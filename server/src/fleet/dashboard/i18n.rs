//! The dashboard's words, from the Fluent files in `server/locales/` (one
//! per language, compiled in; see `catalog::i18n`). A language is whatever
//! file is there.

use axum::http::{HeaderMap, header};

catalog::ui_words!();

/// The cookie that remembers the chosen language.
pub const COOKIE: &str = "shanlu_dash_lang";

impl Lang {
    /// `?lang=`, else the cookie, else `Accept-Language`, else Chinese.
    pub fn choose(query: Option<&str>, headers: &HeaderMap) -> Lang {
        if let Some(lang) = query.and_then(Lang::from_code) {
            return lang;
        }
        if let Some(lang) = super::cookie(headers, COOKIE).and_then(|v| Lang::from_code(&v)) {
            return lang;
        }
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| WORDS.from_accept_language(v))
            .map(Lang)
            .unwrap_or(Lang::ZH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_files_pass_the_check() {
        let check = words().check();
        assert!(check.passed(), "{check}");
    }
}
