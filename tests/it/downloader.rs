//! The edge's one download engine (issue 12): read-through and the sync
//! pass share it, so a file both want is fetched once; a reader's range goes
//! ahead of the prefetch; read-through progress survives `kill -9`.
//!
//! Chunk requests are counted at the origin: `origin serve` logs the chunks
//! it served when it stops.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use catalog::Hash;
use shanlu_tests::{TestEdge, TestOrigin, generated, wait_until};

/// A UDP relay on loopback with one path per edge socket, so the sync's and
/// read-through's connections can cross it together (the harness's relay
/// follows one edge address). Towards the edge, all paths share one rate.
struct Relay {
    addr: SocketAddr,
    to_edge: Arc<AtomicU64>,
    rate: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(origin: SocketAddr) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("relay socket"));
        front
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let relay = Relay {
            addr: front.local_addr().expect("addr"),
            to_edge: Arc::default(),
            rate: Arc::default(),
            cut: Arc::default(),
            stop: Arc::default(),
        };
        let (to_edge, rate, cut, stop) = (
            relay.to_edge.clone(),
            relay.rate.clone(),
            relay.cut.clone(),
            relay.stop.clone(),
        );
        // Bytes sent since the pacing started, and when it started.
        let pacer = Arc::new(Mutex::new((Instant::now(), 0u64, 0u64)));
        std::thread::spawn(move || {
            let mut paths: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else {
                    continue;
                };
                if cut.load(Ordering::Relaxed) {
                    continue;
                }
                let back = paths.entry(from).or_insert_with(|| {
                    let back = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("relay socket"));
                    back.connect(origin).expect("connect");
                    back.set_read_timeout(Some(Duration::from_millis(20)))
                        .expect("timeout");
                    let (back2, front2) = (back.clone(), front.clone());
                    let (to_edge, rate, cut, stop, pacer) = (
                        to_edge.clone(),
                        rate.clone(),
                        cut.clone(),
                        stop.clone(),
                        pacer.clone(),
                    );
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while !stop.load(Ordering::Relaxed) {
                            let Ok(n) = back2.recv(&mut buf) else {
                                continue;
                            };
                            if cut.load(Ordering::Relaxed) {
                                continue;
                            }
                            let rate = rate.load(Ordering::Relaxed);
                            if rate > 0 {
                                let wait = {
                                    let mut p = pacer.lock().expect("pacer");
                                    if p.2 != rate {
                                        *p = (Instant::now(), 0, rate);
                                    }
                                    p.1 += n as u64;
                                    Duration::from_secs_f64(p.1 as f64 / rate as f64)
                                        .checked_sub(p.0.elapsed())
                                };
                                if let Some(wait) = wait {
                                    std::thread::sleep(wait);
                                }
                            }
                            to_edge.fetch_add(n as u64, Ordering::Relaxed);
                            let _ = front2.send_to(&buf[..n], from);
                        }
                    });
                    back
                });
                let _ = back.send(&buf[..n]);
            }
        });
        relay
    }

    fn to_edge(&self) -> u64 {
        self.to_edge.load(Ordering::Relaxed)
    }

    fn set_rate(&self, bytes_per_second: u64) {
        self.rate.store(bytes_per_second, Ordering::Relaxed);
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

/// Publishes course `id` with a video of `size` bytes; returns the video.
fn video_course(origin: &TestOrigin, id: &str, size: usize, seed: u64) -> Vec<u8> {
    let root = origin.dir.path().join(id);
    write(&root, "course.toml", format!("id = \"{id}\"\n").as_bytes());
    write(&root, "01/index.html", b"<video src='video.mp4'></video>");
    let video = generated(size, seed);
    write(&root, "01/video.mp4", &video);
    origin.publish(&root);
    video
}

/// The distinct chunks of every file of course `id` on the origin, and the
/// manifest of the file whose BLAKE3 is `blob`.
fn origin_chunks(
    origin: &TestOrigin,
    id: &str,
    blob: &str,
) -> (HashSet<Hash>, (Hash, catalog::FileManifest)) {
    let store = catalog::Store::open_existing(origin.data().join("store")).expect("origin store");
    let listing = origin.ls();
    let course = listing["courses"]
        .as_array()
        .expect("courses")
        .iter()
        .find(|c| c["id"] == id)
        .expect("course");
    let mut chunks = HashSet::new();
    let mut found = None;
    for lesson in course["lessons"].as_array().expect("lessons") {
        for file in lesson["files"].as_array().expect("files") {
            let hash: Hash = file["manifest"]
                .as_str()
                .expect("manifest")
                .parse()
                .expect("hash");
            let manifest = store.manifest(&hash).expect("manifest");
            chunks.extend(manifest.chunks.iter().map(|c| c.hash));
            if file["blake3"] == blob {
                found = Some((hash, manifest));
            }
        }
    }
    (chunks, found.expect("the file is in the course"))
}

fn get_body(addr: std::net::SocketAddr, path: &str, range: &str) -> Vec<u8> {
    let (status, head, body) = shanlu_tests::http_request(addr, "GET", path, range);
    assert!(
        status == 200 || status == 206,
        "{status} {head}\n{}",
        String::from_utf8_lossy(&body)
    );
    body
}

#[test]
fn issue_12_a_reader_and_the_prefetch_wanting_one_file_fetch_every_chunk_once() {
    const SIZE: usize = 8 * 1024 * 1024;
    let origin = TestOrigin::init();
    let video = video_course(&origin, "v", SIZE, 121);
    let blob = blake3::hash(&video).to_hex().to_string();
    let (chunks, _) = origin_chunks(&origin, "v", &blob);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    relay.set_rate(1024 * 1024);
    let token = origin.add_edge("downloader-once");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "v");
    // The start-up sync prefetches the video; a class opens it meanwhile.
    let web = edge.run();
    assert!(wait_until(Duration::from_secs(30), || relay.to_edge() > 1024 * 1024));
    let body = get_body(web.addr, "/courses/v/01/video.mp4", "");
    assert!(body == video, "the reader got other bytes");
    assert!(wait_until(Duration::from_secs(60), || {
        let status = web.json("/api/v1/status");
        status["live"]["syncing"] == false && edge.blob_path(&blob).exists()
    }));
    drop(web);
    let served_chunks = served.stop_counting_chunks();
    assert_eq!(
        served_chunks,
        chunks.len() as u64,
        "issue 12: every chunk of the course is fetched once, not once per asker"
    );
}

#[test]
fn issue_12_a_readers_range_jumps_the_prefetch_queue() {
    const SIZE: usize = 24 * 1024 * 1024;
    let origin = TestOrigin::init();
    let video = video_course(&origin, "v", SIZE, 122);
    let served = origin.serve();
    let relay = Relay::start(served.quic);
    relay.set_rate(2 * 1024 * 1024);
    let token = origin.add_edge("downloader-range");
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "v");
    let web = edge.run();
    assert!(wait_until(Duration::from_secs(30), || relay.to_edge() > 1024 * 1024));
    // A seek near the end, while the prefetch is at the start.
    let at = SIZE - 1024 * 1024;
    let started = Instant::now();
    let range = format!("Range: bytes={at}-{}\r\n", at + 99);
    let body = get_body(web.addr, "/courses/v/01/video.mp4", &range);
    let carried = relay.to_edge();
    assert_eq!(body, video[at..at + 100]);
    assert!(
        carried < (SIZE / 2) as u64,
        "issue 12: the seek waited for {carried} bytes of prefetch ({:?})",
        started.elapsed()
    );
}

#[test]
fn issue_12_read_through_progress_survives_kill_9_and_no_verified_chunk_is_fetched_twice() {
    const SIZE: usize = 12 * 1024 * 1024;
    let origin = TestOrigin::init();
    let root = origin.dir.path().join("a");
    write(&root, "course.toml", b"id = \"a\"\n");
    write(&root, "01/index.html", "<p>课一</p>".as_bytes());
    origin.publish(&root);
    let video = video_course(&origin, "b", SIZE, 123);
    let blob = blake3::hash(&video).to_hex().to_string();
    let (_, (manifest_hash, manifest)) = origin_chunks(&origin, "b", &blob);
    let served = origin.serve();
    let quic = served.quic;
    let relay = Relay::start(served.quic);
    let token = origin.add_edge("downloader-kill");
    // Course b is not subscribed: only read-through fetches it.
    let edge = TestEdge::init(&origin, &served, relay.addr, &token, "a");
    edge.sync_ok();
    let mut web = edge.run();
    relay.set_rate(1024 * 1024);
    let addr = web.addr;
    let reader = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        std::io::Write::write_all(
            &mut stream,
            b"GET /courses/b/01/video.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .expect("request");
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    let before = relay.to_edge();
    assert!(wait_until(Duration::from_secs(60), || relay.to_edge()
        - before
        > 4 * 1024 * 1024));
    // The link stops, what arrived is recorded, then the edge dies.
    relay.set_cut(true);
    std::thread::sleep(Duration::from_millis(1500));
    web.child.kill().expect("kill -9");
    let _ = web.child.wait();
    let _ = reader.join();
    drop(served);

    let missing: HashSet<Hash> = {
        let store = catalog::Store::open(edge.data().join("store")).expect("edge store");
        let partial = store
            .partial(manifest_hash, manifest.clone())
            .expect("partial");
        let present = partial.present();
        let kept: u64 = manifest
            .chunks
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(c, _)| u64::from(c.len))
            .sum();
        assert!(
            kept >= 2 * 1024 * 1024,
            "issue 12: only {kept} bytes were kept across kill -9"
        );
        manifest
            .chunks
            .iter()
            .zip(&present)
            .filter(|(_, p)| !**p)
            .map(|(c, _)| c.hash)
            .collect()
    };

    // A new origin process (its counter starts at 0) and a new edge.
    let served = origin.serve_on(&quic.to_string());
    relay.set_cut(false);
    relay.set_rate(0);
    let web = edge.run();
    let body = get_body(web.addr, "/courses/b/01/video.mp4", "");
    assert!(body == video, "the resumed file differs");
    assert!(wait_until(Duration::from_secs(20), || edge
        .blob_path(&blob)
        .exists()));
    drop(web);
    assert_eq!(
        served.stop_counting_chunks(),
        missing.len() as u64,
        "issue 12: after kill -9 only the chunks not recorded are fetched"
    );
}
