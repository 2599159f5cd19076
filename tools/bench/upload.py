#!/usr/bin/env python3
"""Teacher upload benchmark for shanlu (issue 17), on loopback only.

A teacher's upload to `shanlu edge run` (the /teach page's protocol: tus,
one PATCH per 8 MiB piece over one kept-alive connection, as the page's
script sends them) against `curl -T` of the same file to nginx (one PUT,
nginx's dav module writing it to disk). Also: the same file to the edge in
one PATCH by curl, and the time to make a lesson of an upload (the store
chunks and hashes it). The edge's memory is sampled every 50 ms.

Usage:
    python3 tools/bench/upload.py
    SIZE_MB=100 REPEATS=1 python3 tools/bench/upload.py     # a quick smoke run

Environment (defaults in brackets):
    SIZE_MB      size of the uploaded file in MiB [1024]
    REPEATS      timed repetitions of each upload; medians are reported [3]
    PIECE_MB     bytes per PATCH of the page-like client [8]
    WORKDIR      parent of the scratch folder [/var/tmp]
    SHANLU_BIN   a shanlu binary (else `cargo build --release -p tools` is run)

Needs nginx and curl (Debian: apt-get install nginx curl).
"""

import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

LOOP = "127.0.0.1"
SIZE_MB = int(os.environ.get("SIZE_MB", "1024"))
REPEATS = int(os.environ.get("REPEATS", "3"))
PIECE = int(os.environ.get("PIECE_MB", "8")) << 20
WORKDIR = os.environ.get("WORKDIR", "/var/tmp")
PASSWORD = "bench-teacher-password"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(message):
    print(f"[upload-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(*args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=3600, **kwargs)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


def field(text, name):
    match = re.search(rf"^{re.escape(name)}:\s*(\S+)", text, re.M)
    if not match:
        sys.exit(f"no '{name}:' line in:\n{text}")
    return match.group(1)


def wait_line(path, pattern, proc, what):
    for _ in range(600):
        with open(path, encoding="utf-8", errors="replace") as f:
            match = re.search(pattern, f.read(), re.M)
        if match:
            return match.group(1)
        if proc.poll() is not None:
            sys.exit(f"{what} exited early")
        time.sleep(0.1)
    sys.exit(f"{what} printed no line matching {pattern!r} within 60 s")


class Sampler:
    """The largest resident set of a process while it runs (VmRSS, every 50 ms)."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main():
    for tool in ("nginx", "curl"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} not found: apt-get install {tool}")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    shanlu = os.environ.get("SHANLU_BIN")
    if not shanlu:
        log("building: cargo build --release -p tools")
        run("cargo", "build", "--release", "-p", "tools", cwd=REPO)
        shanlu = os.path.join(REPO, "target", "release", "shanlu")
    wd = tempfile.mkdtemp(prefix="shanlu-upload-bench.", dir=WORKDIR)
    procs = []
    try:
        bench(shanlu, nginx, wd, procs)
    except BaseException:
        for name in ("edge.err", "origin.err"):
            try:
                with open(os.path.join(wd, name), errors="replace") as f:
                    log(f"{name}:\n{f.read()[-3000:]}")
            except OSError:
                pass
        raise
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(wd, ignore_errors=True)


def bench(shanlu, nginx, wd, procs):
    origin, edge = os.path.join(wd, "origin"), os.path.join(wd, "edge")
    course = os.path.join(wd, "course")
    os.makedirs(os.path.join(course, "01-hello"))
    with open(os.path.join(course, "course.toml"), "w") as f:
        f.write('id = "bench-upload"\n[title]\nen = "A course"\n')
    with open(os.path.join(course, "01-hello", "index.html"), "w") as f:
        f.write("<p>hello</p>\n")
    out = run(shanlu, "origin", "init", "--data", origin)
    key, cert = field(out, "origin key"), field(out, "origin certificate")
    run(shanlu, "publish", course, "--data", origin)
    token = field(run(shanlu, "origin", "add-edge", "--data", origin, "--name", "bench"), "edge token")
    serve_out = os.path.join(wd, "origin.out")
    with open(serve_out, "w") as out_f, open(os.path.join(wd, "origin.err"), "w") as err_f:
        procs.append(subprocess.Popen(
            [shanlu, "origin", "serve", "--data", origin, "--quic", f"{LOOP}:0", "--http", f"{LOOP}:0",
             "--https", f"{LOOP}:0"],
            stdout=out_f, stderr=err_f))
    quic = wait_line(serve_out, r"^quic:\s*(\S+)", procs[-1], "origin serve")
    run(shanlu, "edge", "init", "--data", edge, "--origin", f"quic://{quic}", "--origin-key", key,
        "--origin-cert", cert, "--token", token, "--subscribe", "all")
    run(shanlu, "edge", "sync", "--data", edge)
    run(shanlu, "edge", "teachers", "set-password", "--data", edge, input=PASSWORD + "\n")
    run(shanlu, "edge", "teachers", "set-max-upload", "--data", edge, "--mib", str(SIZE_MB + 64))
    edge_out = os.path.join(wd, "edge.out")
    with open(edge_out, "w") as out_f, open(os.path.join(wd, "edge.err"), "w") as err_f:
        edge_proc = subprocess.Popen(
            [shanlu, "edge", "run", "--data", edge, "--listen", f"{LOOP}:0", "--interval", "3600"],
            stdout=out_f, stderr=err_f)
    procs.append(edge_proc)
    base = wait_line(edge_out, r"^classroom:\s*(\S+)", edge_proc, "edge run")
    edge_port = int(urllib.parse.urlparse(base).port)

    # nginx taking PUTs into its own folder.
    root = os.path.join(wd, "nginx-root")
    os.makedirs(os.path.join(root, "up"))
    os.makedirs(os.path.join(wd, "nginx-tmp"))
    # nginx's worker (nobody, when started as root) writes the uploads.
    os.chmod(wd, 0o755)
    for folder in (root, os.path.join(root, "up"), os.path.join(wd, "nginx-tmp")):
        os.chmod(folder, 0o777)
    conf = os.path.join(wd, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {wd}/nginx.pid; error_log {wd}/nginx.err;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {wd}/nginx-tmp; client_max_body_size 0;
  server {{ listen {LOOP}:0; root {root};
    location /up/ {{ dav_methods PUT; create_full_put_path on; }} }} }}
""")
    # Port 0 is not for nginx: pick a free one.
    import socket
    with socket.socket() as s:
        s.bind((LOOP, 0))
        nginx_port = s.getsockname()[1]
    with open(conf) as f:
        text = f.read().replace(f"listen {LOOP}:0", f"listen {LOOP}:{nginx_port}")
    with open(conf, "w") as f:
        f.write(text)
    procs.append(subprocess.Popen([nginx, "-c", conf, "-p", wd], stderr=subprocess.DEVNULL))
    time.sleep(0.5)

    # The file: an MP4's first bytes, then random ones.
    path = os.path.join(wd, "lesson.mp4")
    size = SIZE_MB << 20
    with open(path, "wb") as f:
        head = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2mp41"
        f.write(head)
        left = size - len(head)
        while left > 0:
            n = min(left, 16 << 20)
            f.write(os.urandom(n))
            left -= n
    log(f"file: {size} bytes; edge {base}, nginx :{nginx_port}")

    # Log in as the page does.
    conn = http.client.HTTPConnection(LOOP, edge_port, timeout=600)
    conn.request("POST", "/teach/login", urllib.parse.urlencode({"name": "bench", "password": PASSWORD}),
                 {"Content-Type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    answer.read()
    if answer.status != 303:
        sys.exit(f"login refused: {answer.status}")
    cookie = answer.getheader("Set-Cookie").split(";")[0]
    log("logged in")
    conn.request("GET", "/teach", headers={"Cookie": cookie})
    page = conn.getresponse().read().decode()
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)
    conn.close()
    log("got the form token")
    import base64
    name = base64.b64encode(b"lesson.mp4").decode()

    def create(c):
        c.request("POST", "/teach/uploads", headers={
            "Cookie": cookie, "X-Shanlu-Csrf": csrf, "Tus-Resumable": "1.0.0",
            "Upload-Length": str(size), "Upload-Metadata": f"filename {name}"})
        r = c.getresponse()
        r.read()
        assert r.status == 201, r.status
        return r.getheader("Location")

    def page_like():
        """tus, PIECE bytes per PATCH on one connection, as /teach's script."""
        c = http.client.HTTPConnection(LOOP, edge_port, timeout=600)
        location = create(c)
        offset = 0
        with open(path, "rb") as f:
            while offset < size:
                piece = f.read(PIECE)
                assert piece, f"the file ended at {offset} of {size}"
                c.request("PATCH", location, body=piece, headers={
                    "Cookie": cookie, "X-Shanlu-Csrf": csrf, "Tus-Resumable": "1.0.0",
                    "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
                r = c.getresponse()
                r.read()
                assert r.status == 204, (r.status, offset)
                offset = int(r.getheader("Upload-Offset"))
        c.close()
        return location

    def one_patch():
        """The whole file in one PATCH, by curl."""
        c = http.client.HTTPConnection(LOOP, edge_port, timeout=600)
        location = create(c)
        c.close()
        subprocess.run(["curl", "-sS", "-f", "-X", "PATCH", "-T", path, "-o", "/dev/null",
                        "-H", f"Cookie: {cookie}", "-H", f"X-Shanlu-Csrf: {csrf}",
                        "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                        "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
                        f"http://{LOOP}:{edge_port}{location}"], check=True)
        return location

    def nginx_put(n):
        subprocess.run(["curl", "-sS", "-f", "-T", path, "-o", "/dev/null", "-H", "Expect:",
                        f"http://{LOOP}:{nginx_port}/up/lesson-{n}.mp4"], check=True)
        os.remove(os.path.join(root, "up", f"lesson-{n}.mp4"))

    def forget(location):
        c = http.client.HTTPConnection(LOOP, edge_port, timeout=60)
        c.request("DELETE", location, headers={"Cookie": cookie, "X-Shanlu-Csrf": csrf, "Tus-Resumable": "1.0.0"})
        c.getresponse().read()
        c.close()

    times = {"edge, page-like tus": [], "edge, one PATCH (curl)": [], "nginx, curl -T": []}
    peak = 0
    kept = None
    for n in range(REPEATS):
        order = ["nginx", "page", "patch"] if n % 2 else ["page", "patch", "nginx"]
        for which in order:
            # Each upload starts with no dirty pages of the one before
            # waiting to be written back (they would slow whichever ran next).
            os.sync()
            t0 = time.monotonic()
            if which == "nginx":
                nginx_put(n)
                times["nginx, curl -T"].append(time.monotonic() - t0)
                continue
            with Sampler(edge_proc.pid) as sampler:
                location = page_like() if which == "page" else one_patch()
                elapsed = time.monotonic() - t0
            peak = max(peak, sampler.peak)
            times["edge, page-like tus" if which == "page" else "edge, one PATCH (curl)"].append(elapsed)
            if kept is None and which == "page":
                kept = location
            else:
                forget(location)
            log(f"{which}: {elapsed:.2f} s")
        log(f"nginx: {times['nginx, curl -T'][-1]:.2f} s")

    # Make a lesson of one upload: the store reads, chunks and hashes it.
    with Sampler(edge_proc.pid) as sampler:
        t0 = time.monotonic()
        c = http.client.HTTPConnection(LOOP, edge_port, timeout=3600)
        c.request("POST", "/teach/lessons", urllib.parse.urlencode({
            "csrf": csrf, "title": "bench", "lang": "en", "uploads": kept.rsplit("/", 1)[1]}),
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        r = c.getresponse()
        r.read()
        assert r.status == 303, r.status
        lesson_secs = time.monotonic() - t0
    finalize_peak = sampler.peak

    mib = size / (1 << 20)
    nginx_median = statistics.median(times["nginx, curl -T"])
    print(f"## Teacher upload: {SIZE_MB} MiB, medians of {REPEATS}\n")
    print("| client → server | median s | MiB/s | vs nginx |")
    print("|---|---|---|---|")
    for what, values in times.items():
        median = statistics.median(values)
        print(f"| {what} | {median:.2f} | {mib / median:.0f} | {nginx_median / median:.2f}× |")
    print(f"\nEdge peak RSS during the uploads: {peak / (1 << 20):.1f} MiB; "
          f"while making the lesson ({lesson_secs:.1f} s, {mib / lesson_secs:.0f} MiB/s): "
          f"{finalize_peak / (1 << 20):.1f} MiB.")
    print(f"\nCommand: SIZE_MB={SIZE_MB} REPEATS={REPEATS} PIECE_MB={PIECE >> 20} python3 tools/bench/upload.py")


if __name__ == "__main__":
    main()
