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
    let origin = Origin::open(&args.data)?;
    let bar = progress::bytes_bar("publishing");
    let mode = if args.rehash {
        ImportMode::Rehash
    } else {
        ImportMode::TrustUnchanged
    };
    let result = server::publish(&origin, &args.folder, mode, &bar);
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!(
            "publishing {} (the catalog in force is unchanged)",
            args.folder.display()
        )
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
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
    Ok(ExitCode::SUCCESS)
}
