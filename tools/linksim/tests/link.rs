//! The emulator end to end: real sockets in the two namespaces, real packets through the
//! forwarder. These need root, `/dev/net/tun` and `ip`; without them they skip (issue 12: the
//! workspace's tests pass for any user), unless `SHANLU_TEST_REQUIRE_ALL` is set (CI), when a
//! link that cannot start fails them.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use linksim::{Link, LinkSpec, Outages, Side};

#[allow(dead_code)]
#[path = "../../../tests/need.rs"]
mod need;

use need::Need;

const MS: Duration = Duration::from_millis(1);

fn start(spec: LinkSpec) -> Link {
    Link::start(spec, Duration::from_secs(60))
        .expect("starting a link (needs root, /dev/net/tun and the ip command)")
}

/// A TCP echo server in the origin namespace, one thread per connection.
fn echo_server(link: &Link) -> SocketAddr {
    let listener = link
        .run_in(Side::Origin, || TcpListener::bind((link.origin_ip(), 0)))
        .expect("entering the origin namespace")
        .expect("binding the echo server");
    let address = listener.local_addr().expect("listener address");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let mut buffer = [0u8; 4096];
                while let Ok(len @ 1..) = read(&mut stream, &mut buffer) {
                    if stream.write_all(&buffer[..len]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// `stream.read`, again when a signal interrupts it.
fn read(stream: &mut TcpStream, buffer: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buffer) {
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Connects from the edge namespace.
fn connect_from_edge(link: &Link, address: SocketAddr) -> TcpStream {
    link.run_in(Side::Edge, || {
        TcpStream::connect_timeout(&address, Duration::from_secs(5))
    })
    .expect("entering the edge namespace")
    .expect("connecting across the link")
}

fn udp_socket(link: &Link, side: Side) -> UdpSocket {
    let socket = link
        .run_in(side, || UdpSocket::bind((link.ip(side), 0)))
        .expect("entering a namespace")
        .expect("binding a UDP socket");
    socket
        .set_read_timeout(Some(300 * MS))
        .expect("setting a read timeout");
    socket
}

/// Datagrams `receiver` gets until it has been quiet for its read timeout.
fn count_received(receiver: &UdpSocket) -> usize {
    let mut buffer = [0u8; 2048];
    let mut received = 0;
    loop {
        match receiver.recv(&mut buffer) {
            Ok(_) => received += 1,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return received;
            }
            Err(err) => panic!("receiving: {err}"),
        }
    }
}

/// Sends `count` datagrams from `sender` to `receiver` and counts what arrives.
fn udp_round(sender: &UdpSocket, receiver: &UdpSocket, count: usize) -> usize {
    let target = receiver.local_addr().expect("receiver address");
    for i in 0..count {
        sender
            .send_to(&(i as u32).to_be_bytes(), target)
            .expect("sending a datagram");
    }
    count_received(receiver)
}

fn echo(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream
        .write_all(b"ping")
        .expect("sending to the echo server");
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).expect("reading the echo");
    assert_eq!(&reply, b"ping");
    started.elapsed()
}

#[test]
fn round_trip_is_twice_the_delay() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = start(LinkSpec::default().delay(50 * MS));
    let address = echo_server(&link);

    let started = Instant::now();
    let mut stream = connect_from_edge(&link, address);
    let connect = started.elapsed();
    stream.set_nodelay(true).expect("nodelay");
    let mut echoes: Vec<Duration> = (0..5).map(|_| echo(&mut stream)).collect();
    echoes.sort();

    eprintln!("connect {connect:?}, echoes {echoes:?}");
    let expected = 95 * MS..150 * MS;
    assert!(expected.contains(&connect), "connect took {connect:?}");
    assert!(expected.contains(&echoes[2]), "echo round trips {echoes:?}");
    assert!(echoes[0] >= 100 * MS, "an echo beat the delay: {echoes:?}");
}

#[test]
fn rate_limit_sets_the_throughput() {
    if !need::require(Need::NetNs) {
        return;
    }
    const RATE: u64 = 8_000_000;
    const PAYLOAD: usize = 2_000_000;
    let link = start(LinkSpec::default().delay(10 * MS).rate_bps(RATE));
    let listener = link
        .run_in(Side::Origin, || TcpListener::bind((link.origin_ip(), 0)))
        .expect("entering the origin namespace")
        .expect("binding");
    let address = listener.local_addr().expect("address");
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accepting");
        stream
            .write_all(&vec![7u8; PAYLOAD])
            .expect("sending the payload");
    });

    let mut stream = connect_from_edge(&link, address);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = read(&mut stream, &mut buffer).expect("first bytes");
    let first_byte = Instant::now();
    let carried_before = link.stats().down.bytes_carried;
    while received < PAYLOAD {
        match read(&mut stream, &mut buffer).expect("reading the payload") {
            0 => break,
            len => received += len,
        }
    }
    let elapsed = first_byte.elapsed().as_secs_f64();
    let carried = link.stats().down.bytes_carried - carried_before;
    server.join().expect("server thread");

    assert_eq!(received, PAYLOAD);
    let goodput = (PAYLOAD as f64 * 8.0) / elapsed;
    let wire_rate = (carried as f64 * 8.0) / elapsed;
    eprintln!(
        "goodput {goodput:.0} bit/s, IP rate {wire_rate:.0} bit/s, {:?}",
        link.stats().down
    );
    // The limiter counts IP bytes; TCP/IP headers take 3.5 % of a 1500-byte packet.
    let rate = RATE as f64;
    assert!(
        (rate * 0.9..rate * 1.1).contains(&wire_rate),
        "IP rate {wire_rate:.0} bit/s"
    );
    assert!(
        (rate * 0.85..rate).contains(&goodput),
        "goodput {goodput:.0} bit/s"
    );
}

#[test]
fn random_loss_drops_its_share_of_datagrams() {
    if !need::require(Need::NetNs) {
        return;
    }
    const SENT: usize = 2000;
    let mut spec = LinkSpec::default().seed(11);
    spec.up.loss = 0.10;
    let link = start(spec);
    let sender = udp_socket(&link, Side::Edge);
    let receiver = udp_socket(&link, Side::Origin);
    let target = receiver.local_addr().expect("receiver address");

    let counting = thread::spawn(move || count_received(&receiver));
    for i in 0..SENT {
        sender
            .send_to(&(i as u32).to_be_bytes(), target)
            .expect("sending a datagram");
        // Paced, so no socket buffer drops what the link let through.
        thread::sleep(Duration::from_micros(100));
    }
    let received = counting.join().expect("receiver thread");

    let stats = link.stats();
    let lost = SENT - received;
    assert_eq!(stats.up.packets_offered, SENT as u64);
    assert_eq!(
        stats.up.dropped_loss, lost as u64,
        "counter and receiver agree"
    );
    assert_eq!(stats.up.packets_carried, received as u64);
    let share = lost as f64 / SENT as f64;
    eprintln!("lost {lost} of {SENT}");
    assert!(
        (0.07..=0.13).contains(&share),
        "lost {share:.3} of datagrams"
    );
    assert_eq!(stats.down.dropped_loss, 0);
}

#[test]
fn blocked_udp_leaves_tcp_working() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = start(LinkSpec::default().delay(5 * MS).drop_udp(true));
    let sender = udp_socket(&link, Side::Edge);
    let receiver = udp_socket(&link, Side::Origin);

    assert_eq!(udp_round(&sender, &receiver, 20), 0);
    assert_eq!(link.stats().up.dropped_udp, 20);
    let mut stream = connect_from_edge(&link, echo_server(&link));
    echo(&mut stream);

    link.set_udp_blocked(false);
    assert_eq!(udp_round(&sender, &receiver, 20), 20);
    assert_eq!(link.stats().up.dropped_udp, 20);
}

#[test]
fn cut_stops_traffic_and_restoring_resumes_it() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = start(LinkSpec::default().delay(5 * MS));
    let sender = udp_socket(&link, Side::Edge);
    let receiver = udp_socket(&link, Side::Origin);
    let mut stream = connect_from_edge(&link, echo_server(&link));
    assert_eq!(udp_round(&sender, &receiver, 10), 10);

    link.set_cut(true);
    assert!(link.stats().cut);
    assert_eq!(udp_round(&sender, &receiver, 10), 0);
    assert!(link.stats().up.dropped_outage >= 10);
    stream.write_all(b"ping").expect("sending into the cut");
    stream.set_read_timeout(Some(500 * MS)).expect("timeout");
    let mut reply = [0u8; 4];
    let err = stream
        .read_exact(&mut reply)
        .expect_err("nothing crosses a cut link");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );

    link.set_cut(false);
    assert_eq!(udp_round(&sender, &receiver, 10), 10);
    // TCP retransmits the ping once the link is back.
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .read_exact(&mut reply)
        .expect("the echo after the cut");
    assert_eq!(&reply, b"ping");
}

#[test]
fn outage_schedule_cuts_on_time() {
    if !need::require(Need::NetNs) {
        return;
    }
    let outages = Outages {
        every: 400 * MS,
        length: 200 * MS,
    };
    let link = start(LinkSpec::default().outages(outages.every, outages.length));
    let sender = udp_socket(&link, Side::Edge);
    let receiver = udp_socket(&link, Side::Origin);
    let target = receiver.local_addr().expect("receiver address");
    let counting = thread::spawn(move || count_received(&receiver));

    // One datagram every 10 ms for 1.3 s, noting when the schedule has the link cut.
    let since_start = Duration::from_secs_f64(link.stats().elapsed_s);
    let begun = Instant::now();
    let mut expected_cut = 0;
    for i in 0..130u32 {
        thread::sleep((begun + i * 10 * MS).saturating_duration_since(Instant::now()));
        if outages.is_cut(since_start + begun.elapsed()) {
            expected_cut += 1;
        }
        sender.send_to(&i.to_be_bytes(), target).expect("sending");
    }
    let received = counting.join().expect("receiver thread");

    let dropped = link.stats().up.dropped_outage;
    eprintln!("dropped {dropped}, expected {expected_cut}");
    assert_eq!(received as u64 + dropped, 130);
    assert!(
        dropped.abs_diff(expected_cut) <= 4,
        "dropped {dropped}, the schedule says about {expected_cut}"
    );
}

#[test]
fn namespaces_hold_the_link_addresses() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = start(LinkSpec::default());
    let output = link
        .command_in(Side::Edge, "ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("running ip in the edge namespace");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let peer = format!("{} peer {}", link.edge_ip(), link.origin_ip());
    assert!(text.contains(&peer), "{text}");
    assert!(text.contains("127.0.0.1"), "lo is up: {text}");
    assert!(link.origin_ns().ends_with("-o") && link.edge_ns().ends_with("-e"));
    let pid = std::process::id().to_string();
    assert!(link.origin_ns().contains(&pid));
}

fn listed_namespaces() -> String {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running ip netns list");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn dropping_the_link_deletes_its_namespaces() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = start(LinkSpec::default());
    let names = [link.origin_ns().to_owned(), link.edge_ns().to_owned()];
    assert!(
        names
            .iter()
            .all(|name| listed_namespaces().contains(name.as_str()))
    );
    drop(link);
    let listed = listed_namespaces();
    for name in &names {
        assert!(
            !listed.contains(name.as_str()),
            "{name} left behind: {listed}"
        );
    }
}

#[test]
fn lifetime_runs_out_and_cleans_up() {
    if !need::require(Need::NetNs) {
        return;
    }
    let link = Link::start(LinkSpec::default(), 200 * MS).expect("starting a link");
    let names = [link.origin_ns().to_owned(), link.edge_ns().to_owned()];
    let started = Instant::now();
    while link.is_running() && started.elapsed() < Duration::from_secs(5) {
        thread::sleep(20 * MS);
    }
    assert!(!link.is_running(), "still running after its lifetime");
    assert!(names.iter().all(|name| !linksim::namespace_exists(name)));
}

#[test]
fn namespaces_of_dead_processes_are_removed_at_start() {
    if !need::require(Need::NetNs) {
        return;
    }
    let mut child = Command::new("true").spawn().expect("spawning true");
    let dead_pid = child.id();
    child.wait().expect("waiting for true");
    let stale = format!("shl-{dead_pid}-0-o");
    let status = Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("running ip netns add");
    assert!(status.success());

    let _link = start(LinkSpec::default());
    assert!(!linksim::namespace_exists(&stale), "{stale} survived");
}

#[test]
fn link_can_be_shared_across_threads_and_tasks() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Link>();
}
