use super::*;

use catalog::FileEntry;

fn lesson(title: &str) -> Lesson {
    let mut text = LocalizedText::new();
    text.insert("zh", title);
    Lesson {
        id: "t1-00".into(),
        title: text,
        summary: LocalizedText::new(),
        entry: "a.mp4".into(),
        files: vec![FileEntry {
            path: "a.mp4".into(),
            size: 10,
            blob: Hash::of(b"a"),
            manifest: Hash::of(b"m"),
        }],
        tags: Vec::new(),
        languages: vec!["zh".into()],
        duration_secs: None,
    }
}

fn proposal(id: &str) -> Proposal {
    Proposal {
        id: id.into(),
        teacher: "阿依".into(),
        lesson: Vec::new(),
        grade: "3".into(),
        subject: "数学".into(),
        asked_at: 100,
    }
}

/// Filed once, sent twice: one entry; a retitled lesson sent again
/// replaces the waiting one's lesson.
#[test]
fn issue_17_a_proposal_sent_twice_is_filed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = lesson("数数");
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &first,
        Hash::of(b"1"),
    )
    .expect("filed");
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &first,
        Hash::of(b"1"),
    )
    .expect("again");
    assert_eq!(entries(dir.path()).expect("entries").len(), 1);
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &lesson("数到十"),
        Hash::of(b"2"),
    )
    .expect("retitled");
    let held = entry(dir.path(), "school-1", "t1").expect("entry");
    assert_eq!(
        (held.title.as_str(), held.lesson),
        ("数到十", Hash::of(b"2"))
    );
    assert_eq!(held.verdict, Verdict::Waiting);
    assert_eq!(
        waiting_lessons(dir.path()).expect("waiting"),
        vec![Hash::of(b"2")]
    );
}

/// The verdicts an edge hears are its own: another edge's proposal of the
/// same id is unknown to it.
#[test]
fn issue_17_verdicts_are_per_edge_and_a_decline_carries_its_note() {
    let dir = tempfile::tempdir().expect("tempdir");
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect("filed");
    decline(dir.path(), "bureau", "school-1", "t1", "  请加上字幕  ").expect("declined");
    let ids = vec!["t1".to_owned(), "t9".to_owned()];
    assert_eq!(
        verdicts(dir.path(), "school-1", &ids).expect("verdicts"),
        vec![
            Verdict::Declined {
                note: "请加上字幕".into()
            },
            Verdict::Unknown
        ]
    );
    assert_eq!(
        verdicts(dir.path(), "school-2", &ids[..1]).expect("verdicts"),
        vec![Verdict::Unknown]
    );
    // Decided once; an empty note is refused; nothing waits any more.
    assert!(matches!(
        decline(dir.path(), "bureau", "school-1", "t1", "again"),
        Err(ReviewError::Decided(_))
    ));
    file(
        dir.path(),
        "school-1",
        &proposal("t2"),
        &lesson("b"),
        Hash::of(b"2"),
    )
    .expect("filed");
    assert!(matches!(
        decline(dir.path(), "bureau", "school-1", "t2", "   "),
        Err(ReviewError::Refused(_))
    ));
    assert_eq!(
        waiting_lessons(dir.path()).expect("waiting"),
        vec![Hash::of(b"2")]
    );
    let log = std::fs::read_to_string(dir.path().join("admin.log")).expect("admin.log");
    assert!(log.contains("bureau") && log.contains("decline"), "{log}");
}

/// One school cannot fill the queue: past its share, it is told to wait.
#[test]
fn issue_17_one_edge_has_at_most_its_share_of_waiting_proposals() {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in 0..MAX_WAITING_PER_EDGE {
        file(
            dir.path(),
            "school-1",
            &proposal(&format!("t{n}")),
            &lesson("a"),
            Hash::of(b"1"),
        )
        .expect("filed");
    }
    let refused = file(
        dir.path(),
        "school-1",
        &proposal("one-more"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect_err("over the share");
    assert!(
        refused.to_string().contains("waiting for review already"),
        "{refused}"
    );
    file(
        dir.path(),
        "school-2",
        &proposal("t0"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect("another school");
    // The schools below one county edge share a larger bound.
    for n in 0..MAX_WAITING_BELOW - 1 {
        let child = format!("county/village-{}", n / MAX_WAITING_PER_EDGE);
        let id = format!("t{}", n % MAX_WAITING_PER_EDGE);
        file(
            dir.path(),
            &child,
            &proposal(&id),
            &lesson("a"),
            Hash::of(b"1"),
        )
        .expect("filed");
    }
    file(
        dir.path(),
        "county",
        &proposal("own"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect("the county's own, the last place");
    let refused = file(
        dir.path(),
        "county/village-99",
        &proposal("t0"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect_err("over the county's bound");
    assert!(refused.to_string().contains("edges below it"), "{refused}");
}

#[test]
fn issue_17_course_ids_given_at_approval_are_plain() {
    for good in ["liangshan-counting", "a", "2026_yi_songs"] {
        check_course_id(good).expect(good);
    }
    let long = "a".repeat(65);
    for bad in ["", "~school", "-x", "Capital", "a/b", "数学", long.as_str()] {
        assert!(check_course_id(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn issue_17_a_damaged_queue_is_named_not_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("review")).expect("folder");
    std::fs::write(queue_path(dir.path()), b"{ not json").expect("write");
    let err = file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect_err("damaged");
    assert!(err.to_string().contains("move it aside"), "{err}");
    assert_eq!(
        std::fs::read(queue_path(dir.path())).expect("kept"),
        b"{ not json"
    );
}

/// Issue 17: an edge's request may exceed the usual frame limit only when
/// it carries a proposal's chunks; an administrator keeps the larger limit.
#[test]
fn issue_17_only_a_proposals_chunks_may_be_a_large_edge_request() {
    use crate::protocol::{MAX_REQUEST, Request};
    use crate::serve::Caller;
    let edge = Caller::Edge("school-1".into());
    let chunks = Request::Propose(ProposeRequest::Chunks { files: Vec::new() });
    let objects = Request::GetObjects { hashes: Vec::new() };
    assert!(edge.allows(MAX_REQUEST, &objects));
    assert!(!edge.allows(MAX_REQUEST + 1, &objects));
    assert!(edge.allows(MAX_PROPOSAL_REQUEST, &chunks));
    let plan = Request::Propose(ProposeRequest::Plan {
        manifests: Vec::new(),
    });
    assert!(!edge.allows(MAX_REQUEST + 1, &plan));
    assert!(Caller::Admin("bureau".into()).allows(MAX_REQUEST + 1, &objects));
}

/// A declined lesson proposed again (a later time) is reviewed again; the
/// same proposal sent again after its decline (an answer lost) is not.
#[test]
fn issue_17_a_declined_lesson_proposed_again_waits_for_review_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect("filed");
    decline(dir.path(), "bureau", "school-1", "t1", "字幕").expect("declined");
    file(
        dir.path(),
        "school-1",
        &proposal("t1"),
        &lesson("a"),
        Hash::of(b"1"),
    )
    .expect("resent");
    assert!(matches!(
        entry(dir.path(), "school-1", "t1").expect("entry").verdict,
        Verdict::Declined { .. }
    ));
    let again = Proposal {
        asked_at: 200,
        ..proposal("t1")
    };
    file(dir.path(), "school-1", &again, &lesson("b"), Hash::of(b"2")).expect("again");
    let held = entry(dir.path(), "school-1", "t1").expect("entry");
    assert_eq!(held.verdict, Verdict::Waiting);
    assert_eq!(
        (held.title.as_str(), held.lesson, held.decided_by),
        ("b", Hash::of(b"2"), None)
    );
}

/// A county edge's queue: a child's proposal is to forward until it went
/// up as that lesson; a retitle makes it go again; the bureau's verdict
/// heard upstream decides it once (a second hearing changes nothing), and
/// the origin files forwarded proposals under `county/child` only for
/// valid edge names.
#[test]
fn issue_17_a_county_forwards_each_proposal_until_the_bureau_decides() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = lesson("数数");
    file(
        dir.path(),
        "village-1",
        &proposal("t1"),
        &first,
        Hash::of(b"1"),
    )
    .expect("filed");
    let (pending, waiting) = to_forward(dir.path()).expect("queue");
    assert_eq!((pending.len(), waiting.len()), (1, 0));
    set_forwarded(dir.path(), "village-1", "t1", Some(Hash::of(b"1"))).expect("forwarded");
    let (pending, waiting) = to_forward(dir.path()).expect("queue");
    assert_eq!((pending.len(), waiting.len()), (0, 1));
    // Retitled at the village: the new lesson goes up again.
    file(
        dir.path(),
        "village-1",
        &proposal("t1"),
        &lesson("数到十"),
        Hash::of(b"2"),
    )
    .expect("retitled");
    assert_eq!(to_forward(dir.path()).expect("queue").0.len(), 1);
    // A record for the old lesson does not mark the new one forwarded.
    set_forwarded(dir.path(), "village-1", "t1", Some(Hash::of(b"1"))).expect("stale");
    assert_eq!(to_forward(dir.path()).expect("queue").0.len(), 1);
    set_forwarded(dir.path(), "village-1", "t1", Some(Hash::of(b"2"))).expect("forwarded");
    assert_eq!(to_forward(dir.path()).expect("queue").0.len(), 0);
    let note = Verdict::Declined {
        note: "请加字幕".into(),
    };
    heard_upstream(dir.path(), "village-1", "t1", note.clone()).expect("heard");
    heard_upstream(
        dir.path(),
        "village-1",
        "t1",
        Verdict::Approved { course: "c".into() },
    )
    .expect("heard twice");
    assert_eq!(
        verdicts(dir.path(), "village-1", &["t1".into()]).expect("verdicts"),
        vec![note]
    );
    assert_eq!(
        to_forward(dir.path()).expect("queue"),
        (Vec::new(), Vec::new())
    );
    // Proposed again after the decline, the same lesson goes up again.
    let again = Proposal {
        asked_at: 200,
        ..proposal("t1")
    };
    file(
        dir.path(),
        "village-1",
        &again,
        &lesson("数到十"),
        Hash::of(b"2"),
    )
    .expect("again");
    assert_eq!(to_forward(dir.path()).expect("queue").0.len(), 1);

    assert_eq!(
        below("county", "village-1").expect("a child"),
        "county/village-1"
    );
    assert!(below("county", "town/village-2").is_ok());
    for bad in ["", "../x", "a//b", "village 1", "x/"] {
        assert!(below("county", bad).is_err(), "{bad:?}");
    }
}

/// The files of a planned proposal are kept by collection for a week
/// (an upload cut off goes on where it stopped), then forgotten; the
/// list is bounded.
#[test]
fn issue_17_files_being_proposed_are_kept_for_a_week() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = catalog::Store::open(dir.path().join("store")).expect("store");
    let (m1, b1, m2, b2) = (
        Hash::of(b"m1"),
        Hash::of(b"b1"),
        Hash::of(b"m2"),
        Hash::of(b"b2"),
    );
    note_planned(dir.path(), &[(m1, b1, 10), (m2, b2, 10)]).expect("noted");
    let (objects, blobs) = kept(dir.path(), &store).expect("kept");
    assert_eq!(objects.len(), 2);
    assert!(objects.contains(&m1) && objects.contains(&m2));
    assert!(blobs.contains(&b1) && blobs.contains(&b2));
    // Planned longer ago than a week: no longer kept.
    let path = planned_path(dir.path());
    let text = std::fs::read_to_string(&path).expect("planned.json");
    let at = format!(
        "\"at\":{}",
        load_planned(dir.path()).expect("planned").files[&m1].at
    );
    std::fs::write(&path, text.replace(&at, "\"at\":1")).expect("aged");
    assert_eq!(
        kept(dir.path(), &store).expect("kept"),
        (Vec::new(), Default::default())
    );
    // At most MAX_PLANNED remembered.
    let many: Vec<(Hash, Hash, u64)> = (0..MAX_PLANNED + 10)
        .map(|n| (Hash::of(&n.to_le_bytes()), Hash::of(b"b"), 1))
        .collect();
    note_planned(dir.path(), &many).expect("noted");
    assert_eq!(
        load_planned(dir.path()).expect("planned").files.len(),
        MAX_PLANNED
    );
    // And at most MAX_PLANNED_BYTES of files: a newer large plan pushes
    // the older ones out, and stays.
    let large = (Hash::of(b"large"), Hash::of(b"L"), MAX_PLANNED_BYTES - 5);
    note_planned(dir.path(), &[large]).expect("noted");
    let planned = load_planned(dir.path()).expect("planned");
    assert!(planned.files.contains_key(&large.0));
    assert_eq!(planned.files.len(), 1 + 5);
    assert!(planned.files.values().map(|p| p.size).sum::<u64>() <= MAX_PLANNED_BYTES);
}
