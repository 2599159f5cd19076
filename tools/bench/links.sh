#!/usr/bin/env bash
# Bad-link benchmark for shanlu (issue 6): a fresh edge sync of a deterministic course of
# incompressible files across emulated rural links (tools/linksim: two network namespaces
# joined by a delayed, lossy, rate-limited or cut link), side by side with the same files
# fetched by curl from nginx and by rsync from an rsync daemon over the very same link.
# Prints a Markdown table (link x contender -> time, goodput, link bytes / payload) with
# PASS/FAIL target checks, and keeps it with every run's logs.
#
# Usage:
#   bash tools/bench/links.sh                (settings through the environment, below)
#   SIZE_MB=10 PROFILES="a d" bash tools/bench/links.sh          # a quick smoke run
#   PARALLEL=1 CONGESTION=bbr bash tools/bench/links.sh          # the full run, ~30 min
#   SIZE_MB=10 PROFILES="a b c" CONTENDERS="quic curl" bash tools/bench/links.sh
#   SIZE_MB=20 PROFILES="a b c" CONTENDERS="quic curl" bash tools/bench/links.sh
#                                            # issue 12: fresh syncs of small courses vs curl
#   CASE=small-update bash tools/bench/links.sh
#                                            # issue 12: a one-page edit + one 300 KB file
#                                            # over (b), against rsync of the same update
#                                            # (tools/bench/small-update.sh; REPEAT=N, LINK=...)
#
# Environment (defaults in brackets):
#   CASE=fresh|small-update   what to measure [fresh: everything below]
#   SIZE_MB=N        course size in MB (10^6 bytes) [200]: a few 20-50 MB "videos" (one per
#                    lesson, fewer and smaller for small N) and ~4 % in small files
#   PROFILES="..."   links to run, in order, from a b c d (see "Links") [a b c d]
#   CONTENDERS="..." clients to run on each link, in order, from quic http curl rsync
#                    [quic http curl rsync]
#   CONGESTION=C     e.g. cubic, newreno, bbr: passed as `origin serve --congestion C`
#                    (which checks the name) [unset: the origin's default]. TCP (nginx, rsync, the HTTPS fallback) uses the
#                    kernel's default, which the report shows.
#   PARALLEL=0|1     1: run the profiles at the same time, each on its own link, namespaces
#                    and copy of the origin (the contenders of one profile still run one
#                    after another) [0]. 200 MB: ~30 min instead of ~60, when nothing
#                    hits TIMEOUT.
#   RESULTS_DIR=DIR  each run writes DIR/<date-time>-<pid>/ (and points DIR/latest at it)
#                    [target/bench-links, in the repo]
#   TIMEOUT=SECS     limit on each contender's transfer, retries included [1200]; a
#                    contender that hits it is reported as "timeout" with the share it got
#   START_AT=SECS    every transfer starts this long after its link came up [5], so the
#                    outage schedule of (d) (first cut 120 s after the link starts) falls
#                    at the same point of every contender's transfer. START_AT=110 makes
#                    a small course meet the first cut.
#   CURL_PARALLEL=N  0: curl fetches the files one after another over one connection;
#                    N >= 1: `--parallel --parallel-max N` (up to N TCP connections) [4].
#                    At 60 MB, 0, 4 and 8 all took 52-53 s on (a); on (c) 0 took 390 s
#                    (connections stalled by loss bursts, one retry), 4 took 140 s, 8 135 s.
#   SEED=S           seed of the course generator and of every link's loss [20240601]
#   WORKDIR=DIR      parent of the scratch folder (course, origins, downloads); the script
#                    makes DIR/shanlu-links-bench.XXXXXX and removes only that [/var/tmp]
#   SHANLU_BIN=P, LINKSIM_BIN=P
#                    use these binaries; without both, the script runs
#                    `cargo build --release -p tools -p linksim` and uses target/release/
#
# Links (shanlu-linksim flags; both directions; each link also gets --seed SEED):
#   a  --rate 10Mbit --delay 50ms --loss 1%              100 ms RTT, 1 % random loss
#   b  --rate 20Mbit --delay 300ms --loss 1%             600 ms RTT (satellite), 1 % loss
#   c  --rate 4Mbit --delay 150ms --gilbert 0.5%,16.7%   300 ms RTT, bursty loss (mean
#                                                        2.9 %, bursts of 6 packets)
#   d  --rate 10Mbit --delay 50ms --outage 120s,30s      cut for 30 s every 2 minutes
#
# What runs. Once: the course (python3, random.Random(SEED), fixed mtimes), its BLAKE3
# list (b3sum), `shanlu origin init` and `shanlu publish` into a template origin folder.
# Then for every profile, for every contender, a fresh link (a new shanlu-linksim, so the
# outage schedule restarts), the server in the origin namespace, the client in the edge
# namespace (`ip netns exec`), and after the transfer the server and the link are stopped
# (the link's final counters are read from its --stats-file):
#   quic   `shanlu origin serve --data O --quic IP:4433 --http IP:8081 --https IP:8443
#          [--congestion C]` (O: this profile's copy of the template, one `origin add-edge`
#          per edge); `shanlu edge init --origin quic://IP:4433 --origin-key K
#          --origin-cert F --token T --fallback https://IP:8443 --subscribe all`
#          (untimed), then timed: `shanlu edge sync --data E --transport quic --json`.
#          One run: shanlu reconnects by itself within a sync.
#   http   the same, timed `shanlu edge sync --data E --transport http --json` (the
#          HTTPS fallback, over TCP)
#   curl   nginx (own config, plain HTTP on IP:80, sendfile) serving the course folder;
#          timed: curl in a retry loop. Each try fetches every file not yet complete,
#          `-C -` resuming partial ones, from a -K list: sequentially over one
#          connection, or with --parallel (CURL_PARALLEL). --speed-limit 1000
#          --speed-time 60 gives up on a stalled connection so the loop can retry.
#   rsync  `rsync --daemon --no-detach` (module "course", read only) on IP:873; timed:
#          `rsync -a --partial --timeout=60 rsync://IP/course/ DEST/` rerun until it
#          exits 0 (rsync cannot resume within one run). No -z: the files do not compress.
# Every retry loop stops at TIMEOUT; the time reported is the whole loop's.
#
# Checks. curl and rsync: the download equals the course file for file, byte for byte.
# shanlu: for every course file, its blob E/store/blobs/ab/cd/<blake3> exists and
# `b3sum --check` confirms its bytes; `edge status --json` is kept in the run's logs.
#
# Measures (per profile x contender):
#   time      wall clock of the timed command or retry loop (bash $EPOCHREALTIME)
#   goodput   payload bytes * 8 / time / link rate; for (d) the cuts are included (at most
#             75 % over whole 2-minute periods)
#   link/payload   IP bytes the link delivered origin -> edge (linksim "down"
#             "bytes_carried", headers included) over the course's bytes
#             (packets the link dropped are not in it)
#   resent    estimate of data delivered twice (e.g. re-fetched after a cut): (link bytes
#             - payload - packets x header) / payload, with header = 64 B a packet for
#             QUIC (IPv4 20 + UDP 8 + short header <= 13 + AEAD tag 16 + STREAM frame
#             header ~7) and 52 B for TCP (IPv4 20 + TCP 20 + timestamps 12; TLS records
#             add ~0.1 % for `http`)
#   sent/payload   IP bytes the origin side offered to the link ("bytes_offered"),
#             dropped packets included, over the course's bytes
# Targets (printed with the table): QUIC goodput >= 90 % on (a), >= 80 % on (b), >= 85 %
# on (c); QUIC never slower than curl on any link; on (d) QUIC link bytes <= 1.01 x payload
# + 64 B per packet carried.
#
# Results: RESULTS_DIR/<date-time>-<pid>/summary.md (the report, also printed), results.tsv
# (one line per run), bench.log, logs/<profile>-<contender>/ (the link's env and counters,
# server and client output, edge status, nginx/rsync logs).
#
# Exit status: 0 when every run finished (targets may FAIL and contenders may time out:
# this is a report), 1 when a run failed, a download did not match the course, or
# something needed is missing.
#
# Dependencies (root: namespaces and TUN devices; installed with apt-get if missing):
# nginx, curl, rsync, b3sum, iproute2 (ip), util-linux (setsid), python3, coreutils.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

SIZE_MB=${SIZE_MB:-200}
PROFILES=${PROFILES:-a b c d}
CONTENDERS=${CONTENDERS:-quic http curl rsync}
CONGESTION=${CONGESTION:-}
PARALLEL=${PARALLEL:-0}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/target/bench-links}
TIMEOUT=${TIMEOUT:-1200}
START_AT=${START_AT:-5}
CURL_PARALLEL=${CURL_PARALLEL:-4}
SEED=${SEED:-20240601}
WORKDIR_PARENT=${WORKDIR:-/var/tmp}
COURSE_ID=links-course

CMDLINE=$(printf 'SIZE_MB=%q PROFILES=%q CONTENDERS=%q CONGESTION=%q PARALLEL=%q TIMEOUT=%q START_AT=%q CURL_PARALLEL=%q SEED=%q bash tools/bench/links.sh' \
    "$SIZE_MB" "$PROFILES" "$CONTENDERS" "$CONGESTION" "$PARALLEL" "$TIMEOUT" "$START_AT" "$CURL_PARALLEL" "$SEED")

# The links: shanlu-linksim flags, rate in bit/s, a description.
declare -A LINK_ARGS=(
    [a]="--rate 10Mbit --delay 50ms --loss 1%"
    [b]="--rate 20Mbit --delay 300ms --loss 1%"
    [c]="--rate 4Mbit --delay 150ms --gilbert 0.5%,16.7%"
    [d]="--rate 10Mbit --delay 50ms --outage 120s,30s"
)
declare -A LINK_RATE=([a]=10000000 [b]=20000000 [c]=4000000 [d]=10000000)
declare -A LINK_DESC=(
    [a]="10 Mbit/s, 100 ms RTT, 1 % loss"
    [b]="20 Mbit/s, 600 ms RTT (satellite), 1 % loss"
    [c]="4 Mbit/s, 300 ms RTT, bursty loss (Gilbert 0.5 %, 16.7 %)"
    [d]="10 Mbit/s, 100 ms RTT, cut 30 s every 120 s"
)
# Fixed addresses inside each profile's origin namespace.
QUIC_PORT=4433 HTTP_PORT=8081 HTTPS_PORT=8443 NGINX_PORT=80 RSYNC_PORT=873

# log and die write to a copy of the script's stderr (fd $LOGFD), so that messages from a
# trap never land in a file a command's stderr was redirected to. TAG names the profile
# inside a worker.
exec {LOGFD}>&2
TAG=""
BENCH_LOG=""
log() {
    local line
    printf -v line '[links-bench %(%H:%M:%S)T]%s %s' -1 "${TAG:+ ($TAG)}" "$*"
    printf '%s\n' "$line" >&"$LOGFD"
    [[ -z "$BENCH_LOG" ]] || printf '%s\n' "$line" >>"$BENCH_LOG"
}
die() {
    printf 'links.sh: error:%s %s\n' "${TAG:+ ($TAG)}" "$*" >&"$LOGFD"
    [[ -z "$BENCH_LOG" ]] || printf 'links.sh: error:%s %s\n' "${TAG:+ ($TAG)}" "$*" >>"$BENCH_LOG"
    exit 1
}
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; }
# shellcheck source=tools/bench/common.sh
source "$SCRIPT_DIR/common.sh"

if [[ "${CASE:-fresh}" == small-update ]]; then
    exec bash "$SCRIPT_DIR/small-update.sh"
fi
[[ "${CASE:-fresh}" == fresh ]] || die "CASE must be fresh or small-update"

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "no arguments are taken (settings come from the environment; see --help)" ;;
esac

# bounded (common.sh) runs a command under `timeout` as a background job; on a signal the
# handler stops that job's process group, then the EXIT trap cleans up.
CHILD=""
on_signal() {
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$1"
}

[[ "$SIZE_MB" =~ ^[0-9]+$ ]] && ((SIZE_MB >= 2 && SIZE_MB <= 10000)) || die "SIZE_MB must be an integer 2..10000"
read -r -a PROFILE_LIST <<<"$PROFILES"
read -r -a CONTENDER_LIST <<<"$CONTENDERS"
((${#PROFILE_LIST[@]})) || die "PROFILES is empty"
((${#CONTENDER_LIST[@]})) || die "CONTENDERS is empty"
for p in "${PROFILE_LIST[@]}"; do
    [[ -n "${LINK_ARGS[$p]:-}" ]] || die "unknown profile '$p' in PROFILES (a, b, c or d)"
done
NEED_SHANLU=0
for c in "${CONTENDER_LIST[@]}"; do
    case "$c" in
        quic|http) NEED_SHANLU=1 ;;
        curl|rsync) ;;
        *) die "unknown contender '$c' in CONTENDERS (quic, http, curl or rsync)" ;;
    esac
done
[[ -z "$CONGESTION" || "$CONGESTION" =~ ^[a-z0-9_-]+$ ]] || die "CONGESTION must be a name such as cubic, newreno or bbr"
[[ "$PARALLEL" == 0 || "$PARALLEL" == 1 ]] || die "PARALLEL must be 0 or 1"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && ((TIMEOUT >= 10)) || die "TIMEOUT must be an integer >= 10 (seconds)"
[[ "$START_AT" =~ ^[0-9]+$ ]] && ((START_AT >= 1 && START_AT <= 600)) || die "START_AT must be an integer 1..600 (seconds)"
[[ "$CURL_PARALLEL" =~ ^[0-9]+$ ]] && ((CURL_PARALLEL <= 64)) || die "CURL_PARALLEL must be an integer 0..64"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer"
[[ -d "$WORKDIR_PARENT" ]] || die "WORKDIR=$WORKDIR_PARENT is not a directory"
WORKDIR_PARENT=$(cd "$WORKDIR_PARENT" && pwd)
[[ "$RESULTS_DIR" == /* ]] || RESULTS_DIR="$REPO_ROOT/$RESULTS_DIR"

# ---------------------------------------------------------------------------
# 1. Dependencies
# ---------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "needs root: shanlu-linksim makes network namespaces and TUN devices"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing (modprobe tun), shanlu-linksim needs it"
declare -A PKG_OF=([nginx]=nginx [curl]=curl [rsync]=rsync [b3sum]=b3sum [ip]=iproute2
                   [setsid]=util-linux [python3]=python3)
export PATH="$PATH:/usr/sbin:/sbin"   # nginx and ip live in /usr/sbin, /sbin
missing=()
for c in nginx curl rsync b3sum ip setsid python3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${PKG_OF[$c]}")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here; install them by hand"
    log "installing missing packages: ${missing[*]} (apt-get update first)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    # Debian's nginx package would start its default site on port 80 of every address:
    # keep apt from starting services while it installs (only if no policy exists yet).
    POLICY_RC=0
    if [[ " ${missing[*]} " == *" nginx "* && ! -e /usr/sbin/policy-rc.d ]]; then
        trap '((POLICY_RC)) && rm -f /usr/sbin/policy-rc.d' EXIT
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d ||
            die "could not write /usr/sbin/policy-rc.d"
        POLICY_RC=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
        die "apt-get install ${missing[*]} failed"
    if ((POLICY_RC)); then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC=0
        trap - EXIT
        log "note: Debian's nginx service was installed but not started (it may be enabled at boot: systemctl disable nginx)"
    fi
fi
for c in nginx curl rsync b3sum ip setsid python3 timeout find awk sort; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found"
done

if [[ -n "${SHANLU_BIN:-}" && -n "${LINKSIM_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN LINKSIM=$LINKSIM_BIN
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup), or set SHANLU_BIN and LINKSIM_BIN"
    log "building: cargo build --release -p tools -p linksim (in $REPO_ROOT)"
    (cd "$REPO_ROOT" && bounded 3600 cargo build --release -p tools -p linksim >&2) ||
        die "cargo build --release -p tools -p linksim failed"
    target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    [[ "$target" == /* ]] || target="$REPO_ROOT/$target"
    SHANLU=${SHANLU_BIN:-$target/release/shanlu}
    LINKSIM=${LINKSIM_BIN:-$target/release/shanlu-linksim}
fi
for b in "$SHANLU" "$LINKSIM"; do
    [[ -f "$b" && -x "$b" ]] || die "$b is not an executable file"
done
SHANLU="$(cd "$(dirname "$SHANLU")" && pwd)/$(basename "$SHANLU")"
LINKSIM="$(cd "$(dirname "$LINKSIM")" && pwd)/$(basename "$LINKSIM")"
"$LINKSIM" --help >/dev/null 2>&1 || die "'$LINKSIM --help' failed"

# has_flag "SUBCOMMAND" FLAG: whether `shanlu SUBCOMMAND --help` lists FLAG
has_flag() {
    local help
    # shellcheck disable=SC2086
    help=$("$SHANLU" $1 --help 2>/dev/null) || return 1
    [[ "$help" =~ (^|[[:space:]])$2([[:space:]=]|$) ]]
}
for sub in "origin init" "origin add-edge" "origin serve" publish "edge init" "edge sync" "edge status"; do
    # shellcheck disable=SC2086
    "$SHANLU" $sub --help >/dev/null 2>&1 || die "'$SHANLU $sub --help' failed: that command is missing"
done
if ((NEED_SHANLU)); then
    lacking=()
    has_flag "origin serve" --https || lacking+=("origin serve --https")
    has_flag "edge init" --fallback || lacking+=("edge init --fallback")
    has_flag "edge sync" --transport || lacking+=("edge sync --transport")
    [[ -z "$CONGESTION" ]] || has_flag "origin serve" --congestion || lacking+=("origin serve --congestion")
    ((${#lacking[@]} == 0)) ||
        die "this shanlu ($SHANLU) has no: ${lacking[*]}; rebuild it, or leave quic/http out of CONTENDERS"
fi

# ---------------------------------------------------------------------------
# Scratch folder, results folder, workers; all cleaned up on every exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-links-bench.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
WORKERS=()   # pids of the profile workers (background subshells)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local w
    for w in "${WORKERS[@]}"; do
        kill -TERM "$w" 2>/dev/null || true
    done
    for w in "${WORKERS[@]}"; do
        wait "$w" 2>/dev/null || true
    done
    if [[ -n "${WD:-}" && -d "$WD" ]]; then
        log "removing $WD"
        rm -rf -- "$WD"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

STAMP=$(date -u +%Y%m%d-%H%M%S)-$$
RUN_DIR="$RESULTS_DIR/$STAMP"
mkdir -p "$RESULTS_DIR" && mkdir "$RUN_DIR" "$RUN_DIR/logs" || die "cannot create $RUN_DIR"
ln -sfn "$STAMP" "$RESULTS_DIR/latest"
BENCH_LOG="$RUN_DIR/bench.log"
RESULTS="$RUN_DIR/results.tsv"
printf 'profile\tcontender\tstatus\ttries\treconnects\ttime_s\tpayload_bytes\tgot_bytes\tdown_bytes\tdown_packets\tdown_offered_bytes\tup_bytes\tdropped_loss\tdropped_queue\tdropped_outage\n' >"$RESULTS"
log "results in $RUN_DIR"

# origin template + course + one origin copy per profile + (with PARALLEL) one download
# per profile at a time, with slack
n_profiles=${#PROFILE_LIST[@]}
need_kb=$((SIZE_MB * 1000 * (3 + 2 * n_profiles) + 262144))
avail_kb=$(df -Pk "$WD" | awk 'NR==2{print $4}')
((avail_kb >= need_kb)) ||
    die "not enough space in $WORKDIR_PARENT: need ~$((need_kb / 1024)) MiB, have $((avail_kb / 1024)) MiB"

OUT="$WD/cmd.stdout"
ERR="$WD/cmd.stderr"
fail_cmd() {
    local what=$1 rc=$2
    printf 'links.sh: error: %s failed (exit %s)\n' "$what" "$rc" >&"$LOGFD"
    if [[ -s "$ERR" ]]; then
        printf -- '--- last lines of its stderr ---\n' >&"$LOGFD"
        tail -n 20 "$ERR" >&"$LOGFD"
    fi
    ((rc == 124)) && printf 'links.sh: it hit the limit of %ss\n' "$TIMEOUT" >&"$LOGFD"
    exit 1
}
field() { awk -v k="$1" 'index($0, k ": ") == 1 {print substr($0, length(k) + 3); exit}' "$OUT"; }
tree_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }

# ---------------------------------------------------------------------------
# 2. The course, its hashes, the template origin
# ---------------------------------------------------------------------------
COURSE="$WD/$COURSE_ID"
log "generating a ${SIZE_MB} MB course in $COURSE (seed $SEED)"
cat >"$WD/gen-course.py" <<'PY'
# Deterministic course: lessons NN-lesson/ with one large "video" each and small files
# (pictures, audio clips, notes), all random bytes (incompressible). Same arguments, same
# bytes and mtimes, on any machine (random.Random(seed).randbytes, Python >= 3.9).
import os, random, sys
out, size_mb, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
total = size_mb * 10**6
small_budget = total * 4 // 100
media_budget = total - small_budget
n_media = max(1, round(media_budget / 35e6))           # ~35 MB each, 20-50 MB at 200 MB
weights = [rng.uniform(0.8, 1.2) for _ in range(n_media)]
media = [media_budget * w // sum(weights) for w in weights]
media = [int(m) for m in media]
media[-1] += media_budget - sum(media)
small = []
while sum(small) < small_budget:
    small.append(min(rng.randint(16 << 10, 512 << 10), small_budget - sum(small)))
kinds = [("img", "fig", "jpg"), ("audio", "clip", "mp3"), ("notes", "sheet", "pdf")]
files = []
for i, size in enumerate(media):
    files.append((f"{i + 1:02d}-lesson/video/lecture-{i + 1:02d}.mp4", size))
for j, size in enumerate(small):
    folder, stem, ext = kinds[j % len(kinds)]
    files.append((f"{j % n_media + 1:02d}-lesson/{folder}/{stem}-{j + 1:03d}.{ext}", size))
BLOCK = 4 << 20
for rel, size in files:
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n
    os.utime(path, (1_700_000_000, 1_700_000_000))
print(f"{len(files)} files, {sum(s for _, s in files)} bytes, media MB: "
      + " ".join(f"{m / 1e6:.1f}" for m in media), file=sys.stderr)
PY
# (a file, not stdin: `bounded` runs its command in the background, with stdin /dev/null)
bounded 1800 python3 "$WD/gen-course.py" "$COURSE" "$SIZE_MB" "$SEED" 2>"$ERR" || fail_cmd "course generator" $?
log "  $(tail -n 1 "$ERR")"
PAYLOAD=$(tree_bytes "$COURSE")
N_FILES=$(find "$COURSE" -type f | wc -l)
# "HASH  RELATIVE/PATH" for every file
(cd "$COURSE" && find . -type f -printf '%P\n' | sort | xargs -d '\n' b3sum --) >"$WD/course.b3" ||
    die "b3sum of the course failed"
(cd "$COURSE" && find . -type f -printf '%P\t%s\n' | sort) >"$WD/course.sizes"

TEMPLATE="$WD/origin-template"
OUT="$WD/cmd.stdout"
if ((NEED_SHANLU)); then
    prep "shanlu origin init" "$SHANLU" origin init --data "$TEMPLATE"
    ORIGIN_KEY=$(field "origin key")
    ORIGIN_CERT=$(field "origin certificate")
    [[ "$ORIGIN_KEY" =~ ^[0-9a-f]{64}$ ]] || die "origin init printed no 'origin key: <64 hex>' line"
    [[ "$ORIGIN_CERT" =~ ^[0-9a-f]{64}$ ]] || die "origin init printed no 'origin certificate: <64 hex>' line"
    log "publishing the course: shanlu publish"
    prep "shanlu publish" "$SHANLU" publish "$COURSE" --data "$TEMPLATE"
    cp -- "$OUT" "$RUN_DIR/publish.out"
fi

# ---------------------------------------------------------------------------
# 3. One run: a fresh link, a server in its origin namespace, a timed client in its
#    edge namespace, the link's counters, the check
# ---------------------------------------------------------------------------
LINK_PID="" SERVER_PID="" ORIGIN_NS="" EDGE_NS="" ORIGIN_IP="" LINK_T0=""

# stop_group PID: TERM the process group PID leads (a server started with setsid), wait
# up to 10 s, then KILL it
stop_group() {
    local pid=$1 i
    [[ -n "$pid" ]] || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# start_link PROFILE LOGDIR: sets LINK_PID, ORIGIN_NS, EDGE_NS, ORIGIN_IP, LINK_T0
start_link() {
    local p=$1 dir=$2 i key value
    # shellcheck disable=SC2086
    "$LINKSIM" ${LINK_ARGS[$p]} --seed "$SEED" --lifetime "$((TIMEOUT + START_AT + 300))s" \
        --stats-file "$dir/link.json" >"$dir/link.env" 2>"$dir/link.err" &
    LINK_PID=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^pid=' "$dir/link.env" 2>/dev/null && break
        kill -0 "$LINK_PID" 2>/dev/null || die "shanlu-linksim exited: $(tail -n 5 "$dir/link.err")"
        sleep 0.1
    done
    LINK_T0=$EPOCHREALTIME
    grep -q '^pid=' "$dir/link.env" || die "shanlu-linksim printed no pid= line within 30 s"
    ORIGIN_NS="" EDGE_NS="" ORIGIN_IP=""
    while IFS='=' read -r key value; do
        case "$key" in
            origin_ns) ORIGIN_NS=$value ;;
            edge_ns) EDGE_NS=$value ;;
            origin_ip) ORIGIN_IP=$value ;;
        esac
    done <"$dir/link.env"
    [[ -n "$ORIGIN_NS" && -n "$EDGE_NS" && "$ORIGIN_IP" =~ ^[0-9.]+$ ]] ||
        die "unexpected shanlu-linksim output: $(tr '\n' ' ' <"$dir/link.env")"
}

# stop_link: TERM the link (it deletes its namespaces and writes its final counters)
stop_link() {
    local i ns
    [[ -n "$LINK_PID" ]] || return 0
    kill -TERM "$LINK_PID" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$LINK_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$LINK_PID" 2>/dev/null || true
    wait "$LINK_PID" 2>/dev/null || true
    LINK_PID=""
    for ns in "$ORIGIN_NS" "$EDGE_NS"; do   # only if the link could not delete them itself
        if [[ -n "$ns" && -e "/run/netns/$ns" ]]; then ip netns delete "$ns" 2>/dev/null || true; fi
    done
}

# in_origin CMD...: start CMD in the origin namespace as a new process group: SERVER_PID
in_origin_server() {
    setsid ip netns exec "$ORIGIN_NS" "$@" &
    SERVER_PID=$!
}

# wait_tcp_ns PORT WHAT: until ORIGIN_IP:PORT accepts inside the origin namespace (the
# probe stays inside it and never crosses the link), or the server dies / 30 s
wait_tcp_ns() {
    local port=$1 what=$2 i
    for ((i = 0; i < 300; i++)); do
        if ip netns exec "$ORIGIN_NS" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ORIGIN_IP" "$port" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "$what exited before listening on $ORIGIN_IP:$port"
        sleep 0.1
    done
    die "$what did not listen on $ORIGIN_IP:$port within 30 s"
}

# wait_start: sleep until START_AT seconds after the link came up (in short naps, so a
# signal is handled promptly)
wait_start() {
    local left
    while :; do
        left=$(awk -v t0="$LINK_T0" -v now="$EPOCHREALTIME" -v s="$START_AT" \
            'BEGIN{d = t0 + s - now; printf "%.3f", (d > 0.5 ? 0.5 : (d > 0 ? d : 0))}')
        [[ "$left" != 0.000 ]] || return 0
        sleep "$left"
    done
}

# remaining DEADLINE: whole seconds left until DEADLINE (an $EPOCHREALTIME value), >= 0
remaining() { awk -v d="$1" -v now="$EPOCHREALTIME" 'BEGIN{r = int(d - now); print (r > 0 ? r : 0)}'; }

start_shanlu_origin() {  # start_shanlu_origin ORIGIN_DIR LOGDIR
    local origin=$1 dir=$2 i
    local args=(origin serve --data "$origin" --quic "$ORIGIN_IP:$QUIC_PORT" --http "$ORIGIN_IP:$HTTP_PORT"
                --https "$ORIGIN_IP:$HTTPS_PORT")
    [[ -z "$CONGESTION" ]] || args+=(--congestion "$CONGESTION")
    printf '%q ' "$SHANLU" "${args[@]}" >"$dir/server.cmd"
    in_origin_server "$SHANLU" "${args[@]}" >"$dir/server.out" 2>"$dir/server.err"
    for ((i = 0; i < 300; i++)); do
        grep -q '^quic:' "$dir/server.out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "shanlu origin serve exited: $(tail -n 10 "$dir/server.err")"
        sleep 0.1
    done
    grep -q '^quic:' "$dir/server.out" || die "shanlu origin serve printed no 'quic:' line within 30 s"
    wait_tcp_ns "$HTTPS_PORT" "shanlu origin serve (--https)"
}

start_nginx() {  # start_nginx DIR LOGDIR
    local conf=$1 dir=$2
    mkdir -p "$conf/tmp"
    cat >"$conf/nginx.conf" <<EOF
# nginx for tools/bench/links.sh: plain HTTP on the origin side of the emulated link.
user root;
worker_processes 1;
daemon off;
pid $conf/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    log_format bench '\$connection \$status \$body_bytes_sent \$request_time "\$request"';
    access_log $dir/nginx-access.log bench;
    client_body_temp_path $conf/tmp/body;
    proxy_temp_path $conf/tmp/proxy;
    fastcgi_temp_path $conf/tmp/fastcgi;
    uwsgi_temp_path $conf/tmp/uwsgi;
    scgi_temp_path $conf/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen $ORIGIN_IP:$NGINX_PORT;
        root $COURSE;
    }
}
EOF
    ip netns exec "$ORIGIN_NS" nginx -t -q -p "$conf/" -e "$dir/nginx-error.log" -c "$conf/nginx.conf" >"$dir/nginx-t.out" 2>&1 ||
        die "nginx -t failed: $(tail -n 5 "$dir/nginx-t.out")"
    in_origin_server nginx -p "$conf/" -e "$dir/nginx-error.log" -c "$conf/nginx.conf" \
        >"$dir/server.out" 2>"$dir/server.err"
    wait_tcp_ns "$NGINX_PORT" nginx
}

start_rsyncd() {  # start_rsyncd DIR LOGDIR
    local conf=$1 dir=$2
    mkdir -p "$conf"
    cat >"$conf/rsyncd.conf" <<EOF
# rsyncd for tools/bench/links.sh, on the origin side of the emulated link
use chroot = no
uid = root
gid = root
log file = $dir/rsyncd.log
pid file = $conf/rsyncd.pid
[course]
    path = $COURSE
    read only = yes
EOF
    in_origin_server rsync --daemon --no-detach --config="$conf/rsyncd.conf" --address="$ORIGIN_IP" \
        --port="$RSYNC_PORT" >"$dir/server.out" 2>"$dir/server.err"
    wait_tcp_ns "$RSYNC_PORT" "rsync --daemon"
}

# curl_list DEST BASE: a curl -K list of the course files not yet complete in DEST
curl_list() {
    python3 - "$WD/course.sizes" "$1" "$2" <<'PY'
import os, sys
from urllib.parse import quote
sizes, dest, base = sys.argv[1:]
for line in open(sizes, encoding="utf-8"):
    rel, size = line.rstrip("\n").split("\t")
    path = os.path.join(dest, rel)
    if os.path.isfile(path) and os.path.getsize(path) == int(size):
        continue
    print(f'url = "{base}/{quote(rel)}"')
    print(f'output = "{path}"')
PY
}

# same_files A B: the same regular files with the same bytes; prints the first differences
same_files() {
    python3 - "$1" "$2" <<'PY'
import filecmp, os, sys
def files(t):
    return {os.path.relpath(os.path.join(r, f), t) for r, _, fs in os.walk(t) for f in fs}
a, b = sys.argv[1:]
fa, fb = files(a), files(b)
bad = [f"only in {a}: {p}" for p in sorted(fa - fb)] + [f"only in {b}: {p}" for p in sorted(fb - fa)]
bad += [f"differs: {p}" for p in sorted(fa & fb)
        if not filecmp.cmp(os.path.join(a, p), os.path.join(b, p), shallow=False)]
print("\n".join(bad[:5]))
sys.exit(1 if bad else 0)
PY
}

# check_blobs EDGE: every course file's blob is in EDGE/store/blobs with the right BLAKE3
check_blobs() {
    local store="$1/store/blobs"
    awk -v s="$store" '{print $1 "  " s "/" substr($1, 1, 2) "/" substr($1, 3, 2) "/" $1}' \
        "$WD/course.b3" >"$1.check"
    local rc=0
    b3sum --check --quiet "$1.check" >"$1.check.out" 2>&1 || rc=$?
    sed -n 1,5p "$1.check.out"
    return "$rc"
}

# run_one PROFILE CONTENDER PROFILE_DIR: one timed transfer on a fresh link; appends a
# line to $RESULTS
run_one() {
    local p=$1 c=$2 pd=$3
    local dir="$RUN_DIR/logs/$p-$c" dest="$pd/dest-$c" status=ok tries=0 rc=0 t0 t1 deadline left
    local got=0 token="" note="" reconnects=- used=-
    mkdir -p "$dir"
    rm -rf -- "$dest"
    if [[ "$c" == quic || "$c" == http ]]; then
        # the token first: `origin add-edge` writes edges.toml, best done with no server running
        OUT="$dir/add-edge.out" ERR="$dir/add-edge.err"
        prep "shanlu origin add-edge" "$SHANLU" origin add-edge --data "$pd/origin" --name "links-$p-$c"
        token=$(field "edge token")
        [[ "$token" =~ ^[0-9a-fA-F]+$ ]] || die "origin add-edge printed no 'edge token: <hex>' line"
    fi
    start_link "$p" "$dir"
    log "$c: link up ($ORIGIN_NS -> $EDGE_NS, ${LINK_ARGS[$p]})"
    case "$c" in
        quic|http)
            start_shanlu_origin "$pd/origin" "$dir"
            OUT="$dir/edge-init.out" ERR="$dir/edge-init.err"
            prep "shanlu edge init" "$SHANLU" edge init --data "$dest" --origin "quic://$ORIGIN_IP:$QUIC_PORT" \
                --origin-key "$ORIGIN_KEY" --origin-cert "$ORIGIN_CERT" --token "$token" \
                --fallback "https://$ORIGIN_IP:$HTTPS_PORT" --subscribe all
            ;;
        curl) start_nginx "$pd/nginx" "$dir" ;;
        rsync) start_rsyncd "$pd/rsyncd" "$dir" ;;
    esac
    wait_start
    t0=$EPOCHREALTIME
    deadline=$(awk -v t="$t0" -v s="$TIMEOUT" 'BEGIN{printf "%.6f", t + s}')
    case "$c" in
        quic|http)
            tries=1
            bounded "$TIMEOUT" ip netns exec "$EDGE_NS" "$SHANLU" edge sync --data "$dest" --transport "$c" --json \
                >"$dir/client.out" 2>"$dir/client.err" || rc=$?
            ;;
        curl)
            local curl_mode=()
            ((CURL_PARALLEL == 0)) || curl_mode=(--parallel --parallel-max "$CURL_PARALLEL")
            while :; do
                curl_list "$dest" "http://$ORIGIN_IP:$NGINX_PORT" >"$dir/curl-list.cfg"
                [[ -s "$dir/curl-list.cfg" ]] || { rc=0; break; }
                left=$(remaining "$deadline")
                ((left > 0)) || { rc=124; break; }
                tries=$((tries + 1))
                rc=0
                printf -- '--- try %d, %d files\n' "$tries" "$(grep -c '^url' "$dir/curl-list.cfg")" >>"$dir/client.err"
                bounded "$left" ip netns exec "$EDGE_NS" curl -sS --no-progress-meter --fail --create-dirs -C - \
                    --connect-timeout 30 --speed-limit 1000 --speed-time 60 "${curl_mode[@]}" \
                    -K "$dir/curl-list.cfg" >>"$dir/client.out" 2>>"$dir/client.err" || rc=$?
                ((rc != 124)) || break
                ((rc == 0)) || sleep 1
            done
            ;;
        rsync)
            mkdir -p "$dest"
            while :; do
                left=$(remaining "$deadline")
                ((left > 0)) || { rc=124; break; }
                tries=$((tries + 1))
                rc=0
                printf -- '--- try %d\n' "$tries" >>"$dir/client.err"
                bounded "$left" ip netns exec "$EDGE_NS" rsync -a --partial --timeout=60 --contimeout=30 --stats \
                    "rsync://$ORIGIN_IP:$RSYNC_PORT/course/" "$dest/" >>"$dir/client.out" 2>>"$dir/client.err" || rc=$?
                ((rc == 0 || rc == 124)) && break
                sleep 1
            done
            ;;
    esac
    t1=$EPOCHREALTIME
    if ((rc == 124)); then
        status=timeout
    elif ((rc != 0)); then
        status="failed(exit $rc)"
    fi
    stop_group "$SERVER_PID"; SERVER_PID=""
    stop_link
    # the link's final counters
    local counters
    counters=$(python3 - "$dir/link.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d, u = s["down"], s["up"]
print(int(bool(s.get("final"))), d["bytes_carried"], d["packets_carried"], d["bytes_offered"], u["bytes_carried"],
      d["dropped_loss"], d["dropped_queue"], d["dropped_outage"])
PY
    ) || die "could not read the link's counters in $dir/link.json"
    local final down_bytes down_packets down_offered up_bytes d_loss d_queue d_outage
    read -r final down_bytes down_packets down_offered up_bytes d_loss d_queue d_outage <<<"$counters"
    ((final)) || log "WARNING: $dir/link.json is not the link's final write; counters may be short"
    # the check
    if [[ "$c" == quic || "$c" == http ]]; then
        # shanlu's own reconnects within the sync, and the transport it used
        local report
        report=$(python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("- -")
else:
    print(r.get("reconnects", "-"), r.get("transport") or "-")' "$dir/client.out")
        read -r reconnects used <<<"$report"
        # (`edge sync --json` says "quic" or "https")
        if [[ "$status" == ok && "$used" != "$c" && ! ("$c" == http && "$used" == https) ]]; then
            status="failed(transport $used)"
        fi
        "$SHANLU" edge status --data "$dest" --json >"$dir/edge-status.json" 2>"$dir/edge-status.err" || true
        got=$(tree_bytes "$dest/store/blobs")
        if [[ "$status" == ok ]]; then
            note=$(check_blobs "$dest") || status=mismatch
        fi
    else
        got=$(tree_bytes "$dest")
        if [[ "$status" == ok ]]; then
            note=$(same_files "$COURSE" "$dest") || status=mismatch
        fi
    fi
    local wall
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$c" "$status" "$tries" "$reconnects" "$wall" \
        "$PAYLOAD" "$got" "$down_bytes" "$down_packets" "$down_offered" "$up_bytes" "$d_loss" "$d_queue" "$d_outage" >>"$RESULTS"
    local tries_text="tries: $tries"
    [[ "$reconnects" == - ]] || tries_text+=", reconnects: $reconnects"
    log "$c: $status in ${wall}s ($tries_text), the link carried $down_bytes B down for $PAYLOAD B of files"
    [[ "$status" != mismatch ]] || log "$c: the result differs from the course: $note"
    [[ "$status" == ok || "$status" == timeout ]] || { [[ ! -s "$dir/client.err" ]] || tail -n 5 "$dir/client.err" >&"$LOGFD"; }
    rm -rf -- "$dest" "$dest.check" "$dest.check.out"
    [[ "$status" == ok || "$status" == timeout ]]
}

# worker_cleanup: a profile worker's EXIT trap: its running client, server and link
worker_cleanup() {
    local rc=$?
    trap - EXIT TERM INT
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    stop_group "$SERVER_PID"; SERVER_PID=""
    stop_link
    exit "$rc"
}

# run_profile PROFILE: every contender in turn on its own fresh link; run as a background
# worker, with its own cleanup
run_profile() {
    local p=$1
    local c pd="$WD/profile-$p" failed=0
    TAG="$p"
    CHILD=""
    trap worker_cleanup EXIT
    trap 'exit 143' TERM INT
    mkdir -p "$pd"
    if ((NEED_SHANLU)); then
        cp -a -- "$TEMPLATE" "$pd/origin" || die "copying the origin folder failed"
    fi
    log "profile $p: ${LINK_DESC[$p]} (${LINK_ARGS[$p]})"
    for c in "${CONTENDER_LIST[@]}"; do
        run_one "$p" "$c" "$pd" || failed=1
    done
    rm -rf -- "$pd"
    return "$failed"
}

# ---------------------------------------------------------------------------
# 4. The runs
# ---------------------------------------------------------------------------
TCP_CC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown)
log "course: $N_FILES files, $PAYLOAD bytes; profiles: ${PROFILE_LIST[*]}; contenders: ${CONTENDER_LIST[*]}; parallel: $PARALLEL"
FAILED=0
if ((PARALLEL)); then
    for p in "${PROFILE_LIST[@]}"; do
        run_profile "$p" &
        WORKERS+=("$!")
    done
    for w in "${WORKERS[@]}"; do
        wait "$w" || FAILED=1
    done
else
    for p in "${PROFILE_LIST[@]}"; do
        run_profile "$p" &
        WORKERS=("$!")
        wait "${WORKERS[0]}" || FAILED=1
    done
fi
WORKERS=()

# ---------------------------------------------------------------------------
# 5. Report
# ---------------------------------------------------------------------------
git_rev=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
shanlu_ver=$("$SHANLU" --version 2>/dev/null | sed -n 1p || true)
for p in "${PROFILE_LIST[@]}"; do
    printf '%s\t%s\t%s\t%s\n' "$p" "${LINK_RATE[$p]}" "${LINK_ARGS[$p]}" "${LINK_DESC[$p]}"
done >"$RUN_DIR/links.tsv"
curl_desc="sequential, one connection"
((CURL_PARALLEL == 0)) || curl_desc="--parallel --parallel-max $CURL_PARALLEL (up to $CURL_PARALLEL connections)"
export RESULTS RUN_DIR CMDLINE CONTENDERS N_FILES PAYLOAD SIZE_MB SEED TIMEOUT START_AT
export M_CONGESTION="${CONGESTION:-origin default}" M_TCP_CC="$TCP_CC" M_CURL="$curl_desc"
export M_SHANLU="${shanlu_ver:-shanlu} ($SHANLU), repo at $git_rev"
M_KERNEL=$(uname -srm) M_NPROC=$(nproc)
V_NGINX=$(nginx -v 2>&1 | sed -n 1p) V_CURL=$(curl --version | sed -n '1s/^\(curl [^ ]*\).*/\1/p')
V_RSYNC=$(rsync --version | sed -n 1p)
export M_KERNEL M_NPROC V_NGINX V_CURL V_RSYNC
python3 - >"$RUN_DIR/summary.md" <<'PY'
import csv, os

env = os.environ
links = {}
for line in open(os.path.join(env["RUN_DIR"], "links.tsv")):
    p, rate, args, desc = line.rstrip("\n").split("\t")
    links[p] = (int(rate), args, desc)
order = env["CONTENDERS"].split()
rows = sorted(csv.DictReader(open(env["RESULTS"]), delimiter="\t"),
              key=lambda r: (list(links).index(r["profile"]), order.index(r["contender"])))
HEADER = {"quic": 64, "http": 52, "curl": 52, "rsync": 52}   # bytes a packet, see links.sh
NAMES = {"quic": "shanlu QUIC", "http": "shanlu HTTPS fallback",
         "curl": "curl from nginx (HTTP)", "rsync": "rsync daemon"}

def num(r, k):
    return float(r[k])

out = []
w = out.append
w("# shanlu over bad links (tools/bench/links.sh)\n")
w(f"Course: {env['N_FILES']} files, {int(env['PAYLOAD']):,} bytes (SIZE_MB={env['SIZE_MB']}, "
  f"seed {env['SEED']}). Every transfer starts {env['START_AT']} s after its own fresh link "
  f"comes up; limit {env['TIMEOUT']} s a transfer, retries included.\n")
w("| link | contender | result | time (s) | goodput | link bytes / payload | resent (est.) | sent / payload | tries |")
w("|---|---|---|---:|---:|---:|---:|---:|---:|")
by = {}
for r in rows:
    p, c = r["profile"], r["contender"]
    rate = links[p][0]
    payload, got, wall = num(r, "payload_bytes"), num(r, "got_bytes"), num(r, "time_s")
    down, packets = num(r, "down_bytes"), num(r, "down_packets")
    ok = r["status"] == "ok"
    goodput = payload * 8 / wall / rate * 100 if ok and wall > 0 else None
    ratio = down / payload
    resent = (down - payload - packets * HEADER[c]) / payload * 100 + 0.0
    by[(p, c)] = dict(ok=ok, wall=wall, goodput=goodput, ratio=ratio, packets=packets,
                      down=down, payload=payload, status=r["status"])
    if ok:
        result, time_s, good = "ok", f"{wall:.1f}", f"{goodput:.1f} %"
    elif r["status"] == "timeout":
        result, time_s, good = f"timeout, {got / payload * 100:.0f} % held", f"> {wall:.0f}", "-"
    else:
        result, time_s, good = r["status"], f"{wall:.1f}", "-"
    tries = r["tries"] + (f" ({r['reconnects']} reconnects)" if r["reconnects"] != "-" else "")
    w(f"| ({p}) {links[p][2]} | {NAMES[c]} | {result} | {time_s} | {good} | {ratio:.3f} | "
      + (f"{resent:.1f} %" if ok else "-") + f" | {num(r, 'down_offered_bytes') / payload:.3f} | {tries} |")

w("\nlink bytes: IP bytes the link delivered origin -> edge (headers and resends included; "
  "packets the link dropped are not in it). resent (est.): (link bytes - payload - packets x "
  "header) / payload, header = 64 B a packet for QUIC, 52 B for TCP: data delivered twice. "
  "sent: IP bytes the origin side offered to the link, dropped packets included. goodput: "
  "payload x 8 / time / link rate.\n")

w("## Targets\n")
def check(ok, text):
    w(f"- {'PASS' if ok else 'FAIL'}: {text}")
for p, floor in (("a", 90), ("b", 80), ("c", 85)):
    r = by.get((p, "quic"))
    if r is None:
        continue
    if r["goodput"] is None:
        check(False, f"({p}) QUIC goodput >= {floor} %: {r['status']}")
    else:
        check(r["goodput"] >= floor, f"({p}) QUIC goodput >= {floor} %: {r['goodput']:.1f} %")
for p in links:
    q, cu = by.get((p, "quic")), by.get((p, "curl"))
    if q is None or cu is None:
        continue
    if not q["ok"]:
        check(False, f"({p}) QUIC no slower than curl: QUIC {q['status']}")
    elif not cu["ok"]:
        check(True, f"({p}) QUIC no slower than curl: QUIC {q['wall']:.1f} s, curl {cu['status']} (> {cu['wall']:.0f} s)")
    else:
        check(q["wall"] <= cu["wall"],
              f"({p}) QUIC no slower than curl: QUIC {q['wall']:.1f} s, curl {cu['wall']:.1f} s "
              f"({q['wall'] / cu['wall']:.2f}x)")
q = by.get(("d", "quic"))
if q is not None:
    allowed = 1.01 * q["payload"] + 64 * q["packets"]
    check(q["ok"] and q["down"] <= allowed,
          f"(d) QUIC link bytes <= 1.01 x payload + 64 B x {int(q['packets']):,} packets: "
          f"link/payload {q['ratio']:.3f}, allowed {allowed / q['payload']:.3f}"
          + ("" if q["ok"] else f" ({q['status']})"))
    for c in ("http", "curl", "rsync"):
        r = by.get(("d", c))
        if r is not None:
            w(f"- (d) {NAMES[c]}: link/payload {r['ratio']:.3f}")

w("\n## Setup\n")
for p, (rate, args, desc) in links.items():
    w(f"- ({p}) `shanlu-linksim {args}`: {desc}")
w(f"- shanlu: {env['M_SHANLU']}; QUIC congestion control: {env['M_CONGESTION']}")
w(f"- TCP congestion control (kernel default, nginx / rsync / HTTPS fallback): {env['M_TCP_CC']}")
w(f"- curl: {env['M_CURL']}; {env['V_CURL']}; {env['V_NGINX']}; {env['V_RSYNC']}")
w(f"- {env['M_KERNEL']}, {env['M_NPROC']} CPUs")
w(f"- command: `{env['CMDLINE']}`")
print("\n".join(out))
PY
cat "$RUN_DIR/summary.md"
log "results: $RUN_DIR (summary.md, results.tsv, logs/)"
((FAILED == 0)) || die "some runs failed (see above and $RUN_DIR/logs)"
