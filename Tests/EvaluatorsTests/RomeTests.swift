// ROME and MEMIT on the tiny model that knows its facts (FactModel): CounterFact-format cases
// are written from its facts ("dog lived in" -> france, new object another country), the
// corpus for the key statistics is its own fact sentences.

import Autograd
import BERT
@testable import Evaluators
import Foundation
import Interventions
import TestSupport
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
        // the subject recovers ~6% of the corrupted effect (the block output there: 58%), so one
        // rank-one FFN edit flips about half of the facts, with the neighbours kept.
        XCTAssertGreaterThanOrEqual(r.after.efficacy, 0.4)
        XCTAssertGreaterThan(r.after.efficacyMagnitude, r.before.efficacyMagnitude + 0.5)
        XCTAssertGreaterThanOrEqual(r.after.neighbourhood, 0.7)
        XCTAssertEqual(records.count, r.cases)
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
        let edit = DenseEdit(model: s.model, targets: [Rome.weightName(l)])
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
    func testTracedLayerIsNeverTheLast() {
        XCTAssertEqual(Rome.peak([-0.1, -0.3, 0]), 0)
        XCTAssertEqual(Rome.peak([0.1, 0.4, -0.2, 0]), 1)
        XCTAssertEqual(Rome.peak([0.2]), 0)
    }

    /// Values optimised together in one batch equal each case optimised alone (the loss is the
    /// mean of the cases' losses, and each delta sees only its own case's gradient).
    func testValuesOptimisedTogetherEqualEachAlone() throws {
        let o = options()
        let s = try Rome.setup(checkpoint: FactModel.trained.checkpoint, o, log: { _ in })
        let cases = Array(s.cases.prefix(4)), pad = s.tok.padId
        let together = try Rome.optimiseValues(s.model, vocab: s.tok.vocab, cases, layer: 0, base: nil, o: o, pad: pad)
        XCTAssertEqual(together.count, 4)
        for (i, c) in cases.enumerated() {
            let alone = try Rome.optimiseValues(s.model, vocab: s.tok.vocab, [c], layer: 0, base: nil, o: o, pad: pad)[0]
            XCTAssertGreaterThan(Rome.frobenius(alone.delta), 0.1)
            assertClose(together[i].delta.map(Double.init), alone.delta.map(Double.init), rtol: 1e-3, atol: 1e-4, "delta of case \(i)")
            XCTAssertEqual(together[i].value, alone.value)
            XCTAssertEqual(together[i].loss, alone.loss, accuracy: 1e-4 * max(1, alone.loss))
        }
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

    func testMemitScalingCurve() throws {
        var o = MemitOptions(); o.edit = options(); o.counts = [1, 4, 10]
        let (r, records) = try Rome.runMemit(checkpoint: FactModel.trained.checkpoint, options: o, log: { print($0) })
        for p in r.points { print("memit \(p.edits): memit \(p.memit), sequential rome \(p.rome.map { "\($0)" } ?? "-")") }
        XCTAssertEqual(r.points.map(\.edits), [1, 4, 10])
        XCTAssertGreaterThanOrEqual(r.points[0].memit.efficacy, 0.9, "one edit")
        let (memit, rome) = (r.points.last!.memit, r.points.last!.rome!)
        XCTAssertGreaterThanOrEqual(memit.efficacy, 0.5)
        XCTAssertGreaterThanOrEqual(memit.neighbourhood, rome.neighbourhood, "10 MEMIT edits at once vs 10 sequential ROME edits")
        XCTAssertEqual(records.count, 10)
    }
}
