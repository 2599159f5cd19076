#!/usr/bin/env python3
"""UDP byte counting helpers for tools/bench/sync.sh (loopback only, stdlib only).

  udpcount.py relay --listen PORT --upstream PORT --stats FILE
      A counting UDP relay on 127.0.0.1:PORT. Every client address that sends to it
      gets its own upstream socket towards 127.0.0.1:UPSTREAM (so the upstream sees
      one peer per client, as without the relay). Counts UDP payload bytes and
      datagrams both ways. On SIGUSR1 it writes its counters as JSON to FILE
      (atomically, with an increasing "seq"); on SIGTERM/SIGINT it writes them and
      exits. Sends are blocking, so the relay itself never drops a datagram that it
      has read; it can only lose datagrams that overflow its receive buffers when it
      is too slow (watch /proc/net/snmp Udp RcvbufErrors).

  udpcount.py echo-test --target PORT --server-port PORT [--count N] [--size S]
      Self-test for a counter: runs a UDP echo server on 127.0.0.1:SERVER_PORT and
      sends N datagrams of S payload bytes to 127.0.0.1:TARGET (the server itself when
      counting with nftables, or a relay in front of it), waiting for every echo.
      Prints "sent_payload echoed_payload datagrams" on stdout.

  udpcount.py free-port [tcp|udp]
      Prints a currently free port on 127.0.0.1.

Only 127.0.0.1 is ever bound or sent to.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
BUF = 4 << 20


def big_buffers(s: socket.socket) -> None:
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, BUF)
        except OSError:
            pass


def relay(listen: int, upstream: int, stats: str) -> int:
    sel = selectors.DefaultSelector()
    front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(front)
    front.bind((HOST, listen))
    sel.register(front, selectors.EVENT_READ, None)
    by_client: dict[tuple, socket.socket] = {}
    c = {"to_upstream_bytes": 0, "to_upstream_datagrams": 0,
         "from_upstream_bytes": 0, "from_upstream_datagrams": 0,
         "clients": 0, "seq": 0, "listen": listen, "upstream": upstream}
    flags = {"dump": False, "stop": False}

    def dump() -> None:
        c["seq"] += 1
        tmp = stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(c, f)
        os.replace(tmp, stats)

    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("dump", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    signal.signal(signal.SIGINT, lambda *_: flags.__setitem__("stop", True))
    dump()  # seq 1: ready
    dontwait = socket.MSG_DONTWAIT
    while not flags["stop"]:
        if flags["dump"]:
            flags["dump"] = False
            dump()
        try:
            events = sel.select(timeout=0.05)
        except InterruptedError:
            continue
        for key, _ in events:
            s = key.fileobj
            if key.data is None:  # from a client (the edge)
                while True:
                    try:
                        data, addr = s.recvfrom(65536, dontwait)
                    except (BlockingIOError, InterruptedError):
                        break
                    up = by_client.get(addr)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        big_buffers(up)
                        up.bind((HOST, 0))
                        up.connect((HOST, upstream))
                        by_client[addr] = up
                        sel.register(up, selectors.EVENT_READ, addr)
                        c["clients"] += 1
                    c["to_upstream_bytes"] += len(data)
                    c["to_upstream_datagrams"] += 1
                    try:
                        up.send(data)
                    except ConnectionRefusedError:
                        pass  # upstream not listening (yet): like a lost datagram
            else:  # from the upstream (the origin), back to its client
                while True:
                    try:
                        data = s.recv(65536, dontwait)
                    except (BlockingIOError, InterruptedError):
                        break
                    except ConnectionRefusedError:
                        continue
                    c["from_upstream_bytes"] += len(data)
                    c["from_upstream_datagrams"] += 1
                    front.sendto(data, key.data)
    dump()
    return 0


def echo_test(target: int, server_port: int, count: int, size: int) -> int:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(srv)
    srv.bind((HOST, server_port))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = srv.recvfrom(65536)
            except socket.timeout:
                continue
            srv.sendto(data, addr)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(cli)
    cli.bind((HOST, 0))
    cli.settimeout(2.0)
    sent = echoed = 0
    payload = bytes(range(256)) * (size // 256 + 1)
    for i in range(count):
        msg = i.to_bytes(4, "big") + payload[: size - 4]
        cli.sendto(msg, (HOST, target))
        sent += len(msg)
        try:
            data, _ = cli.recvfrom(65536)
        except socket.timeout:
            print(f"echo-test: no echo for datagram {i}", file=sys.stderr)
            break
        echoed += len(data)
    stop.set()
    th.join()
    print(sent, echoed, count)
    return 0 if sent == echoed == count * size else 1


def free_port(kind: str) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    print(port)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--listen", type=int, required=True)
    r.add_argument("--upstream", type=int, required=True)
    r.add_argument("--stats", required=True)
    e = sub.add_parser("echo-test")
    e.add_argument("--target", type=int, required=True)
    e.add_argument("--server-port", type=int, required=True)
    e.add_argument("--count", type=int, default=200)
    e.add_argument("--size", type=int, default=1200)
    f = sub.add_parser("free-port")
    f.add_argument("kind", nargs="?", default="tcp", choices=("tcp", "udp"))
    a = ap.parse_args()
    if a.cmd == "relay":
        return relay(a.listen, a.upstream, a.stats)
    if a.cmd == "echo-test":
        return echo_test(a.target, a.server_port, a.count, a.size)
    return free_port(a.kind)


if __name__ == "__main__":
    sys.exit(main())
