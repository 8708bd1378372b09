// Concept edits on a tiny model that knows some facts. The model (L2 H64 A2 FFN256, a
// vocabulary of fixture words) is trained here through the Trainer on synthetic cloze facts
// "<subject> is located in <object> ." (5 patterns) for six objects, and for "india" on six of
// its sixteen subjects. The concept edited by ft, lora and reft, "france", has ten subjects the
// model never saw and is never an answer in training; bmask, which can only remove weights,
// edits "india", whose ten other subjects the model never saw (bmask reads a probe file with
// india's 16 subjects and no france; the others one with france and india's 6 known subjects,
// so that no two sets of unseen subjects compete). Each method must flip the
// concept's held-out probes (paraphrases of its training facts) and mostly spare the other
// concepts' probes; removing an edit must give bit-identical logits and leave every base
// weight byte-identical; masks at logit > 0 reproduce mean_active in the exported model;
// LoReFT's rows stay orthonormal; rank sweeps give one row per rank.

import Autograd
import BERT
import Checkpoint
@testable import Datasets
@testable import Evaluators
import Foundation
import Interventions
import TestSupport
import Text
import Training
import XCTest

// Thresholds: the success and localization rates are shares of held-out probes (france: 10, so a
// probe is 0.1; india, for bmask: 16, 0.0625; the other concepts' held-out probes: ~40, 0.025).
// They are margins on outcomes, not rounding bounds. The edits run on a committed model
// (Fixtures/concept_edit_model.h5, made by `train`), so every CPU edits the same weights: trained
// in each test process (630 Adam steps), each BLAS kernel made a slightly different model (bmask
// kept 6481 weights on average under Cooperlake and Haswell, 6479.5 under Prescott), and
// thresholds with a margin of one probe are not safe on a model that moves. What remains between
// kernels is the edits' own rounding. testTrainingTeachesTheFacts checks that `train` still
// makes a model that knows the facts; DROPLAB_WRITE_FIXTURES=1 makes it rewrite the fixture.
// Margins, in probes, are noted where each threshold is set.
final class ConceptEditTests: XCTestCase {
    static let patterns = ["[X] is located in [Y] .", "[X] is in [Y] .", "the home of [X] is [Y] .", "[X] is from [Y] .",
                           "[X] , in the north of [Y] ."]
    static let known = ["paris", "germany", "spain", "japan", "china", "russia"]
    static let concept = "france", partial = "india"

    struct World { let dir: String, checkpoint: String, probes: String, maskProbes: String, pretrain: String, vocab: [String] }
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/concept_edit_model.h5").path
    nonisolated(unsafe) static var cached: World?

    override class func tearDown() {
        if let w = cached { try? FileManager.default.removeItem(atPath: w.dir) }
        cached = nil
        super.tearDown()
    }

    /// Build (once per class run) the vocabulary, the probe file and the trained checkpoint.
    static func world() throws -> World {
        if let w = cached { return w }
        let dir = NSTemporaryDirectory() + "droplab-edits-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fixture = try String(contentsOfFile: TestData.fixtureVocab, encoding: .utf8).split(separator: "\n").map(String.init)
        let structural = ["is", "located", "in", "the", "home", "of", "from", "north", ".", ","]
        let objects = known + [partial, concept]
        let used = Set(structural + objects)
        let candidates = fixture.filter { $0.count >= 4 && $0.allSatisfy { $0.isLetter && $0.isLowercase } && !used.contains($0) }
        let subjects = stride(from: 0, to: 62 * 7, by: 7).map { candidates[$0] }   // 6 x 6 known, 16 india, 10 france
        let vocab = Array(fixture.prefix(5)) + structural + objects + subjects
        for w in structural + objects + subjects { precondition(fixture.contains(w), "\(w) not in the fixture vocabulary") }

        var editLines: [String] = [], maskLines: [String] = [], trainLines: [String] = []
        func fact(_ s: String, _ o: String, train: Bool, edit: Bool, mask: Bool) {
            for p in patterns {
                let obj: [String: Any] = ["prompt": p.replacingOccurrences(of: "[X]", with: s).replacingOccurrences(of: "[Y]", with: "[MASK]"),
                                          "target": o, "subject": s, "fact": s]
                let line = String(decoding: try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
                if train { trainLines.append(line) }
                if edit { editLines.append(line) }
                if mask { maskLines.append(line) }
            }
        }
        for (i, o) in known.enumerated() { for s in subjects[(6 * i)..<(6 * i + 6)] { fact(s, o, train: true, edit: true, mask: true) } }
        for (j, s) in subjects[36..<52].enumerated() { fact(s, partial, train: j < 6, edit: j < 6, mask: true) }
        for s in subjects[52..<62] { fact(s, concept, train: false, edit: true, mask: false) }
        let probes = dir + "/probes.jsonl", maskProbes = dir + "/probes-bmask.jsonl", pretrain = dir + "/pretrain.jsonl"
        try editLines.joined(separator: "\n").write(toFile: probes, atomically: true, encoding: .utf8)
        try maskLines.joined(separator: "\n").write(toFile: maskProbes, atomically: true, encoding: .utf8)
        try trainLines.joined(separator: "\n").write(toFile: pretrain, atomically: true, encoding: .utf8)

        let w = World(dir: dir, checkpoint: Self.fixture, probes: probes, maskProbes: maskProbes, pretrain: pretrain, vocab: vocab)
        cached = w
        return w
    }

    /// Teach the known facts through the Trainer (all parameters, the edits' loss: the filled-in
    /// sentence) and save the model to `path`.
    static func train(_ w: World, to path: String) throws {
        let config = BertConfig(vocabSize: w.vocab.count, hiddenSize: 64, numLayers: 2, numHeads: 2, intermediateSize: 256, maxPositions: 32)
        let model = BertModel(config: config, head: .mlm)
        model.initialize(seed: 3)
        let tok = try WordPieceTokenizer(vocab: w.vocab)
        var po = ProbeOptions(); po.probes = w.pretrain
        let set = try ProbeSet.load(po, tokenizer: tok, maxLength: 32)
        precondition(set.probes.count == 210, "pretraining probes \(set.probes.count)")
        let epochs = 60, batch = 20, steps = epochs * set.probes.count / batch
        var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: 3e-3, warmupSteps: 20, totalSteps: steps, decay: .linear),
                                  hiddenDropout: 0, attentionDropout: 0, seed: 1)
        topt.adamw.weightDecay = 0
        topt.logEvery = 1000
        let trainer = Trainer(model: model, vocab: w.vocab, data: EditTrainData(set.tokenized, micro: batch, seed: 1, padId: tok.padId),
                              options: topt, runDir: w.dir + "/pretrain-\(UUID().uuidString)") { tape, model, item, plan in
            model.mlmLoss(tape, item.batch, labels: item.labels, dropout: plan)
        }
        trainer.log = { _ in }
        _ = try trainer.run()
        try Checkpoint.save(model, vocab: w.vocab, to: path)
    }

    /// The shared options of the tests: one concept, 20% held out.
    func editOptions(_ defaults: EditOptions, _ w: World, concept: String = ConceptEditTests.concept) -> EditOptions {
        var o = defaults
        o.probes.probes = w.probes; o.concept = [concept]; o.heldOut = 0.2; o.minProbes = 10
        return o
    }

    func report(_ name: String, _ rows: [EditRow], seconds: Double) {
        for r in rows {
            print(String(format: "EDIT %@%@: success %.3f -> %.3f  localization %.3f -> %.3f  mask success %.3f -> %.3f  mask localization %.3f -> %.3f%@  (%.1fs)",
                         name, r.rank.map { " rank \($0)" } ?? "", r.before.editSuccess, r.after.editSuccess,
                         r.before.editLocalization, r.after.editLocalization, r.before.maskEditSuccess, r.after.maskEditSuccess,
                         r.before.maskEditLocalization, r.after.maskEditLocalization,
                         r.meanActive.map { String(format: "  mean_active %.1f kept %.3f", $0, r.keptFraction ?? 0) } ?? "", r.seconds))
        }
        print(String(format: "EDIT %@ total %.1fs", name, seconds))
    }

    /// The pretrained model knows the known facts and not the concept's. Measured before every
    /// edit: concept success 0 (1 france probe of margin against 0.1; bmask's india: 11/16 against
    /// 0.75, 1 probe), other concepts 1.0 (4 probes of margin against 0.9).
    func assertBefore(_ r: EditRow, unknown: Double = 0.1, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(r.before.maskEditSuccess, unknown, "the concept is unknown before the edit", file: file, line: line)
        XCTAssertGreaterThanOrEqual(r.before.maskEditLocalization, 0.9, "the other facts are known", file: file, line: line)
    }

    /// Accuracy at [MASK] and over the filled-in tokens of the known facts (36 subjects x 5 patterns).
    func knownAccuracy(_ checkpoint: String, _ w: World) throws -> (mask: Double, tokens: Double) {
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: { var o = ProbeOptions(); o.probes = w.probes; return o }(), log: { _ in })
        let knownProbes = k.probes.tokenized.filter { k.probes.probes[$0.index].target != Self.concept && k.probes.probes[$0.index].target != Self.partial }
        XCTAssertEqual(knownProbes.count, 210 - 6 * Self.patterns.count)
        let acc = ConceptEdits.accuracy(k.model, knownProbes, edit: nil, batch: 64, padId: k.tokenizer.padId)
        XCTAssertEqual(acc.counted, knownProbes.map { $0.ids.count - 2 }.reduce(0, +), "every token but [CLS] and [SEP] counts")
        return (acc.mask, acc.tokens)
    }

    func testModelKnowsTheFacts() throws {
        let w = try Self.world()
        let acc = try knownAccuracy(w.checkpoint, w)
        // measured 1.0 over the 180 known probes: 9 probes of margin
        XCTAssertGreaterThanOrEqual(acc.mask, 0.95)
        XCTAssertGreaterThanOrEqual(acc.tokens, 0.95)
    }

    /// `train` still teaches the facts (it made the committed model; with DROPLAB_WRITE_FIXTURES=1
    /// its model replaces it). It memorises them (1.0 under every kernel tried), so 0.95 leaves 9
    /// probes of margin for a kernel's rounding; chance is 1 in 8 objects.
    func testTrainingTeachesTheFacts() throws {
        let w = try Self.world()
        let path = try temporaryDirectory(self) + "/model.h5"
        try Self.train(w, to: path)
        let acc = try knownAccuracy(path, w)
        XCTAssertGreaterThanOrEqual(acc.mask, 0.95)
        XCTAssertGreaterThanOrEqual(acc.tokens, 0.95)
        if ProcessInfo.processInfo.environment["DROPLAB_WRITE_FIXTURES"] == "1" {
            try? FileManager.default.removeItem(atPath: Self.fixture)
            try FileManager.default.copyItem(atPath: path, toPath: Self.fixture)
            print("wrote \(Self.fixture)")
        }
    }

    func testBinaryMaskFlipsConcept() throws {
        let w = try Self.world()
        var o = BMaskOptions(); o.edit = editOptions(o.edit, w, concept: Self.partial)
        o.edit.probes.probes = w.maskProbes
        o.edit.saveEdited = w.dir + "/bmask-export"          // the study's protocol otherwise: 5 epochs, lr 0.01, at least 300 steps
        let t0 = Date()
        let out = try BinaryMaskEval.run(checkpoint: w.checkpoint, options: o, log: { _ in })
        report("bmask", out.result.rows, seconds: Date().timeIntervalSince(t0))
        let r = out.result.rows[0], rec = out.records[0]
        XCTAssertEqual(out.records.count, 1); XCTAssertEqual(rec.concept, Self.partial)
        // 5 epochs of its training probes in batches of 16 are fewer than the minimum: 300 steps
        XCTAssertLessThan(5 * rec.trainProbes / 16, 300)
        XCTAssertEqual(rec.steps, 300)
        assertBefore(r, unknown: 0.75)                        // the known six of india's sixteen subjects (and a default guess)
        // measured 16/16 (0.9 needs 15: 1 probe of margin) and localization 1.0 (0.8: ~7 probes)
        XCTAssertGreaterThanOrEqual(r.after.maskEditSuccess, max(0.9, r.before.maskEditSuccess + 0.2))
        XCTAssertGreaterThanOrEqual(r.after.maskEditLocalization, 0.8)
        // masks at logit > 0 reproduce mean_active: count the nonzero FFN output weights of the exported model
        let tensors = try readSafetensors(o.edit.saveEdited! + "/model.safetensors")
        let L = 2
        let nonzero = (0..<L).map { l in tensors["bert.encoder.layer.\(l).output.dense.weight"]!.filter { $0 != 0 }.count }
        XCTAssertEqual(rec.keptPerMatrix, nonzero)
        // edited.h5 beside it is the same model, bit for bit (what `droplab explore` reads)
        let h5 = try Checkpoint.load(o.edit.saveEdited! + "/edited.h5").model
        for l in 0..<L { XCTAssertEqual(h5.params["bert.encoder.layer.\(l).output.dense.weight"].values, tensors["bert.encoder.layer.\(l).output.dense.weight"]) }
        // the row: per matrix, its name, size and the weights kept (one concept: its counts)
        XCTAssertEqual(r.keptPerMatrix?.map(\.matrix), (0..<L).map { "bert.encoder.layer.\($0).output.dense.weight" })
        XCTAssertEqual(r.keptPerMatrix?.map(\.weights), [64 * 256, 64 * 256])
        XCTAssertEqual(r.keptPerMatrix?.map(\.kept), nonzero.map(Double.init))
        // integer counts over 2 and over 32768: exact, or one Float64 rounding (1e-16) of a value <= 1
        XCTAssertEqual(rec.meanActive!, Double(nonzero.reduce(0, +)) / Double(L), accuracy: 1e-9)
        XCTAssertEqual(rec.keptFraction!, Double(nonzero.reduce(0, +)) / Double(L * 64 * 256), accuracy: 1e-12)
        XCTAssertLessThan(rec.keptFraction!, 1, "the sparsity term removed some weights")
        XCTAssertEqual(out.result.validity(records: out.records).map { [$0.id: $0.held] }, [["bmask.moved": true]])
        // the other exported weights are the base model's
        let base = try Checkpoint.load(w.checkpoint)
        XCTAssertEqual(tensors["bert.encoder.layer.0.intermediate.dense.weight"]!, base.model.params["bert.encoder.layer.0.intermediate.dense.weight"].values)
    }

    func testFinetuneFlipsConcept() throws {
        let w = try Self.world()
        var o = FinetuneOptions(); o.edit = editOptions(o.edit, w)
        o.edit.epochs = 10; o.edit.lr = 1e-3
        let t0 = Date()
        let out = try FinetuneEval.run(checkpoint: w.checkpoint, options: o, log: { _ in })
        report("ft", out.result.rows, seconds: Date().timeIntervalSince(t0))
        let r = out.result.rows[0]
        assertBefore(r)
        // measured 10/10 (0.7: 3 probes of margin) and localization 1.0 (0.8: ~8 probes)
        XCTAssertGreaterThanOrEqual(r.after.maskEditSuccess, 0.7)
        XCTAssertGreaterThanOrEqual(r.after.maskEditLocalization, 0.8)
        XCTAssertEqual(out.records[0].otherTrainProbes, out.records[0].trainProbes)
    }

    func testLoRARankSweep() throws {
        let w = try Self.world()
        var o = LoRAOptions(); o.edit = editOptions(o.edit, w)
        o.edit.epochs = 10; o.edit.lr = 3e-3; o.ranks = [16, 4, 1]
        o.edit.saveEdited = w.dir + "/lora-export"
        let t0 = Date()
        let out = try LoRAEval.run(checkpoint: w.checkpoint, options: o, log: { _ in })
        report("lora", out.result.rows, seconds: Date().timeIntervalSince(t0))
        XCTAssertEqual(out.result.rows.map(\.rank), [16, 4, 1])
        XCTAssertEqual(out.records.map(\.rank), [16, 4, 1])
        for r in out.result.rows {
            assertBefore(r)
            // measured 10/10 at every rank (0.7: 3 probes of margin), localization 1.0 (0.8: ~8 probes)
            XCTAssertGreaterThanOrEqual(r.after.maskEditSuccess, 0.7, "rank \(r.rank!)")
            XCTAssertGreaterThanOrEqual(r.after.maskEditLocalization, 0.8, "rank \(r.rank!)")
        }
        XCTAssertGreaterThanOrEqual(out.result.rows.first!.after.maskEditSuccess, out.result.rows.last!.after.maskEditSuccess,
                                    "success does not fall as the rank falls")
        XCTAssertEqual(out.result.trainableParameters["1"], 2 * (2 * (64 + 64) + 2 * (64 + 256)))
        // each rank fit its training probes (france's 8 unseen subjects: 0 before)
        let checks = out.result.validity(records: out.records)
        XCTAssertEqual(checks.map(\.id), ["lora.r16.fit", "lora.r4.fit", "lora.r1.fit"])
        for c in checks { XCTAssertTrue(c.held, "\(c)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: o.edit.saveEdited! + "/model.safetensors"))
    }

    /// Planted failures of the validity checks: LoRA at lr 1e-9 does not fit its training probes
    /// (Adam moves each B entry by ~1e-9 a step: the [MASK] answers stay the base model's), and a
    /// mask trained for 2 steps at lr 0.01 from logits 1 cannot drop a weight (a logit moves by at
    /// most ~lr a step and a weight goes at logit <= 0).
    func testEditsThatDidNothingFailTheirChecks() throws {
        let w = try Self.world()
        var lora = LoRAOptions(); lora.edit = editOptions(lora.edit, w)
        lora.edit.lr = 1e-9; lora.ranks = [4]
        let l = try LoRAEval.run(checkpoint: w.checkpoint, options: lora, log: { _ in })
        let fit = try XCTUnwrap(l.result.validity(records: l.records).first)
        XCTAssertEqual(fit.id, "lora.r4.fit"); XCTAssertFalse(fit.held, "\(fit)")
        XCTAssertEqual(fit.value, 100 * l.result.rows[0].before.trainMaskSuccess!, "nothing moved")
        XCTAssertTrue(fit.gates("lora.r4.mask_edit_success")); XCTAssertFalse(fit.gates("lora.r4.train_mask_success"))
        var mask = BMaskOptions(); mask.edit = editOptions(mask.edit, w, concept: Self.partial)
        mask.edit.probes.probes = w.maskProbes; mask.edit.minSteps = 2; mask.edit.epochs = 1; mask.edit.trainBatch = 64
        let m = try BinaryMaskEval.run(checkpoint: w.checkpoint, options: mask, log: { _ in })
        XCTAssertEqual(m.records[0].steps, 2)
        let moved = try XCTUnwrap(m.result.validity(records: m.records).first)
        XCTAssertEqual(moved.id, "bmask.moved"); XCTAssertFalse(moved.held); XCTAssertEqual(moved.value, 0)
        XCTAssertEqual(moved.failure, "mask did not move")
    }

    func testReFTRankSweep() throws {
        let w = try Self.world()
        var o = ReFTOptions(); o.edit = editOptions(o.edit, w)
        o.edit.epochs = 10; o.edit.lr = 3e-3; o.ranks = [8, 2]
        let t0 = Date()
        let out = try ReFTEval.run(checkpoint: w.checkpoint, options: o, log: { _ in })
        report("reft", out.result.rows, seconds: Date().timeIntervalSince(t0))
        XCTAssertEqual(out.result.rows.map(\.rank), [8, 2])
        // the default layout in 2 layers: the study's 0:cls, and its last-layer places moved to [MASK]
        XCTAssertEqual(out.result.options.places, ["0:cls", "1:mask"])
        for (r, rec) in zip(out.result.rows, out.records) {
            assertBefore(r)
            // measured 10/10 (rank 8) and 7/10 (rank 2): 2 probes of margin at 0.5; localization 1.0
            XCTAssertGreaterThanOrEqual(r.after.maskEditSuccess, 0.5, "rank \(r.rank!)")
            XCTAssertGreaterThanOrEqual(r.after.maskEditLocalization, 0.8, "rank \(r.rank!)")
            // R is orthonormalised in Float64, then stored in float32: each entry off by <= u, so
            // |(R Rᵀ)_ij - δ_ij| <= 2u Σ|r_ic r_jc| <= 2u = 1.2e-7 (Cauchy-Schwarz); 1e-5 is 80x
            XCTAssertLessThanOrEqual(rec.orthonormalityError!, 1e-5)
        }
        // measured 10/10: 1 probe of margin
        XCTAssertGreaterThanOrEqual(out.result.rows[0].after.maskEditSuccess, 0.9)
        XCTAssertGreaterThanOrEqual(out.result.rows[0].after.maskEditSuccess, out.result.rows[1].after.maskEditSuccess,
                                    "success does not fall as the rank falls")
    }

    /// Training an edit writes no base weight; without the edit the logits are bit-identical,
    /// with it they differ; a baked weight-level edit equals the installed one bit for bit;
    /// LoReFT's rows are orthonormal after training.
    func testRemovalIsBitIdenticalAndBaseWeightsUntouched() throws {
        let w = try Self.world()
        let k = try KnowledgeSetup.load(checkpoint: w.checkpoint, probes: { var o = ProbeOptions(); o.probes = w.probes; return o }(), log: { _ in })
        let vocab = try Checkpoint.load(w.checkpoint).vocab
        let weights = k.model.params.values.buffer.map(\.bitPattern)
        let batch = EditBatch(Array(k.probes.tokenized.prefix(24)), padId: k.tokenizer.padId)
        func logits(_ edit: Edit?, model: BertModel? = nil) -> [Float] {
            let m = model ?? k.model, iv = edit?.interventions(EditContext(rows: batch.rows))
            let tape = Tape(recording: false)
            return m.mlmLogits(tape, m.encode(tape, batch.batch, interventions: iv), interventions: iv).values
        }
        let plain = logits(nil)
        var o = EditOptions(epochs: 2, lr: 3e-3, trainBatch: 8)
        o.weightDecay = 0.1                                   // decay applies to the edit's tensors only
        let (chosen, _) = try ConceptEdits.concepts(k.probes, o)
        let s = ConceptEdits.split(k.probes, concept: chosen[0].0, indices: chosen[0].1, o)
        let c = k.model.config
        let edits: [(String, Edit, Bool)] = [
            ("bmask", BinaryMaskEdit(k.model.params, targets: try ConceptEdits.matrices(c, modules: ["output"], layers: []), initialLogit: 0.01), true),
            ("ft", DenseEdit(k.model.params, targets: k.model.params.entries.map(\.name)), false),
            ("lora", LoRAEdit(k.model.params, targets: try ConceptEdits.matrices(c, modules: ["query", "value", "intermediate", "output"], layers: []),
                              rank: 4, alpha: 8, seed: 1), false),
            ("reft", LoReFTEdit(hiddenSize: c.hiddenSize, places: ReFTEval.studyPlaces(layers: c.numLayers), rank: 4, seed: 1), false),
        ]
        for (name, edit, sampling) in edits {
            _ = try ConceptEdits.train(edit, model: k.model, vocab: vocab, examples: s.train + s.otherTrain, padId: k.tokenizer.padId, o,
                                       micro: sampling ? 1 : 8, sampling: sampling, seed: 5)
            XCTAssertEqual(k.model.params.values.buffer.map(\.bitPattern), weights, "\(name): base weights written")
            XCTAssertEqual(logits(nil), plain, "\(name): logits without the edit differ")
            XCTAssertTrue(logits(edit) != plain, "\(name): the edit changes nothing")
            if name == "reft" {
                XCTAssertThrowsError(try edit.bake(into: BertModel(config: c).params))
                XCTAssertLessThanOrEqual((edit as! LoReFTEdit).orthonormalityError, 1e-5)   // 2u = 1.2e-7, as in testReFTRankSweep
            } else {
                let baked = BertModel(config: c, head: .mlm)
                baked.params.copyValues(from: k.model.params)
                try edit.bake(into: baked.params)
                // exact: the baked weight is computed by the same ops on the same shapes as the installed one
                XCTAssertEqual(logits(nil, model: baked), logits(edit), "\(name): baked model differs from the installed edit")
            }
        }
    }

    func testOptionErrorsNameTheFlag() {
        var l = LoRAOptions(); l.ranks = [4, 0]
        XCTAssertThrowsError(try l.validate()) { XCTAssertTrue("\($0)".hasPrefix("--ranks must"), "\($0)") }
        var r = ReFTOptions(); r.places = ["2:head"]
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".hasPrefix("--places"), "\($0)") }
        r = ReFTOptions(); r.edit.saveEdited = "/tmp/x"
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".hasPrefix("--save-edited"), "\($0)") }
        var b = BMaskOptions(); b.edit.heldOut = 1
        XCTAssertThrowsError(try b.validate()) { XCTAssertTrue("\($0)".hasPrefix("--held-out"), "\($0)") }
        var f = FinetuneOptions(); f.edit.trainBatch = 0
        XCTAssertThrowsError(try f.validate()) { XCTAssertTrue("\($0)".hasPrefix("--train-batch"), "\($0)") }
    }

    func testStudyPlacesScaleWithDepth() throws {
        XCTAssertEqual(ReFTEval.studyPlaces(layers: 12).map(\.description), ["block@4:cls", "block@6:cls", "block@8:sep", "block@11:sep"])
        XCTAssertEqual(ReFTEval.studyPlaces(layers: 4).map(\.description), ["block@1:cls", "block@2:cls", "block@2:sep", "block@3:sep"])
        // the default moves last-layer [CLS]/[SEP] places to [MASK]; unset keeps the study's
        XCTAssertEqual(ReFTEval.defaultPlaces(layers: 12, lastLayer: "mask").map(\.description), ["block@4:cls", "block@6:cls", "block@8:sep", "block@11:mask"])
        XCTAssertEqual(ReFTEval.defaultPlaces(layers: 4, lastLayer: "mask").map(\.description), ["block@1:cls", "block@2:cls", "block@2:sep", "block@3:mask"])
        XCTAssertEqual(ReFTEval.defaultPlaces(layers: 2, lastLayer: "mask").map(\.description), ["block@0:cls", "block@1:mask"])
        XCTAssertEqual(ReFTEval.defaultPlaces(layers: 2, lastLayer: nil), ReFTEval.studyPlaces(layers: 2))
        // places: an index or a fraction of the depth (floor(f L), at most L - 1); positions include all
        XCTAssertEqual(try ReFTEval.parsePlaces(["0.5:mask", "1.0:all", "0:cls", "0.74:sep"], layers: 4).map(\.description),
                       ["block@2:mask", "block@3:all", "block@0:cls", "block@2:sep"])
        for bad in ["4:cls", "1.5:mask", "x:cls", "1:head", "1"] {
            XCTAssertThrowsError(try ReFTEval.parsePlaces([bad], layers: 4), bad) { XCTAssertTrue("\($0)".hasPrefix("--places"), "\($0)") }
        }
        var r = ReFTOptions(); r.lastLayerPosition = "head"
        XCTAssertThrowsError(try r.validate()) { XCTAssertTrue("\($0)".hasPrefix("--last-layer-position"), "\($0)") }
    }

    /// name -> float32 values of a safetensors file.
    func readSafetensors(_ path: String) throws -> [String: [Float]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + Int(n))) as! [String: Any]
        var out: [String: [Float]] = [:]
        for (name, v) in header where name != "__metadata__" {
            let info = v as! [String: Any], off = info["data_offsets"] as! [Int]
            let bytes = data.subdata(in: 8 + Int(n) + off[0]..<8 + Int(n) + off[1])
            out[name] = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        return out
    }
}
