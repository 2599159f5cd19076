#!/usr/bin/env bash
# Ten villages behind one county edge (issue 14): bytes leaving the origin and time until
# every village edge holds a course, with a county edge in between and without it.
#
# Usage:
#   bash tools/bench/villages.sh                  (settings through the environment, below)
#   SIZE_MB=20 bash tools/bench/villages.sh       # a quick smoke run, ~4 min
#   SIZE_MB=100 bash tools/bench/villages.sh      # ~15 min
#   SIZE_MB=500 bash tools/bench/villages.sh      # the issue's run, ~75 min (relay + direct ~55)
#
# Topology (every process in its own network namespace; `ip netns exec`):
#
#   origin ns O ══ link 0 (linksim, COUNTY_LINK: 20 Mbit/s) ══ county ns K
#   county ns K ─veth─ county-side ns Si ══ village link i (linksim, VILLAGE_LINK: 4 Mbit/s) ══ village ns Vi
#
#   Link 0 is one shanlu-linksim: O is its origin side, K its edge side. Each village link is
#   another shanlu-linksim: Si its origin side, Vi its edge side; Si is joined to K by a veth
#   pair (unlimited). Every shanlu-linksim numbers its link 10.99.0.1 <-> 10.99.0.2, and its
#   devices have no route out, so the script adds addresses of its own and routes:
#     O   10.250.0.1/32 (the origin's service address, on lo); 10.0.0.0/8 via link 0
#     K   10.250.1.1/32 (the county edge's service address, on lo); 10.250.0.1 via link 0;
#         10.251.i.0/24 via 10.252.i.2 (Si, over veth kv<i> 10.252.i.1/30); forwards
#     Si  veth sv<i> 10.252.i.2/30, default via K; 10.251.i.2 via village link i; forwards
#     Vi  10.251.i.2/32 on the village link's device; default via the village link, from it
#   So a village's traffic always crosses its own 4 Mbit/s link, and whatever comes from the
#   origin crosses link 0: the county's uplink, shared by the ten villages when they sync
#   straight from the origin. rp_filter is off in the forwarding namespaces.
#
# Scenarios (SCENARIOS, run in this order, each on a fresh topology and a fresh origin
# process; the course is published once):
#   relay     A, the county relays on demand: the county edge (subscribed to no course,
#             `--subscribe none-yet`) has synced the catalog and metadata only; then
#             `edge run --serve-edges 10.250.1.1:4434` and the ten villages `edge sync` at
#             once from it; a chunk the county lacks is fetched upstream once (read-through).
#   prefetch  A', the county prefetches: the county edge (`--subscribe all`) first syncs the
#             whole course (timed), then serves the ten villages as above.
#   direct    B, no county edge: the ten villages `edge sync` at once straight from the
#             origin (10.250.0.1), across their own link, K (forwarding) and link 0.
#
# Measures (per scenario):
#   origin chunk bytes   from the origin's `origin stopped chunks=N chunk_bytes=B` line
#                        (RUST_LOG=info, stopped with SIGINT after the scenario)
#   link 0 bytes         IP bytes link 0 carried origin -> county (linksim "down"
#                        "bytes_carried": everything that left the origin, headers included)
#   ratios               both over the course's bytes (the files' sizes, course.toml aside)
#   county prefetch      wall time of the county's own `edge sync` (prefetch only)
#   village times        wall time of each village's `edge sync --json` (bash $EPOCHREALTIME),
#                        all ten started together; "all ten" is the slowest; for prefetch,
#                        "all ten, total" adds the county's prefetch
#   verified             every course file's blob is in every village's store and
#                        `b3sum --check` confirms its bytes (byte-identical to the course)
#
# Environment (defaults in brackets):
#   SIZE_MB=N         course size in MB (10^6 bytes) [500]; at least 11. The course is
#                     tools/bench/gen-tree.py (deterministic: lessons of small HTML/SVG/text
#                     files, a few large incompressible videos), --size-gb SIZE_MB*10^6/2^30
#   VILLAGES=N        village edges [10]
#   SCENARIOS="..."   from relay prefetch direct [relay prefetch direct]
#   COUNTY_LINK="..." shanlu-linksim flags of link 0 [--rate 20Mbit --delay 20ms]
#   VILLAGE_LINK=".." shanlu-linksim flags of each village link [--rate 4Mbit --delay 30ms]
#   TIMEOUT=SECS      limit on each scenario's syncs [900 + 12 x SIZE_MB]
#   SEED=S            course generator seed; village link i gets seed S+1+i [20240601]
#   RESULTS_DIR=DIR   each run writes DIR/<date-time>-<pid>/ [target/bench-villages]
#   WORKDIR=DIR       parent of the scratch folder, removed on exit [/var/tmp]
#   SHANLU_BIN=P, LINKSIM_BIN=P   these binaries; without both, the script runs
#                     `cargo build --release -p tools -p linksim` and uses target/release/
#
# Results: RESULTS_DIR/<stamp>/summary.md (also printed), results.tsv, villages.tsv,
# bench.log, logs/<scenario>/ (links' env and counters, origin/county logs, village output).
# Exit status 0 when every scenario ran and every village holds the course verified.
# Needs root (namespaces, TUN devices, veth), ip (iproute2), b3sum, python3.

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

SIZE_MB=${SIZE_MB:-500}
VILLAGES=${VILLAGES:-10}
SCENARIOS=${SCENARIOS:-relay prefetch direct}
COUNTY_LINK=${COUNTY_LINK:---rate 20Mbit --delay 20ms}
VILLAGE_LINK=${VILLAGE_LINK:---rate 4Mbit --delay 30ms}
SEED=${SEED:-20240601}
RESULTS_DIR=${RESULTS_DIR:-$REPO_ROOT/target/bench-villages}
WORKDIR_PARENT=${WORKDIR:-/var/tmp}
COURSE_ID=villages-course
ORIGIN_ADDR=10.250.0.1 COUNTY_ADDR=10.250.1.1
QUIC_PORT=4433 HTTP_PORT=8081 HTTPS_PORT=8443 EDGES_PORT=4434

exec {LOGFD}>&2
BENCH_LOG=""
log() {
    local line
    printf -v line '[villages-bench %(%H:%M:%S)T] %s' -1 "$*"
    printf '%s\n' "$line" >&"$LOGFD"
    [[ -z "$BENCH_LOG" ]] || printf '%s\n' "$line" >>"$BENCH_LOG"
}
die() {
    printf 'villages.sh: error: %s\n' "$*" >&"$LOGFD"
    [[ -z "$BENCH_LOG" ]] || printf 'villages.sh: error: %s\n' "$*" >>"$BENCH_LOG"
    exit 1
}
usage() { awk 'NR > 1 && /^#/ {sub(/^# ?/, ""); print; next} NR > 1 {exit}' "${BASH_SOURCE[0]}"; }
# shellcheck source=tools/bench/common.sh
source "$SCRIPT_DIR/common.sh"

case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) die "no arguments are taken (settings come from the environment; see --help)" ;;
esac

[[ "$SIZE_MB" =~ ^[0-9]+$ ]] && ((SIZE_MB >= 11 && SIZE_MB <= 20000)) || die "SIZE_MB must be an integer 11..20000"
[[ "$VILLAGES" =~ ^[0-9]+$ ]] && ((VILLAGES >= 1 && VILLAGES <= 50)) || die "VILLAGES must be an integer 1..50"
TIMEOUT=${TIMEOUT:-$((900 + 12 * SIZE_MB))}
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && ((TIMEOUT >= 30)) || die "TIMEOUT must be an integer >= 30 (seconds)"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer"
read -r -a SCENARIO_LIST <<<"$SCENARIOS"
((${#SCENARIO_LIST[@]})) || die "SCENARIOS is empty"
for s in "${SCENARIO_LIST[@]}"; do
    [[ "$s" == relay || "$s" == prefetch || "$s" == direct ]] || die "unknown scenario '$s' (relay, prefetch or direct)"
done
[[ -d "$WORKDIR_PARENT" ]] || die "WORKDIR=$WORKDIR_PARENT is not a directory"
[[ "$RESULTS_DIR" == /* ]] || RESULTS_DIR="$REPO_ROOT/$RESULTS_DIR"
CMDLINE=$(printf 'SIZE_MB=%q VILLAGES=%q SCENARIOS=%q COUNTY_LINK=%q VILLAGE_LINK=%q SEED=%q bash tools/bench/villages.sh' \
    "$SIZE_MB" "$VILLAGES" "$SCENARIOS" "$COUNTY_LINK" "$VILLAGE_LINK" "$SEED")

# ---------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "needs root: namespaces, TUN devices and veth pairs"
[[ -c /dev/net/tun ]] || die "/dev/net/tun is missing"
for tool in ip b3sum python3 setsid timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed"
done
if [[ -n "${SHANLU_BIN:-}" && -n "${LINKSIM_BIN:-}" ]]; then
    SHANLU=$SHANLU_BIN LINKSIM=$LINKSIM_BIN
else
    log "building: cargo build --release -p tools -p linksim"
    (cd "$REPO_ROOT" && cargo build --release -p tools -p linksim) >&"$LOGFD" 2>&1 || die "cargo build failed"
    target=${CARGO_TARGET_DIR:-$REPO_ROOT/target}
    SHANLU=$target/release/shanlu LINKSIM=$target/release/shanlu-linksim
fi
[[ -x "$SHANLU" && -x "$LINKSIM" ]] || die "no binaries at $SHANLU and $LINKSIM"
"$SHANLU" edge run --help 2>/dev/null | grep -q -- --serve-edges || die "this shanlu ($SHANLU) has no 'edge run --serve-edges'"
"$SHANLU" edge add-edge --help >/dev/null 2>&1 || die "this shanlu ($SHANLU) has no 'edge add-edge'"

# ---------------------------------------------------------------------------
# Scratch and results folders; everything started is stopped on exit
# ---------------------------------------------------------------------------
WD=$(mktemp -d "$WORKDIR_PARENT/shanlu-villages-bench.XXXXXX") || die "cannot create a scratch folder"
SERVERS=()      # process-group leaders (setsid): origin, county edge, village syncs
VPIDS=()        # the village syncs running now
LINKS=()        # shanlu-linksim pids
NAMESPACES=()   # every namespace of the current topology (the links delete their own)
CHILD=""

stop_group() {  # stop_group PID [SIGNAL]: signal the group PID leads, wait up to 15 s, KILL
    local pid=$1 sig=${2:-TERM} i
    [[ -n "$pid" ]] || return 0
    kill -"$sig" -- "-$pid" 2>/dev/null || kill -"$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

teardown() {  # every server, then every link (each writes its final counters), namespaces
    local pid ns i
    for pid in "${SERVERS[@]}"; do stop_group "$pid"; done
    SERVERS=()
    for pid in "${LINKS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${LINKS[@]}"; do
        for ((i = 0; i < 150; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    LINKS=()
    for ns in "${NAMESPACES[@]}"; do
        [[ ! -e "/run/netns/$ns" ]] || ip netns delete "$ns" 2>/dev/null || true
    done
    NAMESPACES=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$CHILD" ]]; then  # a command run by `bounded` (common.sh)
        kill -TERM "$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    teardown
    if [[ -n "${WD:-}" && -d "$WD" ]]; then
        log "removing $WD"
        rm -rf -- "$WD"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STAMP=$(date -u +%Y%m%d-%H%M%S)-$$
RUN_DIR="$RESULTS_DIR/$STAMP"
mkdir -p "$RESULTS_DIR" && mkdir "$RUN_DIR" "$RUN_DIR/logs" || die "cannot create $RUN_DIR"
ln -sfn "$STAMP" "$RESULTS_DIR/latest"
BENCH_LOG="$RUN_DIR/bench.log"
RESULTS="$RUN_DIR/results.tsv"
VILLAGE_RESULTS="$RUN_DIR/villages.tsv"
printf 'scenario\tstatus\tcourse_bytes\torigin_chunks\torigin_chunk_bytes\tlink0_down_bytes\tlink0_up_bytes\tvillage_links_down_bytes\tprefetch_s\tvillages_s\tverified\n' >"$RESULTS"
printf 'scenario\tvillage\tstatus\ttime_s\tbytes_fetched\ttransport\tlink_down_bytes\n' >"$VILLAGE_RESULTS"
log "results in $RUN_DIR"

# course + origin + county + VILLAGES copies, with slack
need_kb=$((SIZE_MB * 1000 * (VILLAGES + 4) + 262144))
avail_kb=$(df -Pk "$WD" | awk 'NR==2{print $4}')
((avail_kb >= need_kb)) || die "not enough space under $WORKDIR_PARENT: need ~$((need_kb / 1024)) MiB, have $((avail_kb / 1024)) MiB"

OUT="$WD/cmd.stdout"
ERR="$WD/cmd.stderr"
fail_cmd() {
    printf 'villages.sh: error: %s failed (exit %s)\n' "$1" "$2" >&"$LOGFD"
    [[ ! -s "$ERR" ]] || tail -n 20 "$ERR" >&"$LOGFD"
    exit 1
}
field() { awk -v k="$1" 'index($0, k ": ") == 1 {print substr($0, length(k) + 3); exit}' "${2:-$OUT}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b - a}'; }

# ---------------------------------------------------------------------------
# The course (gen-tree.py), its BLAKE3 list, the origin
# ---------------------------------------------------------------------------
COURSE="$WD/$COURSE_ID"
size_gb=$(awk -v m="$SIZE_MB" 'BEGIN{printf "%.6f", m * 1e6 / 2^30}')
log "generating a ${SIZE_MB} MB course (gen-tree.py --size-gb $size_gb --seed $SEED)"
TIMEOUT_PREP=$((600 + 2 * SIZE_MB))
bounded "$TIMEOUT_PREP" python3 "$SCRIPT_DIR/gen-tree.py" "$COURSE" --size-gb "$size_gb" --seed "$SEED" >"$OUT" 2>"$ERR" ||
    fail_cmd "gen-tree.py" $?
log "  $(tail -n 1 "$ERR")"
printf 'id = "%s"\n' "$COURSE_ID" >"$COURSE/course.toml"
(cd "$COURSE" && find . -type f ! -path ./course.toml -printf '%P\n' | sort | xargs -d '\n' b3sum --) >"$WD/course.b3" ||
    die "b3sum of the course failed"
COURSE_BYTES=$(cd "$COURSE" && find . -type f ! -path ./course.toml -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
N_FILES=$(wc -l <"$WD/course.b3")
# distinct contents: what must cross at least once
UNIQUE_BYTES=$(cd "$COURSE" && awk '!seen[$1]++ {print $2}' "$WD/course.b3" | xargs -d '\n' stat -c %s | awk '{s += $1} END {printf "%d", s}')
log "course: $N_FILES files, $COURSE_BYTES bytes ($UNIQUE_BYTES bytes of distinct files)"

ORIGIN="$WD/origin"
TIMEOUT=$TIMEOUT_PREP prep "shanlu origin init" "$SHANLU" origin init --data "$ORIGIN"
ORIGIN_KEY=$(field "origin key")
ORIGIN_CERT=$(field "origin certificate")
[[ "$ORIGIN_KEY" =~ ^[0-9a-f]{64}$ && "$ORIGIN_CERT" =~ ^[0-9a-f]{64}$ ]] || die "origin init printed no key or certificate"
log "publishing the course"
TIMEOUT=$TIMEOUT_PREP prep "shanlu publish" "$SHANLU" publish "$COURSE" --data "$ORIGIN"
cp -- "$OUT" "$RUN_DIR/publish.out"

# ---------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# start_link NAME SEED FLAGS...: one shanlu-linksim; sets L_ORIGIN_NS, L_EDGE_NS
start_link() {
    local name=$1 seed=$2 i key value pid; shift 2
    "$LINKSIM" "$@" --seed "$seed" --lifetime "$((TIMEOUT + 600))s" --stats-file "$SDIR/$name.json" \
        >"$SDIR/$name.env" 2>"$SDIR/$name.err" &
    pid=$!
    LINKS+=("$pid")
    for ((i = 0; i < 300; i++)); do
        grep -q '^pid=' "$SDIR/$name.env" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "shanlu-linksim ($name) exited: $(tail -n 5 "$SDIR/$name.err")"
        sleep 0.1
    done
    grep -q '^pid=' "$SDIR/$name.env" || die "shanlu-linksim ($name) printed no pid= line within 30 s"
    L_ORIGIN_NS="" L_EDGE_NS=""
    while IFS='=' read -r key value; do
        case "$key" in
            origin_ns) L_ORIGIN_NS=$value ;;
            edge_ns) L_EDGE_NS=$value ;;
        esac
    done <"$SDIR/$name.env"
    [[ -n "$L_ORIGIN_NS" && -n "$L_EDGE_NS" ]] || die "unexpected shanlu-linksim output: $(tr '\n' ' ' <"$SDIR/$name.env")"
    NAMESPACES+=("$L_ORIGIN_NS" "$L_EDGE_NS")
}

forwarding() {  # forwarding NS: route between interfaces, no reverse-path filter
    in_ns "$1" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
}

# topology_up: link 0, VILLAGES village links, veths, addresses, routes (see the top)
topology_up() {
    local i
    # shellcheck disable=SC2086
    start_link link0 "$SEED" $COUNTY_LINK
    NS_O=$L_ORIGIN_NS NS_K=$L_EDGE_NS
    in_ns "$NS_O" ip addr add "$ORIGIN_ADDR/32" dev lo
    in_ns "$NS_O" ip route add 10.0.0.0/8 dev linksim0
    in_ns "$NS_K" ip addr add "$COUNTY_ADDR/32" dev lo
    in_ns "$NS_K" ip route add "$ORIGIN_ADDR/32" dev linksim0
    forwarding "$NS_K"
    NS_S=() NS_V=()
    for ((i = 0; i < VILLAGES; i++)); do
        # shellcheck disable=SC2086
        start_link "village$i" "$((SEED + 1 + i))" $VILLAGE_LINK
        NS_S+=("$L_ORIGIN_NS") NS_V+=("$L_EDGE_NS")
        ip -n "$NS_K" link add "kv$i" type veth peer name "sv$i" netns "$L_ORIGIN_NS"
        in_ns "$NS_K" ip addr add "10.252.$i.1/30" dev "kv$i"
        in_ns "$NS_K" ip link set "kv$i" up
        in_ns "$NS_K" ip route add "10.251.$i.0/24" via "10.252.$i.2"
        in_ns "$L_ORIGIN_NS" ip addr add "10.252.$i.2/30" dev "sv$i"
        in_ns "$L_ORIGIN_NS" ip link set "sv$i" up
        in_ns "$L_ORIGIN_NS" ip route add "10.251.$i.2/32" dev linksim0
        in_ns "$L_ORIGIN_NS" ip route add default via "10.252.$i.1"
        forwarding "$L_ORIGIN_NS"
        in_ns "$L_EDGE_NS" ip addr add "10.251.$i.2/32" dev linksim0
        in_ns "$L_EDGE_NS" ip route add default dev linksim0 src "10.251.$i.2"
    done
}

# link_counters NAME: "final down_bytes_carried up_bytes_carried" of a stopped link
link_counters() {
    python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(int(bool(s.get("final"))), s["down"]["bytes_carried"], s["up"]["bytes_carried"])' "$SDIR/$1.json"
}

# wait_tcp_in NS ADDR PORT PID WHAT: until ADDR:PORT accepts inside NS, or PID dies / 60 s
wait_tcp_in() {
    local ns=$1 addr=$2 port=$3 pid=$4 what=$5 i
    for ((i = 0; i < 600; i++)); do
        in_ns "$ns" bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited before listening on $addr:$port"
        sleep 0.1
    done
    die "$what did not listen on $addr:$port within 60 s"
}

# ---------------------------------------------------------------------------
# One scenario
# ---------------------------------------------------------------------------
run_scenario() {
    local sc=$1 i rc t0 t1 status=ok prefetch_s=- verified=0 upstream cert origin_pid county_pid
    SDIR="$RUN_DIR/logs/$sc"
    mkdir -p "$SDIR"
    log "scenario $sc: topology up (link 0: $COUNTY_LINK; $VILLAGES village links: $VILLAGE_LINK)"
    # tokens first: add-edge writes edges.toml, best with no server running
    local tokens=() county_token=""
    if [[ "$sc" == direct ]]; then
        for ((i = 0; i < VILLAGES; i++)); do
            prep "origin add-edge" "$SHANLU" origin add-edge --data "$ORIGIN" --name "$sc-village-$i"
            tokens+=("$(field "edge token")")
        done
    else
        prep "origin add-edge" "$SHANLU" origin add-edge --data "$ORIGIN" --name "$sc-county"
        county_token=$(field "edge token")
    fi
    topology_up
    RUST_LOG=info setsid ip netns exec "$NS_O" "$SHANLU" origin serve --data "$ORIGIN" \
        --quic "$ORIGIN_ADDR:$QUIC_PORT" --http "$ORIGIN_ADDR:$HTTP_PORT" --https "$ORIGIN_ADDR:$HTTPS_PORT" \
        >"$SDIR/origin.out" 2>"$SDIR/origin.log" &
    origin_pid=$!
    SERVERS+=("$origin_pid")
    wait_tcp_in "$NS_O" "$ORIGIN_ADDR" "$HTTPS_PORT" "$origin_pid" "shanlu origin serve"

    local vdir="$WD/$sc"
    rm -rf -- "$vdir"
    mkdir -p "$vdir"
    if [[ "$sc" == direct ]]; then
        upstream="quic://$ORIGIN_ADDR:$QUIC_PORT" cert=$ORIGIN_CERT
    else
        local county="$vdir/county" subscribe=none-yet
        [[ "$sc" == relay ]] || subscribe=all
        prep "county edge init" "$SHANLU" edge init --data "$county" --origin "quic://$ORIGIN_ADDR:$QUIC_PORT" \
            --origin-key "$ORIGIN_KEY" --origin-cert "$ORIGIN_CERT" --token "$county_token" \
            --subscribe "$subscribe" --min-free 1MB
        # the county's own sync: the catalog and metadata (relay), or the whole course (prefetch)
        t0=$EPOCHREALTIME
        rc=0
        bounded "$TIMEOUT" ip netns exec "$NS_K" "$SHANLU" edge sync --data "$county" --json \
            >"$SDIR/county-sync.json" 2>"$SDIR/county-sync.err" || rc=$?
        t1=$EPOCHREALTIME
        ((rc == 0)) || die "scenario $sc: the county's sync failed (exit $rc): $(tail -n 3 "$SDIR/county-sync.err")"
        [[ "$sc" == relay ]] || prefetch_s=$(elapsed "$t0" "$t1")
        log "scenario $sc: county synced ($subscribe) in $(elapsed "$t0" "$t1") s"
        for ((i = 0; i < VILLAGES; i++)); do
            prep "edge add-edge" "$SHANLU" edge add-edge --data "$county" --name "village-$i"
            tokens+=("$(field "edge token")")
        done
        RUST_LOG=info setsid ip netns exec "$NS_K" "$SHANLU" edge run --data "$county" --listen 127.0.0.1:8080 \
            --interval 86400 --serve-edges "$COUNTY_ADDR:$EDGES_PORT" >"$SDIR/county.out" 2>"$SDIR/county.log" &
        county_pid=$!
        SERVERS+=("$county_pid")
        for ((i = 0; i < 600; i++)); do
            grep -q '^edges certificate: ' "$SDIR/county.out" 2>/dev/null && break
            kill -0 "$county_pid" 2>/dev/null || die "the county edge exited: $(tail -n 5 "$SDIR/county.log")"
            sleep 0.1
        done
        cert=$(field "edges certificate" "$SDIR/county.out")
        [[ "$cert" =~ ^[0-9a-f]{64}$ ]] || die "the county edge printed no 'edges certificate: <hex>' line"
        upstream="quic://$COUNTY_ADDR:$EDGES_PORT"
    fi
    for ((i = 0; i < VILLAGES; i++)); do
        prep "village edge init" "$SHANLU" edge init --data "$vdir/village-$i" --origin "$upstream" \
            --origin-key "$ORIGIN_KEY" --origin-cert "$cert" --token "${tokens[$i]}" --subscribe all --min-free 1MB
    done

    # the ten syncs, all at once
    log "scenario $sc: $VILLAGES villages sync from $upstream"
    t0=$EPOCHREALTIME
    for ((i = 0; i < VILLAGES; i++)); do
        # (--foreground: else timeout puts itself in a process group of its own, out of
        # reach of stop_group on this village's group)
        # shellcheck disable=SC2016
        setsid bash -c 's=$EPOCHREALTIME; r=0
            timeout --foreground -k 10 "$1" ip netns exec "$2" "$3" edge sync --data "$4" --json >"$5.json" 2>"$5.err" || r=$?
            printf "%s %s %s\n" "$r" "$s" "$EPOCHREALTIME" >"$5.time"' \
            village "$TIMEOUT" "${NS_V[$i]}" "$SHANLU" "$vdir/village-$i" "$SDIR/village-$i" &
        SERVERS+=("$!")
        VPIDS+=("$!")
    done
    for pid in "${VPIDS[@]}"; do wait "$pid" || true; done
    VPIDS=()
    t1=$EPOCHREALTIME
    local villages_s
    villages_s=$(elapsed "$t0" "$t1")
    log "scenario $sc: every village sync ended after $villages_s s; stopping"

    # stop the county, then the origin with SIGINT (its counters line), then the links
    if [[ -n "${county_pid:-}" ]]; then stop_group "$county_pid" INT; fi
    stop_group "$origin_pid" INT
    teardown
    local line chunks=- chunk_bytes=-
    line=$(grep 'origin stopped' "$SDIR/origin.log" | tail -n 1 || true)
    if [[ "$line" =~ chunks=([0-9]+) ]]; then chunks=${BASH_REMATCH[1]}; fi
    if [[ "$line" =~ chunk_bytes=([0-9]+) ]]; then chunk_bytes=${BASH_REMATCH[1]}; fi
    [[ "$chunk_bytes" != - ]] || { log "WARNING: no 'origin stopped' line in $SDIR/origin.log"; status=failed; }
    local final down0 up0 vdown_total=0 vdown
    read -r final down0 up0 <<<"$(link_counters link0)"
    ((final)) || log "WARNING: link 0's counters are not its final write"

    # per village: exit status, time, report, link bytes, the blob check
    for ((i = 0; i < VILLAGES; i++)); do
        local r s e vstatus=ok report fetched transport
        read -r r s e <"$SDIR/village-$i.time"
        read -r final vdown _ <<<"$(link_counters "village$i")"
        vdown_total=$((vdown_total + vdown))
        ((r == 0)) || vstatus="failed(exit $r)"
        ((r != 124)) || vstatus=timeout
        report=$(python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("- -")
else:
    print(r.get("bytes_fetched", "-"), r.get("transport") or "-")' "$SDIR/village-$i.json")
        if [[ "$vstatus" == ok ]]; then
            local store="$vdir/village-$i/store/blobs"
            awk -v s="$store" '{print $1 "  " s "/" substr($1, 1, 2) "/" substr($1, 3, 2) "/" $1}' "$WD/course.b3" >"$WD/check"
            if b3sum --check --quiet "$WD/check" >"$SDIR/village-$i.check" 2>&1; then
                verified=$((verified + 1))
            else
                vstatus=mismatch
                log "village $i: $(head -n 3 "$SDIR/village-$i.check" | tr '\n' ' ')"
            fi
        else
            log "village $i: $vstatus: $(tail -n 3 "$SDIR/village-$i.err" | tr '\n' ' ')"
        fi
        [[ "$vstatus" == ok ]] || status=failed
        read -r fetched transport <<<"$report"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$i" "$vstatus" "$(elapsed "$s" "$e")" \
            "$fetched" "$transport" "$vdown" >>"$VILLAGE_RESULTS"
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$status" "$COURSE_BYTES" "$chunks" "$chunk_bytes" \
        "$down0" "$up0" "$vdown_total" "$prefetch_s" "$villages_s" "$verified" >>"$RESULTS"
    log "scenario $sc: $status; origin sent $chunk_bytes chunk bytes, link 0 carried $down0 B down;" \
        "$verified/$VILLAGES villages verified"
    rm -rf -- "$vdir"
    [[ "$status" == ok ]] || FAILED=1
}

# (not `run_scenario || ...`: that would switch `set -e` off inside it)
FAILED=0
for sc in "${SCENARIO_LIST[@]}"; do
    run_scenario "$sc"
done

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
git_rev=$(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo "no commit")
export RESULTS VILLAGE_RESULTS CMDLINE N_FILES COURSE_BYTES UNIQUE_BYTES SIZE_MB VILLAGES COUNTY_LINK VILLAGE_LINK SEED
export M_SHANLU="$("$SHANLU" --version 2>/dev/null | sed -n 1p) ($SHANLU), repo at $git_rev"
M_HOST="$(uname -srm), $(nproc) CPUs" M_DATE=$(date -u +%Y-%m-%d)
export M_HOST M_DATE
python3 - >"$RUN_DIR/summary.md" <<'PY'
import csv, os, statistics
env = os.environ
rows = list(csv.DictReader(open(env["RESULTS"]), delimiter="\t"))
villages = list(csv.DictReader(open(env["VILLAGE_RESULTS"]), delimiter="\t"))
course = int(env["COURSE_BYTES"])
n = int(env["VILLAGES"])
NAMES = {"relay": "A: county edge, relays on demand",
         "prefetch": "A': county edge, prefetches first",
         "direct": "B: no county edge"}
out = []
w = out.append
w(f"Course: {env['N_FILES']} files, {course:,} bytes (SIZE_MB={env['SIZE_MB']}, seed {env['SEED']}; "
  f"{int(env['UNIQUE_BYTES']):,} bytes of distinct files). {n} villages; link 0 (origin -> county) "
  f"`{env['COUNTY_LINK']}`, each village link `{env['VILLAGE_LINK']}`.\n")
w(f"| scenario | origin chunk bytes | = copies of the course | / course bytes | link 0 bytes / course "
  f"| county prefetch (s) | village sync min / median / max (s) | all {n} hold it (s) | verified |")
w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
direct_all = None
for r in rows:
    sc = r["scenario"]
    mine = [v for v in villages if v["scenario"] == sc]
    times = [float(v["time_s"]) for v in mine]
    # one copy of the course as the sync protocol carries it: what one village fetched
    copy = [int(v["bytes_fetched"]) for v in mine if v["status"] == "ok" and v["bytes_fetched"].isdigit()]
    ok = r["status"] == "ok"
    cb = r["origin_chunk_bytes"]
    copies = f"{int(cb) / statistics.median(copy):.3f}" if cb != "-" and copy else "-"
    ratio = f"{int(cb) / course:.3f}" if cb != "-" else "-"
    cb_text = f"{int(cb):,}" if cb != "-" else "-"
    pre = r["prefetch_s"]
    total = max(times) + (float(pre) if pre != "-" else 0.0)
    if sc == "direct" and ok:
        direct_all = total
    spread = f"{min(times):.1f} / {statistics.median(times):.1f} / {max(times):.1f}"
    all_s = f"{total:.1f}" + ("" if pre == "-" else f" ({pre} + {max(times):.1f})")
    w(f"| {NAMES[sc]} | {cb_text} | {copies} | {ratio} | {int(r['link0_down_bytes']) / course:.3f} | {pre} | "
      f"{spread} | {all_s if ok else r['status']} | {r['verified']}/{n} |")
w("")
if direct_all:
    for r in rows:
        if r["scenario"] != "direct" and r["status"] == "ok":
            times = [float(v["time_s"]) for v in villages if v["scenario"] == r["scenario"]]
            pre = float(r["prefetch_s"]) if r["prefetch_s"] != "-" else 0.0
            w(f"- {NAMES[r['scenario']]}: all {n} hold the course in {(max(times) + pre) / direct_all:.2f}x "
              f"the time of B")
w("- origin chunk bytes: `chunk_bytes` of the origin's `origin stopped` line; copies: over the "
  "chunk bytes one village fetched (its `edge sync --json` `bytes_fetched`, the course as the "
  "protocol carries it: compressible pages travel compressed); / course bytes: over the files' "
  "sizes. link 0 bytes: IP bytes "
  "link 0 carried origin -> county (everything that left the origin: chunks, catalog, metadata, "
  "QUIC/IP headers, resends). Village times: each village's `edge sync` wall clock, all started "
  "together; for A' the total adds the county's prefetch. verified: every course file's blob in "
  "the village's store, `b3sum --check`ed.")
w(f"- {env['M_SHANLU']}; {env['M_HOST']}; {env['M_DATE']}")
w(f"- command: `{env['CMDLINE']}`")
print("\n".join(out))
PY
cat "$RUN_DIR/summary.md"
log "results: $RUN_DIR (summary.md, results.tsv, villages.tsv, logs/)"
((FAILED == 0)) || die "some scenario failed (see above and $RUN_DIR/logs)"
