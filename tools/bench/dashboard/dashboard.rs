//! The fleet dashboard benchmark (issue 15), run by tools/bench/dashboard.sh:
//! an origin with EDGES synthetic edges and DAYS daily reports each (loaded
//! through the fleet's bulk entry point, `Fleet::apply`), then `shanlu origin
//! serve --admin` on it: p50/p99 latency of the main pages, the origin's RSS,
//! and report ingestion through the sync protocol (`POST /v1/sync`) from
//! SENDERS simulated edges at once. Prints a Markdown table.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use server::fleet::{Fleet, Item};
use server::protocol::{Request, Response};
use server::report::{CourseHeld, DayUsage, EdgeReport, Envelope, report_key_of_token};
use server::tokens::{self, Book};

#[derive(Parser)]
struct Args {
    /// The shanlu binary.
    #[arg(long)]
    shanlu: PathBuf,
    /// A scratch folder (made if missing; must be empty).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    edges: u32,
    #[arg(long, default_value_t = 365)]
    days: u32,
    #[arg(long, default_value_t = 100)]
    counties: u32,
    #[arg(long, default_value_t = 30)]
    courses: u32,
    /// Lessons used per edge per day.
    #[arg(long, default_value_t = 3)]
    lessons_per_day: u32,
    /// Simulated edges sending reports at once.
    #[arg(long, default_value_t = 200)]
    senders: u32,
    #[arg(long, default_value_t = 25)]
    reports_per_sender: u32,
    /// Requests per page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

const LESSONS: u32 = 8;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let origin = args.dir.join("origin");
    let init = run(&args.shanlu, &["origin", "init", "--data", path(&origin)?])?;
    let admin = init
        .lines()
        .find_map(|l| l.strip_prefix("admin token: "))
        .context("origin init printed no admin token")?
        .to_owned();
    let sequence = publish_courses(&args, &origin)?;
    eprintln!(
        "published {} courses, catalog sequence {sequence}",
        args.courses
    );

    let started = Instant::now();
    let loaded = load(&args, &origin, sequence)?;
    let load_secs = started.elapsed().as_secs_f64();
    let fleet_bytes = std::fs::metadata(origin.join("fleet/fleet.redb"))?.len();
    eprintln!("loaded {loaded} reports in {load_secs:.1} s");

    let senders: Vec<(String, String)> = (0..args.senders)
        .map(|i| {
            let name = format!("sender-{i:04}");
            let token = tokens::add(&origin, Book::Edges, &name, Some("county-senders"))?;
            Ok((name, token))
        })
        .collect::<anyhow::Result<_>>()?;

    let started = Instant::now();
    let mut server = Served::start(&args.shanlu, &origin)?;
    let start_secs = started.elapsed().as_secs_f64();
    let rss_start = rss(server.child.id())?;

    let mut conn = Conn::open(server.admin)?;
    let (status, head, _) = conn.request(
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        format!("token={admin}").as_bytes(),
    )?;
    if status != 303 {
        bail!("login answered {status}: {head}");
    }
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_owned())
        })
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .context("no session cookie")?;
    let cookie = format!("Cookie: {cookie}\r\n");
    let pages = [
        "/",
        "/?sort=lag&desc=1&page=3",
        "/?county=county-7&flagged=1",
        "/courses",
        "/lessons",
        "/lessons?county=county-7&grade=3",
        "/edges.json",
        "/edges.csv",
        "/metrics",
    ];
    let mut latencies = Vec::new();
    for page in pages {
        let mut times = Vec::with_capacity(args.requests);
        let mut bytes = 0;
        for _ in 0..args.requests {
            let t = Instant::now();
            let (status, _, body) = conn.request("GET", page, &cookie, b"")?;
            times.push(t.elapsed());
            if status != 200 {
                bail!("GET {page} answered {status}");
            }
            bytes = body.len();
        }
        times.sort();
        latencies.push((page, times, bytes));
    }
    let rss_pages = rss(server.child.id())?;

    let started = Instant::now();
    let http = server.http;
    let threads: Vec<_> = senders
        .into_iter()
        .map(|(_, token)| {
            let per = args.reports_per_sender;
            std::thread::spawn(move || send_reports(http, &token, per))
        })
        .collect();
    let mut sent = 0u64;
    for thread in threads {
        sent += thread
            .join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let rss_end = rss(server.child.id())?;
    let peak = hwm(server.child.id())?;
    server.stop();

    println!(
        "## Fleet dashboard: {} edges x {} days ({} reports), {} counties, {} courses",
        args.edges, args.days, loaded, args.counties, args.courses
    );
    println!();
    println!("| page | bytes | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (page, times, bytes) in &latencies {
        let at = |q: f64| {
            times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1]
                .as_secs_f64()
                * 1000.0
        };
        println!(
            "| `{page}` | {bytes} | {:.1} | {:.1} | {:.1} |",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    println!();
    println!("| measure | value | goal |");
    println!("|---|---:|---|");
    println!(
        "| bulk load (Fleet::apply) | {:.0} reports/s ({load_secs:.0} s) | setup in minutes |",
        loaded as f64 / load_secs
    );
    println!(
        "| fleet.redb size | {:.0} MiB | |",
        fleet_bytes as f64 / 1048576.0
    );
    println!("| origin start (fleet read into memory) | {start_secs:.1} s | |");
    println!(
        "| origin RSS after start | {:.0} MiB | < 200 MiB |",
        rss_start as f64 / 1024.0
    );
    println!(
        "| origin RSS after the pages | {:.0} MiB | < 200 MiB |",
        rss_pages as f64 / 1024.0
    );
    println!(
        "| origin RSS after ingestion / peak | {:.0} / {:.0} MiB | < 200 MiB |",
        rss_end as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "| ingestion, {} edges at once over POST /v1/sync | {:.0} reports/s ({sent} in {ingest_secs:.1} s) | >= 1,000 reports/s |",
        args.senders,
        sent as f64 / ingest_secs
    );
    Ok(())
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("the scratch folder's path is not UTF-8")
}

fn run(shanlu: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(shanlu)
        .args(args)
        .output()
        .with_context(|| format!("running {}", shanlu.display()))?;
    if !out.status.success() {
        bail!(
            "shanlu {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// COURSES small courses with grades 1..6; the catalog sequence in force.
fn publish_courses(args: &Args, origin: &Path) -> anyhow::Result<u64> {
    let src = args.dir.join("src");
    let mut sequence = 0;
    for c in 0..args.courses {
        let course = src.join(format!("course-{c:02}"));
        for l in 0..LESSONS {
            let lesson = course.join(format!("{l:02}-lesson"));
            std::fs::create_dir_all(&lesson)?;
            std::fs::write(
                lesson.join("index.html"),
                format!("<p>course {c} lesson {l}</p>"),
            )?;
        }
        std::fs::write(
            course.join("course.toml"),
            format!(
                "grade = {}\nsubject = \"s{}\"\n\n[title]\nzh = \"课程 {c}\"\nen = \"Course {c}\"\n",
                c % 6 + 1,
                c % 5
            ),
        )?;
        let out = run(
            &args.shanlu,
            &["publish", path(&course)?, "--data", path(origin)?, "--json"],
        )?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        sequence = json["sequence"].as_u64().unwrap_or(sequence + 1);
    }
    Ok(sequence)
}

/// A year of daily reports from every edge, through the bulk entry point.
fn load(args: &Args, origin: &Path, sequence: u64) -> anyhow::Result<u64> {
    let fleet = Fleet::open(origin)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let today = (now / 86_400) as u32;
    let mut rng = fastrand::Rng::with_seed(15);
    let mut batch = Vec::with_capacity(server::fleet::store::MAX_BATCH);
    let mut loaded = 0u64;
    let mut last = Instant::now();
    // Day by day, as the reports would arrive: a batch's usage rows fall on one day.
    for d in 0..args.days {
        for e in 0..args.edges {
            let name = format!("edge-{e:05}");
            let county = format!("county-{}", e % args.counties);
            let held: Vec<u32> = (0..10).map(|i| (e + i * 3) % args.courses).collect();
            let day = today + 1 - args.days + d;
            let made_at = u64::from(day) * 86_400 + 3600;
            let last_day = d + 1 == args.days;
            let behind = last_day && e % 20 == 0;
            let report = EdgeReport {
                seq: u64::from(d) + 1,
                made_at,
                version: "0.1.0".into(),
                catalog_sequence: Some(if behind {
                    sequence.saturating_sub(2)
                } else {
                    sequence
                }),
                courses: held
                    .iter()
                    .map(|c| CourseHeld {
                        id: format!("course-{c:02}"),
                        version: 1,
                        complete: !behind,
                    })
                    .collect(),
                courses_total: held.len() as u32,
                bytes_held: 40 << 30,
                bytes_free: rng.u64(1 << 30..200 << 30),
                usage: (0..args.lessons_per_day)
                    .map(|_| DayUsage {
                        day,
                        course: format!("course-{:02}", held[rng.usize(0..held.len())]),
                        lesson: format!("{:02}-lesson", rng.u32(0..LESSONS)),
                        opens: rng.u64(1..40),
                        bytes_served: rng.u64(1 << 20..1 << 28),
                        bytes_saved: rng.u64(0..1 << 24),
                    })
                    .collect(),
                ..EdgeReport::default()
            };
            batch.push(Item {
                edge: name,
                county: Some(county),
                report,
                arrived: made_at,
            });
            if batch.len() == server::fleet::store::MAX_BATCH {
                loaded += batch.len() as u64;
                fleet.apply(std::mem::take(&mut batch))?;
                if last.elapsed() > Duration::from_secs(10) {
                    eprintln!("  {loaded} reports loaded");
                    last = Instant::now();
                }
            }
        }
    }
    loaded += batch.len() as u64;
    fleet.apply(batch)?;
    Ok(loaded)
}

struct Served {
    child: std::process::Child,
    http: SocketAddr,
    admin: SocketAddr,
}

impl Served {
    fn start(shanlu: &Path, origin: &Path) -> anyhow::Result<Served> {
        let log = std::fs::File::create(origin.with_file_name("origin.log"))?;
        let mut child = Command::new(shanlu)
            .env("RUST_LOG", "warn")
            .args([
                "origin",
                "serve",
                "--data",
                path(origin)?,
                "--quic",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .args(["--https", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let (mut http, mut admin) = (None, None);
        for line in BufReader::new(stdout).lines().take(10) {
            let line = line?;
            if let Some(addr) = line.strip_prefix("http: ") {
                http = Some(addr.trim().parse()?);
            }
            if let Some(url) = line.strip_prefix("admin: http://") {
                admin = Some(url.trim_end_matches('/').parse()?);
                break;
            }
        }
        Ok(Served {
            child,
            http: http.context("origin serve printed no http address")?,
            admin: admin.context("origin serve printed no admin address")?,
        })
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn rss(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn hwm(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// Sends `count` sealed reports as one edge, each answered Ok.
fn send_reports(http: SocketAddr, token: &str, count: u32) -> anyhow::Result<u64> {
    let key = report_key_of_token(token);
    let mut conn = Conn::open(http)?;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let today = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        / 86_400) as u32;
    for seq in 1..=u64::from(count) {
        let report = EdgeReport {
            seq,
            made_at: 1,
            version: "0.1.0".into(),
            catalog_sequence: Some(1),
            usage: vec![DayUsage {
                day: today,
                course: "course-00".into(),
                lesson: "00-lesson".into(),
                opens: 1,
                bytes_served: 1,
                bytes_saved: 0,
            }],
            ..EdgeReport::default()
        };
        let envelope = Envelope::seal(&key, &report).encode()?;
        let body = server::protocol::encode(&Request::Report { envelope });
        let (status, head, frames) = conn.request("POST", "/v1/sync", &auth, &body)?;
        if status != 200 || frames.len() < 4 {
            bail!("a report was answered {status}: {head}");
        }
        let len = u32::from_le_bytes([frames[0], frames[1], frames[2], frames[3]]) as usize;
        match server::protocol::decode::<Response>(frames.get(4..4 + len).context("short frame")?)?
        {
            Response::Ok => {}
            other => bail!("a report was refused: {other:?}"),
        }
    }
    Ok(u64::from(count))
}

/// One kept-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, String, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed mid-answer");
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        let lower = head.to_ascii_lowercase();
        let length = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let mut out = Vec::new();
        if let Some(length) = length {
            out.resize(length, 0);
            self.reader.read_exact(&mut out)?;
        } else if lower.contains("transfer-encoding: chunked") {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)?;
                if size == 0 {
                    let mut end = String::new();
                    while self.reader.read_line(&mut end)? > 0 && end != "\r\n" {
                        end.clear();
                    }
                    break;
                }
                let start = out.len();
                out.resize(start + size, 0);
                self.reader.read_exact(&mut out[start..])?;
                let mut crlf = [0u8; 2];
                self.reader.read_exact(&mut crlf)?;
            }
        }
        Ok((status, head, out))
    }
}
