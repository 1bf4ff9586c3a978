#!/usr/bin/env bash
# Builds the iOS/macOS XCFramework of the native library and the Swift bindings, for the Swift
# package in mobile/ios. Runs on macOS with Xcode (xcodebuild, lipo) and rustup; it cannot run
# on Linux (it was written, not run, where the rest of the bindings were tested).
#
#   mobile/scripts/build-xcframework.sh
#
# Writes:
#   mobile/ios/build/FieldlineMobileFFI.xcframework   static libraries + FFI header/module map
#   mobile/ios/Sources/FieldlineMobile/FieldlineMobile.swift
#
# Targets: iOS devices (aarch64-apple-ios), the iOS simulator on Apple silicon and Intel
# (aarch64-apple-ios-sim, x86_64-apple-ios, merged with lipo) and macOS (aarch64-apple-darwin,
# x86_64-apple-darwin, merged with lipo; for SwiftUI previews and macOS tests).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mobile="$(dirname "$here")"
root="$(dirname "$mobile")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fieldline-target}"

if [ "$(uname -s)" != Darwin ]; then
    echo "build-xcframework.sh needs macOS with Xcode (xcodebuild, lipo)" >&2
    exit 1
fi
command -v xcodebuild >/dev/null || { echo "xcodebuild not found: install Xcode" >&2; exit 1; }

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"

# The oldest OS versions the package supports (Package.swift says the same).
export IPHONEOS_DEPLOYMENT_TARGET=15.0
export MACOSX_DEPLOYMENT_TARGET=12.0

cd "$root"
for t in "${targets[@]}"; do
    echo "==> cargo build --release --target $t" >&2
    cargo build -p fieldline-mobile --lib --release --target "$t"
done

# The Swift bindings and the FFI header/module map (from the host build; the interface is the
# same on every target). This also builds the host library.
"$here/generate-bindings.sh" --release >/dev/null

lib=libfieldline_mobile.a
out="$mobile/ios/build"
work="$out/work"
rm -rf "$out/FieldlineMobileFFI.xcframework" "$work"
mkdir -p "$work/ios-sim" "$work/macos" "$work/headers"
cp "$mobile/ios/Generated/include/FieldlineMobileFFI.h" "$work/headers/"
cp "$mobile/ios/Generated/include/module.modulemap" "$work/headers/"

lipo -create \
    "$CARGO_TARGET_DIR/aarch64-apple-ios-sim/release/$lib" \
    "$CARGO_TARGET_DIR/x86_64-apple-ios/release/$lib" \
    -output "$work/ios-sim/$lib"
lipo -create \
    "$CARGO_TARGET_DIR/aarch64-apple-darwin/release/$lib" \
    "$CARGO_TARGET_DIR/x86_64-apple-darwin/release/$lib" \
    -output "$work/macos/$lib"

xcodebuild -create-xcframework \
    -library "$CARGO_TARGET_DIR/aarch64-apple-ios/release/$lib" -headers "$work/headers" \
    -library "$work/ios-sim/$lib" -headers "$work/headers" \
    -library "$work/macos/$lib" -headers "$work/headers" \
    -output "$out/FieldlineMobileFFI.xcframework"
rm -rf "$work"

echo "==> $out/FieldlineMobileFFI.xcframework" >&2
echo "==> Swift package: $mobile/ios (swift build / add it to Xcode as a local package)" >&2
