//! `shanlu demo`: the whole chain on one machine, with the bundled sample courses.
//!
//! An origin is set up and the sample courses published; the origin serves on
//! loopback; an edge is added, pinned to it and synced over QUIC; then the
//! edge serves the classroom until Ctrl-C. Every step is the code the real
//! commands run — QUIC, signing and verification included.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use edge_cache::{EdgeConfig, Subscription};
use server::Origin;

use crate::cli::DemoArgs;
use crate::outln;
use crate::{format, progress};

/// The sample courses in the source tree this binary was built from.
pub fn bundled_courses() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sample-courses")
}

pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let courses = args.courses.clone().unwrap_or_else(bundled_courses);
    let folders = course_folders(&courses)?;
    let temp;
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new().prefix("shanlu-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let origin_dir = data.join("origin");
    let edge_dir = data.join("edge");

    // 1. The origin and its courses.
    if !origin_dir.join("origin.key").exists() {
        Origin::init(&origin_dir)?;
    }
    let admin_token = demo_admin_token(&data)?;
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
        outln!(
            "published {} v{} (catalog sequence {}): {} lessons, {} files, {}, {} new chunks",
            report.course_id,
            report.course_version,
            report.sequence,
            report.lessons,
            report.files,
            format::bytes(report.bytes),
            report.new_chunks
        )?;
    }
    let public_key = origin.public_key();
    drop(origin);

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = crate::signals::shutdown_on_signal();

        // 2. The origin serves on loopback.
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        // The edge's reports land in the origin's fleet, as with `origin serve`.
        let fleet = server::fleet::Fleet::open(&origin_dir)?;
        let sink: std::sync::Arc<dyn server::report::ReportSink> =
            std::sync::Arc::new(fleet.clone());
        let listen = server::serve::Listen::on(loopback);
        let bound = server::serve::bind(&origin_dir, &listen, Some(sink)).await?;
        // The bureau's dashboard of the edges' reports (issue 15).
        let dashboard = server::fleet::dashboard::Dashboard::new(
            fleet,
            bound.store(),
            Some(bound.stats()),
        );
        let admin_listener = tokio::net::TcpListener::bind(loopback).await?;
        let admin_addr = admin_listener.local_addr()?;
        tokio::spawn(server::fleet::dashboard::serve(
            admin_listener,
            dashboard,
            shutdown.clone(),
        ));
        let quic = bound.quic_addr;
        let fallback = bound.https_addr.map(|https| format!("https://{https}"));
        match bound.http_addr {
            Some(http) => outln!("origin: quic://{quic} (http://{http}/v1/catalog)")?,
            None => outln!("origin: quic://{quic}")?,
        }
        let origin_task = tokio::spawn(bound.run(shutdown.clone()));

        // 3. A school edge, pinned to this origin, synced over QUIC.
        let fingerprint = server::tls::TlsIdentity::load_or_create(&origin_dir)?.fingerprint();
        set_up_edge(
            &origin_dir,
            &edge_dir,
            quic,
            fallback,
            &public_key.to_string(),
            &fingerprint,
        )?;
        let bar = progress::bytes_bar("syncing");
        let synced = edge_cache::sync_once(&edge_dir, &bar, &Default::default()).await;
        bar.finish_and_clear();
        let report = synced.context("the demo edge's first sync")?;
        outln!(
            "edge synced over QUIC: catalog sequence {}, {} files held, fetched {} in {} chunks, reused {} held locally",
            report.sequence,
            report.files_held,
            format::bytes(report.bytes_fetched),
            report.chunks_fetched,
            format::bytes(report.bytes_reused)
        )?;

        // 4. The classroom.
        let listener = bind_classroom(args.port).await?;
        let classroom = listener.local_addr()?;
        outln!("Classroom: http://{classroom}/")?;
        outln!("  courses: http://{classroom}/api/v1/courses   status: http://{classroom}/api/v1/status")?;
        outln!("Bureau's dashboard: http://{admin_addr}/   admin token: {admin_token}")?;
        outln!("Press Ctrl-C to stop.")?;
        use std::io::Write;
        std::io::stdout().flush()?;
        let options = edge_cache::run::RunOptions::every(std::time::Duration::from_secs(60));
        edge_cache::run::run(&edge_dir, listener, options, shutdown.clone(), |_| {}).await?;
        shutdown.cancel();
        let _ = origin_task.await;
        anyhow::Ok(())
    })?;
    if args.data.is_none() {
        outln!("stopped; the demo's temporary folder is removed (pass --data DIR to keep it)")?;
    } else {
        outln!("stopped; the demo's data stays in {}", data.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo administrator's token, kept in `DIR/demo-admin-token` (owner
/// only) so a demo run again with `--data` can still log in to its
/// dashboard: an origin keeps only tokens' hashes.
fn demo_admin_token(data: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join("demo-admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    let token = server::tokens::add(
        &data.join("origin"),
        server::tokens::Book::Admins,
        "demo",
        None,
    )
    .context("adding the demo's administrator")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    Ok(token)
}

fn course_folders(courses: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(courses)
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
    Ok(folders)
}

/// Adds (once) an edge called `demo-school` and writes its `edge.toml` for
/// this run's origin address, keeping whatever its store already holds.
fn set_up_edge(
    origin_dir: &Path,
    edge_dir: &Path,
    quic: SocketAddr,
    fallback: Option<String>,
    key: &str,
    fingerprint: &str,
) -> anyhow::Result<()> {
    let token_file = edge_dir.join("demo-token");
    let token = match std::fs::read_to_string(&token_file) {
        Ok(token) => token.trim().to_owned(),
        Err(_) => {
            let token = server::tokens::add_edge(
                origin_dir,
                &format!("demo-school-{}", std::process::id()),
            )?;
            std::fs::create_dir_all(edge_dir)?;
            std::fs::write(&token_file, &token)?;
            token
        }
    };
    let config_path = edge_cache::config::config_path(edge_dir);
    if config_path.exists() {
        std::fs::remove_file(&config_path)?;
    }
    EdgeConfig {
        origin: format!("quic://{quic}").parse()?,
        origin_key: key.parse()?,
        origin_cert: fingerprint.parse()?,
        token,
        max_rate: None,
        windows: Vec::new(),
        fallback: fallback
            .as_deref()
            .map(edge_cache::sync::fallback::FallbackUrl::parse)
            .transpose()?,
        transport: Default::default(),
        cdn: None,
        max_store: None,
        // The demo's course is small; a laptop short of the default 2 GB
        // free should still show it.
        min_free: Some(edge_cache::quota::limits::Size(256 * 1000 * 1000)),
        scrub_rate: None,
        scrub_every: None,
        subscribe: Subscription::All,
        peers: Vec::new(),
    }
    .create(edge_dir)?;
    Ok(())
}

/// Binds 127.0.0.1:`port`, or the next free port above it.
async fn bind_classroom(port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    if port == 0 {
        return Ok(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?);
    }
    for candidate in port..port.saturating_add(100) {
        if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", candidate)).await {
            return Ok(listener);
        }
    }
    anyhow::bail!(
        "ports {port} to {} on 127.0.0.1 are all taken; pass --port",
        port.saturating_add(99)
    )
}
