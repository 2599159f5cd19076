#!/usr/bin/env bash
# Helpers shared by the shanlu benchmark scripts; sourced, not run.
# Each script defines log, die and its own cleanup before sourcing this.

bounded() {
    local secs=$1; shift
    local rc=0
    timeout -k 10 "$secs" "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    return "$rc"
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

# prep WHAT CMD...: untimed helper command; its stdout is left in $OUT
prep() {
    local what=$1; shift
    local rc=0
    bounded "$TIMEOUT" "$@" >"$OUT" 2>"$ERR" || rc=$?
    ((rc == 0)) || fail_cmd "$what" "$rc"
}

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL (only our own children)
    local pid=$1 i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

wait_tcp() {  # wait_tcp PORT PID WHAT: until 127.0.0.1:PORT accepts, or PID dies / 30 s
    local port=$1 pid=$2 what=$3 i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/$LOOP/$port") 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "$what exited before listening on $LOOP:$port"
        sleep 0.1
    done
    die "$what did not listen on $LOOP:$port within 30 s"
}

# CPU seconds so far of PIDs (utime + stime; + cutime + cstime of reaped children)
proc_cpu() {
    local total=0 pid v
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        v=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}') || continue
        total=$((total + v))
    done
    awk -v t="$total" -v h="$CLK_TCK" 'BEGIN{printf "%.2f", t / h}'
}
