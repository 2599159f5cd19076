//! The `shanlu` command-line tool.
//!
//! # Layout
//! - [`cli`]: the clap definitions (`Cli`), kept apart from the work.
//! - [`commands`]: one module per subcommand; each turns arguments into a call
//!   into `server`, `edge_cache` or `catalog` and prints the outcome.
//! - [`progress`]: indicatif bars, shown only when stderr is a terminal.
//! - [`logging`]: the tracing subscriber (stderr, `RUST_LOG` honored).
//! - [`format`]: sizes and times for people.
//! - [`output`]: data on stdout ([`outln!`]) that ends quietly when the reader closes the pipe.
//! - [`limits`]: the open-file limit, raised to the hard limit at start.
//! - [`remote`]: an administrator's connection to an origin: `publish --origin`, `withdraw --origin` (issue 15).

pub mod cli;
pub mod commands;
pub use catalog::format;
pub mod limits;
pub mod logging;
pub mod output;
pub mod progress;
pub mod remote;
pub mod signals;

use std::process::ExitCode;

use cli::{BundleCommand, Cli, Command, EdgeCommand, I18nCommand, OriginCommand, TeachersCommand};

/// Runs one invocation; the exit code says how it went.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Origin { command } => match command {
            OriginCommand::Init(args) => commands::origin::init(&args),
            OriginCommand::Serve(args) => commands::origin::serve(&args),
            OriginCommand::AddEdge(args) => commands::enroll::add_edge(&args),
            OriginCommand::Gc(args) => commands::origin::gc(&args),
            OriginCommand::Renew(args) => commands::origin::renew(&args),
            OriginCommand::RotateKey(args) => commands::origin::rotate_key(&args),
            OriginCommand::AddAdmin(args) => commands::enroll::add_admin(&args),
            OriginCommand::Edges(args) => commands::enroll::edges(&args),
            OriginCommand::Revoke(args) => commands::enroll::revoke(&args),
            OriginCommand::Migrate(args) => commands::origin::migrate(&args),
        },
        Command::Edge { command } => match command {
            EdgeCommand::Init(args) => commands::edge::init(&args),
            EdgeCommand::Sync(args) => commands::edge::sync(&args),
            EdgeCommand::Run(args) => commands::edge::run(&args),
            EdgeCommand::Status(args) => commands::edge::status(&args),
            EdgeCommand::SyncNow(args) => commands::edge::sync_now(&args),
            EdgeCommand::Scrub(args) => commands::edge::scrub(&args),
            EdgeCommand::Have(args) => commands::bundle::have(&args),
            EdgeCommand::Import(args) => commands::bundle::import(&args),
            EdgeCommand::AddEdge(args) => commands::edge::add_edge(&args),
            EdgeCommand::AddPeer(args) => commands::edge::add_peer(&args),
            EdgeCommand::Teachers { command } => match command {
                TeachersCommand::SetPassword(args) => commands::edge::set_teacher_password(&args),
                TeachersCommand::SetMaxUpload(args) => commands::edge::set_max_upload(&args),
            },
        },
        Command::Demo(args) => commands::demo::run(&args),
        Command::Publish(args) => commands::publish::run(&args),
        Command::Ls(args) => commands::ls::run(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Withdraw(args) => commands::withdraw::run(&args),
        Command::Bundle { command } => match command {
            BundleCommand::Create(args) => commands::bundle::create(&args),
        },
        Command::I18n { command } => match command {
            I18nCommand::Check(args) => commands::i18n::check(&args),
        },
    }
}
