#!/usr/bin/env bash
# Soak test for shanlu (issue 11), on loopback only: CLIENTS classroom clients read whole
# lesson files from `shanlu edge run`, each body checked against its BLAKE3, while the
# origin publishes changed versions of the same courses and the edge syncs them
# (`shanlu edge sync-now`), and an attacker holds SLOW slow connections (half a request
# head, never finished; reopened a second after the edge closes them). Runs for DURATION
# seconds, then prints a Markdown report: requests, wrong bytes, errors, the edge's peak
# RSS and open descriptors, syncs, and the edge's flood log lines.
#
# Usage:
#   bash tools/bench/soak.sh                       (settings through the environment)
#   DURATION=20 bash tools/bench/soak.sh           # a short run
#
# Environment (defaults in brackets):
#   DURATION=SECS   length of the soak [60]
#   CLIENTS=N       classroom clients, all from 127.0.0.2 (one classroom behind NAT) [400]
#   SLOW=N          attacker connections, from 127.0.0.1 [2000]
#   COURSES=N       generated courses, 2 lessons x 4 files of 16 KiB .. 1 MiB each [3]
#   PUBLISH_EVERY=S a changed course is published and synced every S seconds [10]
#   PROFILE=release|debug  which build to use when the binaries are not given [release]
#   SHANLU_BIN=P, SOAK_BIN=P  use these binaries instead of building them
#   WORKDIR=DIR     parent of the scratch folder (removed on exit) [/var/tmp]
#   TIMEOUT=SECS    limit for every helper command [600]
#
# Pass criteria (exit 0): 0 wrong bytes, 0 client errors, the edge alive at the end.
# Reported apart from the errors: `retried` (a request on a kept-alive connection the edge
# had closed, sent again on a new one, as browsers do) and `late` (a new connection the
# soak client itself left silent past the edge's 5 s header timeout, which happens only
# when the load generator's tasks are starved of CPU).
# The soak client is tools/bench/soak/soak.rs (`cargo build -p tools --example soak`).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
LOOP=127.0.0.1
DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-400}
SLOW=${SLOW:-2000}
COURSES=${COURSES:-3}
PUBLISH_EVERY=${PUBLISH_EVERY:-10}
PROFILE=${PROFILE:-release}
WORKDIR_PARENT=${WORKDIR:-/var/tmp}
TIMEOUT=${TIMEOUT:-600}
CMDLINE=$(printf 'DURATION=%q CLIENTS=%q SLOW=%q COURSES=%q PUBLISH_EVERY=%q PROFILE=%q bash tools/bench/soak.sh' \
    "$DURATION" "$CLIENTS" "$SLOW" "$COURSES" "$PUBLISH_EVERY" "$PROFILE")

exec {LOGFD}>&2
log() { printf '[soak %(%H:%M:%S)T] %s\n' -1 "$*" >&"$LOGFD"; }
die() { printf 'soak.sh: error: %s\n' "$*" >&"$LOGFD"; exit 1; }
# shellcheck source=tools/bench/common.sh
source "$SCRIPT_DIR/common.sh"

case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; exit 0 ;;
    "") ;;
    *) die "no arguments are taken (settings come from the environment; see --help)" ;;
esac
for v in DURATION CLIENTS SLOW COURSES PUBLISH_EVERY TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((DURATION >= 5 && DURATION <= 86400)) || die "DURATION must be 5..86400 seconds"
((CLIENTS >= 1 && COURSES >= 1 && PUBLISH_EVERY >= 1)) || die "CLIENTS, COURSES and PUBLISH_EVERY must be at least 1"
[[ "$PROFILE" == release || "$PROFILE" == debug ]] || die "PROFILE must be release or debug"
for c in python3 timeout awk curl; do command -v "$c" >/dev/null 2>&1 || die "'$c' not found"; done
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# The attacker's connections and the clients' live in the soak client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > SLOW + CLIENTS + 256)) || die "the open-file limit ($(ulimit -n)) is too low for SLOW + CLIENTS"

# ---------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------
TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$TARGET" == /* ]] || TARGET="$REPO_ROOT/$TARGET"
if [[ -z "${SHANLU_BIN:-}" || -z "${SOAK_BIN:-}" ]]; then
    flag=()
    [[ "$PROFILE" == release ]] && flag=(--release)
    log "building: cargo build ${flag[*]} -p tools --bin shanlu --example soak"
    (cd "$REPO_ROOT" && bounded 3600 cargo build "${flag[@]}" -p tools --bin shanlu --example soak) >&2 ||
        die "cargo build failed"
fi
SHANLU=${SHANLU_BIN:-$TARGET/$PROFILE/shanlu}
SOAK=${SOAK_BIN:-$TARGET/$PROFILE/examples/soak}
[[ -x "$SHANLU" ]] || die "$SHANLU is not an executable"
[[ -x "$SOAK" ]] || die "$SOAK is not an executable"

# ---------------------------------------------------------------------------
# Scratch folder and services, cleaned up on every exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-soak.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
ORIGIN_PID="" EDGE_PID="" SAMPLER_PID="" PUBLISHER_PID="" CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$PUBLISHER_PID"; stop_pid "$SAMPLER_PID"; stop_pid "$EDGE_PID"; stop_pid "$ORIGIN_PID"
    if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then log "KEEP_WORKDIR=1: leaving $WD"; else rm -rf -- "$WD"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
OUT="$WD/cmd.stdout" ERR="$WD/cmd.stderr"
fail_cmd() { tail -n 20 "$ERR" >&2 || true; die "$1 failed (exit $2)"; }
field() { awk -v k="$1" 'index($0, k ": ") == 1 {print substr($0, length(k) + 3); exit}' "$OUT"; }

# ---------------------------------------------------------------------------
# Courses: COURSES x 2 lessons x 4 files; `change N` rewrites one file of course N
# ---------------------------------------------------------------------------
SRC="$WD/src"
python3 - "$SRC" "$COURSES" <<'PY'
import os, random, sys
root, courses = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261130)
for c in range(1, courses + 1):
    course = os.path.join(root, f"soak-{c}")
    os.makedirs(course)
    with open(os.path.join(course, "course.toml"), "w") as f:
        f.write(f'id = "soak-{c}"\n\n[title]\nen = "Soak course {c}"\n')
    for lesson in ("01-read", "02-count"):
        os.makedirs(os.path.join(course, lesson))
        with open(os.path.join(course, lesson, "index.html"), "w") as f:
            f.write("<!doctype html><title>lesson</title><p>soak</p>\n")
        for i, size in enumerate((16 << 10, 100 << 10, 400 << 10, 1 << 20)):
            with open(os.path.join(course, lesson, f"part-{i}.bin"), "wb") as f:
                f.write(rng.randbytes(size))
PY
change() {  # change N: new bytes (and a new size) for one file of course soak-N
    python3 - "$SRC/soak-$1" <<'PY'
import os, random, sys
course = sys.argv[1]
rng = random.Random()
lesson = rng.choice(("01-read", "02-count"))
name = f"part-{rng.randrange(4)}.bin"
with open(os.path.join(course, lesson, name), "wb") as f:
    f.write(rng.randbytes(rng.randrange(8 << 10, 1 << 20)))
PY
}

# ---------------------------------------------------------------------------
# Origin and edge
# ---------------------------------------------------------------------------
log "origin: init, publish $COURSES courses, add-edge, serve"
prep "shanlu origin init" "$SHANLU" origin init --data "$WD/origin"
ORIGIN_KEY=$(field "origin key")
ORIGIN_CERT=$(field "origin certificate")
for ((c = 1; c <= COURSES; c++)); do
    prep "shanlu publish soak-$c" "$SHANLU" publish "$SRC/soak-$c" --data "$WD/origin"
done
prep "shanlu origin add-edge" "$SHANLU" origin add-edge --data "$WD/origin" --name soak-edge
EDGE_TOKEN=$(field "edge token")
: >"$WD/origin.out"
"$SHANLU" origin serve --data "$WD/origin" --quic "$LOOP:0" --http "$LOOP:0" --https "$LOOP:0" \
    >"$WD/origin.out" 2>"$WD/origin.err" &
ORIGIN_PID=$!
QADDR=""
for ((i = 0; i < 300; i++)); do
    QADDR=$(awk '$1 == "quic:" {print $2; exit}' "$WD/origin.out")
    [[ -n "$QADDR" ]] && break
    kill -0 "$ORIGIN_PID" 2>/dev/null || die "origin serve exited: $(tail -n 5 "$WD/origin.err")"
    sleep 0.1
done
[[ -n "$QADDR" ]] || die "origin serve printed no quic address within 30 s"

prep "shanlu edge init" "$SHANLU" edge init --data "$WD/edge" --origin "quic://$QADDR" \
    --origin-key "$ORIGIN_KEY" --origin-cert "$ORIGIN_CERT" --token "$EDGE_TOKEN" --subscribe all
: >"$WD/edge.out"
RUST_LOG=info "$SHANLU" edge run --data "$WD/edge" --listen "$LOOP:0" --interval 3600 \
    >"$WD/edge.out" 2>"$WD/edge.err" &
EDGE_PID=$!
EDGE_ADDR=""
for ((i = 0; i < 300; i++)); do
    EDGE_ADDR=$(awk '$1 == "classroom:" {sub("http://", "", $2); sub("/$", "", $2); print $2; exit}' "$WD/edge.out")
    [[ -n "$EDGE_ADDR" ]] && break
    kill -0 "$EDGE_PID" 2>/dev/null || die "edge run exited: $(tail -n 5 "$WD/edge.err")"
    sleep 0.1
done
[[ -n "$EDGE_ADDR" ]] || die "edge run printed no classroom address within 30 s"
for ((i = 0; i < TIMEOUT * 10; i++)); do
    grep -q 'sync complete' "$WD/edge.err" && break
    kill -0 "$EDGE_PID" 2>/dev/null || die "edge run exited: $(tail -n 5 "$WD/edge.err")"
    sleep 0.1
done
grep -q 'sync complete' "$WD/edge.err" || die "the edge's first sync did not complete"
SYNCS_BEFORE=$(grep -c 'sync complete' "$WD/edge.err")
log "edge on $EDGE_ADDR (pid $EDGE_PID), first sync complete"

# ---------------------------------------------------------------------------
# The soak: sampler, publisher, clients and attacker
# ---------------------------------------------------------------------------
(   # VmRSS (kB) and open descriptors of the edge every 0.5 s
    trap - EXIT INT
    while kill -0 "$EDGE_PID" 2>/dev/null; do
        rss=$(awk '$1 == "VmRSS:" {print $2}' "/proc/$EDGE_PID/status" 2>/dev/null || echo 0)
        fds=$(find "/proc/$EDGE_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
        echo "$rss $fds"
        sleep 0.5
    done
) >"$WD/samples" &
SAMPLER_PID=$!
(   # a changed course published and synced every PUBLISH_EVERY s, until 5 s before the end
    trap - EXIT INT
    end=$((SECONDS + DURATION - 5)) n=0
    while ((SECONDS + PUBLISH_EVERY <= end)); do
        sleep "$PUBLISH_EVERY"
        c=$((n % COURSES + 1)); n=$((n + 1))
        change "$c"
        if timeout 120 "$SHANLU" publish "$SRC/soak-$c" --data "$WD/origin" >/dev/null 2>>"$WD/publish.err" &&
            timeout 30 "$SHANLU" edge sync-now --data "$WD/edge" >/dev/null 2>>"$WD/publish.err"; then
            echo "ok soak-$c"
        else
            echo "failed soak-$c"
        fi
    done
) >"$WD/publishes" &
PUBLISHER_PID=$!

courses=$(seq -s, -f 'soak-%g' 1 "$COURSES")
log "soak: $CLIENTS clients, $SLOW slow connections, ${DURATION}s, a publish every ${PUBLISH_EVERY}s"
cpu0=$(proc_cpu "$EDGE_PID")
rc=0
bounded $((DURATION + 120)) "$SOAK" --edge "$EDGE_ADDR" --courses "$courses" --clients "$CLIENTS" \
    --slow "$SLOW" --secs "$DURATION" >"$WD/soak.json" 2>"$WD/soak.err" || rc=$?
cpu1=$(proc_cpu "$EDGE_PID")
((rc == 0)) || { tail -n 20 "$WD/soak.err" >&2; die "the soak client failed (exit $rc)"; }
wait "$PUBLISHER_PID" 2>/dev/null || true
PUBLISHER_PID=""
kill -0 "$EDGE_PID" 2>/dev/null && EDGE_ALIVE=1 || EDGE_ALIVE=0
# Let the last sync-now pass end before counting.
for ((i = 0; i < 100; i++)); do
    (($(grep -c 'sync complete' "$WD/edge.err") - SYNCS_BEFORE >= $(grep -c '^ok' "$WD/publishes"))) && break
    sleep 0.1
done
HWM=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$EDGE_PID/status" 2>/dev/null || echo 0)
stop_pid "$SAMPLER_PID"; SAMPLER_PID=""

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
export CMDLINE DURATION CLIENTS SLOW COURSES PUBLISH_EVERY EDGE_ALIVE HWM WD
export SYNCS=$(($(grep -c 'sync complete' "$WD/edge.err") - SYNCS_BEFORE))
export SYNC_FAILS=$(grep -cE 'sync failed|files missing' "$WD/edge.err" || true)
export PUBLISHED=$(grep -c '^ok' "$WD/publishes" || true)
export PUBLISH_FAILS=$(grep -c '^failed' "$WD/publishes" || true)
export SHED_LINES=$(grep -c 'classroom connections shed' "$WD/edge.err" || true)
export EDGE_CPU=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.1f", b - a}')
export MACHINE="$(nproc) CPUs ($(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)), $(uname -sr)"
export GIT_REV=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
export SHANLU
python3 - <<'PY'
import json, os
E = os.environ
r = json.load(open(os.path.join(E["WD"], "soak.json")))
samples = [tuple(map(int, line.split())) for line in open(os.path.join(E["WD"], "samples")) if line.strip()]
rss = [s[0] for s in samples] or [0]
fds = [s[1] for s in samples] or [0]
print("# shanlu soak (issue 11)\n")
print(f"Command: `{E['CMDLINE']}`  \nMachine: {E['MACHINE']}; git {E['GIT_REV']}; {E['SHANLU']}\n")
print("| measure | value |\n|---|---|")
rows = [
    ("duration", f"{r['secs']:.1f} s"),
    ("classroom clients / slow connections", f"{r['clients']} / {r['slow']}"),
    ("lesson files read and checked", f"{r['requests']} ({r['requests_per_sec']:.0f}/s, {r['bytes'] / 2**20:.0f} MiB)"),
    ("**wrong bytes** (BLAKE3 matching no listed hash)", str(r["wrong"])),
    ("**client errors** (status, broken, > 30 s)", str(r["errors"])),
    ("retried on a kept-alive connection the edge had closed", str(r["retried"])),
    ("late: new connections this client left silent past the 5 s header timeout (a starved load generator), closed unanswered", str(r["late"])),
    ("latency p50 / p99 / max", f"{r['latency_ms']['p50']:.1f} / {r['latency_ms']['p99']:.1f} / {r['latency_ms']['max']:.1f} ms"),
    ("courses published and synced (sync-now) during the soak", f"{E['PUBLISHED']} published ({E['PUBLISH_FAILS']} failed), {E['SYNCS']} sync passes complete, {E['SYNC_FAILS']} failed"),
    ("file changes the clients saw in the API", str(r["changed_seen"])),
    ("slow connections opened / closed by the edge / refused 503", f"{r['slow_opened']} / {r['slow_closed_by_edge']} / {r['slow_refused_503']}"),
    ("slow connections held at once (peak, attacker's view)", str(r["slow_open_peak"])),
    ("edge RSS peak (sampled every 0.5 s) / VmHWM", f"{max(rss) / 1024:.1f} MiB / {int(E['HWM']) / 1024:.1f} MiB"),
    ("edge RSS at start / end of the soak", f"{rss[0] / 1024:.1f} / {rss[-1] / 1024:.1f} MiB"),
    ("edge open descriptors, peak", str(max(fds))),
    ("edge CPU during the soak", f"{E['EDGE_CPU']} s"),
    ("edge flood summary lines (`classroom connections shed`)", f"{E['SHED_LINES']} in {r['secs']:.0f} s"),
    ("edge alive at the end", "yes" if E["EDGE_ALIVE"] == "1" else "**no**"),
]
for k, v in rows:
    print(f"| {k} | {v} |")
ok = r["wrong"] == 0 and r["errors"] == 0 and E["EDGE_ALIVE"] == "1"
print(f"\nResult: {'PASS' if ok else 'FAIL'}")
raise SystemExit(0 if ok else 1)
PY
