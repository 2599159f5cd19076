//! Edge names, in the school's own script (issue 12).
//!
//! Administrators name schools in Chinese, Yi and Tibetan, so an edge name is
//! Unicode: letters and digits of any script, combining marks after them
//! (Tibetan vowel signs and subjoined letters), the Tibetan tsheg `་` between
//! syllables, the whole Yi block, and `-`, `_`, `.` as before. It is stored
//! NFC-normalised, so the same name typed in NFD and NFC is one edge.
//! Control, format and separator characters (spaces, zero-width spaces),
//! `/`, `\` and other punctuation are refused, and so is a name that begins
//! with anything but a letter or a digit (`..`, `-x`).
//!
//! Where only ASCII will do (a file name, a metrics label, an HTTP header),
//! [`EdgeName::ascii_id`] gives a stable id made of the name's ASCII letters
//! and digits and a short hash of the whole name.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Characters of an edge name, after NFC normalisation.
pub const MAX_EDGE_NAME_CHARS: usize = 64;

/// The Tibetan intersyllabic tsheg, which separates the syllables of a word.
const TSHEG: char = '\u{0F0B}';

/// A checked edge name: NFC, non-empty, at most [`MAX_EDGE_NAME_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeName(String);

/// Why a name cannot name an edge. Each message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeNameError {
    #[error("the edge name is empty; give the school's name, e.g. --name 昭觉县测试小学")]
    Empty,
    #[error(
        "edge name {name:?} is {chars} characters long; the limit is {MAX_EDGE_NAME_CHARS}: shorten it"
    )]
    TooLong { name: String, chars: usize },
    #[error(
        "edge name {name:?} must begin with a letter or a digit, not {first:?}; write the school's name first"
    )]
    BadStart { name: String, first: char },
    #[error(
        "edge name {name:?} contains {found:?} (U+{code:04X}), which is not allowed: use letters and digits of any script, combining marks after them, the tsheg (་), '-', '_' or '.'; no spaces, slashes or invisible characters"
    )]
    BadChar {
        name: String,
        found: char,
        code: u32,
    },
}

impl EdgeName {
    /// Normalises `text` to NFC and checks it.
    pub fn parse(text: &str) -> Result<EdgeName, EdgeNameError> {
        let name: String = text.nfc().collect();
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err(EdgeNameError::Empty);
        };
        if let Some(found) = name.chars().find(|&c| !allowed(c)) {
            return Err(EdgeNameError::BadChar {
                found,
                code: u32::from(found),
                name,
            });
        }
        if !starts_a_name(first) {
            return Err(EdgeNameError::BadStart { name, first });
        }
        let count = name.chars().count();
        if count > MAX_EDGE_NAME_CHARS {
            return Err(EdgeNameError::TooLong { name, chars: count });
        }
        Ok(EdgeName(name))
    }

    /// The name, NFC.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable ASCII id for places that take only ASCII (file names, metrics
    /// labels, HTTP headers): the name's ASCII letters, digits, `-` and `_`
    /// (at most 24), then `-` and the first 8 hex digits of the BLAKE3 of the
    /// name. `school-1` is `school-1-<hash>`; `昭觉县测试小学` is `edge-<hash>`.
    pub fn ascii_id(&self) -> String {
        let kept: String = self
            .0
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .take(24)
            .collect();
        let stem = if kept.is_empty() { "edge" } else { &kept };
        let hash = catalog::Hash::of(self.0.as_bytes()).to_hex();
        format!("{stem}-{}", &hash[..8])
    }
}

impl fmt::Display for EdgeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may begin a name: a letter or a digit of any script (a Yi
/// radical counts as a Yi letter).
fn starts_a_name(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number
    ) || is_yi(c)
}

/// Whether `c` may appear in a name at all.
fn allowed(c: char) -> bool {
    starts_a_name(c)
        || c.general_category_group() == GeneralCategoryGroup::Mark
        || matches!(c, TSHEG | '-' | '_' | '.')
}

/// The Yi syllables and radicals (U+A000–U+A4CF).
fn is_yi(c: char) -> bool {
    ('\u{A000}'..='\u{A4CF}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: school names in Chinese, Yi and Tibetan are edge names.
    #[test]
    fn issue_12_names_in_chinese_yi_and_tibetan_pass() {
        for name in [
            "昭觉县测试小学",
            "ꆈꌠꁱꂷ",
            "བོད་ཡིག་སློབ་གྲྭ",
            "school-1",
            "a.b_c",
            "ꒃ-radical",
        ] {
            let parsed = EdgeName::parse(name).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(parsed.as_str(), name);
        }
    }

    /// Issue 12: path, control, invisible and separator characters, empty,
    /// whitespace-only and over-long names are refused.
    #[test]
    fn issue_12_unsafe_names_are_refused() {
        let long = "学".repeat(MAX_EDGE_NAME_CHARS + 1);
        let cases: [(&str, &str); 10] = [
            ("a/b", "'/'"),
            ("a\\b", "'\\\\'"),
            ("..", "must begin with a letter"),
            ("\u{200B}x", "U+200B"),
            ("x\u{0000}", "U+0000"),
            ("x\u{202E}y", "U+202E"),
            (&long, "the limit is 64"),
            ("", "empty"),
            ("   ", "U+0020"),
            ("\u{0F7C}x", "must begin with a letter"),
        ];
        for (name, expected) in cases {
            let err = EdgeName::parse(name).expect_err(name).to_string();
            assert!(err.contains(expected), "{name:?}: {err}");
        }
        // Exactly at the limit is fine.
        EdgeName::parse(&"学".repeat(MAX_EDGE_NAME_CHARS)).expect("64 characters");
    }

    /// Issue 12: the same name in NFD and NFC is one name.
    #[test]
    fn issue_12_nfd_and_nfc_are_one_name() {
        let nfc = "École-Lǐ";
        let nfd: String = nfc.nfd().collect();
        assert_ne!(nfc, nfd);
        assert_eq!(
            EdgeName::parse(&nfd).expect("nfd"),
            EdgeName::parse(nfc).expect("nfc")
        );
        assert_eq!(EdgeName::parse(&nfd).expect("nfd").as_str(), nfc);
    }

    #[test]
    fn issue_12_ascii_ids_are_ascii_stable_and_distinct() {
        let chinese = EdgeName::parse("昭觉县测试小学").expect("name");
        let id = chinese.ascii_id();
        assert!(id.starts_with("edge-") && id.len() == 13, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_eq!(
            id,
            EdgeName::parse("昭觉县测试小学").expect("name").ascii_id()
        );
        let other = EdgeName::parse("昭觉县测试中学").expect("name").ascii_id();
        assert_ne!(id, other);
        let ascii = EdgeName::parse("school-1").expect("name").ascii_id();
        assert!(ascii.starts_with("school-1-"), "{ascii}");
    }
}
