// A tiny BERT that knows a handful of synthetic facts, trained in the test through the shared
// Trainer on cloze sentences with the object masked: 16 subjects x 2 relations, 5 paraphrase
// templates in all, over the test vocabulary. The knowledge evaluators' tests run on it.

import Autograd
import BERT
import Checkpoint
@testable import Datasets
@testable import Evaluators
import Foundation
import Text
import Training

enum FactModel {
    static let subjects = ["dog", "cat", "fish", "king", "book", "church", "child", "atom", "bank", "carbon", "chain", "island",
                           "city", "river", "house", "blood"]
    static let countries = ["france", "germany", "england", "russia", "canada", "china", "india", "japan", "spain"]
    static let fields = ["music", "art", "business", "science"]
    static let relations: [(name: String, templates: [String], objects: [String])] = [
        ("lives", ["[X] lived in [Y] .", "the home of [X] is [Y] .", "[X] was born in [Y] ."], countries),
        ("works", ["[X] works in [Y] .", "the field of [X] is [Y] ."], fields),
    ]

    /// The facts as user probes (JSONL lines): object = a seeded choice per (subject, relation).
    static func probeLines() -> [String] {
        var rng = RNG(seed: 42)
        var lines: [String] = []
        for s in subjects {
            for r in relations {
                let y = r.objects[rng.int(r.objects.count)]
                for (k, t) in r.templates.enumerated() {
                    let o: [String: Any] = ["prompt": t.replacingOccurrences(of: "[X]", with: s).replacingOccurrences(of: "[Y]", with: "[MASK]"),
                                            "target": y, "subject": s, "relation": r.name, "pattern": k, "fact": "\(r.name):\(s)"]
                    lines.append(String(decoding: try! JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self))
                }
            }
        }
        return lines
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let vocabFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TextTests/Fixtures/vocab.txt").path

    /// Cloze batches: random probes, label only at [MASK].
    struct Cloze: TrainingData {
        struct Cursor: Codable { var rng: UInt64 }
        var cursor: Cursor
        let probes: [TokenizedProbe], size: Int, pad: Int32
        mutating func next() throws -> (batch: Batch, labels: [Int32])? {
            var rng = RNG(state: cursor.rng)
            let items = (0..<size).map { _ in probes[rng.int(probes.count)] }
            cursor.rng = rng.state
            let pb = ProbeBatch(items, padId: pad)
            var labels = [Int32](repeating: -100, count: pb.batch.ids.count)
            for (b, r) in pb.maskRows.enumerated() { labels[Int(r)] = items[b].targetId }
            return (pb.batch, labels)
        }
        func tokens(in item: (batch: Batch, labels: [Int32])) -> Int { item.batch.ids.count }
    }

    /// The trained model every knowledge evaluator test runs on: a committed checkpoint
    /// (weights only, 1.4 MB), so the evaluators see the same weights on every CPU. Training it
    /// in each test process gave a different model under each BLAS kernel (400 Adam steps
    /// amplify float32 rounding): the IG completeness error at 50 steps was 0.3% under one
    /// kernel and 4.2% under another, a property of the model, not of IG. `train(into:)` makes
    /// it (`DROPLAB_WRITE_FIXTURES=1 swift test --filter FactModelTests` rewrites it), and
    /// FactModelTests checks that training still gives a model that knows its facts.
    static let fixture = fixtures + "/fact_model.h5"

    /// (checkpoint, probes file): the committed model and its facts as user probes.
    static let trained: (checkpoint: String, probes: String) = {
        let dir = NSTemporaryDirectory() + "droplab-factmodel-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let probesFile = dir + "/facts.jsonl"
        try! (probeLines().joined(separator: "\n") + "\n").write(toFile: probesFile, atomically: true, encoding: .utf8)
        return (fixture, probesFile)
    }()

    /// Train the fact model from seed 3 (400 steps of cloze batches) and write its weights to
    /// `path`.
    static func train(to path: String) throws {
        let dir = NSTemporaryDirectory() + "droplab-factmodel-train-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tok = try WordPieceTokenizer(vocabFile: vocabFile)
        var o = ProbeOptions(); o.probes = trained.probes
        let set = try ProbeSet.load(o, tokenizer: tok, maxLength: 32)
        precondition(set.probes.count == subjects.count * 5, "fact probes lost: \(set.counts)")
        var config = BertConfig(vocabSize: tok.vocab.count, hiddenSize: 64, numLayers: 2, numHeads: 2, intermediateSize: 128, maxPositions: 32)
        config.hiddenDropout = 0; config.attentionDropout = 0
        let model = BertModel(config: config)
        model.initialize(seed: 3)
        let steps = 400
        var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: 3e-3, warmupSteps: 20, totalSteps: steps),
                                  hiddenDropout: 0, attentionDropout: 0, seed: 1)
        topt.logEvery = steps; topt.adamw.weightDecay = 0
        let trainer = Trainer(model: model, vocab: tok.vocab, data: Cloze(cursor: .init(rng: 7), probes: set.tokenized, size: 32, pad: tok.padId),
                              options: topt, runDir: dir + "/run",
                              loss: { tape, m, item, plan in m.mlmLoss(tape, item.batch, labels: item.labels, dropout: plan) })
        trainer.log = { _ in }
        _ = try trainer.run()
        try Checkpoint.save(model, vocab: tok.vocab, to: path)
    }

    static func setup() throws -> KnowledgeSetup {
        var o = ProbeOptions(); o.probes = trained.probes
        return try KnowledgeSetup.load(checkpoint: trained.checkpoint, probes: o, log: { _ in })
    }
}
