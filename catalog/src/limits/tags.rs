//! BCP 47 (RFC 5646) well-formedness of language tags, by a small hand-written checker.

use super::*;

/// Checks that `tag` is a well-formed BCP 47 language tag of at most
/// [`MAX_LANGUAGE_TAG_LEN`] characters; `field` names where it was found.
pub fn check_language_tag(field: &str, tag: &str) -> Result<(), LimitError> {
    well_formed_tag(tag).map_err(|reason| LimitError::BadLanguageTag {
        field: field.to_owned(),
        tag: shorten(tag),
        reason,
    })
}

/// RFC 5646 §2.1 grandfathered tags, which the langtag syntax does not cover.
pub(super) const GRANDFATHERED: [&str; 26] = [
    "en-GB-oed",
    "i-ami",
    "i-bnn",
    "i-default",
    "i-enochian",
    "i-hak",
    "i-klingon",
    "i-lux",
    "i-mingo",
    "i-navajo",
    "i-pwn",
    "i-tao",
    "i-tay",
    "i-tsu",
    "sgn-BE-FR",
    "sgn-BE-NL",
    "sgn-CH-DE",
    "art-lojban",
    "cel-gaulish",
    "no-bok",
    "no-nyn",
    "zh-guoyu",
    "zh-hakka",
    "zh-min",
    "zh-min-nan",
    "zh-xiang",
];

/// RFC 5646 §2.1 syntax, case-insensitive:
///
/// ```text
/// langtag    = language ["-" script] ["-" region] *("-" variant) *("-" extension) ["-" privateuse]
/// language   = 2*3ALPHA ["-" extlang] / 4ALPHA / 5*8ALPHA      extlang = 3ALPHA *2("-" 3ALPHA)
/// script     = 4ALPHA                 region = 2ALPHA / 3DIGIT
/// variant    = 5*8alphanum / (DIGIT 3alphanum)
/// extension  = singleton 1*("-" (2*8alphanum))                  singleton = alphanum except x
/// privateuse = "x" 1*("-" (1*8alphanum))
/// ```
pub(super) fn well_formed_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() {
        return Err("it is empty".into());
    }
    let chars = tag.chars().count();
    if chars > MAX_LANGUAGE_TAG_LEN {
        return Err(format!(
            "it is {chars} characters long; the limit is {MAX_LANGUAGE_TAG_LEN}"
        ));
    }
    if let Some(bad) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{bad:?} is not allowed: only ASCII letters, digits and `-`"
        ));
    }
    if GRANDFATHERED.iter().any(|g| g.eq_ignore_ascii_case(tag)) {
        return Ok(());
    }
    let subtags: Vec<&str> = tag.split('-').collect();
    if subtags.iter().any(|s| s.is_empty()) {
        return Err("it has an empty subtag (a leading, trailing or doubled `-`)".into());
    }
    let alpha = |s: &str| s.bytes().all(|b| b.is_ascii_alphabetic());
    let digit = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mut rest = subtags.as_slice();
    let private = |rest: &[&str]| -> Result<(), String> {
        // rest[0] is the `x`.
        if rest.len() < 2 {
            return Err("the private-use `x` has no subtag after it".into());
        }
        match rest[1..].iter().find(|s| s.len() > 8) {
            Some(long) => Err(format!(
                "private-use subtag {long:?} is longer than 8 characters"
            )),
            None => Ok(()),
        }
    };
    let first = rest[0];
    if first.eq_ignore_ascii_case("x") {
        return private(rest);
    }
    if !(alpha(first) && (2..=8).contains(&first.len())) {
        return Err(format!(
            "the language subtag {first:?} must be 2 to 8 letters"
        ));
    }
    rest = &rest[1..];
    if first.len() <= 3 {
        let mut extlangs = 0;
        while let Some(s) = rest.first()
            && s.len() == 3
            && alpha(s)
        {
            extlangs += 1;
            if extlangs > 3 {
                return Err("more than three extended language subtags".into());
            }
            rest = &rest[1..];
        }
    }
    if let Some(s) = rest.first()
        && s.len() == 4
        && alpha(s)
    {
        rest = &rest[1..];
    }
    if let Some(s) = rest.first()
        && ((s.len() == 2 && alpha(s)) || (s.len() == 3 && digit(s)))
    {
        rest = &rest[1..];
    }
    while let Some(s) = rest.first()
        && ((5..=8).contains(&s.len()) || (s.len() == 4 && s.as_bytes()[0].is_ascii_digit()))
    {
        rest = &rest[1..];
    }
    while let Some(s) = rest.first()
        && s.len() == 1
        && !s.eq_ignore_ascii_case("x")
    {
        let values = rest[1..]
            .iter()
            .take_while(|v| (2..=8).contains(&v.len()))
            .count();
        if values == 0 {
            return Err(format!("the extension {s:?} has no subtag after it"));
        }
        rest = &rest[1 + values..];
    }
    match rest.first() {
        None => Ok(()),
        Some(s) if s.eq_ignore_ascii_case("x") => private(rest),
        Some(s) => Err(format!("the subtag {s:?} is out of place")),
    }
}
