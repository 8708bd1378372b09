// Parity with Hugging Face transformers (torch CPU): the fixture written by
// tools/make_reference.py holds a tiny random BertForMaskedLM, a padded batch with masked
// labels, logits, loss, every gradient, hidden states, 5 AdamW steps and a QA head.

import Autograd
import BERT
import Checkpoint
import Interventions
import Foundation
import TestSupport
import Training
import XCTest

// Tolerances (Tolerances.swift; u = 2^-24 = 6e-8). droplab and torch each compute in float32, in
// their own summation orders. The model has d = 6 float32 product stages per layer (Q/K/V, Q K^T,
// P V, attention output, FFN in, FFN out), 2 more in the MLM head: 14 to the logits, 28 to the
// gradients, each a reduction of K <= 64 terms (hidden 32, FFN 64, T = 13, 39 tokens) of zero-mean
// data. One implementation's RMS error is u √(d K / 6) (Tolerance.rms; the worst summation order,
// so it holds for any kernel): 6.7e-7 after layer 2, 7.3e-7 at the logits, 1e-6 for gradients,
// relative to the RMS of the values; two implementations differ by √2 times that, one element by
// at most ~6 times the RMS. Worst case (Tolerance.float32Bound): 28 γ_64 = 1.1e-4 for gradients.
// Measured on the OpenBLAS Cooperlake, SkylakeX, Haswell and Prescott kernels: hidden states
// <= 1.3e-6, logits <= 2.4e-6 (absolute), gradients <= 1.1e-6 (relative L2).
final class ReferenceParityTests: XCTestCase {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/bert_reference.h5").path

    struct Reference {
        let file: HDF5File
        let config: BertConfig
        let batch: Batch
        let labels: [Int32]
        /// The model, batch and labels of `path` (bert_reference.h5, or a fixture with the same layout).
        init(path: String = ReferenceParityTests.path) throws {
            let file = try HDF5File.open(path)
            self.file = file
            config = try JSONDecoder().decode(BertConfig.self, from: Data(try file.stringAttribute("config").utf8))
            func ints(_ n: String) throws -> ([Int], [Int32]) {
                let (s, v) = try file.readInt64s("inputs/" + n); return (s, v.map { Int32($0) })
            }
            let (shape, ids) = try ints("input_ids")
            batch = Batch(ids: ids, typeIds: try ints("token_type_ids").1, attentionMask: try ints("attention_mask").1,
                          batchSize: shape[0], seqLen: shape[1])
            labels = try ints("labels").1
        }
        func model(head: Head = .mlm) throws -> BertModel {
            let m = BertModel(config: config, head: head)
            for e in m.params.entries {
                let src = e.name.hasPrefix("qa_") ? "qa/params/" + e.name : "params/" + e.name
                try file.readFloats(src, into: m.params[e.name].buffer, shape: e.shape)
            }
            return m
        }
        func floats(_ n: String) throws -> [Float] { try file.readFloats(n).values }
        func doubles(_ n: String) throws -> [Double] { try file.readDoubles(n).values }
    }

    func testForwardLogitsLossAndHiddenStates() throws {
        let ref = try Reference()
        let model = try ref.model()
        let tape = Tape(recording: false)
        var hidden: [Int: [Float]] = [:]
        let iv = Interventions()
        iv.add(Site(.emb)) { x, _ in hidden[0] = x.values; return x }
        for l in 0..<ref.config.numLayers { iv.add(Site(.block, l)) { x, _ in hidden[l + 1] = x.values; return x } }
        let h = model.encode(tape, ref.batch, interventions: iv)
        let logits = model.mlmLogits(tape, h)
        // LayerNorm outputs (RMS 1, |h| <= 4): layer 2's 12 stages give RMS √2 * 6.7e-7 = 9.5e-7,
        // 6 RMS = 5.7e-6 within 1e-5 (the embeddings, a LayerNorm of 3-term sums, much less)
        assertClose(hidden[0]!, try ref.floats("hidden/embeddings"), rtol: 0, atol: 1e-5, "embeddings")
        for l in 0..<ref.config.numLayers {
            assertClose(hidden[l + 1]!, try ref.floats("hidden/layer.\(l)"), rtol: 0, atol: 1e-5, "layer \(l)")
        }
        let expected = try ref.floats("logits")
        // |z| <= 3.6: 6 RMS = 6 * √2 * 7.3e-7 * 3.6 = 2.2e-5, 4.5x below 1e-4
        assertClose(logits.values, expected, rtol: 0, atol: 1e-4, "logits")
        print("parity: max |logit diff| = \(difference(logits.values, expected, rtol: 0, atol: 0).maxAbs)")
        let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels).scalar
        let refLoss = try ref.doubles("loss")[0]
        // a mean over 12 labelled positions of cross-entropies that move by ~√2 δz (δz RMS √2 *
        // 7.3e-7 * RMS |z| 1.2 = 1.2e-6): RMS 5e-7 nats, 1e-7 of the 4.6-nat loss; 1e-5 is 100x
        XCTAssertEqual(Double(loss), refLoss, accuracy: 1e-5 * refLoss, "loss")
        print("parity: loss \(loss) vs \(refLoss), rel diff \(abs(Double(loss) - refLoss) / refLoss)")
    }

    func testEveryParameterGradient() throws {
        let ref = try Reference()
        let model = try ref.model()
        let tape = Tape()
        tape.backward(model.mlmLoss(tape, ref.batch, labels: ref.labels))
        var worst = 0.0
        for e in model.params.entries {
            // rtol 1e-3: 4.7x the worst case of two implementations, 2 * 28 γ_64 = 2.1e-4.
            // atol: key-bias gradients are exactly zero in exact arithmetic (softmax is shift-invariant),
            // so both sides hold the rounding of a cancelling sum of ~13 * 39 = 507 terms whose mass is
            // that of the query-bias gradient (norm 0.05): RMS u √(507/6) * 0.05 = 3e-8 a side; 1e-6 is
            // 25x their difference (measured 1.2e-8)
            let rel = assertNormClose(model.params[e.name].gradValues, try ref.floats("grads/" + e.name), rtol: 1e-3,
                                      atol: 1e-6, e.name)
            if !e.name.hasSuffix("key.bias") { worst = max(worst, rel) }
        }
        print("parity: worst relative gradient error \(worst) over \(model.params.entries.count) tensors (key biases excluded: exactly zero)")
    }

    func testFiveAdamWStepsWithClipping() throws {
        let ref = try Reference()
        let model = try ref.model()
        let g = "adamw"
        let cfg = AdamWConfig(beta1: Float(try ref.file.doubleAttribute("beta1", on: g)),
                              beta2: Float(try ref.file.doubleAttribute("beta2", on: g)),
                              eps: Float(try ref.file.doubleAttribute("eps", on: g)),
                              weightDecay: Float(try ref.file.doubleAttribute("weight_decay", on: g)),
                              maxGradNorm: Float(try ref.file.doubleAttribute("max_grad_norm", on: g)))
        let lr = Float(try ref.file.doubleAttribute("lr", on: g))
        let opt = AdamW(model.params, config: cfg)
        let refLosses = try ref.doubles("adamw/losses"), refNorms = try ref.doubles("adamw/grad_norms")
        var losses: [Double] = [], norms: [Double] = []
        for _ in 0..<5 {
            let tape = Tape()
            let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels)
            losses.append(Double(loss.scalar))
            model.params.zeroGrads()
            tape.backward(loss)
            norms.append(opt.update(lr: lr))
        }
        losses.append(Double(model.mlmLoss(Tape(recording: false), ref.batch, labels: ref.labels).scalar))
        // Losses: the forward's ~1e-7 relative (testForwardLogitsLossAndHiddenStates) plus ∇L·δw for the
        // parameters' differences (below), random in direction: ~||∇L|| ||δw|| / √N (N ~ 2e4): < 1e-6.
        assertClose(losses, refLosses, rtol: 1e-5, atol: 0, "AdamW step losses")
        // A norm's relative error is at most the gradients' (RMS √2 * 1e-6): 1e-4 is 70x.
        assertClose(norms, refNorms, rtol: 1e-4, atol: 0, "pre-clip gradient norms")
        // Parameters: Adam's step lr m/(sqrt(v) + eps) is scale-free where |g| >> eps, so gradients equal
        // to ~1e-6 relative give steps equal to ~lr * 1e-6: after 5 steps 1e-8, far below 1e-4 |w| (|w| >=
        // 0.5 per tensor). Where a gradient is rounding noise ν the step is lr ν / eps instead: the key
        // biases (gradient exactly 0 in exact arithmetic, see testEveryParameterGradient) move by up to
        // lr ν / eps a step in each implementation independently, so they are compared to the bound
        // 2 * 5 steps * lr * ν / eps with ν <= 1e-6 (their gradient norm, bounded there) = 0.02. They
        // influence nothing (softmax is shift-invariant); their values after 5 steps are noise (measured
        // 1.7e-5 to 3.6e-5 relative on three OpenBLAS kernels, where 1e-4 relative left 2.8x).
        let keyBiasBound = 2 * 5 * Double(lr) * 1e-6 / Double(cfg.eps)
        for e in model.params.entries {
            if e.name.hasSuffix("key.bias") {
                assertNormClose(model.params[e.name].values, try ref.floats("adamw/params/" + e.name), rtol: 0, atol: keyBiasBound,
                                "after 5 steps: \(e.name)")
            } else {
                assertNormClose(model.params[e.name].values, try ref.floats("adamw/params/" + e.name), rtol: 1e-4, "after 5 steps: \(e.name)")
            }
        }
        print("parity: AdamW losses \(losses) max rel diff \(difference(losses, refLosses, rtol: 0, atol: 0).maxRel)")
    }

    func testQuestionAnsweringHead() throws {
        let ref = try Reference()
        let model = try ref.model(head: .qa)
        let tape = Tape()
        let (s, e) = model.qaLogits(tape, model.encode(tape, ref.batch), batchSize: ref.batch.batchSize)
        // |z| <= 1.4, 13 stages: 6 RMS = 6 * √2 * 7e-7 * 1.4 = 8e-6, 12x below 1e-4
        assertClose(s.values, try ref.floats("qa/start_logits"), rtol: 0, atol: 1e-4, "start logits")
        assertClose(e.values, try ref.floats("qa/end_logits"), rtol: 0, atol: 1e-4, "end logits")
        let starts = try ref.file.readInt64s("qa/start_positions").values.map { Int32($0) }
        let ends = try ref.file.readInt64s("qa/end_positions").values.map { Int32($0) }
        let t2 = Tape()
        let loss = model.qaLoss(t2, ref.batch, start: starts, end: ends)
        // a mean of 6 cross-entropies over 13 positions, each moved by ~√2 δz (δz RMS √2 * 7e-7 * 0.7):
        // RMS 6e-7 nats, 6 RMS = 3.6e-6 within 1e-5
        XCTAssertEqual(Double(loss.scalar), try ref.doubles("qa/loss")[0], accuracy: 1e-5, "QA loss")
        t2.backward(loss)
        for name in ["qa_outputs.weight", "qa_outputs.bias", "bert.encoder.layer.1.output.dense.weight"] {
            // the qa_outputs.bias gradient is exactly zero: softmax-minus-onehot sums to zero over positions;
            // computed, a sum of 39 terms (|p - y| <= 1, partial sums <= 1) over B = 3: RMS u √39 / √3 / 3 =
            // 7e-8 a side, so atol 1e-6 is 7 RMS of the difference's norm (2 elements); rtol 1e-3 as above
            assertNormClose(model.params[name].gradValues, try ref.floats("qa/grads/" + name), rtol: 1e-3, atol: 1e-6, name)
        }
    }

    /// One step with hidden and attention dropout on: tools/make_dropout_reference.py ran
    /// transformers with droplab's masks (its port of the counter RNG). droplab's masks equal
    /// the stored ones bit for bit, and the loss and every gradient match torch's.
    func testDropoutStepMatchesTorchWithTheSameMasks() throws {
        let ref = try Reference()
        let file = try HDF5File.open(URL(fileURLWithPath: Self.path).deletingLastPathComponent()
            .appendingPathComponent("bert_dropout_reference.h5").path)
        let seed = UInt64(try file.doubleAttribute("seed")), step = UInt64(try file.doubleAttribute("step"))
        let hidden = Float(try file.doubleAttribute("hidden_dropout")), attention = Float(try file.doubleAttribute("attention_dropout"))
        // the masks transformers used are droplab's: each site's mask regenerated through Tape.dropout of ones
        let sites = try file.datasetNames(in: "masks").compactMap(Int.init).sorted()
        let expectedSites: [Int] = (0..<ref.config.numLayers).flatMap { (l: Int) -> [Int] in [16 * l + 1, 16 * l + 2, 16 * l + 3] }
        XCTAssertEqual(sites, [0] + expectedSites)
        for site in sites {
            let stored = try file.readFloats("masks/\(site)").values
            let p = site % 16 == 1 ? attention : hidden
            let ours = Tape(recording: false).dropout(Tensor([Float](repeating: 1, count: stored.count), shape: [stored.count]),
                                                      p: p, rng: CounterRNG(seed: seed, step, UInt64(site))).values
            XCTAssertEqual(ours, stored, "mask of site \(site)")
        }
        let model = try ref.model()
        let tape = Tape()
        let loss = model.mlmLoss(tape, ref.batch, labels: ref.labels,
                                 dropout: DropoutPlan(hidden: hidden, attention: attention, seed: seed, step: step))
        let refLoss = try file.readDoubles("loss").values[0]
        // tolerances as without dropout: the masks are exact (0 or 1/(1-p)), one more rounding a site
        XCTAssertEqual(Double(loss.scalar), refLoss, accuracy: 1e-5 * refLoss, "loss with dropout")
        tape.backward(loss)
        var worst = 0.0
        for e in model.params.entries {
            let rel = assertNormClose(model.params[e.name].gradValues, try file.readFloats("grads/" + e.name).values, rtol: 1e-3,
                                      atol: 1e-6, "dropout: \(e.name)")
            if !e.name.hasSuffix("key.bias") { worst = max(worst, rel) }
        }
        print("dropout parity: loss \(loss.scalar) vs \(refLoss) (rel \(abs(Double(loss.scalar) - refLoss) / refLoss)), "
              + "worst relative gradient error \(worst)")
    }
}
