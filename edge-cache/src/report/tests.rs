//! Issue 15: the report book, the make step, the forwarder and receipts.

use server::report::{
    DayUsage, EdgeReport, Envelope, MAX_ENVELOPE, Receipt, ReportSink, report_key_of_token,
};

use super::apply_receipt;
use super::book::{Book, MAX_FORWARDED, MAX_OWN, peek};
use super::forward::Forwarder;
use super::make::{cut, make};
use super::usage::{Usage, UsageTable};

const TOKEN: &str = "edge-token";

fn key() -> [u8; 32] {
    report_key_of_token(TOKEN)
}

fn base() -> EdgeReport {
    EdgeReport {
        made_at: 1_800_000_000,
        version: "0.1.0".into(),
        catalog_sequence: Some(4),
        ..EdgeReport::default()
    }
}

fn reports_in(book: &Book) -> Vec<EdgeReport> {
    let open = book.open().expect("opens");
    (open.queued().expect("lists").iter())
        .map(|q| peek(&q.bytes).expect("reads").1)
        .collect()
}

fn opens(reports: &[EdgeReport]) -> u64 {
    reports.iter().flat_map(|r| &r.usage).map(|u| u.opens).sum()
}

#[test]
fn issue_15_usage_is_flushed_to_disk_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let usage = Usage::new(dir.path());
    usage.opened("math", "01");
    usage.opened("math", "01");
    usage.served("math", "01", 1000);
    usage.flush().expect("flushes");
    assert!(usage.pending().is_empty(), "taken out of memory");
    // A new process (after a kill -9 once flushed) still has the counts.
    let again = Usage::new(dir.path());
    again.opened("math", "02");
    let book = Book::new(dir.path());
    let made = make(&book, &key(), &base(), &again.take()).expect("makes");
    assert_eq!(made.seqs, vec![1]);
    let reports = reports_in(&book);
    let rows = &reports[0].usage;
    let one = rows.iter().find(|r| r.lesson == "01").expect("01 counted");
    assert_eq!((one.opens, one.bytes_served), (2, 1000));
    assert_eq!(opens(&reports), 3);
    assert!(book.open().expect("opens").ledger.usage.is_empty());
}

#[test]
fn issue_15_sequences_are_never_reused_across_restarts_and_sends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = Book::new(dir.path());
    let empty = UsageTable::default();
    assert_eq!(
        make(&book, &key(), &base(), &empty).expect("1").seqs,
        vec![1]
    );
    // Sent: the queue empties, the number stays used.
    let open = book.open().expect("opens");
    for q in open.queued().expect("lists") {
        open.remove(&q.name).expect("removes");
    }
    drop(open);
    let restarted = Book::new(dir.path());
    assert_eq!(
        make(&restarted, &key(), &base(), &empty).expect("2").seqs,
        vec![2]
    );
    let status = restarted.status();
    assert_eq!((status.pending, status.last_made), (1, Some(1_800_000_000)));
}

/// A crash after the envelope was written but before the ledger (the
/// commit point): the envelope is dropped, its usage is still in the
/// ledger, and the next report carries it exactly once.
#[test]
fn issue_15_taking_usage_into_a_report_is_atomic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = Book::new(dir.path());
    let usage = Usage::new(dir.path());
    usage.opened("math", "01");
    usage.flush().expect("flushes");
    // What a crashed make leaves: an envelope past the ledger's entry number.
    let mut orphan = base();
    orphan.seq = 1;
    orphan.usage = UsageTable::default().to_rows();
    let sealed = Envelope::seal(&key(), &orphan).encode().expect("fits");
    let queue = dir.path().join("reports/queue");
    std::fs::write(queue.join("000000000000-1.own"), sealed).expect("writes");
    let made = make(&book, &key(), &base(), &UsageTable::default()).expect("makes");
    assert_eq!(made.seqs, vec![1], "the uncommitted number was never seen");
    let reports = reports_in(&book);
    assert_eq!(reports.len(), 1);
    assert_eq!(opens(&reports), 1, "counted once, not lost");
}

#[test]
fn issue_15_the_queue_is_bounded_and_usage_waits_for_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = Book::new(dir.path());
    for _ in 0..MAX_OWN {
        make(&book, &key(), &base(), &UsageTable::default()).expect("makes");
    }
    let usage = Usage::new(dir.path());
    usage.opened("math", "01");
    let made = make(&book, &key(), &base(), &usage.take()).expect("makes");
    assert!(made.seqs.is_empty(), "full: no report");
    assert_eq!(made.rows_left, 1, "the usage stays in the ledger");
    assert_eq!(book.status().pending, MAX_OWN);
    // Room again: the next report carries it, numbered after the others.
    let open = book.open().expect("opens");
    let first = open.queued().expect("lists").remove(0);
    open.remove(&first.name).expect("removes");
    drop(open);
    let made = make(&book, &key(), &base(), &UsageTable::default()).expect("makes");
    assert_eq!(made.seqs, vec![MAX_OWN as u64 + 1]);
    assert_eq!(opens(&reports_in(&book)), 1);
}

#[test]
fn issue_15_usage_is_split_so_each_envelope_fits() {
    let rows: Vec<DayUsage> = (0..3000)
        .map(|i| DayUsage {
            day: 20_000 + i / 1000,
            course: format!("course-{}", "c".repeat(40)),
            lesson: format!("lesson-{i}-{}", "l".repeat(40)),
            opens: 1,
            bytes_served: u64::MAX / 3,
            bytes_saved: 7,
        })
        .collect();
    let (made, left) = cut(&key(), &base(), rows, 5, 64);
    assert!(left.is_empty());
    assert!(made.len() >= 4, "{} reports", made.len());
    let mut total = 0;
    for (i, (seq, bytes)) in made.iter().enumerate() {
        assert!(bytes.len() <= MAX_ENVELOPE, "{}", bytes.len());
        let report = Envelope::decode(bytes)
            .expect("decodes")
            .open(&key(), "e")
            .expect("opens");
        assert_eq!(report.seq, 5 + i as u64);
        assert_eq!(*seq, report.seq);
        total += report.usage.len();
        // Forwarded through the most county edges, with the longest names, it still fits.
        let mut forwarded = Envelope::decode(bytes).expect("decodes");
        for _ in 0..server::report::MAX_PATH {
            forwarded
                .path
                .push("学".repeat(server::edge_name::MAX_EDGE_NAME_CHARS));
            forwarded = Envelope::seal_encoded(&key(), forwarded.path, forwarded.report);
        }
        forwarded.encode().expect("fits when forwarded");
    }
    assert_eq!(total, 3000);
    // Bounded by the room in the queue: the rest is handed back.
    let (made, left) = cut(&key(), &base(), vec![row(1); 3], 1, 0);
    assert!(made.is_empty());
    assert_eq!(left.len(), 3);
}

fn row(opens: u64) -> DayUsage {
    DayUsage {
        day: 1,
        course: "c".into(),
        lesson: "l".into(),
        opens,
        bytes_served: 0,
        bytes_saved: 0,
    }
}

#[test]
fn issue_15_a_county_forwards_checked_reports_under_its_own_seal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let downstream = dir.path().join("downstream");
    std::fs::create_dir_all(&downstream).expect("mkdir");
    let child_token = server::tokens::add_edge(&downstream, "village-1").expect("adds");
    let forwarder = Forwarder::new(dir.path(), "county-token");
    let mut report = base();
    report.seq = 3;
    let child_key = report_key_of_token(&child_token);
    let sealed = Envelope::seal(&child_key, &report).encode().expect("fits");
    forwarder.accept("village-1", &sealed).expect("taken");
    let open = Book::new(dir.path()).open().expect("opens");
    let queued = open.queued().expect("lists");
    assert_eq!(queued.len(), 1);
    assert!(queued[0].forwarded);
    let envelope = Envelope::decode(&queued[0].bytes).expect("decodes");
    assert_eq!(envelope.path, vec!["village-1".to_owned()]);
    let county_key = report_key_of_token("county-token");
    assert_eq!(envelope.open(&county_key, "county").expect("opens").seq, 3);
    assert_eq!(envelope.origin_name("county"), "county/village-1");
    drop(open);
    // A wrong seal, or an edge the county does not know, is refused.
    let forged = Envelope::seal(&report_key_of_token("guess"), &report)
        .encode()
        .expect("fits");
    let err = forwarder
        .accept("village-1", &forged)
        .expect_err("bad seal");
    assert!(err.contains("does not verify"), "{err}");
    let err = forwarder.accept("stranger", &sealed).expect_err("unknown");
    assert!(err.contains("not known"), "{err}");
    // Full: refused, so the child keeps it.
    for _ in 1..MAX_FORWARDED {
        forwarder.accept("village-1", &sealed).expect("taken");
    }
    let err = forwarder.accept("village-1", &sealed).expect_err("full");
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(Book::new(dir.path()).status().forwarded, MAX_FORWARDED);
}

#[test]
fn issue_15_a_receipt_drops_its_reports_and_a_foreign_one_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let book = Book::new(dir.path());
    for _ in 0..3 {
        make(&book, &key(), &base(), &UsageTable::default()).expect("makes");
    }
    let mut open = book.open().expect("opens");
    open.ledger.name = Some("school-7".into());
    open.commit().expect("commits");
    drop(open);
    let foreign = Receipt::seal(&report_key_of_token("other"), "school-7".into(), vec![1, 2]);
    assert_eq!(
        apply_receipt(dir.path(), TOKEN, &foreign).expect("applies"),
        0
    );
    let other_edge = Receipt::seal(&key(), "school-8".into(), vec![1, 2]);
    assert_eq!(
        apply_receipt(dir.path(), TOKEN, &other_edge).expect("applies"),
        0
    );
    let mine = Receipt::seal(&key(), "school-7".into(), vec![1, 2]);
    assert_eq!(apply_receipt(dir.path(), TOKEN, &mine).expect("applies"), 2);
    let left: Vec<u64> = reports_in(&book).iter().map(|r| r.seq).collect();
    assert_eq!(left, vec![3]);
}

/// A report the upstream keeps refusing (an answer, not a failed link) is
/// sent at most `SET_ASIDE_AFTER` times, then set aside for the operator:
/// the count survives a restart, other reports stay queued, and the status
/// says how many were set aside.
#[test]
fn issue_15_a_report_refused_again_and_again_is_set_aside() {
    use super::book::SET_ASIDE_AFTER;
    let dir = tempfile::tempdir().expect("tempdir");
    let book = Book::new(dir.path());
    let empty = UsageTable::default();
    make(&book, &key(), &base(), &empty).expect("1");
    make(&book, &key(), &base(), &empty).expect("2");
    let names: Vec<String> = book
        .open()
        .expect("opens")
        .queued()
        .expect("lists")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(names.len(), 2);
    for time in 1..SET_ASIDE_AFTER {
        // A new process each pass: the count is in the ledger.
        let mut open = Book::new(dir.path()).open().expect("opens");
        assert!(!open.refused(&names[0]).expect("counts"), "refusal {time}");
        open.commit().expect("commits");
    }
    assert_eq!(book.status().pending, 2);
    let mut open = book.open().expect("opens");
    assert!(open.refused(&names[0]).expect("counts"), "set aside");
    open.commit().expect("commits");
    let queued: Vec<String> = open
        .queued()
        .expect("lists")
        .into_iter()
        .map(|q| q.name)
        .collect();
    assert_eq!(queued, vec![names[1].clone()]);
    assert!(open.ledger.refused.is_empty(), "{:?}", open.ledger.refused);
    drop(open);
    assert!(
        dir.path()
            .join("reports/set-aside")
            .join(&names[0])
            .is_file()
    );
    let status = book.status();
    assert_eq!((status.pending, status.set_aside), (1, 1));
}
