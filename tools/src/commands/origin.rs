//! `shanlu origin …`

use std::process::ExitCode;

use anyhow::Context;
use server::Origin;

use crate::cli::{
    OriginGcArgs, OriginInitArgs, OriginMigrateArgs, OriginRenewArgs, OriginRotateKeyArgs,
    OriginServeArgs,
};
use crate::{format, outln, progress};

pub fn init(args: &OriginInitArgs) -> anyhow::Result<ExitCode> {
    let public = crate::commands::enroll::public_addresses(&args.public)?;
    let report = Origin::init_with_store(&args.data, args.store.as_deref())
        .with_context(|| format!("setting up an origin in {}", args.data.display()))?;
    if public != server::origin::PublicAddresses::default() {
        server::origin::set_public_addresses(&args.data, &public).with_context(|| {
            format!("recording the public addresses in {}", args.data.display())
        })?;
    }
    outln!("origin initialized in {}", args.data.display())?;
    if let Some(url) = &args.store {
        outln!("content in: {url}")?;
    }
    outln!("origin key: {}", report.public_key)?;
    outln!("origin certificate: {}", report.cert_fingerprint)?;
    outln!("admin token: {}", report.admin_token)?;
    if public.quic.is_some() {
        eprintln!(
            "`shanlu origin add-edge` prints a join code for each school edge\n\
             (`shanlu edge init --join …`); see docs/enroll.md."
        );
    } else {
        eprintln!(
            "Give the origin key and certificate to every school edge\n\
             (`shanlu edge init --origin-key … --origin-cert …`), or record the addresses\n\
             edges reach this origin at (`public_quic`, `public_https` in origin.toml)\n\
             for join codes."
        );
    }
    eprintln!("The admin token is shown only this once: store it somewhere safe.");
    Ok(ExitCode::SUCCESS)
}

/// The CDN secret in `path`: one line of at least
/// [`server::serve::MIN_CDN_SECRET`] characters.
fn read_cdn_secret(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_string(&mut text))
        .with_context(|| format!("reading the CDN secret in {}", path.display()))?;
    let secret = text.trim();
    if secret.len() < server::serve::MIN_CDN_SECRET || secret.contains(char::is_whitespace) {
        anyhow::bail!(
            "{}: the CDN secret must be one word of at least {} characters, e.g. made by `openssl rand -hex 32`",
            path.display(),
            server::serve::MIN_CDN_SECRET
        );
    }
    Ok(secret.to_owned())
}

pub fn serve(args: &OriginServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listen = server::serve::Listen {
            quic: args.quic,
            http: Some(args.http),
            https: Some(args.https),
            congestion: args.congestion,
            bucket_cache: args.bucket_cache_mib.saturating_mul(1024 * 1024),
        };
        let fleet = server::fleet::Fleet::open(&args.data).with_context(|| {
            format!("opening the fleet of the origin in {}", args.data.display())
        })?;
        // On a bucket (issue 16), reports are shared with the other origin processes.
        let bucket = Origin::open(&args.data)?.bucket().cloned();
        let shared = bucket.map(|bucket| {
            std::sync::Arc::new(server::fleet::shared::SharedReports::new(
                fleet.clone(),
                bucket,
            ))
        });
        let sink: std::sync::Arc<dyn server::report::ReportSink> = match &shared {
            Some(shared) => shared.clone(),
            None => std::sync::Arc::new(fleet.clone()),
        };
        let mut bound = server::serve::bind(&args.data, &listen, Some(sink))
            .await
            .with_context(|| format!("starting the origin in {}", args.data.display()))?;
        if let Some(path) = &args.cdn_secret_file {
            bound.allow_cdn(read_cdn_secret(path)?);
        }
        let admin = match args.admin {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for the dashboard on {addr}"))?;
                Some((listener.local_addr()?, listener))
            }
            None => None,
        };
        outln!("quic: {}", bound.quic_addr)?;
        if let Some(http) = bound.http_addr {
            outln!("http: {http}")?;
        }
        if let Some(https) = bound.https_addr {
            outln!("https: {https}")?;
        }
        outln!("congestion: {}", args.congestion)?;
        outln!("origin certificate: {}", bound.cert_fingerprint)?;
        if let Some((addr, _)) = &admin {
            outln!("admin: http://{addr}/")?;
        }
        use std::io::Write;
        std::io::stdout().flush()?;
        let shutdown = crate::signals::shutdown_on_signal();
        let dashboard = admin.map(|(addr, listener)| {
            let dashboard = server::fleet::dashboard::Dashboard::new(
                fleet.clone(),
                bound.store(),
                Some(bound.stats()),
            );
            tracing::info!(%addr, "serving the fleet dashboard");
            tokio::spawn(server::fleet::dashboard::serve(
                listener,
                dashboard,
                shutdown.clone(),
            ))
        });
        let renewing = tokio::spawn(renew_while_serving(args.data.clone()));
        let draining = tokio::spawn(drain_inbox_while_serving(fleet.clone()));
        let pulling = shared.map(|shared| tokio::spawn(pull_reports_while_serving(shared)));
        bound.run(shutdown).await;
        renewing.abort();
        draining.abort();
        if let Some(pulling) = pulling {
            pulling.abort();
        }
        if let Some(dashboard) = dashboard {
            match dashboard.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(cause = %err, "the dashboard stopped"),
                Err(err) => tracing::warn!(cause = %err, "the dashboard task failed"),
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `shanlu origin gc` (issue 13): keep the last N catalogs, remove the rest.
/// `shanlu origin migrate --to s3://…` (issue 16).
pub fn migrate(args: &OriginMigrateArgs) -> anyhow::Result<ExitCode> {
    let origin = Origin::open(&args.data)?;
    let total = server::publish::current_catalog(&origin)?
        .courses
        .values()
        .map(|entry| entry.total_size)
        .fold(0, u64::saturating_add);
    let bar = progress::bytes_bar("writing");
    bar.set_length(total);
    let checking = progress::bytes_bar("verifying");
    let migrated = server::bucket::migrate::migrate(&origin, &args.to, &|n| bar.inc(n), &mut |n| {
        if !bar.is_finished() {
            bar.finish_and_clear();
            checking.set_length(total);
        }
        checking.inc(n);
    });
    bar.finish_and_clear();
    checking.finish_and_clear();
    let migrated = migrated.with_context(|| {
        format!(
            "moving the origin in {} into {} (run the same command again to resume; the origin is unchanged until it succeeds)",
            args.data.display(),
            args.to
        )
    })?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&migrated)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "moved the origin into {} at catalog sequence {}",
        args.to,
        migrated.sequence
    )?;
    outln!(
        "  written this run: {} chunks ({}), {} objects; verified {} chunks ({}) and {} objects",
        migrated.pushed.chunks,
        format::bytes(migrated.pushed.chunk_bytes),
        migrated.pushed.objects,
        migrated.verified.chunks_checked,
        format::bytes(migrated.verified.chunk_bytes_checked),
        migrated.verified.objects_checked
    )?;
    eprintln!(
        "Restart `shanlu origin serve` (with the same AWS_* settings) to serve from the bucket;\n\
         more origin processes can share it: docs/s3.md."
    );
    Ok(ExitCode::SUCCESS)
}

pub fn gc(args: &OriginGcArgs) -> anyhow::Result<ExitCode> {
    let origin = Origin::open(&args.data)?;
    let bar = progress::bytes_bar("collecting");
    let report = server::gc::gc(&origin, args.keep_versions, args.dry_run, &bar);
    bar.finish_and_clear();
    let report =
        report.with_context(|| format!("collecting garbage in {}", args.data.display()))?;
    let removed = &report.removed;
    if args.json {
        let json = serde_json::json!({
            "dry_run": report.dry_run,
            "kept_sequences": report.kept,
            "kept_blobs": removed.kept_blobs,
            "kept_objects": removed.kept_objects,
            "removed_catalogs": removed.catalogs,
            "removed_blobs": removed.blobs,
            "removed_blob_bytes": removed.blob_bytes,
            "removed_objects": removed.objects,
            "removed_object_bytes": removed.object_bytes,
            "removed_partials": removed.partials,
            "chunk_records_dropped": removed.chunks_dropped,
            "chunk_records_moved": removed.chunks_moved,
            "blob_bytes_before": report.blob_bytes_before,
            "packed_chunks": report.packed_chunks,
            "pack_bytes": report.pack_bytes,
            "seconds": report.elapsed.as_secs_f64(),
        });
        outln!("{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let kept = match (report.kept.first(), report.kept.last()) {
        (Some(first), Some(last)) if first != last => format!("catalogs {first}..={last}"),
        (Some(only), _) => format!("catalog {only}"),
        _ => "no catalog".into(),
    };
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    outln!(
        "kept {kept} ({} blobs, {} objects)",
        removed.kept_blobs,
        removed.kept_objects
    )?;
    let chunks = format!(
        ", {} chunk records ({} more moved to a kept file)",
        removed.chunks_dropped, removed.chunks_moved
    );
    outln!(
        "{verb} {} older catalogs, {} blobs ({}), {} objects ({}), {} partial files{chunks}",
        removed.catalogs,
        removed.blobs,
        format::bytes(removed.blob_bytes),
        removed.objects,
        format::bytes(removed.object_bytes),
        removed.partials,
    )?;
    if report.packed_chunks > 0 {
        let verb = if report.dry_run { "would keep" } else { "kept" };
        outln!(
            "{verb} {} chunks ({}) that only older kept versions hold, in packs",
            report.packed_chunks,
            format::bytes(report.pack_bytes)
        )?;
    }
    let after = (report.blob_bytes_before + report.pack_bytes).saturating_sub(removed.blob_bytes);
    outln!(
        "blobs: {} before, {} after, in {:.2} s",
        format::bytes(report.blob_bytes_before),
        format::bytes(after),
        report.elapsed.as_secs_f64()
    )?;
    if report.dry_run {
        eprintln!("Dry run: nothing was removed. Run again without --dry-run to remove it.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `shanlu origin renew` (issue 13): the catalog in force re-signed as the next sequence.
pub fn renew(args: &OriginRenewArgs) -> anyhow::Result<ExitCode> {
    let origin = Origin::open(&args.data)?;
    let report = server::history::renew(&origin, args.min_sequence)
        .with_context(|| format!("renewing the catalog of {}", args.data.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "renewed: catalog sequence {}, expires {}",
        report.sequence,
        format::time(report.expires_at)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `shanlu origin rotate-key` (issue 13).
pub fn rotate_key(args: &OriginRotateKeyArgs) -> anyhow::Result<ExitCode> {
    let mut origin = Origin::open(&args.data)?;
    let report = server::history::rotate_key(&mut origin)
        .with_context(|| format!("rotating the key of {}", args.data.display()))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("origin key: {}", report.new_key.as_deref().unwrap_or(""))?;
    outln!(
        "key root version {}, catalog sequence {}",
        report.root_version.unwrap_or(0),
        report.sequence
    )?;
    eprintln!(
        "Edges follow the rotation at their next sync, whichever key they pin; new edges may pin\n\
         the new key. The old secret key is destroyed: it could only sign a rival root."
    );
    Ok(ExitCode::SUCCESS)
}

/// While `origin serve` runs: takes the reports USB sticks brought
/// (`bundle create --for` files them in the fleet's inbox) into the fleet,
/// at start and every [`server::fleet::inbox::DRAIN_EVERY`].
async fn drain_inbox_while_serving(fleet: server::fleet::Fleet) {
    let inbox = std::sync::Arc::new(server::fleet::inbox::Inbox::new(fleet.dir()));
    loop {
        let (inbox, fleet) = (inbox.clone(), fleet.clone());
        let _ = tokio::task::spawn_blocking(move || inbox.drain(&fleet)).await;
        tokio::time::sleep(server::fleet::inbox::DRAIN_EVERY).await;
    }
}

/// While an origin process on a bucket serves (issue 16): takes in the
/// reports the other processes filed, every [`server::fleet::shared::PULL_EVERY`].
async fn pull_reports_while_serving(shared: std::sync::Arc<server::fleet::shared::SharedReports>) {
    let mut failing = false;
    loop {
        let puller = shared.clone();
        match tokio::task::spawn_blocking(move || puller.pull()).await {
            Ok(Ok(_)) => failing = false,
            Ok(Err(err)) if !failing => {
                failing = true;
                tracing::warn!(cause = %catalog::format::error_chain(&err), "cannot take the reports other origin processes filed in the bucket; trying again");
            }
            _ => {}
        }
        tokio::time::sleep(server::fleet::shared::PULL_EVERY).await;
    }
}

/// While `origin serve` runs: renews the catalog when less than half its
/// lifetime is left, checking at start and then every eighth of the
/// lifetime (at most hourly). A failure is logged and tried again.
async fn renew_while_serving(dir: std::path::PathBuf) {
    loop {
        let check = dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            let lifetime = Origin::open(&check)?.catalog_lifetime()?;
            let renewed = server::history::renew_if_due(&check)?;
            anyhow::Ok((lifetime, renewed))
        })
        .await;
        let wait = match result {
            Ok(Ok((lifetime, renewed))) => {
                if let Some(report) = renewed {
                    tracing::info!(
                        sequence = report.sequence,
                        expires = %format::time(report.expires_at),
                        "renewed the catalog before it expires"
                    );
                }
                server::history::renew_check_interval(lifetime)
            }
            Ok(Err(err)) => {
                tracing::warn!(
                    cause = format!("{err:#}"),
                    "cannot renew the catalog; trying again in a minute"
                );
                std::time::Duration::from_secs(60)
            }
            Err(err) => {
                tracing::warn!(cause = %err, "the renewal check stopped; trying again in a minute");
                std::time::Duration::from_secs(60)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
