//! The words shown to people, kept in Fluent files that translators edit
//! (issue 17): one `.ftl` file per language under a crate's `locales/`,
//! compiled in by its build script ([`embed`]).
//!
//! - [`Words`]: every language's file, parsed once. A text is looked up per
//!   key with a fallback: the reader's language, then Chinese (every school
//!   reads it), then English; a key missing everywhere shows as its own name,
//!   which `shanlu i18n check` makes sure never ships.
//! - [`tr!`](crate::tr): the one way code asks for a text, always with a
//!   literal key, so the build script can list the keys the code uses.
//! - [`Check`]: missing and unused keys per language, and files that do not
//!   parse.
//!
//! Plurals and word order belong to the files (Fluent selectors and
//! placeables), never to code that glues pieces together.

pub mod embed;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use fluent_bundle::FluentResource;
use fluent_bundle::concurrent::FluentBundle;
pub use fluent_bundle::{FluentArgs, FluentValue};
use fluent_syntax::ast;
use unic_langid::LanguageIdentifier;

/// The language every school reads, and the first fallback.
pub const CHINESE: &str = "zh";
/// The last fallback.
pub const ENGLISH: &str = "en";

/// The line at the top of a file whose translation is a draft for a native
/// speaker to check: the status page says so.
pub const NEEDS_REVIEW: &str = "### Needs review";

/// Stands for a piece of markup inside a translated sentence: code passes
/// it as the Fluent variable that marks the piece's place, then puts the
/// piece where [`split_at_slot`] finds it, so each language's word order
/// decides where the piece goes.
pub const SLOT: &str = "\u{E000}";

/// The text before and after [`SLOT`], if the text holds it.
pub fn split_at_slot(text: &str) -> Option<(&str, &str)> {
    text.split_once(SLOT)
}

/// Every key a language file must hold to name itself in the switcher.
pub const LANGUAGE_NAME: &str = "language-name";

/// A text from the files: `tr!(lang, "key")`, or with Fluent variables
/// `tr!(lang, "key", count = n, query = q)`. `lang` is anything with a
/// `text(key, args)` method; the key must be a literal, so that the build
/// script sees it.
#[macro_export]
macro_rules! tr {
    ($lang:expr, $key:literal) => {
        $lang.text($key, None)
    };
    ($lang:expr, $key:literal, $($name:ident = $value:expr),+ $(,)?) => {{
        let mut args = $crate::i18n::FluentArgs::new();
        $( args.set(stringify!($name), $value); )+
        $lang.text($key, Some(&args))
    }};
}

/// Defines, in a UI crate whose build script runs [`embed::generate`]:
/// `words()` (every language's [`Words`]), `sources()` (the files as
/// compiled in and the keys the code uses) and `Lang`, a language of the
/// crate's files, with `ZH`, `all`, `code`, `from_code`, `name` and `text`
/// (what [`tr!`](crate::tr) calls). The crate adds how a request picks one.
#[macro_export]
macro_rules! ui_words {
    () => {
        mod locales {
            include!(concat!(env!("OUT_DIR"), "/locales.rs"));
        }

        static WORDS: std::sync::LazyLock<$crate::i18n::Words> = std::sync::LazyLock::new(|| {
            $crate::i18n::Words::load(locales::FILES.iter().copied(), locales::USED)
        });

        /// Every language's words, for the status page and `shanlu i18n check`.
        pub fn words() -> &'static $crate::i18n::Words {
            &WORDS
        }

        /// The files as compiled in, and the keys the code uses.
        pub fn sources() -> (
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        ) {
            (locales::FILES, locales::USED)
        }

        /// A language: one of the crate's files.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct Lang(usize);

        impl Lang {
            /// Chinese: the build script puts its file first.
            pub const ZH: Lang = Lang(0);

            /// Every language, Chinese first and English last.
            pub fn all() -> impl Iterator<Item = Lang> {
                (0..WORDS.len()).map(Lang)
            }

            /// The BCP 47 code, as in the catalog and the `lang` attribute.
            pub fn code(self) -> &'static str {
                WORDS.code(self.0)
            }

            /// The language with this code, or with its primary subtag (see
            /// `Words::find`).
            pub fn from_code(code: &str) -> Option<Lang> {
                WORDS.find(code).map(Lang)
            }

            /// The language's name in itself, for the switcher.
            pub fn name(self) -> std::borrow::Cow<'static, str> {
                self.text($crate::i18n::LANGUAGE_NAME, None)
            }

            /// A label in this language, or its fallback; see `catalog::tr!`.
            pub fn text(
                self,
                key: &str,
                args: Option<&$crate::i18n::FluentArgs>,
            ) -> std::borrow::Cow<'static, str> {
                WORDS.text(self.0, key, args)
            }
        }
    };
}

/// One language: its parsed file and what the file holds.
struct Language {
    code: String,
    bundle: FluentBundle<FluentResource>,
    keys: BTreeSet<String>,
    needs_review: bool,
    errors: Vec<String>,
}

/// Every language's words, with the keys the code uses.
pub struct Words {
    languages: Vec<Language>,
    used: BTreeSet<String>,
    chinese: Option<usize>,
    english: Option<usize>,
}

impl Words {
    /// Parses each `(code, file text)`. A file that does not parse keeps
    /// the messages that do; [`Words::check`] lists its errors.
    pub fn load<I, C, T>(files: I, used: &[&str]) -> Words
    where
        I: IntoIterator<Item = (C, T)>,
        C: Into<String>,
        T: Into<String>,
    {
        let languages: Vec<Language> = files
            .into_iter()
            .map(|(code, text)| Language::parse(code.into(), text.into()))
            .collect();
        let find = |code: &str| languages.iter().position(|l| l.code == code);
        Words {
            chinese: find(CHINESE),
            english: find(ENGLISH),
            used: used.iter().map(|key| (*key).to_owned()).collect(),
            languages,
        }
    }

    /// How many languages there are; indices run from 0.
    pub fn len(&self) -> usize {
        self.languages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.languages.is_empty()
    }

    /// The index of the language with this code (`zh`, `bo`, `ii-x-…`).
    pub fn index(&self, code: &str) -> Option<usize> {
        self.languages
            .iter()
            .position(|l| l.code.eq_ignore_ascii_case(code))
    }

    /// The language a reader asked for by `code`: the file with exactly
    /// this code, else the one with its primary subtag (`zh-Hans-CN` is
    /// `zh`, `bo-CN` is `bo`).
    pub fn find(&self, code: &str) -> Option<usize> {
        let code = code.trim().replace('_', "-").to_ascii_lowercase();
        if let Some(exact) = self.index(&code) {
            return Some(exact);
        }
        self.index(code.split('-').next()?)
    }

    /// The first language of an `Accept-Language` header that has a file.
    pub fn from_accept_language(&self, header: &str) -> Option<usize> {
        header
            .split(',')
            .find_map(|item| self.find(item.split(';').next().unwrap_or("")))
    }

    /// The BCP 47 code of language `index`.
    pub fn code(&self, index: usize) -> &str {
        self.languages.get(index).map_or(CHINESE, |l| &l.code)
    }

    /// The file of language `index` is a draft waiting for review.
    pub fn needs_review(&self, index: usize) -> bool {
        self.languages.get(index).is_some_and(|l| l.needs_review)
    }

    /// The keys the code uses that language `index` lacks (shown from the
    /// fallback).
    pub fn missing(&self, index: usize) -> Vec<&str> {
        match self.languages.get(index) {
            Some(language) => self
                .used
                .iter()
                .filter(|key| !language.keys.contains(*key))
                .map(String::as_str)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The number of keys the code uses.
    pub fn used(&self) -> usize {
        self.used.len()
    }

    /// The text for `key` in language `index`, else in Chinese, else in
    /// English, else the key itself.
    pub fn text(&self, index: usize, key: &str, args: Option<&FluentArgs>) -> Cow<'_, str> {
        let order = [Some(index), self.chinese, self.english];
        for language in order.into_iter().flatten() {
            let Some(language) = self.languages.get(language) else {
                continue;
            };
            let Some(pattern) = language
                .bundle
                .get_message(key)
                .and_then(|message| message.value())
            else {
                continue;
            };
            let mut errors = Vec::new();
            let text = language.bundle.format_pattern(pattern, args, &mut errors);
            if !errors.is_empty() {
                tracing::warn!(language = %language.code, key, ?errors, "a text did not format whole");
            }
            return text;
        }
        Cow::Owned(key.to_owned())
    }

    /// Missing and unused keys per language, and parse errors.
    pub fn check(&self) -> Check {
        let languages = self
            .languages
            .iter()
            .enumerate()
            .map(|(index, language)| LanguageCheck {
                code: language.code.clone(),
                required: index_is(self.chinese, index) || index_is(self.english, index),
                needs_review: language.needs_review,
                missing: self.missing(index).into_iter().map(str::to_owned).collect(),
                unused: language
                    .keys
                    .iter()
                    .filter(|key| !self.used.contains(*key) && key.as_str() != LANGUAGE_NAME)
                    .cloned()
                    .collect(),
                errors: language.errors.clone(),
            })
            .collect();
        Check {
            languages,
            absent: [CHINESE, ENGLISH]
                .into_iter()
                .filter(|code| self.index(code).is_none())
                .map(str::to_owned)
                .collect(),
        }
    }
}

fn index_is(found: Option<usize>, index: usize) -> bool {
    found == Some(index)
}

impl Language {
    fn parse(code: String, text: String) -> Language {
        let needs_review = text
            .lines()
            .any(|line| line.trim_end().eq_ignore_ascii_case(NEEDS_REVIEW));
        let mut errors = Vec::new();
        let resource = match FluentResource::try_new(text) {
            Ok(resource) => resource,
            Err((resource, parse_errors)) => {
                errors.extend(
                    parse_errors
                        .iter()
                        .map(|err| describe(resource.source(), err)),
                );
                resource
            }
        };
        let keys = resource
            .entries()
            .filter_map(|entry| match entry {
                ast::Entry::Message(message) => Some(message.id.name.to_owned()),
                _ => None,
            })
            .collect();
        let tag: LanguageIdentifier = code.parse().unwrap_or_else(|_| {
            errors.push(format!("{code:?} is not a BCP 47 language tag"));
            LanguageIdentifier::default()
        });
        let mut bundle = FluentBundle::new_concurrent(vec![tag]);
        // No Unicode isolation marks around variables: every language here
        // runs left to right, and the marks would land inside HTML
        // attributes and copied text.
        bundle.set_use_isolating(false);
        if let Err(duplicates) = bundle.add_resource(resource) {
            errors.extend(duplicates.iter().map(|err| format!("{err}")));
        }
        Language {
            code,
            bundle,
            keys,
            needs_review,
            errors,
        }
    }
}

/// A parse error with its line number, for a translator.
fn describe(source: &str, err: &fluent_syntax::parser::ParserError) -> String {
    let line = source[..err.pos.start.min(source.len())]
        .lines()
        .count()
        .max(1);
    format!("line {line}: {}", err.kind)
}

/// `  what (n): key key key`, wrapped for a terminal.
fn list(f: &mut fmt::Formatter<'_>, what: &str, keys: &[String]) -> fmt::Result {
    write!(f, "  {what} ({}):", keys.len())?;
    let mut width = 80;
    for key in keys {
        if width + key.len() + 1 > 78 {
            write!(f, "\n   ")?;
            width = 3;
        }
        write!(f, " {key}")?;
        width += key.len() + 1;
    }
    writeln!(f)
}

/// What `shanlu i18n check` found.
#[derive(Debug)]
pub struct Check {
    pub languages: Vec<LanguageCheck>,
    /// `zh` or `en` has no file at all.
    pub absent: Vec<String>,
}

#[derive(Debug)]
pub struct LanguageCheck {
    pub code: String,
    /// Chinese and English must hold every key: they are the fallbacks.
    pub required: bool,
    pub needs_review: bool,
    pub missing: Vec<String>,
    pub unused: Vec<String>,
    pub errors: Vec<String>,
}

impl Check {
    /// Whether the files may ship: every file parses, Chinese and English
    /// hold every key the code uses, and no file holds a key nothing uses.
    /// Other languages may miss keys; those fall back.
    pub fn passed(&self) -> bool {
        self.absent.is_empty()
            && self.languages.iter().all(|language| {
                language.errors.is_empty()
                    && language.unused.is_empty()
                    && (language.missing.is_empty() || !language.required)
            })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for code in &self.absent {
            writeln!(
                f,
                "{code}: no file: every key falls back to it, so it must exist"
            )?;
        }
        for language in &self.languages {
            let state = match (language.missing.is_empty(), language.needs_review) {
                (true, false) => "complete",
                (true, true) => "complete, needs review",
                (false, false) => "incomplete",
                (false, true) => "incomplete, needs review",
            };
            writeln!(f, "{}: {state}", language.code)?;
            for err in &language.errors {
                writeln!(f, "  error: {err}")?;
            }
            if !language.missing.is_empty() {
                let why = if language.required {
                    "missing, required (zh and en are the fallbacks)"
                } else {
                    "missing, shown in Chinese"
                };
                list(f, why, &language.missing)?;
            }
            if !language.unused.is_empty() {
                list(f, "unused, no code asks for it", &language.unused)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reader<'a>(&'a Words, usize);

    impl Reader<'_> {
        fn text(&self, key: &str, args: Option<&FluentArgs>) -> String {
            self.0.text(self.1, key, args).into_owned()
        }
    }

    fn words() -> Words {
        Words::load(
            [
                (
                    "zh",
                    "language-name = 中文\nsite = 山路课堂\nlessons = { $count } 节课\n",
                ),
                ("ii", "### Needs review\nlanguage-name = ꆈꌠꉙ\n"),
                (
                    "en",
                    "language-name = English\nsite = shanlu classroom\nlessons = { $count ->\n    [one] one lesson\n   *[other] { $count } lessons\n}\n",
                ),
            ],
            &["site", "lessons"],
        )
    }

    #[test]
    fn a_missing_key_falls_back_to_chinese_not_to_its_name() {
        let words = words();
        let yi = Reader(&words, words.index("ii").expect("ii"));
        assert_eq!(tr!(yi, "site"), "山路课堂");
        assert_eq!(tr!(yi, "language-name"), "ꆈꌠꉙ");
        assert_eq!(tr!(yi, "no-such-key"), "no-such-key");
        assert!(words.needs_review(1));
        assert_eq!(words.missing(1), ["lessons", "site"]);
    }

    #[test]
    fn readers_are_matched_by_tag_then_primary_subtag() {
        let words = Words::load(
            [("zh", ""), ("bo", ""), ("bo-x-khams", ""), ("en", "")],
            &[],
        );
        assert_eq!(words.find("zh-Hans-CN"), Some(0));
        assert_eq!(words.find("bo_CN"), Some(1));
        assert_eq!(words.find("bo-x-Khams"), Some(2));
        assert_eq!(words.find("fr"), None);
        assert_eq!(words.from_accept_language("fr-FR,en;q=0.8"), Some(3));
        assert_eq!(words.from_accept_language("fr"), None);
    }

    #[test]
    fn plurals_come_from_the_file() {
        let words = words();
        let english = Reader(&words, words.index("en").expect("en"));
        assert_eq!(tr!(english, "lessons", count = 1), "one lesson");
        assert_eq!(tr!(english, "lessons", count = 12), "12 lessons");
        let chinese = Reader(&words, 0);
        assert_eq!(tr!(chinese, "lessons", count = 1), "1 节课");
    }

    #[test]
    fn the_check_fails_on_a_key_the_code_uses_but_zh_and_en_lack() {
        assert!(words().check().passed(), "{}", words().check());
        let short = Words::load(
            [
                ("zh", "language-name = 中文\n"),
                ("en", "language-name = English\n"),
            ],
            &["site"],
        );
        let check = short.check();
        assert!(!check.passed());
        let report = check.to_string();
        assert!(report.contains("missing, required"), "{report}");
        assert!(report.contains("(1):\n    site"), "{report}");
    }

    #[test]
    fn the_check_names_unused_keys_and_parse_errors_with_their_line() {
        let words = Words::load(
            [
                ("zh", "language-name = 中文\nold = 旧\n"),
                ("en", "language-name = English\n\nbroken = { $x\n"),
            ],
            &[],
        );
        let check = words.check();
        assert!(!check.passed());
        assert_eq!(check.languages[0].unused, ["old"]);
        let errors = &check.languages[1].errors;
        assert!(
            errors.iter().any(|e| e.starts_with("line 3:")),
            "{errors:?}"
        );
        let absent = Words::load([("zh", "language-name = 中文\n")], &[]).check();
        assert_eq!(absent.absent, ["en"]);
        assert!(!absent.passed());
    }
}
