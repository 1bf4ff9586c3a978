#!/usr/bin/env bash
# Runs a Kotlin main class of mobile/android/src/examples (RepDay, FfiBench) on the JVM with
# the generated bindings and a native library. Used by rep-day.sh and bench.sh.
#
#   run-example.sh <native-lib-dir> <fieldline-server> <main-class> [args…]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
android="$(dirname "$here")/android"
[ $# -ge 3 ] || { echo "usage: run-example.sh <native-lib-dir> <fieldline-server> <main-class> [args…]" >&2; exit 2; }
native="$1"
server="$2"
main="$3"
shift 3

cd "$android"
# Compiles the bindings, the test kit and the examples, and lists the test classpath.
mvn -q -B -Dstyle.color=never test-compile dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile=target/classpath.txt >&2
exec java -Djna.library.path="$native" -Dfieldline.server="$server" \
    -cp "target/test-classes:target/classes:$(cat target/classpath.txt)" "$main" "$@"
