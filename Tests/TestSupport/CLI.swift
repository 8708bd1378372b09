// Run the droplab executable built next to the test bundle.

import Foundation
import XCTest

public struct CLIResult {
    public let status: Int32
    public let signaled: Bool      // killed by a signal (a crash)
    public let stdout: String
    public let stderr: String
}

public func droplabExecutable() -> URL {
    // Test bundles and executables are built into the same products directory.
    var dir = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("droplab")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    for b in Bundle.allBundles {
        let candidate = b.bundleURL.deletingLastPathComponent().appendingPathComponent("droplab")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    return URL(fileURLWithPath: ".build/debug/droplab")
}

/// Run `droplab args...` in `cwd`, with `environment` added to this process's and the
/// variables in `removing` taken out of it.
@discardableResult
public func runDroplab(_ args: [String], cwd: String? = nil, environment: [String: String] = [:], removing: [String] = []) throws -> CLIResult {
    try run(droplabExecutable(), args, cwd: cwd, environment: environment, removing: removing)
}

/// Run `executable args...` in `cwd` to its end.
public func run(_ executable: URL, _ args: [String], cwd: String? = nil, environment: [String: String] = [:],
                removing: [String] = []) throws -> CLIResult {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !removing.contains($0.key) }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return CLIResult(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// `mpirun` (OpenMPI), or an XCTSkip where it is not installed (`make setup` installs it).
public func mpirun() throws -> URL {
    for dir in ["/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/mpirun") {
        return URL(fileURLWithPath: dir + "/mpirun")
    }
    throw XCTSkip("mpirun is not installed (make setup installs openmpi-bin)")
}

/// mpirun's arguments for `ranks` ranks of droplab, as CI runs them: more ranks than cores
/// allowed, no core binding (each rank runs its own kernel threads), root allowed (CI and
/// containers run as root); the environment says the same to OpenMPI.
public func mpirunArguments(ranks: Int) -> [String] {
    ["--oversubscribe", "--bind-to", "none", "-np", String(ranks), droplabExecutable().path]
}
public let mpirunEnvironment = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"]

/// Run `droplab args...` on `ranks` ranks under mpirun.
@discardableResult
public func runDroplabMPI(ranks: Int, _ args: [String], cwd: String? = nil) throws -> CLIResult {
    try run(try mpirun(), mpirunArguments(ranks: ranks) + args, cwd: cwd, environment: mpirunEnvironment)
}

/// A fresh temporary directory, removed when the test ends.
public func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("droplab-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
}

/// Assert a CLI failure: non-zero exit, no crash, and a one-line error (the last line of
/// stderr, after any progress lines) that contains every `needle`.
public func assertOneLineError(_ r: CLIResult, contains needles: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertNotEqual(r.status, 0, "expected failure, stdout: \(r.stdout)", file: file, line: line)
    XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Stack dump"), "crashed: \(r.stderr)", file: file, line: line)
    let last = r.stderr.split(separator: "\n", omittingEmptySubsequences: true).last.map(String.init) ?? ""
    XCTAssertTrue(last.hasPrefix("droplab: error: "), "expected an error line, got: \(r.stderr)", file: file, line: line)
    for n in needles { XCTAssertTrue(last.contains(n), "error should mention '\(n)': \(last)", file: file, line: line) }
}

/// The results directory an `eval` command printed (its stdout ends with `-> <dir>/<eval>.json`).
public func resultsDirectory(_ r: CLIResult) -> String {
    guard let arrow = r.stdout.range(of: "-> ", options: .backwards) else { return "(no results path in: \(r.stdout))" }
    return r.stdout[arrow.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
}
