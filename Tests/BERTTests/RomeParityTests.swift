// Parity of droplab's ROME and MEMIT with the same algorithm written out in PyTorch, float64, by
// tools/make_rome_reference.py, on a random 3-layer BERT and token-level cases: the key
// covariances, the keys, the value optimisation (12 Adam steps of NLL + KL + norm penalty, with
// the clamp biting), ROME's rank-one update and MEMIT's two-layer update.
//
// Tolerances. A key (ffn.act of layer <= 1 at one token, averaged over prompts) passes at most
// 2 layers x 12 float32 stages, each a reduction of <= 64 terms: first-order relative error
// B = 24 γ_64 = 9.2e-5 (Tolerance.float32Bound); the covariance, a Float64 sum of products of two
// keys, 2B. The value optimisation: each step's gradient has relative error <= e = 28 γ_64 = 1.1e-4
// (the forward and backward stages from the edited layer to the loss; EditParityTests), which
// perturbs Adam's normalised step m / sqrt(v) by at most 2e (through m and through v) of its size;
// over S = 12 steps the errors add to at most 2 S e = 2.6e-3 of |delta| to first order (the clamp
// is a contraction and adds none). ROME's update is computed here from the fixture's own float32
// delta, key and Float64 covariance, so only Float64 rounding times cond(C) <= 4e4 (1e-11) and the
// final rounding to float32 (u = 6e-8) separate the two: rtol 1e-6. MEMIT's update solves
// (lambda C + K^T K) X = K^T with cond up to 4e4 (the fixture records it), but the fixture's own
// float32 rerun of it lands 6.4e-7 from float64 (it refuses a fixture where that exceeds 1e-3):
// errors in the keys are not amplified much, and droplab's keys (relative error <= B) give at most
// about 10 B = 1e-3.

import Autograd
import BERT
@testable import Datasets
@testable import Evaluators
import Foundation
import Interventions
import TestSupport
import XCTest

final class RomeParityTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/rome_reference.h5").path

    /// The fixture's model (frozen), cases and settings.
    struct Fixture {
        struct Settings: Decodable {
            let layer: Int, memit_layers: [Int], steps: Int, lr: Float, kl_factor: Float, weight_decay: Float, clamp: Float, lambda_: Double
        }
        let ref: ReferenceParityTests.Reference
        let model: BertModel
        let settings: Settings
        let cases: [PreparedCase]

        init() throws {
            ref = try ReferenceParityTests.Reference(path: RomeParityTests.path)
            model = try ref.model()
            model.params.setTrainable { _ in false }
            settings = try JSONDecoder().decode(Settings.self, from: Data(try ref.file.stringAttribute("settings").utf8))
            let file = ref.file
            let n = try file.readFloats("keys/0").shape[0]
            cases = try (0..<n).map { i in
                let g = "cases/\(i)/"
                let newId = Int32(try file.readInt64s(g + "new_id").values[0])
                func probe(_ ids: [Int64], subjectLast: Int64, mask: Int64) -> TokenizedProbe {
                    TokenizedProbe(index: i, ids: ids.filter { $0 >= 0 }.map { Int32($0) }, maskPosition: Int(mask),
                                   subject: Int(subjectLast)..<Int(subjectLast) + 1, targetId: newId)
                }
                let (shape, rewrite) = try file.readInt64s(g + "rewrite")
                let last = try file.readInt64s(g + "rewrite_subject_last").values, mask = try file.readInt64s(g + "rewrite_mask").values
                let essence = probe(try file.readInt64s(g + "essence").values, subjectLast: try file.readInt64s(g + "essence_subject_last").values[0],
                                    mask: try file.readInt64s(g + "essence_mask").values[0])
                return PreparedCase(source: EditCase(id: i, subject: "", prompt: "", paraphrase: "", neighbourhood: "", trueTarget: "", newTarget: ""),
                                    trueId: 0, newId: newId,
                                    rewrite: (0..<shape[0]).map { p in probe(Array(rewrite[(p * shape[1])..<((p + 1) * shape[1])]), subjectLast: last[p], mask: mask[p]) },
                                    essence: essence, checks: [])
            }
        }

        var options: RomeOptions {
            var o = RomeOptions()
            o.steps = settings.steps; o.lr = settings.lr; o.klFactor = settings.kl_factor; o.weightDecay = settings.weight_decay
            o.clampNorm = settings.clamp; o.stopLoss = nil; o.objective = "rome"
            return o
        }
        func rows(_ name: String) throws -> [[Float]] {
            let (shape, v) = try ref.file.readFloats(name)
            return (0..<shape[0]).map { Array(v[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
        }
        func covariance(_ l: Int) throws -> [Double] { try ref.doubles("cov/\(l)") }
    }

    static let keyBound = Tolerance.float32Bound(depth: 24, reduction: 64)

    func testROMEMatchesTorchReference() throws {
        let fx = try Fixture()
        let layer = fx.settings.layer, pad: Int32 = 0
        // the covariances over the fixture's sequences
        let b = fx.ref.batch
        let sequences = (0..<b.batchSize).map { r in (0..<b.seqLen).filter { b.attentionMask[r * b.seqLen + $0] == 1 }.map { b.ids[r * b.seqLen + $0] } }
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("droplab-rome-parity-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let covs = try Rome.covariance(fx.model, layers: [0, 1], sequences: sequences, cacheKey: "parity", cacheDir: cache, batch: 64, pad: pad, log: { _ in })
        for l in [0, 1] {
            let e = assertNormClose(covs[l]!, try fx.covariance(l), rtol: 2 * Self.keyBound, "covariance at layer \(l)")
            print("parity: ROME covariance at layer \(l): relative error \(e)")
        }
        // keys
        for l in [0, 1] {
            for (i, c) in fx.cases.enumerated() {
                assertNormClose(Rome.meanAtSubject(fx.model, c, Site(.ffnAct, l), nil, pad: pad), try fx.rows("keys/\(l)")[i], rtol: Self.keyBound, "key \(i) at \(l)")
            }
        }
        // the value optimisation
        let solved = try Rome.optimiseValues(fx.model, vocab: (0..<fx.ref.config.vocabSize).map { "t\($0)" }, fx.cases, layer: layer, base: nil,
                                             o: fx.options, pad: pad)
        let delta = try fx.ref.doubles("delta"), C = fx.ref.config.hiddenSize, S = fx.settings.steps
        let losses = try fx.ref.doubles("losses"), n = fx.cases.count
        let deltaTolerance = 2 * Double(S) * Tolerance.float32Bound(depth: 28, reduction: 64)
        XCTAssertLessThan(try fx.ref.doubles("float32_gap")[0], deltaTolerance / 10, "the fixture is well conditioned")
        var worst = 0.0
        for (i, s) in solved.enumerated() {
            worst = max(worst, assertNormClose(s.delta, Array(delta[(i * C)..<((i + 1) * C)]), rtol: deltaTolerance, "delta of case \(i)"))
            assertNormClose(s.value, try fx.ref.doubles("values")[(i * C)..<((i + 1) * C)].map { $0 }, rtol: Self.keyBound, "value of case \(i)")
            // the last step's loss (measured before its update)
            XCTAssertEqual(s.loss, losses[(S - 1) * n + i], accuracy: deltaTolerance * losses[(S - 1) * n + i], "loss of case \(i)")
            XCTAssertLessThan(losses[(S - 1) * n + i], losses[i] - 0.5, "the optimisation moved case \(i)")
        }
        print("parity: ROME value optimisation, worst relative delta error \(worst) (bound \(deltaTolerance))")
        // the rank-one update, from the fixture's float32 delta and key
        let delta32 = try fx.rows("delta32"), keys = try fx.rows("keys/\(layer)"), cov = try fx.covariance(layer)
        let dW = try fx.ref.doubles("rome/dW"), F = fx.ref.config.intermediateSize
        for i in 0..<n {
            let got = try Rome.rankOneUpdate(delta: delta32[i], key: keys[i], covariance: cov)
            assertNormClose(got, Array(dW[(i * C * F)..<((i + 1) * C * F)]), rtol: 1e-6, "ROME update of case \(i)")
        }
    }

    func testMEMITMatchesTorchReference() throws {
        let fx = try Fixture()
        let layers = fx.settings.memit_layers, lambda = fx.settings.lambda_, pad: Int32 = 0
        XCTAssertEqual(layers.last, fx.settings.layer)
        let covs = Dictionary(uniqueKeysWithValues: try layers.map { ($0, try fx.covariance($0)) })
        XCTAssertLessThan(try fx.ref.doubles("memit/float32_gap")[0], 1e-3 / 10, "the fixture's MEMIT is well conditioned")
        let edit = try Rome.memitEdit(fx.model, pad: pad, fx.cases, targets: try fx.rows("memit/targets"), layers: layers, covariances: covs, lambda: lambda)
        var worst = 0.0
        for l in layers {
            worst = max(worst, assertNormClose(edit.params[Rome.weightName(l)].values, try fx.ref.doubles("memit/dW/\(l)"), rtol: 1e-3, "MEMIT update at layer \(l)"))
        }
        let kept = try fx.ref.doubles("memit/kept")
        for (j, l) in layers.enumerated() {
            XCTAssertEqual(try Rome.keptShare(fx.model, pad: pad, fx.cases, layer: l, covariance: covs[l]!, lambda: lambda), kept[j],
                           accuracy: 1e-3 * kept[j], "kept share at layer \(l)")
        }
        print("parity: MEMIT update over layers \(layers), worst relative error \(worst); kept shares \(kept)")
    }
}
