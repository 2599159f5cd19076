//! `shanlu`: one command for every role — origin, publishing, edge, operator tools.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tools::cli::Cli::parse();
    tools::logging::init(cli.verbose);
    tools::limits::raise_open_files();
    match tools::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
