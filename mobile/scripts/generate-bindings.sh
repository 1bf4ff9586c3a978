#!/usr/bin/env bash
# Builds the native library (libfieldline_mobile) and generates its Kotlin, Swift and Python
# bindings with uniffi-bindgen in library mode (the interface is read from the metadata in the
# built library, so bindings and library always match).
#
#   mobile/scripts/generate-bindings.sh            # release library
#   mobile/scripts/generate-bindings.sh --debug    # debug library (faster to build; tests)
#
# Writes (all generated, git-ignored, rewritten on every run):
#   mobile/android/src/main/kotlin/app/fieldline/mobile/fieldline_mobile.kt
#   mobile/android/build/native/libfieldline_mobile.so   (for the JVM tests: jna.library.path)
#   mobile/ios/Sources/FieldlineMobile/FieldlineMobile.swift
#   mobile/ios/Generated/include/{FieldlineMobileFFI.h,module.modulemap}
#   mobile/python/fieldline/fieldline_mobile.py + libfieldline_mobile.so
#
# Prints the path of the library it built on its last line.
# Environment: CARGO_TARGET_DIR (default ~/.cache/fieldline-target).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mobile="$(dirname "$here")"
root="$(dirname "$mobile")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldline-target}"

profile=release
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug ;;
        --release) profile=release ;;
        -h | --help)
            sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown option: $arg (use --debug or --release)" >&2
            exit 2
            ;;
    esac
done

case "$(uname -s)" in
    Darwin) libfile=libfieldline_mobile.dylib ;;
    *) libfile=libfieldline_mobile.so ;;
esac

cd "$root"
# The generator is a small tool: always a dev build (dependencies are optimised in dev builds
# anyway, see the workspace profile). In debug mode the same invocation builds the library.
echo "==> building uniffi-bindgen and the $profile library" >&2
if [ "$profile" = debug ]; then
    cargo build -p fieldline-mobile --features cli --lib --bin uniffi-bindgen >&2
else
    cargo build -p fieldline-mobile --features cli --bin uniffi-bindgen >&2
    cargo build -p fieldline-mobile --release --lib >&2
fi
bindgen="$CARGO_TARGET_DIR/debug/uniffi-bindgen"
lib="$CARGO_TARGET_DIR/$profile/$libfile"
[ -f "$lib" ] || { echo "library not found: $lib" >&2; exit 1; }

generate() { # language out-dir
    "$bindgen" generate "$lib" --language "$1" --out-dir "$2" --metadata-no-deps --no-format >&2
}

echo "==> Kotlin" >&2
kotlin_out="$mobile/android/src/main/kotlin"
rm -f "$kotlin_out/app/fieldline/mobile/fieldline_mobile.kt"
generate kotlin "$kotlin_out"
mkdir -p "$mobile/android/build/native"
cp "$lib" "$mobile/android/build/native/$libfile"

echo "==> Swift" >&2
swift_tmp="$(mktemp -d)"
trap 'rm -rf "$swift_tmp"' EXIT
generate swift "$swift_tmp"
mkdir -p "$mobile/ios/Sources/FieldlineMobile" "$mobile/ios/Generated/include"
cp "$swift_tmp/FieldlineMobile.swift" "$mobile/ios/Sources/FieldlineMobile/FieldlineMobile.swift"
cp "$swift_tmp/FieldlineMobileFFI.h" "$mobile/ios/Generated/include/FieldlineMobileFFI.h"
# An XCFramework's headers need the module map under this exact name.
cp "$swift_tmp/FieldlineMobileFFI.modulemap" "$mobile/ios/Generated/include/module.modulemap"

echo "==> Python" >&2
python_out="$mobile/python/fieldline"
generate python "$python_out"
cp "$lib" "$python_out/$libfile"

echo "$lib"
