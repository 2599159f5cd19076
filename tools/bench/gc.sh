#!/usr/bin/env bash
# Origin garbage collection benchmark (issue 13, first part): a generated course published
# VERSIONS times with ~1 % of its bytes edited between publishes (tools/bench/sync/edit-tree.py),
# then a timed `shanlu origin gc --keep-versions KEEP`, the store's blob bytes before and
# after, and `shanlu verify` afterwards. Local only (no network).
#
# Usage: [SIZE_GB=0.2] [VERSIONS=5] [KEEP=1] [SHANLU_BIN=target/release/shanlu] bash tools/bench/gc.sh
# Needs python3 and GNU time (/usr/bin/time). Works in a fresh /var/tmp/shanlu-gc-bench.XXXXXX,
# removed on exit.

set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
SIZE_GB=${SIZE_GB:-0.2} VERSIONS=${VERSIONS:-5} KEEP=${KEEP:-1}
[[ "$VERSIONS" =~ ^[0-9]+$ ]] && ((VERSIONS >= 2 && VERSIONS <= 100)) || { echo "VERSIONS must be 2..100" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "needs GNU time: apt-get install time" >&2; exit 2; }
if [[ -z "${SHANLU_BIN:-}" ]]; then
    (cd "$REPO_ROOT" && cargo build --release -p tools >&2)
    SHANLU_BIN=${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/shanlu
fi
S=$(realpath "$SHANLU_BIN")
WD=$(mktemp -d /var/tmp/shanlu-gc-bench.XXXXXX)
trap 'rm -rf -- "$WD"' EXIT INT TERM
cd "$WD"

blob_bytes() { du -sb origin/store/blobs | cut -f1; }
python3 "$SCRIPT_DIR/gen-tree.py" tree --size-gb "$SIZE_GB" --seed 11 > /dev/null 2>&1
"$S" origin init --data origin > /dev/null 2>&1
for ((v = 1; v <= VERSIONS; v++)); do
    ((v > 1)) && python3 "$SCRIPT_DIR/sync/edit-tree.py" tree --seed $((100 + v)) > /dev/null
    "$S" publish tree --data origin > /dev/null 2>&1
done
before=$(blob_bytes)
/usr/bin/time -f "%e %U %S %M" -o gc.time "$S" origin gc --data origin --keep-versions "$KEEP" > gc.out 2> gc.err
read -r wall user sys rss < gc.time
after=$(blob_bytes)
"$S" verify origin > verify.out 2>&1 && verified=ok || verified=FAILED
echo "origin gc: ${SIZE_GB} GB course, $VERSIONS versions (~1 % edited each), --keep-versions $KEEP"
echo
echo "| blob bytes before | after | freed | gc wall s | gc CPU s | gc peak RSS MiB | verify after |"
echo "|---:|---:|---:|---:|---:|---:|---|"
awk -v b="$before" -v a="$after" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v ok="$verified" \
    'BEGIN { printf "| %d | %d | %d | %s | %.2f | %.1f | %s |\n", b, a, b - a, w, u + s, m / 1024, ok }'
echo
sed 's/^/    /' gc.out
[[ "$verified" == ok ]]
