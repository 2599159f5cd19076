#!/usr/bin/env bash
# A/B of the edge's fresh-sync CPU for two shanlu builds, on loopback (127.0.0.1 only):
# one origin (served by the first build) holds a generated course; each run makes a
# fresh edge, drops the page cache (when root), reads the course and the origin's store
# back into it, and times `shanlu edge sync` with GNU time. Runs are interleaved
# (A, B, A, B, ...) so a machine that changes speed affects both; medians are printed.
#
# Usage: bash tools/bench/sync-ab.sh BIN_A BIN_B [SIZE_GB [RUNS]]     (defaults 0.5, 8)
#   e.g. bash tools/bench/sync-ab.sh /tmp/shanlu-before target/release/shanlu
#
# Needs: python3, GNU time (/usr/bin/time, Debian package `time`). Writes only under a
# fresh /var/tmp/shanlu-sync-ab.XXXXXX, removed on exit.

set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") SIZE_GB=${3:-0.5} RUNS=${4:-8}
[[ "$RUNS" =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 50)) || { echo "RUNS must be 1..50" >&2; exit 2; }
for bin in "$A" "$B"; do [[ -x "$bin" ]] || { echo "not an executable: $bin" >&2; exit 2; }; done
[[ -x /usr/bin/time ]] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WD=$(mktemp -d /var/tmp/shanlu-sync-ab.XXXXXX)
SERVER=""
cleanup() { [[ -n "$SERVER" ]] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf -- "$WD"; }
trap cleanup EXIT INT TERM
cd "$WD"

python3 "$SCRIPT_DIR/gen-tree.py" tree --size-gb "$SIZE_GB" --seed 7 >/dev/null 2>&1
"$A" origin init --data origin > init.out 2> init.err
"$A" publish tree --data origin > /dev/null 2> publish.err
KEY=$(awk '/origin key/ {print $3}' init.out)
CERT=$(awk '/origin certificate/ {print $3}' init.out)
for ((i = 1; i <= 2 * RUNS; i++)); do
    "$A" origin add-edge --data origin --name "ab-$i" 2>> add-edge.err | awk '/edge token/ {print $3}'
done > tokens
"$A" origin serve --data origin --quic 127.0.0.1:0 --http 127.0.0.1:0 --https 127.0.0.1:0 > serve.out 2> serve.err &
SERVER=$!
for _ in $(seq 100); do grep -q '^quic:' serve.out && break; sleep 0.1; done
PORT=$(awk -F: '/^quic:/ {print $NF}' serve.out)
[[ -n "$PORT" ]] || { echo "origin serve printed no quic port: $(tail -3 serve.err)" >&2; exit 1; }

run() {  # run LABEL BIN N
    local edge="edge-$3"
    "$2" edge init --data "$edge" --origin "quic://127.0.0.1:$PORT" --origin-key "$KEY" \
        --origin-cert "$CERT" --token "$(sed -n "${3}p" tokens)" --subscribe all > /dev/null
    sync
    [[ $(id -u) -eq 0 ]] && echo 3 > /proc/sys/vm/drop_caches
    find tree origin -type f -print0 | xargs -0 cat > /dev/null
    /usr/bin/time -f "%e %U %S %M" -o "time-$3" "$2" edge sync --data "$edge" > /dev/null 2> "sync-$3.err" ||
        { echo "$1: edge sync failed: $(tail -3 "sync-$3.err")" >&2; exit 1; }
    read -r wall user sys rss < "time-$3"
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$rss" "$3" >> results.tsv
    rm -rf -- "$edge"
}
for ((r = 1; r <= RUNS; r++)); do
    run A "$A" $((2 * r - 1))
    run B "$B" $((2 * r))
done
python3 - "$A" "$B" "$SIZE_GB" <<'PY'
import statistics, sys
rows = [line.split('\t') for line in open('results.tsv')]
print(f"fresh sync of a {sys.argv[3]} GB course on loopback, {len(rows)//2} interleaved runs each\n")
print("| build | median CPU s | median wall s | peak RSS MiB | CPU s per run |")
print("|---|---:|---:|---:|---|")
for label, path in (("A", sys.argv[1]), ("B", sys.argv[2])):
    mine = [r for r in rows if r[0] == label]
    cpu = [float(r[2]) for r in mine]
    wall = [float(r[1]) for r in mine]
    rss = max(int(r[3]) for r in mine) / 1024
    print(f"| {label}: {path} | {statistics.median(cpu):.2f} | {statistics.median(wall):.2f} | {rss:.1f} | {' '.join(f'{c:.2f}' for c in cpu)} |")
PY
