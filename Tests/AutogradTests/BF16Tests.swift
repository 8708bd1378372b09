// bf16 arithmetic: the conversion against an exact reference (edge cases and random bit
// patterns), oneDNN's products against Float64 products of the rounded operands (every
// transpose, strides, accumulation, the threaded splits), and `linear` on a bf16 tape: its
// forward and both backward products, the parameters' copies kept until `weightsChanged()`.

import Autograd
import Foundation
import TestSupport
import XCTest

/// The bf16 nearest to x by exact arithmetic (Float64 holds every value involved): the two bf16
/// neighbours of x, the nearer one, on a tie the one with an even last bit. Above the largest
/// bf16 the upper neighbour is infinity, at the place 2^128 would take.
func referenceBF16(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    if x.isInfinite { return x < 0 ? 0xFF80 : 0x7F80 }
    let low = UInt16(x.bitPattern >> 16), high = low + 1           // truncated towards zero, next away from zero
    func value(_ b: UInt16) -> Double {
        b & 0x7FFF == 0x7F80 ? (b & 0x8000 != 0 ? -0x1p128 : 0x1p128) : Double(Float(bitPattern: UInt32(b) << 16))
    }
    let dLow = abs(Double(x) - value(low)), dHigh = abs(value(high) - Double(x))
    if dLow != dHigh { return dLow < dHigh ? low : high }
    return low & 1 == 0 ? low : high
}

/// Float64 C[M,N] = op(A) op(B) (+ C0) of bf16-rounded operands (reference rounding).
func referenceProduct(_ ta: Bool, _ tb: Bool, _ M: Int, _ N: Int, _ K: Int, _ A: [Float], lda: Int, _ B: [Float], ldb: Int,
                      _ C0: [Float]?, ldc: Int) -> [Double] {
    let a = A.map { Double(Float(bitPattern: UInt32(referenceBF16($0)) << 16)) }, b = B.map { Double(Float(bitPattern: UInt32(referenceBF16($0)) << 16)) }
    var C = [Double](repeating: 0, count: M * ldc)
    for m in 0..<M {
        for n in 0..<N {
            var s = C0.map { Double($0[m * ldc + n]) } ?? 0
            for k in 0..<K { s += (ta ? a[k * lda + m] : a[m * lda + k]) * (tb ? b[n * ldb + k] : b[k * ldb + n]) }
            C[m * ldc + n] = s
        }
    }
    return C
}

final class BF16Tests: XCTestCase {
    static let edgeCases: [UInt32] = [
        0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001,   // zeros, infinities, NaNs
        0x0000_0001, 0x0000_7FFF, 0x0000_8000, 0x0001_8000, 0x0000_8001, 0x007F_FFFF, 0x807F_FFFF,   // subnormals and their ties
        0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF, 0x3F80_8001, 0xBF80_8000, 0xBF81_8000,                // ties to even and odd
        0x3FFF_8000, 0x7F7F_7FFF, 0x7F7F_8000, 0x7F7F_FFFF, 0xFF7F_FFFF,                             // carries, overflow to infinity
    ]

    func testConversionRoundsToNearestEven() {
        var rng = RNG(seed: 7)
        let patterns = Self.edgeCases + (0..<200_000).map { _ in UInt32(truncatingIfNeeded: rng.next()) }
        var wrong: [String] = []
        for p in patterns {
            let x = Float(bitPattern: p), got = BF16.bits(x), want = referenceBF16(x)
            if got != want && wrong.count < 5 { wrong.append(String(format: "%08x -> %04x, want %04x", p, got, want)) }
        }
        XCTAssertEqual(wrong, [], "fp32 -> bf16")
        // spot values that need no reference: a tie rounds to even, overflow to infinity, NaN stays NaN
        XCTAssertEqual(BF16.bits(Float(bitPattern: 0x3F80_8000)), 0x3F80)
        XCTAssertEqual(BF16.bits(Float(bitPattern: 0x3F81_8000)), 0x3F82)
        XCTAssertEqual(BF16.bits(.greatestFiniteMagnitude), 0x7F80)
        XCTAssertEqual(BF16.bits(Float(bitPattern: 0x0001_8000)), 0x0002)
        XCTAssertTrue(BF16.float(BF16.bits(-.nan)).isNaN)
        // the bulk copy rounds the same way
        let xs = patterns.prefix(100_001).map { Float(bitPattern: $0) }
        let copy = BF16.copy(xs, count: xs.count)
        let mismatches = copy.pointer.withMemoryRebound(to: UInt16.self, capacity: xs.count) { packed in
            (0..<xs.count).filter { packed[$0] != BF16.bits(xs[$0]) }.count
        }
        XCTAssertEqual(mismatches, 0, "BF16.copy")
    }

    /// oneDNN's product equals the Float64 product of the rounded operands to fp32 accumulation
    /// error, for every transpose, with and without accumulation, with padded leading
    /// dimensions, in one part and split across threads by rows and by columns.
    func testProductsAgainstFloat64() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        var rng = RNG(seed: 11)
        for (M, N, K) in [(5, 7, 3), (300, 96, 160), (8, 2048, 256)] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for accumulate in [false, true] {
                        let lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2
                        let A = (0..<(ta ? K : M) * lda).map { _ in rng.normal() }, B = (0..<(tb ? N : K) * ldb).map { _ in rng.normal() }
                        let C0 = (0..<M * ldc).map { _ in rng.normal() }
                        var C = C0
                        let ah = BF16.copy(A, count: A.count), bh = BF16.copy(B, count: B.count)
                        C.withUnsafeMutableBufferPointer {
                            bf16gemm(ta, tb, M, N, K, ah.pointer, bh.pointer, accumulate: accumulate, $0.baseAddress!, lda: lda, ldb: ldb, ldc: ldc)
                        }
                        let want = referenceProduct(ta, tb, M, N, K, A, lda: lda, B, ldb: ldb, accumulate ? C0 : nil, ldc: ldc)
                        let rows = (0..<M).flatMap { m in (0..<N).map { m * ldc + $0 } }
                        // A product of two bf16 values is exact in fp32 (8 + 8 <= 24 bits), so only the fp32
                        // accumulation of K <= 256 terms differs: RMS u √(K/6) = 3.9e-7 relative in the worst
                        // (sequential) order of any kernel (Tolerance.rms); 1e-6 is 2.6x (measured 1.1e-7).
                        assertNormClose(rows.map { C[$0] }, rows.map { want[$0] }, rtol: 1e-6, "M\(M) N\(N) K\(K) ta \(ta) tb \(tb) acc \(accumulate)")
                        let padding = (0..<M).flatMap { m in (N..<ldc).map { m * ldc + $0 } }
                        XCTAssertEqual(padding.map { C[$0] }, padding.map { C0[$0] }, "columns past N untouched")
                    }
                }
            }
        }
    }

    /// linear on a bf16 tape: out = x w^T + b, dx = dy w, dw = dy^T x with every operand rounded
    /// to bf16 (the bias and its gradient in fp32), against Float64; the fp32 tape's result stays
    /// exact to fp32 and differs from the bf16 one by about bf16's precision.
    func testLinearForwardAndBothBackwardProducts() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        var rng = RNG(seed: 12)
        let R = 300, I = 96, O = 160   // large enough for the threaded split
        let params = Parameters([("w", [O, I]), ("b", [O])])
        for i in 0..<params.totalCount { params.values.pointer[i] = rng.normal() }
        let x0 = (0..<R * I).map { _ in rng.normal() }, dy = (0..<R * O).map { _ in rng.normal() }
        let w = params["w"].values, b = params["b"].values
        var outs: [Precision: [Float]] = [:]
        for precision in Precision.allCases {
            params.zeroGrads()
            let tape = Tape(precision: precision)
            let x = Tensor(x0, shape: [R, I], requiresGrad: true)
            let out = tape.linear(x, params["w"], params["b"])
            tape.backward(tape.sum(tape.mul(out, Tensor(dy, shape: [R, O]))))
            outs[precision] = out.values
            guard precision == .bf16 else { continue }
            // as in testProductsAgainstFloat64: exact bf16 products, fp32 accumulation of K = 96 (out),
            // 160 (dx), 300 (dw) terms: RMS u √(K/6) <= 4.2e-7 relative, 2.4x below 1e-6. db sums R = 300
            // fp32 values N(0, 1): RMS u √(R²/6) = 7.3e-6 absolute in the worst order, 6 RMS = 4.4e-5
            // against atol 1e-4 + rtol 1e-5 |db| (|db| ~ √300 = 17: 2.7e-4).
            let bias = (0..<R).flatMap { _ in b }
            assertNormClose(out.values, referenceProduct(false, true, R, O, I, x0, lda: I, w, ldb: I, bias, ldc: O), rtol: 1e-6, "out")
            assertNormClose(x.gradValues, referenceProduct(false, false, R, I, O, dy, lda: O, w, ldb: I, nil, ldc: I), rtol: 1e-6, "dx")
            assertNormClose(params["w"].gradValues, referenceProduct(true, false, O, I, R, dy, lda: O, x0, ldb: I, nil, ldc: I), rtol: 1e-6, "dw")
            assertClose(params["b"].gradValues, (0..<O).map { o in (0..<R).reduce(0.0) { $0 + Double(dy[$1 * O + o]) } }, rtol: 1e-5, atol: 1e-4, "db")
        }
        let gap = difference(outs[.bf16]!, outs[.fp32]!, rtol: 0, atol: 0)
        let scale = outs[.fp32]!.map { abs(Double($0)) }.max()!
        // Rounding x and w to bf16 (u_bf16 = 2^-8) perturbs out = x w^T + b by at most 2 u_bf16 Σ|x_i w_i|
        // <= 7.8e-3 * 0.64 * 96 = 0.48 (I = 96 normal terms), 0.011 of max|out| ~ 4.3 * √96 = 42 (5x
        // below 0.05); its RMS, u_bf16 √(2/3) √96 = 0.031, makes the largest of 48000 elements ~0.13,
        // 3e-3 of max|out|, 30x above the 1e-4 that would mean nothing was rounded.
        XCTAssertGreaterThan(gap.maxAbs, 1e-4 * scale, "bf16 and fp32 products agree too closely: no rounding happened")
        XCTAssertLessThan(gap.maxAbs, 0.05 * scale, "bf16 and fp32 products differ by more than bf16 precision")
    }

    /// A bf16 tape converts each parameter once and reuses the copy until `weightsChanged()`
    /// (the trainer calls it before every step).
    func testParameterCopiesLastUntilWeightsChange() throws {
        try XCTSkipUnless(BF16.isSupported, "no AVX512-BF16")
        let params = Parameters([("w", [2, 2])])
        params.values.pointer.update(from: [1, 2, 3, 4], count: 4)
        let tape = Tape(recording: false, precision: .bf16)
        let x = Tensor([1, 1], shape: [1, 2])
        // exact equalities: small integers and their products are exact in bf16 and fp32
        XCTAssertEqual(tape.linear(x, params["w"], nil).values, [3, 7])
        params.values.pointer.update(from: [10, 20, 30, 40], count: 4)
        XCTAssertEqual(tape.linear(x, params["w"], nil).values, [3, 7], "the step's copy")
        tape.weightsChanged()
        XCTAssertEqual(tape.linear(x, params["w"], nil).values, [30, 70])
    }
}
