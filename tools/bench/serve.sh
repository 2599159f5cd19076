#!/usr/bin/env bash
# Classroom serving benchmark for shanlu, on loopback (127.0.0.1 only): `shanlu edge run`
# serving one large lesson video against nginx serving the same bytes from disk, both
# loaded by wrk with random 1 MiB byte-range requests (what a video player seeking in a
# lesson video asks for). Prints a Markdown report: req/s, MiB/s, p50/p99 latency per
# server and connection count, the edge/nginx ratios and the edge's peak RSS.
#
# Usage:
#   bash tools/bench/serve.sh            (settings through the environment, below)
#   SIZE_MB=50 DURATION=3s REPEATS=1 bash tools/bench/serve.sh     # a quick smoke run
#
# Environment (defaults in brackets):
#   SIZE_MB=N      size of the generated lesson video in MiB [500]
#   DURATION=T     length of every timed wrk run, wrk syntax (15s, 1m) [15s]
#   THREADS=N      wrk threads [2]
#   REPEATS=N      timed repetitions of every (connections, server) pair; medians are
#                  reported [3]
#   CONNS="A B"    concurrent connections, one set of runs per value [100 400]
#   RANGE_KB=N     bytes per request in KiB [1024]: `Range: bytes=a-(a+RANGE_KB*1024-1)`
#   ALIGN=N        range starts are rounded down to a multiple of N bytes [1: any byte
#                  offset]; ALIGN=1048576 gives MiB-aligned ranges
#   WARMUP=T       untimed wrk warm-up of each server before the timed runs [2s]
#   EDGE_URL=api|hash
#                  which edge URL is loaded: `api` = the lesson path the edge's JSON API
#                  lists for the file (/courses/<course>/<lesson>/video.mp4, what a lesson
#                  page links to), `hash` = /files/<blake3> [api]
#   WORKDIR=DIR    parent of the scratch folder; the script makes DIR/shanlu-serve-bench.XXXXXX
#                  and removes only that, on any exit [/var/tmp]
#   TIMEOUT=SECS   limit for every helper command and every wrk run [600]
#   WRK_TIMEOUT=T  wrk's per-request timeout; a request slower than this is an error [30s]
#   SHANLU_BIN=P   use this shanlu binary instead of building target/release/shanlu
#
# What runs (everything binds 127.0.0.1 only):
#   course   COURSE/course.toml (id "bench-serve"), one lesson folder 01-video/ with
#            lesson.toml, index.html (the entry, a <video> tag) and video.mp4: SIZE_MB MiB
#            of deterministic incompressible bytes (AES-128-CTR keystream from openssl, or
#            /dev/urandom when openssl is missing)
#   origin   `shanlu origin init`, `shanlu publish COURSE`, `shanlu origin add-edge`, then
#            `shanlu origin serve --quic 127.0.0.1:0 --http 127.0.0.1:0` (left running
#            and idle: `edge run` syncs with it once at start)
#   edge     `shanlu edge init --origin quic://... --origin-key K --origin-cert F --token T`,
#            `shanlu edge sync --json` (timed, reported), then
#            `shanlu edge run -v --data EDGE --listen 127.0.0.1:0 --interval 3600`; the
#            script waits for that process's first sync pass ("sync complete") before
#            loading it. The file URL comes from GET /api/v1/courses/bench-serve.
#   nginx    /usr/sbin/nginx in the foreground with its own config (daemon off,
#            worker_processes auto, sendfile on, tcp_nopush on, access_log off, pid, logs
#            and temp paths in the scratch folder) serving a plain copy of video.mp4
#   checks   before loading: with curl, both servers answer Range requests at the start,
#            middle and end of the file with 206, the right Content-Range and the right
#            bytes, and a full GET returns the whole file byte for byte (cmp)
#   load     wrk -t THREADS -c C -d DURATION --latency -s tools/bench/serve/range.lua: every
#            request takes a random range of RANGE_KB KiB. Per thread the offsets come
#            from a fixed seed (repeat x connections), so both servers get the same ranges.
#            For each repeat and each C, edge and nginx run back to back, the order
#            swapped on every repeat. Any socket error, timeout or status outside
#            200-399 fails the benchmark, and so do bytes per request that do not match
#            a RANGE_KB answer (a server ignoring Range would send the whole file).
#
# Measures (per wrk run): requests/s and MiB/s (wrk's bytes read, headers included, over
# its measured duration; 1 MiB = 2^20 bytes), p50 and p99 latency (wrk's histogram, from
# done() in range.lua), CPU seconds used by the server (/proc/PID/stat utime+stime; nginx:
# master and workers). Edge peak RSS: VmRSS of the `edge run` process sampled every 50 ms
# during the runs with the largest connection count, and its VmHWM (lifetime peak, the
# start-up sync included) at the end.
# The page cache is hot (both files are read once, untimed, first). wrk shares the
# machine's cores with the server under test: on a small machine, the absolute numbers
# are bounded by the load generator as much as by the server; compare the ratios.
#
# Exit status: 0 when every run completed without errors; non-zero when a command
# failed, a check failed, wrk saw errors, or something needed is missing.
#
# Dependencies (Debian 12 "bookworm"; installed with apt-get when missing):
#   wrk 4.1.0, nginx 1.22.1, curl, openssl, python3; shanlu is built with
#   `cargo build --release -p tools --bin shanlu` in the repo root.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
HELPERS="$SCRIPT_DIR/serve"
LOOP=127.0.0.1

SIZE_MB=${SIZE_MB:-500}
DURATION=${DURATION:-15s}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-3}
CONNS=${CONNS:-100 400}
RANGE_KB=${RANGE_KB:-1024}
ALIGN=${ALIGN:-1}
WARMUP=${WARMUP:-2s}
EDGE_URL=${EDGE_URL:-api}
WORKDIR_PARENT=${WORKDIR:-/var/tmp}
TIMEOUT=${TIMEOUT:-600}
WRK_TIMEOUT=${WRK_TIMEOUT:-30s}
COURSE_ID=bench-serve

CMDLINE=$(printf 'SIZE_MB=%q DURATION=%q THREADS=%q REPEATS=%q CONNS=%q RANGE_KB=%q ALIGN=%q EDGE_URL=%q bash tools/bench/serve.sh' \
    "$SIZE_MB" "$DURATION" "$THREADS" "$REPEATS" "$CONNS" "$RANGE_KB" "$ALIGN" "$EDGE_URL")

# log and die write to a copy of the script's stderr (fd $LOGFD): a signal can arrive while
# a function runs with its stderr redirected (e.g. `bounded ... 2>file`), and the cleanup
# messages written from the trap must not land in that file.
exec {LOGFD}>&2
log() { printf '[serve-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&"$LOGFD"; }
die() { printf 'serve.sh: error: %s\n' "$*" >&"$LOGFD"; exit 1; }
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; }
# shellcheck source=tools/bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "no arguments are taken (settings come from the environment; see --help)" ;;
esac

# bounded SECS CMD...: run CMD under `timeout` as a background job and wait for it, so
# that Ctrl-C / SIGTERM can stop it. Returns CMD's exit status (124 on timeout).
CHILD=""
on_signal() {
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$1"   # the EXIT trap stops the services and removes the scratch folder
}

is_wrk_time() { [[ "$1" =~ ^[0-9]+(s|m|h)?$ ]]; }
[[ "$SIZE_MB" =~ ^[0-9]+$ ]] && ((SIZE_MB >= 2 && SIZE_MB <= 65536)) || die "SIZE_MB must be an integer 2..65536"
is_wrk_time "$DURATION" || die "DURATION must look like 15s, 1m or 20 (wrk syntax), got '$DURATION'"
is_wrk_time "$WARMUP" || die "WARMUP must look like 2s (wrk syntax), got '$WARMUP'"
is_wrk_time "$WRK_TIMEOUT" || die "WRK_TIMEOUT must look like 30s (wrk syntax), got '$WRK_TIMEOUT'"
[[ "$THREADS" =~ ^[0-9]+$ ]] && ((THREADS >= 1 && THREADS <= 256)) || die "THREADS must be an integer 1..256"
[[ "$REPEATS" =~ ^[0-9]+$ ]] && ((REPEATS >= 1 && REPEATS <= 50)) || die "REPEATS must be an integer 1..50"
[[ "$RANGE_KB" =~ ^[0-9]+$ ]] && ((RANGE_KB >= 1 && RANGE_KB < SIZE_MB * 1024)) ||
    die "RANGE_KB must be an integer from 1 to below SIZE_MB*1024"
[[ "$ALIGN" =~ ^[0-9]+$ ]] && ((ALIGN >= 1)) || die "ALIGN must be a positive integer (bytes)"
[[ "$EDGE_URL" == api || "$EDGE_URL" == hash ]] || die "EDGE_URL must be api or hash"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && ((TIMEOUT >= 1)) || die "TIMEOUT must be a positive integer"
read -r -a CONN_LIST <<<"$CONNS"
((${#CONN_LIST[@]})) || die "CONNS is empty"
MAX_CONNS=0
for c in "${CONN_LIST[@]}"; do
    [[ "$c" =~ ^[0-9]+$ ]] && ((c >= 1 && c <= 10000)) || die "CONNS must be integers 1..10000, got '$c'"
    ((c >= THREADS)) || die "every CONNS value must be >= THREADS (wrk gives each thread C/THREADS connections)"
    ((c > MAX_CONNS)) && MAX_CONNS=$c
done
[[ -d "$WORKDIR_PARENT" ]] || die "WORKDIR=$WORKDIR_PARENT is not a directory"
WORKDIR_PARENT=$(cd "$WORKDIR_PARENT" && pwd)
FILE_BYTES=$((SIZE_MB * 1048576))
RANGE_BYTES=$((RANGE_KB * 1024))

# ---------------------------------------------------------------------------
# 1. Dependencies
# ---------------------------------------------------------------------------
declare -A PKG_OF=([wrk]=wrk [nginx]=nginx [curl]=curl [openssl]=openssl [python3]=python3)
export PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in /usr/sbin
missing=()
for c in wrk nginx curl python3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${PKG_OF[$c]}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here; install them by hand"
    log "installing missing packages: ${missing[*]} (apt-get update first)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    # Debian's nginx package would start its default site on port 80 of every address:
    # keep apt from starting services while it installs (only if no policy exists yet).
    POLICY_RC=0
    if [[ " ${missing[*]} " == *" nginx "* && ! -e /usr/sbin/policy-rc.d ]]; then
        trap '((POLICY_RC)) && as_root rm -f /usr/sbin/policy-rc.d' EXIT
        as_root sh -c 'printf "#!/bin/sh\nexit 101\n" >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d' ||
            die "could not write /usr/sbin/policy-rc.d"
        POLICY_RC=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
    if ((POLICY_RC)); then
        as_root rm -f /usr/sbin/policy-rc.d
        POLICY_RC=0
        trap - EXIT
        log "note: Debian's nginx service was installed but not started (it may be enabled at boot: systemctl disable nginx)"
    fi
fi
for c in wrk nginx curl python3 timeout cmp dd awk pgrep; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done
for f in "$HELPERS/range.lua" "$HELPERS/report.py"; do
    [[ -f "$f" ]] || die "$f not found"
done
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

if [[ -n "${SHANLU_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN
    [[ -f "$SHANLU" && -x "$SHANLU" ]] || die "SHANLU_BIN=$SHANLU is not an executable file"
    SHANLU="$(cd "$(dirname "$SHANLU")" && pwd)/$(basename "$SHANLU")"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) to build shanlu, or set SHANLU_BIN"
    log "building shanlu: cargo build --release -p tools --bin shanlu (in $REPO_ROOT)"
    cd "$REPO_ROOT"
    bounded 3600 cargo build --release -p tools --bin shanlu >&2 ||
        die "cargo build --release -p tools --bin shanlu failed"
    cd - >/dev/null
    SHANLU="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/shanlu"
    [[ "$SHANLU" == /* ]] || SHANLU="$REPO_ROOT/$SHANLU"
    [[ -x "$SHANLU" ]] || die "build succeeded but $SHANLU does not exist"
fi
for sub in "origin init" "origin add-edge" "origin serve" publish "edge init" "edge sync" "edge run"; do
    # shellcheck disable=SC2086
    "$SHANLU" $sub --help >/dev/null 2>&1 || die "'$SHANLU $sub --help' failed: that command is missing"
done

# ---------------------------------------------------------------------------
# Scratch folder and services, cleaned up on every exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-serve-bench.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
ORIGIN_PID="" EDGE_PID="" NGINX_PID="" SAMPLER_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$SAMPLER_PID"; stop_pid "$EDGE_PID"; stop_pid "$NGINX_PID"; stop_pid "$ORIGIN_PID"
    if [[ -n "${WD:-}" && -d "$WD" ]]; then
        if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then
            log "KEEP_WORKDIR=1: leaving $WD"
        else
            log "removing $WD"
            rm -rf -- "$WD"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# source + origin store + edge store + nginx copy, with slack
need_kb=$((FILE_BYTES * 4 / 1024 + 262144))
avail_kb=$(df -Pk "$WD" | awk 'NR==2{print $4}')
((avail_kb >= need_kb)) ||
    die "not enough space in $WORKDIR_PARENT: need ~$((need_kb / 1024)) MiB, have $((avail_kb / 1024)) MiB"
mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)
if ((mem_kb < FILE_BYTES * 4 / 1024)); then
    log "WARNING: RAM ($((mem_kb / 1024)) MiB) is under 4x the file size; the page cache may not hold every copy, numbers will mix in disk I/O"
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= MAX_CONNS + 64)) ||
    die "open-file limit $(ulimit -n) is too low for $MAX_CONNS connections (raise ulimit -n)"

COURSE="$WD/course"
ORIGIN="$WD/origin"
EDGE="$WD/edge"
WWW="$WD/www"
RESULTS="$WD/results.tsv"
NOTES="$WD/notes.tsv"
OUT="$WD/cmd.stdout"
ERR="$WD/cmd.stderr"
mkdir -p "$WD/wrk" "$WD/nginx/tmp" "$WWW" "$WD/check"
: >"$RESULTS"; : >"$NOTES"
note() { printf '%s\t%s\n' "$1" "$2" >>"$NOTES"; }

fail_cmd() {
    local what=$1 rc=$2
    printf 'serve.sh: error: %s failed (exit %s)\n' "$what" "$rc" >&2
    if [[ -s "$ERR" ]]; then
        printf -- '--- last lines of its stderr ---\n' >&2
        tail -n 20 "$ERR" >&2
    fi
    if [[ -s "$OUT" ]]; then
        printf -- '--- last lines of its stdout ---\n' >&2
        tail -n 20 "$OUT" >&2
    fi
    ((rc == 124)) && printf 'serve.sh: it hit the TIMEOUT of %ss\n' "$TIMEOUT" >&2
    exit 2
}
field() { awk -v k="$1" 'index($0, k ": ") == 1 {print substr($0, length(k) + 3); exit}' "$OUT"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
status_kb() {  # status_kb PID FIELD: a /proc/PID/status value in kB (0 if gone)
    awk -v f="$2:" '$1 == f {print $2; found = 1} END {if (!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------------------
# 2. The course: one lesson with a SIZE_MB MiB video
# ---------------------------------------------------------------------------
LESSON="$COURSE/01-video"
SRC="$LESSON/video.mp4"
mkdir -p "$LESSON"
cat >"$COURSE/course.toml" <<'EOF'
# Generated by tools/bench/serve.sh: one lesson with one large video.
id = "bench-serve"
subject = "benchmark"
grade = 3
languages = ["zh", "en"]
tags = ["benchmark"]

[title]
zh = "课堂服务基准测试"
en = "Classroom serving benchmark"

[description]
en = "A generated course: one lesson with one large lesson video."
EOF
cat >"$LESSON/lesson.toml" <<'EOF'
id = "video"
entry = "index.html"
tags = ["video"]
duration = "45m"

[title]
zh = "视频课"
en = "Video lesson"

[summary]
en = "A large incompressible lesson video, served with byte ranges."
EOF
cat >"$LESSON/index.html" <<'EOF'
<!doctype html>
<meta charset="utf-8">
<title>Video lesson</title>
<video src="video.mp4" controls preload="metadata"></video>
EOF
log "generating the lesson video: $SIZE_MB MiB in $SRC"
gen_start=$EPOCHREALTIME
if command -v openssl >/dev/null 2>&1; then
    # Deterministic and fast: the AES-128-CTR keystream of a fixed key over zeros.
    gen_how="AES-128-CTR keystream (openssl, fixed key)"
    bounded "$TIMEOUT" bash -c 'set -o pipefail; head -c "$1" /dev/zero |
        openssl enc -aes-128-ctr -nosalt -K 7368616e6c752d73657276652d62656e -iv 00000000000000000000000000000000 >"$2"' \
        _ "$FILE_BYTES" "$SRC" 2>"$ERR" || fail_cmd "generating the video with openssl" $?
else
    gen_how="/dev/urandom"
    bounded "$TIMEOUT" head -c "$FILE_BYTES" /dev/urandom >"$SRC" 2>"$ERR" || fail_cmd "generating the video" $?
fi
gen_end=$EPOCHREALTIME
[[ $(stat -c %s "$SRC") == "$FILE_BYTES" ]] || die "$SRC is $(stat -c %s "$SRC") bytes, expected $FILE_BYTES"
note gen "$gen_how, $(awk -v a="$gen_start" -v b="$gen_end" 'BEGIN{printf "%.1f", b - a}')s"
cp -- "$SRC" "$WWW/video.mp4"

# ---------------------------------------------------------------------------
# 3. Origin: init, publish, add-edge, serve
# ---------------------------------------------------------------------------
log "origin: init, publish, add-edge"
prep "shanlu origin init" "$SHANLU" origin init --data "$ORIGIN"
ORIGIN_KEY=$(field "origin key")
ORIGIN_CERT=$(field "origin certificate")
[[ "$ORIGIN_KEY" =~ ^[0-9a-f]{64}$ ]] || fail_cmd "shanlu origin init (no 'origin key: <64 hex>' line)" 0
[[ "$ORIGIN_CERT" =~ ^[0-9a-f]{64}$ ]] || fail_cmd "shanlu origin init (no 'origin certificate: <64 hex>' line)" 0
t0=$EPOCHREALTIME
prep "shanlu publish" "$SHANLU" publish "$COURSE" --data "$ORIGIN"
note publish_secs "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b - a}')"
prep "shanlu origin add-edge" "$SHANLU" origin add-edge --data "$ORIGIN" --name bench-serve-edge
EDGE_TOKEN=$(field "edge token")
[[ "$EDGE_TOKEN" =~ ^[0-9a-fA-F]+$ ]] || fail_cmd "shanlu origin add-edge (no 'edge token: <hex>' line)" 0

: >"$WD/origin-serve.out"   # exists before the background job opens it (awk polls it)
"$SHANLU" origin serve --data "$ORIGIN" --quic "$LOOP:0" --http "$LOOP:0" --https "$LOOP:0" \
    >"$WD/origin-serve.out" 2>"$WD/origin-serve.err" &
ORIGIN_PID=$!
QADDR=""
for ((i = 0; i < 300; i++)); do
    QADDR=$(awk '$1 == "quic:" {print $2; exit}' "$WD/origin-serve.out")
    [[ -n "$QADDR" ]] && break
    kill -0 "$ORIGIN_PID" 2>/dev/null || die "shanlu origin serve exited: $(tail -n 10 "$WD/origin-serve.err")"
    sleep 0.1
done
[[ "$QADDR" =~ ^127\.0\.0\.1:[0-9]+$ ]] || die "shanlu origin serve printed no 'quic: 127.0.0.1:PORT' line within 30 s"
log "origin serving QUIC on $QADDR"

# ---------------------------------------------------------------------------
# 4. Edge: init, sync, run
# ---------------------------------------------------------------------------
prep "shanlu edge init" "$SHANLU" edge init --data "$EDGE" --origin "quic://$QADDR" \
    --origin-key "$ORIGIN_KEY" --origin-cert "$ORIGIN_CERT" --token "$EDGE_TOKEN" --subscribe all
log "edge: shanlu edge sync"
t0=$EPOCHREALTIME
prep "shanlu edge sync" "$SHANLU" edge sync --data "$EDGE" --json
note sync_secs "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2f", b - a}')"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
if not r.get("complete", False):
    sys.exit("edge sync report is not complete: " + json.dumps(r)[:500])
' "$OUT" || die "shanlu edge sync did not complete"

: >"$WD/edge-run.out"; : >"$WD/edge-run.err"
"$SHANLU" edge run -v --data "$EDGE" --listen "$LOOP:0" --interval 3600 \
    >"$WD/edge-run.out" 2>"$WD/edge-run.err" &
EDGE_PID=$!
EDGE_BASE=""
for ((i = 0; i < 300; i++)); do
    EDGE_BASE=$(awk '$1 == "classroom:" {print $2; exit}' "$WD/edge-run.out")
    [[ -n "$EDGE_BASE" ]] && break
    kill -0 "$EDGE_PID" 2>/dev/null || die "shanlu edge run exited: $(tail -n 10 "$WD/edge-run.err")"
    sleep 0.1
done
[[ "$EDGE_BASE" =~ ^http://127\.0\.0\.1:([0-9]+)/$ ]] ||
    die "shanlu edge run printed no 'classroom: http://127.0.0.1:PORT/' line within 30 s (got '$EDGE_BASE')"
EDGE_PORT=${BASH_REMATCH[1]}
EDGE_BASE=${EDGE_BASE%/}
wait_tcp "$EDGE_PORT" "$EDGE_PID" "shanlu edge run"
# edge run syncs once at start: wait for that pass to end so it does not overlap the load
for ((i = 0; i < TIMEOUT * 10; i++)); do
    grep -q 'sync complete' "$WD/edge-run.err" && break
    if grep -qE 'sync failed|files missing' "$WD/edge-run.err"; then
        die "shanlu edge run's start-up sync did not complete: $(grep -E 'sync failed|files missing' "$WD/edge-run.err" | head -n 3)"
    fi
    kill -0 "$EDGE_PID" 2>/dev/null || die "shanlu edge run exited: $(tail -n 10 "$WD/edge-run.err")"
    sleep 0.1
done
grep -q 'sync complete' "$WD/edge-run.err" || die "shanlu edge run logged no 'sync complete' within ${TIMEOUT}s"
log "edge serving on $EDGE_BASE (pid $EDGE_PID)"

prep "GET /api/v1/courses/$COURSE_ID" curl -sS --fail "$EDGE_BASE/api/v1/courses/$COURSE_ID"
cp -- "$OUT" "$WD/api-course.json"
read -r API_URL API_HASH < <(python3 - "$WD/api-course.json" "$FILE_BYTES" <<'PY'
import json, sys
course = json.load(open(sys.argv[1]))
size = int(sys.argv[2])
files = [f for lesson in course.get("lessons", []) for f in lesson.get("files", [])
         if f.get("path") == "video.mp4"]
if len(files) != 1:
    sys.exit(f"expected one video.mp4 in the course, found {len(files)}")
f = files[0]
problems = []
if f.get("size") != size: problems.append(f"size {f.get('size')} != {size}")
if f.get("media_type") != "video/mp4": problems.append(f"media_type {f.get('media_type')!r} != 'video/mp4'")
if f.get("held") is not True: problems.append("held is not true")
if not str(f.get("url", "")).startswith("/"): problems.append(f"url {f.get('url')!r} is not a path")
if problems:
    sys.exit("edge API entry for video.mp4: " + "; ".join(problems))
print(f["url"], f["blake3"])
PY
) || die "the edge's JSON API did not list video.mp4 as expected (see above)"
[[ -n "${API_URL:-}" && -n "${API_HASH:-}" ]] || die "could not read the file URL from the edge's JSON API"
if [[ "$EDGE_URL" == api ]]; then EDGE_PATH=$API_URL; else EDGE_PATH="/files/$API_HASH"; fi
note edge_path "$EDGE_PATH"
note api_url "$API_URL"

# ---------------------------------------------------------------------------
# 5. nginx serving the same bytes
# ---------------------------------------------------------------------------
NGINX_PORT=$(free_port)
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"   # workers must read the 0700 scratch folder
cat >"$WD/nginx/nginx.conf" <<EOF
# nginx for tools/bench/serve.sh: HTTP on $LOOP only, serving a copy of the lesson video.
$user_line
worker_processes auto;
worker_rlimit_nofile 65536;
daemon off;
pid $WD/nginx/nginx.pid;
error_log $WD/nginx/error.log warn;
events { worker_connections 8192; }
http {
    types { video/mp4 mp4; text/html html; }
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $WD/nginx/tmp/body;
    proxy_temp_path $WD/nginx/tmp/proxy;
    fastcgi_temp_path $WD/nginx/tmp/fastcgi;
    uwsgi_temp_path $WD/nginx/tmp/uwsgi;
    scgi_temp_path $WD/nginx/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen $LOOP:$NGINX_PORT;
        root $WWW;
    }
}
EOF
prep "nginx -t" nginx -t -q -p "$WD/nginx/" -e "$WD/nginx/error.log" -c "$WD/nginx/nginx.conf"
nginx -p "$WD/nginx/" -e "$WD/nginx/error.log" -c "$WD/nginx/nginx.conf" >"$WD/nginx/stdout" 2>&1 &
NGINX_PID=$!
wait_tcp "$NGINX_PORT" "$NGINX_PID" nginx
sleep 0.2
mapfile -t NGINX_PIDS < <(echo "$NGINX_PID"; pgrep -P "$NGINX_PID")
NGINX_BASE="http://$LOOP:$NGINX_PORT"
log "nginx serving on $NGINX_BASE (master $NGINX_PID, $((${#NGINX_PIDS[@]} - 1)) workers)"

declare -A URL_OF=([edge]="$EDGE_BASE$EDGE_PATH" [nginx]="$NGINX_BASE/video.mp4")
declare -A PIDS_OF=([edge]="$EDGE_PID" [nginx]="${NGINX_PIDS[*]}")

# ---------------------------------------------------------------------------
# 6. Correctness checks with curl: 206, Content-Range, bytes; full GET
# ---------------------------------------------------------------------------
log "warm-up: reading the source, the nginx copy and the edge's store once (untimed)"
bounded "$TIMEOUT" bash -c 'set -o pipefail; find "$@" -type f -print0 | xargs -0 -r cat >/dev/null' _ \
    "$SRC" "$WWW" "$EDGE" || die "warm-up read failed"

check_range() {  # check_range SERVER A LEN
    local server=$1 a=$2 len=$3 b hdr got code cr clen ctype
    b=$((a + len - 1))
    hdr="$WD/check/headers"
    got="$WD/check/got"
    code=$(curl -sS -o "$got" -D "$hdr" -w '%{http_code}' -H "Range: bytes=$a-$b" "${URL_OF[$server]}") ||
        die "$server: curl of range $a-$b failed"
    [[ "$code" == 206 ]] || die "$server: Range: bytes=$a-$b answered $code, expected 206"
    cr=$(awk 'tolower($1) == "content-range:" {sub(/\r$/, ""); print $2, $3}' "$hdr")
    [[ "$cr" == "bytes $a-$b/$FILE_BYTES" ]] || die "$server: Content-Range '$cr', expected 'bytes $a-$b/$FILE_BYTES'"
    clen=$(awk 'tolower($1) == "content-length:" {sub(/\r$/, ""); print $2}' "$hdr")
    [[ "$clen" == "$len" ]] || die "$server: Content-Length '$clen' for a $len-byte range"
    ctype=$(awk 'tolower($1) == "content-type:" {sub(/\r$/, ""); print $2}' "$hdr")
    [[ "$ctype" == video/mp4* ]] || die "$server: Content-Type '$ctype', expected video/mp4"
    dd if="$SRC" of="$WD/check/want" iflag=skip_bytes,count_bytes skip="$a" count="$len" status=none
    cmp -s "$got" "$WD/check/want" || die "$server: the bytes of range $a-$b differ from the source file"
}
log "checks: 206 + Content-Range + bytes at 4 offsets, and one full GET, on each server"
mid=$(((FILE_BYTES / 2 - RANGE_BYTES / 2) | 1))   # odd: an unaligned offset
for server in edge nginx; do
    check_range "$server" 0 "$RANGE_BYTES"
    check_range "$server" "$mid" "$RANGE_BYTES"
    check_range "$server" "$((FILE_BYTES - RANGE_BYTES))" "$RANGE_BYTES"
    check_range "$server" "$((FILE_BYTES - 1))" 1
    code=$(curl -sS -o "$WD/check/full" -w '%{http_code}' "${URL_OF[$server]}") || die "$server: full GET failed"
    [[ "$code" == 200 ]] || die "$server: full GET answered $code, expected 200"
    cmp -s "$WD/check/full" "$SRC" || die "$server: the full GET differs from the source file"
    rm -f -- "$WD/check/full"
    note "headers|$server" "$(awk '{sub(/\r$/, "")} NR > 1 && NF {printf "%s%s", sep, $0; sep = "; "}' "$WD/check/headers")"
done

# ---------------------------------------------------------------------------
# 7. Load: wrk, alternating edge and nginx
# ---------------------------------------------------------------------------
RSS_FILE="$WD/rss-sample"
RSS_PEAK=0 RSS_SAMPLES=0
# start_sampler / stop_sampler: VmRSS of the edge every 50 ms while the sampler runs; on
# SIGTERM the sampler writes "PEAK_KB SAMPLES" to $RSS_FILE, which stop_sampler folds into
# RSS_PEAK and RSS_SAMPLES.
start_sampler() {
    rm -f -- "$RSS_FILE"
    (
        trap - EXIT INT
        peak=0 n=0
        trap 'echo "$peak $n" >"$RSS_FILE.tmp" && mv -f -- "$RSS_FILE.tmp" "$RSS_FILE"; exit 0' TERM
        while kill -0 "$EDGE_PID" 2>/dev/null; do
            while read -r k v _; do
                if [[ "$k" == VmRSS: ]]; then
                    n=$((n + 1))
                    if ((v > peak)); then peak=$v; fi
                    break
                fi
            done <"/proc/$EDGE_PID/status" 2>/dev/null || true
            sleep 0.05
        done
    ) &
    SAMPLER_PID=$!
}
stop_sampler() {
    local peak n
    stop_pid "$SAMPLER_PID"
    SAMPLER_PID=""
    [[ -s "$RSS_FILE" ]] || die "the RSS sampler wrote nothing"
    read -r peak n <"$RSS_FILE"
    ((n > 0)) || die "the RSS sampler read no VmRSS from /proc/$EDGE_PID/status"
    ((peak > RSS_PEAK)) && RSS_PEAK=$peak
    RSS_SAMPLES=$((RSS_SAMPLES + n))
}

# run_wrk SERVER CONNS DURATION SEED OUTBASE: runs wrk; leaves OUTBASE.txt (wrk's
# output) and OUTBASE.kv (range.lua's done() line); fails on any error
run_wrk() {
    local server=$1 conns=$2 dur=$3 seed=$4 base=$5 rc=0
    RANGE_OUT="$base.kv" bounded "$TIMEOUT" wrk -t "$THREADS" -c "$conns" -d "$dur" \
        --timeout "$WRK_TIMEOUT" --latency -s "$HELPERS/range.lua" "${URL_OF[$server]}" \
        -- "$FILE_BYTES" "$RANGE_BYTES" "$ALIGN" "$seed" >"$base.txt" 2>&1 || rc=$?
    if ((rc != 0)) || [[ ! -s "$base.kv" ]]; then
        cat "$base.txt" >&2
        die "wrk against $server ($conns connections) failed (exit $rc)"
    fi
    local -A kv=()
    local pair
    local -a pairs
    read -r -a pairs <"$base.kv"
    for pair in "${pairs[@]}"; do kv[${pair%%=*}]=${pair#*=}; done
    local errs="connect ${kv[err_connect]} read ${kv[err_read]} write ${kv[err_write]} timeout ${kv[err_timeout]} status ${kv[err_status]}"
    if ((kv[err_connect] + kv[err_read] + kv[err_write] + kv[err_timeout] + kv[err_status] > 0)); then
        cat "$base.txt" >&2
        die "wrk against $server ($conns connections) saw errors: $errs (status = responses outside 200-399)"
    fi
    ((kv[requests] > 0)) || { cat "$base.txt" >&2; die "wrk against $server ($conns connections) completed no request"; }
    # Every answer must be RANGE_BYTES of body plus headers (a few hundred bytes). wrk's
    # byte count also holds the partly read answers in flight when the run stops (up to
    # one per connection), which its request count does not.
    local lo=$((kv[requests] * RANGE_BYTES)) hi=$(((kv[requests] + conns) * (RANGE_BYTES + 4096)))
    if ((kv[bytes] < lo || kv[bytes] > hi)); then
        cat "$base.txt" >&2
        die "wrk against $server: ${kv[bytes]} bytes read for ${kv[requests]} answers, expected $lo..$hi (was the Range honoured?)"
    fi
}

log "wrk warm-up: $WARMUP per server (untimed)"
for server in edge nginx; do
    run_wrk "$server" "${CONN_LIST[0]}" "$WARMUP" 999 "$WD/wrk/warmup-$server"
done
note rss_idle_kb "$(status_kb "$EDGE_PID" VmRSS)"
note hwm_before_kb "$(status_kb "$EDGE_PID" VmHWM)"

for ((rep = 1; rep <= REPEATS; rep++)); do
    for conns in "${CONN_LIST[@]}"; do
        if ((rep % 2)); then order=(edge nginx); else order=(nginx edge); fi
        for server in "${order[@]}"; do
            base="$WD/wrk/$rep-$conns-$server"
            sample=0
            [[ "$server" == edge && "$conns" == "$MAX_CONNS" ]] && sample=1
            # shellcheck disable=SC2086
            c0=$(proc_cpu ${PIDS_OF[$server]})
            ((sample)) && start_sampler
            run_wrk "$server" "$conns" "$DURATION" "$((rep * 100000 + conns))" "$base"
            if ((sample)); then stop_sampler; fi
            # shellcheck disable=SC2086
            c1=$(proc_cpu ${PIDS_OF[$server]})
            kill -0 "$EDGE_PID" 2>/dev/null || die "shanlu edge run died during the load: $(tail -n 10 "$WD/edge-run.err")"
            kill -0 "$NGINX_PID" 2>/dev/null || die "nginx died during the load: $(tail -n 10 "$WD/nginx/error.log")"
            printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$conns" "$server" \
                "$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b - a}')" "$(cat "$base.kv")" >>"$RESULTS"
            log "  repeat $rep, $conns conns, $server: $(awk -F'\t' 'END{print $5}' "$RESULTS" |
                awk '{for (i = 1; i <= NF; i++) {split($i, p, "="); v[p[1]] = p[2]}
                      printf "%.0f req/s, %.0f MiB/s, p50 %.1f ms, p99 %.1f ms",
                      v["requests"] / (v["duration_us"] / 1e6), v["bytes"] / 1048576 / (v["duration_us"] / 1e6),
                      v["lat_p50"] / 1000, v["lat_p99"] / 1000}')"
        done
    done
done
note rss_peak_kb "$RSS_PEAK"
note rss_samples "$RSS_SAMPLES"
note hwm_end_kb "$(status_kb "$EDGE_PID" VmHWM)"
note rss_end_kb "$(status_kb "$EDGE_PID" VmRSS)"
if grep -qiE 'warn|error' "$WD/edge-run.err"; then
    note edge_log "$(grep -iE 'warn|error' "$WD/edge-run.err" | head -n 5 | paste -sd '|' -)"
fi

# ---------------------------------------------------------------------------
# 8. Report
# ---------------------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
git_rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
git -C "$REPO_ROOT" diff --quiet HEAD -- 2>/dev/null || git_rev="$git_rev (work tree has uncommitted changes)"
[[ -n "${SHANLU_BIN:-}" ]] && git_rev="$git_rev; shanlu taken from SHANLU_BIN, not built by this script"
M_NPROC=$(nproc)
M_CPU=${cpu_model:-$(uname -m)}
M_KERNEL=$(uname -srm)
M_MEM="$((mem_kb / 1024)) MiB"
M_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
M_OS=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}") || M_OS=unknown
V_GIT=$git_rev
V_SHANLU="$("$SHANLU" --version 2>/dev/null | head -n1), $SHANLU"
V_NGINX=$(nginx -v 2>&1 | head -n1)
V_WRK=$(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2) || true
NGINX_WORKERS=$((${#NGINX_PIDS[@]} - 1))
export RESULTS NOTES CMDLINE FILE_BYTES RANGE_BYTES ALIGN THREADS DURATION REPEATS MAX_CONNS
export M_NPROC M_CPU M_KERNEL M_MEM M_LOAD M_OS V_GIT V_SHANLU V_NGINX V_WRK NGINX_WORKERS
python3 "$HELPERS/report.py"
log "done"
