// The interventions themselves (Interventions/Hooks.swift) on a small random BERT, against
// independent paths through the same model: the `gradient` intervention's rows against the
// parameter gradients the ordinary backward pass accumulates (the position and token-type
// embeddings, which the word-embedding site's gradient reaches through one addition; the FFN
// input bias, the sum of its output's rows), and the interventions that must leave the forward
// pass exactly as it was (capture, a self-patch, scale by 1, zero noise, a gradient leaf).

import Autograd
import BERT
import Interventions
import XCTest

final class InterventionTests: XCTestCase {
    // 2 layers x 32, 4 heads, FFN 64, vocabulary 50; 2 sequences of 8 tokens; labels at 3 positions
    let config = BertConfig(vocabSize: 50, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64, maxPositions: 16)
    let batch = Batch(ids: (10..<26).map { Int32($0) }, batchSize: 2, seqLen: 8)
    let labels: [Int32] = (0..<16).map { [2: 31, 7: 40, 12: 33][$0] ?? -100 }
    let u = Double(Float.ulpOfOne) / 2                 // float32 unit roundoff

    func model() -> BertModel { let m = BertModel(config: config); m.initialize(seed: 7); return m }

    /// The loss's parameter gradients with `iv` in force (the model's gradients start at zero).
    func backward(_ m: BertModel, _ iv: Interventions?) {
        let tape = Tape()
        tape.backward(m.mlmLoss(tape, batch, labels: labels, interventions: iv))
    }

    func testGradientAtASiteIsWhatTheParametersBehindItReceive() throws {
        let m = model(), C = config.hiddenSize, F = config.intermediateSize, T = 8
        let iv = Interventions(), all = (0..<16).map { Int32($0) }
        let dWord = iv.gradient(at: Site(.embWord), rows: all, width: C)
        let dPre = iv.gradient(at: Site(.ffnPre, 1), rows: all, width: F)
        backward(m, iv)
        let g = dWord.gradValues
        XCTAssertTrue(g.contains { $0 != 0 }, "the leaf received no gradient")
        // x = word + position + type: the gradient at the word rows is the one at x, so position
        // p's embedding row gets the rows (0, p) and (1, p), and type 0's row all 16 rows. Sums of
        // n float32 terms in any order differ from each other by at most 2 (n - 1) u sum|g_i|.
        let pos = m.params[BertModule.positionEmbeddings.weight].gradValues
        for p in 0..<T {
            for d in 0..<C {
                let a = Double(g[p * C + d]), b = Double(g[(T + p) * C + d])
                XCTAssertEqual(Double(pos[p * C + d]), a + b, accuracy: 2 * u * (abs(a) + abs(b)), "position \(p), unit \(d)")
            }
        }
        let type0 = m.params[BertModule.tokenTypeEmbeddings.weight].gradValues
        for d in 0..<C {
            let terms = (0..<16).map { Double(g[$0 * C + d]) }
            XCTAssertEqual(Double(type0[d]), terms.reduce(0, +), accuracy: 2 * 15 * u * terms.map(abs).reduce(0, +), "type 0, unit \(d)")
        }
        // the FFN input projection of layer 1: its bias gradient is the sum of the gradient's rows at its output
        let bias = m.params[BertModule.ffnIn(1).bias].gradValues, h = dPre.gradValues
        for j in 0..<F {
            let terms = (0..<16).map { Double(h[$0 * F + j]) }
            XCTAssertEqual(Double(bias[j]), terms.reduce(0, +), accuracy: 2 * 15 * u * terms.map(abs).reduce(0, +), "bias unit \(j)")
        }
    }

    func testInterventionsThatChangeNothingLeaveTheLogitsBitIdentical() throws {
        let m = model()
        func logits(_ iv: Interventions?) -> [Float] {
            let tape = Tape(recording: false)
            return m.mlmLogits(tape, m.encode(tape, batch, interventions: iv)).values
        }
        let plain = logits(nil), all = (0..<16).map { Int32($0) }
        let sites = [Site(.embWord), Site(.emb)] + (0..<config.numLayers).flatMap { l in
            [SiteKind.attnOut, .ffnIn, .ffnPre, .ffnAct, .ffnOut, .block].map { Site($0, l) } }
        let cap = Captures(), civ = Interventions()
        civ.capture(sites, into: cap)
        XCTAssertEqual(logits(civ), plain, "capture")
        for s in sites {
            let D = cap[s]!.lastDim
            let patch = Interventions(); patch.patch(s, rows: all, with: copyRows(cap[s]!, all))
            XCTAssertEqual(logits(patch), plain, "self-patch at \(s)")
            let scale = Interventions(); scale.scale(s, rows: all, factors: Tensor([Float](repeating: 1, count: 16 * D), shape: [16, D]))
            XCTAssertEqual(logits(scale), plain, "scale by 1 at \(s)")
            let noise = Interventions(); noise.addNoise(s, rows: all, noise: Tensor([Float](repeating: 0, count: 16 * D), shape: [16, D]))
            XCTAssertEqual(logits(noise), plain, "zero noise at \(s)")
            let grad = Interventions(); _ = grad.gradient(at: s, rows: all, width: D)
            XCTAssertEqual(logits(grad), plain, "gradient leaf at \(s)")
        }
        // and an intervention that should change them does
        let other = Interventions()
        other.patch(Site(.block, 0), rows: [2], with: copyRows(cap[Site(.block, 0)]!, [5]))
        XCTAssertNotEqual(logits(other), plain)
    }
}
