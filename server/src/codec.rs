//! How chunks travel: raw, zstd-compressed, or as a zstd delta against chunks
//! the edge already holds.
//!
//! Bytes on the wire are what schools pay for. Pages, text and subtitles
//! compress; media mostly do not, and are sent raw. When a file changes in a
//! few places, each changed chunk mostly repeats the chunk it replaces, which
//! the edge still holds: compressed with those old chunks as a zstd dictionary
//! it costs little more than the edited bytes themselves.

use serde::{Deserialize, Serialize};

/// zstd level: fast enough for the origin to compress while serving.
const LEVEL: i32 = 3;
/// A compressed form is used only if it saves at least this fraction (1/32).
const MIN_SAVING_SHIFT: u32 = 5;

/// How a chunk's bytes are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    Raw,
    Zstd,
    /// zstd with the requested base chunks, concatenated in order, as dictionary.
    ZstdDelta,
}

/// Why received bytes do not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("compressed chunk does not decompress (zstd)")]
    Corrupt(#[source] std::io::Error),
    #[error("a delta arrived but the edge does not hold its base chunks")]
    MissingBase,
}

fn worth_it(encoded: usize, raw: usize) -> bool {
    encoded + (raw >> MIN_SAVING_SHIFT) < raw
}

/// The smallest encoding of `raw`, trying a delta against `dictionary` when given.
pub fn encode(raw: &[u8], dictionary: Option<&[u8]>) -> (Encoding, Vec<u8>) {
    let mut best = (Encoding::Raw, None::<Vec<u8>>);
    let mut best_len = raw.len();
    if let Some(dictionary) = dictionary.filter(|d| !d.is_empty())
        && let Ok(mut compressor) = zstd::bulk::Compressor::with_dictionary(LEVEL, dictionary)
        && let Ok(delta) = compressor.compress(raw)
        && worth_it(delta.len(), best_len)
    {
        best_len = delta.len();
        best = (Encoding::ZstdDelta, Some(delta));
    }
    if best.0 == Encoding::Raw
        && let Ok(compressed) = zstd::bulk::compress(raw, LEVEL)
        && worth_it(compressed.len(), best_len)
    {
        best = (Encoding::Zstd, Some(compressed));
    }
    match best {
        (encoding, Some(bytes)) => (encoding, bytes),
        (encoding, None) => (encoding, raw.to_vec()),
    }
}

/// Decodes a chunk of `expected_len` bytes; never allocates more than that.
pub fn decode(
    encoding: Encoding,
    bytes: Vec<u8>,
    dictionary: Option<&[u8]>,
    expected_len: usize,
) -> Result<Vec<u8>, CodecError> {
    match encoding {
        Encoding::Raw => Ok(bytes),
        Encoding::Zstd => zstd::bulk::decompress(&bytes, expected_len).map_err(CodecError::Corrupt),
        Encoding::ZstdDelta => {
            let dictionary = dictionary.ok_or(CodecError::MissingBase)?;
            let mut decompressor = zstd::bulk::Decompressor::with_dictionary(dictionary)
                .map_err(CodecError::Corrupt)?;
            decompressor
                .decompress(&bytes, expected_len)
                .map_err(CodecError::Corrupt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catalog::testdata::generated;

    #[test]
    fn random_bytes_travel_raw_and_text_compressed() {
        let random = generated(65_536, 1);
        let (encoding, bytes) = encode(&random, None);
        assert_eq!(encoding, Encoding::Raw);
        assert_eq!(bytes, random);

        let text = "<p>二十以内的加法 addition within twenty</p>\n"
            .repeat(500)
            .into_bytes();
        let (encoding, bytes) = encode(&text, None);
        assert_eq!(encoding, Encoding::Zstd);
        assert!(bytes.len() < text.len() / 10);
        assert_eq!(
            decode(encoding, bytes, None, text.len()).expect("decodes"),
            text
        );
    }

    #[test]
    fn an_edited_chunk_travels_as_a_small_delta() {
        let old = generated(80_000, 2);
        let mut new = old.clone();
        new[30_000..34_000].copy_from_slice(&generated(4_000, 3));
        let (encoding, bytes) = encode(&new, Some(&old));
        assert_eq!(encoding, Encoding::ZstdDelta);
        assert!(
            bytes.len() < 6_000,
            "delta of {} bytes for a 4 000-byte edit",
            bytes.len()
        );
        assert_eq!(
            decode(encoding, bytes, Some(&old), new.len()).expect("decodes"),
            new
        );
    }

    #[test]
    fn decoding_refuses_more_than_the_expected_length_and_missing_bases() {
        let text = vec![b'a'; 100_000];
        let (encoding, bytes) = encode(&text, None);
        assert!(decode(encoding, bytes.clone(), None, 1_000).is_err());
        assert!(matches!(
            decode(Encoding::ZstdDelta, bytes, None, 100_000),
            Err(CodecError::MissingBase)
        ));
        assert!(decode(Encoding::Zstd, vec![1, 2, 3], None, 10).is_err());
    }

    /// Issue 12: a chunk that does not decompress keeps zstd's error as
    /// `source()` instead of flattening it into the message.
    #[test]
    fn corrupt_chunk_keeps_zstd_error_as_source_issue_12() {
        use std::error::Error as _;
        let err = decode(Encoding::Zstd, b"not zstd at all".to_vec(), None, 100)
            .expect_err("garbage does not decompress");
        assert!(matches!(err, CodecError::Corrupt(_)), "{err:?}");
        let source = err.source().expect("the cause is kept");
        assert!(
            source.downcast_ref::<std::io::Error>().is_some(),
            "{source:?}"
        );
    }
}
