//! The fleet's ingestion and what the pages compute from it (issue 15).

use std::collections::BTreeMap;

use super::model::{day_of, now};
use super::view::{self, CatalogView, CourseInfo, EdgeQuery, Sort};
use super::*;
use crate::report::{
    CourseHeld, DayUsage, EdgeReport, Envelope, Failure, SyncSummary, report_key_of_token,
};
use crate::tokens::{self, Book};

fn report(seq: u64, catalog_sequence: u64, opens: u64) -> EdgeReport {
    EdgeReport {
        seq,
        made_at: now(),
        version: "0.1.0".into(),
        catalog_sequence: Some(catalog_sequence),
        courses: vec![CourseHeld {
            id: "math".into(),
            version: 2,
            complete: true,
        }],
        courses_total: 1,
        bytes_held: 1000 * seq,
        bytes_free: 5 << 30,
        usage: vec![DayUsage {
            day: day_of(now()),
            course: "math".into(),
            lesson: "01".into(),
            opens,
            bytes_served: 100,
            bytes_saved: 10,
        }],
        ..EdgeReport::default()
    }
}

fn sealed(token: &str, report: &EdgeReport) -> Vec<u8> {
    Envelope::seal(&report_key_of_token(token), report)
        .encode()
        .expect("fits")
}

/// Report `seq` (nothing else in it) sealed with `token`'s key: for the
/// inbox's and the shared reports' tests.
pub(super) fn sealed_seq(token: &str, seq: u64) -> Vec<u8> {
    let report = EdgeReport {
        seq,
        made_at: 1,
        ..EdgeReport::default()
    };
    sealed(token, &report)
}

fn catalog() -> CatalogView {
    let mut courses = BTreeMap::new();
    for (id, version, grade) in [("math", 2, "三年级"), ("art", 1, "五年级")] {
        courses.insert(
            id.to_owned(),
            CourseInfo {
                id: id.into(),
                version,
                grade: Some(grade.into()),
                ..CourseInfo::default()
            },
        );
    }
    CatalogView {
        sequence: Some(5),
        published_at: 0,
        courses,
    }
}

#[test]
fn issue_15_the_same_report_twice_counts_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = tokens::add(dir.path(), Book::Edges, "school-1", Some("昭觉县")).expect("add");
    let fleet = Fleet::open(dir.path()).expect("open");
    let envelope = sealed(&token, &report(1, 5, 3));
    fleet.accept("school-1", &envelope).expect("first");
    fleet
        .accept("school-1", &envelope)
        .expect("again: already held is Ok");
    let record = fleet.edge("school-1").expect("filed");
    assert_eq!(record.reports, 1);
    assert_eq!(record.opens, 3);
    assert_eq!(record.county.as_deref(), Some("昭觉县"));
    assert!(record.holds(1) && !record.holds(2));
    assert_eq!(fleet.read(|m| (m.applied, m.duplicates)), (1, 1));
    // The same envelope again on a USB stick.
    let again = fleet.accept_many(&[("school-1".into(), envelope)]);
    assert!(matches!(again.as_slice(), [Ok(false)]));
    let (lessons, _) = view::top_lessons(&fleet, &catalog(), None, None, now());
    assert_eq!(lessons.len(), 1);
    assert_eq!(lessons[0].opens, 3);
}

#[test]
fn issue_15_reports_out_of_order_all_count_and_the_highest_sequence_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = tokens::add_edge(dir.path(), "school-1").expect("add");
    let fleet = Fleet::open(dir.path()).expect("open");
    for seq in [3, 1, 2] {
        fleet
            .accept("school-1", &sealed(&token, &report(seq, seq, 1)))
            .expect("accept");
    }
    let record = fleet.edge("school-1").expect("filed");
    assert_eq!(record.reports, 3);
    assert_eq!((record.floor, record.above.as_slice()), (3, &[][..]));
    let latest = record.latest.expect("latest");
    assert_eq!(
        (latest.seq, latest.catalog_sequence, latest.bytes_held),
        (3, Some(3), 3000)
    );
    assert_eq!(record.opens, 3);
    // Seq 2 again after 3: nothing changes.
    fleet
        .accept("school-1", &sealed(&token, &report(2, 2, 1)))
        .expect("dup");
    assert_eq!(fleet.edge("school-1").expect("filed").reports, 3);
}

#[test]
fn issue_15_bad_seals_unknown_and_revoked_senders_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = tokens::add_edge(dir.path(), "school-1").expect("add");
    let other = tokens::add_edge(dir.path(), "school-2").expect("add");
    let fleet = Fleet::open(dir.path()).expect("open");
    let err = fleet
        .accept("school-1", &sealed(&other, &report(1, 1, 1)))
        .expect_err("sealed with another edge's key");
    assert!(
        err.contains("seal does not verify") && err.contains("school-1"),
        "{err}"
    );
    let err = fleet
        .accept("nobody", &sealed(&token, &report(1, 1, 1)))
        .expect_err("unknown");
    assert!(err.contains("\"nobody\" is not an edge"), "{err}");
    let err = fleet.accept("school-1", b"junk").expect_err("malformed");
    assert!(err.contains("does not decode"), "{err}");
    // Revoked: edges.toml changes and is read again.
    assert!(tokens::revoke(dir.path(), Book::Edges, "school-1").expect("revoke"));
    // The file's mtime may not tick within the same instant on some file systems.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let err = fleet
        .accept("school-1", &sealed(&token, &report(1, 1, 1)))
        .expect_err("revoked");
    assert!(err.contains("revoked"), "{err}");
    assert_eq!(fleet.edge("school-1"), None);
    assert_eq!(fleet.read(|m| m.edges.len()), 0);
}

#[test]
fn issue_15_a_forwarded_report_is_filed_under_county_and_child() {
    let dir = tempfile::tempdir().expect("tempdir");
    let county_token = tokens::add_edge(dir.path(), "县中心").expect("add");
    let fleet = Fleet::open(dir.path()).expect("open");
    let child_key = report_key_of_token("the child's own token");
    let child = Envelope::seal(&child_key, &report(4, 5, 2));
    let forwarded = Envelope::seal_encoded(
        &report_key_of_token(&county_token),
        vec!["village-1".into()],
        child.report,
    )
    .encode()
    .expect("fits");
    fleet.accept("县中心", &forwarded).expect("forwarded");
    fleet
        .accept("县中心", &sealed(&county_token, &report(1, 5, 0)))
        .expect("own");
    let child = fleet.edge("县中心/village-1").expect("child filed");
    assert_eq!(
        (child.reports, child.county.as_deref()),
        (1, Some("县中心"))
    );
    assert!(child.holds(4));
    let county = fleet.edge("县中心").expect("county filed");
    assert_eq!((county.reports, county.county), (1, None));
    // A child name that is no edge name (a slash would fake a grandchild) is refused.
    let fake = Envelope::seal_encoded(
        &report_key_of_token(&county_token),
        vec!["village-1/x".into()],
        report(1, 5, 0).encode(),
    );
    let err = fleet
        .accept("县中心", &fake.encode().expect("fits"))
        .expect_err("bad child name");
    assert!(err.contains("not an edge name"), "{err}");
    // A county edge with a county in edges.toml gives it to its children.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let token = tokens::add(dir2.path(), Book::Edges, "hub", Some("喜德县")).expect("add");
    let fleet2 = Fleet::open(dir2.path()).expect("open");
    let forwarded = Envelope::seal_encoded(
        &report_key_of_token(&token),
        vec!["v".into()],
        report(1, 1, 1).encode(),
    );
    fleet2
        .accept("hub", &forwarded.encode().expect("fits"))
        .expect("accept");
    assert_eq!(
        fleet2.edge("hub/v").expect("filed").county.as_deref(),
        Some("喜德县")
    );
}

#[test]
fn issue_15_pages_aggregate_adoption_lag_flags_and_lessons() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = Fleet::open(dir.path()).expect("open");
    let today = day_of(now());
    let mut items = Vec::new();
    for (i, county) in ["A", "A", "B"].iter().enumerate() {
        let mut report = report(1, 5 - i as u64, 0);
        report.usage = vec![
            DayUsage {
                day: today,
                course: "math".into(),
                lesson: "01".into(),
                opens: 10,
                bytes_served: 1,
                bytes_saved: 0,
            },
            DayUsage {
                day: today - 3,
                course: "art".into(),
                lesson: "07".into(),
                opens: 4,
                bytes_served: 1,
                bytes_saved: 0,
            },
            // Outside the 30-day window: kept, but not in the most-opened list.
            DayUsage {
                day: today - 40,
                course: "art".into(),
                lesson: "09".into(),
                opens: 100,
                bytes_served: 1,
                bytes_saved: 0,
            },
        ];
        match i {
            1 => report.courses[0].complete = false,
            2 => {
                report.courses[0].version = 1;
                report.last_sync = Some(SyncSummary {
                    ended_at: now(),
                    complete: false,
                    files_missing: 2,
                });
                report.failures = vec![Failure {
                    at: now(),
                    message: "disk full, \"D:\"".into(),
                }];
            }
            _ => {}
        }
        items.push(Item {
            edge: format!("e{i}"),
            county: Some((*county).into()),
            report,
            arrived: now() - 3 * 86_400 * i as u64,
        });
    }
    assert_eq!(fleet.apply(items).expect("apply"), vec![true, true, true]);
    let catalog = catalog();
    let adoption = view::adoption(&fleet, &catalog);
    let math = adoption
        .iter()
        .find(|a| a.course.id == "math")
        .expect("math");
    assert_eq!((math.complete, math.partial, math.older), (1, 1, 1));
    let art = adoption.iter().find(|a| a.course.id == "art").expect("art");
    assert_eq!((art.complete, art.partial, art.older), (0, 0, 0));

    let rows = view::edges(
        &fleet,
        &catalog,
        &EdgeQuery {
            sort: Sort::Lag,
            desc: true,
            ..EdgeQuery::default()
        },
        now(),
    );
    let lags: Vec<_> = rows
        .iter()
        .map(|r| (r.name.as_str(), r.catalog_lag))
        .collect();
    assert_eq!(lags, [("e2", Some(2)), ("e1", Some(1)), ("e0", Some(0))]);
    assert!(rows[0].failing && rows[0].behind && rows[0].silent);
    assert!(!rows[2].failing && !rows[2].behind && !rows[2].silent);
    let only_a = view::edges(
        &fleet,
        &catalog,
        &EdgeQuery {
            county: Some("A".into()),
            ..EdgeQuery::default()
        },
        now(),
    );
    assert_eq!(
        only_a.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["e0", "e1"]
    );
    let flagged = view::edges(
        &fleet,
        &catalog,
        &EdgeQuery {
            flagged: true,
            ..EdgeQuery::default()
        },
        now(),
    );
    assert_eq!(flagged.len(), 2);

    let summary = view::summary(&fleet, &catalog, now());
    assert_eq!(
        (
            summary.edges,
            summary.behind,
            summary.failing,
            summary.silent,
            summary.reports,
            summary.opens
        ),
        (3, 2, 1, 2, 3, 342)
    );

    let (top, grades) = view::top_lessons(&fleet, &catalog, None, None, now());
    let top: Vec<_> = top
        .iter()
        .map(|l| {
            (
                l.county.as_str(),
                l.lesson.as_str(),
                l.grade.as_str(),
                l.opens,
            )
        })
        .collect();
    assert_eq!(
        top,
        [
            ("A", "01", "三年级", 20),
            ("B", "01", "三年级", 10),
            ("A", "07", "五年级", 8),
            ("B", "07", "五年级", 4)
        ]
    );
    assert_eq!(grades, ["三年级", "五年级"]);
    let (fifth_in_b, _) = view::top_lessons(&fleet, &catalog, Some("B"), Some("五年级"), now());
    assert_eq!(fifth_in_b.iter().map(|l| l.opens).collect::<Vec<_>>(), [4]);

    let csv = view::csv(&rows);
    assert!(csv.starts_with("name,county,last_seen,"), "{csv}");
    assert!(csv.contains(",\"disk full, \"\"D:\"\"\"\r\n"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
}

#[test]
fn issue_15_a_restarted_fleet_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = tokens::add(dir.path(), Book::Edges, "school-1", Some("A")).expect("add");
    {
        let fleet = Fleet::open(dir.path()).expect("open");
        for seq in [1, 2, 5] {
            fleet
                .accept("school-1", &sealed(&token, &report(seq, 4, 2)))
                .expect("accept");
        }
    }
    let fleet = Fleet::open(dir.path()).expect("reopen");
    let record = fleet.edge("school-1").expect("kept");
    assert_eq!(
        (
            record.reports,
            record.floor,
            record.above.clone(),
            record.opens
        ),
        (3, 2, vec![5], 6)
    );
    fleet
        .accept("school-1", &sealed(&token, &report(5, 4, 2)))
        .expect("dup");
    assert_eq!(fleet.edge("school-1").expect("kept").reports, 3);
    let (top, _) = view::top_lessons(&fleet, &catalog(), Some("A"), None, now());
    assert_eq!(
        top.iter().map(|l| l.opens).collect::<Vec<_>>(),
        [6],
        "the usage window is rebuilt from the file"
    );
}

#[test]
fn issue_15_reports_from_many_threads_are_all_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens: Vec<_> = (0..8)
        .map(|i| tokens::add_edge(dir.path(), &format!("s{i}")).expect("add"))
        .collect();
    let fleet = Fleet::open(dir.path()).expect("open");
    std::thread::scope(|scope| {
        for (i, token) in tokens.iter().enumerate() {
            let fleet = fleet.clone();
            scope.spawn(move || {
                for seq in 1..=50 {
                    fleet
                        .accept(&format!("s{i}"), &sealed(token, &report(seq, 1, 1)))
                        .expect("accept");
                }
            });
        }
    });
    assert_eq!(fleet.read(|m| m.applied), 400);
    for i in 0..8 {
        assert_eq!(fleet.edge(&format!("s{i}")).expect("filed").floor, 50);
    }
}

#[test]
fn issue_15_an_edge_that_lost_a_report_keeps_a_bounded_set() {
    let mut record = EdgeRecord::new("e".into(), None);
    assert!(record.apply(&report(1, 1, 0), 1));
    // Report 2 never comes.
    for seq in 3..(3 + model::MAX_ABOVE as u64 + 10) {
        assert!(record.apply(&report(seq, 1, 0), 1));
    }
    assert!(record.above.len() <= model::MAX_ABOVE);
    assert!(record.floor > 2);
    assert!(
        !record.apply(&report(2, 1, 0), 1),
        "given up on, taken as held"
    );
}
