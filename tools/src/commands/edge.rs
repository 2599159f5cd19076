//! `shanlu edge …`

use std::process::ExitCode;

use anyhow::Context;
use edge_cache::config::{EdgeConfig, FieldError};
use edge_cache::sync::fallback::FallbackUrl;
use edge_cache::{Subscription, status};

use crate::cli::{
    EdgeAddEdgeArgs, EdgeInitArgs, EdgeRunArgs, EdgeScrubArgs, EdgeStatusArgs, EdgeSyncArgs,
    EdgeSyncNowArgs,
};
use crate::outln;
use crate::{format, progress};

pub fn init(args: &EdgeInitArgs) -> anyhow::Result<ExitCode> {
    // Issue 15: a join code is read (and a mistyped one refused) before anything is made.
    let joined = args
        .join
        .as_deref()
        .map(crate::commands::enroll::read_join)
        .transpose()?;
    // clap requires each long-form field unless --join is given.
    let field = |long: &Option<String>, name: &str| {
        long.clone()
            .with_context(|| format!("--{name} (or --join) is required"))
    };
    let (origin, origin_key, origin_cert, token, fallback) = match joined {
        Some(joined) => (
            joined.origin,
            joined.origin_key,
            joined.origin_cert,
            joined.token,
            joined.fallback,
        ),
        None => (
            field(&args.origin, "origin")?,
            field(&args.origin_key, "origin-key")?,
            field(&args.origin_cert, "origin-cert")?,
            field(&args.token, "token")?,
            args.fallback.clone(),
        ),
    };
    let config = EdgeConfig {
        origin: origin.parse().context("checking --origin")?,
        origin_key: origin_key.parse().map_err(|cause| FieldError::Key {
            text: origin_key.clone(),
            cause,
        })?,
        origin_cert: origin_cert.parse().context("checking --origin-cert")?,
        token: token.trim().to_owned(),
        max_rate: None,
        windows: Vec::new(),
        fallback: fallback
            .as_deref()
            .map(FallbackUrl::parse)
            .transpose()
            .context("checking --fallback")?,
        transport: Default::default(),
        cdn: args
            .cdn
            .as_deref()
            .map(edge_cache::sync::cdn::parse_url)
            .transpose()
            .context("checking --cdn")?,
        max_store: args.max_store,
        min_free: args.min_free,
        scrub_rate: None,
        scrub_every: None,
        subscribe: Subscription::parse(&args.subscribe)?,
        peers: Vec::new(),
    };
    config
        .create(&args.data)
        .with_context(|| format!("setting up an edge in {}", args.data.display()))?;
    catalog::Store::open(edge_cache::config::store_path(&args.data))?;
    outln!(
        "edge initialized in {}, pinned to {origin}",
        args.data.display(),
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
        quota: edge_cache::quota::QuotaOverrides {
            max_store: args.max_store,
            min_free: args.min_free,
        },
        ..Default::default()
    };
    let result = runtime.block_on(edge_cache::sync_once(&args.data, &bar, &options));
    bar.finish_and_clear();
    let report = result.with_context(|| format!("syncing the edge in {}", args.data.display()))?;
    if let Some(warning) = &report.expired {
        eprintln!("warning: {warning}");
    }
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
        for line in report.peer_lines() {
            outln!("{line}")?;
        }
        for failure in &report.failures {
            outln!("FAILED {failure}")?;
        }
        if let Some(quota) = &report.quota {
            for line in quota_lines(quota) {
                outln!("{line}")?;
            }
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
    if let Some(warning) = &status.catalog_warning {
        outln!("warning: {warning}")?;
    }
    for gone in &status.withdrawn {
        outln!(
            "withdrawn: {} (v{}, {}){}",
            gone.id,
            gone.last_version,
            format::time(gone.withdrawn_at),
            if gone.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", gone.reason)
            }
        )?;
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
    if let Some(quota) = status.last_sync.as_ref().and_then(|s| s.quota.as_ref()) {
        for line in quota_lines(quota) {
            outln!("{line}")?;
        }
    }
    if let Some(scrub) = &status.scrub {
        for line in scrub_lines(scrub, status.bytes_held) {
            outln!("{line}")?;
        }
    }
    let reports = &status.reports;
    let when = |at: Option<u64>| at.map_or_else(|| "never".to_owned(), format::time);
    outln!(
        "reports: {} queued ({} forwarded), last made {}, last sent {}",
        reports.pending,
        reports.forwarded,
        when(reports.last_made),
        when(reports.last_sent)
    )?;
    if reports.set_aside > 0 {
        outln!(
            "reports: {} set aside after the upstream refused them {} times each (in {}/reports/set-aside/)",
            reports.set_aside,
            edge_cache::report::book::SET_ASIDE_AFTER,
            args.data.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The quota's lines (issue 13): the store against its limit, what was
/// evicted and collected, and what did not fit.
fn quota_lines(quota: &edge_cache::quota::QuotaReport) -> Vec<String> {
    let mut lines = vec![format!(
        "store: {} used{}, {} kept free on the disk",
        format::bytes(if quota.used_after > 0 {
            quota.used_after
        } else {
            quota.used_before
        }),
        quota
            .max_store
            .map(|max| format!(" of {} (max_store)", format::bytes(max)))
            .unwrap_or_default(),
        format::bytes(quota.min_free)
    )];
    if quota.evicted_files > 0 {
        lines.push(format!(
            "evicted: {} cached file(s), {}, least recently opened first, to make room for {}",
            quota.evicted_files,
            format::bytes(quota.evicted_bytes),
            format::bytes(quota.need)
        ));
    }
    if let Some(gc) = &quota.collection
        && (gc.blobs > 0 || gc.objects > 0 || gc.partials > 0)
    {
        lines.push(format!(
            "collected: {} file(s) ({}), {} metadata object(s), {} partial file(s) in {} ms",
            gc.blobs,
            format::bytes(gc.blob_bytes),
            gc.objects,
            gc.partials,
            gc.millis
        ));
    }
    lines.extend(quota.shortfall());
    lines
}

/// The scrub in `edge status`: the last one, the cycle under way, findings.
fn scrub_lines(scrub: &edge_cache::scrub::ScrubStatus, bytes_held: u64) -> Vec<String> {
    let state = &scrub.state;
    let mut lines = vec![match &state.last {
        Some(last) => format!(
            "last scrub: {} ({}) — {} file(s), {} checked, {}",
            format::time(last.finished_at),
            last.by,
            last.blobs_checked,
            format::bytes(last.bytes_checked),
            match last.found {
                0 => "nothing found".to_owned(),
                n => format!("{n} damaged, taken out of service and fetched again"),
            }
        ),
        None => "last scrub: never".to_owned(),
    }];
    match (state.cycle_started_at, scrub.next_cycle_at) {
        (Some(started), _) => lines.push(format!(
            "scrub under way since {}: {} file(s), {} of about {} checked, at up to {}/s",
            format::time(started),
            state.cycle_blobs_checked,
            format::bytes(state.cycle_bytes_checked),
            format::bytes(bytes_held),
            format::bytes(scrub.rate)
        )),
        (None, Some(next)) => lines.push(format!(
            "next scrub: from {} (every {})",
            format::time(next),
            scrub.every
        )),
        (None, None) => {}
    }
    for finding in state.findings.iter().rev().take(5) {
        lines.push(format!(
            "  found {}: {}",
            format::time(finding.at),
            finding.problem
        ));
    }
    lines
}

/// Exit codes: 0 every held file is sound; 2 something was found (each
/// damaged file is quarantined and the next sync fetches it again).
pub fn scrub(args: &EdgeScrubArgs) -> anyhow::Result<ExitCode> {
    EdgeConfig::load(&args.data)?;
    let store = catalog::Store::open_existing(edge_cache::config::store_path(&args.data))
        .with_context(|| format!("opening the edge's store in {}", args.data.display()))?;
    let bar = progress::bytes_bar("scrubbing");
    bar.set_length(store.blob_bytes()?);
    let started = std::time::Instant::now();
    let report = edge_cache::scrub::scrub_all(&store, args.rate, &|n| bar.inc(n));
    bar.finish_and_clear();
    let report =
        report.with_context(|| format!("scrubbing the edge in {}", args.data.display()))?;
    // A running `edge run` takes this within a second and fetches the
    // damaged files again; one started later runs a pass at start anyway.
    let asked = report.summary.found > 0
        && std::fs::write(
            args.data.join(edge_cache::run::SYNC_NOW_FILE),
            b"sync now\n",
        )
        .is_ok();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for finding in &report.findings {
            outln!("BAD {}", finding.problem)?;
        }
        let summary = &report.summary;
        outln!(
            "checked {} file(s), {} in {:.1} s: {}",
            summary.blobs_checked,
            format::bytes(summary.bytes_checked),
            started.elapsed().as_secs_f64(),
            match summary.found {
                0 => "all good".to_owned(),
                n => format!("{n} damaged"),
            }
        )?;
        if summary.found > 0 {
            outln!(
                "the damaged file(s) are out of service (moved to {}); {}",
                store.root().join("quarantine").display(),
                format!(
                    "{}run `shanlu edge sync --data {}` to fetch them again",
                    if asked {
                        "a running `edge run` fetches them again now; without one, "
                    } else {
                        ""
                    },
                    args.data.display()
                )
            )?;
        }
    }
    Ok(if report.summary.found == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
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
            quota: edge_cache::quota::QuotaOverrides {
                max_store: args.max_store,
                min_free: args.min_free,
            },
            serve_edges: args.serve_edges,
        };
        edge_cache::run::run(&args.data, listener, options, shutdown, |serving| {
            // After the classroom line: `edges quic`, `edges https`, `edges certificate`.
            let _ = print_serving(serving);
        })
        .await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Where `edge run --serve-edges` serves edges below it, for the operator.
fn print_serving(serving: &edge_cache::downstream::Serving) -> anyhow::Result<()> {
    outln!("edges quic: {}", serving.quic)?;
    if let Some(https) = serving.https {
        outln!("edges https: {https}")?;
    }
    outln!("edges certificate: {}", serving.fingerprint)?;
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

/// `shanlu edge add-edge` (issue 14): a token for an edge below this one.
pub fn add_edge(args: &EdgeAddEdgeArgs) -> anyhow::Result<ExitCode> {
    let config = EdgeConfig::load(&args.data)?;
    let (token, fingerprint) = edge_cache::downstream::add_edge(&args.data, &args.name)
        .with_context(|| format!("adding edge {} below {}", args.name, args.data.display()))?;
    outln!("edge token: {token}")?;
    eprintln!(
        "Set up the edge below with:\n  shanlu edge init --data DIR --origin quic://THIS-EDGE:PORT \\\n    \
         --origin-key {} --origin-cert {fingerprint} --token <the token above>\n\
         (PORT: this edge's `edge run --serve-edges`; the key is the origin's: the edge below checks\n\
         every catalog against it, so this edge can relay but not forge). The token is shown only once;\n\
         this edge keeps only its hash.",
        config.origin_key
    );
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

/// `shanlu edge add-peer` (issue 14): adds a LAN peer to edge.toml.
pub fn add_peer(args: &crate::cli::EdgeAddPeerArgs) -> anyhow::Result<ExitCode> {
    let peer = edge_cache::config::Peer::parse(
        &args.url,
        &args.token,
        &args.cert,
        args.fallback.as_deref(),
    )?;
    let name = peer.to_string();
    let replaced = edge_cache::config::add_peer(&args.data, peer)
        .with_context(|| format!("adding a peer to the edge in {}", args.data.display()))?;
    outln!(
        "{} {name} in {}; the next sync takes chunks from it first (each one verified)",
        if replaced { "replaced" } else { "added" },
        edge_cache::config::config_path(&args.data).display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `shanlu edge teachers set-password` (issue 17).
pub fn set_teacher_password(
    args: &crate::cli::TeachersSetPasswordArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        edge_cache::config::config_path(&args.data).is_file(),
        "{} is not an edge's data folder (no edge.toml); give the folder made by `shanlu edge init`",
        args.data.display()
    );
    let text = match &args.password_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading the password from {}", file.display()))?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line
        }
    };
    let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
    edge_cache::teachers::password::set(&args.data, password)?;
    outln!(
        "teacher password set for the edge in {}: teachers log in at http://<edge>/teach",
        args.data.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `shanlu edge teachers set-max-upload` (issue 17).
pub fn set_max_upload(args: &crate::cli::TeachersSetMaxUploadArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        edge_cache::config::config_path(&args.data).is_file(),
        "{} is not an edge's data folder (no edge.toml); give the folder made by `shanlu edge init`",
        args.data.display()
    );
    edge_cache::teachers::password::set_max_upload(&args.data, args.mib)?;
    outln!(
        "teachers may upload files of up to {} MiB to the edge in {} (from the next `edge run`)",
        args.mib,
        args.data.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
