//! The classroom search: course and lesson titles, summaries and tags in Chinese,
//! Yi, Tibetan and English.
//!
//! Goals: find a term inside scripts written without word spaces, rank title hits
//! first, keep unrelated documents out, stay deterministic. Built once per catalog
//! change, queried in memory. Non-goals: word segmentation by dictionary, stemming,
//! spelling correction, NFKC beyond full-width ASCII.
//!
//!
//! The index and its queries are here; how text becomes terms is [`terms`].
//!
//! # Terms
//! Text is folded (full-width ASCII to ASCII, then Unicode lowercase) and split
//! at anything that is not a letter or digit: ASCII and CJK punctuation, spaces,
//! Tibetan shad and head marks.
//! - Latin and other spaced scripts, and digits: one term per word.
//! - Han and Yi: one term per character (a *unit*) and one per pair of
//!   adjacent characters of the same script (a *phrase*).
//! - Tibetan: one unit per syllable (split at the tsheg `་`/`༌`) and one phrase
//!   per pair of syllables joined by a tsheg.
//!
//! # Matching
//! A document matches when it holds, in any field, every query word (the last
//! one may also be a prefix of at least two characters, for search as you type),
//! every query unit, and at least 60% (rounded up) of the query's phrases. So
//! `加法` needs the two characters side by side, and a query of one character or
//! syllable needs only that.
//!
//! # Ranking
//! Each matched query term adds `field weight × ln(1 + N / df) × kind`, where the
//! field weight sums title 3, tags 2, summaries 1 and subtitles 0.5 over the
//! fields holding the term, and kind is 2 for words and phrases, 1.4 for a prefix and 1 for a unit.
//! A title containing the whole folded query multiplies the score by 1.5. Equal
//! scores are ordered by [`DocKey`].

mod terms;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use terms::{Terms, flatten};

/// What a search result points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DocKey {
    pub course: String,
    /// `None` for the course itself.
    pub lesson: Option<String>,
}

/// One searchable thing: a course or a lesson, its texts in any languages.
pub struct Doc {
    pub key: DocKey,
    pub titles: Vec<String>,
    pub summaries: Vec<String>,
    pub tags: Vec<String>,
    /// What the lesson's videos say: their subtitles' text (issue 17).
    pub spoken: Vec<String>,
}

/// A matching document and how well it matched (higher is better).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hit {
    pub key: DocKey,
    pub score: f32,
}

/// An inverted index over [`Doc`]s: term → the documents and fields holding it.
#[derive(Debug)]
pub struct SearchIndex {
    docs: Vec<Entry>,
    /// Sorted, so the last query word can be looked up as a prefix.
    terms: BTreeMap<String, usize>,
    /// Per term id, by increasing document id.
    postings: Vec<Vec<Posting>>,
}

#[derive(Debug)]
struct Entry {
    key: DocKey,
    /// Folded titles with separators collapsed to one space, for the whole-query bonus.
    titles: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: usize,
    /// Bits of [`TITLE`], [`TAGS`], [`SUMMARY`], [`SPOKEN`].
    fields: u8,
}

const TITLE: u8 = 1;
const TAGS: u8 = 2;
const SUMMARY: u8 = 4;
const SPOKEN: u8 = 8;

const WORD: f32 = 2.0;
const PREFIX: f32 = 1.4;
const UNIT: f32 = 1.0;
const PHRASE: f32 = 2.0;
/// Multiplier when a title contains the whole folded query.
const TITLE_PHRASE_BONUS: f32 = 1.5;
/// Shortest last query word that is also matched as a prefix.
const MIN_PREFIX_CHARS: usize = 2;

fn field_weight(fields: u8) -> f32 {
    let mut weight = 0.0;
    if fields & TITLE != 0 {
        weight += 3.0;
    }
    if fields & TAGS != 0 {
        weight += 2.0;
    }
    if fields & SUMMARY != 0 {
        weight += 1.0;
    }
    if fields & SPOKEN != 0 {
        weight += 0.5;
    }
    weight
}

impl SearchIndex {
    /// Indexes `docs`; keys are expected to be unique.
    pub fn build(docs: impl IntoIterator<Item = Doc>) -> SearchIndex {
        let mut index = SearchIndex {
            docs: Vec::new(),
            terms: BTreeMap::new(),
            postings: Vec::new(),
        };
        for doc in docs {
            let id = index.docs.len();
            let mut fields: HashMap<String, u8> = HashMap::new();
            for (texts, field) in [
                (&doc.titles, TITLE),
                (&doc.tags, TAGS),
                (&doc.summaries, SUMMARY),
                (&doc.spoken, SPOKEN),
            ] {
                let mut terms = Terms::default();
                for text in texts {
                    terms.add(text);
                }
                for term in terms
                    .words
                    .into_iter()
                    .chain(terms.units)
                    .chain(terms.phrases)
                {
                    *fields.entry(term).or_default() |= field;
                }
            }
            for (term, fields) in fields {
                let postings = &mut index.postings;
                let term_id = *index.terms.entry(term).or_insert_with(|| {
                    postings.push(Vec::new());
                    postings.len() - 1
                });
                postings[term_id].push(Posting { doc: id, fields });
            }
            let titles = doc.titles.iter().map(|title| flatten(title)).collect();
            index.docs.push(Entry {
                key: doc.key,
                titles,
            });
        }
        index
    }

    /// Best first; empty/whitespace query → empty. At most `limit` hits.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Hit> {
        if limit == 0 {
            return Vec::new();
        }
        let Some(plan) = self.plan(query) else {
            return Vec::new();
        };

        #[derive(Clone, Copy, Default)]
        struct Tally {
            required: usize,
            phrases: usize,
            score: f32,
        }
        let mut tallies = vec![Tally::default(); self.docs.len()];
        // Best contribution of the current requirement per document; every
        // contribution is positive, so 0 means "not seen yet".
        let mut best = vec![0.0_f32; self.docs.len()];
        let mut touched = Vec::new();
        for alternatives in &plan.required {
            for &(term, kind) in alternatives {
                let idf = self.idf(term);
                for posting in &self.postings[term] {
                    let score = field_weight(posting.fields) * idf * kind;
                    let slot = &mut best[posting.doc];
                    if *slot == 0.0 {
                        touched.push(posting.doc);
                    }
                    *slot = slot.max(score);
                }
            }
            for doc in touched.drain(..) {
                tallies[doc].required += 1;
                tallies[doc].score += best[doc];
                best[doc] = 0.0;
            }
        }
        for &term in &plan.phrases {
            let idf = self.idf(term);
            for posting in &self.postings[term] {
                let tally = &mut tallies[posting.doc];
                tally.phrases += 1;
                tally.score += field_weight(posting.fields) * idf * PHRASE;
            }
        }

        let mut hits: Vec<(usize, f32)> = tallies
            .iter()
            .enumerate()
            .filter(|(_, tally)| {
                tally.required == plan.required.len() && tally.phrases >= plan.phrases_needed
            })
            .map(|(doc, tally)| {
                let whole = !plan.flat.is_empty()
                    && self.docs[doc]
                        .titles
                        .iter()
                        .any(|title| title.contains(&plan.flat));
                let bonus = if whole { TITLE_PHRASE_BONUS } else { 1.0 };
                (doc, tally.score * bonus)
            })
            .collect();
        hits.sort_unstable_by(|(a, a_score), (b, b_score)| {
            b_score
                .total_cmp(a_score)
                .then_with(|| self.docs[*a].key.cmp(&self.docs[*b].key))
        });
        hits.truncate(limit);
        hits.into_iter()
            .map(|(doc, score)| Hit {
                key: self.docs[doc].key.clone(),
                score,
            })
            .collect()
    }

    /// How many documents are indexed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// `ln(1 + N / df)`: rarer terms count more.
    fn idf(&self, term: usize) -> f32 {
        let df = self.postings[term].len().max(1) as f32;
        (1.0 + self.docs.len() as f32 / df).ln()
    }

    /// Resolves `query` against the vocabulary; `None` when nothing can match.
    fn plan(&self, query: &str) -> Option<Plan> {
        let mut terms = Terms::default();
        terms.add(query);
        if terms.words.is_empty() && terms.units.is_empty() {
            return None;
        }
        let mut required = Vec::new();
        let last = terms.words.pop();
        let mut seen = HashSet::new();
        for word in &terms.words {
            if Some(word) != last.as_ref() && seen.insert(word.as_str()) {
                required.push(vec![(*self.terms.get(word)?, WORD)]);
            }
        }
        if let Some(last) = &last {
            let mut alternatives = Vec::new();
            if last.chars().count() >= MIN_PREFIX_CHARS {
                let from = (Bound::Included(last.as_str()), Bound::Unbounded);
                for (term, &id) in self.terms.range::<str, _>(from) {
                    if !term.starts_with(last.as_str()) {
                        break;
                    }
                    alternatives.push((id, if term == last { WORD } else { PREFIX }));
                }
            } else if let Some(&id) = self.terms.get(last) {
                alternatives.push((id, WORD));
            }
            if alternatives.is_empty() {
                return None;
            }
            required.push(alternatives);
        }
        for unit in &terms.units {
            if seen.insert(unit.as_str()) {
                required.push(vec![(*self.terms.get(unit)?, UNIT)]);
            }
        }
        let mut phrases = Vec::new();
        let mut distinct = 0_usize;
        for phrase in &terms.phrases {
            if seen.insert(phrase.as_str()) {
                distinct += 1;
                phrases.extend(self.terms.get(phrase));
            }
        }
        let phrases_needed = (distinct * 3).div_ceil(5);
        if phrases.len() < phrases_needed {
            return None;
        }
        Some(Plan {
            required,
            phrases,
            phrases_needed,
            flat: flatten(query),
        })
    }
}

/// A query resolved against the index's vocabulary.
struct Plan {
    /// Each entry must be met by a document through one of its terms (with its kind
    /// factor); the best one scores.
    required: Vec<Vec<(usize, f32)>>,
    /// The query's phrases that occur in the index.
    phrases: Vec<usize>,
    /// How many phrases a document must hold: 60% of the query's, rounded up.
    phrases_needed: usize,
    /// The folded query, for the whole-query title bonus.
    flat: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(course: &str) -> DocKey {
        DocKey {
            course: course.to_owned(),
            lesson: None,
        }
    }

    fn doc(course: &str, title: &str, summary: &str) -> Doc {
        Doc {
            key: key(course),
            titles: vec![title.to_owned()],
            summaries: vec![summary.to_owned()],
            tags: Vec::new(),
            spoken: Vec::new(),
        }
    }

    fn courses(index: &SearchIndex, query: &str) -> Vec<String> {
        index
            .search(query, 10)
            .into_iter()
            .map(|hit| hit.key.course)
            .collect()
    }

    #[test]
    fn chinese_term_inside_a_title_without_spaces() {
        let index = SearchIndex::build([
            doc("add", "二十以内的加法", ""),
            doc("count", "数到二十", ""),
            doc("clock", "认识钟表", "时间"),
        ]);
        assert_eq!(courses(&index, "加法"), ["add"]);
        assert_eq!(courses(&index, "数"), ["count"]);
        assert_eq!(courses(&index, "二十"), ["add", "count"]);
        assert!(courses(&index, "钟法").is_empty());
    }

    #[test]
    fn chinese_characters_must_be_adjacent() {
        // Both characters of 加法 occur, but not side by side.
        let index = SearchIndex::build([doc("apart", "加一加", "方法")]);
        assert!(courses(&index, "加法").is_empty());
        assert_eq!(courses(&index, "加"), ["apart"]);
    }

    #[test]
    fn adjacent_characters_rank_above_scattered() {
        // Same fields and characters; "b" holds all four pairs of the query, "a" three.
        let index =
            SearchIndex::build([doc("a", "甲", "加法，以内的"), doc("b", "乙", "以内的加法")]);
        assert_eq!(courses(&index, "以内的加法"), ["b", "a"]);
    }

    #[test]
    fn tibetan_syllables_and_phrases() {
        let index = SearchIndex::build([
            doc("sum", "ཉི་ཤུའི་ནང་གི་སྡོམ་རྩིས།", ""),
            doc("math", "ཨང་རྩིས།", ""),
        ]);
        assert_eq!(courses(&index, "སྡོམ"), ["sum"]);
        assert_eq!(courses(&index, "རྩིས"), ["math", "sum"]);
        // The phrase needs both syllables together; "math" has only རྩིས.
        assert_eq!(courses(&index, "སྡོམ་རྩིས"), ["sum"]);
        assert_eq!(courses(&index, "སྡོམ་རྩིས།"), ["sum"]);
        // Syllables, not substrings: ཤུ is not ཤུའི.
        assert!(courses(&index, "ཤུ").is_empty());
    }

    #[test]
    fn yi_syllables_without_spaces() {
        let index = SearchIndex::build([
            doc("yi", "ꌕꇖꆏ ꌠꀕ", ""),
            doc("apart", "ꇖ ꌕ", ""),
            doc("other", "ꆏꌕ", ""),
        ]);
        assert_eq!(courses(&index, "ꌕꇖ"), ["yi"]);
        assert_eq!(courses(&index, "ꌠ"), ["yi"]);
    }

    #[test]
    fn english_case_prefix_and_all_words() {
        let index = SearchIndex::build([
            doc("add", "Addition within twenty", ""),
            doc("sub", "Subtraction within twenty", "Take away"),
        ]);
        assert_eq!(courses(&index, "add"), ["add"]);
        assert_eq!(courses(&index, "ADDITION"), ["add"]);
        assert_eq!(courses(&index, "within twenty"), ["add", "sub"]);
        assert_eq!(courses(&index, "addition twenty"), ["add"]);
        assert_eq!(courses(&index, "twenty add"), ["add"]);
        assert!(courses(&index, "addition hundred").is_empty());
        // Only the last word is a prefix.
        assert!(courses(&index, "add twenty").is_empty());
        // One letter is not a prefix.
        assert!(courses(&index, "a").is_empty());
    }

    #[test]
    fn title_match_outranks_summary_match() {
        let index = SearchIndex::build([
            doc("a", "Numbers", "Practice addition"),
            doc("b", "Addition", "Numbers to twenty"),
        ]);
        assert_eq!(courses(&index, "addition"), ["b", "a"]);
        assert_eq!(courses(&index, "ａｄｄｉｔｉｏｎ"), ["b", "a"]);
        assert_eq!(courses(&index, "ＡＤＤ"), ["b", "a"]);
    }

    #[test]
    fn whole_query_in_title_gets_a_bonus() {
        let index = SearchIndex::build([
            doc("a", "Addition within twenty", ""),
            doc("b", "Twenty: addition facts", ""),
        ]);
        let hits = index.search("twenty addition", 10);
        assert_eq!(
            hits.iter()
                .map(|hit| hit.key.course.as_str())
                .collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(hits[0].score > hits[1].score);
    }

    #[test]
    fn rarer_terms_weigh_more() {
        let index = SearchIndex::build([
            doc("a", "Numbers", "Fractions"),
            doc("b", "Fractions", "Numbers"),
            doc("c", "Numbers to ten", ""),
            doc("d", "Numbers to twenty", ""),
        ]);
        // "a" has the common word in its title, "b" the rare one.
        assert_eq!(courses(&index, "fractions numbers"), ["b", "a"]);
    }

    #[test]
    fn fields_and_languages_mix() {
        let index = SearchIndex::build([Doc {
            key: DocKey {
                course: "math".to_owned(),
                lesson: Some("l1".to_owned()),
            },
            titles: vec!["二十以内的加法".to_owned(), "Addition".to_owned()],
            summaries: vec!["ཉི་ཤུའི་ནང་གི་སྡོམ་རྩིས།".to_owned()],
            spoken: Vec::new(),
            tags: vec!["ꌕꇖ".to_owned()],
        }]);
        for query in ["加法", "addition", "སྡོམ་རྩིས", "ꌕꇖ", "加法 addition"]
        {
            let hits = index.search(query, 10);
            assert_eq!(hits.len(), 1, "{query}");
            assert_eq!(hits[0].key.lesson.as_deref(), Some("l1"));
        }
    }

    #[test]
    fn empty_query_and_limit() {
        let index =
            SearchIndex::build(["e", "d", "c", "b", "a"].map(|course| doc(course, "Addition", "")));
        assert_eq!(index.len(), 5);
        assert!(!index.is_empty());
        for query in ["", "   ", "。，！", "་།"] {
            assert!(index.search(query, 10).is_empty(), "{query:?}");
        }
        // Equal scores come in key order.
        assert_eq!(index.search("addition", 2).len(), 2);
        assert_eq!(courses(&index, "addition"), ["a", "b", "c", "d", "e"]);
        assert!(index.search("addition", 0).is_empty());
        assert!(SearchIndex::build([]).search("addition", 10).is_empty());
        assert!(SearchIndex::build([]).is_empty());
    }
}
