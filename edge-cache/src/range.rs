//! HTTP byte ranges (RFC 9110 §14): parsing a `Range` header against a length.

/// What a `Range` header asks for, resolved against the representation's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// No usable Range header (absent or malformed): send everything with 200.
    Full,
    /// Satisfiable ranges, each `start..end` (end exclusive), in request order.
    Parts(Vec<std::ops::Range<u64>>),
    /// Syntactically valid, but no range overlaps the representation: 416.
    Unsatisfiable,
}

/// Most ranges honoured in one request; more are answered with the whole file.
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
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
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
    if parts.len() > MAX_PARTS {
        return Ranges::Full;
    }
    Ranges::Parts(parts)
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
}
