//! The reports' row on the status page (issue 15): how many reports wait
//! to go upstream, and when the last was made and sent.
//!
//! Its labels are here rather than in [`crate::classroom::i18n`] so the row
//! stays one piece; Yi and Tibetan show the Chinese until translated.

use catalog::format;
use maud::{Markup, html};

use super::ReportsStatus;
use crate::classroom::i18n::Lang;

struct Labels {
    reports: &'static str,
    queued: &'static str,
    forwarded: &'static str,
    made: &'static str,
    sent: &'static str,
    never: &'static str,
}

const ZH: Labels = Labels {
    reports: "上报",
    queued: "份待发送",
    forwarded: "份代下级转发",
    made: "最近生成",
    sent: "最近发送",
    never: "从未",
};

const EN: Labels = Labels {
    reports: "Reports",
    queued: "queued",
    forwarded: "forwarded from edges below",
    made: "last made",
    sent: "last sent",
    never: "never",
};

/// `tr#reports-row` for the status table.
pub fn row(lang: Lang, reports: &ReportsStatus) -> Markup {
    let l = match lang {
        Lang::En => &EN,
        Lang::Zh | Lang::Ii | Lang::Bo => &ZH,
    };
    let when = |at: Option<u64>| at.map_or_else(|| l.never.to_owned(), format::time);
    html! {
        tr #reports-row { th { (l.reports) } td {
            span #reports-pending { (reports.pending) } " " (l.queued)
            @if reports.forwarded > 0 { " (" (reports.forwarded) " " (l.forwarded) ")" }
            " · " (l.made) " " (when(reports.last_made))
            " · " (l.sent) " " (when(reports.last_sent))
        } }
    }
}
