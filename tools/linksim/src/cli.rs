//! The command line of `shanlu-linksim`: flags ([`Cli`]), the checked [`Config`] and [`run`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use linksim::units::{parse_bytes, parse_duration, parse_fraction, parse_pair, parse_rate};
use linksim::{Link, LinkSpec, Stats};
use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Start an emulated bad link between two network namespaces, for benchmarks.
///
/// Prints `key=value` lines (origin_ns, edge_ns, origin_ip, edge_ip, pid) once the link is up,
/// then keeps it up until Ctrl-C, SIGTERM or --lifetime, and deletes the namespaces. Run
/// programs on either side with `ip netns exec NS program`. Needs root.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// One-way delay, both directions (e.g. 50ms; the round trip is twice this).
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Each packet's delay varies uniformly within ± this; packets stay in order.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    jitter: Duration,
    /// Random loss per packet, both directions (e.g. 1% or 0.01).
    #[arg(long, value_parser = parse_fraction, default_value = "0")]
    loss: f64,
    /// Bursty Gilbert–Elliott loss as P,R: good→bad and bad→good probabilities (e.g.
    /// 0.5%,16.7%).
    #[arg(long, value_name = "P,R", value_parser = parse_gilbert)]
    gilbert: Option<(f64, f64)>,
    /// Bottleneck rate, both directions (e.g. 10Mbit).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Bottleneck queue in bytes, tail drop (e.g. 64KiB); default one bandwidth-delay product.
    #[arg(long, value_parser = parse_bytes)]
    queue: Option<u64>,
    /// One-way delay edge → origin, instead of --delay.
    #[arg(long, value_parser = parse_duration)]
    up_delay: Option<Duration>,
    /// Random loss edge → origin, instead of --loss.
    #[arg(long, value_parser = parse_fraction)]
    up_loss: Option<f64>,
    /// Bottleneck rate edge → origin, instead of --rate.
    #[arg(long, value_parser = parse_rate)]
    up_rate: Option<u64>,
    /// Drop every UDP packet (QUIC blocked); TCP still passes.
    #[arg(long)]
    drop_udp: bool,
    /// Cut the link for LENGTH at every multiple of EVERY (e.g. 120s,30s).
    #[arg(long, value_name = "EVERY,LENGTH", value_parser = parse_outage)]
    outage: Option<(Duration, Duration)>,
    /// MTU of the TUN devices.
    #[arg(long, default_value_t = 1500)]
    mtu: u16,
    /// Seed for loss and jitter.
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this long whatever happens.
    #[arg(long, value_parser = parse_duration, default_value = "900s")]
    lifetime: Duration,
    /// Write the counters as JSON here, every --stats-interval and on exit.
    #[arg(long, value_name = "PATH")]
    stats_file: Option<PathBuf>,
    /// How often to write --stats-file.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    stats_interval: Duration,
    /// More logging on stderr (-v info, -vv debug); RUST_LOG wins.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

fn parse_gilbert(input: &str) -> Result<(f64, f64), linksim::units::UnitError> {
    parse_pair(input, parse_fraction)
}

fn parse_outage(input: &str) -> Result<(Duration, Duration), linksim::units::UnitError> {
    parse_pair(input, parse_duration)
}

/// A checked run of the binary.
#[derive(Debug)]
pub struct Config {
    spec: LinkSpec,
    lifetime: Duration,
    stats_file: Option<PathBuf>,
    stats_interval: Duration,
}

impl TryFrom<Cli> for Config {
    type Error = anyhow::Error;

    fn try_from(cli: Cli) -> anyhow::Result<Config> {
        let mut spec = LinkSpec::default()
            .delay(cli.delay)
            .jitter(cli.jitter)
            .loss(cli.loss)
            .drop_udp(cli.drop_udp);
        spec.mtu = cli.mtu;
        if let Some((p, r)) = cli.gilbert {
            spec = spec.gilbert(p, r);
        }
        if let Some(rate) = cli.rate {
            spec = spec.rate_bps(rate);
        }
        if let Some(queue) = cli.queue {
            spec = spec.queue_bytes(queue);
        }
        if let Some((every, length)) = cli.outage {
            spec = spec.outages(every, length);
        }
        if let Some(seed) = cli.seed {
            spec = spec.seed(seed);
        }
        if let Some(delay) = cli.up_delay {
            spec.up.delay = delay;
        }
        if let Some(loss) = cli.up_loss {
            spec.up.loss = loss;
        }
        if let Some(rate) = cli.up_rate {
            spec.up.rate_bps = Some(rate);
        }
        spec.validate().context("checking the link")?;
        anyhow::ensure!(
            !cli.stats_interval.is_zero(),
            "--stats-interval must be above zero"
        );
        Ok(Config {
            spec,
            lifetime: cli.lifetime,
            stats_file: cli.stats_file,
            stats_interval: cli.stats_interval,
        })
    }
}

/// Installs the subscriber: warnings by default, more with `-v`, `RUST_LOG` wins.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Starts the link, reports where it is, and keeps it up until a signal or the lifetime.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // Listen for signals before there is anything to clean up, so none is missed.
    let mut stop = {
        let _context = runtime.enter();
        StopSignals::listen().context("listening for signals")?
    };
    // The watchdog is a backstop: the loop below stops first and writes the last counters.
    let link = Link::start(
        config.spec.clone(),
        config.lifetime + Duration::from_secs(5),
    )
    .context("starting the link")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "origin_ns={}\nedge_ns={}\norigin_ip={}\nedge_ip={}\npid={}",
        link.origin_ns(),
        link.edge_ns(),
        link.origin_ip(),
        link.edge_ip(),
        std::process::id(),
    )
    .and_then(|()| stdout.flush())
    .context("writing to stdout")?;
    drop(stdout);

    runtime.block_on(async {
        let deadline = tokio::time::sleep(config.lifetime);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(config.stats_interval);
        loop {
            tokio::select! {
                () = stop.recv() => {
                    info!("asked to stop");
                    break;
                }
                () = &mut deadline => {
                    info!("lifetime over");
                    break;
                }
                // A full disk must not take the link down with it: the
                // next write, or the last one, may succeed.
                _ = tick.tick() => {
                    if let Err(err) = write_stats(config.stats_file.as_deref(), link.stats(), false) {
                        warn!(cause = format!("{err:#}"), "could not write the counters; the link stays up");
                    }
                }
            }
        }
        anyhow::Ok(())
    })?;
    let stats = link.stats();
    link.stop();
    write_stats(config.stats_file.as_deref(), stats, true)?;
    info!(?stats, "done");
    Ok(())
}

/// Ctrl-C and SIGTERM (what `kill` and systemd send) both mean: clean up and stop.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Starts listening; call inside a runtime.
    fn listen() -> std::io::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the next signal.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    stats: Stats,
    /// Whether the link has stopped and these are the last counters.
    #[serde(rename = "final")]
    last: bool,
}

/// Replaces `path` with the counters as JSON (written beside it, then renamed).
fn write_stats(path: Option<&Path>, stats: Stats, last: bool) -> anyhow::Result<()> {
    let Some(path) = path else {
        return Ok(());
    };
    let mut json = serde_json::to_vec_pretty(&Report { stats, last })?;
    json.push(b'\n');
    let partial = path.with_extension("partial");
    std::fs::write(&partial, json).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))
}
