#!/usr/bin/env bash
# The origin on S3-compatible storage (issue 16), on loopback (127.0.0.1 only), three parts:
#   A. edge sync of a ~1 GiB course from an origin on the bucket (its chunk cache hot)
#      against the same course from an origin on a local folder, alternating, fresh edge
#      each run;
#   B. `shanlu publish` of a ~2 GiB tree into a bucket origin against a folder origin,
#      alternating, fresh origin each run;
#   C. ten edges syncing the course through an nginx caching proxy in front of two origin
#      processes on one bucket (docs/s3.md's sample), all ten at once: bytes the S3
#      server answered GETs with, against the course's size.
# Prints a Markdown report for BENCHMARKS.md.
#
# Usage:
#   bash tools/bench/s3.sh [--size-gb N] [--publish-gb N] [--runs N] [--edges N]
#                          [--workdir DIR] [--timeout SECS] [--seed S]
#
#   --size-gb N     course size for A and C in GiB (default 1)
#   --publish-gb N  tree size for B in GiB (default 2; 0 skips B)
#   --runs N        timed runs of each contender in A and B (default 3); medians reported
#   --edges N       edges in C (default 10; 0 skips C)
#   --workdir DIR   parent of the scratch folder (default /var/tmp); the script makes
#                   DIR/shanlu-s3bench.XXXXXX and removes only that, on any exit
#   --timeout SECS  limit for each command (default 900)
#
# The S3 server is the tests' own (s3s-fs over a folder, `cargo run -p shanlu-tests
# --example s3-server`), on this machine: it counts the bytes its GET answers carry.
# Needs: python3, nginx (for C), GNU time. SHANLU_BIN=P uses that shanlu binary instead
# of building target/release/shanlu; S3_SERVER_BIN=P that S3 server program.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
CMDLINE=$(printf '%q ' "bash" "${BASH_SOURCE[0]}" "$@")
CMDLINE=${CMDLINE% }

SIZE_GB=1
PUBLISH_GB=2
RUNS=3
EDGES=10
WORKDIR_PARENT=/var/tmp
TIMEOUT=900
SEED=20240601
LOOP=127.0.0.1

log() { printf '[s3-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

while (($#)); do
    case $1 in
        --size-gb) SIZE_GB=$2; shift 2 ;;
        --publish-gb) PUBLISH_GB=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --edges) EDGES=$2; shift 2 ;;
        --workdir) WORKDIR_PARENT=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        *) die "unknown argument $1 (see the header of this script)" ;;
    esac
done

WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-s3bench.XXXXXX")
PIDS=()
S3_IN=""
cleanup() {
    local pid
    # The S3 server (the first) stops when its stdin closes, and deletes its
    # folder; a signal would leave the folder (the whole bucket) behind.
    if [[ -n "$S3_IN" ]]; then
        exec {S3_IN}>&- 2>/dev/null || true
        wait "${PIDS[0]}" 2>/dev/null || true
    fi
    for pid in "${PIDS[@]:1}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:1}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CHILD=""
OUT=$WD/out
ERR=$WD/err
fail_cmd() { die "$1 failed (exit $2): $(tail -n 5 "$ERR")"; }
# shellcheck source=common.sh
source "$SCRIPT_DIR/common.sh"

command -v python3 >/dev/null || die "python3 is needed (apt-get install python3)"
[[ -x /usr/bin/time ]] || die "GNU time is needed (apt-get install time)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ((EDGES > 0)) && [[ ! -x $NGINX ]]; then
    die "nginx is needed for part C (apt-get install nginx), or give --edges 0"
fi

if [[ -n ${SHANLU_BIN:-} ]]; then
    SHANLU=$SHANLU_BIN
else
    log "building shanlu and the S3 server (release)"
    (cd "$REPO_ROOT" && cargo build --release -q -p tools && cargo build --release -q -p shanlu-tests --example s3-server) ||
        die "cargo build failed"
    SHANLU=$REPO_ROOT/target/release/shanlu
fi
S3_SERVER=${S3_SERVER_BIN:-$REPO_ROOT/target/release/examples/s3-server}
[[ -x $S3_SERVER ]] || (cd "$REPO_ROOT" && cargo build --release -q -p shanlu-tests --example s3-server) ||
    die "building the S3 server failed"

# The S3 server: its stdin is a pipe this script holds; closing it stops the server.
mkfifo "$WD/s3.in"
"$S3_SERVER" "$WD/s3.stats" <"$WD/s3.in" >"$WD/s3.env" 2>"$WD/s3.err" &
PIDS+=($!)
exec {S3_IN}>"$WD/s3.in"
for ((i = 0; i < 100; i++)); do
    grep -q S3_BUCKET "$WD/s3.env" 2>/dev/null && break
    sleep 0.1
done
grep -q S3_BUCKET "$WD/s3.env" || die "the S3 server did not start: $(cat "$WD/s3.err")"
# shellcheck disable=SC1091
source "$WD/s3.env"
export AWS_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION AWS_ALLOW_HTTP
s3_read_bytes() { awk '{print $2}' "$WD/s3.stats"; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

# origin_init DIR [URL]: an origin on its folder, or on the bucket at URL
origin_init() {
    if [[ -n ${2:-} ]]; then
        prep "origin init" "$SHANLU" origin init --data "$1" --store "$2"
    else
        prep "origin init" "$SHANLU" origin init --data "$1"
    fi
    KEY=$(sed -n 's/^origin key: //p' "$OUT")
}

# serve DIR NAME [args]: starts origin serve; sets QUIC, HTTP and FP
serve() {
    local dir=$1 name=$2; shift 2
    "$SHANLU" origin serve --data "$dir" --quic "$LOOP:0" --http "$LOOP:0" --https "$LOOP:0" "$@" \
        >"$WD/$name.out" 2>"$WD/$name.err" &
    PIDS+=($!)
    for ((i = 0; i < 300; i++)); do
        grep -q '^origin certificate:' "$WD/$name.out" 2>/dev/null && break
        kill -0 "${PIDS[-1]}" 2>/dev/null || die "origin serve $name exited: $(tail -n 5 "$WD/$name.err")"
        sleep 0.1
    done
    QUIC=$(sed -n 's/^quic: //p' "$WD/$name.out")
    HTTP=$(sed -n 's/^http: //p' "$WD/$name.out")
    FP=$(sed -n 's/^origin certificate: //p' "$WD/$name.out")
}

# add_edge DIR NAME: sets TOKEN
add_edge() {
    prep "origin add-edge" "$SHANLU" origin add-edge --data "$1" --name "$2"
    TOKEN=$(sed -n 's/^edge token: //p' "$OUT")
}

# copy_folder FROM TO: an origin's folder without its store/ (another process's copy)
copy_folder() {
    mkdir -p "$2"
    tar -C "$1" --exclude=./store -cf - . | tar -C "$2" -xf -
}

# edge_sync EDGE_DIR QUIC FP TOKEN [extra init args]: a fresh edge; prints the sync's
# seconds. Several may run at once: each has its own output files.
edge_sync() {
    local edge=$1 quic=$2 fp=$3 token=$4; shift 4
    local OUT=$edge.out ERR=$edge.err
    prep "edge init" "$SHANLU" edge init --data "$edge" --origin "quic://$quic" \
        --origin-key "$KEY" --origin-cert "$fp" --token "$token" --min-free 1MB "$@"
    sync
    local t0 t1
    t0=$(now)
    bounded "$TIMEOUT" "$SHANLU" edge sync --data "$edge" --json >"$edge.json" 2>"$ERR" ||
        fail_cmd "edge sync" $?
    t1=$(now)
    grep -q '"complete": true' "$edge.json" || die "edge sync did not complete: $(head -c 400 "$edge.json")"
    secs "$t0" "$t1"
}

REPORT=$WD/report.md
{
    echo "## The origin on S3-compatible storage (issue 16)"
    echo
    echo "Command: \`$CMDLINE\`, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)."
    echo "S3 server: the tests' s3s-fs server on this machine (loopback); shanlu $(git -C "$REPO_ROOT" rev-parse --short HEAD)."
    echo
} >"$REPORT"

if awk -v s="$SIZE_GB" 'BEGIN{exit !(s > 0)}'; then
    log "generating a ${SIZE_GB} GiB course"
    COURSE=$WD/course
    prep "gen-tree.py" python3 "$SCRIPT_DIR/gen-tree.py" "$COURSE" --size-gb "$SIZE_GB" --seed "$SEED"
    COURSE_BYTES=$(du -sb "$COURSE" | awk '{print $1}')
fi

# ---- A: sync throughput, folder against bucket (hot cache) ----
if ((RUNS > 0)) && [[ -n ${COURSE:-} ]]; then
    log "A: publishing the course into a folder origin and a bucket origin"
    origin_init "$WD/a-folder"
    KEY_F=$KEY
    prep "publish" "$SHANLU" publish "$COURSE" --data "$WD/a-folder"
    add_edge "$WD/a-folder" bench-a
    TOKEN_F=$TOKEN
    origin_init "$WD/a-bucket" "s3://$S3_BUCKET/sync"
    KEY_B=$KEY
    prep "publish" "$SHANLU" publish "$COURSE" --data "$WD/a-bucket"
    add_edge "$WD/a-bucket" bench-a
    TOKEN_B=$TOKEN
    # The publishing process holds the files itself; a second process on the bucket,
    # which never did, is the one measured (what every added process is).
    copy_folder "$WD/a-bucket" "$WD/a-bucket2"
    serve "$WD/a-folder" a-folder
    QUIC_F=$QUIC FP_F=$FP
    CACHE_MIB=$(awk -v s="$COURSE_BYTES" 'BEGIN{printf "%d", s / 1048576 * 1.5 + 64}')
    serve "$WD/a-bucket2" a-bucket --bucket-cache-mib "$CACHE_MIB"
    QUIC_B=$QUIC FP_B=$FP
    before=$(s3_read_bytes)
    KEY=$KEY_B
    cold=$(edge_sync "$WD/a-edge-cold" "$QUIC_B" "$FP_B" "$TOKEN_B")
    cold_read=$(( $(s3_read_bytes) - before ))
    log "A: cold sync from the bucket origin: ${cold} s, $cold_read bytes read from the bucket"
    folder_times=() bucket_times=()
    for ((run = 1; run <= RUNS; run++)); do
        KEY=$KEY_F
        t=$(edge_sync "$WD/a-edge-f$run" "$QUIC_F" "$FP_F" "$TOKEN_F")
        folder_times+=("$t")
        before=$(s3_read_bytes)
        KEY=$KEY_B
        t=$(edge_sync "$WD/a-edge-b$run" "$QUIC_B" "$FP_B" "$TOKEN_B")
        bucket_times+=("$t")
        hot_read=$(( $(s3_read_bytes) - before ))
        log "A run $run: folder ${folder_times[-1]} s, bucket ${t} s (read $hot_read bytes from the bucket)"
    done
    mf=$(median "${folder_times[@]}")
    mb=$(median "${bucket_times[@]}")
    {
        echo "### A. Edge sync of the ${SIZE_GB} GiB course: origin on a folder vs on the bucket"
        echo
        echo "Course: $COURSE_BYTES bytes. A fresh edge each run, QUIC on loopback, runs alternating."
        echo "The bucket origin is a second process on the bucket (it never held the files), its"
        echo "chunk cache ${CACHE_MIB} MiB, warmed by one cold sync first."
        echo
        echo "| | runs (s) | median (s) | MB/s |"
        echo "|---|---|---:|---:|"
        echo "| origin on a folder | ${folder_times[*]} | $mf | $(awk -v b="$COURSE_BYTES" -v t="$mf" 'BEGIN{printf "%.0f", b/t/1e6}') |"
        echo "| origin on the bucket, cache hot | ${bucket_times[*]} | $mb | $(awk -v b="$COURSE_BYTES" -v t="$mb" 'BEGIN{printf "%.0f", b/t/1e6}') |"
        echo "| origin on the bucket, cold (first sync) | $cold | $cold | $(awk -v b="$COURSE_BYTES" -v t="$cold" 'BEGIN{printf "%.0f", b/t/1e6}') |"
        echo
        echo "Throughput on the bucket (hot) against the folder: **$(awk -v f="$mf" -v b="$mb" 'BEGIN{printf "%.2f", f/b}')×** (target ≥ 0.8×)."
        echo "Bytes read from the bucket by the cold sync: $cold_read ($(awk -v r="$cold_read" -v c="$COURSE_BYTES" 'BEGIN{printf "%.3f", r/c}')× the course); by the last hot one: $hot_read."
        echo
    } >>"$REPORT"
    for pid in "${PIDS[@]:1}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]:1}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=("${PIDS[0]}")
fi

# ---- B: publish into a bucket against a folder ----
if awk -v s="$PUBLISH_GB" 'BEGIN{exit !(s > 0)}' && ((RUNS > 0)); then
    log "B: generating a ${PUBLISH_GB} GiB tree"
    TREE=$WD/tree
    prep "gen-tree.py" python3 "$SCRIPT_DIR/gen-tree.py" "$TREE" --size-gb "$PUBLISH_GB" --seed $((SEED + 7))
    TREE_BYTES=$(du -sb "$TREE" | awk '{print $1}')
    find "$TREE" -type f -exec cat {} + >/dev/null
    folder_times=() bucket_times=()
    for ((run = 1; run <= RUNS; run++)); do
        for where in folder bucket; do
            if [[ $where == folder ]]; then
                origin_init "$WD/b-$where-$run"
            else
                origin_init "$WD/b-$where-$run" "s3://$S3_BUCKET/publish-$run"
            fi
            sync
            t0=$(now)
            bounded "$TIMEOUT" "$SHANLU" publish "$TREE" --data "$WD/b-$where-$run" --json >"$OUT" 2>"$ERR" ||
                fail_cmd "publish into the $where" $?
            t1=$(now)
            t=$(secs "$t0" "$t1")
            if [[ $where == folder ]]; then folder_times+=("$t"); else bucket_times+=("$t"); fi
            log "B run $run: $where ${t} s"
        done
    done
    mf=$(median "${folder_times[@]}")
    mb=$(median "${bucket_times[@]}")
    {
        echo "### B. Publishing the ${PUBLISH_GB} GiB tree: into a folder vs into the bucket"
        echo
        echo "Tree: $TREE_BYTES bytes, page cache hot. A fresh origin each run, runs alternating; the"
        echo "time is \`shanlu publish\` from start to the signed catalog (on the bucket: every chunk"
        echo "and object written into it and the head moved)."
        echo
        echo "| | runs (s) | median (s) |"
        echo "|---|---|---:|"
        echo "| into a folder | ${folder_times[*]} | $mf |"
        echo "| into the bucket | ${bucket_times[*]} | $mb |"
        echo
        echo "Into the bucket takes **$(awk -v f="$mf" -v b="$mb" 'BEGIN{printf "%.2f", b/f}')×** the folder's time."
        echo
    } >>"$REPORT"
fi

# ---- C: ten edges through a caching proxy ----
if ((EDGES > 0)) && [[ -n ${COURSE:-} ]]; then
    log "C: two origin processes on one bucket behind nginx, $EDGES edges"
    origin_init "$WD/c-1" "s3://$S3_BUCKET/cdn"
    prep "publish" "$SHANLU" publish "$COURSE" --data "$WD/c-1"
    # The course's distinct content: files with the same bytes are stored (and read) once.
    prep "ls" "$SHANLU" ls --data "$WD/c-1" --json
    DISTINCT_BYTES=$(python3 -c '
import json, sys
seen = {}
for course in json.load(open(sys.argv[1]))["courses"]:
    for lesson in course["lessons"]:
        for f in lesson["files"]:
            seen[f["blake3"]] = f["size"]
print(sum(seen.values()))' "$OUT")
    tokens=()
    for ((e = 1; e <= EDGES; e++)); do
        add_edge "$WD/c-1" "school-$e"
        tokens+=("$TOKEN")
    done
    KEY_C=$KEY
    copy_folder "$WD/c-1" "$WD/c-2"
    # The first process published: its own store holds every chunk. Start it without
    # it, as a plain process on the bucket, so every chunk it serves is read there.
    rm -rf "$WD/c-1/store"
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WD/cdn-secret"
    serve "$WD/c-1" c-1 --cdn-secret-file "$WD/cdn-secret"
    QUIC_1=$QUIC FP_1=$FP HTTP_1=$HTTP
    serve "$WD/c-2" c-2 --cdn-secret-file "$WD/cdn-secret"
    QUIC_2=$QUIC FP_2=$FP HTTP_2=$HTTP
    NG=$WD/nginx
    mkdir -p "$NG/cache"
    NG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$NG/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 1024; }
http {
    client_body_temp_path $NG/body;
    proxy_temp_path $NG/proxy;
    fastcgi_temp_path $NG/fastcgi;
    uwsgi_temp_path $NG/uwsgi;
    scgi_temp_path $NG/scgi;
    log_format cache '\$uri \$upstream_cache_status \$status \$body_bytes_sent';
    access_log $NG/access.log cache;
    proxy_cache_path $NG/cache keys_zone=shanlu:10m max_size=20g inactive=30d use_temp_path=off;
    upstream origins {
        server $HTTP_1;
        server $HTTP_2;
        keepalive 16;
    }
    server {
        listen $LOOP:$NG_PORT;
        location ~ "^/v1/(objects|chunks)/[0-9a-f]{64}\$" {
            proxy_pass http://origins;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Shanlu-Cdn "$(cat "$WD/cdn-secret")";
            proxy_cache shanlu;
            proxy_cache_key \$uri;
            proxy_cache_lock on;
            proxy_cache_valid 200 365d;
        }
        location / { return 404; }
    }
}
EOF
    "$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" 2>"$NG/stderr" &
    PIDS+=($!)
    wait_tcp "$NG_PORT" "${PIDS[-1]}" nginx
    before=$(s3_read_bytes)
    KEY=$KEY_C
    t0=$(now)
    pids=()
    for ((e = 1; e <= EDGES; e++)); do
        if ((e % 2)); then q=$QUIC_1 f=$FP_1; else q=$QUIC_2 f=$FP_2; fi
        (edge_sync "$WD/c-edge-$e" "$q" "$f" "${tokens[e - 1]}" --cdn "http://$LOOP:$NG_PORT" >"$WD/c-edge-$e.secs") &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "an edge of part C failed"; done
    t1=$(now)
    read_bytes=$(( $(s3_read_bytes) - before ))
    hits=$(awk '$1 ~ /^\/v1\/chunks/ && $2 == "HIT"' "$NG/access.log" | wc -l)
    misses=$(awk '$1 ~ /^\/v1\/chunks/ && $2 == "MISS"' "$NG/access.log" | wc -l)
    {
        echo "### C. $EDGES edges through an nginx caching proxy in front of two origin processes on one bucket"
        echo
        echo "All $EDGES edges at once (\`edge init --cdn\`), half of them on each process for the catalog;"
        echo "nginx as in docs/s3.md (\`proxy_cache_lock on\`). Neither process held a file before."
        echo
        echo "| course bytes (distinct files) | read from the bucket (GET bodies) | ratio to the distinct bytes | chunk requests at nginx: MISS / HIT | wall time (s) |"
        echo "|---:|---:|---:|---|---:|"
        echo "| $COURSE_BYTES ($DISTINCT_BYTES) | $read_bytes | **$(awk -v r="$read_bytes" -v c="$DISTINCT_BYTES" 'BEGIN{printf "%.3f", r/c}')×** | $misses / $hits | $(secs "$t0" "$t1") |"
        echo
        echo "(Goal: 1.0× the course. Metadata objects and the catalog head are read as well.)"
        echo
    } >>"$REPORT"
fi

cat "$REPORT"
