//! Issue 16: an nginx caching proxy in front of two origin processes on one
//! bucket, as docs/s3.md describes it. Edges fetch objects and chunks through
//! it (`edge init --cdn`); the second edge's come from the proxy's cache.

use std::path::Path;
use std::process::{Child, Command};

use shanlu_tests::s3::S3Server;
use shanlu_tests::{Need, TestEdge, TestOrigin, command_ok as ok, generated, require, wait_until};

/// A running nginx, stopped when dropped.
struct Nginx {
    child: Child,
    port: u16,
    access_log: std::path::PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// nginx caching `/v1/objects/` and `/v1/chunks/` of `origins` (their
    /// HTTP addresses), sending them `secret`; its files under `dir`.
    fn start(dir: &Path, origins: &[std::net::SocketAddr], secret: &str) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(dir.join("cache")).expect("mkdir");
        let servers: String = origins
            .iter()
            .map(|addr| format!("        server {addr};\n"))
            .collect();
        let d = dir.display();
        // The sample of docs/s3.md, with this test's paths and ports.
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    log_format cache '$uri $upstream_cache_status $status';
    access_log {d}/access.log cache;
    proxy_cache_path {d}/cache keys_zone=shanlu:10m max_size=1g inactive=30d use_temp_path=off;
    upstream origins {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location ~ "^/v1/(objects|chunks)/[0-9a-f]{{64}}$" {{
            proxy_pass http://origins;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Shanlu-Cdn "{secret}";
            proxy_cache shanlu;
            proxy_cache_key $uri;
            proxy_cache_lock on;
            proxy_cache_valid 200 365d;
        }}
        location / {{ return 404; }}
    }}
}}
"#
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let nginx = shanlu_tests::need::nginx().expect("nginx");
        let child = Command::new(nginx)
            .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log"), "-c"])
            .arg(&conf_path)
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log"))
            .spawn()
            .expect("spawn nginx");
        let up = wait_until(std::time::Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            up,
            "nginx did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        Nginx {
            child,
            port,
            access_log: dir.join("access.log"),
        }
    }

    /// (misses, hits) among the chunk requests logged so far.
    fn chunk_requests(&self) -> (usize, usize) {
        self.requests("/v1/chunks/")
    }

    /// (misses, hits) among the requests under `prefix` logged so far.
    fn requests(&self, prefix: &str) -> (usize, usize) {
        let log = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let chunks = log.lines().filter(|l| l.starts_with(prefix));
        chunks.fold((0, 0), |(miss, hit), line| match line.split(' ').nth(1) {
            Some("HIT") => (miss, hit + 1),
            Some("MISS") => (miss + 1, hit),
            _ => (miss, hit),
        })
    }
}

fn with_s3(s3: &S3Server) -> Command {
    s3.shanlu()
}

#[test]
fn issue_16_a_caching_proxy_serves_the_second_edge_from_its_cache() {
    if !require(Need::Nginx) {
        return;
    }
    let s3 = S3Server::start();
    let (first, _) = s3.init_origin("cdn");
    let src = first.dir.path().join("course");
    std::fs::create_dir_all(src.join("01")).expect("mkdir");
    std::fs::write(src.join("course.toml"), "id = \"geo\"\n").expect("write");
    std::fs::write(src.join("01/map.mp4"), generated(6 * 1024 * 1024, 11)).expect("write");
    std::fs::write(src.join("01/index.html"), b"<video src='map.mp4'></video>").expect("write");
    ok(
        with_s3(&s3),
        &[
            "publish",
            src.to_str().expect("utf-8"),
            "--data",
            &first.data_str(),
        ],
    );
    let token = |name: &str| {
        let out = ok(
            with_s3(&s3),
            &[
                "origin",
                "add-edge",
                "--data",
                &first.data_str(),
                "--name",
                name,
            ],
        );
        out.lines()
            .find_map(|l| l.strip_prefix("edge token: "))
            .expect("token")
            .to_owned()
    };
    let (token_a, token_b) = (token("school-a"), token("school-b"));

    // A second process on the bucket: a copy of the folder without its store.
    let second_dir = tempfile::tempdir().expect("tempdir");
    let copy = Command::new("cp")
        .args(["-r", &first.data_str()])
        .arg(second_dir.path().join("origin"))
        .status()
        .expect("cp");
    assert!(copy.success());
    std::fs::remove_dir_all(second_dir.path().join("origin/store")).expect("rm store");
    let second = TestOrigin {
        dir: second_dir,
        key: first.key.clone(),
    };

    let secret = "0123456789abcdef0123456789abcdef-test";
    let secret_file = first.dir.path().join("cdn-secret");
    std::fs::write(&secret_file, secret).expect("write secret");
    let secret_arg = ["--cdn-secret-file", secret_file.to_str().expect("utf-8")];
    let served_first = first.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &secret_arg);
    let served_second = second.serve_with(with_s3(&s3), "127.0.0.1:0", "127.0.0.1", &secret_arg);

    let nginx_dir = first.dir.path().join("nginx");
    let nginx = Nginx::start(&nginx_dir, &[served_first.http, served_second.http], secret);
    let cdn = format!("http://127.0.0.1:{}", nginx.port);

    // Without the secret the origin refuses a chunk: the proxy is the way in.
    let chunk_path = "/v1/chunks/".to_owned() + &"0".repeat(64);
    let (status, _, _) = shanlu_tests::http_request(served_first.http, "GET", &chunk_path, "");
    assert_eq!(status, 401);

    let edge_a = TestEdge::init_with(
        &first,
        &served_first,
        served_first.quic,
        &token_a,
        "all",
        &["--cdn", &cdn],
    );
    let synced = edge_a.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    let (misses, hits) = nginx.chunk_requests();
    assert!(
        misses > 50,
        "the first edge's chunks came through the proxy: {misses}"
    );
    assert_eq!(hits, 0);
    let (object_misses, object_hits) = nginx.requests("/v1/objects/");
    assert!(
        object_misses >= 3,
        "the course, its lesson and its files' manifests came through the proxy: {object_misses}"
    );
    assert_eq!(object_hits, 0);

    let edge_b = TestEdge::init_with(
        &second,
        &served_second,
        served_second.quic,
        &token_b,
        "all",
        &["--cdn", &cdn],
    );
    let synced = edge_b.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    let (misses_after, hits) = nginx.chunk_requests();
    assert_eq!(
        misses_after, misses,
        "no chunk of the second edge reached an origin"
    );
    assert_eq!(
        hits, misses,
        "every chunk of the second edge came from the cache"
    );
    assert_eq!(
        nginx.requests("/v1/objects/"),
        (object_misses, object_misses),
        "every object of the second edge came from the cache"
    );

    // What reached the origins: each chunk once, from either process.
    let served = served_first.stop_counting_chunks() + served_second.stop_counting_chunks();
    assert_eq!(served, misses as u64);
    for edge in [&edge_a, &edge_b] {
        let listing = edge.ls();
        let files = &listing["courses"][0]["lessons"][0]["files"];
        for file in files.as_array().expect("files") {
            let blob = edge.blob_path(file["blake3"].as_str().expect("hash"));
            let source = src.join("01").join(file["path"].as_str().expect("path"));
            assert_eq!(
                std::fs::read(blob).expect("blob"),
                std::fs::read(source).expect("src")
            );
        }
    }
}

/// A CDN that answers every request with the same wrong bytes (a poisoned
/// cache) does not keep a school from completing: each refused answer is
/// asked of the origin.
#[test]
fn issue_16_an_edge_whose_cdn_lies_gets_everything_from_the_origin() {
    use std::io::{Read, Write};
    let liar = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = liar.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in liar.incoming().take(10_000) {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // One answer per request head, on a kept-alive connection.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlies";
                    if stream.write_all(answer).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("course");
    std::fs::create_dir_all(src.join("01")).expect("mkdir");
    std::fs::write(src.join("course.toml"), "id = \"geo\"\n").expect("write");
    let video = generated(1024 * 1024, 13);
    std::fs::write(src.join("01/map.mp4"), &video).expect("write");
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("school-l");
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--cdn", &format!("http://{addr}")],
    );
    let synced = edge.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    let listing = edge.ls();
    let file = &listing["courses"][0]["lessons"][0]["files"][0];
    let blob = edge.blob_path(file["blake3"].as_str().expect("hash"));
    assert_eq!(std::fs::read(blob).expect("blob"), video);
}

/// A CDN that does not answer costs a school nothing but the attempts:
/// every object and chunk it could not give comes from the origin, and the
/// sync completes byte-identical.
#[test]
fn issue_16_an_edge_whose_cdn_is_down_gets_everything_from_the_origin() {
    let origin = TestOrigin::init();
    let src = origin.dir.path().join("course");
    std::fs::create_dir_all(src.join("01")).expect("mkdir");
    std::fs::write(src.join("course.toml"), "id = \"geo\"\n").expect("write");
    let video = generated(2 * 1024 * 1024, 12);
    std::fs::write(src.join("01/map.mp4"), &video).expect("write");
    origin.publish(&src);
    let served = origin.serve();
    let token = origin.add_edge("school-c");
    // Nothing listens on port 1.
    let edge = TestEdge::init_with(
        &origin,
        &served,
        served.quic,
        &token,
        "all",
        &["--cdn", "http://127.0.0.1:1"],
    );
    let synced = edge.sync_ok();
    assert_eq!(synced["complete"], true, "{synced}");
    let listing = edge.ls();
    let file = &listing["courses"][0]["lessons"][0]["files"][0];
    let blob = edge.blob_path(file["blake3"].as_str().expect("hash"));
    assert_eq!(std::fs::read(blob).expect("blob"), video);
}
