#!/usr/bin/env python3
"""Markdown report for tools/bench/sync.sh (reads the files and environment it sets up)."""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
from collections import defaultdict

E = os.environ
SKIP = E.get("SKIP_SHANLU") == "1"
UDP_IPV4_HEADERS = 28  # IPv4 (no options) + UDP header, per counted packet / GSO super-packet

# ---------------------------------------------------------------- inputs
notes: dict[str, str] = {}
for line in open(E["NOTES"]):
    k, _, v = line.rstrip("\n").partition("\t")
    notes[k] = v

rows = []  # dicts, one per timed command
for line in open(E["RESULTS"]):
    f = line.rstrip("\n").split("\t")
    part, name, run, wall, wsync, gw, us, sy, rss, srv, out = f
    rows.append({
        "part": part, "name": name, "run": int(run), "wall": float(wall),
        "wsync": float(wsync), "user": float(us), "sys": float(sy), "cpu": float(us) + float(sy),
        "rss_mib": int(rss) / 1024, "srv": float(srv) if srv else None, "out": out,
    })

snaps: dict[str, dict[str, tuple[str, int, int]]] = defaultdict(dict)
for line in open(E["COUNTS"]):
    label, name, kind, pk, by = line.rstrip("\n").split("\t")
    snaps[label][name] = (kind, int(pk), int(by))


def delta(label: str, name: str, payload: bool = False) -> int | None:
    """Counter NAME's increase between LABEL|pre and LABEL|post (None if not counted).
    payload=True: UDP payload bytes (nft counts whole IPv4 packets)."""
    a, b = snaps.get(label + "|pre", {}).get(name), snaps.get(label + "|post", {}).get(name)
    if a is None or b is None:
        return None
    kind, dp, db = a[0], b[1] - a[1], b[2] - a[2]
    if not payload and kind == "relay":
        return None  # the relay sees UDP payloads only, no IP packets
    if payload and kind == "nft":
        return db - UDP_IPV4_HEADERS * dp
    if kind == "snmp":
        return dp
    return db


def pair(label: str, prefix: str, payload: bool = False) -> tuple[int, int] | None:
    to, fr = delta(label, prefix + "_to", payload), delta(label, prefix + "_from", payload)
    if to is None or fr is None:
        return None
    return to, fr


def label_of(r: dict) -> str:
    return f"{r['part']}|{r['name']}|{r['run']}"


def shanlu_json(path: str) -> dict:
    try:
        text = open(path).read()
    except OSError:
        return {}
    try:
        v = json.loads(text)
        return v if isinstance(v, dict) else {}
    except ValueError:
        pass
    for line in reversed(text.splitlines()):  # last JSON object line
        try:
            v = json.loads(line)
            if isinstance(v, dict):
                return v
        except ValueError:
            continue
    return {}


def rsync_stats(path: str) -> dict[str, int]:
    out = {}
    for line in open(path):
        m = re.match(r"^([A-Z][A-Za-z ]+): ([\d,]+)", line)
        if m:
            out[m.group(1)] = int(m.group(2).replace(",", ""))
    return out


def runs_list(rs: list, key: str, digits: int = 2) -> str:
    return ", ".join(f"{r[key]:.{digits}f}" for r in rs)


def fmt_bytes(n: int | None) -> str:
    return "n/a" if n is None else f"{n:,} B ({n / 1e6:.2f} MB)"


tree_bytes = int(notes["tree_bytes"])
gb = tree_bytes / 1e9

# ---------------------------------------------------------------- header
print("# shanlu edge sync benchmark\n")
print(f"Command: `{E['CMDLINE']}`\n")
print("## Machine\n")
print(f"- CPUs (nproc): {E['M_NPROC']}; CPU model: {E['M_CPU']}")
print(f"- Kernel: {E['M_KERNEL']}; OS: {E['M_OS']}; memory: {E['M_MEM']}")
print(f"- Scratch filesystem: {E['M_FS']}")
print(f"- shanlu: {E['V_SHANLU']}")
print(f"- {E['V_NGINX']}; {E['V_CURL']}; {E['V_OPENSSL']}; {E['V_RSYNC']}; {E['V_NFT']}; {E['V_TIME']}")
print(f"- TLS curl <-> nginx: HTTP/1.1 run: {notes.get('tls_curl_h1') or '?'}; "
      f"HTTP/2 run: {notes.get('tls_curl_h2') or '?'}")
print(f"- Network: loopback only (127.0.0.1). Byte counter for shanlu's UDP: **{notes['counter']}** "
      f"(self-test: {int(notes.get('selftest_sent', 0)):,} B of UDP payload each way through "
      "the counter, checked below)")
print()
print("## Course\n")
print(f"- v1: {tree_bytes / 1e6:,.1f} MB ({tree_bytes / 2**30:.3f} GiB) in {notes['tree_files']} files "
      f"({notes['tree_large']} incompressible media files >= 1 MiB, the rest small HTML/SVG/text); "
      f"gen-tree.py seed {E['SEED']}, generated in {notes['gen_secs']} s")

# UDP counter self-test verdict
st = pair("selftest", "st" if notes["counter"] == "nft" else "q", payload=True)
sent = int(notes.get("selftest_sent", 0))
st_ok = st is not None and st[0] == sent and st[1] == sent
print(f"- Counter self-test: counted {st[0] if st else '?'} B to / {st[1] if st else '?'} B from the "
      f"echo server for {sent} B sent each way: {'exact' if st_ok else 'MISMATCH'}")
edits = {}
try:
    edits = json.load(open(os.path.join(E["WD"], "edits.json")))
except (OSError, ValueError):
    pass
if edits:
    print(f"- v2 (tools/bench/sync/edit-tree.py, seed {edits['seed']}): {edits['media_edits']} edits of "
          f"{edits['edit_size_range'][0] // 1024}-{edits['edit_size_range'][1] // 1024} KiB scattered "
          f"over {edits['media_files']} media files ({edits['media_edits_resized']} of them change the "
          f"length by up to 4 KiB) + {edits['small_file_edits']} HTML pages with 48 bytes changed; "
          f"{edits['bytes_written']:,} new bytes = {100 * edits['changed_fraction']:.2f} % of the course; "
          f"{edits['files_changed']} files changed ({notes.get('v1v2_files_differ', '?')} differ by "
          f"`diff -r`); size {edits['tree_bytes_v1']:,} -> {edits['tree_bytes_v2']:,} B")
print()

# ---------------------------------------------------------------- part A
A_SHANLU = "shanlu edge sync (QUIC)"
A_H1, A_H2 = notes["name_h1"], notes["name_h2"]
BASELINE = A_H2  # the target's baseline: one connection, multiplexed streams, like QUIC
by = defaultdict(list)
for r in rows:
    if r["part"] == "A":
        by[r["name"]].append(r)


def med(name: str, key: str) -> float | None:
    v = [r[key] for r in by.get(name, []) if r[key] is not None]
    return statistics.median(v) if v else None


print("## A. Fresh sync of the whole course\n")
print(f"Median of {E['RUNS']} interleaved runs (shanlu, curl HTTP/1.1, curl HTTP/2 in each run); every "
      "client starts from an empty folder. **Hot page cache** (course and origin store read once "
      "before); an untimed `sync` before and after each command, \"incl. sync\" adds that final "
      "flush. CPU = user+sys of the client process (GNU time %U+%S); peak RSS = %M, the maximum "
      "over the runs. Server CPU = origin process, or nginx master+workers, from /proc/PID/stat. "
      f"MB and GB are 10^6 and 10^9 bytes of course content ({tree_bytes / 1e9:.3f} GB).\n")
print("| client | wall s | incl. sync s | MB/s | CPU s | CPU s/GB | user s | sys s | peak RSS MiB "
      "| server CPU s | runs wall (s) | runs CPU (s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
for name in (A_SHANLU, A_H1, A_H2):
    rs = by.get(name)
    if not rs:
        print(f"| {name} | skipped | | | | | | | | | | |")
        continue
    w, ws, c = med(name, "wall"), med(name, "wsync"), med(name, "cpu")
    u, s, sv = med(name, "user"), med(name, "sys"), med(name, "srv")
    rss = max(r["rss_mib"] for r in rs)
    print(f"| {name} | {w:.3f} | {ws:.3f} | {tree_bytes / 1e6 / w:.0f} | {c:.2f} | {c / gb:.2f} | "
          f"{u:.2f} | {s:.2f} | {rss:.1f} | {'' if sv is None else f'{sv:.2f}'} | "
          f"{runs_list(rs, 'wall')} | {runs_list(rs, 'cpu')} |")
print()
print("Bytes on the wire during the fresh syncs (run 1; nft counters; payload = UDP payload, "
      "L3 = whole IP packets, loopback GSO/TSO coalesces packets so L3 under-counts headers "
      "against a real link):\n")
for name, prefix, udp in ((A_SHANLU, "q", True), (A_H1, "n", False), (A_H2, "n", False)):
    rs = by.get(name)
    if not rs:
        continue
    lab = label_of(rs[0])
    l3 = pair(lab, prefix)
    if l3 is None:
        print(f"- {name}: not counted (nftables not in use)")
        continue
    extra = ""
    if udp:
        pl = pair(lab, prefix, payload=True)
        drops = delta(lab, "udp_rcvbuf_errors")
        extra = (f"; UDP payload {pl[0] + pl[1]:,} B = {100 * ((pl[0] + pl[1]) / tree_bytes - 1):+.2f} % "
                 f"over the course bytes; UDP receive-buffer drops during the sync: {drops}")
    print(f"- {name}: L3 {l3[0] + l3[1]:,} B ({l3[1]:,} from the server, {l3[0]:,} to it) = "
          f"{100 * ((l3[0] + l3[1]) / tree_bytes - 1):+.2f} % over the course bytes{extra}")
for k, v in sorted(notes.items()):
    if k.startswith("conn|") and k.endswith("|1"):
        print(f"- nginx access log, {k.split('|')[1]} run 1: {v}")
if by.get(A_SHANLU):
    j = shanlu_json(by[A_SHANLU][0]["out"])
    print(f"- shanlu's own report, run 1: "
          + (", ".join(f"{k} {v:,}" if "bytes" in k else f"{k} {v}"
                       for k, v in j.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
             or "no JSON on stdout"))
print()

# ---------------------------------------------------------------- part B
print("## B. Update v1 -> v2 (bytes on the wire)\n")
rB = {r["name"]: r for r in rows if r["part"] == "B"}
B_FRESH, B_UPD, B_RSYNC = "shanlu edge sync (v1, fresh)", "shanlu edge sync (v1 -> v2)", "rsync (v1 -> v2)"
rsync = rsync_stats(rB[B_RSYNC]["out"]) if B_RSYNC in rB else {}
r_sent, r_recv = rsync.get("Total bytes sent"), rsync.get("Total bytes received")
r_total = None if r_sent is None or r_recv is None else r_sent + r_recv
print("One run. shanlu: the part-B edge holds v1 (its own fresh sync, below), the origin republishes "
      "v2 (serve stopped for the publish and restarted on the same ports), then one timed "
      "`shanlu edge sync`. Its wire bytes are **UDP payload bytes both ways between the edge and "
      f"the origin's QUIC port**, counted by {notes['counter']} (QUIC headers, TLS handshake, AEAD "
      "tags, ACKs and any retransmissions included; IP/UDP headers not). rsync: `rsync -a --stats "
      "rsync://127.0.0.1:PORT/course/ DEST/`, DEST a `cp -a` copy of v1 (same mtimes: rsync's quick "
      "check skips unchanged files, the delta algorithm runs on changed ones); its wire bytes are "
      "its own \"Total bytes sent\" + \"Total bytes received\" (application bytes over TCP, "
      "unencrypted, TCP/IP headers not counted).\n")
print("| | wire bytes | client -> server | server -> client | L3 bytes (nft) | wall s | CPU s | "
      "peak RSS MiB | server CPU s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
s_total = None
for name, prefix in ((B_UPD, "q"), (B_RSYNC, "r")):
    r = rB.get(name)
    if r is None:
        print(f"| {name} | skipped | | | | | | | |")
        continue
    lab = label_of(r)
    l3 = pair(lab, prefix)
    l3s = "n/a" if l3 is None else f"{l3[0] + l3[1]:,}"
    if prefix == "q":
        pl = pair(lab, "q", payload=True)
        if pl is None:
            tot = to = fr = "n/a"
        else:
            s_total = pl[0] + pl[1]
            tot, to, fr = f"{s_total:,}", f"{pl[0]:,}", f"{pl[1]:,}"
    else:
        tot = "n/a" if r_total is None else f"{r_total:,}"
        to = "n/a" if r_sent is None else f"{r_sent:,}"
        fr = "n/a" if r_recv is None else f"{r_recv:,}"
    srv = "" if r["srv"] is None else f"{r['srv']:.2f}"
    print(f"| {name} | {tot} | {to} | {fr} | {l3s} | {r['wall']:.3f} | {r['cpu']:.2f} | "
          f"{r['rss_mib']:.1f} | {srv} |")
print()
if s_total is not None and r_total:
    print(f"- shanlu / rsync wire bytes: **{s_total / r_total:.2f}x** "
          f"({s_total:,} B vs {r_total:,} B)")
if edits and r_total:
    print(f"- changed bytes in v2: {edits['bytes_written']:,} B; rsync moved "
          f"{r_total / edits['bytes_written']:.2f}x that"
          + (f", shanlu {s_total / edits['bytes_written']:.2f}x" if s_total else ""))
if rsync:
    keys = ("Number of regular files transferred", "Literal data", "Matched data", "File list size",
            "Total transferred file size")
    print("- rsync --stats: " + ", ".join(f"{k} {rsync[k]:,}" for k in keys if k in rsync))
if B_UPD in rB:
    j = shanlu_json(rB[B_UPD]["out"])
    print("- shanlu's own report of the update: "
          + (", ".join(f"{k} {v:,}" if "bytes" in k else f"{k} {v}"
                       for k, v in j.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
             or "no JSON on stdout"))
    drops = delta(label_of(rB[B_UPD]), "udp_rcvbuf_errors")
    print(f"- UDP receive-buffer drops on this machine during the update sync (/proc/net/snmp "
          f"RcvbufErrors): {drops if drops is not None else '?'} (each drop costs a QUIC resend)")
    if "edge_verify" in notes:
        print(f"- `shanlu verify` of the edge after the update: "
              f"{'ok (exit 0)' if notes['edge_verify'] == '0' else 'FAILED, exit ' + notes['edge_verify']}")
if B_FRESH in rB:
    r = rB[B_FRESH]
    pl = pair(label_of(r), "q", payload=True)
    if pl:
        print(f"- the part-B edge's fresh v1 sync: {pl[0] + pl[1]:,} B of UDP payload for "
              f"{tree_bytes:,} B of course = {100 * ((pl[0] + pl[1]) / tree_bytes - 1):+.2f} % "
              f"overhead; {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, peak RSS {r['rss_mib']:.1f} MiB")
pubs = [r for r in rows if r["part"] == "P"]
if pubs:
    print("- publishes (untargeted): " + "; ".join(
        f"{r['name']} {r['wall']:.2f} s, CPU {r['cpu']:.2f} s, peak RSS {r['rss_mib']:.1f} MiB" for r in pubs))
print()

# ---------------------------------------------------------------- targets
print("## Targets\n")


def check(label: str, ok: bool | None, detail: str) -> None:
    status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    print(f"- **{status}** {label}: {detail}")


if SKIP or not by.get(A_SHANLU):
    for label in ("edge CPU per GB within 2x curl's", "update bytes on the wire <= rsync's",
                  "peak edge RSS < 150 MiB"):
        check(label, None, "shanlu not run (SHANLU_SKIP=1)")
else:
    c_s, c_b, c_h1 = med(A_SHANLU, "cpu"), med(BASELINE, "cpu"), med(A_H1, "cpu")
    r = c_s / c_b if c_b else float("inf")
    r1 = c_s / c_h1 if c_h1 else float("inf")
    check("edge CPU per GB within 2x curl's", r <= 2.0,
          f"{c_s / gb:.2f} vs {c_b / gb:.2f} CPU-s/GB ({BASELINE}) = {r:.2f}x; "
          f"against {A_H1}: {c_h1 / gb:.2f} CPU-s/GB = {r1:.2f}x")
    if s_total is None or r_total is None:
        check("update bytes on the wire <= rsync's", False, "not measured")
    else:
        check("update bytes on the wire <= rsync's", s_total <= r_total,
              f"{s_total:,} B vs {r_total:,} B = {s_total / r_total:.2f}x")
    edge_rows = [x for x in rows if x["name"].startswith("shanlu edge sync")]
    p = max(x["rss_mib"] for x in edge_rows)
    check("peak edge RSS < 150 MiB", p < 150.0,
          f"{p:.1f} MiB (largest of {len(edge_rows)} edge syncs: fresh A runs "
          f"{runs_list(by[A_SHANLU], 'rss_mib', 1)}"
          + (f"; update {rB[B_UPD]['rss_mib']:.1f}" if B_UPD in rB else "") + ")")
if not st_ok:
    print("\n**Warning: the UDP counter self-test did not count exactly; wire bytes are suspect.**")
