//! Deterministic test data, the same on every machine, for tests and benchmarks.

use crate::{
    Catalog, CatalogEntry, ChunkRef, ChunkingProfile, Course, FileEntry, FileManifest, Hash,
    Lesson, LessonRef, LocalizedText, Object,
};

/// `len` pseudo-random bytes from `seed` (xorshift64*). Not for anything secret.
pub fn generated(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small file manifest: the golden encodings and the fuzz seeds start here.
pub fn sample_manifest() -> FileManifest {
    FileManifest {
        size: 5,
        blob: Hash::of(b"hello"),
        media_type: "text/plain".into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: vec![ChunkRef {
            hash: Hash::of(b"hello"),
            len: 5,
        }],
    }
}

/// The manifest of a file made of `chunks`, in order (cut by the caller, not
/// by FastCDC).
pub fn manifest_of_chunks(chunks: &[&[u8]], media_type: &str) -> FileManifest {
    let whole = chunks.concat();
    FileManifest {
        size: whole.len() as u64,
        blob: Hash::of(&whole),
        media_type: media_type.into(),
        chunking: ChunkingProfile::DEFAULT,
        chunks: chunks
            .iter()
            .map(|c| ChunkRef {
                hash: Hash::of(c),
                len: c.len() as u32,
            })
            .collect(),
    }
}

/// A lesson titled in four languages, with one file.
pub fn sample_lesson() -> Lesson {
    let mut title = LocalizedText::single("zh", "数数");
    title.insert("ii", "ꂷꁧ");
    title.insert("bo", "གྲངས་ཀ");
    title.insert("en", "Counting");
    Lesson {
        id: "01-counting".into(),
        title,
        summary: LocalizedText::single("en", "Count to ten."),
        entry: "index.html".into(),
        files: vec![FileEntry {
            path: "index.html".into(),
            size: 5,
            blob: Hash::of(b"hello"),
            manifest: Object::from(sample_manifest()).hash(),
        }],
        tags: vec!["math".into()],
        languages: vec!["zh".into(), "ii".into()],
        duration_secs: Some(600),
    }
}

/// A course holding [`sample_lesson`].
pub fn sample_course() -> Course {
    Course {
        id: "grade3-math".into(),
        version: 2,
        title: LocalizedText::single("zh", "三年级数学"),
        description: LocalizedText::new(),
        subject: Some("math".into()),
        grade: Some("3".into()),
        languages: vec!["zh".into()],
        tags: vec![],
        files: vec![],
        lessons: vec![LessonRef {
            id: "01-counting".into(),
            hash: Object::from(sample_lesson()).hash(),
            size: 5,
        }],
    }
}

/// A catalog at sequence 7 holding [`sample_course`].
pub fn sample_catalog() -> Catalog {
    let mut catalog = Catalog::empty(1_790_000_000);
    catalog.sequence = 7;
    catalog.courses.insert(
        "grade3-math".into(),
        CatalogEntry {
            hash: Object::from(sample_course()).hash(),
            version: 2,
            total_size: 5,
        },
    );
    catalog
}

/// Writes `bytes` to `path` and stores that file in `store` as a publish
/// would, committed: where store tests start from.
pub fn store_file(
    store: &crate::Store,
    path: &std::path::Path,
    bytes: &[u8],
) -> crate::store::Imported {
    std::fs::write(path, bytes).expect("write a test file");
    let mut batch = crate::store::ImportBatch::new();
    let imported = store
        .import_file(
            path,
            ChunkingProfile::DEFAULT,
            "application/octet-stream",
            crate::store::ImportMode::Rehash,
            &mut batch,
            &mut |_| {},
        )
        .expect("import a test file");
    store.commit_batch(batch).expect("commit a test file");
    imported
}
