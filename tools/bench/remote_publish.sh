#!/usr/bin/env bash
# Remote publish benchmark for shanlu (issue 15): `shanlu publish TREE --origin …`
# to an `origin serve` on this machine over loopback, against `rsync -a` of the same
# tree to another folder on the same machine; then a 1 % edit of the tree and a
# re-publish, against `rsync --no-whole-file` (rsync's delta algorithm, forced locally).
# Also `rsync -a` over ssh to a private sshd on loopback (how rsync reaches the origin machine
# from an administrator's own; encryption at both ends, as for shanlu), when sshd is installed,
# with and without a final `sync`, and the CPU seconds the whole machine spent on each side's
# run (from /proc/stat: user, nice, system, irq, softirq; steal excluded).
# Prints a Markdown table for BENCHMARKS.md.
#
# Usage:
#   bash tools/bench/remote_publish.sh [--size-gb N] [--runs N] [--workdir DIR]
#                                      [--timeout SECS] [--seed S] [--transport quic|https]
#
#   --size-gb N     approximate tree size in GiB (default 2; 0.05 for a smoke run)
#   --runs N        timed repetitions of each contender (default 3); medians are reported
#   --workdir DIR   parent of the scratch folder (default /var/tmp); the script makes
#                   DIR/shanlu-rbench.XXXXXX and removes only that, on any exit
#   --timeout SECS  limit for each timed command (default 900)
#   --seed S        generator seed (default 20240601)
#   --transport T   quic (default) or https (the origin's HTTPS fallback)
#
# Environment: SHANLU_BIN=P uses this shanlu binary instead of building
# target/release/shanlu (`cargo build --release -p tools`).
#
# Method: the tree (tools/bench/gen-tree.py) is read once, untimed, so every contender
# starts with a hot page cache; `sync` runs untimed before each timed command. Each
# remote publish goes to a fresh `shanlu origin init` served by `origin serve` (both
# untimed); the timed command is the client alone, from start to the signed catalog
# (it chunks and hashes the tree, sends every chunk, and the origin writes, syncs and
# verifies every file). Each rsync goes to a fresh, empty folder. Nothing is deleted
# until the end: ext4 allocates inodes slowly next to ones deleted in the last minute,
# which charged each run for the run before it (so DIR needs about (4 × runs + 2) ×
# the tree's size free; checked before starting). For the same reason, leave a few
# minutes between two invocations: each one's cleanup frees every run's files.
# The remote publish and the rsync over ssh run back to back in each run, taking turns
# first (odd runs: shanlu), so the two meet the machine in the same state; besides the
# medians, each run's ratio of the two and the median of those ratios are reported.
# The 1 % edit (after the last run, on the last origin and the last rsync copy):
# `--edits` regions of random bytes, 1 % of the tree's bytes in all, overwritten in
# place in the largest files (deterministic offsets), plus one new page. Bytes moved,
# both ways: shanlu — from the publish report, chunk bytes sent whole
# (sent_chunk_bytes), deltas sent (sent_delta_bytes) and the `Bases` questions and
# their signature answers (signature_bytes), all as encoded (QUIC/TLS framing and the
# manifests and objects of the plan not included); rsync — "Total bytes sent" plus
# "Total bytes received" of `--stats` (literal data, block checksums both ways and
# protocol), and its "Literal data" for reference.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CMDLINE=$(printf '%q ' "bash" "${BASH_SOURCE[0]}" "$@")
CMDLINE=${CMDLINE% }

SIZE_GB=2
RUNS=3
WORKDIR_PARENT=/var/tmp
TIMEOUT=900
SEED=20240601
TRANSPORT=quic
EDITS=20
LOOP=127.0.0.1

log() { printf '[rbench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'remote_publish.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; }
# shellcheck source=tools/bench/common.sh
source "$SCRIPT_DIR/common.sh"

CHILD=""
on_signal() {
    if [[ -n "$CHILD" ]]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
    exit "$1"
}

while (($#)); do
    case "$1" in
        --size-gb) SIZE_GB=${2:?--size-gb needs a value}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --workdir) WORKDIR_PARENT=${2:?--workdir needs a value}; shift 2 ;;
        --timeout) TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --seed) SEED=${2:?--seed needs a value}; shift 2 ;;
        --transport) TRANSPORT=${2:?--transport needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
awk -v s="$SIZE_GB" 'BEGIN{exit !(s >= 0.01 && s <= 64)}' || die "--size-gb must be in 0.01..64"
[[ "$RUNS" =~ ^[0-9]+$ ]] && ((RUNS >= 1 && RUNS <= 50)) || die "--runs must be 1..50"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a positive integer"
[[ "$TRANSPORT" == quic || "$TRANSPORT" == https ]] || die "--transport is quic or https"
[[ -d "$WORKDIR_PARENT" ]] || die "--workdir $WORKDIR_PARENT is not a directory"
for c in rsync python3 timeout awk sync; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' not found (apt-get install $c)"
done

if [[ -n "${SHANLU_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN
else
    log "building shanlu: cargo build --release -p tools"
    (cd "$REPO_ROOT" && bounded 3600 cargo build --release -p tools >&2) || die "cargo build failed"
    SHANLU="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/shanlu"
fi
[[ -x "$SHANLU" ]] || die "$SHANLU is not an executable"

WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-rbench.XXXXXX")
SERVER=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n "$SERVER" ]] && stop_pid "$SERVER"
    [[ -n "${SSHD:-}" ]] && stop_pid "$SSHD"
    rm -rf -- "$WD"
    exit "$rc"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
OUT=$WD/out ERR=$WD/err
fail_cmd() { die "$1 failed (exit $2): $(tail -5 "$ERR")"; }

NEED_KB=$(awk -v s="$SIZE_GB" -v r="$RUNS" 'BEGIN{printf "%d", (4 * r + 2) * s * 1048576 * 1.1}')
FREE_KB=$(df -Pk "$WD" | awk 'NR == 2 {print $4}')
((FREE_KB >= NEED_KB)) || die "$WD has $((FREE_KB / 1048576)) GiB free; $RUNS runs of a $SIZE_GB GiB tree need about $((NEED_KB / 1048576)) GiB"

TREE=$WD/tree
log "generating a ${SIZE_GB} GiB tree"
prep "gen-tree.py" python3 "$SCRIPT_DIR/gen-tree.py" "$TREE" --size-gb "$SIZE_GB" --seed "$SEED"
TREE_BYTES=$(du -sb "$TREE" | awk '{print $1}')
cat -- $(find "$TREE" -type f) >/dev/null

# rsync to another machine goes over ssh: a private sshd on loopback (its own host and
# user keys under $WD, no PAM), so the comparison pays encryption at both ends as shanlu does.
SSHD="" SSH_CMD=""
if [[ -x /usr/sbin/sshd ]] && command -v ssh >/dev/null 2>&1; then
    mkdir -p "$WD/ssh" && chmod 700 "$WD/ssh"
    ssh-keygen -q -t ed25519 -N '' -f "$WD/ssh/host" && ssh-keygen -q -t ed25519 -N '' -f "$WD/ssh/user"
    cp "$WD/ssh/user.pub" "$WD/ssh/authorized_keys" && chmod 600 "$WD/ssh/authorized_keys"
    [[ -d /run/sshd ]] || mkdir -p /run/sshd 2>/dev/null || true
    SSH_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    /usr/sbin/sshd -D -f /dev/null -o Port="$SSH_PORT" -o ListenAddress=127.0.0.1 \
        -o HostKey="$WD/ssh/host" -o AuthorizedKeysFile="$WD/ssh/authorized_keys" \
        -o PidFile="$WD/ssh/pid" -o StrictModes=no -o UsePAM=no -o PermitRootLogin=prohibit-password \
        2>"$WD/ssh/log" &
    SSHD=$!
    SSH_CMD="ssh -p $SSH_PORT -i $WD/ssh/user -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=error"
    sleep 0.5
    $SSH_CMD "$(id -un)@127.0.0.1" true 2>/dev/null || { log "sshd on loopback did not work (see $WD/ssh/log): no rsync-over-ssh row"; SSH_CMD=""; }
else
    log "no sshd (apt-get install openssh-server): no rsync-over-ssh row"
fi

# serve_origin DIR: `origin serve` in the background; sets SERVER, URL, FP
serve_origin() {
    local dir=$1 i
    RUST_LOG=warn "$SHANLU" origin serve --data "$dir" --quic "$LOOP:0" --http "$LOOP:0" --https "$LOOP:0" \
        >"$dir.addr" 2>"$dir.log" &
    SERVER=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^origin certificate:' "$dir.addr" 2>/dev/null && break
        kill -0 "$SERVER" 2>/dev/null || die "origin serve exited: $(tail -3 "$dir.log")"
        sleep 0.1
    done
    FP=$(awk '/^origin certificate:/ {print $3}' "$dir.addr")
    if [[ "$TRANSPORT" == quic ]]; then
        URL="quic://$(awk '/^quic:/ {print $2}' "$dir.addr")"
    else
        URL="https://$(awk '/^https:/ {print $2}' "$dir.addr")"
    fi
    [[ -n "$FP" ]] || die "origin serve printed no certificate"
}

now() { echo "$EPOCHREALTIME"; }
# busy: CPU seconds spent so far by the whole machine (every process, user and
# system): the difference around a timed command is what it cost both ends.
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print ($2 + $3 + $4 + $7 + $8) / hz; exit}' /proc/stat; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b - a}'; }
# ratio A B [DIGITS]: A / B to DIGITS decimals (default 2), or n/a.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN{if (b > 0) printf "%.*f", d, a / b; else print "n/a"}'; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

PUB_TIMES=() RSYNC_TIMES=() RSYNC_SYNC_TIMES=() LOCAL_TIMES=() SSH_TIMES=() SSH_SYNC_TIMES=()
PUB_CPU=() SSH_CPU=() PAIRED=()

# remote_publish RUN: one timed `shanlu publish --origin` to a fresh origin.
remote_publish() {
    local run=$1 c0 t0 t1
    ORIGIN=$WD/origin-$run
    prep "origin init" "$SHANLU" origin init --data "$ORIGIN"
    TOKEN=$(awk '/^admin token:/ {print $3}' "$OUT")
    serve_origin "$ORIGIN"
    sync
    c0=$(busy)
    t0=$(now)
    bounded "$TIMEOUT" env SHANLU_ADMIN_TOKEN="$TOKEN" "$SHANLU" publish "$TREE" --origin "$URL" \
        --origin-cert "$FP" --json >"$WD/report-$run.json" 2>"$ERR" || fail_cmd "remote publish" $?
    t1=$(now)
    PUB_CPU+=("$(elapsed "$c0" "$(busy)")")
    PUB_TIMES+=("$(elapsed "$t0" "$t1")")
    log "run $run: remote publish ${PUB_TIMES[-1]} s"
    if ((run < RUNS)); then stop_pid "$SERVER"; SERVER=""; fi
}

# rsync_over_ssh RUN: one timed `rsync -a` over ssh to a fresh folder.
rsync_over_ssh() {
    local run=$1 c0 t0 t1 t2
    SSH_DEST=$WD/rsync-ssh-$run
    sync
    c0=$(busy)
    t0=$(now)
    bounded "$TIMEOUT" rsync -a -e "$SSH_CMD" "$TREE/" "$(id -un)@127.0.0.1:$SSH_DEST/" 2>"$ERR" \
        || fail_cmd "rsync -a over ssh" $?
    t1=$(now)
    SSH_CPU+=("$(elapsed "$c0" "$(busy)")")
    sync
    t2=$(now)
    SSH_TIMES+=("$(elapsed "$t0" "$t1")")
    SSH_SYNC_TIMES+=("$(elapsed "$t0" "$t2")")
    log "run $run: rsync -a over ssh ${SSH_TIMES[-1]} s (${SSH_SYNC_TIMES[-1]} s with its sync)"
}

for ((run = 1; run <= RUNS; run++)); do
    # The two contenders run back to back, in turns first: whichever writes
    # first meets the page cache as the last run left it.
    if [[ -n "$SSH_CMD" ]] && ((run % 2 == 0)); then
        rsync_over_ssh "$run"
        remote_publish "$run"
    else
        remote_publish "$run"
        if [[ -n "$SSH_CMD" ]]; then rsync_over_ssh "$run"; fi
    fi
    if [[ -n "$SSH_CMD" ]]; then PAIRED+=("$(ratio "${PUB_TIMES[-1]}" "${SSH_TIMES[-1]}" 3)"); fi

    LOCAL=$WD/local-$run
    prep "origin init" "$SHANLU" origin init --data "$LOCAL"
    sync
    t0=$(now)
    bounded "$TIMEOUT" "$SHANLU" publish "$TREE" --data "$LOCAL" >/dev/null 2>"$ERR" || fail_cmd "local publish" $?
    t1=$(now)
    LOCAL_TIMES+=("$(elapsed "$t0" "$t1")")

    DEST=$WD/rsync-$run
    sync
    t0=$(now)
    bounded "$TIMEOUT" rsync -a "$TREE/" "$DEST/" 2>"$ERR" || fail_cmd "rsync -a" $?
    t1=$(now)
    sync
    t2=$(now)
    RSYNC_TIMES+=("$(elapsed "$t0" "$t1")")
    RSYNC_SYNC_TIMES+=("$(elapsed "$t0" "$t2")")
    log "run $run: rsync -a ${RSYNC_TIMES[-1]} s (${RSYNC_SYNC_TIMES[-1]} s with its sync); local publish ${LOCAL_TIMES[-1]} s"
done
SSH_MED=n/a SSH_SYNC_MED=n/a SSH_CPU_MED=n/a PAIRED_MED=n/a
if ((${#SSH_TIMES[@]})); then
    PAIRED_MED=$(printf '%s\n' "${PAIRED[@]}" | median)
    SSH_MED=$(printf '%s\n' "${SSH_TIMES[@]}" | median)
    SSH_SYNC_MED=$(printf '%s\n' "${SSH_SYNC_TIMES[@]}" | median)
    SSH_CPU_MED=$(printf '%s\n' "${SSH_CPU[@]}" | median)
fi
PUB_CPU_MED=$(printf '%s\n' "${PUB_CPU[@]}" | median)
PUB_MED=$(printf '%s\n' "${PUB_TIMES[@]}" | median)
RSYNC_MED=$(printf '%s\n' "${RSYNC_TIMES[@]}" | median)
RSYNC_SYNC_MED=$(printf '%s\n' "${RSYNC_SYNC_TIMES[@]}" | median)
LOCAL_MED=$(printf '%s\n' "${LOCAL_TIMES[@]}" | median)

log "editing 1 % of the tree in $EDITS places"
python3 - "$TREE" "$TREE_BYTES" "$EDITS" "$SEED" <<'PY'
import os, random, sys
tree, total, edits, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed + 1)
files = sorted((os.path.getsize(os.path.join(d, f)), os.path.join(d, f))
               for d, _, fs in os.walk(tree) for f in fs)
big = [p for s, p in files[-max(1, edits // 2):]]
each = max(1, total // 100 // edits)
for i in range(edits):
    path = big[i % len(big)]
    size = os.path.getsize(path)
    at = rng.randrange(0, max(1, size - each))
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(rng.randbytes(min(each, size)))
lesson = sorted(d for d in os.listdir(tree) if os.path.isdir(os.path.join(tree, d)))[0]
with open(os.path.join(tree, lesson, "edit-note.html"), "w") as f:
    f.write("<p>an edit</p>\n" * 50)
PY
sync
t0=$(now)
bounded "$TIMEOUT" env SHANLU_ADMIN_TOKEN="$TOKEN" "$SHANLU" publish "$TREE" --origin "$URL" \
    --origin-cert "$FP" --json >"$WD/edit.json" 2>"$ERR" || fail_cmd "remote re-publish" $?
t1=$(now)
EDIT_PUB_TIME=$(elapsed "$t0" "$t1")
read -r EDIT_PUB_BYTES EDIT_WHOLE EDIT_DELTA EDIT_SIG EDIT_DELTA_CHUNKS EDIT_CHANGED < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
f = [r.get(k, 0) for k in ("sent_chunk_bytes", "sent_delta_bytes", "signature_bytes", "delta_chunks", "new_chunk_bytes")]
print(f[0] + f[1] + f[2], *f)' "$WD/edit.json")
sync
t0=$(now)
bounded "$TIMEOUT" rsync -a --no-whole-file --stats "$TREE/" "$DEST/" >"$OUT" 2>"$ERR" || fail_cmd "rsync --no-whole-file" $?
t1=$(now)
EDIT_RSYNC_TIME=$(elapsed "$t0" "$t1")
EDIT_RSYNC_SENT=$(awk -F': ' '/^Total bytes sent/ {gsub(/,/, "", $2); print $2 + 0}' "$OUT")
EDIT_RSYNC_RECEIVED=$(awk -F': ' '/^Total bytes received/ {gsub(/,/, "", $2); print $2 + 0}' "$OUT")
EDIT_RSYNC_BYTES=$((EDIT_RSYNC_SENT + EDIT_RSYNC_RECEIVED))
EDIT_RSYNC_LITERAL=$(awk -F': ' '/^Literal data/ {gsub(/,/, "", $2); split($2, a, " "); print a[1] + 0}' "$OUT")

TIME_RATIO=$(ratio "$PUB_MED" "$RSYNC_MED")
BYTE_RATIO=$(ratio "$EDIT_PUB_BYTES" "$EDIT_RSYNC_BYTES")
verdict() { awk -v r="$1" 'BEGIN{print (r != "n/a" && r <= 1.0) ? "PASS" : "FAIL"}'; }

cat <<EOF
## Remote publish vs rsync (issue 15)

\`$CMDLINE\` — tree $(awk -v b="$TREE_BYTES" 'BEGIN{printf "%.2f GiB", b / 1073741824}'), $RUNS runs, medians, loopback, transport $TRANSPORT, $(nproc) cores.

| what | shanlu publish --origin | rsync | ratio | target |
|---|---|---|---|---|
| whole tree, wall s | $PUB_MED | $RSYNC_MED (\`rsync -a\`) | $TIME_RATIO | ≤ 1.0× $(verdict "$TIME_RATIO") |
| whole tree, wall s, rsync incl. its final \`sync\` (shanlu's publish is durable when it returns) | $PUB_MED | $RSYNC_SYNC_MED | $(ratio "$PUB_MED" "$RSYNC_SYNC_MED") | — |
| whole tree, wall s, \`rsync -a\` over ssh to loopback (how rsync reaches another machine) | $PUB_MED | $SSH_MED | $(ratio "$PUB_MED" "$SSH_MED") | ≤ 1.0× $(verdict "$(ratio "$PUB_MED" "$SSH_MED")") |
| whole tree, each run's remote publish / the \`rsync -a\` over ssh next to it (back to back, taking turns first), median of the runs' ratios | | | $PAIRED_MED | ≤ 1.0× $(verdict "$PAIRED_MED") |
| whole tree, wall s, \`rsync -a\` over ssh incl. its final \`sync\` | $PUB_MED | $SSH_SYNC_MED | $(ratio "$PUB_MED" "$SSH_SYNC_MED") | — |
| whole tree, CPU s of the whole machine (both ends; over ssh for rsync) | $PUB_CPU_MED | $SSH_CPU_MED | $(ratio "$PUB_CPU_MED" "$SSH_CPU_MED") | — |
| whole tree, wall s, against a local \`shanlu publish --data\` (fresh origin) | $PUB_MED | $LOCAL_MED (local publish) | $(ratio "$PUB_MED" "$LOCAL_MED") | — |
| after a 1 % edit, bytes moved both ways | $EDIT_PUB_BYTES (whole chunks $EDIT_WHOLE, $EDIT_DELTA_CHUNKS deltas $EDIT_DELTA, signatures $EDIT_SIG; changed chunks $EDIT_CHANGED) | $EDIT_RSYNC_BYTES (\`--no-whole-file\`, sent $EDIT_RSYNC_SENT + received $EDIT_RSYNC_RECEIVED; literal $EDIT_RSYNC_LITERAL) | $BYTE_RATIO | ≤ 1.0× $(verdict "$BYTE_RATIO") |
| after a 1 % edit, wall s | $EDIT_PUB_TIME | $EDIT_RSYNC_TIME | $(ratio "$EDIT_PUB_TIME" "$EDIT_RSYNC_TIME") | — |

Runs (s): remote publish ${PUB_TIMES[*]}; rsync ${RSYNC_TIMES[*]}; rsync+sync ${RSYNC_SYNC_TIMES[*]}; rsync over ssh ${SSH_TIMES[*]:-none}; rsync over ssh+sync ${SSH_SYNC_TIMES[*]:-none}; CPU s publish ${PUB_CPU[*]}, rsync over ssh ${SSH_CPU[*]:-none}; local publish ${LOCAL_TIMES[*]}; each run's remote publish / rsync over ssh ${PAIRED[*]:-none}.
EOF
