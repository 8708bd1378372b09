// Every op's gradient checked by finite differences in Float64 (see GradCheck.swift):
// engine forward vs a naive Float64 reference, engine backward vs central differences of
// the reference, with random seeded inputs, non-square shapes and batch > 1.

import Autograd
import Foundation
import TestSupport
import XCTest

final class OpGradientTests: XCTestCase {

    // MARK: - Matrix products

    func testMatmulAllTransposesBatchedAndUnbatched() {
        var rng = RNG(seed: 101)
        for lead in [[], [2, 3]] {
            for ta in [false, true] {
                for tb in [false, true] {
                    let d = rng.distinctDims(3, 2...6)
                    let (M, K, N) = (d[0], d[1], d[2])
                    let a = rng.input("a", lead + (ta ? [K, M] : [M, K]))
                    let b = rng.input("b", lead + (tb ? [N, K] : [K, N]))
                    gradCheck("matmul(lead=\(lead),ta=\(ta),tb=\(tb),M=\(M),K=\(K),N=\(N))", [a, b],
                              seed: rng.next(),
                              engine: { $0.matmul($1[0], $1[1], transposeA: ta, transposeB: tb) },
                              reference: { refMatmul($0[0], $0[1], transposeA: ta, transposeB: tb) })
                }
            }
        }
    }

    func testMatmulOneSideDifferentiable() {
        var rng = RNG(seed: 102)
        for (ta, tb) in [(false, true), (true, false)] {
            let a = rng.input("a", [3, ta ? 5 : 4, ta ? 4 : 5], differentiable: false)
            let b = rng.input("b", [3, tb ? 2 : 5, tb ? 5 : 2])
            gradCheck("matmul(b only,ta=\(ta),tb=\(tb))", [a, b], seed: rng.next(),
                      engine: { $0.matmul($1[0], $1[1], transposeA: ta, transposeB: tb) },
                      reference: { refMatmul($0[0], $0[1], transposeA: ta, transposeB: tb) })
            let a2 = rng.input("a", [ta ? 5 : 4, ta ? 4 : 5])
            let b2 = rng.input("b", [tb ? 3 : 5, tb ? 5 : 3], differentiable: false)
            gradCheck("matmul(a only,ta=\(ta),tb=\(tb))", [a2, b2], seed: rng.next(),
                      engine: { $0.matmul($1[0], $1[1], transposeA: ta, transposeB: tb) },
                      reference: { refMatmul($0[0], $0[1], transposeA: ta, transposeB: tb) })
        }
    }

    /// Same tensor as both operands (x x^T, x^T x): both backward products accumulate into one grad.
    func testMatmulSameTensorBothOperands() {
        var rng = RNG(seed: 103)
        let x = rng.input("x", [2, 3, 5])
        gradCheck("matmul(x, x^T)", [x], seed: rng.next(),
                  engine: { $0.matmul($1[0], $1[0], transposeB: true) },
                  reference: { refMatmul($0[0], $0[0], transposeB: true) })
        gradCheck("matmul(x^T, x)", [x], seed: rng.next(),
                  engine: { $0.matmul($1[0], $1[0], transposeA: true) },
                  reference: { refMatmul($0[0], $0[0], transposeA: true) })
    }

    func testLinear() {
        var rng = RNG(seed: 111)
        for withBias in [true, false] {
            for lead in [[2, 3], [4]] {
                let d = rng.distinctDims(2, 3...7)
                let (I, O) = (d[0], d[1])
                var inputs = [rng.input("x", lead + [I]), rng.input("w", [O, I], std: 0.5)]
                if withBias { inputs.append(rng.input("b", [O])) }
                gradCheck("linear(x=\(lead + [I]),w=[\(O),\(I)],bias=\(withBias))", inputs, seed: rng.next(),
                          engine: { $0.linear($1[0], $1[1], withBias ? $1[2] : nil) },
                          reference: { refLinear($0[0], $0[1], withBias ? $0[2] : nil) })
            }
        }
    }

    // MARK: - Elementwise and reductions

    func testAddMulScale() {
        var rng = RNG(seed: 121)
        let a = rng.input("a", [3, 4, 2]), b = rng.input("b", [3, 4, 2])
        gradCheck("add", [a, b], seed: rng.next(),
                  engine: { $0.add($1[0], $1[1]) }, reference: { refAdd($0[0], $0[1]) })
        gradCheck("mul", [a, b], seed: rng.next(),
                  engine: { $0.mul($1[0], $1[1]) }, reference: { refMul($0[0], $0[1]) })
        let bFrozen = GradInput("b", b.shape, b.floats, differentiable: false)
        gradCheck("mul(a only)", [a, bFrozen], seed: rng.next(),
                  engine: { $0.mul($1[0], $1[1]) }, reference: { refMul($0[0], $0[1]) })
        for s: Float in [-1.7, 0.125] {
            gradCheck("scale(\(s))", [a], seed: rng.next(),
                      engine: { $0.scale($1[0], s) }, reference: { refMap($0[0]) { Double(s) * $0 } })
        }
    }

    func testAddBias() {
        var rng = RNG(seed: 122)
        for shape in [[2, 3, 5], [4, 3]] {
            let x = rng.input("x", shape), b = rng.input("b", [shape.last!])
            gradCheck("addBias(\(shape))", [x, b], seed: rng.next(),
                      engine: { $0.addBias($1[0], $1[1]) }, reference: { refAddBias($0[0], $0[1]) })
        }
    }

    func testSumMean() {
        var rng = RNG(seed: 123)
        let x = rng.input("x", [3, 4, 2], mean: 0.5)
        gradCheck("sum", [x], seed: rng.next(), engine: { $0.sum($1[0]) }, reference: { refSum($0[0]) })
        gradCheck("mean", [x], seed: rng.next(), engine: { $0.mean($1[0]) }, reference: { refMean($0[0]) })
    }

    func testNorm() {
        var rng = RNG(seed: 125)
        let x = rng.input("x", [3, 5], mean: 0.2)
        gradCheck("norm", [x], seed: rng.next(), engine: { $0.norm($1[0]) }, reference: { refNorm($0[0]) })
        // at 0 the gradient is 0 (the kink), not NaN
        let z = Tensor([Float](repeating: 0, count: 4), shape: [4], requiresGrad: true)
        let tape = Tape()
        let n = tape.norm(z)
        tape.backward(n)
        XCTAssertEqual(n.values, [0])
        XCTAssertEqual(z.gradValues, [0, 0, 0, 0])
    }

    // MARK: - Activations

    func testGelu() {
        var rng = RNG(seed: 131)
        // Around 0, around |x| = 3, and random values.
        let fixed: [Float] = [0, 1e-4, -1e-4, 1e-2, -1e-2, 0.3, -0.3, 1, -1,
                              2.9, -2.9, 3, -3, 3.2, -3.2, 4, -4]
        let x = GradInput("x", [3, 13], fixed + rng.normals(39 - fixed.count, std: 1.5))
        gradCheck("gelu", [x], seed: rng.next(), engine: { $0.gelu($1[0]) }, reference: { refMap($0[0], refGelu) })
    }

    func testTanh() {
        var rng = RNG(seed: 132)
        let fixed: [Float] = [0, 1e-3, -1e-3, 0.5, -0.5, 2, -2, 3, -3]
        let x = GradInput("x", [2, 3, 5], fixed + rng.normals(30 - fixed.count, std: 1.5))
        gradCheck("tanh", [x], seed: rng.next(), engine: { $0.tanh($1[0]) }, reference: { refMap($0[0], tanh) })
    }

    // MARK: - LayerNorm

    func testLayerNorm() {
        var rng = RNG(seed: 141)
        for (shape, eps) in [([2, 3, 5], 1e-5), ([4, 16], 1e-12), ([2, 2, 16], 1e-5), ([7, 5], 1e-12)] {
            let C = shape.last!
            let x = rng.input("x", shape, std: 2, mean: 1.5)
            let gamma = GradInput("gamma", [C], rng.normals(C, mean: 1, std: 0.5))
            let beta = rng.input("beta", [C], std: 0.5)
            gradCheck("layerNorm(\(shape),eps=\(eps))", [x, gamma, beta], seed: rng.next(),
                      engine: { $0.layerNorm($1[0], $1[1], $1[2], eps: Float(eps)) },
                      reference: { refLayerNorm($0[0], $0[1], $0[2], eps: eps) })
        }
    }

    func testLayerNormFrozenInputOrFrozenAffine() {
        var rng = RNG(seed: 142)
        let x = rng.input("x", [3, 5], std: 2, mean: -1)
        let gamma = GradInput("gamma", [5], rng.normals(5, mean: 1, std: 0.5))
        let beta = rng.input("beta", [5])
        let xFrozen = GradInput("x", x.shape, x.floats, differentiable: false)
        gradCheck("layerNorm(gamma,beta only)", [xFrozen, gamma, beta], seed: rng.next(),
                  engine: { $0.layerNorm($1[0], $1[1], $1[2], eps: 1e-5) },
                  reference: { refLayerNorm($0[0], $0[1], $0[2], eps: 1e-5) })
        let gFrozen = GradInput("gamma", gamma.shape, gamma.floats, differentiable: false)
        let bFrozen = GradInput("beta", beta.shape, beta.floats, differentiable: false)
        gradCheck("layerNorm(x only)", [x, gFrozen, bFrozen], seed: rng.next(),
                  engine: { $0.layerNorm($1[0], $1[1], $1[2], eps: 1e-5) },
                  reference: { refLayerNorm($0[0], $0[1], $0[2], eps: 1e-5) })
    }

    // MARK: - Softmax

    func testSoftmaxMaskedScaled4D() {
        var rng = RNG(seed: 151)
        let d = rng.distinctDims(3, 2...5)
        let (B, NH, Tq, Tk) = (2, d[0], d[1], 6)
        let drop = -Float.greatestFiniteMagnitude
        // batch 0: keys 4, 5 dropped (padding); batch 1: key 0 dropped, key 2 softly penalised.
        let maskValues: [Float] = [0, 0, 0, 0, drop, drop,
                                   drop, 0, -0.7, 0, 0, 0]
        let x = rng.input("x", [B, NH, Tq, Tk], std: 2)
        let mask = GradInput("mask", [B, Tk], maskValues, differentiable: false)
        let scale: Float = 0.35
        gradCheck("softmax([\(B),\(NH),\(Tq),\(Tk)],scale=\(scale),mask)", [x, mask], seed: rng.next(),
                  engine: { $0.softmax($1[0], scale: scale, additiveMask: $1[1]) },
                  reference: { refSoftmax($0[0], scale: Double(scale), mask: $0[1]) })

        // Dropped keys get exactly zero probability and zero gradient; rows sum to 1.
        let xt = Tensor(x.floats, shape: x.shape, requiresGrad: true)
        let tape = Tape()
        let y = tape.softmax(xt, scale: scale, additiveMask: Tensor(maskValues, shape: [B, Tk]))
        tape.backward(tape.sum(tape.mul(y, Tensor(rng.normals(y.count), shape: y.shape))))
        let yv = y.values, gv = xt.gradValues
        for r in 0..<(y.count / Tk) {
            let b = r / (NH * Tq)
            var s: Float = 0
            for k in 0..<Tk {
                s += yv[r * Tk + k]
                if maskValues[b * Tk + k] == drop {
                    XCTAssertEqual(yv[r * Tk + k], 0, "row \(r) key \(k) should be dropped")
                    XCTAssertEqual(gv[r * Tk + k], 0, "row \(r) key \(k) gradient should be 0")
                }
            }
            // p_k = e_k / sum e: the exp errors cancel between numerator and denominator; the
            // engine's sum of Tk = 6 terms, the divisions and this float sum of 6 leave <= 13u = 7.7e-7
            // (no BLAS: the same on every CPU); 1e-5 is 13x that.
            XCTAssertEqual(s, 1, accuracy: 1e-5, "row \(r) sums to \(s)")
        }
    }

    func testSoftmaxUnmasked() {
        var rng = RNG(seed: 152)
        let x2 = rng.input("x", [4, 7], std: 2)
        gradCheck("softmax([4,7])", [x2], seed: rng.next(),
                  engine: { $0.softmax($1[0]) }, reference: { refSoftmax($0[0], scale: 1, mask: nil) })
        let x3 = rng.input("x", [2, 3, 5], std: 3)
        gradCheck("softmax([2,3,5],scale=0.125)", [x3], seed: rng.next(),
                  engine: { $0.softmax($1[0], scale: 0.125) },
                  reference: { refSoftmax($0[0], scale: 0.125, mask: nil) })
    }

    // MARK: - Indexing

    func testEmbeddingRepeatedIds() {
        var rng = RNG(seed: 161)
        let (V, C) = (6, 4)
        let ids: [Int32] = [3, 0, 3, 5, 3, 1, 0, 5, 2, 3]   // 4 never used, 3 four times
        let table = rng.input("table", [V, C])
        let r = gradCheck("embedding(V=\(V),C=\(C),N=\(ids.count))", [table], seed: rng.next(),
                          engine: { $0.embedding($1[0], ids: ids) },
                          reference: { refGatherRows($0[0], ids) })
        XCTAssertNotNil(r.gradNormRel["table"])
    }

    /// Lookups of the padding id copy its row forward but pass no gradient back to it (as
    /// torch's padding_idx); other repeated ids still scatter-add.
    func testEmbeddingPaddingIndexGetsNoGradient() {
        var rng = RNG(seed: 163)
        let (V, C) = (5, 3)
        let pad: Int32 = 0
        let ids: [Int32] = [2, 0, 0, 4, 2, 1, 0, 2]
        let table = rng.input("table", [V, C])
        let frozen = table.ref   // the reference treats padding lookups as constants (stop-gradient)
        let r = gradCheck("embedding(paddingIndex=\(pad))", [table], seed: rng.next(),
                          engine: { $0.embedding($1[0], ids: ids, paddingIndex: pad) },
                          reference: { r in
                              var out = refGatherRows(r[0], ids)
                              for (i, id) in ids.enumerated() where id == pad {
                                  for c in 0..<C { out.v[i * C + c] = frozen.v[Int(id) * C + c] }
                              }
                              return out
                          })
        XCTAssertNotNil(r.gradNormRel["table"])
        // Directly: the padding row's gradient stays exactly zero.
        let t = Tensor(table.floats, shape: [V, C], requiresGrad: true)
        let tape = Tape()
        tape.backward(tape.sum(tape.embedding(t, ids: ids, paddingIndex: pad)))
        let g = t.gradValues
        XCTAssertEqual(Array(g[0..<C]), [Float](repeating: 0, count: C), "padding row gradient")
        XCTAssertEqual(Array(g[2 * C..<3 * C]), [Float](repeating: 3, count: C), "id 2 is looked up 3 times")
        XCTAssertEqual(Array(g[3 * C..<4 * C]), [Float](repeating: 0, count: C), "id 3 is never looked up")
    }

    func testGatherRows() {
        var rng = RNG(seed: 162)
        let x = rng.input("x", [2, 4, 3])          // viewed as [8, 3]
        let rows: [Int32] = [7, 0, 7, 2, 5, 5, 6]
        gradCheck("gatherRows([2,4,3] as [8,3])", [x], seed: rng.next(),
                  engine: { $0.gatherRows($1[0], rows) }, reference: { refGatherRows($0[0], rows) })
    }

    /// The editor-network helpers: per-column scaling and column slices.
    func testScaleAndSliceColumns() {
        var rng = RNG(seed: 166)
        let x = rng.input("x", [4, 5]), s = rng.input("s", [5])
        gradCheck("scaleColumns([4,5])", [x, s], seed: rng.next(), engine: { $0.scaleColumns($1[0], $1[1]) },
                  reference: { r in Ref([4, 5], (0..<20).map { r[0].v[$0] * r[1].v[$0 % 5] }) })
        gradCheck("sliceColumns([4,5], 1..<4)", [x], seed: rng.next(), engine: { $0.sliceColumns($1[0], 1..<4) },
                  reference: { r in Ref([4, 3], (0..<12).map { r[0].v[($0 / 3) * 5 + 1 + $0 % 3] }) })
    }

    /// replaceRows: replaced rows take v's values and pass their gradient to v only; the
    /// others pass theirs to x. Also through the compositions the site hooks use (patch with a
    /// leaf, scale = replace(gather * factors), noise = replace(gather + noise)).
    func testReplaceRows() {
        var rng = RNG(seed: 165)
        let x = rng.input("x", [2, 4, 3])          // viewed as [8, 3]
        let rows: [Int32] = [6, 1, 3]
        let v = rng.input("v", [3, 3]), f = rng.input("f", [3, 3])
        func refReplace(_ x: Ref, _ v: Ref) -> Ref {
            var out = x
            for (i, r) in rows.enumerated() { for c in 0..<3 { out.v[Int(r) * 3 + c] = v.v[i * 3 + c] } }
            return out
        }
        gradCheck("replaceRows([2,4,3] as [8,3])", [x, v], seed: rng.next(),
                  engine: { $0.replaceRows($1[0], rows, with: $1[1]) }, reference: { refReplace($0[0], $0[1]) })
        gradCheck("replaceRows(x, gather(x) * f)", [x, f], seed: rng.next(),
                  engine: { t, a in t.replaceRows(a[0], rows, with: t.mul(t.gatherRows(a[0], rows), a[1])) },
                  reference: { refReplace($0[0], refMul(refGatherRows($0[0], rows), $0[1])) })
        gradCheck("replaceRows(x, gather(x) + v)", [x, v], seed: rng.next(),
                  engine: { t, a in t.replaceRows(a[0], rows, with: t.add(t.gatherRows(a[0], rows), a[1])) },
                  reference: { refReplace($0[0], refAdd(refGatherRows($0[0], rows), $0[1])) })
    }

    /// Row slices are views sharing the source's gradient at an offset; overlapping slices
    /// accumulate into the same rows.
    func testSliceRowsSharesGradient() {
        var rng = RNG(seed: 164)
        let x = rng.input("x", [5, 2, 3])
        func refSlice(_ r: Ref, _ rows: Range<Int>) -> Ref {
            let inner = r.count / r.shape[0]
            return Ref([rows.count] + r.shape.dropFirst(), Array(r.v[rows.lowerBound * inner ..< rows.upperBound * inner]))
        }
        gradCheck("mul(x[1..<4], x[2..<5]) + x[0..<3]", [x], seed: rng.next(),
                  engine: { t, v in
                      t.add(t.mul(v[0].slice(rows: 1..<4), v[0].slice(rows: 2..<5)), v[0].slice(rows: 0..<3))
                  },
                  reference: { r in refAdd(refMul(refSlice(r[0], 1..<4), refSlice(r[0], 2..<5)), refSlice(r[0], 0..<3)) })
    }

    func testPermute() {
        var rng = RNG(seed: 171)
        let cases: [([Int], [Int])] = [([2, 3, 4, 5], [0, 2, 1, 3]), ([3, 5], [1, 0]), ([2, 3, 4], [2, 0, 1]),
                                       ([2, 3, 4, 5], [0, 2, 3, 1]), ([4, 1, 3], [0, 2, 1])]
        for (shape, perm) in cases {
            let x = rng.input("x", shape)
            gradCheck("permute(\(shape),\(perm))", [x], seed: rng.next(),
                      engine: { $0.permute($1[0], perm) }, reference: { refPermute($0[0], perm) })
        }
    }

    /// Attention-style head split: reshape (a view sharing the input's gradient) -> permute ->
    /// scores that use the permuted tensor twice -> permute back -> reshape of an op output.
    func testReshapePermuteChain() {
        var rng = RNG(seed: 172)
        let (B, T, NH, HS) = (2, 3, 2, 4)
        let x = rng.input("x", [B, T, NH * HS])
        gradCheck("reshape->permute->matmul->permute->reshape", [x], seed: rng.next(),
                  engine: { tape, t in
                      let heads = tape.permute(t[0].reshaped([B, T, NH, HS]), [0, 2, 1, 3])   // [B, NH, T, HS]
                      let scores = tape.matmul(heads, heads, transposeB: true)             // [B, NH, T, T]
                      return tape.permute(scores, [0, 2, 1, 3]).reshaped([B, T, NH * T])
                  },
                  reference: { r in
                      var x = r[0]; x.shape = [B, T, NH, HS]
                      let heads = refPermute(x, [0, 2, 1, 3])
                      var y = refPermute(refMatmul(heads, heads, transposeB: true), [0, 2, 1, 3])
                      y.shape = [B, T, NH * T]
                      return y
                  })
    }

    // MARK: - Dropout

    func testDropoutGradient() {
        var rng = RNG(seed: 181)
        let p: Float = 0.3
        let key = CounterRNG(seed: 7, 3, 1)
        // Values bounded away from 0 so that out == 0 identifies dropped elements.
        let xs = rng.normals(60).map { $0 + ($0 < 0 ? -0.2 : 0.2) }
        let x = GradInput("x", [3, 4, 5], xs)
        let probe = Tape(recording: false).dropout(Tensor(xs, shape: x.shape), p: p, rng: key).values
        let keep = 1 / (1 - Double(p))
        let factors = probe.map { $0 == 0 ? 0 : keep }
        XCTAssertTrue(factors.contains(0) && factors.contains(keep), "mask should drop some and keep some")
        for i in 0..<xs.count {
            XCTAssertEqual(probe[i] == 0, key.uniform(i) < p, "element \(i): mask is uniform(key, i) < p")
        }
        gradCheck("dropout(p=\(p))", [x], seed: rng.next(),
                  engine: { $0.dropout($1[0], p: p, rng: key) },
                  reference: { r in Ref(r[0].shape, (0..<r[0].count).map { r[0].v[$0] * factors[$0] }) })
    }

    func testDropoutMaskStatistics() {
        let n = 100_000, p: Float = 0.3
        let x = Tensor([Float](repeating: 1, count: n), shape: [100, 1000])
        let tape = Tape(recording: false)
        let key = CounterRNG(seed: 42, 5, 2)
        let a = tape.dropout(x, p: p, rng: key).values
        let dropped = a.filter { $0 == 0 }.count
        // Binomial margins, n = 1e5 (the counter RNG is integer arithmetic: the same mask on every
        // CPU): the drop fraction's SE is sqrt(0.3 * 0.7 / n) = 1.4e-3 (0.01 = 6.9 SE); the mean of
        // 0 or 1/(1-p) has variance 1/(1-p) - 1 = 0.43, SE 2.1e-3 (0.02 = 9.7 SE).
        XCTAssertEqual(Double(dropped) / Double(n), Double(p), accuracy: 0.01, "drop fraction")
        let keep = 1 / (1 - p)
        XCTAssertTrue(a.allSatisfy { $0 == 0 || $0 == keep }, "kept values are scaled by 1/(1-p)")
        XCTAssertEqual(a.reduce(0) { $0 + Double($1) } / Double(n), 1, accuracy: 0.02, "inverted dropout keeps the mean")

        let same = tape.dropout(x, p: p, rng: CounterRNG(seed: 42, 5, 2)).values
        XCTAssertEqual(a, same, "same key must give the same mask")
        for other in [CounterRNG(seed: 42, 6, 2), CounterRNG(seed: 42, 5, 3), CounterRNG(seed: 43, 5, 2)] {
            let b = tape.dropout(x, p: p, rng: other).values
            let differ = zip(a, b).filter { ($0.0 == 0) != ($0.1 == 0) }.count
            // Independent masks disagree on a fraction 2p(1-p) = 0.42; SE sqrt(0.42 * 0.58 / n) =
            // 1.6e-3, so 0.02 is 12.8 SE.
            XCTAssertEqual(Double(differ) / Double(n), 2 * 0.3 * 0.7, accuracy: 0.02, "different key, different mask")
        }
        XCTAssertTrue(tape.dropout(x, p: 0, rng: key) === x, "p = 0 is the identity")
    }

    // MARK: - Attention

    /// `Tape.attentionProbs` then `Tape.attentionContext` (what the model runs, with the
    /// `attn.probs` site between them) against the Float64 reference: batch 2 with padded keys
    /// in one sequence, 3 heads, with and without attention dropout, both ops together and the
    /// weights alone. The dropout factors of the reference come from the counter RNG directly
    /// (uniform(key, i) < p).
    func testAttentionWithPaddingAndDropout() {
        var rng = RNG(seed: 231)
        let (B, T, NH, HS) = (2, 5, 3, 3)
        let C = NH * HS
        let pad = -Float.greatestFiniteMagnitude
        let maskValues: [Float] = [0, 0, 0, pad, pad,     // sequence 0: 3 tokens + 2 padding
                                   0, 0, 0, 0, 0]
        let key = CounterRNG(seed: 11, 4, 1)
        for p: Float in [0, 0.3] {
            let q = rng.input("q", [B * T, C]), k = rng.input("k", [B * T, C]), v = rng.input("v", [B * T, C])
            let mask = GradInput("mask", [B, T], maskValues, differentiable: false)
            let keep = 1 / (1 - Double(p))
            let factors: [Double]? = p > 0 ? (0..<B * NH * T * T).map { key.uniform($0) < p ? 0 : keep } : nil
            if let factors {
                XCTAssertTrue(factors.contains(0) && factors.contains(keep), "the mask should drop some and keep some")
            }
            func probs(_ t: Tape, _ x: [Tensor]) -> Tensor {
                t.attentionProbs(q: x[0], k: x[1], batch: B, heads: NH, additiveMask: x[x.count - 1], dropout: p, rng: key)
            }
            let r = gradCheck("attention(B=\(B),T=\(T),NH=\(NH),HS=\(HS),p=\(p))", [q, k, v, mask], seed: rng.next(),
                              engine: { $0.attentionContext(probs($0, $1), v: $1[2], batch: B, heads: NH) },
                              reference: { refAttentionContext(refAttentionProbs($0[0], $0[1], batch: B, heads: NH, mask: $0[3], factors: factors),
                                                               $0[2], batch: B, heads: NH) })
            XCTAssertEqual(r.gradNormRel.count, 3)
            print(String(format: "attention p=%.1f: max error / max |grad|: dq %.2e dk %.2e dv %.2e, forward %.2e", p,
                         r.gradMaxRel["q"] ?? -1, r.gradMaxRel["k"] ?? -1, r.gradMaxRel["v"] ?? -1, r.forwardMaxRel))
            let w = gradCheck("attentionProbs(p=\(p))", [q, k, mask], seed: rng.next(), engine: probs,
                              reference: { refAttentionProbs($0[0], $0[1], batch: B, heads: NH, mask: $0[2], factors: factors) })
            XCTAssertEqual(w.gradNormRel.count, 2)
        }
    }

    /// The weights as a leaf: d(ctx)/d(P') and d(ctx)/d(v) of `attentionContext` alone.
    func testAttentionContext() {
        var rng = RNG(seed: 232)
        let (B, T, NH, HS) = (2, 4, 2, 3)
        let probs = rng.input("probs", [B * T, NH * T]), v = rng.input("v", [B * T, NH * HS])
        let r = gradCheck("attentionContext", [probs, v], seed: rng.next(),
                          engine: { $0.attentionContext($1[0], v: $1[1], batch: B, heads: NH) },
                          reference: { refAttentionContext($0[0], $0[1], batch: B, heads: NH) })
        XCTAssertEqual(r.gradNormRel.count, 2)
    }

    // MARK: - Cross-entropy

    func testCrossEntropyWithIgnoredTargets() {
        var rng = RNG(seed: 191)
        let cases: [([Int], [Int32], Int32)] = [
            ([7, 5], [2, -100, 4, 0, -100, 1, 4], -100),
            ([2, 3, 6], [5, 0, -1, 3, -1, 2], -1),       // 3-D logits, custom ignore index
            ([3, 4], [1, 3, 0], -100),                  // nothing ignored
        ]
        for (shape, targets, ignore) in cases {
            let logits = rng.input("logits", shape, std: 2)
            gradCheck("crossEntropy(\(shape),ignored=\(targets.filter { $0 == ignore }.count))", [logits],
                      seed: rng.next(),
                      engine: { $0.crossEntropy($1[0], targets: targets, ignoreIndex: ignore) },
                      reference: { refCrossEntropy($0[0], targets: targets, ignoreIndex: ignore) })
        }
    }

    /// Cross-entropy against distributions (the KL terms of ROME and MEND).
    func testKLDivergenceFromReference() {
        var rng = RNG(seed: 197)
        let (N, V) = (3, 7)
        let logits = rng.input("logits", [N, V], std: 2)
        // reference log-probabilities: a log-softmax of other logits
        let other = (0..<N * V).map { _ in 2 * rng.normal() }
        var logp = [Float](repeating: 0, count: N * V)
        for n in 0..<N {
            let row = other[n * V..<(n + 1) * V].map(Double.init), m = row.max()!
            let lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            for v in 0..<V { logp[n * V + v] = Float(row[v] - lse) }
        }
        let ref = GradInput("logp", [N, V], logp, differentiable: false)
        gradCheck("klDivergence", [logits, ref], seed: rng.next(),
                  engine: { $0.klDivergence($1[0], from: $1[1]) },
                  reference: { r in
                      var total = 0.0
                      for n in 0..<N {
                          let row = Array(r[0].v[n * V..<(n + 1) * V]), lse = refLogSumExp(row)
                          for v in 0..<V { let lq = row[v] - lse; total += exp(lq) * (lq - r[1].v[n * V + v]) }
                      }
                      return .scalar(total / Double(N))
                  })
    }

    func testCrossEntropyAgainstDistributions() {
        var rng = RNG(seed: 193)
        let (N, V) = (3, 7)
        let logits = rng.input("logits", [N, V], std: 2)
        var q = (0..<N * V).map { _ in Float(rng.uniform()) }
        for n in 0..<N { let s = q[n * V..<(n + 1) * V].reduce(0, +); for v in 0..<V { q[n * V + v] /= s } }
        q[2] = 0                                           // a zero-probability entry
        let qt = GradInput("q", [N, V], q, differentiable: false)
        gradCheck("crossEntropy(distributions)", [logits, qt], seed: rng.next(),
                  engine: { $0.crossEntropy($1[0], distributions: $1[1]) },
                  reference: { r in
                      var total = 0.0
                      for n in 0..<N {
                          let row = Array(r[0].v[n * V..<(n + 1) * V]), lse = refLogSumExp(row)
                          for v in 0..<V { total += r[1].v[n * V + v] * (lse - row[v]) }
                      }
                      return .scalar(total / Double(N))
                  })
    }

    func testCrossEntropyAllIgnored() {
        var rng = RNG(seed: 192)
        let logits = Tensor(rng.normals(12), shape: [3, 4], requiresGrad: true)
        let tape = Tape()
        let loss = tape.crossEntropy(logits, targets: [-100, -100, -100])
        XCTAssertEqual(loss.shape, [])
        XCTAssertEqual(loss.scalar, 0)
        XCTAssertFalse(loss.scalar.isNaN)
        tape.backward(loss)
        XCTAssertTrue(logits.gradValues.allSatisfy { $0 == 0 }, "all-ignored gives zero gradient, got \(logits.gradValues)")
        // Inside a larger graph the all-ignored term contributes nothing (and no NaN).
        let t2 = Tape()
        let total = t2.add(t2.crossEntropy(logits, targets: [-1, -1, -1], ignoreIndex: -1), t2.mean(logits))
        t2.backward(total)
        // each gradient is Float(1/12) (one rounding, <= u = 6e-8 relative) plus the exact 0 of the
        // all-ignored term; 1e-6 is 16u
        assertClose(logits.gradValues, [Float](repeating: 1.0 / 12, count: 12), rtol: 1e-6, atol: 0, "only mean's gradient")
    }

    // MARK: - Composition (accumulation where one tensor feeds several ops)

    func testFanOutAddMul() {
        var rng = RNG(seed: 201)
        let x = rng.input("x", [3, 4])
        gradCheck("add(x, mul(x, x))", [x], seed: rng.next(),
                  engine: { $0.add($1[0], $0.mul($1[0], $1[0])) },
                  reference: { refAdd($0[0], refMul($0[0], $0[0])) })
        // Residual block: layerNorm(x + linear(x)).
        let xr = rng.input("x", [2, 3, 5]), w = rng.input("w", [5, 5], std: 0.5), b = rng.input("b", [5])
        let g = GradInput("gamma", [5], rng.normals(5, mean: 1, std: 0.3)), be = rng.input("beta", [5])
        gradCheck("layerNorm(x + linear(x))", [xr, w, b, g, be], seed: rng.next(),
                  engine: { t, v in t.layerNorm(t.add(v[0], t.linear(v[0], v[1], v[2])), v[3], v[4], eps: 1e-5) },
                  reference: { r in refLayerNorm(refAdd(r[0], refLinear(r[0], r[1], r[2])), r[3], r[4], eps: 1e-5) })
    }

    func testComposedChain() {
        var rng = RNG(seed: 211)
        let (B, T, I, H, V) = (2, 3, 4, 6, 5)
        let targets: [Int32] = [1, 4, -100, 0, 2, 4]
        let inputs = [
            rng.input("x", [B, T, I]), rng.input("w1", [H, I], std: 0.5), rng.input("b1", [H], std: 0.3),
            GradInput("gamma", [H], rng.normals(H, mean: 1, std: 0.3)), rng.input("beta", [H], std: 0.3),
            rng.input("w2", [V, H], std: 0.5),
        ]
        gradCheck("linear->gelu->add(g,mul(g,g))->layerNorm->linear->crossEntropy", inputs, seed: rng.next(),
                  engine: { t, v in
                      let g = t.gelu(t.linear(v[0], v[1], v[2]))
                      let y = t.add(g, t.mul(g, g))
                      let n = t.layerNorm(y, v[3], v[4], eps: 1e-5)
                      return t.crossEntropy(t.linear(n, v[5], nil), targets: targets)
                  },
                  reference: { r in
                      let g = refMap(refLinear(r[0], r[1], r[2]), refGelu)
                      let y = refAdd(g, refMul(g, g))
                      let n = refLayerNorm(y, r[3], r[4], eps: 1e-5)
                      return refCrossEntropy(refLinear(n, r[5], nil), targets: targets, ignoreIndex: -100)
                  })
    }

    /// Gradients accumulate across backward passes (the tape adds into existing buffers).
    func testGradientsAccumulateAcrossBackwardPasses() {
        var rng = RNG(seed: 221)
        let x = Tensor(rng.normals(6), shape: [2, 3], requiresGrad: true)
        let w = Tensor(rng.normals(12), shape: [4, 3], requiresGrad: true)
        func pass() { let t = Tape(); t.backward(t.sum(t.tanh(t.linear(x, w, nil)))) }
        pass()
        let gx1 = x.gradValues, gw1 = w.gradValues
        pass()
        // Exactly 2 g1 on any kernel: both passes run the same products on the same shapes
        // (deterministic), the second adds them to g1 in one rounding (beta = 1), and g1 + g1 = 2 g1
        // is exact in binary floating point. rtol 1e-6 = 16u only admits a few extra roundings.
        assertClose(x.gradValues, gx1.map { 2 * $0 }, rtol: 1e-6, atol: 1e-7, "x grad after two passes")
        assertClose(w.gradValues, gw1.map { 2 * $0 }, rtol: 1e-6, atol: 1e-7, "w grad after two passes")
    }
}
