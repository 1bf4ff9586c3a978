#!/usr/bin/env bash
# A sales rep's day through the Kotlin bindings, as runnable documentation: starts
# `fieldline-server demo` on a free loopback port, then runs the RepDay main class
# (mobile/android/src/examples/kotlin/app/fieldline/examples/RepDay.kt) as rep.east.1.
#
#   mobile/scripts/rep-day.sh [--release] [username]
#
# Needs Rust, JDK 17 and Maven (Maven downloads Kotlin and JNA on first run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mobile="$(dirname "$here")"
root="$(dirname "$mobile")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldline-target}"

profile=--debug
user=rep.east.1
for arg in "$@"; do
    case "$arg" in
        --release) profile=--release ;;
        --debug) profile=--debug ;;
        -*) echo "unknown option: $arg" >&2; exit 2 ;;
        *) user="$arg" ;;
    esac
done

(cd "$root" && cargo build -p fieldline-server --bin fieldline-server)
server_bin="$CARGO_TARGET_DIR/debug/fieldline-server"
lib="$("$here/generate-bindings.sh" "$profile" | tail -n 1)"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "==> starting fieldline-server demo (seeding the demo organisation)" >&2
mkfifo "$work/out"
RUST_LOG=warn "$server_bin" demo --addr 127.0.0.1:0 --data-dir "$work/server" >"$work/out" &
server_pid=$!
url=""
exec 3<"$work/out"
while IFS= read -r line <&3; do
    case "$line" in
        "listening on "*) url="${line#listening on }"; break ;;
    esac
done
[ -n "$url" ] || { echo "fieldline-server did not start" >&2; exit 1; }
# Keep draining the server's output so it never blocks on a full pipe.
cat <&3 >/dev/null &
echo "==> server at $url" >&2

"$here/run-example.sh" "$(dirname "$lib")" "$server_bin" app.fieldline.examples.RepDayKt \
    "$url" "$user" fieldline-demo "$work/replica.db"
