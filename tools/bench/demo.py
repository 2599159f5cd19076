#!/usr/bin/env python3
"""Time from starting `shanlu demo` (already built) to its classroom answering,
and the demo's peak memory. Loopback only.

Usage: python3 tools/bench/demo.py [RUNS] [--cargo]
  RUNS     runs of each case (default 5); needs target/release/shanlu built
  --cargo  start it as the README says, `cargo run --release -- demo`, so
           cargo's own up-to-date check is included in the time

Each run starts `shanlu demo --port 0` on a fresh --data folder (the first-time
case: origin init, publishing both sample courses, a QUIC sync), then once more
on the same folder (the restart case: nothing new to publish or fetch). The
clock stops when GET / of the printed classroom URL answers 200. Peak memory is
the demo process's VmHWM read just before it is stopped with Ctrl-C (origin,
edge and classroom all live in that one process). Prints medians.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "shanlu")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def shanlu_pid(pid):
    """The shanlu process: `pid` itself, or its child when started by cargo."""
    with open(f"/proc/{pid}/comm") as comm:
        if comm.read().strip() == "shanlu":
            return pid
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return int(children.read().split()[0])


def one_run(data, cargo):
    command = ["cargo", "run", "--release", "-q", "--"] if cargo else [BIN]
    started = time.monotonic()
    demo = subprocess.Popen(
        command + ["demo", "--data", data, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = None
        deadline = started + 120
        while url is None:
            line = demo.stdout.readline()
            if not line:
                raise RuntimeError("the demo exited before printing its classroom URL")
            if line.startswith("Classroom: "):
                url = line.split(" ", 1)[1].strip()
            if time.monotonic() > deadline:
                raise RuntimeError("no classroom URL within 120 s")
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the classroom did not answer within 120 s")
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        pid = shanlu_pid(demo.pid)
        peak = vm_hwm_kib(pid)
    finally:
        demo.send_signal(signal.SIGINT)
        if cargo:
            try:
                os.kill(shanlu_pid(demo.pid), signal.SIGINT)
            except (OSError, IndexError, ValueError):
                pass
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    return elapsed, peak


def main():
    cargo = "--cargo" in sys.argv[1:]
    numbers = [a for a in sys.argv[1:] if a != "--cargo"]
    runs = int(numbers[0]) if numbers else 5
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} is missing: run `cargo build --release -p tools --bin shanlu` first")
    first, again = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="shanlu-demo-bench.") as scratch:
            data = os.path.join(scratch, "demo")
            first.append(one_run(data, cargo))
            again.append(one_run(data, cargo))
    commit = subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    how = "`cargo run --release -- demo`" if cargo else "target/release/shanlu demo"
    print(f"{how} start-up, {runs} runs each, commit {commit}, {os.cpu_count()} CPUs\n")
    print("| case | to classroom answering (median, min–max) | peak RSS (median) |")
    print("|---|---:|---:|")
    for name, results in (("first run (fresh --data)", first), ("restart (same --data)", again)):
        times = [t for t, _ in results]
        peaks = [p for _, p in results]
        print(
            f"| {name} | {statistics.median(times):.2f} s ({min(times):.2f}–{max(times):.2f}) "
            f"| {statistics.median(peaks) / 1024:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
