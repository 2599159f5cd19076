//! `shanlu origin …`

use std::process::ExitCode;

use anyhow::Context;
use server::Origin;

use crate::cli::OriginInitArgs;

pub fn init(args: &OriginInitArgs) -> anyhow::Result<ExitCode> {
    let report = Origin::init(&args.data)
        .with_context(|| format!("setting up an origin in {}", args.data.display()))?;
    println!("origin initialized in {}", args.data.display());
    println!("origin key: {}", report.public_key);
    println!("admin token: {}", report.admin_token);
    eprintln!(
        "Give the origin key to every school edge (`shanlu edge init --origin-key …`).\n\
         The admin token is shown only this once: store it somewhere safe."
    );
    Ok(ExitCode::SUCCESS)
}
