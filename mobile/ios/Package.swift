// swift-tools-version:5.9
//
// The Fieldline client core for iOS (and macOS) apps, as a Swift package.
//
// Before using it, build the native XCFramework and the Swift bindings on a Mac:
//
//     mobile/scripts/build-xcframework.sh
//
// which writes build/FieldlineMobileFFI.xcframework (the Rust static library for iOS devices,
// the iOS simulator and macOS, with the C header and module map of the FFI) and
// Sources/FieldlineMobile/FieldlineMobile.swift (the generated Swift API). Both are build
// outputs and are not committed.
import PackageDescription

let package = Package(
    name: "FieldlineMobile",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "FieldlineMobile", targets: ["FieldlineMobile"]),
    ],
    targets: [
        // The Rust library and the C header of its FFI (module `FieldlineMobileFFI`).
        .binaryTarget(
            name: "FieldlineMobileFFI",
            path: "build/FieldlineMobileFFI.xcframework"
        ),
        // The generated Swift API: Replica, login, sync, ApiError, records and enums.
        .target(
            name: "FieldlineMobile",
            dependencies: ["FieldlineMobileFFI"],
            path: "Sources/FieldlineMobile",
            linkerSettings: [
                // rustls-platform-verifier uses the Security framework; reqwest and the
                // WebSocket use SystemConfiguration for network status.
                .linkedFramework("Security"),
                .linkedFramework("SystemConfiguration"),
            ]
        ),
    ]
)
