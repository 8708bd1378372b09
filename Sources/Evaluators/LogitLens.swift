// `droplab eval lens`: the logit lens (nostalgebraist 2020) for a masked LM. The hidden state
// at [MASK] after the embeddings (layer 0) and after each layer l (layer l+1) is captured at
// the `emb` / `block` sites and projected through the model's own MLM head; per layer we
// report the target's rank, probability and how often it is top-1. The last layer is the
// model's prediction.

import Autograd
import BERT
import Foundation
import Interventions

public struct LensOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public init() {}
    public func validate() throws { try source.validate() }
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

public struct LensProbeRecord: Codable, Sendable {
    public var prompt: String, target: String, prediction: String, relation: String
    public var prob: [Double], rank: [Int], top1: [String]   // per layer 0...L
}

public enum LogitLens {
    /// Per probe (in probe order), the scores at [MASK] for layers 0...L.
    public static func scores(_ k: KnowledgeSetup, batch: Int, progress: ((Int) -> Void)? = nil) -> [[(prob: Double, rank: Int, top1: Int32)]] {
        let L = k.model.config.numLayers
        let sites = [Site(.emb)] + (0..<L).map { Site(.block, $0) }
        var out = [[(prob: Double, rank: Int, top1: Int32)]](repeating: [], count: k.probes.tokenized.count)
        var done = 0
        for pb in ProbeBatch.batches(k.probes.tokenized, size: batch, padId: k.tokenizer.padId) {
            let iv = Interventions(), cap = Captures()
            iv.capture(sites, into: cap)
            let tape = Tape(recording: false)
            _ = k.model.encode(tape, pb.batch, interventions: iv)
            for site in sites {
                let s = ProbeScoring.scores(k.model, tape, hidden: cap[site]!, rows: pb.maskRows, targets: pb.targets)
                for (b, p) in pb.items.enumerated() { out[p.index].append((s.prob[b], s.rank[b], s.top1[b])) }
            }
            done += pb.items.count
            progress?(done)
        }
        return out
    }

    public static func run(checkpoint: String, options o: LensOptions, log: @escaping (String) -> Void) throws
        -> (result: LensResult, records: [LensProbeRecord]) {
        let began = Date()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let progress = ProgressLog("lens", total: k.probes.probes.count, log: log)
        let per = scores(k, batch: o.source.batch, progress: progress.update)
        let L = k.model.config.numLayers
        let layers = (0...L).map { l in
            LensLayer(layer: l, accuracy: mean(per.map { $0[l].rank == 0 ? 1 : 0 }),
                      meanRank: mean(per.map { Double($0[l].rank) }), meanProb: mean(per.map { $0[l].prob }))
        }
        let records = zip(k.probes.probes, per).map { p, s in
            LensProbeRecord(prompt: p.prompt, target: p.target, prediction: k.token(s[L].top1), relation: p.relation,
                            prob: s.map(\.prob), rank: s.map(\.rank), top1: s.map { k.token($0.top1) })
        }
        let r = LensResult(checkpoint: checkpoint, options: o, probes: per.count, layers: layers, counts: k.probes.counts,
                           seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
