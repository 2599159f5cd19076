//! How text becomes terms: folding, script classes, words, units and
//! phrases (see the parent module's "Terms").

#[derive(Default)]
pub(super) struct Terms {
    pub(super) words: Vec<String>,
    /// Han and Yi characters, Tibetan syllables.
    pub(super) units: Vec<String>,
    /// Adjacent pairs of units of the same script; Tibetan pairs keep their tsheg.
    pub(super) phrases: Vec<String>,
}

impl Terms {
    pub(super) fn add(&mut self, text: &str) {
        let mut word = String::new();
        let mut syllable = String::new();
        // The previous unit, while a phrase can still continue from it.
        let mut previous: Option<(Class, String)> = None;
        for c in fold(text) {
            let class = class(c);
            if class != Class::Word && !word.is_empty() {
                self.words.push(std::mem::take(&mut word));
            }
            if class != Class::Tibetan && !syllable.is_empty() {
                let unit = std::mem::take(&mut syllable);
                self.push_unit(Class::Tibetan, unit, &mut previous);
            }
            match class {
                Class::Word => {
                    word.push(c);
                    previous = None;
                }
                Class::Han | Class::Yi => self.push_unit(class, c.to_string(), &mut previous),
                Class::Tibetan => syllable.push(c),
                Class::Tsheg => {}
                Class::Separator => previous = None,
            }
        }
        if !word.is_empty() {
            self.words.push(word);
        }
        if !syllable.is_empty() {
            self.push_unit(Class::Tibetan, syllable, &mut previous);
        }
    }

    fn push_unit(&mut self, class: Class, unit: String, previous: &mut Option<(Class, String)>) {
        if let Some((previous_class, previous_unit)) = previous.as_ref()
            && *previous_class == class
        {
            let joiner = if class == Class::Tibetan {
                "\u{0F0B}"
            } else {
                ""
            };
            self.phrases.push(format!("{previous_unit}{joiner}{unit}"));
        }
        self.units.push(unit.clone());
        *previous = Some((class, unit));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// Letters and digits of spaced scripts.
    Word,
    Han,
    Yi,
    /// Part of a Tibetan syllable.
    Tibetan,
    /// Tibetan syllable separator: ends a syllable, not a phrase.
    Tsheg,
    /// Spaces, punctuation, symbols: end words and phrases.
    Separator,
}

pub(super) fn class(c: char) -> Class {
    if matches!(c, '\u{0F0B}' | '\u{0F0C}') {
        Class::Tsheg
    } else if matches!(c, '\u{0F00}'..='\u{0FFF}') {
        // Head marks, shad and other punctuation; the rest builds syllables.
        let punctuation = matches!(
            c,
            '\u{0F01}'..='\u{0F14}' | '\u{0F3A}'..='\u{0F3D}' | '\u{0FD0}'..='\u{0FDA}'
        );
        if punctuation {
            Class::Separator
        } else {
            Class::Tibetan
        }
    } else if matches!(c, '\u{A000}'..='\u{A4CF}') {
        Class::Yi
    } else if matches!(
        c,
        '\u{3007}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{F900}'..='\u{FAFF}'
            | '\u{20000}'..='\u{3134F}'
    ) {
        Class::Han
    } else if c.is_alphanumeric() || matches!(c, '\u{0300}'..='\u{036F}') {
        // Combining diacritics stay inside their word.
        Class::Word
    } else {
        Class::Separator
    }
}

/// Full-width ASCII to ASCII, then Unicode lowercase.
pub(super) fn fold(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
}

/// The folded text with every run of separators as one space, trimmed.
pub(super) fn flatten(text: &str) -> String {
    let mut flat = String::with_capacity(text.len());
    let mut space = false;
    for c in fold(text) {
        if matches!(class(c), Class::Separator | Class::Tsheg) {
            space = !flat.is_empty();
        } else {
            if space {
                flat.push(' ');
                space = false;
            }
            flat.push(c);
        }
    }
    flat
}
