#!/usr/bin/env python3
"""Markdown report for tools/bench/serve.sh.

Reads the environment serve.sh exports: RESULTS (one line per timed wrk run:
repeat, connections, server, server CPU seconds, then range.lua's key=value line),
NOTES (key <TAB> value facts) and the machine / version strings. Prints to stdout.
"""

import os
import statistics
from collections import defaultdict

E = os.environ
MiB = 1048576


def kv_line(text):
    out = {}
    for pair in text.split():
        k, _, v = pair.partition("=")
        out[k] = float(v)
    return out


runs = defaultdict(list)  # (conns, server) -> [dict]
for line in open(E["RESULTS"], encoding="utf-8"):
    rep, conns, server, cpu, kv = line.rstrip("\n").split("\t")
    r = kv_line(kv)
    secs = r["duration_us"] / 1e6
    runs[(int(conns), server)].append({
        "rep": int(rep),
        "rps": r["requests"] / secs,
        "mibps": r["bytes"] / MiB / secs,
        "p50": r["lat_p50"] / 1000.0,
        "p99": r["lat_p99"] / 1000.0,
        "cpu_per_gib": float(cpu) / (r["bytes"] / 2**30) if r["bytes"] else float("nan"),
        "requests": int(r["requests"]),
    })

notes = {}
for line in open(E["NOTES"], encoding="utf-8"):
    k, _, v = line.rstrip("\n").partition("\t")
    notes[k] = v


def med(conns, server, key):
    return statistics.median(x[key] for x in runs[(conns, server)])


def mib(kb_text):
    try:
        return f"{int(kb_text) / 1024:.1f} MiB"
    except (TypeError, ValueError):
        return "n/a"


conn_values = sorted({c for c, _ in runs})
file_bytes = int(E["FILE_BYTES"])
range_bytes = int(E["RANGE_BYTES"])
align = int(E["ALIGN"])

print("# shanlu classroom serving benchmark (edge run vs nginx)\n")
print(f"Command: `{E['CMDLINE']}`\n")
print("## Machine\n")
print(f"- CPUs (nproc): {E['M_NPROC']}; CPU model: {E['M_CPU']}")
print(f"- Kernel: {E['M_KERNEL']}; OS: {E['M_OS']}; memory: {E['M_MEM']}")
print(f"- Load average at the end (1/5/15 min): {E['M_LOAD']}")
print(f"- git commit: {E['V_GIT']}")
print(f"- {E['V_SHANLU']}; {E['V_NGINX']} ({E['NGINX_WORKERS']} workers); {E['V_WRK']}")
print()
print("## Setup\n")
print(f"- File: video.mp4, {file_bytes / MiB:.0f} MiB ({file_bytes} bytes) of "
      f"{notes.get('gen', '?')}; `shanlu publish` {notes.get('publish_secs', '?')}s, "
      f"`shanlu edge sync` {notes.get('sync_secs', '?')}s")
print(f"- Edge URL: `{notes.get('edge_path', '?')}` (the JSON API lists `{notes.get('api_url', '?')}`); "
      "nginx URL: `/video.mp4` (a copy of the same bytes)")
al = "any byte offset" if align == 1 else f"a multiple of {align} bytes"
print(f"- Each request: `Range: bytes=a-(a+{range_bytes}-1)`, a uniform at random "
      f"({al}), the same seeded sequence for both servers")
print(f"- wrk: {E['THREADS']} threads, {E['DURATION']} per run, {E['REPEATS']} repeat(s) of each "
      "(connections, server), edge and nginx back to back, order swapped every repeat; "
      "every run had 0 socket errors, 0 timeouts and 0 statuses outside 200-399; curl "
      "checked 206 + Content-Range + bytes at 4 offsets and a full GET on both servers")
for server in ("edge", "nginx"):
    h = notes.get(f"headers|{server}")
    if h:
        print(f"- {server} answer headers (last check, 1-byte range): `{h}`")
print()
print(f"## Results (median of {E['REPEATS']})\n")
print("MiB/s = bytes wrk read (headers included) per second, 1 MiB = 2^20 bytes; those bytes "
      "include the answers still in flight when a run stops (up to one per connection), "
      "which req/s does not count, so at high latency MiB/s exceeds req/s x the range size. "
      "Latency from wrk's histogram. Server CPU = CPU seconds the server process(es) "
      "used during the run per GiB sent (nginx: master + workers). wrk runs on the same "
      "cores as the server.\n")
print("| connections | server | req/s | MiB/s | p50 ms | p99 ms | server CPU s/GiB | MiB/s per run |")
print("|---:|---|---:|---:|---:|---:|---:|---|")
for c in conn_values:
    for server in ("edge", "nginx"):
        if (c, server) not in runs:
            continue
        per_run = ", ".join(f"{x['mibps']:.0f}" for x in sorted(runs[(c, server)], key=lambda x: x["rep"]))
        print(f"| {c} | {server} | {med(c, server, 'rps'):.0f} | {med(c, server, 'mibps'):.0f} | "
              f"{med(c, server, 'p50'):.1f} | {med(c, server, 'p99'):.1f} | "
              f"{med(c, server, 'cpu_per_gib'):.2f} | {per_run} |")
print()
print("## edge / nginx\n")
print("Throughput ratio > 1: the edge moved more bytes; latency ratio > 1: the edge was slower.\n")
print("| connections | MiB/s edge/nginx | p50 edge/nginx | p99 edge/nginx | CPU per GiB edge/nginx |")
print("|---:|---:|---:|---:|---:|")


def ratio(c, key):
    if (c, "edge") not in runs or (c, "nginx") not in runs:
        return "n/a"
    b = med(c, "nginx", key)
    return f"{med(c, 'edge', key) / b:.2f}" if b > 0 else "n/a"


for c in conn_values:
    print(f"| {c} | {ratio(c, 'mibps')} | {ratio(c, 'p50')} | {ratio(c, 'p99')} | {ratio(c, 'cpu_per_gib')} |")
print()
print("## Edge memory (`shanlu edge run`)\n")
print(f"- **Peak RSS during the {E['MAX_CONNS']}-connection runs: {mib(notes.get('rss_peak_kb'))}** "
      f"(VmRSS sampled every 50 ms, {notes.get('rss_samples', '?')} samples)")
print(f"- VmHWM (lifetime peak, start-up sync included): {mib(notes.get('hwm_before_kb'))} after the "
      f"warm-up, {mib(notes.get('hwm_end_kb'))} at the end")
print(f"- RSS after the warm-up: {mib(notes.get('rss_idle_kb'))}; at the end: {mib(notes.get('rss_end_kb'))}")
if notes.get("edge_log"):
    print(f"- edge log warnings/errors: `{notes['edge_log']}`")
