#!/usr/bin/env bash
# Issue 14: USB bundle speed against plain copies of the same bytes.
#
#   create: `shanlu bundle create` of a generated course  vs  `tar cf` of the course folder
#   import: `shanlu edge import` of that bundle (with every check)  vs  `cp -r` of the bundle
#
# Usage: tools/bench/bundle.sh   (env: SIZE_GB=0.5, SHANLU=target/release/shanlu,
#        WORK=a folder on the disk to measure, default a fresh mktemp -d; RUNS=3;
#        SRC=where the course, the origin and the stick go, default WORK: e.g. a
#        tmpfs, the issue's "from a folder on another disk/tmpfs")
# Needs (4 + 2 x RUNS) x SIZE_GB free on WORK's disk (checked first), or with
# SRC elsewhere 2 x RUNS x SIZE_GB on WORK and 4 x SIZE_GB on SRC.
# Each timing is the median of RUNS, the two sides interleaved (only the
# command: making a fresh edge folder is not timed) with the source in the page cache (no root
# needed to drop caches), so the ratios compare the work, not the stick.
# Goal (issue 14): import at least 0.7x cp's speed.
set -euo pipefail

SIZE_GB=${SIZE_GB:-0.5}
RUNS=${RUNS:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
SHANLU=${SHANLU:-$HERE/../../target/release/shanlu}
[[ -x $SHANLU ]] || { echo "build first: cargo build --release -p tools ($SHANLU)" >&2; exit 1; }
OWN_WORK=0
if [[ -z ${WORK:-} ]]; then WORK=$(mktemp -d); OWN_WORK=1; fi
mkdir -p "$WORK"
SRC=${SRC:-$WORK}
OWN_SRC=0
if [[ $SRC != "$WORK" ]]; then
    [[ -e $SRC ]] && { echo "SRC=$SRC exists; give a new folder (it is removed at the end)" >&2; exit 1; }
    mkdir -p "$SRC"; OWN_SRC=1
fi
cleanup() {
    rm -rf "$WORK"/edge-* "$WORK"/copy-*
    if ((OWN_WORK)); then rm -rf "$WORK"; fi
    if ((OWN_SRC)); then rm -rf "$SRC"; fi
}
trap cleanup EXIT
log() { echo "bundle.sh: $*" >&2; }

now() { date +%s.%N; }
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# time_run CMD RUN: runs `prepare_CMD RUN` if there is one (untimed), then
# `CMD RUN`; prints the seconds CMD took.
time_run() {
    local t0 t1
    [[ $(type -t "prepare_$1") == function ]] && "prepare_$1" "$2"
    t0=$(now)
    if ! "$1" "$2" >/dev/null; then log "$1 (run $2) failed"; echo failed; return; fi
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}'
}
# medians_of A B: RUNS runs of A and of B, interleaved (A B A B ...) so both
# see the same machine (a noisy neighbour, the disk's own background work);
# prints the two medians.
medians_of() {
    local i a=() b=()
    for ((i = 0; i < RUNS; i++)); do
        a+=("$(time_run "$1" "$i")")
        b+=("$(time_run "$2" "$i")")
    done
    log "$1: ${a[*]} s"
    log "$2: ${b[*]} s"
    [[ " ${a[*]} ${b[*]} " != *" failed "* ]] || return 1
    echo "$(printf '%s\n' "${a[@]}" | median) $(printf '%s\n' "${b[@]}" | median)"
}

# The course, the origin, the stick, and an edge and a copy per run.
if [[ $SRC == "$WORK" ]]; then
    NEED_KB=$(awk -v g="$SIZE_GB" -v r="$RUNS" 'BEGIN {printf "%d", g * (3 + 2 * r + 1) * 1024 * 1024}')
else
    NEED_KB=$(awk -v g="$SIZE_GB" -v r="$RUNS" 'BEGIN {printf "%d", g * (2 * r + 0.1) * 1024 * 1024}')
    SRC_NEED_KB=$(awk -v g="$SIZE_GB" 'BEGIN {printf "%d", g * 4 * 1024 * 1024}')
    SRC_FREE_KB=$(df -Pk "$SRC" | awk 'NR == 2 {print $4}')
    ((SRC_FREE_KB >= SRC_NEED_KB)) || { log "needs ${SRC_NEED_KB} KiB free in $SRC, has ${SRC_FREE_KB}"; exit 1; }
fi
FREE_KB=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
((FREE_KB >= NEED_KB)) || { log "needs ${NEED_KB} KiB free in $WORK, has ${FREE_KB}"; exit 1; }

log "generating a ${SIZE_GB} GiB course in $SRC"
python3 "$HERE/gen-tree.py" "$SRC/course" --size-gb "$SIZE_GB" >/dev/null
BYTES=$(du -sb "$SRC/course" | cut -f1)
"$SHANLU" origin init --data "$SRC/origin" >"$SRC/init.txt"
KEY=$(sed -n 's/^origin key: //p' "$SRC/init.txt")
CERT=$(sed -n 's/^origin certificate: //p' "$SRC/init.txt")
"$SHANLU" publish "$SRC/course" --data "$SRC/origin" >/dev/null
TOKEN=$("$SHANLU" origin add-edge --data "$SRC/origin" --name bench 2>/dev/null | grep -oE '[0-9a-f]{64}' | head -1)

create_bundle() { "$SHANLU" bundle create --data "$SRC/origin" --out "$SRC/stick" --json; }
create_tar() { tar cf "$SRC/course.tar" -C "$SRC" course && sync -f "$SRC/course.tar"; rm -f "$SRC/course.tar"; }
# (create and tar still clean up inside their timing, as before.)
# A pristine edge folder (a few KB), copied before each import, untimed.
# Each run imports into (and copies to) a folder of its own; they are all
# removed after the runs, not between them: ext4 is slow to allocate inodes
# next to ones deleted seconds before, which would charge the import (1,000
# files) for the previous run's cleanup and not cp (4 files).
"$SHANLU" edge init --data "$WORK/edge0" --origin quic://127.0.0.1:9 --origin-key "$KEY" \
    --origin-cert "$CERT" --token "$TOKEN" --min-free 1MB >/dev/null
prepare_import_bundle() { cp -a "$WORK/edge0" "$WORK/edge-$1" && sync -f "$WORK/edge0"; }
# A run counts only if the edge then holds everything (a full disk makes the
# quota leave files out, which is quick and not an error).
import_bundle() { "$SHANLU" edge import --data "$WORK/edge-$1" "$SRC/stick" --json | grep -q '"complete": true'; }
prepare_copy_bundle() { sync -f "$SRC/stick"; }
copy_bundle() { cp -r "$SRC/stick/shanlu-bundle" "$WORK/copy-$1" && sync -f "$WORK/copy-$1"; }

log "create: bundle vs tar ($RUNS runs each, interleaved)"
MEDIANS=$(medians_of create_bundle create_tar) || { log "a run failed"; exit 1; }
read -r CREATE TAR <<<"$MEDIANS"
STICK_BYTES=$(du -sb "$SRC/stick/shanlu-bundle" | cut -f1)
log "import: edge import vs cp -r ($RUNS runs each, interleaved)"
cat "$SRC"/stick/shanlu-bundle/* >/dev/null
MEDIANS=$(medians_of import_bundle copy_bundle) || { log "a run failed"; exit 1; }
read -r IMPORT CP <<<"$MEDIANS"
for ((i = 0; i < RUNS; i++)); do "$SHANLU" verify "$WORK/edge-$i" | tail -1 >&2; done
rm -rf "$WORK"/edge-* "$WORK"/copy-*

awk -v b="$BYTES" -v s="$STICK_BYTES" -v c="$CREATE" -v t="$TAR" -v i="$IMPORT" -v p="$CP" 'BEGIN {
    mb = 1024 * 1024
    printf "course %.0f MiB, bundle %.0f MiB\n", b / mb, s / mb
    printf "create: bundle %.2f s (%.0f MiB/s), tar %.2f s (%.0f MiB/s): bundle at %.2fx tar speed\n", c, b / mb / c, t, b / mb / t, t / c
    printf "import: edge import %.2f s (%.0f MiB/s), cp -r %.2f s (%.0f MiB/s): import at %.2fx cp speed (goal >= 0.7x)\n", i, s / mb / i, p, s / mb / p, p / i
}'
