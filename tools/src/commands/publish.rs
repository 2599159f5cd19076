//! `shanlu publish COURSE_DIR --data ORIGIN_DIR`

use std::process::ExitCode;

use anyhow::Context;
use catalog::store::ImportMode;
use server::Origin;

use crate::cli::PublishArgs;
use crate::format;
use crate::outln;
use crate::progress;

pub fn run(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let Some(data) = &args.at.data else {
        let Some(folder) = &args.folder else {
            anyhow::bail!("--revert works on the origin machine only (--data ORIGIN_DIR)");
        };
        return crate::remote::publish::run(folder, &args.at.remote, args.min_sequence, args.json);
    };
    let origin = Origin::open(data)?;
    if let Some(floor) = args.min_sequence {
        origin.raise_sequence_floor(floor)?;
    }
    let folder = match (&args.revert, &args.folder) {
        (Some(target), _) => return revert(&origin, target, args.json),
        (None, Some(folder)) => folder,
        (None, None) => {
            anyhow::bail!("give a course folder to publish, or --revert COURSE_ID@VERSION")
        }
    };
    let bar = progress::bytes_bar("publishing");
    let mode = if args.rehash {
        ImportMode::Rehash
    } else {
        ImportMode::TrustUnchanged
    };
    let result = server::publish(&origin, folder, mode, &bar);
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!(
            "publishing {} (the catalog in force is unchanged)",
            folder.display()
        )
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_outcome(&report)?;
    outln!(
        "  {} lessons, {} files, {} ({} files read, the rest unchanged since the last publish)",
        report.lessons,
        report.files,
        format::bytes(report.bytes),
        report.files_read
    )?;
    outln!(
        "  new: {} files ({}), {} chunks ({}) not held before",
        report.new_blobs,
        format::bytes(report.new_blob_bytes),
        report.new_chunks,
        format::bytes(report.new_chunk_bytes)
    )?;
    if let Some(url) = server::origin::store_url(data)? {
        outln!(
            "  bucket {url}: {} chunks ({}) written, the rest already there",
            report.bucket_chunks,
            format::bytes(report.bucket_chunk_bytes)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The first line of a publish's summary, local or remote.
pub(crate) fn print_outcome(report: &server::PublishReport) -> anyhow::Result<()> {
    if report.unchanged {
        outln!(
            "{} is unchanged (version {}): nothing stored; the catalog stays at sequence {}",
            report.course_id,
            report.course_version,
            report.sequence
        )?;
    } else {
        outln!(
            "published {} version {} in catalog sequence {}",
            report.course_id,
            report.course_version,
            report.sequence
        )?;
    }
    Ok(())
}

/// `shanlu publish --revert COURSE_ID@VERSION` (issue 13).
fn revert(origin: &Origin, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    let (course, version) = target
        .rsplit_once('@')
        .and_then(|(course, version)| Some((course, version.parse::<u64>().ok()?)))
        .with_context(|| format!("--revert {target}: give COURSE_ID@VERSION, e.g. math@3"))?;
    let report = server::history::revert(origin, course, version).with_context(|| {
        format!("reverting {course} to version {version} (the catalog in force is unchanged)")
    })?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "published {course} version {} (the content of version {version}) in catalog sequence {}",
        report.version.unwrap_or(0),
        report.sequence
    )?;
    if report.files_rebuilt == 0 {
        outln!("  nothing was read or stored: the content is already on the origin")?;
    } else {
        outln!(
            "  {} files put back together from chunks `origin gc` had packed; nothing was uploaded",
            report.files_rebuilt
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
