// swift-tools-version:6.0
import PackageDescription

// Release builds compile the kernels (Autograd) with -Ounchecked: measured with `droplab bench`
// (mini, V8192, 2 cores), its overflow and precondition checks cost 15-25% of training and
// inference throughput; the other targets showed no measurable difference (tokenizer MB/s,
// checkpoint MB/s, and training with only Autograd unchecked was as fast as with everything
// unchecked), so they keep every check. No user input reaches a precondition: options and
// files are validated at the boundary (CommandOptions, Checkpoint.load).
// DROPLAB_CHECKED=1 (what `make test` sets) drops -Ounchecked everywhere: the tests run with
// every check on, so a violated precondition or an out-of-range index fails a test instead of
// being undefined behaviour.
import Foundation
// On x86-64 every target is compiled for AVX2 (`-target-cpu haswell`, any x86 server CPU since
// 2013): the elementwise loops (GELU, softmax, LayerNorm, dropout masks, AdamW) vectorise 8 wide
// instead of baseline SSE's 4. Swift does not contract a * b + c into FMA, so results are
// bit-identical to the SSE build's.
let checked = ProcessInfo.processInfo.environment["DROPLAB_CHECKED"] == "1"
#if arch(x86_64)
let cpu = ["-target-cpu", "haswell"]
#else
let cpu: [String] = []
#endif
let release: [SwiftSetting] = [.unsafeFlags(["-wmo"] + cpu, .when(configuration: .release))]
let kernels: [SwiftSetting] = checked ? release : [.unsafeFlags(["-Ounchecked", "-wmo"] + cpu, .when(configuration: .release))]

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
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),   // no pkg-config file: module.modulemap links dnnl
        .systemLibrary(name: "CMPI", pkgConfig: "ompi", providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .target(name: "Autograd", dependencies: ["CBLAS", "CDNNL"], swiftSettings: kernels),
        .target(name: "Interventions", dependencies: ["Autograd"], swiftSettings: release),
        .target(name: "BERT", dependencies: ["Autograd", "Interventions"], swiftSettings: release),
        .target(name: "Checkpoint", dependencies: ["CHDF5", "Autograd", "BERT"], swiftSettings: release),
        .target(name: "Text", dependencies: ["Autograd", "CZlib"], swiftSettings: release),
        .target(name: "Training", dependencies: ["CBLAS", "CMPI", "Autograd", "BERT", "Checkpoint", "Text"], swiftSettings: release),
        .target(name: "Datasets", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training"], swiftSettings: release),
        .target(name: "Evaluators", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training", "Interventions", "Datasets"],
                swiftSettings: release),
        .target(name: "Viz", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training", "Interventions", "Datasets", "Evaluators"],
                swiftSettings: release),
        .target(name: "Recipes", dependencies: ["Autograd", "BERT", "Checkpoint", "Text", "Training", "Datasets", "Evaluators", "Viz",
                                                .product(name: "TOMLKit", package: "TOMLKit")],
                plugins: ["CodeVersion"]),
        // the code version jobs record (tools/code_version.sh): source hash and git commit, baked in at build time
        .plugin(name: "CodeVersion", capability: .buildTool()),
        .executableTarget(name: "droplab", dependencies: [
            "Autograd", "BERT", "Checkpoint", "Text", "Training", "Datasets", "Evaluators", "Viz", "Recipes",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .target(name: "TestSupport", dependencies: ["CZlib"], path: "Tests/TestSupport"),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "TestSupport"]),
        .testTarget(name: "BERTTests", dependencies: ["BERT", "Checkpoint", "Training", "Interventions", "Datasets", "Evaluators", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "TextTests", dependencies: ["Text", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Text", "BERT", "Checkpoint", "TestSupport"]),
        .testTarget(name: "EvaluatorsTests", dependencies: ["Datasets", "Evaluators", "Viz", "Interventions", "Training", "Text", "BERT", "Checkpoint", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint", "BERT", "TestSupport"]),
        .testTarget(name: "InterventionsTests", dependencies: ["Interventions", "BERT", "Autograd", "TestSupport"]),
        .testTarget(name: "RecipesTests", dependencies: ["Recipes", "Datasets", "Evaluators", "Viz", "Training", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
