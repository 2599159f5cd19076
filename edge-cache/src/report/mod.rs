//! Reports from the edge to the bureau (issue 15).
//!
//! - [`usage`]: lesson-page opens, bytes served and bytes a sync saved,
//!   per lesson per day, counted in memory and flushed every few seconds.
//! - [`book`]: the durable ledger and queue in `DIR/reports/`.
//! - [`make`]: at the end of every sync pass, successful or not, the next
//!   report(s) from the edge's status and the usage since the last one.
//! - [`forward`]: a county edge's [`server::report::ReportSink`]: its
//!   children's reports, checked, re-sealed and queued with its own.
//!
//! Reports still queued go upstream as soon as a pass has its link
//! ([`send_early`], while the pass runs); after making, the rest follow,
//! all at once, when the upstream's welcome says revision
//! [`REVISION_BUREAU`] or later; an `Ok` removes one, anything else keeps
//! it for the next pass (the origin counts each report once, so one sent
//! twice costs only its bytes). Reports also
//! travel on USB sticks: the have list carries the queue, the bundle
//! brings back a [`server::report::Receipt`] ([`apply_receipt`]).
//!
//! Non-goals: per-pupil data of any kind; the origin's side (the fleet).

pub mod book;
pub mod forward;
pub mod make;
pub mod page;
pub mod usage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catalog::Store;
use server::protocol::{REVISION_BUREAU, Request, Response};
use server::report::{Receipt, report_key_of_token};
use tracing::{debug, info, warn};

pub use book::{Book, BookError, ReportsStatus};
pub use usage::Usage;

use crate::config::EdgeConfig;
use crate::sync::SyncReport;
use crate::sync::client::Client;

/// How long one report waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(20);

/// Runs blocking book work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BookError> + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(err)) => {
            warn!(cause = %crate::sync::error_chain(&err), "the report book");
            None
        }
        Err(err) => {
            warn!(cause = %err, "the report book's worker stopped");
            None
        }
    }
}

/// The end of a sync pass: makes the next report(s) from the edge's status,
/// the pass and the usage counted, then sends every queued report through
/// `client` (none: the upstream could not be reached), waiting for the
/// answers at most [`last_wait`]. Never fails the pass: what goes wrong is
/// logged and the queue keeps what it has.
pub async fn after_pass(
    dir: &Path,
    config: &EdgeConfig,
    store: &Arc<Store>,
    usage: &Arc<Usage>,
    pass: &SyncReport,
    client: Option<&Client>,
) {
    let key = report_key_of_token(&config.token);
    let (dir_owned, config_owned, store) = (dir.to_owned(), config.clone(), store.clone());
    let (usage_owned, pass) = (usage.clone(), pass.clone());
    let made = blocking(move || {
        let status =
            crate::status::status_of(&dir_owned, &config_owned, &store).map_err(|err| {
                BookError::Io {
                    action: "reading the edge's status for its report in",
                    path: dir_owned.clone(),
                    source: std::io::Error::other(crate::sync::error_chain(&err)),
                }
            })?;
        let base = make::base_report(&status, Some(&pass), server::origin::now_secs());
        let fresh = usage_owned.take();
        let book = Book::new(&dir_owned);
        make::make(&book, &key, &base, &fresh).inspect_err(|_| usage_owned.put_back(fresh))
    })
    .await;
    if let Some(made) = &made {
        info!(reports = ?made.seqs, usage_rows_left = made.rows_left, "report made");
    }
    if let Some(client) = client {
        send_queued(dir, client, last_wait(client)).await;
    }
}

/// Round trips above this make a link slow: the end of a pass does not
/// wait a round trip for its report's answer there.
const SLOW_LINK: Duration = Duration::from_millis(150);

/// How long the end of a pass waits for its reports' answers: long enough
/// for the origin to commit them on a quick link; on a slow one (a
/// satellite's 600 ms) only for the frames to leave. A report not answered
/// stays queued and goes again, first thing, with the next pass (the
/// origin counts each once), so a slow link's pass is not a round trip
/// longer for it.
pub fn last_wait(client: &Client) -> Duration {
    match client.rtt() {
        Some(rtt) if rtt > SLOW_LINK => Duration::from_millis(50),
        _ => Duration::from_secs(2),
    }
}

/// The start of a pass with a link: the reports still queued from earlier
/// passes go up while the pass runs, answered at most [`ANSWER_WAIT`]
/// later. The end of the pass stops this (see [`finish_early`]) and sends
/// whatever is still queued.
pub fn send_early(dir: &Path, client: &Client) -> tokio::task::JoinHandle<Sent> {
    let (dir, client) = (dir.to_owned(), client.clone());
    tokio::spawn(async move { send_queued(&dir, &client, ANSWER_WAIT).await })
}

/// Lets the reports sent at the start of the pass finish their answers for
/// a moment, then stops waiting for them.
pub async fn finish_early(early: tokio::task::JoinHandle<Sent>) {
    let abort = early.abort_handle();
    if tokio::time::timeout(Duration::from_millis(50), early)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// What [`send_queued`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub sent: usize,
    pub kept: usize,
}

/// Sends every queued envelope to the upstream behind `client`, if it takes
/// reports, all at once (each on its own stream), and removes each the
/// upstream answers `Ok` within `wait`; the others stay queued.
pub async fn send_queued(dir: &Path, client: &Client, wait: Duration) -> Sent {
    let book = Book::new(dir);
    let name = client.edge_name.clone();
    let upstream_takes = client.origin_revision >= REVISION_BUREAU;
    let queued = {
        let book = book.clone();
        blocking(move || {
            let mut open = book.open()?;
            if !name.is_empty() && open.ledger.name.as_deref() != Some(&name) {
                open.ledger.name = Some(name);
                open.commit()?;
            }
            open.queued()
        })
        .await
        .unwrap_or_default()
    };
    let mut outcome = Sent {
        kept: queued.len(),
        ..Sent::default()
    };
    if !upstream_takes || queued.is_empty() {
        return outcome;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let answers = queued.iter().map(|item| async move {
        let answer = async {
            let mut responses = client
                .request(&Request::Report {
                    envelope: item.bytes.clone(),
                })
                .await
                .map_err(|err| crate::sync::error_chain(&err))?;
            responses
                .next()
                .await
                .map_err(|err| crate::sync::error_chain(&err))
        };
        tokio::time::timeout_at(deadline, answer).await
    });
    let answers = futures_util::future::join_all(answers).await;
    let mut taken = Vec::new();
    let mut refused = Vec::new();
    for (item, answer) in queued.into_iter().zip(answers) {
        match answer {
            Ok(Ok(Some(Response::Ok))) => taken.push(item.name),
            Ok(Ok(Some(Response::Error { message }))) => {
                warn!(upstream = %client.addr(), report = %item.name, cause = %message, "the upstream did not take a report; it stays queued");
                refused.push((item.name, message));
            }
            Ok(Ok(other)) => {
                warn!(upstream = %client.addr(), answer = ?other, "the upstream answered a report unexpectedly; it stays queued");
            }
            Ok(Err(why)) => {
                warn!(upstream = %client.addr(), cause = %why, "sending a report failed; it stays queued");
            }
            Err(_) => {
                debug!(upstream = %client.addr(), "no answer to a report yet; it stays queued and goes again with the next pass");
            }
        }
    }
    if !refused.is_empty() {
        let book = book.clone();
        let upstream = client.addr();
        let set_aside = blocking(move || {
            let mut open = book.open()?;
            let mut set_aside = 0;
            for (name, cause) in &refused {
                if open.refused(name)? {
                    set_aside += 1;
                    warn!(
                        %upstream, report = %name, %cause,
                        "the upstream refused this report {} times; it is set aside in reports/set-aside/ and not sent again",
                        book::SET_ASIDE_AFTER
                    );
                }
            }
            open.commit()?;
            Ok(set_aside)
        })
        .await;
        outcome.kept -= set_aside.unwrap_or(0);
    }
    if !taken.is_empty() {
        let count = taken.len();
        let book = book.clone();
        let done = blocking(move || {
            let mut open = book.open()?;
            for name in &taken {
                open.remove(name)?;
            }
            open.ledger.last_sent = Some(server::origin::now_secs());
            open.commit()
        })
        .await;
        if done.is_some() {
            outcome.sent = count;
            outcome.kept -= count;
        }
    }
    if outcome.sent > 0 {
        info!(
            sent = outcome.sent,
            kept = outcome.kept,
            "reports sent upstream"
        );
    }
    outcome
}

/// Applies a receipt from a USB bundle: verified with this edge's own key
/// (from `token`), it drops the reports it names from the queue. A receipt
/// for another edge or with a bad seal is ignored with a log line. Returns
/// how many queued reports it dropped. Blocking.
pub fn apply_receipt(dir: &Path, token: &str, receipt: &Receipt) -> Result<usize, BookError> {
    let key = report_key_of_token(token);
    if !receipt.verify(&key) {
        warn!(edge = %receipt.edge, "ignoring a receipt in the bundle: its seal does not verify with this edge's key (made for another edge?)");
        return Ok(0);
    }
    let open = Book::new(dir).open()?;
    let Some(name) = open.ledger.name.clone() else {
        warn!(edge = %receipt.edge, "ignoring a receipt: this edge does not know its name at the origin yet (sync once)");
        return Ok(0);
    };
    let mut dropped = 0;
    for item in open.queued()? {
        let Some((path, report)) = book::peek(&item.bytes) else {
            continue;
        };
        let sealed = server::report::Envelope {
            path,
            report: Vec::new(),
            mac: [0; 32],
        };
        if sealed.origin_name(&name) == receipt.edge && receipt.seqs.contains(&report.seq) {
            open.remove(&item.name)?;
            dropped += 1;
        }
    }
    if dropped == 0 {
        info!(edge = %receipt.edge, "a receipt named no report still queued here");
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests;
