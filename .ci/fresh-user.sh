#!/usr/bin/env bash
# Issue 12: `cargo test --workspace` passes on a machine with only Rust, as
# any user. Runs the whole suite once as an unprivileged user whose PATH has
# no chromium or chromedriver, with SHANLU_TEST_REQUIRE_ALL unset, and checks
# that it passes and that the tests needing Chromium, root or network
# namespaces said they were skipped (with the reason and the install command).
#
# Run as root from the checkout, after the tests were built (it reuses the
# target folder, so nothing is compiled again). Usage: bash .ci/fresh-user.sh
set -euo pipefail
cd "$(dirname "$0")/.."

user=shanlu-ci
id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"

# The toolchain and the registry stay where root has them (the build's
# fingerprints name those paths); the user only needs to pass through /root.
root_mode=$(stat -c %a /root)
restore() { chmod "$root_mode" /root; }
trap restore EXIT
chmod o+x /root
target=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target"
chown -R "$user": "$target"
if ! runuser -u "$user" -- test -r Cargo.toml; then
    echo "fresh-user: $user cannot read $PWD; clone the repository where any user can read it" >&2
    exit 1
fi

# A PATH without Chromium: every command of the usual folders but those.
sysroot=$(rustc --print sysroot)
bin=$(mktemp -d /tmp/shanlu-ci-path.XXXXXX)
trap 'restore; rm -rf "$bin"' EXIT
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    [ -d "$dir" ] || continue
    for tool in "$dir"/*; do
        name=$(basename "$tool")
        case "$name" in
            chromium* | chromedriver | google-chrome* | chrome) continue ;;
        esac
        [ -e "$bin/$name" ] || ln -s "$tool" "$bin/$name"
    done
done
chmod 755 "$bin"

log=$(mktemp /tmp/shanlu-ci-fresh-user.XXXXXX.log)
chmod 644 "$log"
started=$(date +%s)
status=0
runuser -u "$user" -- env -i \
    HOME="/home/$user" USER="$user" LANG=C.UTF-8 TMPDIR=/tmp \
    PATH="$sysroot/bin:$bin" \
    CARGO_HOME="${CARGO_HOME:-/root/.cargo}" CARGO_TARGET_DIR="$target" \
    CARGO_NET_OFFLINE=true ${CARGO_INCREMENTAL:+CARGO_INCREMENTAL=$CARGO_INCREMENTAL} \
    cargo test --workspace --locked >"$log" 2>&1 || status=$?
elapsed=$(($(date +%s) - started))
chown -R root: "$target"

tail -n 40 "$log"
if [ "$status" -ne 0 ]; then
    echo "fresh-user: cargo test --workspace failed as $user (exit $status); log: $log" >&2
    grep -E '^(test .* FAILED|failures:|---- )' "$log" | head -n 40 >&2 || true
    exit 1
fi
skips=$(grep -c '^SKIPPED ' "$log" || true)
echo "fresh-user: passed as $user without chromium on PATH in ${elapsed}s; ${skips} tests skipped:"
grep '^SKIPPED ' "$log" | sort | uniq || true
for need in 'no chromium' 'not root'; do
    if ! grep -q "^SKIPPED .*$need" "$log"; then
        echo "fresh-user: no test said it was skipped for \"$need\"" >&2
        exit 1
    fi
done
if grep '^SKIPPED ' "$log" | grep -qv '; install: '; then
    echo "fresh-user: a skip does not say how to install what is missing" >&2
    exit 1
fi
