// `droplab eval lens`: the logit lens (nostalgebraist 2020) for a masked LM. The hidden state
// at [MASK] after the embeddings (layer 0) and after each layer l (layer l+1) is captured at
// the `emb` / `block` sites and projected through the model's own MLM head; per layer we
// report the target's rank, probability and how often it is top-1. The last layer is the
// model's prediction.

import Autograd
import BERT
import Datasets
import Foundation
import Interventions
import Training

public struct LensOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public init() {}
    public func validate() throws { try source.validate() }
}

extension LensOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
    ]
}

public struct LensLayer: Codable, Equatable, Sendable {
    public var layer: Int          // 0 = embeddings, l + 1 = after encoder layer l
    public var accuracy: Double
    public var meanRank: Double
    public var meanProb: Double
}

public struct LensResult: Codable, Sendable {
    public var checkpoint: String
    public var options: LensOptions
    public var probes: Int
    public var layers: [LensLayer]
    public var counts: [String: ProbeCounts]
    public var seconds: Double
}

public struct LensProbeRecord: Codable, Equatable, Sendable {
    public var prompt: String, target: String, prediction: String, relation: String
    public var prob: [Double], rank: [Int], top1: [String]   // per layer 0...L
}

/// The target's score through the MLM head at one layer and position.
public struct LensScore: Equatable, Sendable {
    public var prob: Double, rank: Int, top1: Int32
}

public enum LogitLens {
    /// Per probe (in the order given), per layer 0...L, the target's scores at each of the
    /// probe's `positions` (in position order).
    public static func scores(_ k: KnowledgeSetup, _ probes: [TokenizedProbe], at positions: Position = .mask, batch: Int,
                              progress: ((Int) -> Void)? = nil) -> [[[LensScore]]] {
        let L = k.model.config.numLayers
        let sites = [Site(.emb)] + (0..<L).map { Site(.block, $0) }
        var out = [[[LensScore]]](repeating: [], count: probes.count)
        var done = 0
        let order = Dictionary(uniqueKeysWithValues: probes.enumerated().map { ($1.index, $0) })
        for pb in ProbeBatch.batches(probes, size: batch, padId: k.tokenizer.padId) {
            let iv = Interventions(), cap = Captures()
            iv.capture(sites, into: cap)
            let tape = Tape(recording: false)
            _ = k.model.encode(tape, pb.batch, interventions: iv)
            var rows: [Int32] = [], targets: [Int32] = []
            for (b, p) in pb.items.enumerated() {
                for t in positions.positions(in: p) { rows.append(pb.row(b, t)); targets.append(p.targetId) }
            }
            for site in sites {
                let s = ProbeScoring.scores(k.model, tape, hidden: cap[site]!, rows: rows, targets: targets)
                var r = 0
                for p in pb.items {
                    let n = positions.positions(in: p).count
                    out[order[p.index]!].append((r..<r + n).map { LensScore(prob: s.prob[$0], rank: s.rank[$0], top1: s.top1[$0]) })
                    r += n
                }
            }
            done += pb.items.count
            progress?(done)
        }
        return out
    }

    /// Per probe (in the order given), its record: the scores at [MASK] for layers 0...L.
    public static func records(_ k: KnowledgeSetup, _ probes: [TokenizedProbe], batch: Int,
                               progress: ((Int) -> Void)? = nil) -> [LensProbeRecord] {
        zip(probes, scores(k, probes, batch: batch, progress: progress)).map { t, per in
            let p = k.probes.probes[t.index], s = per.map { $0[0] }
            return LensProbeRecord(prompt: p.prompt, target: p.target, prediction: k.token(s.last!.top1), relation: p.relation,
                                   prob: s.map(\.prob), rank: s.map(\.rank), top1: s.map { k.token($0.top1) })
        }
    }

    public static func run(checkpoint: String, options o: LensOptions, log: @escaping (String) -> Void) throws
        -> (result: LensResult, records: [LensProbeRecord]) {
        let began = Date()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let progress = ProgressLog("lens", total: k.probes.probes.count, log: log)
        let records = self.records(k, k.probes.tokenized, batch: o.source.batch, progress: progress.update)
        let L = k.model.config.numLayers
        let layers = (0...L).map { l in
            LensLayer(layer: l, accuracy: mean(records.map { $0.rank[l] == 0 ? 1 : 0 }),
                      meanRank: mean(records.map { Double($0.rank[l]) }), meanProb: mean(records.map { $0.prob[l] }))
        }
        let r = LensResult(checkpoint: checkpoint, options: o, probes: records.count, layers: layers, counts: k.probes.counts,
                           seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
