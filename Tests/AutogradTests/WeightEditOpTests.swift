// Gradient checks of the concept-edit ops (Ops/WeightEdits.swift) against Float64 references:
// the masked weight with its straight-through estimator (hard forward; d/dlogits = the
// derivative of the sigmoid surrogate W ⊙ σ((logits + noise)/τ); d/dW = the hard mask), the
// low-rank (LoRA) weight and LoReFT.

import Autograd
import Foundation
import TestSupport
import XCTest

final class WeightEditOpTests: XCTestCase {
    func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Logits and noise whose sum stays away from 0, so the hard mask is the same at x ± h.
    func maskInputs(_ rng: inout RNG, _ O: Int, _ I: Int) -> (GradInput, GradInput) {
        let l = rng.normals(O * I), z = rng.normals(O * I).enumerated().map { i, v in
            let s = l[i] + v
            return abs(s) < 0.05 ? v + (s < 0 ? -0.1 : 0.1) : v
        }
        return (GradInput("logits", [O, I], l), GradInput("noise", [O, I], z, differentiable: false))
    }

    func testMaskedWeightStraightThrough() {
        var rng = RNG(seed: 901)
        for (tau, withNoise) in [(Float(1), true), (0.7, true), (1, false)] {
            let d = rng.distinctDims(2, 3...7)
            let (O, I) = (d[0], d[1])
            let w = rng.input("w", [O, I], differentiable: false)
            var (l, z) = maskInputs(&rng, O, I)
            if !withNoise { z = GradInput("noise", [O, I], [Float](repeating: 0, count: O * I), differentiable: false)
                            l = GradInput("logits", [O, I], l.floats.map { abs($0) < 0.05 ? 0.1 : $0 }) }
            let t = Double(tau)
            gradCheck("maskedWeight d/dlogits (τ=\(tau), noise=\(withNoise), [\(O),\(I)])", [w, l, z], seed: rng.next(),
                      engine: { $0.maskedWeight($1[0], logits: $1[1], noise: withNoise ? $1[2] : nil, temperature: tau) },
                      reference: { x in Ref(x[0].shape, (0..<x[0].count).map { x[0].v[$0] * self.sigmoid((x[1].v[$0] + x[2].v[$0]) / t) }) },
                      forward: { x in Ref(x[0].shape, (0..<x[0].count).map { (x[1].v[$0] + x[2].v[$0]) / t > 0 ? x[0].v[$0] : 0 }) })
            // d/dW through the hard mask (piecewise linear in W: finite differences are exact)
            let w2 = rng.input("w", [O, I]), l2 = GradInput("logits", [O, I], l.floats, differentiable: false)
            gradCheck("maskedWeight d/dW (τ=\(tau))", [w2, l2, z], seed: rng.next(),
                      engine: { $0.maskedWeight($1[0], logits: $1[1], noise: withNoise ? $1[2] : nil, temperature: tau) },
                      reference: { x in Ref(x[0].shape, (0..<x[0].count).map { (x[1].v[$0] + x[2].v[$0]) / t > 0 ? x[0].v[$0] : 0 }) })
        }
    }

    /// Without noise the mask keeps exactly the weights whose logit is > 0.
    func testMaskedWeightEvaluationMask() {
        let w = Tensor([1, 2, 3, 4], shape: [2, 2]), l = Tensor([0.5, -0.5, 0, 2], shape: [2, 2])
        XCTAssertEqual(Tape(recording: false).maskedWeight(w, logits: l, noise: nil).values, [1, 0, 0, 4])
    }

    func testLowRankWeight() {
        var rng = RNG(seed: 902)
        for r in [1, 3] {
            let d = rng.distinctDims(2, 4...8)
            let (O, I) = (d[0], d[1]), alpha: Float = 2.5
            let inputs = [rng.input("w", [O, I]), rng.input("A", [r, I]), rng.input("B", [O, r])]
            gradCheck("lowRankWeight(r=\(r),[\(O),\(I)])", inputs, seed: rng.next(),
                      engine: { $0.lowRankWeight($1[0], a: $1[1], b: $1[2], alpha: alpha) },
                      reference: { x in
                          let ba = refMatmul(x[2], x[1])
                          return Ref(x[0].shape, (0..<x[0].count).map { x[0].v[$0] + Double(alpha) / Double(r) * ba.v[$0] })
                      })
        }
    }

    /// The low-rank weight inside `linear`: gradients reach A and B through the layer.
    func testLowRankWeightThroughLinear() {
        var rng = RNG(seed: 903)
        let (N, I, O, r) = (5, 6, 4, 2)
        let inputs = [rng.input("x", [N, I]), rng.input("w", [O, I], differentiable: false), rng.input("A", [r, I]), rng.input("B", [O, r])]
        gradCheck("linear(x, lowRankWeight)", inputs, seed: rng.next(),
                  engine: { $0.linear($1[0], $0.lowRankWeight($1[1], a: $1[2], b: $1[3], alpha: 4), nil) },
                  reference: { x in
                      let ba = refMatmul(x[3], x[2])
                      let w = Ref(x[1].shape, (0..<x[1].count).map { x[1].v[$0] + 2 * ba.v[$0] })
                      return refLinear(x[0], w, nil)
                  })
    }

    func testLoReFT() {
        var rng = RNG(seed: 904)
        for r in [1, 3] {
            let (N, C) = (5, 7)
            let inputs = [rng.input("h", [N, C]), rng.input("R", [r, C], std: 0.5), rng.input("W", [r, C], std: 0.5), rng.input("b", [r])]
            gradCheck("loreft(r=\(r),[\(N),\(C)])", inputs, seed: rng.next(),
                      engine: { $0.loreft($1[0], r: $1[1], w: $1[2], b: $1[3]) },
                      reference: { x in
                          let (h, R, W, b) = (x[0], x[1], x[2], x[3])
                          var out = h
                          for n in 0..<N {
                              for k in 0..<r {
                                  var s = b.v[k]
                                  for c in 0..<C { s += (W.v[k * C + c] - R.v[k * C + c]) * h.v[n * C + c] }
                                  for c in 0..<C { out.v[n * C + c] += R.v[k * C + c] * s }
                              }
                          }
                          return out
                      })
        }
    }
}
