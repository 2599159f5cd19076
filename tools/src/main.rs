//! `shanlu`: one command for every role — origin, publishing, edge, operator tools.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = tools::cli::Cli::parse();
    tools::logging::init(cli.verbose);
    tools::limits::raise_open_files();
    match tools::run(cli) {
        Ok(code) => code,
        // `shanlu ls | head`: the reader has all it wanted.
        Err(err) if tools::output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
