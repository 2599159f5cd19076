//! Edge reports (issue 15): what an edge tells the bureau about itself.
//!
//! An edge makes a report at each sync pass: the catalog it holds, its
//! courses, disk, recent failures, its last scrub, and usage aggregated per
//! lesson per day (never per pupil). Each report has the next sequence
//! number of that edge and is kept until the upstream acknowledges it, so
//! a report made while the link is down travels later. The origin applies
//! a report only once per (edge, sequence): sent twice, over the network
//! and on a USB stick, it counts once.
//!
//! A report travels sealed in an [`Envelope`]: the report's bytes and the
//! path of names below the sender it came from, with a keyed BLAKE3 MAC
//! under the sender's report key. The key is derived from the BLAKE3 of
//! the sender's token, which the sender knows and its upstream keeps, so a
//! report is checked the same way whichever road it took: straight to the
//! origin, through a county edge (which checks its child's envelope and
//! seals it again under its own key, the child's name added to the path),
//! or on a USB stick (the have list carries the envelopes).
//!
//! Everything is bounded: an envelope is at most [`MAX_ENVELOPE`] bytes, so
//! it fits in one request frame; an edge with more to say makes several
//! reports.

use catalog::Hash;
use serde::{Deserialize, Serialize};

/// Largest sealed envelope: under the sync protocol's request frame limit.
pub const MAX_ENVELOPE: usize = 48 * 1024;
/// Most names in an envelope's path (a county edge below a county edge...).
pub const MAX_PATH: usize = 4;
/// Most recent failures a report carries.
pub const MAX_FAILURES: usize = 8;
/// Longest failure message kept, in bytes (longer ones are cut).
pub const MAX_FAILURE_BYTES: usize = 512;
/// Longest version string.
pub const MAX_VERSION_BYTES: usize = 64;

/// What an edge says about itself in one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EdgeReport {
    /// This edge's report number: 1, 2, 3… never reused.
    pub seq: u64,
    /// When the report was made, unix seconds (the edge's clock).
    pub made_at: u64,
    /// The shanlu version the edge runs.
    pub version: String,
    /// The catalog sequence the edge holds in force.
    pub catalog_sequence: Option<u64>,
    /// Courses the edge subscribes to, with the version held. May be cut
    /// short to fit; `courses_total` says how many there are.
    pub courses: Vec<CourseHeld>,
    pub courses_total: u32,
    /// Bytes of lesson files the store holds.
    pub bytes_held: u64,
    /// Bytes free on the disk holding the store.
    pub bytes_free: u64,
    /// The store's limit, if one is set.
    pub store_limit: Option<u64>,
    /// The last sync pass: when it ended and whether it got everything.
    pub last_sync: Option<SyncSummary>,
    /// The most recent failures, newest first, at most [`MAX_FAILURES`].
    pub failures: Vec<Failure>,
    /// The last scrub of the store.
    pub last_scrub: Option<ScrubSummary>,
    /// Usage since the previous report, per lesson per day.
    pub usage: Vec<DayUsage>,
}

/// A subscribed course as the edge holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseHeld {
    pub id: String,
    /// The version of the catalog the edge holds.
    pub version: u64,
    /// Every file of that version is held and verified.
    pub complete: bool,
}

/// How the last sync pass went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    pub ended_at: u64,
    /// Everything subscribed is held.
    pub complete: bool,
    pub files_missing: u64,
}

/// Something that went wrong on the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub at: u64,
    /// What failed, at most [`MAX_FAILURE_BYTES`].
    pub message: String,
}

/// The last scrub (re-hash) of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubSummary {
    pub at: u64,
    pub blobs_checked: u64,
    /// Files found damaged (taken out of service and fetched again).
    pub damaged: u64,
}

/// Use of one lesson on one day. `lesson` is empty for a course's own
/// files (its cover, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayUsage {
    /// Days since 1970-01-01 in the edge's local time.
    pub day: u32,
    pub course: String,
    pub lesson: String,
    /// Times the lesson's page was opened in a classroom.
    pub opens: u64,
    /// Bytes of its files served to classrooms.
    pub bytes_served: u64,
    /// Bytes the edge did not fetch for its files because it already held
    /// them (dedupe) or took them as deltas.
    pub bytes_saved: u64,
}

/// Why an envelope or receipt was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("the report is {len} bytes sealed; the limit is {MAX_ENVELOPE}")]
    TooLarge { len: usize },
    #[error("the report does not decode: {0}")]
    Malformed(String),
    #[error("the report's seal does not verify with the key of {sender:?}")]
    BadSeal { sender: String },
    #[error("the report's path has {len} names; the limit is {MAX_PATH}")]
    PathTooLong { len: usize },
    #[error("report sequence 0 is not a report")]
    NoSequence,
}

/// The key reports of the edge whose token hashes to `token_b3` are sealed with.
pub fn report_key(token_b3: &Hash) -> [u8; 32] {
    blake3::derive_key("shanlu 2026-12 edge report seal", token_b3.as_bytes())
}

/// The key of the edge whose token is `token`.
pub fn report_key_of_token(token: &str) -> [u8; 32] {
    report_key(&Hash::of(token.trim().as_bytes()))
}

/// A report sealed by the edge that sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Names below the sender, nearest first: empty for the sender's own
    /// report; `[child]` for a report a county edge forwards.
    pub path: Vec<String>,
    /// The [`EdgeReport`], postcard-encoded.
    #[serde(with = "serde_bytes")]
    pub report: Vec<u8>,
    pub mac: [u8; 32],
}

fn mac(key: &[u8; 32], path: &[String], report: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    // Length-prefixed, so no two (path, report) pairs hash the same input.
    hasher.update(&(path.len() as u64).to_le_bytes());
    for name in path {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
    }
    hasher.update(&(report.len() as u64).to_le_bytes());
    hasher.update(report);
    *hasher.finalize().as_bytes()
}

impl Envelope {
    /// Seals `report` (already encoded) under `key`, as coming from `path`
    /// below the sender.
    pub fn seal_encoded(key: &[u8; 32], path: Vec<String>, report: Vec<u8>) -> Envelope {
        let mac = mac(key, &path, &report);
        Envelope { path, report, mac }
    }

    /// Seals the sender's own `report` under `key`.
    pub fn seal(key: &[u8; 32], report: &EdgeReport) -> Envelope {
        Envelope::seal_encoded(key, Vec::new(), report.encode())
    }

    /// The envelope's bytes, refused if over [`MAX_ENVELOPE`].
    pub fn encode(&self) -> Result<Vec<u8>, ReportError> {
        let bytes = postcard::to_stdvec(self).map_err(|e| ReportError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_ENVELOPE {
            return Err(ReportError::TooLarge { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// Reads an envelope, checking only its size and shape (not its seal).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, ReportError> {
        if bytes.len() > MAX_ENVELOPE {
            return Err(ReportError::TooLarge { len: bytes.len() });
        }
        let envelope: Envelope = match postcard::take_from_bytes(bytes) {
            Ok((envelope, [])) => envelope,
            Ok(_) => return Err(ReportError::Malformed("bytes after its end".into())),
            Err(err) => return Err(ReportError::Malformed(err.to_string())),
        };
        if envelope.path.len() > MAX_PATH {
            return Err(ReportError::PathTooLong {
                len: envelope.path.len(),
            });
        }
        Ok(envelope)
    }

    /// Checks the seal with the key of `sender` and decodes the report.
    pub fn open(&self, key: &[u8; 32], sender: &str) -> Result<EdgeReport, ReportError> {
        let expected = mac(key, &self.path, &self.report);
        // Constant time: the MAC is a secret-keyed value.
        if !constant_time_eq(&expected, &self.mac) {
            return Err(ReportError::BadSeal {
                sender: sender.to_owned(),
            });
        }
        EdgeReport::decode(&self.report)
    }

    /// The full name of the edge that made the report, as the origin knows
    /// it: the sender's name, then the path's names outermost first, joined
    /// by `/` (a county's child `县中心/village-1`).
    pub fn origin_name(&self, sender: &str) -> String {
        std::iter::once(sender)
            .chain(self.path.iter().rev().map(String::as_str))
            .collect::<Vec<_>>()
            .join("/")
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl EdgeReport {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("postcard encodes plain data")
    }

    pub fn decode(bytes: &[u8]) -> Result<EdgeReport, ReportError> {
        let report: EdgeReport = match postcard::take_from_bytes(bytes) {
            Ok((report, [])) => report,
            Ok(_) => return Err(ReportError::Malformed("bytes after its end".into())),
            Err(err) => return Err(ReportError::Malformed(err.to_string())),
        };
        if report.seq == 0 {
            return Err(ReportError::NoSequence);
        }
        Ok(report)
    }

    /// Cuts the free-text fields to their limits (at character boundaries).
    pub fn trim(&mut self) {
        truncate(&mut self.version, MAX_VERSION_BYTES);
        self.failures.truncate(MAX_FAILURES);
        for failure in &mut self.failures {
            truncate(&mut failure.message, MAX_FAILURE_BYTES);
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// Takes sealed reports sent by edges: the origin's fleet, or a county
/// edge's queue of its children's reports to forward.
pub trait ReportSink: Send + Sync + 'static {
    /// Takes `envelope` (encoded) from `sender`, the name its token
    /// authenticated. Returns once the report is kept durably or was
    /// already held (the sender may then forget it); an error says why it
    /// was refused. Blocking: called on the blocking pool.
    fn accept(&self, sender: &str, envelope: &[u8]) -> Result<(), String>;
}

/// The origin's acknowledgement of reports that reached it some other
/// way than the network (a USB stick's have list), carried back to the
/// edge in a bundle so it can forget them. Sealed with the edge's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The edge's full name at the origin.
    pub edge: String,
    /// The sequences the origin holds.
    pub seqs: Vec<u64>,
    pub mac: [u8; 32],
}

impl Receipt {
    pub fn seal(key: &[u8; 32], edge: String, seqs: Vec<u64>) -> Receipt {
        let mac = receipt_mac(key, &edge, &seqs);
        Receipt { edge, seqs, mac }
    }

    /// Whether the receipt was sealed with `key`.
    pub fn verify(&self, key: &[u8; 32]) -> bool {
        constant_time_eq(&receipt_mac(key, &self.edge, &self.seqs), &self.mac)
    }
}

fn receipt_mac(key: &[u8; 32], edge: &str, seqs: &[u64]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"receipt\0");
    hasher.update(&(edge.len() as u64).to_le_bytes());
    hasher.update(edge.as_bytes());
    for seq in seqs {
        hasher.update(&seq.to_le_bytes());
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EdgeReport {
        EdgeReport {
            seq: 7,
            made_at: 1_800_000_000,
            version: "0.1.0".into(),
            catalog_sequence: Some(3),
            courses: vec![CourseHeld {
                id: "math".into(),
                version: 2,
                complete: true,
            }],
            courses_total: 1,
            usage: vec![DayUsage {
                day: 20_000,
                course: "math".into(),
                lesson: "01".into(),
                opens: 3,
                bytes_served: 1 << 20,
                bytes_saved: 0,
            }],
            ..EdgeReport::default()
        }
    }

    #[test]
    fn issue_15_a_sealed_report_opens_only_with_its_key_and_unchanged() {
        let key = report_key_of_token("token-a");
        let sealed = Envelope::seal(&key, &report()).encode().expect("fits");
        let envelope = Envelope::decode(&sealed).expect("decodes");
        assert_eq!(envelope.open(&key, "a").expect("opens"), report());
        let other = report_key_of_token("token-b");
        assert_eq!(
            envelope.open(&other, "b"),
            Err(ReportError::BadSeal { sender: "b".into() })
        );
        let mut changed = envelope.clone();
        changed.report[3] ^= 1;
        assert!(matches!(
            changed.open(&key, "a"),
            Err(ReportError::BadSeal { .. })
        ));
        let mut moved = envelope;
        moved.path.push("someone-else".into());
        assert!(matches!(
            moved.open(&key, "a"),
            Err(ReportError::BadSeal { .. })
        ));
    }

    #[test]
    fn issue_15_a_forwarded_report_names_its_edge_below_the_sender() {
        let child_key = report_key_of_token("child");
        let child = Envelope::seal(&child_key, &report());
        let county_key = report_key_of_token("county");
        let mut path = child.path.clone();
        path.push("village-1".into());
        let forwarded = Envelope::seal_encoded(&county_key, path, child.report.clone());
        assert_eq!(forwarded.origin_name("县中心"), "县中心/village-1");
        assert_eq!(forwarded.open(&county_key, "县中心").expect("opens").seq, 7);
        assert_eq!(child.origin_name("a"), "a");
    }

    #[test]
    fn issue_15_envelopes_past_the_limits_are_refused() {
        let key = report_key_of_token("t");
        let mut big = report();
        big.usage = (0..2000)
            .map(|i| DayUsage {
                day: i,
                course: "c".repeat(30),
                lesson: "l".repeat(30),
                opens: 1,
                bytes_served: 1,
                bytes_saved: 1,
            })
            .collect();
        assert!(matches!(
            Envelope::seal(&key, &big).encode(),
            Err(ReportError::TooLarge { .. })
        ));
        assert!(matches!(
            Envelope::decode(&vec![0u8; MAX_ENVELOPE + 1]),
            Err(ReportError::TooLarge { .. })
        ));
        let deep = Envelope::seal_encoded(&key, vec!["x".into(); MAX_PATH + 1], report().encode());
        let bytes = postcard::to_stdvec(&deep).expect("encodes");
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(ReportError::PathTooLong { .. })
        ));
        let mut zero = report();
        zero.seq = 0;
        assert_eq!(
            Envelope::seal(&key, &zero).open(&key, "a"),
            Err(ReportError::NoSequence)
        );
        assert!(matches!(
            Envelope::decode(b"\x05junk"),
            Err(ReportError::Malformed(_))
        ));
    }

    #[test]
    fn issue_15_trim_cuts_at_character_boundaries() {
        let mut report = report();
        report.failures = (0..20)
            .map(|i| Failure {
                at: i,
                message: "山".repeat(400),
            })
            .collect();
        report.trim();
        assert_eq!(report.failures.len(), MAX_FAILURES);
        assert!(report.failures[0].message.len() <= MAX_FAILURE_BYTES);
        assert!(report.failures[0].message.chars().all(|c| c == '山'));
    }

    #[test]
    fn issue_15_receipts_verify_only_with_their_key() {
        let key = report_key_of_token("t");
        let receipt = Receipt::seal(&key, "a".into(), vec![1, 2, 5]);
        assert!(receipt.verify(&key));
        assert!(!receipt.verify(&report_key_of_token("u")));
        let mut more = receipt.clone();
        more.seqs.push(6);
        assert!(!more.verify(&key));
    }
}
