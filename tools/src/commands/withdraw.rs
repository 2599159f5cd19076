//! `shanlu withdraw COURSE_ID --data ORIGIN_DIR [--reason TEXT]` (issue 13)

use std::process::ExitCode;

use anyhow::Context;
use server::Origin;

use crate::cli::WithdrawArgs;
use crate::{format, outln};

pub fn run(args: &WithdrawArgs) -> anyhow::Result<ExitCode> {
    let Some(data) = &args.at.data else {
        return crate::remote::withdraw(
            &args.at.remote,
            &args.course,
            &args.reason,
            args.min_sequence,
            args.json,
        );
    };
    let origin = Origin::open(data)?;
    if let Some(floor) = args.min_sequence {
        origin.raise_sequence_floor(floor)?;
    }
    let report =
        server::history::withdraw(&origin, &args.course, &args.reason).with_context(|| {
            format!(
                "withdrawing {} from {} (the catalog in force is unchanged)",
                args.course,
                data.display()
            )
        })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "withdrew {} (last version {}) in catalog sequence {}, which expires {}",
        args.course,
        report.version.unwrap_or(0),
        report.sequence,
        format::time(report.expires_at)
    )?;
    eprintln!(
        "Edges stop listing the course at their next sync; its files stay on the origin until \
         `shanlu origin gc` no longer keeps a catalog that names them. Publishing the course again brings it back."
    );
    Ok(ExitCode::SUCCESS)
}
