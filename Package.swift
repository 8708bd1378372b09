// swift-tools-version:6.0
import PackageDescription

// Numeric targets are compiled with -Ounchecked in release builds: bounds checks in
// inner loops cost 2-5x, and every kernel is covered by the gradient/parity tests.
let fast: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

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
        .target(name: "Interventions", dependencies: ["Autograd", "BERT"], swiftSettings: fast),
        .target(name: "Evaluators", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training", "Interventions"],
                swiftSettings: fast),
        .target(name: "Recipes", dependencies: ["BERT", "Text", "Training", "Evaluators",
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
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Text", "TestSupport"]),
        .testTarget(name: "EvaluatorsTests", dependencies: ["Evaluators", "Interventions", "Training", "Text", "BERT", "Checkpoint", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "BERT", "TestSupport"]),
        .testTarget(name: "RecipesTests", dependencies: ["Recipes", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
