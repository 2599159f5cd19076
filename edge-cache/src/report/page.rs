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
    set_aside: &'static str,
    made: &'static str,
    sent: &'static str,
    never: &'static str,
}

const ZH: Labels = Labels {
    reports: "上报",
    queued: "份待发送",
    forwarded: "份代下级转发",
    set_aside: "份屡被上级拒收，已搁置（见 reports/set-aside/）",
    made: "最近生成",
    sent: "最近发送",
    never: "从未",
};

const EN: Labels = Labels {
    reports: "Reports",
    queued: "queued",
    forwarded: "forwarded from edges below",
    set_aside: "set aside after the upstream refused them (see reports/set-aside/)",
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
            @if reports.set_aside > 0 {
                " · " span #reports-set-aside { (reports.set_aside) } " " (l.set_aside)
            }
            " · " (l.made) " " (when(reports.last_made))
            " · " (l.sent) " " (when(reports.last_sent))
        } }
    }
}
