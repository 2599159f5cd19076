#!/usr/bin/env bash
# Edge sync benchmark for shanlu, on loopback (127.0.0.1 only): (A) a fresh sync of a
# deterministic ~1 GiB course with `shanlu edge sync` over QUIC side by side with `curl`
# fetching the same files over HTTPS from nginx, and (B) a ~1 % scattered update
# (v1 -> v2) with `shanlu edge sync` side by side with `rsync` through an rsync daemon,
# counting the bytes on the wire. Prints a Markdown report with PASS/FAIL target checks.
#
# Usage:
#   bash tools/bench/sync.sh [--size-gb N] [--runs N] [--workdir DIR] [--timeout SECS]
#                            [--seed S] [--edit-fraction F] [--curl-streams N]
#                            [--counter auto|nft|relay]
#
#   --size-gb N        approximate course size in GiB (default 1; e.g. 0.1 for a smoke run)
#   --runs N           timed repetitions of every part-A contender (default 3), interleaved;
#                      medians are reported. Part B (the update) runs once.
#   --workdir DIR      parent for the scratch folder (default /var/tmp); the script makes
#                      DIR/shanlu-sync-bench.XXXXXX and removes only that, on any exit
#   --timeout SECS     limit for each timed or helper command (default 600); hitting it
#                      is a failure
#   --seed S           gen-tree.py seed (default 20240601); edits use S + 1
#   --edit-fraction F  share of the course's bytes rewritten for v2 (default 0.01)
#   --curl-streams N   concurrent HTTP/2 streams of the multiplexed curl run (default 16)
#   --counter MODE     how shanlu's UDP bytes are counted (default auto: nft, else relay):
#                      nft   = nftables named counters in a table of this script's own
#                              (input hook, origin's UDP port, both directions)
#                      relay = tools/bench/sync/udpcount.py, a counting UDP relay on
#                              127.0.0.1 between the part-B edge and the origin
#
# Environment:
#   SHANLU_SKIP=1  do not build or run shanlu: runs nginx+curl, the rsync update, the
#                  edit generator and the counters only (to test the rest of the harness)
#   SHANLU_BIN=P   use this shanlu binary instead of building target/release/shanlu
#
# Exit status: 0 when every tool ran (even if targets FAIL: this is a report),
# non-zero when a tool itself failed, a download did not match the course, or
# something needed is missing.
#
# Dependencies (installed with apt-get if missing; `apt-get update` only runs when an
# install is needed). All exist in Debian 12 "bookworm" main, checked with
# `apt-cache policy nginx curl openssl rsync nftables time`:
#   nginx     1.22.1-9+deb12u11   HTTPS origin for curl (TLS 1.3, HTTP/1.1 and HTTP/2)
#   curl      7.88.1-10+deb12u15  the HTTPS client (OpenSSL 3.0 backend)
#   openssl   3.0.x               makes nginx's self-signed ECDSA P-256 certificate
#   rsync     3.5.0+ds1-0+deb12u1 rsync daemon + client for the update comparison
#   nftables  1.0.6-2+deb12u2     byte counters (`nft`; needs root / CAP_NET_ADMIN;
#                                 without it --counter auto falls back to the relay)
#   time      1.9-0.2             GNU time at /usr/bin/time (%e %U %S %M)
# shanlu itself is built with `cargo build --release -p tools` in the repo root.
#
# What runs (everything binds 127.0.0.1 only; ports are free ones picked at run time):
#   origin:  `shanlu origin init`, `shanlu publish COURSE` (v1), one `origin add-edge`
#            per edge, then `shanlu origin serve --quic 127.0.0.1:0 --http 127.0.0.1:0`
#            (ports read from its stdout).
#   nginx:   serves the same course folder over HTTPS (self-signed cert, TLS 1.3 only,
#            `listen ... ssl http2`, access log on to check connections and statuses).
#   A (each run, interleaved; each client starts from an empty folder):
#     shanlu edge sync (QUIC)   fresh `edge init --subscribe all` (untimed), then the
#                               timed `shanlu edge sync --data E --json`
#     curl HTTP/1.1             ONE curl process, a -K config listing every file
#                               (url + output pairs), sequential, reusing ONE TLS
#                               connection: the cheapest way curl can fetch the tree
#     curl HTTP/2 xN            the same list with `--http2 -Z --parallel-max N`: curl
#                               multiplexes N streams over ONE TLS connection, the
#                               closest match to a QUIC sync (one connection, many
#                               concurrent streams). This is the target's baseline.
#     Both curl variants write every file (--create-dirs) like the edge writes its store.
#     curl runs with -k (no chain check of the self-signed certificate; the TLS 1.3
#     handshake signature is still verified); shanlu pins the origin's certificate.
#     Run 1's downloads are compared byte for byte with the course; every run checks
#     the file count and bytes; nginx's access log must show one connection, all 200s.
#   B (once):
#     v1 copy for rsync  `cp -a COURSE RDEST` (mtimes kept, so rsync's quick check skips
#                        unchanged files and delta-transfers the changed ones)
#     edge B             fresh edge (through the relay in relay mode), synced with v1
#                        (this sync's wire bytes are reported as the fresh-sync overhead)
#     v2                 tools/bench/sync/edit-tree.py edits COURSE in place: ~1 % of
#                        the bytes in 25-50 KiB edits scattered over the media files
#                        (about 280 edits at 1 GiB, >= 512 KiB apart; a fifth of them
#                        change length by up to 4 KiB) and 1 % of the HTML pages (48
#                        bytes each); edited files get a new mtime
#     shanlu             stop origin serve, `shanlu publish COURSE` (v2), restart serve on
#                        the same ports, timed `shanlu edge sync --json`, then
#                        `shanlu verify EDGE` (untimed)
#     rsync              `rsync -a --stats rsync://127.0.0.1:PORT/course/ RDEST/` from
#                        an rsync daemon serving v2 (no -z: the media are incompressible);
#                        RDEST must then equal v2 byte for byte
#
# Measures: wall time with bash $EPOCHREALTIME around the command (GNU time's %e is a
# cross-check); user+sys CPU seconds and peak RSS of the client process from GNU time
# (%U %S %M); server-side CPU (origin / nginx master+workers / rsync daemon incl. its
# reaped children) from /proc/PID/stat utime+stime+cutime+cstime before and after.
# Hot page cache: the course and the origin's store are read once (untimed) first; an
# untimed `sync` runs before and after each timed command ("incl. sync" adds that final
# flush: the edge may fsync its store, curl does not).
# Wire bytes: for shanlu, UDP payload bytes both ways between the edge and the origin's
# QUIC port (nft: counter bytes minus 28 bytes of IPv4+UDP header per counted packet,
# which is exact also for GSO super-packets on loopback; relay: payload bytes it
# forwarded). For rsync, its own --stats "Total bytes sent" + "Total bytes received"
# (application bytes over TCP). With nft, the L3 bytes (IP headers included) of both
# ports are reported too; loopback TSO/GSO coalesces packets, so those header counts
# are lower than on a real 1500-byte-MTU link. UDP receive-buffer drops on the machine
# during each sync (/proc/net/snmp RcvbufErrors) are reported: each one is a QUIC resend.
# Run time: about 2 minutes for the defaults (1 GiB, 3 runs) on 2 cores, plus the
# cargo build; every command is bounded by --timeout.
#
# Installing Debian's nginx would normally start its default site on port 80 of every
# address: when nginx is installed here and /usr/sbin/policy-rc.d does not exist, one
# that refuses service starts (exit 101) is put there for the apt-get install only.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
HELPERS="$SCRIPT_DIR/sync"
CMDLINE=$(printf '%q ' "bash" "${BASH_SOURCE[0]}" "$@")
CMDLINE=${CMDLINE% }
[[ "${SHANLU_SKIP:-0}" == 1 ]] && CMDLINE="SHANLU_SKIP=1 $CMDLINE"
[[ -n "${SHANLU_BIN:-}" ]] && CMDLINE="SHANLU_BIN=$(printf '%q' "$SHANLU_BIN") $CMDLINE"

SIZE_GB=1
RUNS=3
WORKDIR_PARENT=/var/tmp
TIMEOUT=600
SEED=20240601
EDIT_FRACTION=0.01
CURL_STREAMS=16
COUNTER=auto
LOOP=127.0.0.1

log() { printf '[sync-bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'sync.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; }
# shellcheck source=tools/bench/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# bounded SECS CMD...: run CMD under `timeout` as a background job and wait for it, so
# that Ctrl-C / SIGTERM can stop it (timeout leads its own process group, which the
# signal handler kills by that id). Returns CMD's exit status (124 on timeout).
CHILD=""
on_signal() {
    if [[ -n "$CHILD" ]]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$1"   # the EXIT trap stops the services and removes the scratch folder
}

while (($#)); do
    case "$1" in
        --size-gb) [[ $# -ge 2 ]] || die "--size-gb needs a value"; SIZE_GB=$2; shift 2 ;;
        --size-gb=*) SIZE_GB=${1#*=}; shift ;;
        --runs) [[ $# -ge 2 ]] || die "--runs needs a value"; RUNS=$2; shift 2 ;;
        --runs=*) RUNS=${1#*=}; shift ;;
        --workdir) [[ $# -ge 2 ]] || die "--workdir needs a value"; WORKDIR_PARENT=$2; shift 2 ;;
        --workdir=*) WORKDIR_PARENT=${1#*=}; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs a value"; TIMEOUT=$2; shift 2 ;;
        --timeout=*) TIMEOUT=${1#*=}; shift ;;
        --seed) [[ $# -ge 2 ]] || die "--seed needs a value"; SEED=$2; shift 2 ;;
        --seed=*) SEED=${1#*=}; shift ;;
        --edit-fraction) [[ $# -ge 2 ]] || die "--edit-fraction needs a value"; EDIT_FRACTION=$2; shift 2 ;;
        --edit-fraction=*) EDIT_FRACTION=${1#*=}; shift ;;
        --curl-streams) [[ $# -ge 2 ]] || die "--curl-streams needs a value"; CURL_STREAMS=$2; shift 2 ;;
        --curl-streams=*) CURL_STREAMS=${1#*=}; shift ;;
        --counter) [[ $# -ge 2 ]] || die "--counter needs a value"; COUNTER=$2; shift 2 ;;
        --counter=*) COUNTER=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ "$SIZE_GB" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--size-gb must be a number, got '$SIZE_GB'"
awk -v s="$SIZE_GB" 'BEGIN{exit !(s >= 0.02 && s <= 16)}' || die "--size-gb must be in 0.02..16"
[[ "$RUNS" =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 20)) || die "--runs must be an integer 1..20"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && ((TIMEOUT >= 1)) || die "--timeout must be a positive integer"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"
[[ "$EDIT_FRACTION" =~ ^(0?\.[0-9]+)$ ]] && awk -v f="$EDIT_FRACTION" 'BEGIN{exit !(f > 0 && f <= 0.2)}' ||
    die "--edit-fraction must be a number in (0, 0.2], e.g. 0.01"
[[ "$CURL_STREAMS" =~ ^[0-9]+$ ]] && ((CURL_STREAMS >= 1 && CURL_STREAMS <= 100)) ||
    die "--curl-streams must be an integer 1..100"
[[ "$COUNTER" == auto || "$COUNTER" == nft || "$COUNTER" == relay ]] || die "--counter must be auto, nft or relay"
[[ -d "$WORKDIR_PARENT" ]] || die "--workdir $WORKDIR_PARENT is not a directory"
WORKDIR_PARENT=$(cd "$WORKDIR_PARENT" && pwd)

SKIP_SHANLU=0
[[ "${SHANLU_SKIP:-0}" == 1 ]] && SKIP_SHANLU=1

# ---------------------------------------------------------------------------
# 1. Dependencies
# ---------------------------------------------------------------------------

# Debian package for each command needed.
declare -A PKG_OF=([nginx]=nginx [curl]=curl [openssl]=openssl [rsync]=rsync
                   [python3]=python3 [/usr/bin/time]=time [nft]=nftables)
export PATH="$PATH:/usr/sbin:/sbin"   # nginx and nft live in /usr/sbin
missing=()
for c in nginx curl openssl rsync python3 /usr/bin/time; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${PKG_OF[$c]}")
done
if [[ "$COUNTER" != relay ]] && ! command -v nft >/dev/null 2>&1; then
    missing+=(nftables)
fi
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here; install them by hand"
    log "installing missing packages: ${missing[*]} (apt-get update first)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
        die "apt-get update failed"
    for p in "${missing[@]}"; do
        # A package name with a candidate version is installable from the configured suites.
        [[ -n "$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]] ||
            die "Debian package '$p' is not available from the configured apt sources"
    done
    # The packaged nginx service (default site on port 80, all addresses) is not wanted:
    # this script runs its own nginx on 127.0.0.1. Keep apt from starting it.
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
for c in nginx curl openssl rsync python3 timeout find cp diff sync awk pgrep; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found after installation"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) not found after installation"
/usr/bin/time -f '%e %U %S %M' -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time (-f/-o unsupported)"
for f in "$SCRIPT_DIR/gen-tree.py" "$HELPERS/edit-tree.py" "$HELPERS/udpcount.py" "$HELPERS/report.py"; do
    [[ -f "$f" ]] || die "$f not found"
done
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

SHANLU=""
if ((SKIP_SHANLU)); then
    log "SHANLU_SKIP=1: not building or running shanlu"
elif [[ -n "${SHANLU_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN
    [[ -f "$SHANLU" && -x "$SHANLU" ]] || die "SHANLU_BIN=$SHANLU is not an executable file"
    SHANLU="$(cd "$(dirname "$SHANLU")" && pwd)/$(basename "$SHANLU")"
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (rustup) to build shanlu, or set SHANLU_SKIP=1"
    log "building shanlu: cargo build --release -p tools (in $REPO_ROOT)"
    cd "$REPO_ROOT"
    bounded 3600 cargo build --release -p tools >&2 ||
        die "cargo build --release -p tools failed (set SHANLU_SKIP=1 to benchmark the other tools only)"
    cd - >/dev/null
    SHANLU="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/shanlu"
    [[ "$SHANLU" == /* ]] || SHANLU="$REPO_ROOT/$SHANLU"
    [[ -x "$SHANLU" ]] || die "build succeeded but $SHANLU does not exist (is the binary named 'shanlu'?)"
fi
if [[ -n "$SHANLU" ]]; then
    for sub in "origin init" "origin add-edge" "origin serve" "publish" "edge init" "edge sync"; do
        # shellcheck disable=SC2086
        "$SHANLU" $sub --help >/dev/null 2>&1 ||
            die "'$SHANLU $sub --help' failed: that command is missing (set SHANLU_SKIP=1 to run the rest)"
    done
fi

# ---------------------------------------------------------------------------
# Scratch folder and services, cleaned up on every exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-sync-bench.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
NFT_TABLE="shanlu_sync_bench_$$"
NFT_OK=0
ORIGIN_PID="" NGINX_PID="" RSYNCD_PID="" RELAY_PID=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$ORIGIN_PID"; stop_pid "$NGINX_PID"; stop_pid "$RSYNCD_PID"; stop_pid "$RELAY_PID"
    if ((NFT_OK)); then nft delete table inet "$NFT_TABLE" 2>/dev/null || true; fi
    if [[ -n "${WD:-}" && -d "$WD" ]]; then
        log "removing $WD"
        rm -rf -- "$WD"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# course + origin store + one edge or curl copy + rsync's v1 copy + edge B, with slack
need_kb=$(awk -v s="$SIZE_GB" 'BEGIN{printf "%d", s * 1048576 * 5.5 + 524288}')
avail_kb=$(df -Pk "$WD" | awk 'NR==2{print $4}')
((avail_kb >= need_kb)) ||
    die "not enough space in $WORKDIR_PARENT: need ~$((need_kb / 1024)) MiB, have $((avail_kb / 1024)) MiB"
mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)
if awk -v m="$mem_kb" -v s="$SIZE_GB" 'BEGIN{exit !(m < s * 1048576 * 5)}'; then
    log "WARNING: RAM ($((mem_kb / 1024)) MiB) is under 5x the course size; the page cache may not hold everything, numbers will mix in disk I/O"
fi

TREE="$WD/course"
RESULTS="$WD/results.tsv"     # one line per timed command
COUNTS="$WD/counts.tsv"       # counter snapshots: label name kind packets bytes
NOTES="$WD/notes.tsv"         # key <TAB> value facts for the report
mkdir -p "$WD/out" "$WD/tls" "$WD/nginx/tmp" "$WD/rsyncd"
: >"$RESULTS"; : >"$COUNTS"; : >"$NOTES"
note() { printf '%s\t%s\n' "$1" "$2" >>"$NOTES"; }
OUT="$WD/cmd.stdout"
ERR="$WD/cmd.stderr"
TIMEF="$WD/time.out"

fail_cmd() {
    local what=$1 rc=$2
    printf 'sync.sh: error: %s failed (exit %s)\n' "$what" "$rc" >&2
    if [[ -s "$ERR" ]]; then
        printf -- '--- last lines of its stderr ---\n' >&2
        tail -n 20 "$ERR" >&2
    fi
    ((rc == 124)) && printf 'sync.sh: it hit the --timeout of %ss\n' "$TIMEOUT" >&2
    exit 2
}
free_port() { python3 "$HELPERS/udpcount.py" free-port "${1:-tcp}"; }

SERVER_PIDS=()   # the server side of the contender being timed, for proc_cpu

# ---------------------------------------------------------------------------
# Byte counters: nftables named counters, or the counting relay for the UDP path
# ---------------------------------------------------------------------------
nft_add_port() {  # nft_add_port NAME tcp|udp PORT: counters NAME_to (dport), NAME_from (sport)
    ((NFT_OK)) || return 0
    nft add counter inet "$NFT_TABLE" "${1}_to"
    nft add counter inet "$NFT_TABLE" "${1}_from"
    nft add rule inet "$NFT_TABLE" input "$2" dport "$3" counter name "${1}_to"
    nft add rule inet "$NFT_TABLE" input "$2" sport "$3" counter name "${1}_from"
}
relay_dump() {  # ask the relay for its counters; prints its stats JSON
    local stats=$1 pid=$2 before i
    before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seq"])' "$stats" 2>/dev/null || echo 0)
    kill -USR1 "$pid" 2>/dev/null || die "the counting relay (pid $pid) is gone"
    for ((i = 0; i < 200; i++)); do
        if python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["seq"] <= int(sys.argv[2]))' \
            "$stats" "$before" 2>/dev/null; then
            cat "$stats"; return 0
        fi
        sleep 0.02
    done
    die "the counting relay did not answer"
}
# snap LABEL: append every counter's value to $COUNTS
snap() {
    local label=$1
    if ((NFT_OK)); then
        nft -j list counters table inet "$NFT_TABLE" | python3 -c '
import json, sys
label = sys.argv[1]
for o in json.load(sys.stdin)["nftables"]:
    c = o.get("counter")
    if c:
        print(label, c["name"], "nft", c["packets"], c["bytes"], sep="\t")' "$label" >>"$COUNTS"
    fi
    if [[ -n "$RELAY_PID" ]]; then
        relay_dump "$WD/relay.json" "$RELAY_PID" | python3 -c '
import json, sys
label, s = sys.argv[1], json.load(sys.stdin)
print(label, "q_to", "relay", s["to_upstream_datagrams"], s["to_upstream_bytes"], sep="\t")
print(label, "q_from", "relay", s["from_upstream_datagrams"], s["from_upstream_bytes"], sep="\t")' "$label" >>"$COUNTS"
    fi
    # UDP receive-buffer drops, machine-wide (a drop makes QUIC resend: more wire bytes)
    awk -v l="$label" '/^Udp:/ {n++; if (n == 1) {for (i = 1; i <= NF; i++) h[i] = $i}
        else {for (i = 1; i <= NF; i++) if (h[i] == "RcvbufErrors") print l "\tudp_rcvbuf_errors\tsnmp\t" $i "\t0"}}' \
        /proc/net/snmp >>"$COUNTS"
}
start_relay() {  # start_relay LISTEN_PORT UPSTREAM_PORT STATS_FILE; sets RELAY_PID
    rm -f -- "$3"
    python3 "$HELPERS/udpcount.py" relay --listen "$1" --upstream "$2" --stats "$3" 2>>"$WD/relay.err" &
    RELAY_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        [[ -s "$3" ]] && return 0
        kill -0 "$RELAY_PID" 2>/dev/null || die "the counting relay failed to start: $(tail -n 5 "$WD/relay.err")"
        sleep 0.05
    done
    die "the counting relay did not start"
}

if [[ "$COUNTER" != relay ]]; then
    if nft add table inet "$NFT_TABLE" 2>"$ERR"; then
        NFT_OK=1
        # priority raw (-300): before conntrack and any other filter; counts each packet
        # once, where it enters the receiving socket's side of loopback.
        nft add chain inet "$NFT_TABLE" input '{ type filter hook input priority -300; policy accept; }' ||
            die "nft add chain failed"
        COUNTER=nft
    elif [[ "$COUNTER" == nft ]]; then
        die "--counter nft: 'nft add table' failed (root / CAP_NET_ADMIN needed): $(cat "$ERR")"
    else
        log "nftables not usable here ($(head -n1 "$ERR")); counting shanlu's UDP bytes with the relay"
        COUNTER=relay
    fi
fi
note counter "$COUNTER"

# Self-test of the UDP counting: an echo server behind the counter, 200 x 1200 B each way.
st_port=$(free_port udp)
if [[ "$COUNTER" == nft ]]; then
    nft_add_port st udp "$st_port"
    snap "selftest|pre"
    prep "UDP counter self-test" python3 "$HELPERS/udpcount.py" echo-test --target "$st_port" --server-port "$st_port"
    snap "selftest|post"
else
    st_relay=$(free_port udp)
    start_relay "$st_relay" "$st_port" "$WD/relay.json"
    snap "selftest|pre"
    prep "UDP counter self-test (relay)" python3 "$HELPERS/udpcount.py" echo-test --target "$st_relay" --server-port "$st_port"
    snap "selftest|post"
    stop_pid "$RELAY_PID"; RELAY_PID=""
fi
read -r st_sent _ st_n <"$OUT"
note selftest_sent "$st_sent"
log "UDP counter self-test ($COUNTER): sent $st_sent B in $st_n datagrams each way"

# ---------------------------------------------------------------------------
# 2. The course (v1)
# ---------------------------------------------------------------------------
log "generating ~${SIZE_GB} GiB course in $TREE (seed $SEED)"
gen_start=$EPOCHREALTIME
bounded "$TIMEOUT" python3 "$SCRIPT_DIR/gen-tree.py" "$TREE" --size-gb "$SIZE_GB" --seed "$SEED" 2>"$ERR" ||
    fail_cmd "gen-tree.py" $?
gen_end=$EPOCHREALTIME
# same_files A B: the same regular files with the same bytes (empty folders ignored:
# curl has no way to make them); prints the first differences
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
tree_stats() { find "$1" -type f -printf '%s\n' | awk '{s += $1; n++} END {printf "%d %d\n", n, s}'; }
read -r TREE_FILES TREE_BYTES < <(tree_stats "$TREE")
note tree_files "$TREE_FILES"; note tree_bytes "$TREE_BYTES"
note tree_large "$(find "$TREE" -type f -size +1048575c | wc -l)"
note gen_secs "$(awk -v a="$gen_start" -v b="$gen_end" 'BEGIN{printf "%.1f", b - a}')"
sync

# ---------------------------------------------------------------------------
# 3. Timed commands
# ---------------------------------------------------------------------------
# timed PART NAME RUN CMD...: sync, snapshot counters and server CPU, time CMD,
# snapshot again, sync; record a line in $RESULTS; CMD's stdout stays in $OUT.
timed() {
    local part=$1 name=$2 run=$3; shift 3
    local rc=0 t0 t1 t2 gw us sy rss wall wsync c0 c1 srv label="$part|$name|$run"
    sync
    rm -f -- "$TIMEF"
    c0=$(proc_cpu "${SERVER_PIDS[@]}")
    snap "$label|pre"
    # timeout outside GNU time: time measures the command itself, not timeout.
    t0=$EPOCHREALTIME
    bounded "$TIMEOUT" /usr/bin/time -f '%e %U %S %M' -o "$TIMEF" "$@" >"$OUT" 2>"$ERR" || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || fail_cmd "$name (run $run: $*)" "$rc"
    # late datagrams (ACKs, connection close) and reaped server children settle
    sleep 0.3
    snap "$label|post"
    c1=$(proc_cpu "${SERVER_PIDS[@]}")
    sync
    t2=$EPOCHREALTIME
    read -r gw us sy rss < <(tail -n 1 "$TIMEF")
    [[ "$gw" =~ ^[0-9.]+$ && "$rss" =~ ^[0-9]+$ ]] || die "could not parse GNU time output: $(cat "$TIMEF")"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
    wsync=$(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.3f", b - a - 0.3}')
    srv=""
    ((${#SERVER_PIDS[@]})) && srv=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.2f", b - a}')
    local keep
    keep="$WD/out/$part-$(wc -l <"$RESULTS").stdout"
    cp -- "$OUT" "$keep"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$name" "$run" "$wall" "$wsync" \
        "$gw" "$us" "$sy" "$rss" "$srv" "$keep" >>"$RESULTS"
    log "  $name run $run: ${wall}s, CPU ${us}u+${sy}s, peak RSS $((rss / 1024)) MiB${srv:+, server CPU ${srv}s}"
}

# ---------------------------------------------------------------------------
# 4. nginx over HTTPS (self-signed) serving the course
# ---------------------------------------------------------------------------
prep "openssl req (self-signed certificate)" openssl req -x509 -newkey ec \
    -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=$LOOP" \
    -addext "subjectAltName=IP:$LOOP" -keyout "$WD/tls/key.pem" -out "$WD/tls/cert.pem"
NGINX_PORT=$(free_port tcp)
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root;"   # workers must read the 0700 scratch folder
cat >"$WD/nginx/nginx.conf" <<EOF
# nginx for tools/bench/sync.sh: HTTPS on $LOOP only, serving the course folder.
$user_line
worker_processes auto;
daemon off;
pid $WD/nginx/nginx.pid;
error_log $WD/nginx/error.log warn;
events { worker_connections 256; }
http {
    default_type application/octet-stream;
    log_format bench '\$connection \$server_protocol \$status \$body_bytes_sent';
    access_log $WD/nginx/access.log bench;
    client_body_temp_path $WD/nginx/tmp/body;
    proxy_temp_path $WD/nginx/tmp/proxy;
    fastcgi_temp_path $WD/nginx/tmp/fastcgi;
    uwsgi_temp_path $WD/nginx/tmp/uwsgi;
    scgi_temp_path $WD/nginx/tmp/scgi;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    ssl_protocols TLSv1.3;
    server {
        listen $LOOP:$NGINX_PORT ssl http2;
        ssl_certificate $WD/tls/cert.pem;
        ssl_certificate_key $WD/tls/key.pem;
        root $TREE;
    }
}
EOF
prep "nginx -t" nginx -t -q -p "$WD/nginx/" -e "$WD/nginx/error.log" -c "$WD/nginx/nginx.conf"
log "starting nginx on https://$LOOP:$NGINX_PORT"
nginx -p "$WD/nginx/" -e "$WD/nginx/error.log" -c "$WD/nginx/nginx.conf" >"$WD/nginx/stdout" 2>&1 &
NGINX_PID=$!
wait_tcp "$NGINX_PORT" "$NGINX_PID" nginx
sleep 0.2
mapfile -t NGINX_PIDS < <(echo "$NGINX_PID"; pgrep -P "$NGINX_PID")
nft_add_port n tcp "$NGINX_PORT"
# What curl negotiates with nginx (recorded for the report).
note tls_curl_h1 "$(curl -sk -v --http1.1 "https://$LOOP:$NGINX_PORT/" -o /dev/null 2>&1 |
    sed -n 's/^\* SSL connection using //p' | head -n1)"
note tls_curl_h2 "$(curl -sk -v --http2 "https://$LOOP:$NGINX_PORT/" -o /dev/null 2>&1 |
    grep -E '^\* (ALPN: server accepted|SSL connection using)' | sed 's/^\* //; s/^SSL connection using //' | paste -sd ';' -)"

# curl -K configs: one url/output pair per file, all into $WD/dl
DL="$WD/dl"
python3 - "$TREE" "$DL" "https://$LOOP:$NGINX_PORT" >"$WD/curl-files.cfg" <<'PY'
import os, sys
from urllib.parse import quote
tree, dest, base = sys.argv[1:]
paths = sorted(os.path.relpath(os.path.join(r, f), tree) for r, _, fs in os.walk(tree) for f in fs)
for p in paths:
    if '"' in p or "\\" in p or "\n" in p:
        sys.exit(f"unexpected character in path {p!r}")
    print(f'url = "{base}/{quote(p)}"')
    print(f'output = "{os.path.join(dest, p)}"')
PY
CURL_COMMON=(curl -sS -k --fail --create-dirs -K "$WD/curl-files.cfg")
CURL_H1=("${CURL_COMMON[@]}" --http1.1)
CURL_H2=("${CURL_COMMON[@]}" --http2 -Z --parallel-max "$CURL_STREAMS")
NAME_H1="curl HTTP/1.1 (1 conn, sequential)"
NAME_H2="curl HTTP/2 (1 conn, ${CURL_STREAMS} streams)"
note name_h1 "$NAME_H1"; note name_h2 "$NAME_H2"

check_download() {  # check_download NAME RUN: compare $DL with the course; nginx log check
    local name=$1 run=$2 n b conns bad proto
    read -r n b < <(tree_stats "$DL")
    [[ "$n" == "$TREE_FILES" && "$b" == "$TREE_BYTES" ]] ||
        die "$name run $run downloaded $n files / $b bytes, the course has $TREE_FILES / $TREE_BYTES"
    if ((run == 1)); then
        same_files "$TREE" "$DL" >"$ERR" 2>&1 || die "$name run $run: download differs from the course: $(cat "$ERR")"
    fi
    conns=$(awk '{print $1}' "$WD/nginx/access.log" | sort -u | wc -l)
    bad=$(awk '$3 != 200' "$WD/nginx/access.log" | wc -l)
    proto=$(awk '{print $2}' "$WD/nginx/access.log" | sort -u | paste -sd, -)
    ((bad == 0)) || die "$name run $run: nginx logged $bad responses that were not 200"
    note "conn|$name|$run" "$conns connection(s), $proto, $(wc -l <"$WD/nginx/access.log") requests"
    ((conns == 1)) || log "WARNING: $name run $run used $conns connections"
}

# ---------------------------------------------------------------------------
# 5. The shanlu origin
# ---------------------------------------------------------------------------
ORIGIN="$WD/origin"
QPORT="" HPORT=""
start_origin() {  # start_origin QUIC_ADDR HTTP_ADDR: sets ORIGIN_PID, QPORT, HPORT
    local i q="" h=""
    : >"$WD/origin-serve.out"
    "$SHANLU" origin serve --data "$ORIGIN" --quic "$1" --http "$2" --https "$LOOP:0" \
        >"$WD/origin-serve.out" 2>>"$WD/origin-serve.err" &
    ORIGIN_PID=$!
    for ((i = 0; i < 300; i++)); do
        q=$(awk '$1 == "quic:" {print $2; exit}' "$WD/origin-serve.out")
        h=$(awk '$1 == "http:" {print $2; exit}' "$WD/origin-serve.out")
        [[ -n "$q" && -n "$h" ]] && break
        kill -0 "$ORIGIN_PID" 2>/dev/null ||
            die "shanlu origin serve exited: $(tail -n 10 "$WD/origin-serve.err")"
        sleep 0.1
    done
    [[ -n "$q" && -n "$h" ]] || die "shanlu origin serve printed no 'quic:'/'http:' lines within 30 s"
    [[ "$q" =~ ^127\.0\.0\.1:([0-9]+)$ ]] || die "origin QUIC address is not 127.0.0.1:PORT: '$q'"
    QPORT=${BASH_REMATCH[1]}
    [[ "$h" =~ ^127\.0\.0\.1:([0-9]+)$ ]] || die "origin HTTP address is not 127.0.0.1:PORT: '$h'"
    HPORT=${BASH_REMATCH[1]}
}
field() { awk -v k="$1" 'index($0, k ": ") == 1 {print substr($0, length(k) + 3); exit}' "$OUT"; }

EDGE_TOKENS=()
if [[ -n "$SHANLU" ]]; then
    prep "shanlu origin init" "$SHANLU" origin init --data "$ORIGIN"
    ORIGIN_KEY=$(field "origin key")
    ORIGIN_CERT=$(field "origin certificate")
    [[ "$ORIGIN_KEY" =~ ^[0-9a-f]{64}$ ]] || die "origin init printed no 'origin key: <64 hex>' line"
    [[ "$ORIGIN_CERT" =~ ^[0-9a-f]{64}$ ]] || die "origin init printed no 'origin certificate: <64 hex>' line"
    log "publishing v1: shanlu publish"
    timed P "shanlu publish (v1)" 1 "$SHANLU" publish "$TREE" --data "$ORIGIN"
    # every edge's token up front, while the origin is not serving
    for ((i = 1; i <= RUNS + 1; i++)); do
        prep "shanlu origin add-edge" "$SHANLU" origin add-edge --data "$ORIGIN" --name "bench-edge-$i"
        t=$(field "edge token")
        [[ "$t" =~ ^[0-9a-fA-F]+$ ]] || die "origin add-edge printed no 'edge token: <hex>' line"
        EDGE_TOKENS+=("$t")
    done
    start_origin "$LOOP:0" "$LOOP:0"
    log "origin serving: quic $LOOP:$QPORT, http $LOOP:$HPORT"
    nft_add_port q udp "$QPORT"
fi
edge_init() {  # edge_init DIR TOKEN PORT
    prep "shanlu edge init" "$SHANLU" edge init --data "$1" --origin "quic://$LOOP:$3" \
        --origin-key "$ORIGIN_KEY" --origin-cert "$ORIGIN_CERT" --token "$2" --subscribe all
}

log "warm-up: reading the course and the origin's store once (untimed)"
bounded "$TIMEOUT" bash -c 'set -o pipefail; for d; do [[ -d "$d" ]] && find "$d" -type f -print0 | xargs -0 -r cat >/dev/null; done; true' \
    _ "$TREE" "$ORIGIN" || die "warm-up read failed"

# ---------------------------------------------------------------------------
# 6. Part A: fresh sync, interleaved runs
# ---------------------------------------------------------------------------
for ((run = 1; run <= RUNS; run++)); do
    log "part A, run $run/$RUNS"
    if [[ -n "$SHANLU" ]]; then
        edge="$WD/edge-a"
        rm -rf -- "$edge"
        edge_init "$edge" "${EDGE_TOKENS[$((run - 1))]}" "$QPORT"
        SERVER_PIDS=("$ORIGIN_PID")
        timed A "shanlu edge sync (QUIC)" "$run" "$SHANLU" edge sync --data "$edge" --json
        rm -rf -- "$edge"
        sync
    fi
    SERVER_PIDS=("${NGINX_PIDS[@]}")
    for variant in h1 h2; do
        rm -rf -- "$DL"; mkdir -p "$DL"
        : >"$WD/nginx/access.log"   # nginx appends (O_APPEND): truncating is safe
        if [[ $variant == h1 ]]; then
            timed A "$NAME_H1" "$run" "${CURL_H1[@]}"; check_download "$NAME_H1" "$run"
        else
            timed A "$NAME_H2" "$run" "${CURL_H2[@]}"; check_download "$NAME_H2" "$run"
        fi
        rm -rf -- "$DL"
        sync
    done
done
SERVER_PIDS=()
stop_pid "$NGINX_PID"; NGINX_PID=""

# ---------------------------------------------------------------------------
# 7. Part B: ~1 % update, bytes on the wire
# ---------------------------------------------------------------------------
log "part B: v1 copy for rsync (cp -a)"
RDEST="$WD/rsync-dest"
prep "cp -a (v1 copy for rsync)" cp -a "$TREE" "$RDEST"

EDGE_B="$WD/edge-b"
if [[ -n "$SHANLU" ]]; then
    b_port=$QPORT
    if [[ "$COUNTER" == relay ]]; then
        b_port=$(free_port udp)
        start_relay "$b_port" "$QPORT" "$WD/relay.json"
        log "counting relay: $LOOP:$b_port -> origin $LOOP:$QPORT"
    fi
    edge_init "$EDGE_B" "${EDGE_TOKENS[$RUNS]}" "$b_port"
    SERVER_PIDS=("$ORIGIN_PID")
    log "part B: edge B fresh sync of v1"
    timed B "shanlu edge sync (v1, fresh)" 1 "$SHANLU" edge sync --data "$EDGE_B" --json
fi

log "part B: making v2 (edit-tree.py, fraction $EDIT_FRACTION)"
prep "edit-tree.py" python3 "$HELPERS/edit-tree.py" "$TREE" --fraction "$EDIT_FRACTION" --seed "$((SEED + 1))"
cp -- "$OUT" "$WD/edits.json"
log "  $(cat "$WD/edits.json")"
read -r _ V2_BYTES < <(tree_stats "$TREE")
note v2_bytes "$V2_BYTES"
diff -rq "$TREE" "$RDEST" >"$WD/v1v2.diff" 2>&1 || true
note v1v2_files_differ "$(grep -c '^Files .* differ$' "$WD/v1v2.diff" || true)"

if [[ -n "$SHANLU" ]]; then
    log "part B: republish v2 (origin stopped for the publish, restarted on the same ports)"
    stop_pid "$ORIGIN_PID"; ORIGIN_PID=""; SERVER_PIDS=()
    timed P "shanlu publish (v2)" 1 "$SHANLU" publish "$TREE" --data "$ORIGIN"
    start_origin "$LOOP:$QPORT" "$LOOP:$HPORT"
    SERVER_PIDS=("$ORIGIN_PID")
    log "part B: edge B update sync v1 -> v2"
    timed B "shanlu edge sync (v1 -> v2)" 1 "$SHANLU" edge sync --data "$EDGE_B" --json
    SERVER_PIDS=()
    rc=0
    bounded "$TIMEOUT" "$SHANLU" verify "$EDGE_B" >"$WD/verify.out" 2>&1 || rc=$?
    note edge_verify "$rc"
fi

log "part B: rsync daemon serving v2"
RSYNC_PORT=$(free_port tcp)
{
    echo "# rsyncd for tools/bench/sync.sh, on $LOOP only"
    echo "use chroot = no"
    echo "log file = $WD/rsyncd/rsyncd.log"
    echo "pid file = $WD/rsyncd/rsyncd.pid"
    [[ $(id -u) -eq 0 ]] && printf 'uid = root\ngid = root\n'
    echo "[course]"
    echo "    path = $TREE"
    echo "    read only = yes"
} >"$WD/rsyncd/rsyncd.conf"
rsync --daemon --no-detach --config="$WD/rsyncd/rsyncd.conf" --address="$LOOP" --port="$RSYNC_PORT" \
    >"$WD/rsyncd/stdout" 2>&1 &
RSYNCD_PID=$!
wait_tcp "$RSYNC_PORT" "$RSYNCD_PID" "rsync --daemon"
nft_add_port r tcp "$RSYNC_PORT"
SERVER_PIDS=("$RSYNCD_PID")
timed B "rsync (v1 -> v2)" 1 rsync -a --stats "rsync://$LOOP:$RSYNC_PORT/course/" "$RDEST/"
SERVER_PIDS=()
same_files "$TREE" "$RDEST" >"$ERR" 2>&1 || die "after rsync the v1 copy differs from v2: $(cat "$ERR")"
stop_pid "$RSYNCD_PID"; RSYNCD_PID=""
stop_pid "$RELAY_PID"; RELAY_PID=""

# ---------------------------------------------------------------------------
# 8. Report
# ---------------------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
[[ -n "$cpu_model" ]] || cpu_model=$(uname -m)
git_rev=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo "no commit yet")
shanlu_ver="skipped (SHANLU_SKIP=1); repo at $git_rev"
if [[ -n "$SHANLU" ]]; then
    shanlu_ver=$("$SHANLU" --version 2>/dev/null | head -n1 || true)
    shanlu_ver="${shanlu_ver:-shanlu (no --version)}, $SHANLU, repo at $git_rev"
fi
export WD RESULTS COUNTS NOTES SIZE_GB RUNS SEED CMDLINE SKIP_SHANLU CURL_STREAMS EDIT_FRACTION
export M_NPROC="$(nproc)" M_CPU="$cpu_model" M_KERNEL="$(uname -srm)"
export M_MEM="$((mem_kb / 1024)) MiB" M_FS="$(stat -f -c %T "$WD") ($(df -P "$WD" | awk 'NR==2{print $1}'))"
export M_OS="$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
export V_SHANLU="$shanlu_ver" V_NGINX="$(nginx -v 2>&1 | head -n1)"
export V_CURL="$(curl --version | head -n1 | cut -d' ' -f1-5)" V_RSYNC="$(rsync --version | head -n1)"
export V_OPENSSL="$(openssl version)" V_NFT="$( ((NFT_OK)) && nft --version || echo 'nft not used')"
export V_TIME="GNU time $(dpkg-query -W -f '${Version}' time 2>/dev/null || /usr/bin/time --version 2>&1 | head -n1)"
python3 "$HELPERS/report.py"
log "done"
