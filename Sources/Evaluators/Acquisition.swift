// Fact acquisition curves: how a pretraining run comes to know the facts of `corpus facts`.
// At every checkpoint a run saved (`pretrain --save-every`: step-NNNNNN.h5, and last.h5), the
// top-1 accuracy at [MASK] of the corpus's probes, per exposure bucket (times the corpus stated
// the fact: 0 is the control, never stated) and per pattern split ("train": patterns the corpus
// states facts in; "held-out": patterns it never contains, so a correct answer there is the fact
// extracted, not the sentence remembered). Each (bucket, split) group is a seeded sample of
// `perGroup` probes, the same at every checkpoint, so the curves differ only by training.
// A result the original study does not have: does dropout slow or prevent fact acquisition, and
// at what exposure?

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Text
import Training

public struct AcquisitionOptions: CommandOptions, Equatable, Sendable {
    public var probes = "checkpoints/facts/probes.jsonl"   // `corpus facts` probes ("bucket" and "split" on every line)
    public var perGroup = 1000                              // probes per (bucket, split), a seeded sample; 0: all
    public var seed: UInt64 = 0
    public var batch = 128
    public init() {}

    public func validate() throws {
        try Check.nonEmpty(probes, "probes")
        try Check.range(perGroup, 0...10_000_000, "per-group")
        try Check.range(batch, 1...Check.maxBatch, "batch")
    }
}

extension AcquisitionOptions: OptionHelp {
    public static let help: [String: String] = [
        "probes": "Probes of `droplab corpus facts` (with \"bucket\" and \"split\" on every line).",
        "perGroup": "Probes per (bucket, split): a seeded sample, the same at every checkpoint (0: all).",
        "seed": "Seed of the per-group samples.",
        "batch": "Probes per forward pass.",
    ]
}

/// Accuracy of one (bucket, split) group at one checkpoint.
public struct AcquisitionGroup: Codable, Equatable, Sendable {
    public var bucket: Int
    public var split: String
    public var probes: Int
    public var correct: Int
    public var accuracy: Double { probes > 0 ? Double(correct) / Double(probes) : 0 }

    enum CodingKeys: String, CodingKey { case bucket, split, probes, correct, accuracy }
    public init(bucket: Int, split: String, probes: Int, correct: Int) {
        self.bucket = bucket; self.split = split; self.probes = probes; self.correct = correct
    }
    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        bucket = try c.decode(Int.self, forKey: .bucket); split = try c.decode(String.self, forKey: .split)
        probes = try c.decode(Int.self, forKey: .probes); correct = try c.decode(Int.self, forKey: .correct)
    }
    public func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(bucket, forKey: .bucket); try c.encode(split, forKey: .split); try c.encode(probes, forKey: .probes)
        try c.encode(correct, forKey: .correct); try c.encode(accuracy, forKey: .accuracy)
    }
}

public struct AcquisitionPoint: Codable, Equatable, Sendable {
    public var checkpoint: String          // file name inside the run directory
    public var step: Int
    public var tokens: Int?                // training tokens at that step (the checkpoint's training state)
    public var groups: [AcquisitionGroup]
}

public struct AcquisitionResult: Codable, Sendable {
    public var run: String
    public var options: AcquisitionOptions
    public var points: [AcquisitionPoint]  // by step
}

public enum Acquisition {
    /// The probe groups: (bucket, split) -> a seeded sample of at most `perGroup` probes.
    static func groups(_ set: ProbeSet, perGroup: Int, seed: UInt64) throws -> [(bucket: Int, split: String, items: [TokenizedProbe])] {
        var byKey: [String: (bucket: Int, split: String, items: [TokenizedProbe])] = [:]
        for t in set.tokenized {
            let p = set.probes[t.index]
            guard let b = p.bucket, let s = p.split else {
                throw ProbeError("probe '\(p.prompt)' has no \"bucket\" or \"split\": acquisition reads the probes of `droplab corpus facts`")
            }
            byKey["\(b)/\(s)", default: (b, s, [])].items.append(t)
        }
        return byKey.values.sorted { ($0.bucket, $0.split) < ($1.bucket, $1.split) }.map { g in
            guard perGroup > 0, g.items.count > perGroup else { return g }
            var rng = RNG(seed: seed ^ UInt64(g.bucket) &* 0x9E37_79B9_7F4A_7C15 ^ (g.split == "train" ? 1 : 2))
            var items = g.items
            rng.shuffle(&items)
            return (g.bucket, g.split, Array(items.prefix(perGroup)).sorted { $0.index < $1.index })
        }
    }

    /// Top-1 accuracy of every group at [MASK] under `model`.
    static func measure(_ model: BertModel, _ groups: [(bucket: Int, split: String, items: [TokenizedProbe])], batch: Int,
                        pad: Int32) -> [AcquisitionGroup] {
        groups.map { g in
            let correct = ProbeBatch.batches(g.items, size: batch, padId: pad).reduce(0) { n, pb in
                n + ProbeScoring.run(model, pb).correct.filter { $0 }.count
            }
            return AcquisitionGroup(bucket: g.bucket, split: g.split, probes: g.items.count, correct: correct)
        }
    }

    /// The run's training checkpoints (step-NNNNNN.h5 and last.h5) by the step their state
    /// records, one per step (last.h5 is usually a copy of the latest step file, or the run's end).
    static func checkpoints(_ runDir: String) throws -> [(name: String, step: Int, tokens: Int)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: runDir)
            .filter { ($0.hasPrefix("step-") && $0.hasSuffix(".h5")) || $0 == "last.h5" }.sorted()
        var byStep: [Int: (name: String, step: Int, tokens: Int)] = [:]
        for n in names {
            guard let p = try Checkpoint.trainingProgress(runDir + "/" + n) else { continue }
            if byStep[p.step] == nil || byStep[p.step]!.name == "last.h5" { byStep[p.step] = (n, p.step, p.tokens) }
        }
        return byStep.values.sorted { $0.step < $1.step }
    }

    /// Measure every checkpoint of `runDir`.
    public static func run(runDir: String, options o: AcquisitionOptions, log: @escaping (String) -> Void) throws -> AcquisitionResult {
        try o.validate()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: runDir, isDirectory: &isDir), isDir.boolValue else {
            throw OptionError(key: nil, "\(runDir): not a run directory (no such directory)")
        }
        let cks = try checkpoints(runDir)
        guard let first = cks.first else { throw OptionError(key: nil, "\(runDir): no step-*.h5 or last.h5 (pretrain --save-every N saves them)") }
        let (model0, tok) = try KnowledgeSetup.frozenModel(runDir + "/" + first.name)
        var po = ProbeOptions(); po.probes = o.probes
        let set = try ProbeSet.load(po, tokenizer: tok, maxLength: model0.config.maxPositions)
        let groups = try groups(set, perGroup: o.perGroup, seed: o.seed)
        log("acquisition: \(cks.count) checkpoints of \(runDir); \(groups.count) groups of up to \(o.perGroup) probes ("
            + groups.map { "x\($0.bucket) \($0.split) \($0.items.count)" }.joined(separator: ", ") + ")")
        var points: [AcquisitionPoint] = []
        for ck in cks {
            let t0 = Date()
            let (model, ckTok) = try KnowledgeSetup.frozenModel(runDir + "/" + ck.name)
            guard ckTok.vocab == tok.vocab else { throw CheckpointError(ck.name, "has another vocabulary than \(first.name)") }
            let g = measure(model, groups, batch: o.batch, pad: tok.padId)
            points.append(AcquisitionPoint(checkpoint: ck.name, step: ck.step, tokens: ck.tokens, groups: g))
            log(String(format: "acquisition: %@ (step %d): ", ck.name, ck.step)
                + g.map { String(format: "x%d %@ %.3f", $0.bucket, $0.split, $0.accuracy) }.joined(separator: ", ")
                + String(format: " (%.0fs)", Date().timeIntervalSince(t0)))
        }
        return AcquisitionResult(run: runDir, options: o, points: points)
    }
}
