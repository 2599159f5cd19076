//! The load of `tools/bench/soak.sh` (issue 11): classroom clients reading
//! lesson files from an edge, each body checked against its BLAKE3, while an
//! attacker holds slow connections. Prints one JSON object to stdout.
//!
//! - Clients (`--clients`, from `--client-ip`, one classroom behind one
//!   address): each keeps one keep-alive connection and, until `--secs`
//!   have passed, GETs a random lesson file of a random course. The file
//!   list and hashes come from `GET /api/v1/courses/<id>`, fetched again
//!   every 25 requests and whenever a body matches no hash known for its
//!   URL (a publish may just have changed it). A body whose BLAKE3 matches
//!   no hash the API ever listed for that URL, even after that refresh, is
//!   a wrong answer. An answer other than 200, a broken connection or one
//!   slower than 30 s is an error. A request sent on a kept-alive
//!   connection the edge had just closed (no byte of answer) is retried
//!   once on a new connection, as browsers do, and counted as `retried`.
//!   A new connection that this client itself left silent for longer than
//!   the edge's header-read timeout ([`HEAD_TIMEOUT`], its tasks starved on
//!   a loaded machine) and that the edge therefore closed unanswered is
//!   counted as `late`, apart from the errors, with how late it was.
//! - The attacker (`--slow`, from `--attacker-ip`): that many tasks, each
//!   opening a connection, sending half a request head and waiting for the
//!   edge to close it, then opening another a second later.
//!
//! Build: `cargo build --release -p tools --example soak`.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// The edge's classroom address.
    #[arg(long)]
    edge: SocketAddr,
    /// Course ids to read, comma-separated.
    #[arg(long, value_delimiter = ',')]
    courses: Vec<String>,
    #[arg(long, default_value_t = 400)]
    clients: usize,
    #[arg(long, default_value_t = 2000)]
    slow: usize,
    #[arg(long, default_value_t = 60)]
    secs: u64,
    #[arg(long, default_value = "127.0.0.2")]
    client_ip: IpAddr,
    #[arg(long, default_value = "127.0.0.1")]
    attacker_ip: IpAddr,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const REFRESH_EVERY: u64 = 25;
/// The edge's header-read timeout (`edge_cache::classroom::front::Limits::head`).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest body read; lesson files in the soak are far smaller.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Every hash the API ever listed for each file URL, per course.
#[derive(Default)]
struct Known {
    courses: Mutex<HashMap<String, HashMap<String, HashSet<String>>>>,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    retried: AtomicU64,
    late: AtomicU64,
    api_fetches: AtomicU64,
    changed_seen: AtomicU64,
    slow_opened: AtomicU64,
    slow_closed: AtomicU64,
    slow_refused: AtomicU64,
    slow_connect_errors: AtomicU64,
    slow_open_now: AtomicU64,
    slow_open_peak: AtomicU64,
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

async fn connect(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Reads one answer (Content-Length or chunked). `Ok(None)`: the connection
/// closed before any byte of it.
async fn read_response(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Option<Response>> {
    let mut line = String::new();
    match reader.read_line(&mut line).await {
        Ok(0) => return Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
        Err(err) => return Err(err.into()),
        Ok(_) => {}
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("a bad status line {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("the connection closed inside an answer's head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().context("content-length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("a bad chunk size {line:?}"))?;
            if size == 0 {
                line.clear();
                reader.read_line(&mut line).await?;
                break;
            }
            if body.len() + size > MAX_BODY {
                bail!("an answer over {MAX_BODY} bytes");
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).await?;
        }
    } else {
        let length = length.context("an answer with neither content-length nor chunks")?;
        if length > MAX_BODY {
            bail!("an answer over {MAX_BODY} bytes");
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).await?;
    }
    Ok(Some(Response { status, body }))
}

/// One classroom client's keep-alive connection.
struct Client {
    from: IpAddr,
    edge: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// GET `path`, retrying once on a new connection if a kept-alive one
    /// was closed before answering.
    async fn get(&mut self, path: &str, counts: &Counts) -> anyhow::Result<Response> {
        for attempt in 0..2 {
            let reused = self.conn.is_some();
            let connected = Instant::now();
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => BufReader::new(connect(self.from, self.edge).await?),
            };
            let request = format!("GET {path} HTTP/1.1\r\nHost: classroom\r\n\r\n");
            // How long this client took from starting to connect to sending its
            // request: an upper bound of what the edge's head timer saw, which
            // starts after the handshake.
            let silent_for = connected.elapsed();
            let sent = conn.get_mut().write_all(request.as_bytes()).await;
            let answer = match sent {
                Ok(()) => read_response(&mut conn).await,
                Err(_) if reused => Ok(None),
                Err(err) => Err(err.into()),
            };
            match answer? {
                Some(response) => {
                    self.conn = Some(conn);
                    return Ok(response);
                }
                None if reused && attempt == 0 => {
                    counts.retried.fetch_add(1, Ordering::Relaxed);
                }
                None if silent_for >= HEAD_TIMEOUT => {
                    counts.late.fetch_add(1, Ordering::Relaxed);
                    bail!(Late(silent_for));
                }
                None => bail!(
                    "the edge closed a new connection without answering (request sent {} ms after connecting)",
                    silent_for.as_millis()
                ),
            }
        }
        bail!("no answer after a retry")
    }
}

/// This client sent its request after the edge's header-read timeout.
#[derive(Debug)]
struct Late(Duration);

impl std::fmt::Display for Late {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "late: this client sent its request {} ms after connecting, past the edge's header-read timeout",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for Late {}

async fn refresh(
    client: &mut Client,
    course: &str,
    known: &Known,
    counts: &Counts,
) -> anyhow::Result<()> {
    let response = client
        .get(&format!("/api/v1/courses/{course}"), counts)
        .await?;
    counts.api_fetches.fetch_add(1, Ordering::Relaxed);
    if response.status != 200 {
        bail!("GET /api/v1/courses/{course}: HTTP {}", response.status);
    }
    let json: serde_json::Value = serde_json::from_slice(&response.body)?;
    let mut courses = known
        .courses
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    let files = courses.entry(course.to_owned()).or_default();
    for lesson in json["lessons"].as_array().into_iter().flatten() {
        for file in lesson["files"].as_array().into_iter().flatten() {
            let (Some(url), Some(hash)) = (file["url"].as_str(), file["blake3"].as_str()) else {
                continue;
            };
            let hashes = files.entry(url.to_owned()).or_default();
            if hashes.insert(hash.to_owned()) && hashes.len() > 1 {
                counts.changed_seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

fn knows(known: &Known, course: &str, url: &str, hash: &str) -> Option<bool> {
    let courses = known
        .courses
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    courses
        .get(course)?
        .get(url)
        .map(|hashes| hashes.contains(hash))
}

fn urls_of(known: &Known, course: &str) -> Vec<String> {
    let courses = known
        .courses
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    courses
        .get(course)
        .map(|files| files.keys().cloned().collect())
        .unwrap_or_default()
}

/// One lesson-file read and its check: Ok(latency) or what went wrong.
async fn read_one(
    client: &mut Client,
    course: &str,
    url: &str,
    known: &Known,
    counts: &Counts,
) -> anyhow::Result<()> {
    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.get(url, counts))
        .await
        .context("no answer within 30 s")??;
    counts.requests.fetch_add(1, Ordering::Relaxed);
    counts
        .bytes
        .fetch_add(response.body.len() as u64, Ordering::Relaxed);
    if response.status != 200 {
        bail!("GET {url}: HTTP {}", response.status);
    }
    let hash = blake3::hash(&response.body).to_hex().to_string();
    if knows(known, course, url, &hash) == Some(true) {
        return Ok(());
    }
    // Perhaps just published: ask the API again.
    refresh(client, course, known, counts).await?;
    if knows(known, course, url, &hash) != Some(true) {
        counts.wrong.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "soak: WRONG BYTES for {url}: {} bytes hashing to {hash}, which the API never listed",
            response.body.len()
        );
    }
    Ok(())
}

async fn classroom_client(
    args: Arc<Args>,
    known: Arc<Known>,
    counts: Arc<Counts>,
    end: Instant,
    seed: u64,
) -> Vec<u32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut client = Client {
        from: args.client_ip,
        edge: args.edge,
        conn: None,
    };
    let mut latencies = Vec::new();
    let mut done = 0u64;
    while Instant::now() < end {
        let course = &args.courses[rng.usize(..args.courses.len())];
        let started = Instant::now();
        let outcome = async {
            if done.is_multiple_of(REFRESH_EVERY) || urls_of(&known, course).is_empty() {
                refresh(&mut client, course, &known, &counts).await?;
            }
            let urls = urls_of(&known, course);
            if urls.is_empty() {
                bail!("course {course} lists no files");
            }
            let url = &urls[rng.usize(..urls.len())];
            read_one(&mut client, course, url, &known, &counts).await
        }
        .await;
        done += 1;
        match outcome {
            Ok(()) => latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(err) => {
                if err.downcast_ref::<Late>().is_none() {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
                eprintln!("soak: client error: {err:#}");
                client.conn = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    latencies
}

/// One of the attacker's connections, again and again until `end`.
async fn slow_connection(args: Arc<Args>, counts: Arc<Counts>, end: Instant) {
    while Instant::now() < end {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout_at(end, connect(args.attacker_ip, args.edge)).await
        else {
            counts.slow_connect_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        counts.slow_opened.fetch_add(1, Ordering::Relaxed);
        let open = counts.slow_open_now.fetch_add(1, Ordering::Relaxed) + 1;
        counts.slow_open_peak.fetch_max(open, Ordering::Relaxed);
        let _ = stream
            .write_all(b"GET / HTTP/1.1\r\nHost: classroom\r\nUser-Agent: slow")
            .await;
        let mut seen = [0u8; 64];
        let closed = tokio::time::timeout_at(end, stream.read(&mut seen)).await;
        counts.slow_open_now.fetch_sub(1, Ordering::Relaxed);
        match closed {
            Err(_) => return,
            Ok(Ok(n)) if n > 0 && seen.starts_with(b"HTTP/1.1 503") => {
                counts.slow_refused.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                counts.slow_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(stream);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    if args.courses.is_empty() {
        bail!("give the courses to read with --courses");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let known = Arc::new(Known::default());
        let counts = Arc::new(Counts::default());
        let started = Instant::now();
        let end = started + Duration::from_secs(args.secs);
        let attackers: Vec<_> = (0..args.slow)
            .map(|_| tokio::spawn(slow_connection(args.clone(), counts.clone(), end)))
            .collect();
        let clients: Vec<_> = (0..args.clients)
            .map(|i| {
                tokio::spawn(classroom_client(
                    args.clone(),
                    known.clone(),
                    counts.clone(),
                    end,
                    i as u64 + 1,
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        for client in clients {
            latencies.extend(client.await.context("a client task")?);
        }
        for attacker in attackers {
            attacker.await.context("an attacker task")?;
        }
        latencies.sort_unstable();
        let secs = started.elapsed().as_secs_f64();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let report = serde_json::json!({
            "secs": secs,
            "clients": args.clients,
            "slow": args.slow,
            "requests": load(&counts.requests),
            "requests_per_sec": load(&counts.requests) as f64 / secs,
            "bytes": load(&counts.bytes),
            "wrong": load(&counts.wrong),
            "errors": load(&counts.errors),
            "retried": load(&counts.retried),
            "late": load(&counts.late),
            "api_fetches": load(&counts.api_fetches),
            "changed_seen": load(&counts.changed_seen),
            "latency_ms": {
                "p50": percentile(&latencies, 0.50),
                "p99": percentile(&latencies, 0.99),
                "max": percentile(&latencies, 1.0),
            },
            "slow_opened": load(&counts.slow_opened),
            "slow_closed_by_edge": load(&counts.slow_closed),
            "slow_refused_503": load(&counts.slow_refused),
            "slow_connect_errors": load(&counts.slow_connect_errors),
            "slow_open_peak": load(&counts.slow_open_peak),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        anyhow::Ok(())
    })
}
