//! The dashboard's words, from the Fluent files in `server/locales/` (one
//! per language, compiled in; see `catalog::i18n`). A language is whatever
//! file is there.

use std::borrow::Cow;
use std::sync::LazyLock;

use axum::http::{HeaderMap, header};
use catalog::i18n::{self, FluentArgs, Words};

mod locales {
    include!(concat!(env!("OUT_DIR"), "/locales.rs"));
}

static WORDS: LazyLock<Words> =
    LazyLock::new(|| Words::load(locales::FILES.iter().copied(), locales::USED));

/// Every language's words, for `shanlu i18n check`.
pub fn words() -> &'static Words {
    &WORDS
}

/// The dashboard's files as compiled in, and the keys its code uses.
pub fn sources() -> (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
) {
    (locales::FILES, locales::USED)
}

/// A language the dashboard speaks: one of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(usize);

/// The cookie that remembers the chosen language.
pub const COOKIE: &str = "shanlu_dash_lang";

impl Lang {
    /// Chinese: the build script puts its file first.
    pub const ZH: Lang = Lang(0);

    pub fn all() -> impl Iterator<Item = Lang> {
        (0..WORDS.len()).map(Lang)
    }

    pub fn code(self) -> &'static str {
        WORDS.code(self.0)
    }

    pub fn name(self) -> Cow<'static, str> {
        self.text(i18n::LANGUAGE_NAME, None)
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        WORDS.find(code).map(Lang)
    }

    /// A label in this language, or its fallback; see `catalog::tr!`.
    pub fn text(self, key: &str, args: Option<&FluentArgs>) -> Cow<'static, str> {
        WORDS.text(self.0, key, args)
    }

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
