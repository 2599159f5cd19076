//! The metadata objects and their deterministic encoding.
//!
//! Every object is encoded as one format byte followed by the postcard
//! encoding of [`Object`], and named by the BLAKE3 of those bytes. Objects
//! refer to each other by hash, so the catalog is a Merkle tree: a catalog
//! names courses, a course names lessons, a lesson names file manifests, and a
//! manifest names chunks. Field order is the encoding order: never reorder
//! fields or variants; add new variants at the end.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkingProfile;
use crate::hash::Hash;
use crate::text::LocalizedText;

/// The first byte of every encoded object.
pub const FORMAT_VERSION: u8 = 1;

/// Objects larger than this are refused before decoding (a 16 MiB manifest
/// describes a file of about 30 GB at the default profile).
pub const MAX_OBJECT_LEN: usize = 16 * 1024 * 1024;

/// One chunk of a file: its hash and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub hash: Hash,
    pub len: u32,
}

/// How one file is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileManifest {
    /// Length of the file in bytes.
    pub size: u64,
    /// BLAKE3 of the whole file: what `b3sum` prints.
    pub blob: Hash,
    /// e.g. `video/mp4`.
    pub media_type: String,
    pub chunking: ChunkingProfile,
    /// Chunks in file order; their lengths add up to `size`.
    pub chunks: Vec<ChunkRef>,
}

impl FileManifest {
    /// `(offset, chunk)` for each chunk in file order.
    pub fn chunk_offsets(&self) -> impl Iterator<Item = (u64, &ChunkRef)> {
        self.chunks.iter().scan(0u64, |offset, chunk| {
            let at = *offset;
            *offset += u64::from(chunk.len);
            Some((at, chunk))
        })
    }

    /// Whether the chunk lengths add up to the size.
    pub fn is_consistent(&self) -> bool {
        self.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() == self.size
    }
}

/// A file inside a lesson or course: where it sits and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path with `/` separators, e.g. `img/apple.svg`.
    pub path: String,
    pub size: u64,
    pub blob: Hash,
    /// The [`FileManifest`] object.
    pub manifest: Hash,
}

/// One lesson: a folder of files with an entry point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lesson {
    pub id: String,
    pub title: LocalizedText,
    pub summary: LocalizedText,
    /// Path of the file a lesson page opens with (one of `files`).
    pub entry: String,
    /// In publishing order (natural order of paths).
    pub files: Vec<FileEntry>,
    pub tags: Vec<String>,
    pub languages: Vec<String>,
    pub duration_secs: Option<u32>,
}

/// A lesson as a course lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonRef {
    pub id: String,
    /// The [`Lesson`] object.
    pub hash: Hash,
    /// Total bytes of the lesson's files.
    pub size: u64,
}

/// One course, in one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Course {
    pub id: String,
    /// Starts at 1, raised by each publish that changes the course.
    pub version: u64,
    pub title: LocalizedText,
    pub description: LocalizedText,
    pub subject: Option<String>,
    pub grade: Option<String>,
    pub languages: Vec<String>,
    pub tags: Vec<String>,
    /// Course-level assets (cover image, syllabus).
    pub files: Vec<FileEntry>,
    /// In course order.
    pub lessons: Vec<LessonRef>,
}

impl Course {
    /// Bytes of every file in the course. Sizes come from received objects,
    /// so a sum past `u64::MAX` saturates rather than panicking (issue 11).
    pub fn total_size(&self) -> u64 {
        let files = self.files.iter().map(|f| f.size);
        let lessons = self.lessons.iter().map(|l| l.size);
        files.chain(lessons).fold(0, u64::saturating_add)
    }
}

/// A course as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The [`Course`] object.
    pub hash: Hash,
    pub version: u64,
    pub total_size: u64,
}

/// Everything an origin publishes, at one moment.
///
/// Encoded as [`Object::Catalog`]. Catalogs signed before issue 13 have the
/// layout of [`LegacyCatalog`] ([`Object::LegacyCatalog`]) and still decode:
/// [`Object::into_catalog`] gives this struct for both, an old one with no
/// expiry and no tombstones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Strictly increasing with each publish; an edge refuses a lower one.
    pub sequence: u64,
    /// Seconds since the Unix epoch.
    pub published_at: u64,
    pub chunking: ChunkingProfile,
    pub courses: BTreeMap<String, CatalogEntry>,
    /// Seconds since the Unix epoch after which the catalog is stale: the
    /// origin re-signs (renews) it before then. 0: never expires (a catalog
    /// from before issue 13). An edge still accepts an expired catalog, it
    /// only warns (issue 13).
    pub expires_at: u64,
    /// Courses withdrawn and not published again since, by id.
    pub withdrawn: BTreeMap<String, Tombstone>,
}

/// A withdrawn course as the catalog remembers it (issue 13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Seconds since the Unix epoch.
    pub withdrawn_at: u64,
    /// Why, in the administrator's words (may be empty).
    pub reason: String,
    /// The course version in force when it was withdrawn.
    pub last_version: u64,
}

/// The catalog layout before issue 13: kept so that stored catalogs decode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyCatalog {
    pub sequence: u64,
    pub published_at: u64,
    pub chunking: ChunkingProfile,
    pub courses: BTreeMap<String, CatalogEntry>,
}

impl From<LegacyCatalog> for Catalog {
    fn from(old: LegacyCatalog) -> Self {
        Catalog {
            sequence: old.sequence,
            published_at: old.published_at,
            chunking: old.chunking,
            courses: old.courses,
            expires_at: 0,
            withdrawn: BTreeMap::new(),
        }
    }
}

impl Catalog {
    /// The catalog of a new origin: sequence 0, no courses, no expiry.
    pub fn empty(published_at: u64) -> Self {
        Catalog {
            sequence: 0,
            published_at,
            chunking: ChunkingProfile::DEFAULT,
            courses: BTreeMap::new(),
            expires_at: 0,
            withdrawn: BTreeMap::new(),
        }
    }

    /// Whether the catalog has an expiry and it has passed at `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at != 0 && self.expires_at <= now
    }
}

/// Any metadata object. The variant is part of the encoding, so a lesson can
/// never be mistaken for a course with the same bytes. Variants are encoded
/// by position: `LegacyCatalog` keeps the place the catalog had before
/// issue 13, and the new layout came last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Object {
    Manifest(FileManifest),
    Lesson(Lesson),
    Course(Course),
    LegacyCatalog(LegacyCatalog),
    Catalog(Catalog),
}

/// Why bytes are not a valid object.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("object is {len} bytes, over the {MAX_OBJECT_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("object is empty")]
    Empty,
    #[error("object format {0} is not known to this version of shanlu; upgrade shanlu")]
    UnknownFormat(u8),
    #[error("object does not decode: {0}")]
    Malformed(#[from] postcard::Error),
    #[error("object has {extra} bytes after its end")]
    TrailingBytes { extra: usize },
    #[error("expected a {expected} object, found a {found}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("object {expected} hashed to {actual}")]
    HashMismatch { expected: Hash, actual: Hash },
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Manifest(_) => "manifest",
            Object::Lesson(_) => "lesson",
            Object::Course(_) => "course",
            Object::LegacyCatalog(_) | Object::Catalog(_) => "catalog",
        }
    }

    /// The canonical bytes of this object.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding into a Vec only fails for types serde cannot express; ours are plain data.
        postcard::to_extend(self, vec![FORMAT_VERSION])
            .expect("postcard encodes plain data into a Vec")
    }

    /// Decodes canonical bytes; refuses anything else.
    pub fn decode(bytes: &[u8]) -> Result<Object, DecodeError> {
        if bytes.len() > MAX_OBJECT_LEN {
            return Err(DecodeError::TooLarge { len: bytes.len() });
        }
        let (&format, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if format != FORMAT_VERSION {
            return Err(DecodeError::UnknownFormat(format));
        }
        let (object, rest) = postcard::take_from_bytes::<Object>(body)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { extra: rest.len() });
        }
        Ok(object)
    }

    /// Decodes bytes that must hash to `expected`: the check every received object passes.
    pub fn decode_verified(expected: &Hash, bytes: &[u8]) -> Result<Object, DecodeError> {
        let actual = Hash::of(bytes);
        if actual != *expected {
            return Err(DecodeError::HashMismatch {
                expected: *expected,
                actual,
            });
        }
        Object::decode(bytes)
    }

    /// The hash that names this object.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.encode())
    }
}

macro_rules! object_kind {
    ($variant:ident, $type:ty, $name:literal, $into:ident) => {
        impl From<$type> for Object {
            fn from(value: $type) -> Self {
                Object::$variant(value)
            }
        }

        impl Object {
            /// This object as the expected kind, or a `WrongKind` error.
            pub fn $into(self) -> Result<$type, DecodeError> {
                match self {
                    Object::$variant(value) => Ok(value),
                    other => Err(DecodeError::WrongKind {
                        expected: $name,
                        found: other.kind(),
                    }),
                }
            }
        }
    };
}

object_kind!(Manifest, FileManifest, "manifest", into_manifest);
object_kind!(Lesson, Lesson, "lesson", into_lesson);
object_kind!(Course, Course, "course", into_course);

impl From<Catalog> for Object {
    fn from(value: Catalog) -> Self {
        Object::Catalog(value)
    }
}

impl Object {
    /// This object as a catalog, in the new layout whichever layout it was
    /// encoded in, or a `WrongKind` error.
    pub fn into_catalog(self) -> Result<Catalog, DecodeError> {
        match self {
            Object::Catalog(value) => Ok(value),
            Object::LegacyCatalog(old) => Ok(old.into()),
            other => Err(DecodeError::WrongKind {
                expected: "catalog",
                found: other.kind(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testdata::{sample_catalog, sample_course, sample_lesson, sample_manifest};
    use proptest::prelude::*;

    /// Golden encodings: a change here changes every object hash, so it must be deliberate.
    #[test]
    fn golden_object_encodings() {
        let cases: [(Object, &str); 4] = [
            (sample_manifest().into(), GOLDEN_MANIFEST),
            (sample_lesson().into(), GOLDEN_LESSON),
            (sample_course().into(), GOLDEN_COURSE),
            (sample_catalog().into(), GOLDEN_CATALOG_V2),
        ];
        for (object, golden) in cases {
            assert_eq!(
                hex::encode(object.encode()),
                golden,
                "{} encoding",
                object.kind()
            );
        }
    }

    const GOLDEN_MANIFEST: &str = "010005ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f0a746578742f706c61696e80800180800480801001ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f05";
    const GOLDEN_LESSON: &str = "01010b30312d636f756e74696e670402626f12e0bd82e0beb2e0bd84e0bda6e0bc8be0bd8002656e08436f756e74696e6702696906ea82b7ea81a7027a6806e695b0e695b00102656e0d436f756e7420746f2074656e2e0a696e6465782e68746d6c010a696e6465782e68746d6c05ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200ff67395f842a7d1c28b9eed1f576fafaef486853a67c44cb43876ce82b54f92d801046d61746802027a6802696901d804";
    const GOLDEN_COURSE: &str = "01020b6772616465332d6d6174680201027a680fe4b889e5b9b4e7baa7e695b0e5ada60001046d61746801013301027a680000010b30312d636f756e74696e67cd92e9cd64621a1ac2ecc0c82c47e43f36b9682e63c80f24218503308868631205";
    const GOLDEN_CATALOG: &str = "01030780f7c4d506808001808004808010010b6772616465332d6d617468edcaf09befd267bfab6b8f439491ddf07206b9b22df2b11aba0574b2cd5dd2d30205";

    const GOLDEN_CATALOG_V2: &str = "01040780f7c4d506808001808004808010010b6772616465332d6d617468edcaf09befd267bfab6b8f439491ddf07206b9b22df2b11aba0574b2cd5dd2d302050000";

    /// Issue 13: a catalog stored before issue 13 (the old layout, its golden
    /// bytes above) still decodes, as a catalog with no expiry and no
    /// tombstones; a new catalog never encodes the old way.
    #[test]
    fn issue_13_the_old_catalog_layout_still_decodes() {
        let bytes = hex::decode(GOLDEN_CATALOG).expect("hex");
        let object = Object::decode(&bytes).expect("the old layout decodes");
        assert_eq!(object.kind(), "catalog");
        assert!(matches!(object, Object::LegacyCatalog(_)));
        let catalog = object.into_catalog().expect("a catalog");
        assert_eq!(catalog, sample_catalog());
        assert_eq!(catalog.expires_at, 0);
        assert!(catalog.withdrawn.is_empty());
        assert!(!catalog.is_expired(u64::MAX));
        let new = Object::from(catalog).encode();
        assert_ne!(new, bytes, "new catalogs encode the new layout");
        assert!(matches!(Object::decode(&new), Ok(Object::Catalog(_))));
    }

    /// Issue 13: expiry and tombstones survive the encoding.
    #[test]
    fn issue_13_expiry_and_tombstones_roundtrip() {
        let mut catalog = sample_catalog();
        catalog.expires_at = 1_792_419_200;
        catalog.withdrawn.insert(
            "old-course".into(),
            Tombstone {
                withdrawn_at: 1_790_000_100,
                reason: "replaced by grade3-math".into(),
                last_version: 4,
            },
        );
        let object = Object::from(catalog.clone());
        let back = Object::decode(&object.encode()).expect("decodes");
        assert_eq!(back.into_catalog().expect("catalog"), catalog);
        assert!(catalog.is_expired(1_792_419_200));
        assert!(!catalog.is_expired(1_792_419_199));
    }

    #[test]
    fn decode_refuses_flipped_and_trailing_bytes() {
        let object: Object = sample_lesson().into();
        let bytes = object.encode();
        let hash = Hash::of(&bytes);
        assert_eq!(
            Object::decode_verified(&hash, &bytes).expect("valid"),
            object
        );

        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        assert!(matches!(
            Object::decode_verified(&hash, &flipped),
            Err(DecodeError::HashMismatch { .. })
        ));

        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Object::decode(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1 })
        ));

        let mut future = bytes;
        future[0] = 99;
        assert!(matches!(
            Object::decode(&future),
            Err(DecodeError::UnknownFormat(99))
        ));
        assert!(matches!(Object::decode(&[]), Err(DecodeError::Empty)));
    }

    /// Issue 11: the fuzz target `object` panicked with "attempt to add with
    /// overflow" on a course whose lesson sizes add up past `u64::MAX`.
    #[test]
    fn issue_11_course_total_size_saturates_instead_of_overflowing() {
        let mut course = sample_course();
        course.lessons[0].size = u64::MAX;
        course.lessons.push(LessonRef {
            id: "02".into(),
            hash: Hash::of(b"02"),
            size: 1,
        });
        assert_eq!(course.total_size(), u64::MAX);
        assert_eq!(sample_course().total_size(), 5);
    }

    #[test]
    fn wrong_kind_is_refused() {
        let object: Object = sample_course().into();
        let err = object.into_lesson().expect_err("a course is not a lesson");
        assert_eq!(err.to_string(), "expected a lesson object, found a course");
    }

    fn arb_text() -> impl Strategy<Value = LocalizedText> {
        prop::collection::btree_map("[a-z]{2}", "\\PC{0,20}", 0..4)
            .prop_map(|map| map.into_iter().collect())
    }

    fn arb_hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash::from_bytes)
    }

    fn arb_entry() -> impl Strategy<Value = FileEntry> {
        ("\\PC{1,30}", any::<u64>(), arb_hash(), arb_hash()).prop_map(
            |(path, size, blob, manifest)| FileEntry {
                path,
                size,
                blob,
                manifest,
            },
        )
    }

    proptest! {
        #[test]
        fn manifest_roundtrip(size: u64, blob in arb_hash(), media in "\\PC{0,30}",
                              chunks in prop::collection::vec((arb_hash(), any::<u32>()), 0..50)) {
            let object = Object::from(FileManifest {
                size, blob, media_type: media, chunking: ChunkingProfile::DEFAULT,
                chunks: chunks.into_iter().map(|(hash, len)| ChunkRef { hash, len }).collect(),
            });
            prop_assert_eq!(Object::decode(&object.encode()).expect("roundtrip"), object);
        }

        #[test]
        fn lesson_roundtrip(id in "\\PC{1,20}", title in arb_text(), summary in arb_text(),
                            files in prop::collection::vec(arb_entry(), 0..8),
                            tags in prop::collection::vec("\\PC{0,10}", 0..4),
                            duration: Option<u32>) {
            let object = Object::from(Lesson {
                id, title, summary, entry: "index.html".into(), files, tags,
                languages: vec!["bo".into()], duration_secs: duration,
            });
            let bytes = object.encode();
            prop_assert_eq!(Object::decode(&bytes).expect("roundtrip"), object.clone());
            prop_assert_eq!(object.encode(), bytes, "encoding is deterministic");
        }

        #[test]
        fn catalog_roundtrip(sequence: u64, at: u64,
                             courses in prop::collection::btree_map("\\PC{1,12}", (arb_hash(), any::<u64>(), any::<u64>()), 0..10)) {
            let object = Object::from(Catalog {
                sequence, published_at: at, chunking: ChunkingProfile::DEFAULT,
                courses: courses.into_iter().map(|(id, (hash, version, total_size))|
                    (id, CatalogEntry { hash, version, total_size })).collect(),
                expires_at: at.wrapping_add(1), withdrawn: BTreeMap::new(),
            });
            prop_assert_eq!(Object::decode(&object.encode()).expect("roundtrip"), object);
        }

        #[test]
        fn decode_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Object::decode(&bytes);
        }
    }
}
