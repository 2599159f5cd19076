#!/usr/bin/env bash
# Small-update benchmark for shanlu (issue 12): on one emulated link (tools/linksim), an
# edge that holds a course picks up a one-page edit plus one new 300 KB file, timed, side by
# side with rsync of the same update from an rsync daemon over the same link. Run by
# `CASE=small-update bash tools/bench/links.sh`, or on its own.
#
# Environment (defaults in brackets):
#   LINK="..."       shanlu-linksim flags [profile (b): --rate 20Mbit --delay 300ms --loss 1%]
#   REPEAT=N         updates timed, one after another on the same link [5]
#   SEED=S           seed of the course, the updates and the link's loss [20240601]
#   SHANLU_BIN=P, LINKSIM_BIN=P   the binaries [cargo build --release -p tools -p linksim]
#   RESULTS_DIR=DIR  writes DIR/small-update-<date-time>-<pid>/ [target/bench-links]
#   SYNC_LOG=FILTER  RUST_LOG of the timed syncs; their logs (sync-N.err) have each line's
#                    seconds since the start [info]
#
# What runs, once: a course (3 lessons, pages, one 2 MB video), `shanlu publish` into a new
# origin, the link, `origin serve` and `rsync --daemon` (module "course", the course folder)
# in its origin namespace, `edge init` and a first full `edge sync` and `rsync -a` in its
# edge namespace (untimed; the origin learns the link). Then REPEAT times: lesson 02's page
# is edited and a new 300 KB file (random bytes) added to that lesson, `shanlu publish`
# (untimed), then timed: `shanlu edge sync --transport quic --json` (the whole process:
# connection, catalog, metadata, chunks, status, close) and `rsync -a` of the same folder.
# Prints each run and the medians; the target (issue 12) is shanlu <= half of rsync, and
# <= 4 round trips + the payload's transfer time + 1 s.
#
# Needs root (network namespaces, TUN), rsync, python3, ip.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
LINK=${LINK:---rate 20Mbit --delay 300ms --loss 1%}
REPEAT=${REPEAT:-5}
SEED=${SEED:-20240601}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/target/bench-links}
[[ "$RESULTS_DIR" == /* ]] || RESULTS_DIR="$REPO_ROOT/$RESULTS_DIR"
[[ "$REPEAT" =~ ^[0-9]+$ ]] && ((REPEAT >= 1 && REPEAT <= 100)) || { echo "REPEAT must be 1..100" >&2; exit 1; }

log() { printf '[small-update %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'small-update.sh: error: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "needs root: shanlu-linksim makes network namespaces and TUN devices"
export PATH="$PATH:/usr/sbin:/sbin"
for c in rsync ip python3 setsid; do command -v "$c" >/dev/null || die "'$c' not found"; done

if [[ -n "${SHANLU_BIN:-}" && -n "${LINKSIM_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN LINKSIM=$LINKSIM_BIN
else
    log "building: cargo build --release -p tools -p linksim"
    (cd "$REPO_ROOT" && cargo build --release -p tools -p linksim >&2) || die "cargo build failed"
    target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
    SHANLU=$target/release/shanlu LINKSIM=$target/release/shanlu-linksim
fi

WD=$(mktemp -d /var/tmp/shanlu-small-update.XXXXXX)
RUN_DIR="$RESULTS_DIR/small-update-$(date -u +%Y%m%d-%H%M%S)-$$"
mkdir -p "$RUN_DIR"
LINK_PID="" SERVER_PID="" RSYNCD_PID=""
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "$SERVER_PID" "$RSYNCD_PID"; do
        [[ -z "$pid" ]] || { kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    done
    if [[ -n "$LINK_PID" ]]; then kill -TERM "$LINK_PID" 2>/dev/null || true; wait "$LINK_PID" 2>/dev/null || true; fi
    rm -rf -- "$WD"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The course.
COURSE="$WD/course"
python3 - "$COURSE" "$SEED" <<'PY'
import os, random, sys
out, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
def put(rel, data):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
for n, name in enumerate(["01-count", "02-add", "03-shapes"]):
    put(f"{name}/index.html", (f"<h1>{name}</h1>\n" + "<p>一到十 ꆈꌠ</p>\n" * 200).encode())
    put(f"{name}/img/figure.jpg", rng.randbytes(60_000))
put("01-count/video/lesson.mp4", rng.randbytes(2_000_000))
PY

ORIGIN="$WD/origin" EDGE="$WD/edge" DEST="$WD/rsync-dest"
"$SHANLU" origin init --data "$ORIGIN" >"$WD/init.out"
KEY=$(awk -F': ' '$1 == "origin key" {print $2}' "$WD/init.out")
CERT=$(awk -F': ' '$1 == "origin certificate" {print $2}' "$WD/init.out")
"$SHANLU" publish "$COURSE" --data "$ORIGIN" >/dev/null
TOKEN=$("$SHANLU" origin add-edge --data "$ORIGIN" --name small-update | awk -F': ' '$1 == "edge token" {print $2}')
[[ -n "$KEY" && -n "$CERT" && -n "$TOKEN" ]] || die "origin init / add-edge printed no key, certificate or token"

# The link and the servers.
# shellcheck disable=SC2086
"$LINKSIM" $LINK --seed "$SEED" --lifetime 3600s --stats-file "$RUN_DIR/link.json" >"$RUN_DIR/link.env" 2>"$RUN_DIR/link.err" &
LINK_PID=$!
for ((i = 0; i < 300; i++)); do grep -q '^pid=' "$RUN_DIR/link.env" 2>/dev/null && break; sleep 0.1; done
ORIGIN_NS=$(awk -F= '$1 == "origin_ns" {print $2}' "$RUN_DIR/link.env")
EDGE_NS=$(awk -F= '$1 == "edge_ns" {print $2}' "$RUN_DIR/link.env")
IP=$(awk -F= '$1 == "origin_ip" {print $2}' "$RUN_DIR/link.env")
[[ -n "$ORIGIN_NS" && -n "$EDGE_NS" && -n "$IP" ]] || die "shanlu-linksim did not start: $(cat "$RUN_DIR/link.err")"
RUST_LOG=${SERVER_LOG:-info} setsid ip netns exec "$ORIGIN_NS" "$SHANLU" origin serve --data "$ORIGIN" --quic "$IP:4433" --http "$IP:8081" \
    --https "$IP:8443" >"$RUN_DIR/server.out" 2>"$RUN_DIR/server.err" &
SERVER_PID=$!
cat >"$WD/rsyncd.conf" <<EOF
use chroot = no
[course]
    path = $COURSE
    read only = yes
EOF
setsid ip netns exec "$ORIGIN_NS" rsync --daemon --no-detach --address "$IP" --port 873 \
    --config "$WD/rsyncd.conf" --log-file "$RUN_DIR/rsyncd.log" &
RSYNCD_PID=$!
for ((i = 0; i < 300; i++)); do grep -q '^quic:' "$RUN_DIR/server.out" 2>/dev/null && break; sleep 0.1; done
sleep 1
"$SHANLU" edge init --data "$EDGE" --origin "quic://$IP:4433" --origin-key "$KEY" --origin-cert "$CERT" \
    --token "$TOKEN" --subscribe all >/dev/null
log "first sync and first rsync (untimed) across: $LINK"
ip netns exec "$EDGE_NS" "$SHANLU" edge sync --data "$EDGE" --transport quic --json >"$RUN_DIR/first-sync.json" 2>"$RUN_DIR/first-sync.err" ||
    die "the first edge sync failed: $(tail -n 5 "$RUN_DIR/first-sync.err")"
mkdir -p "$DEST"
ip netns exec "$EDGE_NS" rsync -a --timeout=60 "rsync://$IP/course/" "$DEST/" 2>"$RUN_DIR/first-rsync.err" ||
    die "the first rsync failed: $(tail -n 5 "$RUN_DIR/first-rsync.err")"

now() { printf '%s' "$EPOCHREALTIME"; }
# stamp T0: prefixes each line of stdin with the seconds since T0 (for the sync's log)
stamp() { local t0=$1 line; while IFS= read -r line; do printf '%7.3f %s\n' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{print b - a}')" "$line"; done; }
printf 'run\tshanlu_s\trsync_s\tbytes_fetched\tobjects_fetched\n' >"$RUN_DIR/results.tsv"
for ((n = 1; n <= REPEAT; n++)); do
    python3 - "$COURSE" "$SEED" "$n" <<'PY'
import os, random, sys
out, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
page = os.path.join(out, "02-add/index.html")
with open(page, "a", encoding="utf-8") as f:
    f.write(f"<p>edit {n}: 1 + {n} = {1 + n}</p>\n")
with open(os.path.join(out, f"02-add/worksheet-{n:02d}.pdf"), "wb") as f:
    f.write(random.Random(seed * 1000 + n).randbytes(300 * 1024))
PY
    "$SHANLU" publish "$COURSE" --data "$ORIGIN" >/dev/null
    t0=$(now)
    RUST_LOG=${SYNC_LOG:-info} ip netns exec "$EDGE_NS" "$SHANLU" edge sync --data "$EDGE" --transport quic --json \
        >"$RUN_DIR/sync-$n.json" 2> >(stamp "$t0" >"$RUN_DIR/sync-$n.err") ||
        die "edge sync $n failed: $(tail -n 5 "$RUN_DIR/sync-$n.err")"
    t1=$(now)
    ip netns exec "$EDGE_NS" rsync -a --timeout=60 "rsync://$IP/course/" "$DEST/" 2>"$RUN_DIR/rsync-$n.err" ||
        die "rsync $n failed: $(tail -n 5 "$RUN_DIR/rsync-$n.err")"
    t2=$(now)
    read -r fetched objects < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["bytes_fetched"], r["objects_fetched"])' "$RUN_DIR/sync-$n.json")
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
    r=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.2f", b - a}')
    printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$s" "$r" "$fetched" "$objects" >>"$RUN_DIR/results.tsv"
    log "update $n: shanlu ${s}s ($fetched chunk bytes, $objects objects), rsync ${r}s"
done
diff -r -q "$COURSE" "$DEST" >/dev/null || die "rsync's copy differs from the course"

python3 - "$RUN_DIR/results.tsv" "$LINK" <<'PY' | tee "$RUN_DIR/summary.md"
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])][1:]
s = [float(r[1]) for r in rows]
r = [float(r[2]) for r in rows]
ms, mr = statistics.median(s), statistics.median(r)
print(f"Small update (one page + one 300 KB file) across `{sys.argv[2]}`, {len(rows)} runs")
print()
print("| | median | runs |")
print("|---|---|---|")
print(f"| shanlu edge sync (QUIC) | {ms:.2f} s | {' '.join(f'{x:.2f}' for x in s)} |")
print(f"| rsync -a | {mr:.2f} s | {' '.join(f'{x:.2f}' for x in r)} |")
print()
print(f"shanlu / rsync = {ms / mr:.2f} (target <= 0.50): {'PASS' if ms <= mr / 2 else 'FAIL'}")
PY
log "results in $RUN_DIR"
