#!/usr/bin/env bash
# A school year on one edge (issue 13): WEEKS weekly versions of a course of COURSE_MB with about
# 3 % of its bytes changed each week (a re-recorded lecture, a new lesson, corrected pages, an
# old lesson deleted every other week: tools/bench/year-week.py), published on an origin that
# runs `origin gc --keep-versions 4` after each publish, synced by an edge subscribed to that
# course only, with `max_store = MAX_STORE`, that also serves read-through files of a second,
# unsubscribed course of LIBRARY_MB to its classroom every week. Loopback only, no root.
#
# Per week: the edge's store on disk (blob and partial files; must stay <= MAX_STORE), the
# bytes the pass fetched, the pass's wall time, its collection's time and what the quota
# evicted, the read-through bytes, and the origin's blob bytes after its gc. At the end:
# `shanlu verify` on edge and origin, and the origin's store against the four kept versions.
#
# Usage: [WEEKS=40] [COURSE_MB=300] [LIBRARY_MB=100] [MAX_STORE=700MB] [FRACTION=0.03]
#        [SHANLU_BIN=target/release/shanlu] bash tools/bench/year.sh
# Needs python3 and curl. Works in a fresh /var/tmp/shanlu-year.XXXXXX, removed on exit
# (KEEP_WD=1 keeps it). Prints a Markdown table; the raw JSON of every pass is kept in
# target/bench-year/<date>/.

set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
WEEKS=${WEEKS:-40} COURSE_MB=${COURSE_MB:-300} LIBRARY_MB=${LIBRARY_MB:-100}
MAX_STORE=${MAX_STORE:-700MB} FRACTION=${FRACTION:-0.03}
[[ "$WEEKS" =~ ^[0-9]+$ ]] && ((WEEKS >= 1 && WEEKS <= 200)) || { echo "WEEKS must be 1..200" >&2; exit 2; }
[[ "$MAX_STORE" =~ ^([0-9]+)MB$ ]] || { echo "MAX_STORE must be NMB, e.g. 700MB" >&2; exit 2; }
LIMIT=$((BASH_REMATCH[1] * 1000 * 1000))
for c in python3 curl; do command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 2; }; done

log() { printf '[year %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'year.sh: error: %s\n' "$*" >&2; exit 1; }

if [[ -z "${SHANLU_BIN:-}" ]]; then
    (cd "$REPO_ROOT" && cargo build --release -p tools >&2)
    SHANLU_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/shanlu
fi
S=$(realpath "$SHANLU_BIN")
WD=$(mktemp -d /var/tmp/shanlu-year.XXXXXX)
RUN_DIR="$REPO_ROOT/target/bench-year/$(date -u +%Y%m%d-%H%M%S)-$$"
mkdir -p "$RUN_DIR"
ORIGIN_PID="" EDGE_PID=""
cleanup() {
    local pid
    for pid in "$EDGE_PID" "$ORIGIN_PID"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [[ "${KEEP_WD:-0}" == 1 ]] && log "kept $WD" || rm -rf -- "$WD"
}
trap cleanup EXIT INT TERM
cd "$WD"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
store_bytes() {  # what the edge's store holds in files: blob and partial files (not directories)
    find "$1/store/blobs" "$1/store/partial" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

log "generating the course (${COURSE_MB} MB) and the library (${LIBRARY_MB} MB)"
gib() { awk -v m="$1" 'BEGIN {printf "%.4f", m * 1000 * 1000 / 1073741824}'; }
python3 "$SCRIPT_DIR/gen-tree.py" course --size-gb "$(gib "$COURSE_MB")" --media 12 --seed 7 >/dev/null 2>gen.err \
    || die "generating the course: $(tail -2 gen.err)"
python3 "$SCRIPT_DIR/gen-tree.py" library --size-gb "$(gib "$LIBRARY_MB")" --media 8 --lessons 8 --seed 8 >/dev/null 2>gen.err \
    || die "generating the library: $(tail -2 gen.err)"
printf 'id = "year-course"\n' > course/course.toml
printf 'id = "library"\n' > library/course.toml

"$S" origin init --data origin > init.out 2>&1 || die "origin init: $(tail -3 init.out)"
KEY=$(awk '$1 == "origin" && $2 == "key:" {print $3}' init.out)
CERT=$(awk '$1 == "origin" && $2 == "certificate:" {print $3}' init.out)
"$S" publish course --data origin > /dev/null 2>&1 || die "publish course"
"$S" publish library --data origin > /dev/null 2>&1 || die "publish library"
"$S" origin add-edge --data origin --name year-school > add.out 2>&1
TOKEN=$(awk '$1 == "edge" && $2 == "token:" {print $3}' add.out)
QPORT=$(free_port) HPORT=$(free_port) CPORT=$(free_port)
"$S" origin serve --data origin --quic "127.0.0.1:$QPORT" --http "127.0.0.1:$HPORT" --https 127.0.0.1:0 \
    > origin.out 2> origin.err &
ORIGIN_PID=$!
sleep 1
kill -0 "$ORIGIN_PID" || die "origin serve: $(tail -3 origin.err)"
"$S" edge init --data edge --origin "quic://127.0.0.1:$QPORT" --origin-key "$KEY" --origin-cert "$CERT" \
    --token "$TOKEN" --subscribe year-course --max-store "$MAX_STORE" --min-free 1MB > /dev/null 2>&1 \
    || die "edge init"
log "week 0: the first sync"
"$S" edge sync --data edge --json > "$RUN_DIR/week-00.json" 2> "$RUN_DIR/week-00.err" || die "first sync: $(tail -3 "$RUN_DIR/week-00.err")"
"$S" edge run --data edge --listen "127.0.0.1:$CPORT" --interval 100000000 > edge.out 2> edge.err &
EDGE_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$CPORT/api/v1/status" > /dev/null && break; sleep 0.2; done

# Library files read through, one lesson's files a week.
mapfile -t LIBRARY_FILES < <(cd library && find . -type f ! -name course.toml -size +100k | sed 's|^\./||' | sort)

echo "| week | course MB | edge store MB | <= limit | fetched MB | pass s | gc s | evicted MB | read-through MB | origin blobs MB |" > table.md
echo "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|" >> table.md
declare -a TREE_BYTES
over=0 worst_gc=0
for ((w = 1; w <= WEEKS; w++)); do
    python3 "$SCRIPT_DIR/year-week.py" course --week "$w" --fraction "$FRACTION" > "$RUN_DIR/edit-$w.json"
    TREE_BYTES[w]=$(json "$RUN_DIR/edit-$w.json" 'd["tree_bytes"]')
    "$S" publish course --data origin > /dev/null 2> publish.err || die "publish week $w: $(tail -3 publish.err)"
    "$S" origin gc --data origin --keep-versions 4 --json > "$RUN_DIR/origin-gc-$w.json" 2> gc.err \
        || die "origin gc week $w: $(tail -3 gc.err)"
    start=$(date +%s.%N)
    "$S" edge sync --data edge --json > "$RUN_DIR/week-$w.json" 2> "$RUN_DIR/week-$w.err" \
        || die "sync week $w: $(tail -3 "$RUN_DIR/week-$w.err")"
    end=$(date +%s.%N)
    read_bytes=0
    file=${LIBRARY_FILES[$(((w - 1) % ${#LIBRARY_FILES[@]}))]}
    lesson=${file%%/*} rest=${file#*/}
    n=$(curl -fs -o /dev/null -w '%{size_download}' "http://127.0.0.1:$CPORT/courses/library/$lesson/$rest") || n=0
    read_bytes=$((read_bytes + n))
    sleep 0.5
    used=$(store_bytes edge)
    ok=yes
    ((used <= LIMIT)) || { ok=NO; over=1; }
    origin_blobs=$(store_bytes origin)
    python3 - "$RUN_DIR/week-$w.json" "$w" "${TREE_BYTES[w]}" "$used" "$ok" "$start" "$end" "$read_bytes" "$origin_blobs" >> table.md <<'EOF'
import json, sys
path, week, tree, used, ok, start, end, read, origin = sys.argv[1:]
d = json.load(open(path))
quota = d.get("quota") or {}
gc = ((quota.get("collection") or {}).get("millis") or 0) / 1000
evicted = quota.get("evicted_bytes") or 0
mb = lambda b: f"{int(b) / 1e6:.1f}"
print(f"| {week} | {mb(tree)} | {mb(used)} | {ok} | {mb(d.get('bytes_fetched', 0))} | "
      f"{float(end) - float(start):.2f} | {float(gc):.3f} | {mb(evicted)} | {mb(read)} | {mb(origin)} |")
EOF
    tail -1 table.md >&2
done
kill "$EDGE_PID" && wait "$EDGE_PID" 2>/dev/null || true
EDGE_PID=""

"$S" verify edge > verify-edge.out 2>&1 && edge_ok=ok || edge_ok=FAILED
"$S" verify origin > verify-origin.out 2>&1 && origin_ok=ok || origin_ok=FAILED
origin_blobs=$(store_bytes origin)
library=$(find library -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
four=0
for ((w = WEEKS > 3 ? WEEKS - 3 : 1; w <= WEEKS; w++)); do four=$((four + TREE_BYTES[w])); done
newest=${TREE_BYTES[WEEKS]}
cat table.md
cp table.md "$RUN_DIR/"
echo
echo "edge: max_store $MAX_STORE, over the limit after a pass: $([[ $over == 0 ]] && echo never || echo YES); verify $edge_ok"
awk -v o="$origin_blobs" -v l="$library" -v f="$four" -v n="$newest" -v ok="$origin_ok" 'BEGIN {
    printf "origin: blob bytes %.1f MB (course versions kept + library %.1f MB); verify %s\n", o / 1e6, l / 1e6, ok
    printf "origin course bytes / newest version: %.2f; / sum of the four kept versions: %.2f\n", (o - l) / n, (o - l) / f
}'
echo "raw reports: $RUN_DIR"
[[ "$edge_ok" == ok && "$origin_ok" == ok && $over == 0 ]]
