//! `shanlu-linksim`: starts an emulated bad link for a benchmark, prints where it is, and keeps
//! it up until Ctrl-C, SIGTERM or its lifetime.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.verbose);
    let result = cli::Config::try_from(cli).and_then(cli::run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
