//! The scrub's row on the status page: the last scrub, the cycle under way
//! with its progress, when the next starts, and the latest findings.
//!
//! Its words are the `scrub-…` keys of the classroom's Fluent files.

use catalog::format;
use catalog::tr;
use maud::{Markup, html};

use super::ScrubStatus;
use crate::classroom::i18n::Lang;

/// `tr#scrub-row` for the status table; nothing when the status has no scrub.
pub fn row(lang: Lang, scrub: Option<&ScrubStatus>, bytes_held: u64) -> Markup {
    let Some(scrub) = scrub else {
        return html! {};
    };
    let state = &scrub.state;
    html! {
        tr #scrub-row { th { (tr!(lang, "scrub")) } td #scrub {
            span #scrub-last {
                @match &state.last {
                    None => { (tr!(lang, "never")) },
                    Some(last) => {
                        (format::time(last.finished_at)) " · "
                        (tr!(lang, "scrub-checked", files = last.blobs_checked, size = format::bytes(last.bytes_checked))) " · "
                        @if last.found == 0 { (tr!(lang, "scrub-nothing-found")) }
                        @else { span #scrub-found data-count=(last.found) { (tr!(lang, "scrub-damaged", count = last.found)) } }
                    },
                }
            }
            @if let Some(started) = state.cycle_started_at {
                div #scrub-progress {
                    (tr!(lang, "scrub-under-way", since = format::time(started))) " "
                    progress max=(bytes_held.max(1)) value=(state.cycle_bytes_checked.min(bytes_held)) {}
                    " " (tr!(lang, "scrub-checked", files = state.cycle_blobs_checked, size = format!("{} / {}", format::bytes(state.cycle_bytes_checked), format::bytes(bytes_held))))
                    " · " (format::bytes(scrub.rate)) "/s"
                }
            } @else if let Some(next) = scrub.next_cycle_at {
                div #scrub-next { (tr!(lang, "scrub-next", at = format::time(next))) }
            }
            @if !state.findings.is_empty() {
                ul #scrub-findings {
                    @for finding in state.findings.iter().rev() {
                        li.meta { (tr!(lang, "scrub-found", at = format::time(finding.at), problem = finding.problem.to_string())) }
                    }
                }
            }
        } }
    }
}
