use super::*;
use crate::hash::Hash;
use crate::object::{CatalogEntry, ChunkRef, LessonRef};
use crate::testdata::{sample_catalog, sample_course, sample_lesson, sample_manifest};
use proptest::prelude::*;

/// Text of `n` characters, each 4 bytes in UTF-8 (the worst case for size).
fn wide(n: usize) -> String {
    "𝄞".repeat(n)
}

fn hash(n: u64) -> Hash {
    Hash::of(&n.to_le_bytes())
}

fn entry(n: usize, path_bytes: usize) -> FileEntry {
    let name = format!("{n:05}");
    FileEntry {
        path: format!("{name}{}", "p".repeat(path_bytes - name.len())),
        size: MAX_FILE_SIZE,
        blob: hash(n as u64),
        manifest: hash(n as u64 + 1),
    }
}

/// `languages` distinct well-formed tags of 35 characters.
fn long_tags(languages: usize) -> Vec<String> {
    (0..languages)
        .map(|n| {
            format!("zh-Hans-CN-x-{:08}-abcdefgh-ijklmnop", n)
                .chars()
                .take(35)
                .collect()
        })
        .collect()
}

fn full_text(max_chars: usize) -> LocalizedText {
    long_tags(MAX_LANGUAGES)
        .into_iter()
        .map(|lang| (lang, wide(max_chars)))
        .collect()
}

fn max_tags() -> Vec<String> {
    (0..MAX_TAGS)
        .map(|n| format!("{n:02}{}", wide(MAX_TAG_CHARS - 2)))
        .collect()
}

/// A lesson with every field at its limit.
fn largest_lesson() -> Lesson {
    Lesson {
        id: "i".repeat(MAX_ID_BYTES),
        title: full_text(MAX_TITLE_CHARS),
        summary: full_text(MAX_DESCRIPTION_CHARS),
        entry: entry(0, MAX_PATH_BYTES).path,
        files: (0..MAX_FILES).map(|n| entry(n, MAX_PATH_BYTES)).collect(),
        tags: max_tags(),
        languages: long_tags(MAX_LANGUAGES),
        duration_secs: Some(u32::MAX),
    }
}

/// A course with every field at its limit.
fn largest_course() -> Course {
    Course {
        id: "c".repeat(MAX_ID_BYTES),
        version: u64::MAX,
        title: full_text(MAX_TITLE_CHARS),
        description: full_text(MAX_DESCRIPTION_CHARS),
        subject: Some(wide(MAX_LABEL_CHARS)),
        grade: Some(wide(MAX_LABEL_CHARS)),
        languages: long_tags(MAX_LANGUAGES),
        tags: max_tags(),
        files: (0..MAX_FILES).map(|n| entry(n, MAX_PATH_BYTES)).collect(),
        lessons: (0..MAX_LESSONS)
            .map(|n| LessonRef {
                id: format!("{n:04}{}", "l".repeat(MAX_ID_BYTES - 4)),
                hash: hash(n as u64),
                size: u64::MAX,
            })
            .collect(),
    }
}

/// The worst manifest of the largest file: every chunk at the minimum size,
/// every length encoded as long as the maximum chunk's.
fn largest_manifest() -> FileManifest {
    let profile = ChunkingProfile::DEFAULT;
    let chunks = worst_case_chunks(profile, MAX_FILE_SIZE);
    FileManifest {
        size: MAX_FILE_SIZE,
        blob: hash(0),
        media_type: "m".repeat(MAX_MEDIA_TYPE_BYTES),
        chunking: profile,
        chunks: (0..chunks)
            .map(|n| ChunkRef {
                hash: hash(n),
                len: profile.max,
            })
            .collect(),
    }
}

fn largest_catalog() -> Catalog {
    let mut catalog = Catalog::empty(u64::MAX);
    catalog.sequence = u64::MAX;
    for n in 0..MAX_COURSES {
        catalog.courses.insert(
            format!("{n:05}{}", "c".repeat(MAX_ID_BYTES - 5)),
            CatalogEntry {
                hash: hash(n as u64),
                version: u64::MAX,
                total_size: u64::MAX,
            },
        );
    }
    catalog
}

/// Issue 11: with every field at its limit, every object still fits one
/// frame, so nothing the field checks accept can be unservable.
#[test]
fn issue_17_ids_starting_with_a_tilde_are_kept_for_the_edges_own_course() {
    let err = super::fields::check_id("course id", "~school").expect_err("reserved");
    assert!(matches!(err, LimitError::Reserved { .. }), "{err}");
    assert!(err.to_string().contains("school's own lessons"), "{err}");
    super::fields::check_id("course id", "school~1").expect("a tilde later is fine");
}

#[test]
fn issue_11_largest_objects_fit_the_frame_limit() {
    let lesson = Object::from(largest_lesson()).encode().len();
    let course = Object::from(largest_course()).encode().len();
    let manifest = Object::from(largest_manifest()).encode().len();
    let catalog = Object::from(largest_catalog()).encode().len();
    for (kind, len) in [
        ("lesson", lesson),
        ("course", course),
        ("manifest", manifest),
        ("catalog", catalog),
    ] {
        assert!(len < MAX_OBJECT_LEN, "the largest {kind} is {len} bytes");
    }
    // The manifest and the catalog are under their budgets by field limits alone.
    assert!(manifest <= MANIFEST_BUDGET, "manifest {manifest}");
    assert!(catalog <= OBJECT_BUDGET, "catalog {catalog}");
    check_manifest(&largest_manifest()).expect("the largest manifest is accepted");
    check_catalog(&largest_catalog()).expect("the largest catalog is accepted");
}

/// The lesson and course at their field limits pass the field checks and
/// are then refused by the encoded-size budget, which names the kind.
#[test]
fn encoded_budget_is_the_last_word() {
    let err = check_lesson(&largest_lesson()).expect_err("over the budget");
    assert!(
        matches!(err, LimitError::ObjectTooLarge { kind: "lesson", limit: OBJECT_BUDGET, actual } if actual > OBJECT_BUDGET),
        "{err}"
    );
    let err = check_course(&largest_course()).expect_err("over the budget");
    assert!(
        matches!(err, LimitError::ObjectTooLarge { kind: "course", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&OBJECT_BUDGET.to_string()));
}

#[test]
fn samples_are_within_limits() {
    check_lesson(&sample_lesson()).expect("sample lesson");
    check_course(&sample_course()).expect("sample course");
    check_catalog(&sample_catalog()).expect("sample catalog");
    check_manifest(&sample_manifest()).expect("sample manifest");
}

/// Boundary table: each limit accepts its value and refuses one more.
#[test]
fn issue_11_each_limit_accepts_its_value_and_refuses_one_more() {
    type Check = Box<dyn Fn(usize) -> Result<(), LimitError>>;
    type Edit<T> = Box<dyn Fn(&mut T, usize)>;
    type Case = (&'static str, Check, usize);
    let lesson_with = |edit: Edit<Lesson>| -> Check {
        Box::new(move |n| {
            let mut lesson = sample_lesson();
            edit(&mut lesson, n);
            check_lesson(&lesson)
        })
    };
    let course_with = |edit: Edit<Course>| -> Check {
        Box::new(move |n| {
            let mut course = sample_course();
            edit(&mut course, n);
            check_course(&course)
        })
    };
    let cases: Vec<Case> = vec![
        (
            "lesson id",
            lesson_with(Box::new(|l, n| l.id = "i".repeat(n))),
            MAX_ID_BYTES,
        ),
        (
            "course id",
            course_with(Box::new(|c, n| c.id = "c".repeat(n))),
            MAX_ID_BYTES,
        ),
        (
            "title",
            lesson_with(Box::new(|l, n| l.title.insert("bo", wide(n)))),
            MAX_TITLE_CHARS,
        ),
        (
            "summary",
            lesson_with(Box::new(|l, n| l.summary.insert("ii", "ꂷ".repeat(n)))),
            MAX_DESCRIPTION_CHARS,
        ),
        (
            "description",
            course_with(Box::new(|c, n| c.description.insert("zh", "数".repeat(n)))),
            MAX_DESCRIPTION_CHARS,
        ),
        (
            "subject",
            course_with(Box::new(|c, n| c.subject = Some("s".repeat(n)))),
            MAX_LABEL_CHARS,
        ),
        (
            "grade",
            course_with(Box::new(|c, n| c.grade = Some("三".repeat(n)))),
            MAX_LABEL_CHARS,
        ),
        (
            "languages in a text",
            lesson_with(Box::new(|l, n| {
                l.title = long_tags(n).into_iter().map(|t| (t, "x".into())).collect()
            })),
            MAX_LANGUAGES,
        ),
        (
            "languages list",
            course_with(Box::new(|c, n| c.languages = long_tags(n))),
            MAX_LANGUAGES,
        ),
        (
            "tags",
            lesson_with(Box::new(|l, n| {
                l.tags = (0..n).map(|i| i.to_string()).collect()
            })),
            MAX_TAGS,
        ),
        (
            "tag length",
            course_with(Box::new(|c, n| c.tags = vec![wide(n)])),
            MAX_TAG_CHARS,
        ),
        (
            "lesson files",
            lesson_with(Box::new(|l, n| {
                l.files = (0..n).map(|i| entry(i, 8)).collect()
            })),
            MAX_FILES,
        ),
        (
            "course files",
            course_with(Box::new(|c, n| {
                c.files = (0..n).map(|i| entry(i, 8)).collect()
            })),
            MAX_FILES,
        ),
        (
            "path",
            lesson_with(Box::new(|l, n| l.files[0].path = "p".repeat(n))),
            MAX_PATH_BYTES,
        ),
        (
            "entry",
            lesson_with(Box::new(|l, n| l.entry = "e".repeat(n))),
            MAX_PATH_BYTES,
        ),
        (
            "lessons",
            course_with(Box::new(|c, n| {
                c.lessons = (0..n)
                    .map(|i| LessonRef {
                        id: i.to_string(),
                        hash: hash(i as u64),
                        size: 1,
                    })
                    .collect()
            })),
            MAX_LESSONS,
        ),
        (
            "courses",
            Box::new(|n| {
                let mut catalog = sample_catalog();
                catalog.courses = (0..n)
                    .map(|i| {
                        (
                            i.to_string(),
                            CatalogEntry {
                                hash: hash(i as u64),
                                version: 1,
                                total_size: 1,
                            },
                        )
                    })
                    .collect();
                check_catalog(&catalog)
            }),
            MAX_COURSES,
        ),
        (
            "media type",
            Box::new(|n| {
                let mut manifest = sample_manifest();
                manifest.media_type = "m".repeat(n);
                check_manifest(&manifest)
            }),
            MAX_MEDIA_TYPE_BYTES,
        ),
    ];
    for (name, check, limit) in cases {
        if let Err(err) = check(limit) {
            panic!("{name}: {limit} refused: {err}");
        }
        let err = check(limit + 1).expect_err(name);
        let message = err.to_string();
        assert!(
            message.contains(&limit.to_string()) && message.contains(&(limit + 1).to_string()),
            "{name}: the message names neither the limit nor the size: {message}"
        );
    }
}

#[test]
fn file_size_limit_names_the_path() {
    let mut lesson = sample_lesson();
    lesson.files[0].size = MAX_FILE_SIZE;
    check_lesson(&lesson).expect("at the limit");
    lesson.files[0].size = MAX_FILE_SIZE + 1;
    let message = check_lesson(&lesson).expect_err("over").to_string();
    assert!(message.contains("index.html"), "{message}");
    assert!(
        message.contains("4294967296") && message.contains("4294967297"),
        "{message}"
    );
}

/// Issue 11: a 20 MB description is refused, naming the field, the language and the limit.
#[test]
fn issue_11_twenty_megabyte_description_is_refused() {
    let mut course = sample_course();
    course
        .description
        .insert("en", "a".repeat(20 * 1024 * 1024));
    let message = check_course(&course).expect_err("refused").to_string();
    assert_eq!(
        message,
        "description in en is 20971520 characters long; the limit is 16384 characters: shorten it or move the text into a file of the lesson"
    );
}

#[test]
fn issue_11_language_tags_well_formed_and_not() {
    let good = [
        "zh",
        "ii",
        "bo",
        "en",
        "ZH",
        "zh-Hans",
        "zh-Hant-TW",
        "bo-CN",
        "ii-CN",
        "en-US",
        "es-419",
        "sl-rozaj-biske",
        "de-CH-1901",
        "zh-yue-HK",
        "en-a-bbb-x-a-ccc",
        "x-whatever",
        "qaa-Qaaa-QM-x-southern",
        "i-klingon",
        "zh-min-nan",
        "en-GB-oed",
        "sr-Latn-RS",
        "hy-Latn-IT-arevela",
        "tlh",
        "haw-US",
        "abcdefgh-abcdefgh-abcdefgh-abcdefgh", // 35 characters
    ];
    for tag in good {
        assert_eq!(well_formed_tag(tag), Ok(()), "{tag}");
    }
    let bad = [
        ("", "empty"),
        ("a", "2 to 8 letters"),
        ("abcdefghi", "2 to 8 letters"),
        ("zh_CN", "'_' is not allowed"),
        ("zh\0", "'\\0' is not allowed"),
        ("zh-", "empty subtag"),
        ("-zh", "empty subtag"),
        ("zh--CN", "empty subtag"),
        ("中文", "is not allowed"),
        ("12", "2 to 8 letters"),
        ("zh-Hans-Hant", "\"Hant\" is out of place"),
        ("en-US-CN", "\"CN\" is out of place"),
        ("zh-abc-def-ghi-jkl", "more than three"),
        ("en-a", "extension \"a\" has no subtag"),
        ("en-a-b", "extension \"a\" has no subtag"),
        ("x", "private-use `x` has no subtag"),
        ("en-x-abcdefghi", "longer than 8"),
        ("abcdefgh-abcdefgh-abcdefgh-abcdefgh-", "36 characters"),
    ];
    for (tag, reason) in bad {
        let err = well_formed_tag(tag).expect_err(tag);
        assert!(err.contains(reason), "{tag:?}: {err}");
    }
    let huge = "a".repeat(10_000);
    let message = check_language_tag("title", &huge)
        .expect_err("too long")
        .to_string();
    assert!(
        message.contains("10000 characters long; the limit is 35"),
        "{message}"
    );
    assert!(
        message.len() < 300,
        "the error does not repeat a 10,000-character tag"
    );
}

#[test]
fn bad_language_tags_are_refused_where_they_appear() {
    let mut lesson = sample_lesson();
    lesson.title.insert("", "x");
    let message = check_lesson(&lesson).expect_err("empty tag").to_string();
    assert!(message.starts_with("title: language tag \"\""), "{message}");
    let mut course = sample_course();
    course.languages.push("zh\0".into());
    let message = check_course(&course).expect_err("NUL").to_string();
    assert!(
        message.starts_with("languages: language tag \"zh\\0\""),
        "{message}"
    );
}

#[test]
fn empty_or_control_tags_are_refused() {
    assert!(check_tags(&["math".into(), "数学".into()]).is_ok());
    assert!(matches!(
        check_tags(&[" ".into()]),
        Err(LimitError::BadTag { .. })
    ));
    assert!(matches!(
        check_tags(&["a\u{0}b".into()]),
        Err(LimitError::BadTag { .. })
    ));
}

fn arb_tag() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z]{2,3}",
        prop::option::of("[A-Z][a-z]{3}"),
        prop::option::of(prop_oneof!["[A-Z]{2}", "[0-9]{3}"]),
        prop::option::of("[0-9][a-z0-9]{3}|[a-z]{5,6}"),
    )
        .prop_map(|(language, script, region, variant)| {
            [Some(language), script, region, variant]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("-")
        })
}

proptest! {
    #[test]
    fn generated_well_formed_tags_are_accepted(tag in arb_tag()) {
        prop_assert_eq!(well_formed_tag(&tag), Ok(()));
    }

    #[test]
    fn accepted_tags_are_short_ascii(tag in "\\PC{0,40}") {
        if well_formed_tag(&tag).is_ok() {
            prop_assert!(tag.len() <= MAX_LANGUAGE_TAG_LEN);
            prop_assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        }
    }
}
