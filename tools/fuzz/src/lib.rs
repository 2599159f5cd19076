//! Fuzz targets for the parsers that read bytes from outside: each takes any
//! bytes, must never panic, and asserts what it can about what it parsed.
//!
//! # Targets
//! - [`Target::Frame`]: the sync protocol's frames — a byte stream read
//!   frame by frame as requests and as responses, and a bare frame body.
//! - [`Target::Object`]: the metadata objects (catalog, course, lesson, file
//!   manifest) and the signed catalog.
//! - [`Target::Chunk`]: chunks on the wire — raw, zstd and zstd deltas.
//! - [`Target::Range`]: the `Range` header against a file length.
//! - [`Target::Head`]: the classroom front door's request-head parser and router.
//! - [`Target::Toml`]: `course.toml` and `lesson.toml`.
//!
//! The AFL++ entry point is `src/main.rs` (`cargo afl build --features afl`);
//! `tools/fuzz/run.sh` builds and runs it. The tests at the bottom replay
//! every file of the committed corpus (`tools/fuzz/corpus/<target>/`)
//! through its target with plain `cargo test`, so the crashes found once stay
//! fixed without the fuzzer installed.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use catalog::object::{DecodeError, MAX_OBJECT_LEN};
use catalog::{Hash, Object, SignedCatalog};
use edge_cache::classroom::range::{self, Ranges};
use server::codec::{self, Encoding};
use server::protocol::{self, MAX_REQUEST, MAX_RESPONSE, Request, Response};

/// One fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Frame,
    Object,
    Chunk,
    Range,
    Head,
    Toml,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Frame,
        Target::Object,
        Target::Chunk,
        Target::Range,
        Target::Head,
        Target::Toml,
    ];

    /// The name on the command line and of the corpus folder.
    pub fn name(self) -> &'static str {
        match self {
            Target::Frame => "frame",
            Target::Object => "object",
            Target::Chunk => "chunk",
            Target::Range => "range",
            Target::Head => "head",
            Target::Toml => "toml",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|target| target.name() == name)
    }

    /// Runs one input through the target; panics if an invariant breaks.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Frame => frame(data),
            Target::Object => object(data),
            Target::Chunk => chunk(data),
            Target::Range => range(data),
            Target::Head => head(data),
            Target::Toml => toml(data),
        }
    }
}

/// Most frames read from one input, so one input is one bounded run.
const MAX_FRAMES: usize = 64;

/// Sync frames: `data` as the bytes of a QUIC stream, read frame by frame as
/// the origin reads requests and as an edge reads responses; and `data` as a
/// single frame body. Whatever decodes must survive encode → decode unchanged.
pub fn frame(data: &[u8]) {
    read_frames::<Request>(data, MAX_REQUEST);
    read_frames::<Response>(data, MAX_RESPONSE);
    if let Ok(request) = protocol::decode::<Request>(data) {
        assert_frame_roundtrip(&request);
    }
    if let Ok(response) = protocol::decode::<Response>(data) {
        assert_frame_roundtrip(&response);
    }
}

fn read_frames<T>(data: &[u8], limit: usize)
where
    T: for<'de> serde::Deserialize<'de> + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let mut stream = data;
    for _ in 0..MAX_FRAMES {
        let before = stream.len();
        match now(protocol::read_frame::<T>(&mut stream, limit)) {
            Ok(Some(message)) => {
                let consumed = before - stream.len();
                let declared = u32::from_le_bytes(
                    data[data.len() - before..][..4]
                        .try_into()
                        .expect("a frame has a 4-byte length"),
                ) as usize;
                assert!(
                    declared <= limit,
                    "a {declared}-byte frame passed the {limit} limit"
                );
                assert_eq!(consumed, 4 + declared, "a frame reads exactly its length");
                assert_frame_roundtrip(&message);
            }
            Ok(None) => {
                assert_eq!(before, 0, "a clean end only at the end of the stream");
                return;
            }
            Err(_) => return,
        }
    }
}

fn assert_frame_roundtrip<T>(message: &T)
where
    T: for<'de> serde::Deserialize<'de> + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let frame = protocol::encode(message);
    let again: T = protocol::decode(&frame[4..]).expect("an encoded frame decodes");
    assert_eq!(&again, message, "frame encode → decode");
    assert_eq!(
        protocol::encode(&again),
        frame,
        "frame encoding is deterministic"
    );
}

/// Polls a future that can never wait (it reads from a byte slice) to its end.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading frames from a byte slice never waits"),
    }
}

/// Metadata objects and signed catalogs, as an edge receives them.
pub fn object(data: &[u8]) {
    match Object::decode(data) {
        Ok(object) => check_object(data, object),
        Err(DecodeError::TooLarge { len }) => assert!(len > MAX_OBJECT_LEN),
        Err(_) => {}
    }
    if let Ok(signed) = SignedCatalog::decode(data) {
        let bytes = signed.encode();
        let again = SignedCatalog::decode(&bytes).expect("an encoded signed catalog decodes");
        assert_eq!(again, signed, "signed catalog encode → decode");
        // The corpus holds catalogs signed with this key, so the verified
        // path runs too: what verifies is exactly the catalog object inside.
        let key = catalog::OriginKey::from_bytes(&[7; 32]).public();
        if let Ok(catalog) = signed.verify(&key) {
            let inside = Object::decode(&signed.catalog)
                .and_then(Object::into_catalog)
                .expect("a verified catalog decodes");
            assert_eq!(catalog, inside);
        }
        if let Ok(object) = Object::decode(&signed.catalog) {
            check_object(&signed.catalog, object);
        }
    }
}

fn check_object(data: &[u8], object: Object) {
    let bytes = object.encode();
    let again = Object::decode(&bytes).expect("an encoded object decodes");
    assert_eq!(again, object, "object encode → decode");
    assert_eq!(again.encode(), bytes, "object encoding is deterministic");
    let verified = Object::decode_verified(&Hash::of(data), data).expect("decodes as before");
    assert_eq!(verified, object);
    match object {
        Object::Manifest(manifest) => {
            let total: u64 = manifest.chunks.iter().map(|c| u64::from(c.len)).sum();
            assert_eq!(manifest.is_consistent(), total == manifest.size);
            let mut expected = 0u64;
            for (offset, chunk) in manifest.chunk_offsets() {
                assert_eq!(offset, expected, "chunk offsets follow the lengths");
                expected += u64::from(chunk.len);
            }
        }
        Object::Course(course) => {
            let _ = course.total_size();
            let kind = Object::Course(course).into_lesson();
            assert!(kind.is_err(), "a course is not a lesson");
        }
        Object::Lesson(lesson) => {
            assert!(Object::Lesson(lesson).into_lesson().is_ok());
        }
        Object::Catalog(catalog) => {
            assert!(Object::Catalog(catalog).into_course().is_err());
        }
        Object::LegacyCatalog(old) => {
            let catalog = Object::LegacyCatalog(old).into_catalog();
            assert!(catalog.is_ok(), "an old catalog reads as a catalog");
        }
    }
}

/// Chunks on the wire. Input: an encoding byte (0 raw, 1 zstd, 2 delta), a
/// 2-byte expected length, a 1-byte dictionary length, the dictionary, and
/// the received bytes. Decoding never yields more than the expected length,
/// and whatever `encode` makes of the bytes decodes back to them.
pub fn chunk(data: &[u8]) {
    let [selector, len_low, len_high, dict_len, rest @ ..] = data else {
        return;
    };
    let encoding = match selector % 3 {
        0 => Encoding::Raw,
        1 => Encoding::Zstd,
        _ => Encoding::ZstdDelta,
    };
    let expected_len = usize::from(u16::from_le_bytes([*len_low, *len_high]));
    let (dictionary, bytes) = rest.split_at(usize::from(*dict_len).min(rest.len()));
    let dictionary = (selector & 0x80 == 0).then_some(dictionary);
    match codec::decode(encoding, bytes.to_vec(), dictionary, expected_len) {
        Ok(raw) if encoding == Encoding::Raw => assert_eq!(raw, bytes),
        Ok(raw) => assert!(
            raw.len() <= expected_len,
            "decoded past the expected length"
        ),
        Err(_) => {}
    }
    let (encoding, wire) = codec::encode(bytes, dictionary);
    assert!(
        wire.len() <= bytes.len(),
        "an encoding is never larger than raw"
    );
    let raw =
        codec::decode(encoding, wire, dictionary, bytes.len()).expect("an encoded chunk decodes");
    assert_eq!(raw, bytes, "chunk encode → decode");
}

/// The `Range` header. Input: the representation length in decimal, a
/// newline, and the header value (no newline: no header). Every range
/// returned lies inside the representation.
pub fn range(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (len, header) = match text.split_once('\n') {
        Some((len, header)) => (len, Some(header)),
        None => (text, None),
    };
    let Ok(len) = len.parse::<u64>() else {
        return;
    };
    match range::parse(header, len) {
        Ranges::Full => {}
        Ranges::Unsatisfiable => {
            let header = header.expect("no header is never unsatisfiable");
            assert!(header.trim().starts_with("bytes="));
        }
        Ranges::Parts(parts) => {
            assert!(!parts.is_empty() && parts.len() <= range::MAX_PARTS);
            for part in parts {
                assert!(
                    part.start < part.end && part.end <= len,
                    "range {part:?} outside a {len}-byte file"
                );
            }
        }
    }
}

/// Largest head the front door parses itself (`front::MAX_HEAD`).
const MAX_HEAD: usize = 16 * 1024;

/// The front door's request-head parser: a head it answers itself ends
/// inside the buffer, parses the same without the bytes after it, and one
/// byte shorter is still partial.
pub fn head(data: &[u8]) {
    use edge_cache::classroom::front::fuzz_parse_head as parse;
    match parse(data) {
        None => assert!(data.len() < MAX_HEAD, "partial past the head limit"),
        Some(None) => {}
        Some(Some((head_len, target, _close, _routes))) => {
            assert!(0 < head_len && head_len <= data.len());
            assert!(
                data[..head_len].ends_with(b"\n"),
                "a head ends with a newline"
            );
            assert!(!target.is_empty());
            let alone = parse(&data[..head_len]);
            assert_eq!(alone, parse(data), "the bytes after a head change nothing");
            if head_len - 1 < MAX_HEAD {
                let short = parse(&data[..head_len - 1]);
                assert_eq!(short, None, "one byte short is partial");
            }
        }
    }
}

/// `course.toml` and `lesson.toml`: parsing never panics, errors name a line
/// and column, ids are checked, entries stay inside the lesson.
pub fn toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(Some(id)) = server::folder::parse_course_toml(text) {
        assert!(!id.is_empty() && !id.contains('/') && id.len() <= 200);
    }
    if let Ok((Some(entry), _seconds)) = server::folder::parse_lesson_toml(text) {
        assert!(!entry.is_empty() && !entry.starts_with('/'));
        assert!(
            entry
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != ".."),
            "entry {entry:?} leaves its lesson"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus(target: Target) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target.name())
    }

    /// Every committed corpus file, crashes found and fixed among them
    /// (issue 11), still passes its target.
    #[test]
    fn issue_11_committed_corpus_replays_clean() {
        for target in Target::ALL {
            let dir = corpus(target);
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
                .map(|entry| entry.expect("a corpus entry").path())
                .collect();
            files.sort();
            assert!(!files.is_empty(), "{} is empty", dir.display());
            for file in files {
                let data = std::fs::read(&file)
                    .unwrap_or_else(|err| panic!("reading {}: {err}", file.display()));
                let outcome = std::panic::catch_unwind(|| target.run(&data));
                assert!(outcome.is_ok(), "{} fails its target", file.display());
            }
        }
    }
}
