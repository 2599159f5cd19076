//! HTTP byte ranges (RFC 9110 §14): parsing a `Range` header against a length.
//!
//! Overlapping and adjacent ranges are coalesced (RFC 9110 §14.6 allows it),
//! so `bytes=0-,0-,0-` is one range and the file is sent once, not three
//! times; a header with more than [`MAX_PARTS`] ranges is answered with the
//! whole file once (issue 11).

/// What a `Range` header asks for, resolved against the representation's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable Range header (absent or malformed): send everything with 200.
    Full,
    /// Satisfiable ranges, each `start..end` (end exclusive), in request
    /// order, none overlapping or touching another.
    Parts(Vec<std::ops::Range<u64>>),
    /// Syntactically valid, but no range overlaps the representation: 416.
    Unsatisfiable,
}

/// Most ranges a request may ask for; more are answered with the whole file.
pub const MAX_PARTS: usize = 16;

/// Parses `bytes=0-0,-500,1000-` for a representation of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Ranges {
    let Some(header) = header else {
        return Ranges::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranges::Full;
    };
    let mut parts = Vec::new();
    let mut any = false;
    let mut items = 0;
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        items += 1;
        if items > MAX_PARTS {
            return Ranges::Full;
        }
        let Some((first, last)) = item.split_once('-') else {
            return Ranges::Full;
        };
        let (first, last) = (first.trim(), last.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let range = if first.is_empty() {
            // Suffix: the last N bytes.
            if !digits(last) {
                return Ranges::Full;
            }
            let Ok(n) = last.parse::<u64>() else {
                return Ranges::Full;
            };
            any = true;
            if n == 0 || len == 0 {
                continue;
            }
            len.saturating_sub(n)..len
        } else {
            if !digits(first) || !(last.is_empty() || digits(last)) {
                return Ranges::Full;
            }
            let Ok(start) = first.parse::<u64>() else {
                return Ranges::Full;
            };
            let end = if last.is_empty() {
                len
            } else {
                let Ok(last) = last.parse::<u64>() else {
                    return Ranges::Full;
                };
                if last < start {
                    return Ranges::Full;
                }
                last.saturating_add(1).min(len)
            };
            any = true;
            if start >= len {
                continue;
            }
            start..end
        };
        parts.push(range);
    }
    if !any {
        return Ranges::Full;
    }
    if parts.is_empty() {
        return Ranges::Unsatisfiable;
    }
    Ranges::Parts(coalesce(parts))
}

/// Merges ranges that overlap or touch; each merged range takes the place of
/// the first of its pieces, so the order of the request is kept otherwise.
fn coalesce(parts: Vec<std::ops::Range<u64>>) -> Vec<std::ops::Range<u64>> {
    let mut out: Vec<std::ops::Range<u64>> = Vec::with_capacity(parts.len());
    for mut part in parts {
        let mut first = out.len();
        while let Some(at) = out
            .iter()
            .position(|other| other.start <= part.end && part.start <= other.end)
        {
            let other = out.remove(at);
            part = other.start.min(part.start)..other.end.max(part.end);
            first = first.min(at);
        }
        out.insert(first.min(out.len()), part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::single_range_in_vec_init,
        reason = "a list holding one byte range is what is meant"
    )]
    fn ranges_parse_like_rfc_9110() {
        let len = 1000;
        assert_eq!(parse(None, len), Ranges::Full);
        assert_eq!(parse(Some("bytes=0-0"), len), Ranges::Parts(vec![0..1]));
        assert_eq!(
            parse(Some("bytes=-100"), len),
            Ranges::Parts(vec![900..1000])
        );
        assert_eq!(
            parse(Some("bytes=-5000"), len),
            Ranges::Parts(vec![0..1000])
        );
        assert_eq!(
            parse(Some("bytes=990-"), len),
            Ranges::Parts(vec![990..1000])
        );
        assert_eq!(
            parse(Some("bytes=500-99999"), len),
            Ranges::Parts(vec![500..1000])
        );
        assert_eq!(
            parse(Some("bytes=0-1, 10-19"), len),
            Ranges::Parts(vec![0..2, 10..20])
        );
        assert_eq!(parse(Some("bytes=1000-"), len), Ranges::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), len), Ranges::Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-1"), len), Ranges::Full);
        assert_eq!(parse(Some("bytes=a-b"), len), Ranges::Full);
        assert_eq!(parse(Some("items=0-1"), len), Ranges::Full);
        assert_eq!(
            parse(Some("bytes=0-1,2000-3000"), len),
            Ranges::Parts(vec![0..2])
        );
        assert_eq!(parse(Some("bytes=0-0"), 0), Ranges::Unsatisfiable);
    }

    /// Issue 11: sixteen overlapping whole-file ranges were sent as sixteen
    /// copies of the file.
    #[test]
    #[expect(
        clippy::single_range_in_vec_init,
        reason = "a list holding one byte range is what is meant"
    )]
    fn issue_11_overlapping_and_adjacent_ranges_are_coalesced() {
        let len = 1000;
        let many = |item: &str, n: usize| format!("bytes={}", vec![item; n].join(","));
        assert_eq!(
            parse(Some(&many("0-", 16)), len),
            Ranges::Parts(vec![0..1000])
        );
        assert_eq!(
            parse(Some(&many("0-999", 16)), len),
            Ranges::Parts(vec![0..1000])
        );
        assert_eq!(
            parse(Some(&many("-1000", 16)), len),
            Ranges::Parts(vec![0..1000])
        );
        // More than MAX_PARTS ranges: the whole file, once, with 200.
        assert_eq!(parse(Some(&many("0-", 17)), len), Ranges::Full);
        assert_eq!(parse(Some(&many("0-0", 5000)), len), Ranges::Full);
        // Overlapping, adjacent, nested, in any order.
        assert_eq!(
            parse(Some("bytes=0-9,10-19,20-29"), len),
            Ranges::Parts(vec![0..30])
        );
        assert_eq!(
            parse(Some("bytes=500-599,0-9,550-650"), len),
            Ranges::Parts(vec![500..651, 0..10])
        );
        assert_eq!(
            parse(Some("bytes=100-199,0-9,50-59,5-120"), len),
            Ranges::Parts(vec![0..200])
        );
        assert_eq!(
            parse(Some("bytes=300-309,100-109,-10,105-300"), len),
            Ranges::Parts(vec![100..310, 990..1000])
        );
        assert_eq!(
            parse(Some("bytes=200-209,0-9,100-109"), len),
            Ranges::Parts(vec![200..210, 0..10, 100..110]),
            "disjoint ranges keep their order"
        );
        assert_eq!(
            parse(Some("bytes=0-9,11-19"), len),
            Ranges::Parts(vec![0..10, 11..20]),
            "a one-byte gap is not closed"
        );
        // Unsatisfiable parts drop out before coalescing.
        assert_eq!(
            parse(Some("bytes=0-9,5000-,5-14"), len),
            Ranges::Parts(vec![0..15])
        );
    }
}
