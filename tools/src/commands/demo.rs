//! `shanlu demo`: the whole job on one machine, with the bundled sample courses.
//!
//! Today it sets up an origin, publishes the sample courses through the same
//! code as `shanlu publish`, verifies the store and lists the signed catalog.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use server::Origin;

use crate::cli::DemoArgs;
use crate::{format, progress};

/// The sample courses in the source tree this binary was built from.
pub fn bundled_courses() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-courses")
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let courses = args.courses.clone().unwrap_or_else(bundled_courses);
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&courses)
        .with_context(|| {
            format!(
                "reading the sample courses in {}; pass --courses DIR with course folders in it",
                courses.display()
            )
        })?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();

    let temp;
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("shanlu-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let origin_dir = data.join("origin");
    if !origin_dir.join("origin.key").exists() {
        let report = Origin::init(&origin_dir)?;
        println!("origin initialized in {}", origin_dir.display());
        println!("origin key: {}", report.public_key);
    }
    let origin = Origin::open(&origin_dir)?;
    for folder in &folders {
        let bar = progress::bytes_bar("publishing");
        let result = server::publish(
            &origin,
            folder,
            catalog::store::ImportMode::TrustUnchanged,
            &bar,
        );
        bar.finish_and_clear();
        let report = result.with_context(|| format!("publishing {}", folder.display()))?;
        println!(
            "published {} v{} (catalog sequence {}): {} lessons, {} files, {}, {} new chunks",
            report.course_id,
            report.course_version,
            report.sequence,
            report.lessons,
            report.files,
            format::bytes(report.bytes),
            report.new_chunks
        );
    }
    println!();
    super::ls::run(&crate::cli::LsArgs {
        data: origin_dir.clone(),
        json: false,
    })?;
    println!();
    let code = super::verify::run(&crate::cli::VerifyArgs {
        dir: origin_dir,
        json: false,
    })?;
    if args.data.is_none() {
        println!("(the demo ran in a temporary folder, now removed; pass --data DIR to keep it)");
    }
    Ok(code)
}
