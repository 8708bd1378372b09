// The site/intervention mechanism and the knowledge evaluators' arithmetic against PyTorch
// (tools/make_probe_reference.py: transformers in float64 on the tiny random BERT of
// blimp_model.h5, 4 probes run one at a time): logit lens, ffn.pre captures, integrated
// gradients, d P / d(word embeddings), knowledge-neuron scaling, causal-trace restoration
// with the fixture's noise and the attention weights (site attn.probs). Probes go through the user-JSONL loader and our tokenizer.

import Autograd
import BERT
import Checkpoint
@testable import Datasets
@testable import Evaluators
import Foundation
import Interventions
import TestSupport
import XCTest

// Tolerances (Tolerances.swift): torch ran in float64, so only droplab's float32 rounding counts.
// The model (hidden 16, FFN 32, 2 layers, V = 4336) has at most 14 product stages of K <= 32 terms
// to the logits and 28 to a gradient: RMS u √(14 * 32 / 6) = 5.2e-7 and u √(28 * 32 / 6) = 7.3e-7
// relative (Tolerance.rms, the worst summation order). A probability moves by δp/p <= 2 max|δz|;
// this random model's logits are within ~2 of each other (P = 8e-5 .. 5e-4 ~ 1/V), so 6 RMS gives
// δp/p <= 2 * 6 * 5.2e-7 * 2 = 1.2e-5 against rtol 1e-4; gradients and attributions (relative L2)
// 7.3e-7 against 1e-4. Measured on four OpenBLAS kernels: <= 3.6e-7 and 9.4e-7.
final class ProbeReferenceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    struct Ref {
        let file: HDF5File
        let P: Int, Tmax: Int
        init() throws {
            file = try HDF5File.open(ProbeReferenceTests.fixtures + "/probe_reference.h5")
            let s = try file.shape(of: "probes/ids")
            P = s[0]; Tmax = s[1]
        }
        func d(_ n: String) throws -> [Double] { try file.readDoubles(n).values }
        func i(_ n: String) throws -> [Int] { try file.readInt64s(n).values.map(Int.init) }
    }

    /// The fixture's probes as a user JSONL file, loaded against the fixture model.
    func setup(_ ref: Ref) throws -> KnowledgeSetup {
        let json = try ref.file.stringAttribute("json", on: "probes")
        let items = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [[String: Any]]
        let lines = try items.map { String(decoding: try JSONSerialization.data(withJSONObject: ["prompt": $0["prompt"]!, "target": $0["target"]!,
                                                                                                   "subject": $0["subject"]!]), as: UTF8.self) }
        let path = NSTemporaryDirectory() + "probe-ref-\(getpid()).jsonl"
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var o = ProbeOptions(); o.probes = path
        return try KnowledgeSetup.load(checkpoint: Self.fixtures + "/blimp_model.h5", probes: o, log: { _ in })
    }

    func testProbeTokenization() throws {
        let ref = try Ref(), k = try setup(ref)
        let ids = try ref.i("probes/ids"), len = try ref.i("probes/length"), mask = try ref.i("probes/mask_pos")
        let s0 = try ref.i("probes/subject_start"), s1 = try ref.i("probes/subject_end"), target = try ref.i("probes/target_id")
        XCTAssertEqual(k.probes.tokenized.count, ref.P)
        for (p, t) in k.probes.tokenized.enumerated() {
            XCTAssertEqual(t.ids.map(Int.init), Array(ids[p * ref.Tmax..<p * ref.Tmax + len[p]]), "probe \(p) ids")
            XCTAssertEqual(t.maskPosition, mask[p]); XCTAssertEqual(t.subject, s0[p]..<s1[p]); XCTAssertEqual(Int(t.targetId), target[p])
        }
    }

    func testLogitLensMatchesTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let L = k.model.config.numLayers
        let per = LogitLens.scores(k, k.probes.tokenized, batch: 3).map { $0.map { $0[0] } }   // batches of 3 and 1: padding is exercised
        let expected = try ref.d("lens/prob"), top1 = try ref.i("lens/top1")
        assertClose(per.flatMap { $0.map(\.prob) }, expected, rtol: 1e-4, atol: 0, "lens P(target) per layer")
        // exact argmax: the smallest gap between two best logits here is 7e-3, 1000x their 6-RMS error 6e-6
        XCTAssertEqual(per.flatMap { $0.map { Int($0.top1) } }, top1, "lens top-1")
        XCTAssertEqual(per[0].count, L + 1)
    }

    /// attn.probs: every query row's weights over the real keys equal torch's attentions, in a
    /// padded batch (padded keys get weight 0).
    func testCapturedAttentionWeightsMatchTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let pb = ProbeBatch(k.probes.tokenized, padId: k.tokenizer.padId)
        let L = k.model.config.numLayers, NH = k.model.config.numHeads, T = pb.T
        let cap = Captures(), iv = Interventions()
        iv.capture((0..<L).map { Site(.attnProbs, $0) }, into: cap)
        _ = ProbeScoring.run(k.model, pb, iv)
        let expected = try ref.d("attention")      // [P, L, NH, Tmax, Tmax]
        var got: [Double] = [], want: [Double] = [], padded: [Float] = []
        for (b, p) in pb.items.enumerated() {
            for l in 0..<L {
                let x = cap[Site(.attnProbs, l)]!
                XCTAssertEqual(x.shape, [ref.P * T, NH * T])
                for h in 0..<NH {
                    for i in p.ids.indices {
                        for j in 0..<T {
                            let v = x.data[(b * T + i) * NH * T + h * T + j]
                            if j < p.ids.count {
                                got.append(Double(v)); want.append(expected[(((b * L + l) * NH + h) * ref.Tmax + i) * ref.Tmax + j])
                            } else { padded.append(v) }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(pb.items.contains { $0.ids.count < T } && !padded.isEmpty, "the batch should be padded")
        // softmax of K = 8 scores after <= 7 stages: δP/P <= 2 * 6 u √(7 * 16 / 6) |s| (|s| ~ 1) = 3e-6,
        // so rtol 1e-4 is 30x; atol 1e-6 only matters for weights < 0.01, whose error is < 3e-8
        assertClose(got, want, rtol: 1e-4, atol: 1e-6, "attention weights")
        XCTAssertEqual(padded.filter { $0 != 0 }.count, 0, "padded keys get weight")
    }

    func testCapturedFFNPreMatchesTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let pb = ProbeBatch(k.probes.tokenized, padId: k.tokenizer.padId)
        let cap = Captures(), iv = Interventions()
        let L = k.model.config.numLayers
        iv.capture((0..<L).map { Site(.ffnPre, $0) }, into: cap)
        _ = ProbeScoring.run(k.model, pb, iv)
        var got: [Float] = []
        for b in 0..<ref.P { for l in 0..<L { got += copyRows(cap[Site(.ffnPre, l)]!, [pb.maskRows[b]]).values } }
        // <= 11 stages of K <= 32: RMS u √(11 * 32 / 6) = 4.6e-7 of RMS |x| ~ 0.5 = 2.3e-7; rtol 1e-4
        // covers |x| > 0.03 at 17 RMS or more, atol 1e-6 the few values nearer 0 at 4.3 RMS
        // (measured <= 8% of the bound on three OpenBLAS kernels)
        assertClose(got, try ref.d("ffn_pre"), rtol: 1e-4, atol: 1e-6, "ffn.pre at [MASK]")
    }

    func testIntegratedGradientsMatchTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let layer = try ref.i("ig/layer")[0], steps = try ref.i("ig/steps")[0]
        let alphas = (1...steps).map { Double($0) / Double(steps) }
        for batch in [64, 5] {                        // 5: one probe per pass (4 alphas + baseline)
            let a = IntegratedGradients.attributions(k, k.probes.tokenized, kind: .ffnPre, layers: [layer], position: .mask, alphas: alphas, batch: batch)
            let expected = try ref.d("ig/attributions"), F = expected.count / ref.P
            for p in 0..<ref.P {
                assertNormClose(a[p].values[0], Array(expected[p * F..<(p + 1) * F]), rtol: 1e-4, "IG attributions probe \(p), batch \(batch)")
            }
            assertClose(a.map(\.prob), try ref.d("ig/f_x"), rtol: 1e-4, atol: 0, "F(x)")
            assertClose(a.map { $0.baseline[0] }, try ref.d("ig/f_baseline"), rtol: 1e-4, atol: 0, "F(baseline)")
        }
    }

    func testGradientWithRespectToWordEmbeddingsMatchesTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let expected = try ref.d("grad_emb"), C = k.model.config.hiddenSize
        for (p, t) in k.probes.tokenized.enumerated() {
            let pb = ProbeBatch([t], padId: k.tokenizer.padId)
            let iv = Interventions()
            let dz = iv.gradient(at: Site(.embWord), rows: t.ids.indices.map { Int32($0) }, width: C)
            let s = ProbeScoring.runWithGradient(k.model, pb, iv)
            let got = dz.gradValues.map { Double($0) * s.prob[0] }      // d p = p d log p
            assertNormClose(got, Array(expected[p * ref.Tmax * C..<(p * ref.Tmax + t.ids.count) * C]), rtol: 1e-4, "dP/d emb.word, probe \(p)")
        }
    }

    func testNeuronScalingMatchesTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let layer = try ref.i("scale/layer")[0], units = try ref.i("scale/units"), factors = try ref.d("scale/factors")
        var got = [Double](repeating: 0, count: ref.P * factors.count)
        for (f, factor) in factors.enumerated() {
            let r = KnowledgeNeurons.scaled(k, k.probes.tokenized, kind: .ffnPre, neurons: units.map { Neuron(layer: layer, unit: $0) },
                                            factor: Float(factor), batch: 64)
            for p in 0..<ref.P { got[p * factors.count + f] = r[p]!.prob }
        }
        assertClose(got, try ref.d("scale/prob"), rtol: 1e-4, atol: 0, "P(target) with units scaled")   // δp/p <= 1.2e-5 (header)
    }

    func testCausalTraceRestorationMatchesTorch() throws {
        let ref = try Ref(), k = try setup(ref)
        let C = k.model.config.hiddenSize, L = k.model.config.numLayers
        let noise = try ref.d("trace/noise")
        let kinds: [(SiteKind, String)] = [(.block, "block"), (.ffnOut, "ffn_out"), (.attnOut, "attn_out")]
        var corrupt: [Double] = []
        for (p, t) in k.probes.tokenized.enumerated() {
            let n = t.subject!.flatMap { pos in (0..<C).map { Float(noise[(p * ref.Tmax + pos) * C + $0]) } }
            let (_, c, restored) = CausalTrace.trace(k, t, kinds: kinds.map(\.0), noise: [n], window: 1, batch: 7)
            corrupt.append(c)
            for (kind, name) in kinds {
                let expected = try ref.d("trace/prob_restored_\(name)")
                for l in 0..<L {
                    let row = Array(expected[(p * L + l) * ref.Tmax..<(p * L + l) * ref.Tmax + t.ids.count])
                    assertClose(restored[kind]![l], row, rtol: 1e-4, atol: 0, "restored \(name) probe \(p) layer \(l)")   // δp/p <= 1.2e-5 (header)
                }
            }
        }
        assertClose(corrupt, try ref.d("trace/prob_corrupt"), rtol: 1e-4, atol: 0, "P(target) corrupted")   // as above
        // a Float64 standard deviation of the 69k float32 embedding values on both sides: ~u64 √n =
        // 3e-14 relative (measured 2.6e-15), far inside 1e-6
        XCTAssertEqual(CausalTrace.embeddingStd(k.model), try ref.d("trace/sigma")[0], accuracy: 1e-6)
    }

    /// Patching every site of a run with its own captures changes no bit of the logits, and
    /// an empty set of interventions is the plain forward pass.
    func testSelfPatchIsBitIdentical() throws {
        let ref = try Ref(), k = try setup(ref)
        let pb = ProbeBatch(k.probes.tokenized, padId: k.tokenizer.padId)
        let L = k.model.config.numLayers
        func logits(_ iv: Interventions?) -> [Float] {
            let tape = Tape(recording: false)
            return k.model.mlmLogits(tape, k.model.encode(tape, pb.batch, interventions: iv)).values
        }
        let plain = logits(nil)
        XCTAssertEqual(logits(Interventions()), plain)
        let sites = [Site(.embWord), Site(.emb)] + (0..<L).flatMap { l in
            [SiteKind.attnProbs, .attnHeads, .attnOut, .ffnIn, .ffnPre, .ffnAct, .ffnOut, .block].map { Site($0, l) } }
        let cap = Captures(), civ = Interventions()
        civ.capture(sites, into: cap)
        XCTAssertEqual(logits(civ), plain)
        let iv = Interventions()
        let all = (0..<pb.batch.ids.count).map(Int32.init)
        for s in sites { iv.patch(s, rows: all, with: copyRows(cap[s]!, all)) }
        XCTAssertEqual(logits(iv), plain, "self-patched logits differ")
        // and a patch from another run does change them
        let other = Interventions()
        other.patch(Site(.block, 0), rows: [pb.maskRows[0]], with: copyRows(cap[Site(.block, 0)]!, [pb.maskRows[1]]))
        XCTAssertNotEqual(logits(other), plain)
    }
}
