//! Localized text: one string per language tag, read back with a fallback order.
//!
//! Tags are BCP 47 language tags as the classroom uses them: `zh` Chinese,
//! `ii` Nuosu Yi, `bo` Tibetan, `en` English. Any other well-formed tag
//! (`zh-Hans`, `bo-CN`) is kept as given; a publish refuses tags that are not
//! well-formed and texts over their limits ([`crate::limits`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The languages shanlu's classroom is translated into, in its default fallback order.
pub const UI_LANGUAGES: [&str; 4] = ["zh", "ii", "bo", "en"];

/// Text in several languages, keyed by language tag.
///
/// A `BTreeMap` keeps the encoding deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LocalizedText(BTreeMap<String, String>);

impl LocalizedText {
    pub fn new() -> Self {
        Self::default()
    }

    /// Text in one language.
    pub fn single(lang: &str, text: impl Into<String>) -> Self {
        let mut map = BTreeMap::new();
        map.insert(lang.to_owned(), text.into());
        LocalizedText(map)
    }

    pub fn insert(&mut self, lang: &str, text: impl Into<String>) {
        self.0.insert(lang.to_owned(), text.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The languages present, in tag order.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every (language, text) pair, in tag order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(lang, text)| (lang.as_str(), text.as_str()))
    }

    /// The text in exactly this language.
    pub fn exact(&self, lang: &str) -> Option<&str> {
        self.0.get(lang).map(String::as_str)
    }

    /// The best text for a reader who prefers `preferred` (most wanted first):
    /// each preferred language, then Chinese, English, Yi, Tibetan, then any.
    pub fn get(&self, preferred: &[&str]) -> Option<&str> {
        preferred
            .iter()
            .chain(["zh", "en", "ii", "bo"].iter())
            .find_map(|lang| self.exact(lang))
            .or_else(|| self.0.values().next().map(String::as_str))
    }
}

impl FromIterator<(String, String)> for LocalizedText {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        LocalizedText(iter.into_iter().collect())
    }
}

/// Guesses the language of a short text (a folder name) from its script:
/// Yi syllables → `ii`, Tibetan → `bo`, Han → `zh`, anything else → `en`.
pub fn guess_language(text: &str) -> &'static str {
    let mut han = 0usize;
    for ch in text.chars() {
        match ch as u32 {
            0xA000..=0xA4CF => return "ii",
            0x0F00..=0x0FFF => return "bo",
            0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF => han += 1,
            _ => {}
        }
    }
    if han > 0 { "zh" } else { "en" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_prefers_reader_then_default_order() {
        let mut text = LocalizedText::new();
        text.insert("en", "Counting");
        text.insert("zh", "数数");
        assert_eq!(text.get(&["bo"]), Some("数数"));
        assert_eq!(text.get(&["en"]), Some("Counting"));
        assert_eq!(text.get(&[]), Some("数数"));
    }

    #[test]
    fn fallback_uses_any_language_last() {
        let text = LocalizedText::single("fr", "Compter");
        assert_eq!(text.get(&["zh"]), Some("Compter"));
        assert_eq!(LocalizedText::new().get(&["zh"]), None);
    }

    #[test]
    fn guesses_language_from_script() {
        assert_eq!(guess_language("数学"), "zh");
        assert_eq!(guess_language("ꆈꌠꁱꂷ"), "ii");
        assert_eq!(guess_language("བོད་ཡིག"), "bo");
        assert_eq!(guess_language("counting"), "en");
        assert_eq!(guess_language("01-加法"), "zh");
    }
}
