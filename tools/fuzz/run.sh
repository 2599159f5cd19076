#!/usr/bin/env bash
# Coverage-guided fuzzing of shanlu's parsers with AFL++ through cargo-afl, on
# stable Rust (sancov trace-pc-guard instrumentation, no nightly plugins).
#
# usage: tools/fuzz/run.sh [-t SECONDS] [--merge] [TARGET...]
#   -t SECONDS  how long each target runs (default 60)
#   --merge     minimize what AFL++ found (afl-cmin) into tools/fuzz/corpus/<target>/
#   TARGET      frame object chunk range head toml (default: all)
#
# Installs cargo-afl (crates.io) and builds AFL++ with it if they are missing.
# The instrumented build goes to $CARGO_TARGET_DIR/afl, apart from the normal
# one. Prints executions, corpus size and crashes per target; exits 1 if a
# target crashed (its inputs stay in $FUZZ_OUT/<target>/default/crashes/),
# 3 if the fuzzer could not be set up.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
all_targets=(frame object chunk range head toml)
cargo_afl_version="0.17.1"

seconds=60
merge=0
targets=()
while (($#)); do
    case "$1" in
        -t) seconds="$2"; shift 2 ;;
        --merge) merge=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [[ " ${all_targets[*]} " == *" $target "* ]] || { echo "unknown target $target; one of: ${all_targets[*]}" >&2; exit 2; }
done

: "${CARGO_TARGET_DIR:=$root/target}"
afl_target="$CARGO_TARGET_DIR/afl"
out="${FUZZ_OUT:-$afl_target/out}"

setup_failed() { echo "fuzz: $1" >&2; exit 3; }

# The fuzzer: cargo-afl from crates.io, which builds AFL++ (afl-fuzz and its
# runtime) from the sources it ships, with make and the C compiler.
if ! command -v cargo-afl >/dev/null; then
    command -v make >/dev/null && command -v cc >/dev/null \
        || setup_failed "building AFL++ needs make and a C compiler (apt-get install build-essential)"
    echo "== installing cargo-afl $cargo_afl_version"
    cargo install cargo-afl --locked --version "$cargo_afl_version" \
        || setup_failed "cargo install cargo-afl failed"
fi
if ! config=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$config"; then
    echo "$config" >&2
    setup_failed "cargo afl config --build could not build AFL++"
fi

# opt-level 1 instead of cargo-afl's 3: the whole dependency graph is built
# instrumented with one codegen unit, and on two cores that build, not the
# fuzzing, is what takes long. AFL_OPT_LEVEL=3 for long runs.
export AFL_OPT_LEVEL="${AFL_OPT_LEVEL:-1}"
echo "== building the instrumented targets into $afl_target (opt-level $AFL_OPT_LEVEL)"
(cd "$root" && CARGO_TARGET_DIR="$afl_target" cargo afl build --release --locked \
    -p shanlu-fuzz --features afl --bin shanlu-fuzz) \
    || setup_failed "cargo afl build failed"
bin="$afl_target/release/shanlu-fuzz"

# No core_pattern or CPU-governor tuning here (shared machines, CI); each
# target runs on whichever core is free.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1
export AFL_NO_WARN_INSTABILITY=1 AFL_QUIET=1

stat_of() { sed -n "s/^$1 *: *//p" "$2"; }

failed=()
passed=0
printf '%-8s %10s %8s %10s %8s %8s %6s\n' target execs seconds execs/s corpus crashes hangs
for target in "${targets[@]}"; do
    rm -rf "${out:?}/$target"
    mkdir -p "$out/$target"
    dict=()
    [[ -f "$here/dict/$target.dict" ]] && dict=(-x "$here/dict/$target.dict")
    # -V: stop after this many seconds; -m 1024: a target that allocates
    # past 1 GiB crashes (frames and objects are bounded far below that).
    cargo afl fuzz -V "$seconds" -m 1024 "${dict[@]}" -i "$here/corpus/$target" -o "$out/$target" \
        -- "$bin" "$target" >"$out/$target.log" 2>&1 || {
        tail -n 30 "$out/$target.log" >&2
        failed+=("$target (afl-fuzz failed)")
        continue
    }
    stats="$out/$target/default/fuzzer_stats"
    crashes=$(stat_of saved_crashes "$stats")
    hangs=$(stat_of saved_hangs "$stats")
    printf '%-8s %10s %8s %10s %8s %8s %6s\n' "$target" "$(stat_of execs_done "$stats")" \
        "$(stat_of run_time "$stats")" "$(stat_of execs_per_sec "$stats")" "$(stat_of corpus_count "$stats")" \
        "$crashes" "$hangs"
    if [[ "$crashes" != 0 ]]; then
        failed+=("$target: $crashes crashing inputs in $out/$target/default/crashes/")
        continue
    fi
    passed=$((passed + 1))
    if ((merge)); then
        # afl-cmin keeps the smallest set of inputs with the same coverage;
        # seed-* and crash-* files (the regressions) stay whatever it says.
        work="$out/$target.merge"
        rm -rf "$work" && mkdir -p "$work/in"
        cp "$here/corpus/$target"/* "$out/$target/default/queue"/id:* "$work/in/"
        cargo afl cmin -i "$work/in" -o "$work/min" -- "$bin" "$target" >"$work/cmin.log" 2>&1 \
            || { tail -n 20 "$work/cmin.log" >&2; failed+=("$target (afl-cmin failed)"); continue; }
        find "$here/corpus/$target" -type f ! -name 'seed-*' ! -name 'crash-*' -delete
        for file in "$work/min"/*; do
            [[ "$(basename "$file")" == seed-* || "$(basename "$file")" == crash-* ]] && continue
            cp "$file" "$here/corpus/$target/$(sha256sum "$file" | cut -c1-16)"
        done
        echo "   corpus/$target: $(find "$here/corpus/$target" -type f | wc -l) files"
    fi
done

echo "fuzz: ${passed} passed, ${#failed[@]} failed"
if ((${#failed[@]})); then
    printf 'failed: %s\n' "${failed[@]}" >&2
    exit 1
fi
