// ROME and MEMIT on the tiny model that knows its facts (FactModel): CounterFact-format cases
// are written from its facts ("dog lived in" -> france, new object another country), the
// corpus for the key statistics is its own fact sentences.

import Autograd
import BERT
import Checkpoint
@testable import Datasets
@testable import Evaluators
import Foundation
import Interventions
import TestSupport
@testable import Viz
import XCTest

final class RomeTests: XCTestCase {
    /// A data root with counterfact/counterfact-edit.json and a corpus file; returns (data dir, corpus).
    static let data: (dir: String, corpus: String) = {
        let dir = NSTemporaryDirectory() + "droplab-rome-data-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir + "/counterfact", withIntermediateDirectories: true)
        let facts = FactModel.probeLines().map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        let lives = facts.filter { $0["relation"] as! String == "lives" && $0["pattern"] as! Int == 0 }
        let object = Dictionary(uniqueKeysWithValues: lives.map { ($0["subject"] as! String, $0["target"] as! String) })
        var cases: [[String: Any]] = []
        for (i, s) in FactModel.subjects.enumerated() {
            let y = object[s]!
            let new = FactModel.countries.first { $0 != y && object.values.contains($0) }!
            guard let neighbour = FactModel.subjects.first(where: { $0 != s && object[$0] == y }) else { continue }
            cases.append(["case_id": i, "subject": s, "prompt": "\(s) lived in", "rephrase_prompt": "the home of \(s) is",
                          "locality_prompt": "\(neighbour) lived in", "locality_ground_truth": y, "ground_truth": y, "target_new": new])
        }
        try! JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: dir + "/counterfact/counterfact-edit.json"))
        let text = facts.map { ($0["prompt"] as! String).replacingOccurrences(of: "[MASK]", with: $0["target"] as! String) }
        try! (Array(repeating: text.joined(separator: " "), count: 4).joined(separator: "\n\n") + "\n")
            .write(toFile: dir + "/corpus.txt", atomically: true, encoding: .utf8)
        return (dir, dir + "/corpus.txt")
    }()

    func options() -> RomeOptions {
        var o = RomeOptions()
        o.dataDir = Self.data.dir; o.corpus = [Self.data.corpus]; o.covSamples = 200; o.covSeqLen = 16; o.prefixes = 2
        o.prefixWords = 3; o.cacheDir = Self.data.dir + "/cache"; o.limit = nil
        return o
    }

    func testRomeFlipsFactsAndSparesNeighbours() throws {
        let (r, records) = try Rome.run(checkpoint: FactModel.trained.checkpoint, options: options(), log: { print($0) })
        print("rome: layer \(r.layer) (trace \(r.layerTrace ?? [])), \(r.cases) cases, before \(r.before), after \(r.after)")
        XCTAssertGreaterThanOrEqual(r.cases, 8)
        XCTAssertEqual(r.before.efficacy, 0)                 // the model knows the true objects
        // This model keeps its facts mostly in attention: restoring the first layer's FFN output at
        // the subject recovers ~6% of the corrupted effect (the block output there: 58%); with
        // ROME's penalty the rank-one FFN edit still flips most facts (12 of 13; with the squared
        // penalty about half).
        XCTAssertGreaterThanOrEqual(r.after.efficacy, 0.5)
        XCTAssertGreaterThan(r.after.efficacyMagnitude, r.before.efficacyMagnitude + 0.5)
        // Specificity is the model's, not ROME's: the update moves another subject's value by
        // (u.k_n)/(u.k*) of the edited one's, and this toy model's 16 one-word subjects have close
        // keys at layer 0 (neighbourhood 5 of 13 kept). What ROME guarantees is that the key it
        // inserts at moves most: the edited prompt's gap P(new) - P(true) moves more than the
        // neighbour's P(true) - P(new) does.
        XCTAssertGreaterThan(r.after.efficacyMagnitude - r.before.efficacyMagnitude,
                             r.before.neighbourhoodMagnitude - r.after.neighbourhoodMagnitude)
        XCTAssertEqual(records.count, r.cases)
    }

    /// The explorer's audit finds a ROME edit without being told where: ROME edits one fact of
    /// the fact model (`--save-edited` writes edited.h5 beside the Hugging Face files), explore
    /// compares the model with its edited copy over every probe of the model's facts (80 prompts:
    /// 16 subjects x 5 patterns), and the prompt whose target moved most is one of the edited
    /// fact's. Not a tolerance: an order. (The issue asks for a `mini` facts-corpus model; the fact
    /// model is the one model a test can use, and its one-word subjects share keys, so the edit
    /// spills over to other subjects: the order is the harder test for it.)
    func testAuditRanksTheEditedFactFirst() throws {
        let dir = try temporaryDirectory(self)
        var o = options(); o.limit = 1; o.saveEdited = dir + "/edited"
        let (r, records) = try Rome.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { _ in })
        XCTAssertEqual(r.cases, 1)
        let edit = try XCTUnwrap(records.first)
        var e = ExploreOptions(); e.source.probes = FactModel.trained.probes; e.maxPrompts = 100
        let page = try Explorer.run(checkpoints: [FactModel.trained.checkpoint, dir + "/edited/edited.h5"], options: e, log: { _ in })
        XCTAssertEqual(page.prompts.count, 80)
        let audit = try XCTUnwrap(page.audit)
        XCTAssertEqual(audit.changed.map(\.name), [BertModule.ffnOut(r.layer).weight], "ROME changes one matrix")
        let moved = page.moved
        XCTAssertEqual(moved.count, 80)
        let ranks = moved.enumerated().filter { page.prompts[$0.element.prompt].subject == edit.subject && page.prompts[$0.element.prompt].relation == "lives" }
            .map { $0.offset + 1 }
        print("audit: ROME edited \(edit.subject) lives in \(edit.trueTarget) -> \(edit.newTarget) at layer \(r.layer); its 3 probes rank \(ranks) of 80 "
              + "by |log P change|: " + moved.prefix(5).map { "\(page.prompts[$0.prompt].prompt) \(String(format: "%.2f", $0.change))" }.joined(separator: "; "))
        XCTAssertEqual(ranks.count, 3)
        XCTAssertEqual(ranks.first, 1, "the prompt that moved most is the edited fact's")
        XCTAssertLessThan(moved[0].change, 0, "the edited fact's true object lost probability")
        // the page lists them in that order
        let html = try page.html()
        XCTAssertTrue(html.contains("<table data-audit=\"moved\">"))
        let first = try XCTUnwrap(html.range(of: "<tr><td>1</td><td><a href=\"#prompt-\(moved[0].prompt + 1)\">"))
        XCTAssertTrue(html[first.upperBound...].hasPrefix(page.prompts[moved[0].prompt].prompt))   // no character here that HTML escapes
    }

    /// The update is rank one (power iteration on dW^T dW: all its energy in one direction),
    /// and removing the edit restores the logits bit for bit.
    func testUpdateIsRankOneAndRemovable() throws {
        let o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let l = 0, c = s.cases[0], pad = s.tok.padId
        let cov = try Rome.covariance(s.model, layers: [l], sequences: s.sequences, cacheKey: s.covKey, cacheDir: o.cacheDir,
                                      batch: 64, pad: pad, log: { _ in })[l]!
        let delta = try Rome.optimiseValues(s.model, vocab: s.tok.vocab, [c], layer: l, base: nil, o: o, pad: pad)[0].delta
        let key = Rome.meanAtSubject(s.model, c, Site(.ffnAct, l), nil, pad: pad)
        let dw = try Rome.rankOneUpdate(delta: delta, key: key, covariance: cov).map(Double.init)
        let Cn = s.model.config.hiddenSize, F = s.model.config.intermediateSize
        var v = [Double](repeating: 1, count: F)
        var sigma2 = 0.0
        for _ in 0..<50 {
            let u = (0..<Cn).map { i in (0..<F).reduce(0.0) { $0 + dw[i * F + $1] * v[$1] } }
            var w = (0..<F).map { j in (0..<Cn).reduce(0.0) { $0 + dw[$1 * F + j] * u[$1] } }
            sigma2 = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
            w = w.map { $0 / sigma2 }; v = w
        }
        let total = dw.reduce(0) { $0 + $1 * $1 }
        XCTAssertGreaterThan(total, 0)
        XCTAssertEqual(sigma2 / total, 1, accuracy: 1e-6, "all of |dW|^2 in the top singular value")
        // the key maps to the new value: dW k = delta
        let dk = (0..<Cn).map { i in (0..<F).reduce(0.0) { $0 + dw[i * F + $1] * Double(key[$1]) } }
        assertClose(dk, delta.map(Double.init), rtol: 1e-3, atol: 1e-4, "dW k* = delta")
        // removal
        let pb = ProbeBatch(c.checks, padId: pad)
        func logits(_ iv: Interventions?) -> [Float] {
            let tape = Tape(recording: false)
            return s.model.mlmLogits(tape, s.model.encode(tape, pb.batch, interventions: iv)).values
        }
        let plain = logits(nil)
        let edit = DenseEdit(s.model.params, targets: [Rome.weightName(l)])
        Rome.add(dw.map(Float.init), to: edit, layer: l)
        XCTAssertNotEqual(logits(edit.interventions()), plain)
        XCTAssertEqual(logits(nil), plain, "the model is untouched by the edit")
    }

    /// The ParaRel fallback: edit cases made from probes as documented (first pattern the
    /// prompt, second the paraphrase, the neighbour the first other subject with the same
    /// object, a new object of the relation), and ROME edits them on the fact model.
    func testEditCasesFromProbes() throws {
        let file = Self.data.dir + "/probes.jsonl"
        try (FactModel.probeLines().joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let raw = try ProbeSet.readJSONL(file)
        let (_, tok) = try KnowledgeSetup.frozenModel(FactModel.trained.checkpoint)
        let made = EditCases.fromProbes(raw, seed: 3, tokenizer: tok, limit: nil)
        var expected = 0
        for fact in Set(raw.map(\.tuple)) {
            let ps = raw.filter { $0.tuple == fact }, p = ps[0]
            let neighbour = raw.first { $0.relation == p.relation && $0.target == p.target && $0.subject != p.subject && $0.pattern == p.pattern }
            guard let n = neighbour else { XCTAssertFalse(made.cases.contains { $0.prompt == p.prompt }); continue }
            expected += 1
            let c = try XCTUnwrap(made.cases.first { $0.prompt == p.prompt }, p.prompt)
            XCTAssertEqual(c.paraphrase, ps[1].prompt)
            XCTAssertEqual(c.neighbourhood, n.prompt)
            XCTAssertEqual(c.trueTarget, p.target)
            XCTAssertNotEqual(c.newTarget, p.target)
            XCTAssertTrue(raw.contains { $0.relation == p.relation && $0.target == c.newTarget }, "new object of the same relation")
        }
        XCTAssertEqual(made.cases.count, expected)
        XCTAssertEqual(made.read, Set(raw.map(\.tuple)).count)
        XCTAssertEqual(made.read, made.cases.count + made.droppedUnpaired + made.droppedMultiPiece)
        XCTAssertGreaterThan(expected, 10)
        XCTAssertEqual(EditCases.fromProbes(raw, seed: 3, tokenizer: tok, limit: nil).cases, made.cases, "the seed fixes the new objects")

        var o = options(); o.probes = file
        let (r, _) = try Rome.run(checkpoint: FactModel.trained.checkpoint, options: o, log: { print($0) })
        print("rome on probe cases: \(r.cases) cases, before \(r.before), after \(r.after)")
        XCTAssertEqual(r.cases, expected)
        XCTAssertEqual(r.before.efficacy, 0, "the model knows its facts")
        XCTAssertGreaterThan(r.after.efficacyMagnitude, r.before.efficacyMagnitude + 0.3)
    }

    /// The traced layer is the largest effect among the layers whose FFN output can reach
    /// [MASK], never the last (its effect is 0, so it would win when the others are negative).
    /// --known-only edits facts the model knows: the cases kept are exactly the usable ones whose
    /// prompt the model answers with the true object (checked one case at a time), the limit counting
    /// those; on an untrained model of the same vocabulary none is left, a one-line error.
    func testKnownOnlyEditsKnownFacts() throws {
        var o = options()
        let all = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let known = all.cases.filter { c in
            let d = ProbeScoring.distributions(all.model, ProbeBatch([c.checks[0]], padId: all.tok.padId), nil).values
            return d.indices.max { d[$0] < d[$1] } == Int(c.trueId)
        }
        XCTAssertGreaterThan(known.count, 2, "the fact model knows its facts")
        o.knownOnly = true; o.limit = 2
        let kept = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        XCTAssertEqual(kept.cases.map(\.source.id), known.prefix(2).map(\.source.id))
        let untrained = BertModel(config: all.model.config)
        untrained.initialize(seed: 3)
        let path = NSTemporaryDirectory() + "droplab-rome-untrained-\(getpid()).h5"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Checkpoint.save(untrained, vocab: all.tok.vocab, to: path)
        XCTAssertThrowsError(try Rome.setup(checkpoint: path, o, log: { _ in })) { XCTAssertTrue("\($0)".contains("answers none of the usable edit cases"), "\($0)") }
    }

    func testTracedLayerIsNeverTheLast() {
        XCTAssertEqual(Rome.peak([-0.1, -0.3, 0]), 0)
        XCTAssertEqual(Rome.peak([0.1, 0.4, -0.2, 0]), 1)
        XCTAssertEqual(Rome.peak([0.2]), 0)
    }

    /// The cases of one value optimisation share a batch, not their gradients: the batched
    /// objective is the mean of the cases' losses and each delta row sees only its own case, so
    /// n x the batched gradient of case i's row equals the gradient of case i's objective alone
    /// (and each case's loss is the same). In exact arithmetic that makes Adam's steps, and so
    /// the optimised deltas, those of each case alone; in float32 the 20 Adam steps amplify
    /// rounding (Adam's first step is lr x sign(g), unstable where g ~ 0), so the deltas
    /// themselves are compared in no test: the property is asserted where it is exact.
    func testValueGradientsTogetherEqualEachAlone() throws {
        let o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let cases = Array(s.cases.prefix(4)), pad = s.tok.padId, C = s.model.config.hiddenSize, n = cases.count
        XCTAssertEqual(n, 4)
        /// Losses and gradient of the objective over `batch` at delta = `point` ([cases, C]).
        func evaluate(_ batch: [PreparedCase], _ point: [Float]) -> (losses: [Float], grad: [Float]) {
            let objective = Rome.ValueObjective(s.model, batch, layer: 0, base: nil, o: o, pad: pad)
            let p = Parameters([("delta", [batch.count, C])])
            p.setTrainable { _ in true }
            let d = p["delta"]
            for i in 0..<point.count { d.data[i] = point[i] }
            p.zeroGrads()
            let tape = Tape()
            let (mean, each) = objective.loss(tape, d)
            tape.backward(mean)
            return (each.map { $0.data[0] }, d.gradValues)
        }
        // at zero (where the optimisation starts) and at a point away from it
        var rng = RNG(seed: 11)
        for point in [[Float](repeating: 0, count: n * C), (0..<(n * C)).map { _ in rng.normal() }] {
            let together = evaluate(cases, point)
            for (i, c) in cases.enumerated() {
                let alone = evaluate([c], Array(point[(i * C)..<((i + 1) * C)]))
                // The two computations differ only in float32 rounding: other batch shapes (padding
                // to the longest prompt, GEMMs of another M) change summation orders. Each stage's
                // relative error is at most K u (u = 2^-24, K its longest reduction: the vocabulary
                // softmax, V terms); forward and backward through 2 layers and the head chain fewer
                // than 64 such stages, so the relative error is below 64 V u (worst case; the
                // typical error is ~sqrt(K) u per stage, orders of magnitude smaller). A case that
                // saw another's delta, or a missing 1/n, is off by O(1).
                let bound = 64 * Double(s.model.config.vocabSize) * Tolerance.float32
                XCTAssertLessThan(bound, 0.05, "the bound must stay far below an O(1) defect")
                assertNormClose(together.grad[(i * C)..<((i + 1) * C)].map { Double($0) * Double(n) }, alone.grad.map(Double.init),
                                rtol: bound, "n x batched gradient of case \(i) vs case \(i) alone")
                XCTAssertEqual(Double(together.losses[i]), Double(alone.losses[0]), accuracy: bound * max(1, Double(abs(alone.losses[0]))),
                               "loss of case \(i)")
            }
        }
    }

    /// ROME's objective (compute_v): the penalty is weight-decay x |delta| / |h|^2, the older
    /// objective's its square: with the KL term off, at one delta the two losses differ by exactly
    /// weight-decay x (|delta| - |delta|^2) / |h|^2 (the NLL is the same forward pass). Its KL term
    /// is KL(P_delta || P), 0 where delta is 0; the older one's cross-entropy to P is H(P) there.
    func testValueObjectiveIsRomes() throws {
        var o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let c = [s.cases[0]], C = s.model.config.hiddenSize
        var rng = RNG(seed: 12)
        let point = (0..<C).map { _ in rng.normal() }
        func loss(_ objective: String?, kl: Float, wd: Float, at x: [Float]) -> Double {
            o.objective = objective; o.klFactor = kl; o.weightDecay = wd
            let objective = Rome.ValueObjective(s.model, c, layer: 0, base: nil, o: o, pad: s.tok.padId)
            return Double(objective.loss(Tape(recording: false), Tensor(x, shape: [1, C])).each[0].data[0])
        }
        let h = Double(Rome.ValueObjective(s.model, c, layer: 0, base: nil, o: o, pad: s.tok.padId).hNorms[0])
        let norm = point.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let expected = 0.5 * (norm - norm * norm) / (h * h)
        let (rome, older) = (loss("rome", kl: 0, wd: 0.5, at: point), loss(nil, kl: 0, wd: 0.5, at: point))
        // each loss is a float32 sum of three terms, each rounded once more when added and scaled:
        // a few u of the loss's magnitude each (u = 2^-24); 8 u (|rome| + |older|) covers them
        let bound = 8 * Tolerance.float32 * (abs(rome) + abs(older))
        XCTAssertGreaterThan(abs(expected), 100 * bound, "the two penalties must differ far beyond rounding here")
        XCTAssertEqual(rome - older, expected, accuracy: bound, "penalty |delta| vs |delta|^2")
        // the KL terms at delta = 0: the reference distribution comes from a forward pass of the
        // essence prompts alone, the loss's from the batch with the rewrite prompts (other padding,
        // so logits equal to a few u x |logit|); KL(P' || P) is second order in that, far below 1e-6
        let zero = [Float](repeating: 0, count: C)
        // (and each difference of two float32 losses is off by the bound above)
        let (withKL, withoutKL) = (loss("rome", kl: 1, wd: 0, at: zero), loss("rome", kl: 0, wd: 0, at: zero))
        let klOlder = loss(nil, kl: 1, wd: 0, at: zero) - loss(nil, kl: 0, wd: 0, at: zero)
        XCTAssertEqual(withKL - withoutKL, 0, accuracy: 1e-6 + 8 * Tolerance.float32 * (abs(withKL) + abs(withoutKL)),
                       "KL(P_delta || P) = 0 at delta = 0")
        XCTAssertGreaterThan(klOlder, 1e-3, "the older term is the entropy of P there")
    }

    /// --stop-loss: a case whose loss is below it keeps the delta that loss was measured at
    /// (ROME's break). With a bound above every loss each case stops at its first step, at 0.
    func testValueOptimisationStopsBelowStopLoss() throws {
        var o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let cases = Array(s.cases.prefix(2)), pad = s.tok.padId
        o.stopLoss = 1e9
        let stopped = try Rome.optimiseValues(s.model, vocab: s.tok.vocab, cases, layer: 0, base: nil, o: o, pad: pad)
        XCTAssertTrue(stopped.allSatisfy { $0.delta.allSatisfy { $0 == 0 } }, "stopped at the start")
        o.stopLoss = nil
        let run = try Rome.optimiseValues(s.model, vocab: s.tok.vocab, cases, layer: 0, base: nil, o: o, pad: pad)
        XCTAssertTrue(run.allSatisfy { $0.delta.contains { $0 != 0 } }, "unset: every step runs")
        XCTAssertTrue(zip(stopped, run).allSatisfy { $0.loss > $1.loss }, "the steps lower the loss")
    }

    /// MEMIT's default range is two layers ending at the ROME layer, or starting there when it is
    /// the first; never the last layer, which cannot be edited.
    func testMemitDefaultLayers() {
        XCTAssertEqual(Rome.defaultMemitLayers(rome: 0, layers: 2), [0])
        XCTAssertEqual(Rome.defaultMemitLayers(rome: 0, layers: 4), [0, 1])
        XCTAssertEqual(Rome.defaultMemitLayers(rome: 2, layers: 4), [1, 2])
        XCTAssertEqual(Rome.defaultMemitLayers(rome: 1, layers: 3), [0, 1])
    }

    /// The key covariance equals a direct Float64 computation from captured activations.
    func testCovarianceMatchesDirectComputation() throws {
        let o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let seqs = Array(s.sequences.prefix(3)), F = s.model.config.intermediateSize
        let cov = try Rome.covariance(s.model, layers: [1], sequences: seqs, cacheKey: "direct-\(getpid())", cacheDir: o.cacheDir,
                                      batch: 8, pad: s.tok.padId, log: { _ in })[1]!
        var direct = [Double](repeating: 0, count: F * F), n = 0
        for q in seqs {
            let iv = Interventions(), cap = Captures()
            iv.capture([Site(.ffnAct, 1)], into: cap)
            let tape = Tape(recording: false)
            _ = s.model.encode(tape, Batch(ids: q, batchSize: 1, seqLen: q.count), interventions: iv)
            let k = cap[Site(.ffnAct, 1)]!
            for t in 0..<q.count { for a in 0..<F { for b in 0..<F { direct[a * F + b] += Double(k.data[t * F + a]) * Double(k.data[t * F + b]) } } }
            n += q.count
        }
        assertClose(cov, direct.map { $0 / Double(n) }, rtol: 1e-5, atol: 1e-7, "E[k k^T]")
        // cached: a second call reads the same bytes
        let again = try Rome.covariance(s.model, layers: [1], sequences: seqs, cacheKey: "direct-\(getpid())", cacheDir: o.cacheDir,
                                        batch: 8, pad: s.tok.padId, log: { _ in XCTFail("recomputed instead of cached") })[1]!
        XCTAssertEqual(again, cov)
    }

    /// MEMIT's update at a layer solves its normal equations dW (lambda C + K K^T) = R K^T (K:
    /// the cases' keys [F, n], R: their residuals target - current [Cn, n]), and for one case it
    /// is ROME's rank-one update shrunk by s / (lambda + s), s = k^T C^-1 k (Sherman-Morrison on
    /// (lambda C + k k^T)^-1 k = C^-1 k / (lambda + s)).
    func testMemitSolvesItsNormalEquationsAndOneEditIsRome() throws {
        let o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let l = 0, pad = s.tok.padId, Cn = s.model.config.hiddenSize, F = s.model.config.intermediateSize
        let cov = try Rome.covariance(s.model, layers: [l], sequences: s.sequences, cacheKey: s.covKey, cacheDir: o.cacheDir,
                                      batch: 64, pad: pad, log: { _ in })[l]!
        let lambda = 15000 * Double(F) / 16384          // the evaluator's default
        let u = Tolerance.float32
        var rng = RNG(seed: 5)
        let cases = Array(s.cases.prefix(4))
        let values = cases.map { Rome.meanAtSubject(s.model, $0, Site(.ffnOut, l), nil, pad: pad) }
        let keys = cases.map { Rome.meanAtSubject(s.model, $0, Site(.ffnAct, l), nil, pad: pad) }
        let deltas = values.map { v in v.map { $0 * rng.normal() } }          // |delta| ~ |value|
        let targets = zip(values, deltas).map { v, d in zip(v, d).map { $0 + $1 } }
        func update(_ n: Int) throws -> [Double] {
            let edit = try Rome.memitEdit(s.model, pad: s.tok.padId, Array(cases.prefix(n)), targets: Array(targets.prefix(n)), layers: [l],
                                          covariances: [l: cov], lambda: lambda)
            return edit.params[Rome.weightName(l)].values.map(Double.init)
        }

        // one case: ROME's update x s / (lambda + s)
        let one = try update(1)
        let rome = try Rome.rankOneUpdate(delta: deltas[0], key: keys[0], covariance: cov).map(Double.init)
        let cinvK = try Rome.solveSPD(cov, n: F, keys[0].map(Double.init), m: 1)
        let sk = zip(cinvK, keys[0]).reduce(0.0) { $0 + $1.0 * Double($1.1) }
        // Both updates are Float64 products rounded once to float32 (2u); MEMIT's residual
        // fl(v + delta) - v differs from delta by at most u |v + delta| <= u (|v| + |delta|); the
        // Float64 solves add kappa x 1e-16, negligible. So the norm-wise relative error is below
        // u (3 + |v| / |delta|) + u; twice that is the bound.
        let norm = { (x: [Float]) in x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        assertNormClose(one, rome.map { $0 * sk / (lambda + sk) }, rtol: 2 * u * (4 + norm(values[0]) / norm(deltas[0])),
                        "one MEMIT edit = ROME's update x s/(lambda+s)")
        XCTAssertLessThan(sk / (lambda + sk), 0.99, "lambda shrinks the edit (else this would not tell MEMIT from ROME)")
        // the share the result records is that factor (its own Float64 solve of the same system)
        XCTAssertEqual(try Rome.keptShare(s.model, pad: s.tok.padId, [cases[0]], layer: l, covariance: cov, lambda: lambda), sk / (lambda + sk), accuracy: 1e-12)

        // four cases: the normal equations' residual, in Float64
        let n = cases.count, dw = try update(n)
        var a = cov.map { $0 * lambda }                                       // lambda C + K K^T
        for k in keys { for p in 0..<F { for q in 0..<F { a[p * F + q] += Double(k[p]) * Double(k[q]) } } }
        var residual = 0.0, rhsNorm = 0.0
        for c in 0..<Cn {
            for q in 0..<F {
                var lhs = 0.0
                for p in 0..<F { lhs += dw[c * F + p] * a[p * F + q] }
                let rhs = (0..<n).reduce(0.0) { $0 + (Double(targets[$1][c]) - Double(values[$1][c])) * Double(keys[$1][q]) }
                residual += (lhs - rhs) * (lhs - rhs); rhsNorm += rhs * rhs
            }
        }
        // dW is X = A^-1 K^T (Float64) times R, accumulated over the n cases in float32: each
        // element is off by at most (n + 1) u sum_i |r_ci x_pi|, so |dW_f - dW|_F <= (n + 1) u
        // |R|_F |X|_F and the residual |(dW_f - dW) A|_F <= (n + 1) u |R|_F |X|_F |A|_F (the
        // Float64 solve's backward error, ~F x 1e-16 |A| |X|, is negligible beside it).
        let x = try Rome.solveSPD(a, n: F, (0..<(F * n)).map { Double(keys[$0 % n][$0 / n]) }, m: n)
        let rNorm = (0..<n).reduce(0.0) { acc, i in acc + (0..<Cn).reduce(0.0) { let r = Double(targets[i][$1]) - Double(values[i][$1]); return $0 + r * r } }.squareRoot()
        let bound = Double(n + 1) * u * rNorm * x.reduce(0) { $0 + $1 * $1 }.squareRoot() * a.reduce(0) { $0 + $1 * $1 }.squareRoot()
        print("memit normal equations: residual \(residual.squareRoot()), bound \(bound), |R K^T| \(rhsNorm.squareRoot())")
        XCTAssertLessThan(bound, 0.01 * rhsNorm.squareRoot(), "the bound must stay far below an O(1) defect")
        XCTAssertLessThanOrEqual(residual.squareRoot(), bound, "dW (lambda C + K K^T) = R K^T")
    }

    /// The MEMIT evaluator end to end: every edit count is a point, sequential ROME is recorded
    /// case by case, and every point changed the weights. (Whether the edits succeed is the
    /// study's measurement, not a property this model can assert over 10 cases.)
    func testMemitScalingCurve() throws {
        var o = MemitOptions(); o.edit = options(); o.counts = [1, 4, 10]
        let (r, records) = try Rome.runMemit(checkpoint: FactModel.trained.checkpoint, options: o, log: { print($0) })
        for p in r.points { print("memit \(p.edits): memit \(p.memit), sequential rome \(p.rome.map { "\($0)" } ?? "-")") }
        XCTAssertEqual(r.points.map(\.edits), [1, 4, 10])
        XCTAssertTrue(r.points.allSatisfy { $0.memitUpdateNorm > 0 && $0.rome != nil })
        XCTAssertEqual(records.count, 10)
    }
}
