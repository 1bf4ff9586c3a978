#!/usr/bin/env bash
# Benchmarks of the Kotlin bindings against a RELEASE build of the native library (figures,
# not assertions): prints JSON lines {"scenario","metric","value","unit"}. See FfiBench.kt.
#
#   mobile/scripts/bench.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mobile="$(dirname "$here")"
root="$(dirname "$mobile")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldline-target}"

(cd "$root" && cargo build -p fieldline-server --bin fieldline-server >&2)
lib="$("$here/generate-bindings.sh" --release | tail -n 1)"
"$here/run-example.sh" "$(dirname "$lib")" "$CARGO_TARGET_DIR/debug/fieldline-server" \
    app.fieldline.examples.FfiBenchKt
