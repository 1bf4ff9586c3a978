#!/usr/bin/env bash
# The one entry point for the mobile bindings' tests:
#   1. builds the fieldline-server binary and the native library (debug),
#   2. generates the Kotlin, Swift and Python bindings,
#   3. runs the JUnit tests on the JVM (mvn test in mobile/android),
#   4. runs the pytest tests (mobile/python).
# Every test starts its own real fieldline-server on a loopback port. Exits non-zero on any
# failure.
#
# Needs Rust, JDK 17, Maven and Python 3 (Maven downloads Kotlin, JNA, coroutines and JUnit
# from Maven Central on first run; pytest is installed into mobile/python/.venv if missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mobile="$(dirname "$here")"
root="$(dirname "$mobile")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldline-target}"
started=$(date +%s)

echo "==> fieldline-server" >&2
(cd "$root" && cargo build -p fieldline-server --bin fieldline-server)
server="$CARGO_TARGET_DIR/debug/fieldline-server"

echo "==> native library and bindings" >&2
lib="$("$here/generate-bindings.sh" --debug | tail -n 1)"

echo "==> Kotlin: JUnit on the JVM" >&2
(cd "$mobile/android" && mvn -q -B -Dstyle.color=never test \
    -Dfieldline.server="$server" -Dfieldline.native.dir="$(dirname "$lib")")

echo "==> Python: pytest" >&2
python=python3
if ! "$python" -m pytest --version >/dev/null 2>&1; then
    venv="$mobile/python/.venv"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet "pytest==8.3.5"
    python="$venv/bin/python"
fi
(cd "$mobile/python" && FIELDLINE_SERVER="$server" "$python" -m pytest -q)

echo "==> all mobile tests passed in $(($(date +%s) - started)) s" >&2
