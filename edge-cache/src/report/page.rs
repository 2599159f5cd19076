//! The reports' row on the status page (issue 15): how many reports wait
//! to go upstream, and when the last was made and sent.
//!
//! Its words are the `reports-…` keys of the classroom's Fluent files.

use catalog::format;
use catalog::tr;
use maud::{Markup, html};

use super::ReportsStatus;
use crate::classroom::i18n::Lang;

/// `tr#reports-row` for the status table.
pub fn row(lang: Lang, reports: &ReportsStatus) -> Markup {
    let when = |at: Option<u64>| at.map_or_else(|| tr!(lang, "never").into_owned(), format::time);
    html! {
        tr #reports-row { th { (tr!(lang, "reports")) } td {
            span #reports-pending data-count=(reports.pending) { (tr!(lang, "reports-queued", count = reports.pending)) }
            @if reports.forwarded > 0 { " " (tr!(lang, "reports-forwarded", count = reports.forwarded)) }
            @if reports.set_aside > 0 {
                " · " span #reports-set-aside data-count=(reports.set_aside) { (tr!(lang, "reports-set-aside", count = reports.set_aside)) }
            }
            " · " (tr!(lang, "reports-made", at = when(reports.last_made)))
            " · " (tr!(lang, "reports-sent", at = when(reports.last_sent)))
        } }
    }
}
