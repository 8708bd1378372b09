// swift-tools-version:6.0
import PackageDescription

// Release builds compile the numeric targets with -Ounchecked (bounds and overflow checks in
// the kernels' inner loops cost measurably, see README "How correctness is checked"); no
// user input reaches a precondition (options and files are validated at the boundary).
// DROPLAB_CHECKED=1 (what `make test` sets) keeps every check on: the tests run with it, so
// a violated precondition or an out-of-range index fails a test instead of being undefined.
import Foundation
let checked = ProcessInfo.processInfo.environment["DROPLAB_CHECKED"] == "1"
let fast: [SwiftSetting] = [.unsafeFlags(checked ? ["-wmo"] : ["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "droplab",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "droplab", targets: ["droplab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev", "pkg-config"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "Autograd", dependencies: ["CBLAS"], swiftSettings: fast),
        .target(name: "BERT", dependencies: ["Autograd"], swiftSettings: fast),
        .target(name: "Checkpoint", dependencies: ["CHDF5", "Autograd", "BERT"], swiftSettings: fast),
        .target(name: "Text", dependencies: ["Autograd", "CZlib"], swiftSettings: fast),
        .target(name: "Training", dependencies: ["CBLAS", "Autograd", "BERT", "Checkpoint", "Text"], swiftSettings: fast),
        .target(name: "Evaluators", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training"],
                swiftSettings: fast),
        .target(name: "Recipes", dependencies: ["BERT", "Checkpoint", "Text", "Training", "Evaluators",
                                                .product(name: "TOMLKit", package: "TOMLKit")]),
        .executableTarget(name: "droplab", dependencies: [
            "Autograd", "BERT", "Checkpoint", "Text", "Training", "Evaluators", "Recipes",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "TestSupport"]),
        .testTarget(name: "BERTTests", dependencies: ["BERT", "Checkpoint", "Training", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "TextTests", dependencies: ["Text", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Text", "BERT", "Checkpoint", "TestSupport"]),
        .testTarget(name: "EvaluatorsTests", dependencies: ["Evaluators", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "BERT", "TestSupport"]),
        .testTarget(name: "RecipesTests", dependencies: ["Recipes", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
