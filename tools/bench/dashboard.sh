#!/usr/bin/env bash
# The fleet dashboard benchmark (issue 15), on loopback only. An origin with EDGES synthetic
# edges and DAYS daily reports from each (a year by default), loaded through the fleet's bulk
# entry point (`Fleet::apply`, group commits) so setup takes minutes; then `shanlu origin serve
# --admin` on it, and:
#   - REQUESTS sequential requests of each main page (edges list sorted/filtered/paged, course
#     adoption, most-opened lessons, edges.json, edges.csv, /metrics): p50, p99, max;
#   - the origin's RSS after start, after the pages, after ingestion, and its peak (VmHWM);
#   - ingestion: SENDERS simulated edges at once, each sending REPORTS sealed reports over the
#     sync protocol (`POST /v1/sync` on the origin's HTTP listener: the same answer as QUIC).
# Prints a Markdown table. Goals: page p99 < 200 ms, RSS < 200 MiB, >= 1,000 reports/s.
#
# Usage:
#   bash tools/bench/dashboard.sh                        (settings through the environment)
#   EDGES=300 DAYS=30 bash tools/bench/dashboard.sh      # a small run (seconds)
#
# Environment (defaults in brackets):
#   EDGES=N  DAYS=N  COUNTIES=N  COURSES=N   the synthetic fleet [10000 365 100 30]
#   SENDERS=N  REPORTS=N                     ingestion: edges at once, reports each [200 25]
#   REQUESTS=N                               requests per page [200]
#   PROFILE=release|debug                    which build to use [release]
#   SHANLU_BIN=P  BENCH_BIN=P                use these binaries instead of building them
#   WORKDIR=DIR                              parent of the scratch folder (removed on exit) [/var/tmp]
#   TIMEOUT=SECS                             limit for the whole run [7200]
# The program is tools/bench/dashboard/dashboard.rs (`cargo build -p tools --example dashboard`).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
EDGES=${EDGES:-10000}
DAYS=${DAYS:-365}
COUNTIES=${COUNTIES:-100}
COURSES=${COURSES:-30}
SENDERS=${SENDERS:-200}
REPORTS=${REPORTS:-25}
REQUESTS=${REQUESTS:-200}
PROFILE=${PROFILE:-release}
WORKDIR_PARENT=${WORKDIR:-/var/tmp}
TIMEOUT=${TIMEOUT:-7200}

exec {LOGFD}>&2
log() { printf '[dashboard %(%H:%M:%S)T] %s\n' -1 "$*" >&"$LOGFD"; }
die() { printf 'dashboard.sh: error: %s\n' "$*" >&"$LOGFD"; exit 1; }
# shellcheck source=tools/bench/common.sh
source "$SCRIPT_DIR/common.sh"

case "${1:-}" in
    -h|--help) awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; exit 0 ;;
    "") ;;
    *) die "no arguments are taken (settings come from the environment; see --help)" ;;
esac
for v in EDGES DAYS COUNTIES COURSES SENDERS REPORTS REQUESTS TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && ((${!v} >= 1)) || die "$v must be a whole number of at least 1, got '${!v}'"
done
((COURSES >= 10)) || die "COURSES must be at least 10 (each edge holds 10)"
((DAYS <= 3650)) || die "DAYS must be at most 3650"
[[ "$PROFILE" == release || "$PROFILE" == debug ]] || die "PROFILE must be release or debug"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$TARGET" == /* ]] || TARGET="$REPO_ROOT/$TARGET"
if [[ -z "${SHANLU_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
    flag=()
    [[ "$PROFILE" == release ]] && flag=(--release)
    log "building: cargo build ${flag[*]} -p tools --bin shanlu --example dashboard"
    (cd "$REPO_ROOT" && bounded 3600 cargo build "${flag[@]}" -p tools --bin shanlu --example dashboard) >&2 ||
        die "cargo build failed"
fi
SHANLU=${SHANLU_BIN:-$TARGET/$PROFILE/shanlu}
BENCH=${BENCH_BIN:-$TARGET/$PROFILE/examples/dashboard}
[[ -x "$SHANLU" ]] || die "$SHANLU is not an executable"
[[ -x "$BENCH" ]] || die "$BENCH is not an executable"

WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-dashboard.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
CHILD=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$CHILD"
    if [[ "${KEEP_WORKDIR:-0}" == 1 ]]; then log "KEEP_WORKDIR=1: leaving $WD"; else rm -rf -- "$WD"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "fleet of $EDGES edges x $DAYS days in $WD"
bounded "$TIMEOUT" "$BENCH" --shanlu "$SHANLU" --dir "$WD/run" --edges "$EDGES" --days "$DAYS" \
    --counties "$COUNTIES" --courses "$COURSES" --senders "$SENDERS" \
    --reports-per-sender "$REPORTS" --requests "$REQUESTS" ||
    die "the benchmark failed (exit $?); the origin's log is $WD/run/origin.log (KEEP_WORKDIR=1 keeps it)"
echo
echo "Command: EDGES=$EDGES DAYS=$DAYS COUNTIES=$COUNTIES COURSES=$COURSES SENDERS=$SENDERS REPORTS=$REPORTS REQUESTS=$REQUESTS PROFILE=$PROFILE bash tools/bench/dashboard.sh"
