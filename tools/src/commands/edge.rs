//! `shanlu edge …`

use std::process::ExitCode;

use anyhow::Context;
use edge_cache::config::{EdgeConfig, FieldError};
use edge_cache::sync::fallback::FallbackUrl;
use edge_cache::{Subscription, status};

use crate::cli::{EdgeInitArgs, EdgeRunArgs, EdgeStatusArgs, EdgeSyncArgs, EdgeSyncNowArgs};
use crate::outln;
use crate::{format, progress};

pub fn init(args: &EdgeInitArgs) -> anyhow::Result<ExitCode> {
    let config = EdgeConfig {
        origin: args.origin.parse().context("checking --origin")?,
        origin_key: args.origin_key.parse().map_err(|cause| FieldError::Key {
            text: args.origin_key.clone(),
            cause,
        })?,
        origin_cert: args.origin_cert.parse().context("checking --origin-cert")?,
        token: args.token.trim().to_owned(),
        max_rate: None,
        windows: Vec::new(),
        fallback: args
            .fallback
            .as_deref()
            .map(FallbackUrl::parse)
            .transpose()
            .context("checking --fallback")?,
        transport: Default::default(),
        scrub_rate: None,
        scrub_every: None,
        subscribe: Subscription::parse(&args.subscribe)?,
    };
    config
        .create(&args.data)
        .with_context(|| format!("setting up an edge in {}", args.data.display()))?;
    catalog::Store::open(edge_cache::config::store_path(&args.data))?;
    outln!(
        "edge initialized in {}, pinned to {}",
        args.data.display(),
        args.origin
    )?;
    outln!("next: shanlu edge sync --data {}", args.data.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Exit codes: 0 everything subscribed is held and verified; 1 the sync stopped
/// on an error; 2 it finished but some files could not be completed.
pub fn sync(args: &EdgeSyncArgs) -> anyhow::Result<ExitCode> {
    // One async worker: a pass's heavy work is already on two threads (the
    // connection's decryption here, hashing and writing on the engine's
    // writer thread), and a second worker only added wake-ups between them:
    // 9 % less CPU per GB and a shorter pass, measured (BENCHMARKS.md).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bar = progress::bytes_bar("syncing");
    let options = edge_cache::SyncOptions {
        max_rate: args.max_rate,
        transport: args.transport,
        ..Default::default()
    };
    let result = runtime.block_on(edge_cache::sync_once(&args.data, &bar, &options));
    bar.finish_and_clear();
    let report = result.with_context(|| format!("syncing the edge in {}", args.data.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        outln!(
            "catalog sequence {}{}: fetched {} in {} chunks, reused {} held locally, {} objects",
            report.sequence,
            if report.catalog_updated { " (new)" } else { "" },
            format::bytes(report.bytes_fetched),
            report.chunks_fetched,
            format::bytes(report.bytes_reused),
            report.objects_fetched
        )?;
        outln!(
            "files: {} completed now, {} held, {} missing{}",
            report.files_completed,
            report.files_held,
            report.files_missing,
            if report.reconnects > 0 {
                format!(", {} reconnects", report.reconnects)
            } else {
                String::new()
            }
        )?;
        if report.files_repaired > 0 {
            outln!(
                "repaired: {} damaged or missing file(s) fetched again",
                report.files_repaired
            )?;
        }
        if let Some(rate) = report.max_rate {
            outln!("bandwidth cap: {rate}/s")?;
        }
        if let Some(line) = transport_line(&report) {
            outln!("{line}")?;
        }
        for failure in &report.failures {
            outln!("FAILED {failure}")?;
        }
    }
    Ok(if report.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

pub fn status(args: &EdgeStatusArgs) -> anyhow::Result<ExitCode> {
    let status = status::status(&args.data)
        .with_context(|| format!("reading the edge in {}", args.data.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("origin: {}", status.origin)?;
    match (status.catalog_sequence, status.catalog_published_at) {
        (Some(sequence), Some(at)) => outln!(
            "catalog: sequence {sequence}, published {}",
            format::time(at)
        )?,
        _ => outln!("catalog: none yet (run `shanlu edge sync`)")?,
    }
    outln!("held: {}", format::bytes(status.bytes_held))?;
    let config = EdgeConfig::load(&args.data)?;
    if let Some(rate) = config.max_rate {
        outln!("bandwidth cap: {rate}/s")?;
    }
    if !config.windows.is_empty() {
        let windows: Vec<String> = config.windows.iter().map(ToString::to_string).collect();
        outln!("sync windows: {} (local time)", windows.join(", "))?;
    }
    for course in &status.courses {
        outln!(
            "  {}  v{}  {}  {}/{} files  {}{}",
            course.id,
            course.version,
            course.state,
            course.files_held,
            course.files,
            format::bytes(course.total_size),
            if course.subscribed {
                ""
            } else {
                "  (not subscribed)"
            }
        )?;
    }
    match &status.last_sync {
        Some(last) => outln!(
            "last sync: {} — {}",
            format::time(last.finished_at),
            match &last.error {
                Some(error) => format!("failed: {error}"),
                None if last.complete => "complete".to_owned(),
                None if last.stopped_at_window_end => format!(
                    "stopped at the end of the sync window, {} file(s) still to fetch",
                    last.files_missing
                ),
                None => format!("{} file(s) missing", last.files_missing),
            }
        )?,
        None => outln!("last sync: never")?,
    }
    if let Some(line) = status.last_sync.as_ref().and_then(transport_line) {
        outln!("{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What carried a sync pass, and why it was the fallback if it was.
fn transport_line(report: &edge_cache::SyncReport) -> Option<String> {
    let transport = report.transport.as_deref()?;
    Some(match &report.fallback_reason {
        Some(reason) => format!(
            "over: {transport} fallback, because QUIC could not connect ({reason}); QUIC is tried again every 10 minutes"
        ),
        None => format!("over: {transport}"),
    })
}

pub fn run(args: &EdgeRunArgs) -> anyhow::Result<ExitCode> {
    EdgeConfig::load(&args.data)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = edge_cache::classroom::front::bind(args.listen)
            .with_context(|| format!("listening for classrooms on {}", args.listen))?;
        outln!("classroom: http://{}/", listener.local_addr()?)?;
        use std::io::Write;
        std::io::stdout().flush()?;
        let shutdown = crate::signals::shutdown_on_signal();
        let options = edge_cache::run::RunOptions {
            interval: std::time::Duration::from_secs(args.interval.max(1)),
            max_rate: args.max_rate,
            windows: args.windows.clone(),
            transport: args.transport,
        };
        edge_cache::run::run(&args.data, listener, options, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// How long `edge sync-now` waits for `edge run` to take the request; it looks every second.
const SYNC_NOW_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn sync_now(args: &EdgeSyncNowArgs) -> anyhow::Result<ExitCode> {
    edge_cache::run::request_sync(&args.data, SYNC_NOW_WAIT)?;
    outln!(
        "sync asked for: the edge in {} starts a pass now (or right after the one running); \
         follow it on the status page or with `shanlu edge status`",
        args.data.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
