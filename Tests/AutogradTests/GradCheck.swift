// The generic gradient check used by every op test.
//
// For an op with inputs x_1..x_n and a random upstream weight R of the output's shape:
//  - numerical gradient of L(x) = sum(R * ref(x)) by central differences in Float64 on the
//    naive reference forward (inputs are Float32 values, so both sides see the same point);
//  - engine gradient of L = sum(mul(op(x), R)) on a tape, in Float32.
// Every differentiable input's gradient buffer is pre-filled with random values before the
// engine runs, and the check compares (grad after - grad before): an op that overwrites
// instead of accumulating (+=) fails.

import Autograd
import Foundation
import TestSupport
import XCTest

struct GradInput {
    let name: String
    let shape: [Int]
    let floats: [Float]
    let differentiable: Bool

    init(_ name: String, _ shape: [Int], _ floats: [Float], differentiable: Bool = true) {
        precondition(floats.count == shape.reduce(1, *), "\(name): \(floats.count) values for \(shape)")
        self.name = name; self.shape = shape; self.floats = floats; self.differentiable = differentiable
    }
    var ref: Ref { Ref(shape, floats.map(Double.init)) }
}

struct GradCheckResult {
    var forwardMaxRel = 0.0            // max |engine - ref| / max |ref| over the output
    var gradNormRel: [String: Double] = [:]   // ||g - num|| / ||num|| per input
    var gradMaxRel: [String: Double] = [:]    // max |g - num| / max |num| per input
}

/// Per-op log of the errors, printed as `GRADCHECK ...` lines when GRADCHECK_VERBOSE=1.
let gradCheckVerbose = ProcessInfo.processInfo.environment["GRADCHECK_VERBOSE"] == "1"

func logGradCheck(_ op: String, _ r: GradCheckResult) {
    guard gradCheckVerbose else { return }
    for name in r.gradNormRel.keys.sorted() {
        print(String(format: "GRADCHECK %@ d/d%@: normRel=%.2e maxRel=%.2e fwdRel=%.2e", op, name,
                     r.gradNormRel[name]!, r.gradMaxRel[name]!, r.forwardMaxRel))
    }
}

func maxAbs(_ v: [Double]) -> Double { v.reduce(0) { max($0, abs($1)) } }

/// Check the forward against the reference and every differentiable input's gradient
/// against central differences.
/// - fwdRtol/fwdAtol: elementwise, atol scaled by max |ref output|.
/// - gradRtol: bound on the relative L2 error of each gradient.
/// - gradAtol: elementwise bound |g - num| <= gradAtol * max|num| + gradElemRtol * |num|.
/// - forward: the reference of the forward pass when it differs from the function whose
///   derivative the backward must equal (straight-through estimators: hard forward, gradient of
///   a smooth surrogate `reference`).
///
/// Why the defaults hold (u = 2^-24 = 6e-8; Tolerances.swift). The inputs are float32 values, so
/// engine and reference see the same point, and the Float64 reference is exact to ~1e-16. Every
/// check here reduces over at most n = 16 terms (LayerNorm's C = 16; the BLAS products have
/// K <= 7: matmul/linear dims <= 7, attention T = 5 and HS = 3, LoReFT C = 7, cross-entropy
/// V <= 7) and chains at most d = 6 ops forward (the composed chain), 12 backward.
/// - forward: worst case d γ_n = 96u = 5.7e-6 relative to an element's terms, within fwdRtol
///   1e-5; an element whose terms cancel is covered by fwdAtol 1e-6 max|ref|: the RMS error of
///   the kernel-dependent products (d = 6 stages of K <= 7) is u √(6 * 7 / 6) = 1.6e-7 max|ref|,
///   so 1e-6 is 6 RMS; the other reductions are droplab's Swift loops, the same on every CPU.
///   The approximations in FastMath (GELU's erf |error| < 1.5e-7, exp ~1e-7 relative) add ~1e-7.
/// - gradients: worst case 12 γ_16 = 192u = 1.1e-5 relative, so gradRtol 1e-4 (L2) is 9x it and
///   gradAtol 1e-5 max|num| is 20x the RMS u √(12 * 16 / 6) = 3.4e-7; subtracting the prefilled
///   buffer (|g0| <~ 5 max|num|) adds one rounding, <= 6u max|num| = 3.6e-7. The central
///   difference with h = 1e-5 (Float64) errs by h²/6 |f'''| + u64 |L| / h ~ 1e-11 |L|, nothing
///   next to these; h is near the optimum u64^(1/3) = 5e-6.
/// Measured on the OpenBLAS Cooperlake, Haswell and Prescott kernels (GRADCHECK_VERBOSE=1):
/// forward <= 1.3e-7 max|ref|, gradients <= 4.4e-7 max|num| and 4.3e-7 relative L2.
@discardableResult
func gradCheck(_ op: String, _ inputs: [GradInput], seed: UInt64,
               fwdRtol: Double = 1e-5, fwdAtol: Double = 1e-6,
               gradRtol: Double = 1e-4, gradAtol: Double = 1e-5, gradElemRtol: Double = 1e-3,
               h: Double = 1e-5,
               engine: (Tape, [Tensor]) -> Tensor,
               reference: ([Ref]) -> Ref,
               forward forwardReference: (([Ref]) -> Ref)? = nil,
               file: StaticString = #filePath, line: UInt = #line) -> GradCheckResult {
    var rng = RNG(seed: seed)
    var result = GradCheckResult()
    let refInputs = inputs.map(\.ref)
    let ref0 = forwardReference.map { $0(refInputs) } ?? reference(refInputs)
    // Upstream weight, rounded to Float so engine and reference use the same R.
    let R = (0..<ref0.count).map { _ in rng.normal() }
    let Rd = R.map(Double.init)
    func loss(_ xs: [Ref]) -> Double {
        let y = reference(xs)
        var s = 0.0
        for i in 0..<y.count { s += Rd[i] * y.v[i] }
        return s
    }

    // Numerical gradients (Float64 central differences).
    var numeric: [Int: [Double]] = [:]
    for (k, input) in inputs.enumerated() where input.differentiable {
        var xs = refInputs
        var g = [Double](repeating: 0, count: input.floats.count)
        for j in 0..<g.count {
            let x0 = xs[k].v[j]
            xs[k].v[j] = x0 + h; let lp = loss(xs)
            xs[k].v[j] = x0 - h; let lm = loss(xs)
            xs[k].v[j] = x0
            g[j] = (lp - lm) / (2 * h)
        }
        numeric[k] = g
    }

    // Engine: inputs with pre-filled gradient buffers.
    let tensors = inputs.map { Tensor($0.floats, shape: $0.shape, requiresGrad: $0.differentiable) }
    var before: [Int: [Float]] = [:]
    for (k, t) in tensors.enumerated() where inputs[k].differentiable {
        let s = Float(max(maxAbs(numeric[k]!), 1e-3))
        let g0 = (0..<t.count).map { _ in s * rng.normal() }
        for i in 0..<t.count { t.grad[i] = g0[i] }
        before[k] = g0
    }
    let tape = Tape()
    let out = engine(tape, tensors)
    XCTAssertEqual(out.shape, ref0.shape, "\(op): output shape", file: file, line: line)
    let scale0 = maxAbs(ref0.v)
    assertClose(out.values, ref0.v, rtol: fwdRtol, atol: fwdAtol * (scale0 > 0 ? scale0 : 1),
                "\(op): forward", file: file, line: line)
    let outD = out.values.map(Double.init)
    result.forwardMaxRel = zip(outD, ref0.v).reduce(0) { max($0, abs($1.0 - $1.1)) } / (scale0 > 0 ? scale0 : 1)
    guard out.shape == ref0.shape else { return result }

    let Rt = Tensor(R, shape: ref0.shape)
    let L = tape.sum(tape.mul(out, Rt))
    let L0: Double = zip(Rd, ref0.v).reduce(0.0) { $0 + $1.0 * $1.1 }
    // L = sum R_i y_i is summed in Double: its error sum R_i dy_i has RMS sqrt(N) RMS(R) * 1.6e-7
    // max|ref| (the forward's), while |L0| ~ sqrt(N) RMS(R) RMS(y): ~1e-6 relative, 100x below 1e-4
    XCTAssertEqual(Double(L.scalar), L0, accuracy: 1e-4 * max(1, abs(L0)), "\(op): weighted loss", file: file, line: line)
    tape.backward(L)
    XCTAssertEqual(tape.steps, 0, "\(op): tape not cleared", file: file, line: line)

    for (k, t) in tensors.enumerated() where inputs[k].differentiable {
        let name = inputs[k].name, num = numeric[k]!, g0 = before[k]!
        let after = t.gradValues
        XCTAssertTrue(after.allSatisfy(\.isFinite), "\(op): d/d\(name) not finite", file: file, line: line)
        let got = (0..<t.count).map { Double(after[$0]) - Double(g0[$0]) }
        let scale = maxAbs(num)
        if scale == 0 {
            // exactly 0: the engine adds nothing (or exact zeros) to the prefilled buffer, so
            // after - before is 0; 1e-6 only admits a cancelling sum of 16 O(1) terms, γ_16 = 9.5e-7
            assertClose(got, num, rtol: 0, atol: 1e-6, "\(op): d/d\(name) should be 0", file: file, line: line)
            result.gradNormRel[name] = maxAbs(got); result.gradMaxRel[name] = maxAbs(got)
            continue
        }
        let rel = assertNormClose(got, num, rtol: gradRtol, "\(op): d/d\(name) (L2)", file: file, line: line)
        assertClose(got, num, rtol: gradElemRtol, atol: gradAtol * scale,
                    "\(op): d/d\(name) (elementwise)", file: file, line: line)
        result.gradNormRel[name] = rel
        result.gradMaxRel[name] = zip(got, num).reduce(0) { max($0, abs($1.0 - $1.1)) } / scale
    }
    logGradCheck(op, result)
    return result
}

// MARK: - Random inputs

extension RNG {
    mutating func normals(_ n: Int, mean: Float = 0, std: Float = 1) -> [Float] {
        (0..<n).map { _ in mean + std * normal() }
    }
    mutating func uniforms(_ n: Int, _ lo: Float, _ hi: Float) -> [Float] {
        (0..<n).map { _ in lo + (hi - lo) * uniform() }
    }
    /// `k` distinct sizes in `range` (so matrices are non-square and axes are not confusable).
    mutating func distinctDims(_ k: Int, _ range: ClosedRange<Int>) -> [Int] {
        var pool = Array(range)
        precondition(pool.count >= k)
        shuffle(&pool)
        return Array(pool.prefix(k))
    }
    /// Normal values of `shape` as a differentiable input.
    mutating func input(_ name: String, _ shape: [Int], std: Float = 1, mean: Float = 0,
                        differentiable: Bool = true) -> GradInput {
        GradInput(name, shape, normals(shape.reduce(1, *), mean: mean, std: std), differentiable: differentiable)
    }
}
