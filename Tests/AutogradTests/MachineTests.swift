// The OpenBLAS kernel droplab runs: chosen by the CPU's features when OpenBLAS falls back to a
// generic one, the user's OPENBLAS_CORETYPE respected, and never a generic SSE kernel on a CPU
// with AVX2.

@testable import Autograd
import Foundation
import TestSupport
import XCTest

final class MachineTests: XCTestCase {
    let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]
    let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    func testKernelChosenByFeatures() {
        // the Intel Xeon OpenBLAS 0.3.21 does not know: Prescott -> Cooperlake (BF16) / SkylakeX
        XCTAssertEqual(Machine.betterOpenBLASCore(current: "Prescott", flags: avx512.union(["avx512_bf16", "avx512_fp16"])), "Cooperlake")
        XCTAssertEqual(Machine.betterOpenBLASCore(current: "Prescott", flags: avx512), "SkylakeX")
        XCTAssertEqual(Machine.betterOpenBLASCore(current: "Haswell", flags: avx512), "SkylakeX")
        XCTAssertEqual(Machine.betterOpenBLASCore(current: "Core2", flags: avx2), "Haswell")
        XCTAssertEqual(Machine.betterOpenBLASCore(current: "Sandybridge", flags: avx2), "Haswell")
        // already the CPU's widest ISA: kept
        XCTAssertNil(Machine.betterOpenBLASCore(current: "Cooperlake", flags: avx512.union(["avx512_bf16"])))
        XCTAssertNil(Machine.betterOpenBLASCore(current: "SkylakeX", flags: avx512))
        XCTAssertNil(Machine.betterOpenBLASCore(current: "Zen", flags: avx2))
        XCTAssertNil(Machine.betterOpenBLASCore(current: "Haswell", flags: avx2))
        // no AVX2: nothing better to choose
        XCTAssertNil(Machine.betterOpenBLASCore(current: "Prescott", flags: ["sse3"]))
    }

    /// droplab left to itself (no OPENBLAS_CORETYPE) runs an AVX2 or AVX-512 kernel on a CPU
    /// with AVX2, whatever OpenBLAS's own table says; a user's OPENBLAS_CORETYPE is kept (and a
    /// narrower kernel than the CPU runs is named).
    func testDroplabRunsAVXKernel() throws {
        let r = try runDroplab(["inspect", "--system"], removing: ["OPENBLAS_CORETYPE", "DROPLAB_OPENBLAS_REPLACED"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("openblas_core: ") }.map(String.init) ?? ""
        let core = line.dropFirst("openblas_core: ".count).split(separator: " ").first.map { $0.lowercased() } ?? ""
        print("\(line) on \(Machine.cpu.model), \(Machine.cpu.identity) (\(Machine.cpu.isaSummary))")
        #if os(Linux)   // the model name can be shared by CPU generations: the family and model tell them apart
        XCTAssertTrue(r.stdout.contains("\ncpu_id: family "), r.stdout)
        #endif
        if Machine.cpu.flags.isSuperset(of: ["avx2", "fma"]) {
            XCTAssertTrue(Machine.avx2Cores.union(Machine.avx512Cores).contains(core), "a generic kernel on an AVX2 CPU: \(line)")
        }
        if Machine.cpu.flags.isSuperset(of: Machine.avx512Flags) {
            XCTAssertTrue(Machine.avx512Cores.contains(core), "AVX-512 CPU without an AVX-512 kernel: \(line)")
        }
        let forced = try runDroplab(["inspect", "--system"], environment: ["OPENBLAS_CORETYPE": "Haswell"], removing: ["DROPLAB_OPENBLAS_REPLACED"])
        // kept, and on a CPU that runs a wider kernel (as when a machine's environment sets it) that kernel is named
        let better = Machine.betterOpenBLASCore(current: "Haswell", flags: Machine.cpu.flags)
        XCTAssertTrue(forced.stdout.contains("openblas_core: Haswell (OPENBLAS_CORETYPE=Haswell"
                                             + (better.map { "; the CPU can run \($0), droplab's choice without it)" } ?? ")")), forced.stdout)
    }
}
