//! Talking to an origin as an administrator (issue 15): `publish --origin`,
//! `withdraw --origin` and `origin add-edge|revoke|edges --origin`.
//!
//! The connection is the edges' own client ([`edge_cache::sync::client::Client`]):
//! QUIC with the pinned certificate, or the origin's HTTPS fallback where UDP
//! is blocked, with an admin token in the hello. [`publish`] chunks a course
//! folder here and sends only what the origin lacks; the origin signs.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use edge_cache::config::EdgeConfig;
use edge_cache::sync::client::{Client, ClientError, Transport};
use edge_cache::sync::fallback::FallbackUrl;
use edge_cache::sync::memory::TransportMemory;
use server::admin::{AdminRequest, AdminResponse};
use server::protocol::{self, Request, Response};

use crate::{format, outln};

mod deltas;
pub mod edges;
pub mod publish;

/// Where the admin token is read from when `--token` is not given.
pub const TOKEN_ENV: &str = "SHANLU_ADMIN_TOKEN";

/// How to reach an origin as an administrator.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Send to this origin instead of writing a data folder: `quic://HOST:PORT`,
    /// or `https://HOST:PORT` (its HTTPS fallback, where UDP is blocked).
    #[arg(long, value_name = "URL", requires = "origin_cert")]
    pub origin: Option<String>,

    /// The SHA-256 fingerprint of the origin's TLS certificate (`origin init` prints it).
    #[arg(long, value_name = "SHA256", requires = "origin")]
    pub origin_cert: Option<String>,

    /// An administrator's token (`origin init` prints the first one); else
    /// read from the environment variable SHANLU_ADMIN_TOKEN.
    #[arg(long, value_name = "ADMIN_TOKEN", requires = "origin")]
    pub token: Option<String>,

    /// With a `quic://` origin: the origin's HTTPS fallback, used when QUIC
    /// cannot connect.
    #[arg(long, value_name = "https://HOST:PORT", requires = "origin")]
    pub fallback: Option<String>,
}

/// Where an origin command acts: the origin's folder on this machine, or a
/// remote origin as an administrator.
#[derive(Debug, Clone, Args)]
pub struct OriginAt {
    /// The origin's data folder (made by `shanlu origin init`); or `--origin`
    /// to act on a remote origin as an administrator.
    #[arg(
        long,
        value_name = "ORIGIN_DIR",
        required_unless_present = "origin",
        conflicts_with = "origin"
    )]
    pub data: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// A welcomed administrator's connection.
pub struct Admin {
    pub client: Client,
    /// The token's name, as the origin knows it.
    pub name: String,
    pub origin: String,
}

impl RemoteArgs {
    /// The edge-style configuration the client connects with: the origin's
    /// address, pin and fallback, and the admin token.
    fn config(&self) -> anyhow::Result<(EdgeConfig, Transport)> {
        let origin = self.origin.as_deref().context("give --origin")?.trim();
        let token = match &self.token {
            Some(token) => token.trim().to_owned(),
            None => std::env::var(TOKEN_ENV)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        if token.is_empty() {
            bail!(
                "no admin token: give --token ADMIN_TOKEN or set {TOKEN_ENV} (`shanlu origin init` printed the first one)"
            );
        }
        let origin_cert = self
            .origin_cert
            .as_deref()
            .context("give --origin-cert (the fingerprint `shanlu origin init` printed)")?
            .parse()
            .context("checking --origin-cert")?;
        let (quic, fallback, transport) = if origin.starts_with("quic://") {
            let fallback = self
                .fallback
                .as_deref()
                .map(FallbackUrl::parse)
                .transpose()
                .context("checking --fallback")?;
            (origin.to_owned(), fallback, Transport::Auto)
        } else if origin.starts_with("https://") || origin.starts_with("http://") {
            let url = FallbackUrl::parse(origin).context("checking --origin")?;
            // Not used over HTTPS; the configuration wants an address.
            (
                format!("quic://{}", url.authority),
                Some(url),
                Transport::Http,
            )
        } else {
            bail!("--origin {origin:?}: give quic://HOST:PORT or https://HOST:PORT");
        };
        let config = EdgeConfig {
            origin: quic.parse().context("checking --origin")?,
            // Catalogs are not read on this connection: any key will do.
            origin_key: catalog::OriginKey::from_bytes(&[1; 32]).public(),
            origin_cert,
            token,
            max_rate: None,
            windows: Vec::new(),
            fallback,
            transport,
            cdn: None,
            max_store: None,
            min_free: None,
            scrub_rate: None,
            scrub_every: None,
            subscribe: edge_cache::Subscription::parse("all")?,
            peers: Vec::new(),
        };
        Ok((config, transport))
    }

    /// Connects and checks the token is an administrator's.
    pub async fn connect(&self) -> anyhow::Result<Admin> {
        let (config, transport) = self.config()?;
        let origin = self.origin.clone().unwrap_or_default();
        let memory = TransportMemory::new();
        let client = Client::connect_paced(&config, None, transport, &memory)
            .await
            .map_err(|err| explain(err, &origin))?;
        if client.origin_revision < protocol::REVISION_BUREAU {
            bail!(
                "the origin at {origin} is too old for remote administration (protocol revision {}); upgrade shanlu on it",
                client.origin_revision
            );
        }
        let name = match ask(&client, AdminRequest::Whoami).await {
            Ok(AdminResponse::Whoami { name }) => name,
            Ok(other) => bail!("the origin at {origin} answered {other:?} to who-am-I"),
            Err(err) => {
                return Err(err.context(format!(
                    "the origin at {origin} took this token for edge {:?}'s, not an administrator's: \
                     edge tokens cannot publish; use an admin token (`shanlu origin add-admin`)",
                    client.edge_name
                )));
            }
        };
        tracing::debug!(admin = %name, transport = client.transport_name(), "welcomed as an administrator");
        Ok(Admin {
            client,
            name,
            origin,
        })
    }
}

/// Adds what to do to a connection error an administrator may meet.
fn explain(err: ClientError, origin: &str) -> anyhow::Error {
    let chain = catalog::format::error_chain(&err);
    let hint = match &err {
        ClientError::Unauthorized { .. } => {
            return anyhow::anyhow!(
                "the origin at {origin} refused this admin token: it is wrong or was revoked; \
                 ask an administrator for a new one (`shanlu origin add-admin`)"
            );
        }
        _ if chain.contains("certificate") || chain.contains("fingerprint") => {
            "the origin's certificate is not the one pinned: check --origin-cert against what `shanlu origin init` printed"
        }
        _ => {
            "check --origin (and --fallback where UDP is blocked), and that `shanlu origin serve` runs there"
        }
    };
    anyhow::Error::new(err).context(format!("cannot reach the origin at {origin}: {hint}"))
}

/// Sends one administrator's request and reads its one answer.
pub async fn ask(client: &Client, request: AdminRequest) -> anyhow::Result<AdminResponse> {
    let mut responses = client.request(&Request::Admin(request)).await?;
    match responses.next().await? {
        Some(Response::Admin(answer)) => Ok(answer),
        Some(Response::Error { message }) => Err(anyhow::anyhow!("the origin refused: {message}")),
        Some(_) => bail!("the origin answered an administrator's request with something else"),
        None => bail!("the origin closed the stream without an answer"),
    }
}

/// `shanlu withdraw COURSE --origin …`.
pub fn withdraw(
    remote: &RemoteArgs,
    course: &str,
    reason: &str,
    min_sequence: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let answer = runtime.block_on(async {
        let admin = remote.connect().await?;
        let answer = ask(
            &admin.client,
            AdminRequest::Withdraw {
                course: course.to_owned(),
                reason: reason.to_owned(),
                min_sequence,
            },
        )
        .await
        .with_context(|| format!("withdrawing {course} at {}", admin.origin));
        admin.client.close().await;
        answer
    })?;
    let AdminResponse::Withdrawn { json: report } = answer else {
        bail!("the origin answered something unexpected to a withdrawal");
    };
    if json {
        outln!("{report}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let report: serde_json::Value = serde_json::from_str(&report)?;
    outln!(
        "withdrew {course} (last version {}) in catalog sequence {}, which expires {}",
        report["version"].as_u64().unwrap_or(0),
        report["sequence"].as_u64().unwrap_or(0),
        format::time(report["expires_at"].as_u64().unwrap_or(0))
    )?;
    Ok(ExitCode::SUCCESS)
}

/// A small runtime for one command's connection.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
