//! The scrub's row on the status page: the last scrub, the cycle under way
//! with its progress, when the next starts, and the latest findings.
//!
//! Its labels are here rather than in [`crate::classroom::i18n`] so the row
//! stays one piece; Yi and Tibetan show the Chinese until translated.

use catalog::format;
use maud::{Markup, html};

use super::ScrubStatus;
use crate::classroom::i18n::Lang;

/// The row's words in one language.
struct Labels {
    scrub: &'static str,
    never: &'static str,
    files: &'static str,
    checked: &'static str,
    nothing_found: &'static str,
    damaged: &'static str,
    under_way: &'static str,
    next: &'static str,
    found: &'static str,
}

const ZH: Labels = Labels {
    scrub: "数据自检",
    never: "从未",
    files: "个文件",
    checked: "已校验",
    nothing_found: "未发现问题",
    damaged: "个文件损坏，已停用并将重新下载",
    under_way: "正在自检",
    next: "下次自检",
    found: "发现",
};

const EN: Labels = Labels {
    scrub: "Scrub",
    never: "never",
    files: "file(s)",
    checked: "checked",
    nothing_found: "nothing found",
    damaged: "damaged: out of service, fetched again by the next sync",
    under_way: "Under way",
    next: "Next scrub",
    found: "Found",
};

fn labels(lang: Lang) -> &'static Labels {
    match lang {
        Lang::En => &EN,
        Lang::Zh | Lang::Ii | Lang::Bo => &ZH,
    }
}

/// `tr#scrub-row` for the status table; nothing when the status has no scrub.
pub fn row(lang: Lang, scrub: Option<&ScrubStatus>, bytes_held: u64) -> Markup {
    let Some(scrub) = scrub else {
        return html! {};
    };
    let l = labels(lang);
    let state = &scrub.state;
    html! {
        tr #scrub-row { th { (l.scrub) } td #scrub {
            span #scrub-last {
                @match &state.last {
                    None => { (l.never) },
                    Some(last) => {
                        (format::time(last.finished_at)) " · "
                        (last.blobs_checked) " " (l.files) ", " (format::bytes(last.bytes_checked)) " " (l.checked) " · "
                        @if last.found == 0 { (l.nothing_found) }
                        @else { span #scrub-found { (last.found) } " " (l.damaged) }
                    },
                }
            }
            @if let Some(started) = state.cycle_started_at {
                div #scrub-progress {
                    (l.under_way) " (" (format::time(started)) "): "
                    progress max=(bytes_held.max(1)) value=(state.cycle_bytes_checked.min(bytes_held)) {}
                    " " (state.cycle_blobs_checked) " " (l.files) ", "
                    (format::bytes(state.cycle_bytes_checked)) " / " (format::bytes(bytes_held))
                    " · " (format::bytes(scrub.rate)) "/s"
                }
            } @else if let Some(next) = scrub.next_cycle_at {
                div #scrub-next { (l.next) ": " (format::time(next)) }
            }
            @if !state.findings.is_empty() {
                ul #scrub-findings {
                    @for finding in state.findings.iter().rev() {
                        li.meta { (l.found) " " (format::time(finding.at)) ": " (finding.problem) }
                    }
                }
            }
        } }
    }
}
