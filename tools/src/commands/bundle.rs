//! `shanlu bundle create`, `shanlu edge have` and `shanlu edge import` (issue 14).

use std::process::ExitCode;

use anyhow::Context;
use edge_cache::bundle::create::{CreateOptions, create as create_bundle};
use edge_cache::bundle::have::HaveList;
use edge_cache::bundle::import::import as import_bundle;

use crate::cli::{BundleCreateArgs, EdgeHaveArgs, EdgeImportArgs};
use crate::outln;
use crate::{format, progress};

pub fn create(args: &BundleCreateArgs) -> anyhow::Result<ExitCode> {
    let have = match &args.for_have {
        Some(path) => Some(HaveList::read(path).context("reading the have list (--for)")?),
        None => None,
    };
    // On an origin, the have list's reports are filed for its fleet
    // (issue 15): `origin serve` holds the fleet, so they wait in its inbox.
    let is_origin = server::origin::read_public_key(&args.data)
        .ok()
        .flatten()
        .is_some();
    let inbox = is_origin.then(|| server::fleet::inbox::Inbox::new(&args.data));
    // On a county edge, its children's reports join the county's queue of
    // reports to forward, as they do over the network.
    let forwarder = if is_origin || !args.data.join("downstream").join("edges.toml").is_file() {
        None
    } else {
        let config = edge_cache::EdgeConfig::load(&args.data)?;
        Some(edge_cache::report::forward::Forwarder::new(
            &args.data,
            &config.token,
        ))
    };
    let sink: Option<&dyn server::report::ReportSink> = match (&inbox, &forwarder) {
        (Some(inbox), _) => Some(inbox),
        (None, Some(forwarder)) => Some(forwarder),
        (None, None) => None,
    };
    let bar = progress::bytes_bar("bundling");
    let result = create_bundle(
        CreateOptions {
            data: &args.data,
            out: &args.out,
            courses: args.courses.clone(),
            have,
            reports: sink,
        },
        &bar,
    );
    bar.finish_and_clear();
    if let Some(inbox) = &inbox
        && let Ok(fleet) = server::fleet::Fleet::open(&args.data)
    {
        // No `origin serve` holds the fleet: take the reports in now.
        inbox.drain(&fleet);
    }
    let report = result.with_context(|| {
        format!(
            "writing a bundle from {} to {}",
            args.data.display(),
            args.out.display()
        )
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "bundle of catalog sequence {} from this {} in {}: {} pack(s), {}, {} objects, {} chunks ({} of files), {:.1} s",
            report.sequence,
            report.source,
            report.folder.display(),
            report.packs,
            format::bytes(report.bytes),
            report.objects,
            report.chunks,
            format::bytes(report.chunk_bytes),
            report.seconds
        )?;
        if report.reports_taken > 0 {
            outln!(
                "{}; the bundle carries their receipts back",
                if is_origin {
                    format!(
                        "took {} report(s) from the have list for the fleet (a running `origin serve` takes them in within a minute)",
                        report.reports_taken
                    )
                } else {
                    format!(
                        "took {} report(s) from the have list to forward upstream with this edge's next sync",
                        report.reports_taken
                    )
                }
            )?;
        }
        let proposals = report.proposals;
        if proposals.filed + proposals.asked + proposals.refused > 0 {
            outln!(
                "teachers' proposals from the have list: {} filed for review ({} carried), {} not filed, {} asked about; the bundle carries the answers back{}",
                proposals.filed,
                format::bytes(proposals.bytes),
                proposals.refused,
                proposals.asked,
                if is_origin {
                    ""
                } else {
                    " (this county edge forwards them to the bureau with its next sync)"
                }
            )?;
        }
        if report.files_not_held > 0 {
            outln!(
                "{} file(s) are not held whole here and are left out; sync this edge first to carry them",
                report.files_not_held
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn have(args: &EdgeHaveArgs) -> anyhow::Result<ExitCode> {
    let config = edge_cache::EdgeConfig::load(&args.data)?;
    let store_dir = edge_cache::config::store_path(&args.data);
    let store = catalog::Store::open_existing(&store_dir)
        .with_context(|| format!("opening the store in {}", store_dir.display()))?;
    let mut have = HaveList::of_store(&store, &config.origin_key)
        .with_context(|| format!("listing what the edge in {} holds", args.data.display()))?;
    have.add_reports(&args.data).with_context(|| {
        format!(
            "reading the report queue of the edge in {}",
            args.data.display()
        )
    })?;
    have.add_proposals(&store, &config.token).with_context(|| {
        format!(
            "listing the teachers' proposals of the edge in {}",
            args.data.display()
        )
    })?;
    // The proposed lessons' bytes may take a while to copy onto the stick.
    let bar = progress::bytes_bar("writing");
    let written = have.write(&args.out, &store, &bar);
    bar.finish_and_clear();
    written.with_context(|| format!("writing the have list {}", args.out.display()))?;
    outln!(
        "have list {}: catalog sequence {}, {} objects, {} chunks; take it to the origin for `shanlu bundle create --for`",
        args.out.display(),
        have.sequence
            .map_or_else(|| "none".to_owned(), |seq| seq.to_string()),
        have.objects.len(),
        have.chunks.len()
    )?;
    let carried = (have.proposals.iter())
        .filter(|p| {
            matches!(
                p,
                edge_cache::bundle::proposals::StickProposal::Carry { .. }
            )
        })
        .count();
    if !have.proposals.is_empty() {
        outln!(
            "it carries {carried} proposed lesson(s) ({}) and asks about {} sent before",
            format::bytes(edge_cache::bundle::proposals::payload_len(&have.proposals).unwrap_or(0)),
            have.proposals.len() - carried
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn import(args: &EdgeImportArgs) -> anyhow::Result<ExitCode> {
    let bar = progress::bytes_bar("importing");
    let result = import_bundle(&args.data, &args.stick, &bar);
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!(
            "importing {} into the edge in {}",
            args.stick.display(),
            args.data.display()
        )
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "catalog sequence {}{}: {} objects, {} files completed ({} written, {} reused), {} held, {} missing",
            report.sequence,
            if report.catalog_updated { " (new)" } else { "" },
            report.objects_added,
            report.files_completed,
            format::bytes(report.bytes_written),
            format::bytes(report.bytes_reused),
            report.files_held,
            report.files_missing
        )?;
        outln!(
            "packs: {} read, {} already imported before, {} skipped",
            report.packs_read,
            report.packs_already_imported,
            report.packs_skipped.len()
        )?;
        let heard = report.proposals;
        if heard.filed + heard.decided + heard.not_filed > 0 {
            outln!(
                "teachers' proposals: {} now with the bureau, {} decided, {} not filed (the reason is on the teachers' page)",
                heard.filed,
                heard.decided,
                heard.not_filed
            )?;
        }
        if report.reports_acknowledged > 0 {
            outln!(
                "{} report(s) acknowledged by the origin, dropped from the queue",
                report.reports_acknowledged
            )?;
        }
    }
    for skipped in &report.packs_skipped {
        eprintln!("skipped {}: {}", skipped.name, skipped.reason);
    }
    Ok(if report.packs_skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
