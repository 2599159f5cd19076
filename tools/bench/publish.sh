#!/usr/bin/env bash
# Publish benchmark for shanlu: times `shanlu publish` (new and unchanged republish)
# side by side with `cp -r`, `b3sum` and `casync make` on a deterministic ~2 GB
# course tree, and prints a Markdown report with PASS/FAIL target checks.
#
# Usage:
#   bash tools/bench/publish.sh [--size-gb N] [--runs N] [--workdir DIR]
#                               [--timeout SECS] [--seed S]
#
#   --size-gb N    approximate tree size in GiB (default 2; e.g. 0.1 for a smoke run)
#   --runs N       timed repetitions of every contender (default 3); medians are reported
#   --workdir DIR  parent for the scratch folder (default /var/tmp); the script makes
#                  DIR/shanlu-bench.XXXXXX and removes only that, on any exit
#   --timeout SECS limit for each timed command (default 900); hitting it is a failure
#   --seed S       generator seed (default 20240601)
#
# Environment:
#   SHANLU_SKIP=1  do not build or run shanlu (to test the rest of the harness)
#   SHANLU_BIN=P   use this shanlu binary instead of building target/release/shanlu
#
# Exit status: 0 when every tool ran (even if targets FAIL: this is a report),
# non-zero when a tool itself failed or something needed is missing.
#
# Dependencies (installed with apt-get if missing; `apt-get update` only runs when an
# install is needed). All exist in Debian 12 "bookworm" main, checked with
# `apt-cache policy b3sum casync time`:
#   b3sum  1.2.0-1+b4         official BLAKE3 CLI (multi-threaded, mmap for big files)
#   casync 2+20201210-1+b1    `casync make` defaults: zstd-compressed chunks,
#                             sha512-256 digests, 64 KiB average chunk size
#   time   1.9-0.2            GNU time at /usr/bin/time (`-f '%e %M'`: wall s, peak RSS KiB)
# On a Debian without a b3sum package (older releases), the script falls back to
# `cargo install --locked b3sum`, which compiles the crate from crates.io (no prebuilt
# binaries). casync has no fallback.
# shanlu itself is built with `cargo build --release -p tools` in the repo root.
#
# Contenders (each timed --runs times, interleaved: run 1 of all, then run 2, ...):
#   shanlu publish TREE --data ORIGIN      on a fresh `shanlu origin init` (init untimed)
#   shanlu publish TREE --data ORIGIN      again, unchanged, same origin
#   shanlu publish --rehash TREE ...       again, only if `publish --help` lists --rehash
#                                          (informational row, not a target)
#   cp -r TREE DEST                        fresh DEST, removed after
#   find TREE -type f -print0 | xargs -0 b3sum >/dev/null
#   casync make --store=STORE INDEX.caidx TREE   fresh store, removed after
#
# Method: everything is measured with a hot page cache. The tree is read once,
# untimed (`cat`), before the first contender; no caches are dropped. An untimed
# `sync` runs before and after every timed command, so one tool's writeback does not
# land on the next one. The timed wall clock therefore does not include flushing the
# tool's own dirty pages (a tool that fsyncs pays for it, cp does not); the
# "incl. sync" column adds that final sync for reference.
# Wall time: bash $EPOCHREALTIME around the command (GNU time's %e only has 10 ms
# resolution; it is logged as a cross-check). Peak RSS: GNU time %M, the largest over
# the runs (for the b3sum pipeline, its largest process; b3sum mmaps big files, so its
# RSS includes mapped page-cache pages).
# Run time: about 2.5 minutes for the default 2 GiB x 3 runs on 2 cores (casync make is
# most of it), plus the cargo build; every command is bounded by --timeout.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CMDLINE=$(printf '%q ' "bash" "${BASH_SOURCE[0]}" "$@")
CMDLINE=${CMDLINE% }
[[ "${SHANLU_SKIP:-0}" == 1 ]] && CMDLINE="SHANLU_SKIP=1 $CMDLINE"
[[ -n "${SHANLU_BIN:-}" ]] && CMDLINE="SHANLU_BIN=$(printf '%q' "$SHANLU_BIN") $CMDLINE"

SIZE_GB=2
RUNS=3
WORKDIR_PARENT=/var/tmp
TIMEOUT=900
SEED=20240601

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'publish.sh: error: %s\n' "$*" >&2; exit 1; }
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
    exit "$1"
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
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

[[ "$SIZE_GB" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)$ ]] || die "--size-gb must be a number, got '$SIZE_GB'"
awk -v s="$SIZE_GB" 'BEGIN{exit !(s >= 0.01 && s <= 64)}' || die "--size-gb must be in 0.01..64"
[[ "$RUNS" =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 50)) || die "--runs must be an integer 1..50"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && ((TIMEOUT >= 1)) || die "--timeout must be a positive integer"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"
[[ -d "$WORKDIR_PARENT" ]] || die "--workdir $WORKDIR_PARENT is not a directory"
WORKDIR_PARENT=$(cd "$WORKDIR_PARENT" && pwd)

SKIP_SHANLU=0
[[ "${SHANLU_SKIP:-0}" == 1 ]] && SKIP_SHANLU=1

# ---------------------------------------------------------------------------
# 1. Dependencies
# ---------------------------------------------------------------------------

missing=()
command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
command -v casync >/dev/null 2>&1 || missing+=(casync)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here; install them by hand"
    log "installing missing packages: ${missing[*]} (apt-get update first)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 ||
        die "apt-get update failed"
    apt_pkgs=()
    for p in "${missing[@]}"; do
        # A package name with a candidate version is installable from the configured suites.
        if [[ -n "$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]]; then
            apt_pkgs+=("$p")
        elif [[ "$p" == b3sum ]]; then
            log "b3sum is not packaged in this Debian; compiling it from crates.io with cargo"
            command -v cargo >/dev/null 2>&1 || die "b3sum not packaged and no cargo to build it"
            cargo install --locked b3sum >&2 || die "cargo install b3sum failed"
            export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        else
            die "Debian package '$p' is not available from the configured apt sources"
        fi
    done
    if ((${#apt_pkgs[@]})); then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${apt_pkgs[@]}" >&2 || die "apt-get install ${apt_pkgs[*]} failed"
    fi
fi
for c in b3sum casync python3 timeout find xargs cp sync awk; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found after installation"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time (GNU time) not found after installation"
/usr/bin/time -f '%e %M' -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time (-f/-o unsupported)"
[[ -f "$SCRIPT_DIR/gen-tree.py" ]] || die "$SCRIPT_DIR/gen-tree.py not found"

SHANLU=""
HAS_REHASH=0
if ((SKIP_SHANLU)); then
    log "SHANLU_SKIP=1: not building or timing shanlu"
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
    "$SHANLU" origin init --help >/dev/null 2>&1 || die "'$SHANLU origin init --help' failed: the origin init command is missing"
    "$SHANLU" publish --help >/dev/null 2>&1 || die "'$SHANLU publish --help' failed: the publish command is missing"
    # If publish has --rehash (re-read and hash every file instead of trusting the
    # size/mtime/inode cache), also time an unchanged republish with it: an extra,
    # informational row showing the cost of a republish that really reads the tree.
    if "$SHANLU" publish --help 2>/dev/null | grep -q -- '--rehash'; then HAS_REHASH=1; fi
fi

# ---------------------------------------------------------------------------
# Scratch folder, cleaned up on every exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-bench.XXXXXX") || die "cannot create a scratch folder under $WORKDIR_PARENT"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "${WD:-}" && -d "$WD" ]]; then
        log "removing $WD"
        rm -rf -- "$WD"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

need_kb=$(awk -v s="$SIZE_GB" 'BEGIN{printf "%d", s * 1048576 * 2.6 + 262144}')
avail_kb=$(df -Pk "$WD" | awk 'NR==2{print $4}')
((avail_kb >= need_kb)) ||
    die "not enough space in $WORKDIR_PARENT: need ~$((need_kb / 1024)) MiB (tree + one copy), have $((avail_kb / 1024)) MiB"
mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)
if awk -v m="$mem_kb" -v s="$SIZE_GB" 'BEGIN{exit !(m < s * 1048576 * 4)}'; then
    log "WARNING: RAM ($((mem_kb / 1024)) MiB) is under 4x the tree size; the page cache may not hold everything, numbers will mix in disk I/O"
fi

TREE="$WD/course"
RESULTS="$WD/results.tsv"
: >"$RESULTS"

# ---------------------------------------------------------------------------
# 2. Generate the tree
# ---------------------------------------------------------------------------
log "generating ~${SIZE_GB} GiB tree in $TREE (seed $SEED)"
gen_start=$(date +%s.%N)
bounded "$TIMEOUT" python3 "$SCRIPT_DIR/gen-tree.py" "$TREE" --size-gb "$SIZE_GB" --seed "$SEED" ||
    die "tree generation failed"
gen_end=$(date +%s.%N)
TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
TREE_FILES=$(find "$TREE" -type f | wc -l)
TREE_DIRS=$(find "$TREE" -mindepth 1 -type d | wc -l)
TREE_SMALL=$(find "$TREE" -type f -size -1048576c | wc -l)
TREE_LARGE=$((TREE_FILES - TREE_SMALL))
sync

log "warm-up: reading the tree once (untimed)"
bounded "$TIMEOUT" bash -c 'set -o pipefail; find "$1" -type f -print0 | xargs -0 cat >/dev/null' _ "$TREE" ||
    die "warm-up read of the tree failed"

# ---------------------------------------------------------------------------
# 3. Timed runs
# ---------------------------------------------------------------------------
TIMEF="$WD/time.out"
OUT="$WD/cmd.stdout"
ERR="$WD/cmd.stderr"

fail_cmd() {
    local what=$1 rc=$2
    printf 'publish.sh: error: %s failed (exit %s)\n' "$what" "$rc" >&2
    if [[ -s "$ERR" ]]; then
        printf -- '--- last lines of its stderr ---\n' >&2
        tail -n 20 "$ERR" >&2
    fi
    ((rc == 124)) && printf 'publish.sh: it hit the --timeout of %ss\n' "$TIMEOUT" >&2
    exit 2
}


# timed NAME RUN CMD...: sync, time CMD, sync (sync timed separately), record.
timed() {
    local name=$1 run=$2; shift 2
    local rc=0 t0 t1 t2 gnu_wall rss wall wsync
    sync
    rm -f -- "$TIMEF"
    # timeout outside GNU time: time measures the command itself (and, for a pipeline,
    # its largest process), not timeout. GNU time's %e has only 10 ms resolution, so
    # the wall time reported is taken with $EPOCHREALTIME (us) around the command; it
    # includes the ~1-3 ms of starting timeout and time. %e is kept as a cross-check.
    t0=$EPOCHREALTIME
    bounded "$TIMEOUT" /usr/bin/time -f '%e %M' -o "$TIMEF" "$@" >"$OUT" 2>"$ERR" || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 0)) || fail_cmd "$name (run $run: $*)" "$rc"
    sync
    t2=$EPOCHREALTIME
    read -r gnu_wall rss < <(tail -n 1 "$TIMEF")
    [[ "$gnu_wall" =~ ^[0-9.]+$ && "$rss" =~ ^[0-9]+$ ]] || die "could not parse GNU time output: $(cat "$TIMEF")"
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}')
    wsync=$(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.3f", b - a}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$wall" "$rss" "$wsync" "$gnu_wall" >>"$RESULTS"
    log "  $name run $run: ${wall}s (GNU time ${gnu_wall}s), peak RSS $((rss / 1024)) MiB, ${wsync}s incl. sync"
}

count_files() { if [[ -d "$1" ]]; then find "$1" -type f | wc -l; else echo 0; fi; }

REPUB_NEW_BLOBS=""   # blobs added by republish, per run
NEW_BLOBS=""         # blobs after a new publish, per run
ORIGIN_MB=""

for ((run = 1; run <= RUNS; run++)); do
    log "run $run/$RUNS"
    if [[ -n "$SHANLU" ]]; then
        origin="$WD/origin-$run"
        prep "shanlu origin init" "$SHANLU" origin init --data "$origin"
        # init prints keys on stdout; they stay in the scratch folder and are removed.
        timed "shanlu publish (new)" "$run" "$SHANLU" publish "$TREE" --data "$origin"
        b1=$(count_files "$origin/store/blobs")
        timed "shanlu publish (unchanged)" "$run" "$SHANLU" publish "$TREE" --data "$origin"
        b2=$(count_files "$origin/store/blobs")
        if ((HAS_REHASH)); then
            timed "shanlu publish --rehash (unchanged)" "$run" "$SHANLU" publish --rehash "$TREE" --data "$origin"
            b2=$(count_files "$origin/store/blobs")
        fi
        NEW_BLOBS+=" $b1"
        REPUB_NEW_BLOBS+=" $((b2 - b1))"
        ORIGIN_MB=$(du -sm "$origin" | awk '{print $1}')
        rm -rf -- "$origin"
        sync
    fi

    timed "cp -r" "$run" cp -r "$TREE" "$WD/cp-dest"
    rm -rf -- "$WD/cp-dest"
    sync

    timed "b3sum (all files)" "$run" bash -c \
        'set -o pipefail; find "$1" -type f -print0 | xargs -0 b3sum >/dev/null' _ "$TREE"

    mkdir -p "$WD/casync"
    timed "casync make" "$run" casync make --store="$WD/casync/store" "$WD/casync/index.caidx" "$TREE"
    CASYNC_CHUNKS=$(count_files "$WD/casync/store")
    CASYNC_MB=$(du -sm "$WD/casync/store" | awk '{print $1}')
    rm -rf -- "$WD/casync"
    sync
done

# ---------------------------------------------------------------------------
# 4. Report
# ---------------------------------------------------------------------------
cpu_model=$(awk -F': *' '/^model name/{print $2; exit}' /proc/cpuinfo)
[[ -n "$cpu_model" ]] || cpu_model=$(uname -m)
git_rev=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo "no commit yet")
shanlu_ver="skipped (SHANLU_SKIP=1); repo at $git_rev"
if [[ -n "$SHANLU" ]]; then
    shanlu_ver=$("$SHANLU" --version 2>/dev/null | head -n1 || true)
    shanlu_ver="${shanlu_ver:-shanlu (no --version)}, $SHANLU, repo at $git_rev"
fi

export RESULTS TREE_BYTES TREE_FILES TREE_DIRS TREE_SMALL TREE_LARGE SIZE_GB RUNS SEED CMDLINE
export SKIP_SHANLU HAS_REHASH NEW_BLOBS REPUB_NEW_BLOBS ORIGIN_MB CASYNC_CHUNKS CASYNC_MB
export M_NPROC="$(nproc)" M_CPU="$cpu_model" M_KERNEL="$(uname -srm)"
export M_MEM="$((mem_kb / 1024)) MiB" M_FS="$(stat -f -c %T "$WD") ($(df -P "$WD" | awk 'NR==2{print $1}'))"
export M_OS="$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}")"
export V_SHANLU="$shanlu_ver" V_B3SUM="$(b3sum --version | head -n1)"
export V_CASYNC="$(casync --version 2>&1 | head -n1)" V_CP="$(cp --version | head -n1)"
export V_TIME="GNU time $(dpkg-query -W -f '${Version}' time 2>/dev/null || /usr/bin/time --version 2>&1 | head -n1)"
export GEN_SECS="$(awk -v a="$gen_start" -v b="$gen_end" 'BEGIN{printf "%.1f", b - a}')"

python3 - <<'PY'
import os, statistics
from collections import defaultdict

E = os.environ
wall, rss, wsync = defaultdict(list), defaultdict(list), defaultdict(list)
for line in open(E["RESULTS"]):
    name, run, w, m, ws, _gnu = line.rstrip("\n").split("\t")
    wall[name].append(float(w)); rss[name].append(int(m)); wsync[name].append(float(ws))

nbytes = int(E["TREE_BYTES"])
med = {k: statistics.median(v) for k, v in wall.items()}
meds = {k: statistics.median(v) for k, v in wsync.items()}
peak = {k: max(v) / 1024 for k, v in rss.items()}
skip = E["SKIP_SHANLU"] == "1"

NEW, REP, REH, CP, B3, CA = ("shanlu publish (new)", "shanlu publish (unchanged)",
                             "shanlu publish --rehash (unchanged)",
                             "cp -r", "b3sum (all files)", "casync make")
order = [NEW, REP, REH, CP, B3, CA]

def ratio(a, b):
    if a not in med or b not in med or med[b] <= 0:
        return "n/a"
    return f"{med[a] / med[b]:.2f}x"

print("# shanlu publish benchmark\n")
print(f"Command: `{E['CMDLINE']}`\n")
print("## Machine\n")
print(f"- CPUs (nproc): {E['M_NPROC']}")
print(f"- CPU model: {E['M_CPU']}")
print(f"- Kernel: {E['M_KERNEL']}")
print(f"- OS: {E['M_OS']}")
print(f"- Memory: {E['M_MEM']}")
print(f"- Scratch filesystem: {E['M_FS']}")
print(f"- shanlu: {E['V_SHANLU']}")
print(f"- {E['V_B3SUM']}; {E['V_CASYNC']}; {E['V_CP']}; {E['V_TIME']}")
print()
print("## Tree\n")
print(f"- {nbytes / 1e6:.1f} MB ({nbytes / 2**30:.2f} GiB) in {E['TREE_FILES']} files "
      f"({E['TREE_LARGE']} large media files >= 1 MiB of incompressible bytes, "
      f"{E['TREE_SMALL']} small HTML/SVG/text files), {E['TREE_DIRS']} folders; "
      f"seed {E['SEED']}, generated in {E['GEN_SECS']}s")
print()
print("## Results\n")
print(f"Median of {E['RUNS']} interleaved runs. **Hot page cache**: the tree was read once "
      "(untimed) before timing and no caches were dropped; an untimed `sync` ran before and "
      "after each command. \"incl. sync\" adds the flush of the command's own writes. "
      "Wall time is measured around the command with bash's $EPOCHREALTIME; peak RSS is "
      "GNU time's %M, the maximum over the runs (for the b3sum pipeline: its largest process; "
      "b3sum mmaps large files, so its RSS counts mapped page-cache pages). "
      "MB = 10^6 bytes of tree content.\n")
print("| tool | median s | incl. sync s | MB/s | vs cp -r | vs b3sum | peak RSS MiB | runs (s) |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for k in order:
    if k == REH and k not in med:
        continue  # only timed when publish has --rehash
    if k not in med:
        print(f"| {k} | skipped | | | | | | |")
        continue
    mbps = nbytes / 1e6 / med[k] if med[k] > 0 else float("inf")
    runs = ", ".join(f"{x:.3f}" for x in wall[k])
    print(f"| {k} | {med[k]:.3f} | {meds[k]:.3f} | {mbps:.0f} | {ratio(k, CP)} | "
          f"{ratio(k, B3)} | {peak[k]:.1f} | {runs} |")
print()

print("## Targets\n")
def check(label, ok, detail):
    status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    print(f"- **{status}** {label}: {detail}")

def med_or(k):
    return med.get(k)

if skip or NEW not in med:
    for label in ("new publish <= 2x cp -r", "unchanged republish <= 2x b3sum",
                  "new publish >= 5x faster than casync make", "shanlu peak RSS < 100 MiB"):
        check(label, None, "shanlu not run (SHANLU_SKIP=1)")
else:
    r = med[NEW] / med[CP] if med[CP] > 0 else float("inf")
    rs = meds[NEW] / meds[CP] if meds[CP] > 0 else float("inf")
    check("new publish <= 2x cp -r", r <= 2.0,
          f"{med[NEW]:.3f}s vs {med[CP]:.3f}s = {r:.2f}x "
          f"(for reference, both incl. the final sync: {meds[NEW]:.3f}s vs {meds[CP]:.3f}s = {rs:.2f}x)")
    r = med[REP] / med[B3] if med[B3] > 0 else float("inf")
    check("unchanged republish <= 2x b3sum", r <= 2.0,
          f"{med[REP]:.3f}s vs {med[B3]:.3f}s = {r:.2f}x")
    r = med[CA] / med[NEW] if med[NEW] > 0 else float("inf")
    check("new publish >= 5x faster than casync make", r >= 5.0,
          f"{med[CA]:.3f}s / {med[NEW]:.3f}s = {r:.2f}x faster")
    p = max(peak[NEW], peak[REP], peak.get(REH, 0.0))
    check("shanlu peak RSS < 100 MiB", p < 100.0,
          f"{p:.1f} MiB (new {peak[NEW]:.1f}, unchanged {peak[REP]:.1f}"
          + (f", --rehash {peak[REH]:.1f})" if REH in peak else ")"))
print()
print("## Side information (not targets)\n")
if not (skip or NEW not in med):
    nb = E["NEW_BLOBS"].split()
    rb = E["REPUB_NEW_BLOBS"].split()
    print(f"- files under origin store/blobs/ after a new publish: {', '.join(nb) or 'n/a'} "
          f"(tree has {E['TREE_FILES']} files, some byte-identical); origin size {E['ORIGIN_MB'] or '?'} MiB")
    print(f"- new files under store/blobs/ after the unchanged republish(es): {', '.join(rb) or 'n/a'} "
          f"(expected 0)")
    if REH in med and med[B3] > 0:
        print(f"- unchanged republish with --rehash (reads every file): {med[REH]:.3f}s = "
              f"{med[REH] / med[B3]:.2f}x b3sum (not a target; the plain republish may skip "
              "files by size/mtime/inode)")
print(f"- casync store: {E['CASYNC_CHUNKS']} chunk files, {E['CASYNC_MB']} MiB "
      "(casync defaults: zstd-compressed chunks, sha512-256, 64 KiB average chunk)")
PY
log "done"
