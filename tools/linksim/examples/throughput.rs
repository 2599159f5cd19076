//! How fast the forwarder moves packets, and at what CPU cost: one TCP connection sends as
//! much as it can from the origin to the edge for a while, through a link with the given
//! impairments (none by default).
//!
//! ```text
//! cargo run --release -p linksim --example throughput -- --secs 10
//! cargo run --release -p linksim --example throughput -- --rate 20Mbit --delay 300ms --secs 30
//! ```
//!
//! Prints the goodput, what the link carried, and the CPU time of the forwarder threads
//! (from `/proc/self/task/*/schedstat`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use linksim::units::{parse_duration, parse_fraction, parse_rate};
use linksim::{Link, LinkSpec, Side};

#[derive(Debug, Parser)]
struct Cli {
    /// Bottleneck rate (none by default).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// One-way delay.
    #[arg(long, value_parser = parse_duration, default_value = "0")]
    delay: Duration,
    /// Random loss.
    #[arg(long, value_parser = parse_fraction, default_value = "0")]
    loss: f64,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut spec = LinkSpec::default().delay(cli.delay).loss(cli.loss);
    if let Some(rate) = cli.rate {
        spec = spec.rate_bps(rate);
    }
    let link =
        Link::start(spec, Duration::from_secs(cli.secs + 60)).context("starting the link")?;
    let listener = link.run_in(Side::Origin, || TcpListener::bind((link.origin_ip(), 0)))??;
    let address = listener.local_addr()?;
    let duration = Duration::from_secs(cli.secs);
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        let block = vec![0u8; 256 * 1024];
        let started = Instant::now();
        while started.elapsed() < duration {
            stream.write_all(&block)?;
        }
        Ok(())
    });

    let mut stream = link.run_in(Side::Edge, || TcpStream::connect(address))??;
    let cpu_before = forwarder_cpu();
    let started = Instant::now();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut received: u64 = 0;
    loop {
        match stream.read(&mut buffer)? {
            0 => break,
            len => received += len as u64,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = forwarder_cpu() - cpu_before;
    let _ = sender.join();
    let stats = link.stats();

    let goodput = received as f64 * 8.0 / elapsed;
    println!("seconds={elapsed:.2}");
    println!("goodput_mbit={:.1}", goodput / 1e6);
    if let Some(rate) = cli.rate {
        println!("goodput_of_rate={:.3}", goodput / rate as f64);
    }
    println!("down_packets={}", stats.down.packets_carried);
    println!(
        "down_dropped_queue={} down_dropped_loss={}",
        stats.down.dropped_queue, stats.down.dropped_loss
    );
    println!("forwarder_cpu_seconds={cpu:.2}");
    println!("forwarder_cpu_share_of_one_core={:.2}", cpu / elapsed);
    Ok(())
}

/// Seconds on CPU of this process's forwarder threads (`lsim-*`).
fn forwarder_cpu() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut nanos: u64 = 0;
    for task in tasks.flatten() {
        let path = task.path();
        let is_forwarder = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.starts_with("lsim-") && !comm.starts_with("lsim-watchdog"));
        if !is_forwarder {
            continue;
        }
        if let Some(on_cpu) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        {
            nanos += on_cpu;
        }
    }
    nanos as f64 / 1e9
}
