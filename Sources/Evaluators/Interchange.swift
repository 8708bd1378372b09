// `droplab eval interchange`: interchange (exchange) interventions (Geiger et al. 2021; the
// pyvene idea). Pairs of probes share a relation and pattern but differ in subject and answer
// ("ottawa is the capital of [MASK]." <- "paris is the capital of [MASK]."). For each site
// kind, layer and position class, the source run's state at that position is patched into
// the base run at the same class of position; we count how often the base's top-1 prediction
// becomes the source's answer (interchange accuracy).

import Autograd
import BERT
import Datasets
import Foundation
import Training
import Interventions

public struct InterchangeOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var kinds = ["block", "ffn.out", "attn.out"]
    public var positions: [Position] = [.subjectFirst, .subjectLast, .mask]
    public var pairs: Int? = nil              // at most this many pairs (default: one per probe)
    public init() {}

    public func validate() throws {
        try source.validate()
        guard !kinds.isEmpty else { throw OptionError(key: "kinds", "must name at least one site kind") }
        for k in kinds where SiteKind(rawValue: k) == nil || ["emb.word", "attn.probs", "attn.heads"].contains(k) {
            throw OptionError(key: "kinds", "'\(k)' is not one of emb, attn.out, ffn.pre, ffn.act, ffn.out, block")
        }
        for p in positions where p == .all || p == .subject {
            throw OptionError(key: "positions", "'\(p.rawValue)' names several tokens; use subject-first, subject-last, mask, cls or sep")
        }
        if let n = pairs, n < 1 { throw OptionError(key: "pairs", "must be at least 1, got \(n)") }
    }
}

extension InterchangeOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
        "kinds": "Site kinds patched: emb, attn.out, ffn.pre, ffn.act, ffn.out, block.",
        "positions": "Positions patched: subject-first, subject-last, mask, cls, sep.",
        "pairs": "At most this many pairs (unset: one per probe).",
    ]
}

public struct InterchangeCell: Codable, Equatable, Sendable {
    public var kind: String, layer: Int, position: String
    public var interchangeAccuracy: Double     // base top-1 becomes the source's answer
    public var pairs: Int
}

public struct InterchangeResult: Codable, Sendable {
    public var checkpoint: String
    public var options: InterchangeOptions
    public var pairs: Int
    public var baseAccuracy: Double            // clean base runs right
    public var sourceAccuracy: Double
    public var cells: [InterchangeCell]
    public var counts: [String: ProbeCounts]
    public var seconds: Double
}

public struct InterchangePairRecord: Codable, Sendable {
    public var base: String, source: String, baseTarget: String, sourceTarget: String
    public var basePrediction: String
    public var moved: [String: Bool]           // "kind@layer:position" -> top-1 became the source's answer
}

public enum Interchange {
    /// Base/source pairs: same relation and pattern, different answers, each with the positions.
    public static func pairs(_ set: ProbeSet, positions: [Position], limit: Int?, seed: UInt64) -> [(base: Int, source: Int)] {
        let usable = set.tokenized.filter { t in positions.allSatisfy { !$0.positions(in: t).isEmpty } }.map(\.index)
        let groups = Dictionary(grouping: usable, by: { "\(set.probes[$0].relation)\u{1}\(set.probes[$0].pattern)" })
        var rng = RNG(seed: seed ^ 0x6963)
        var out: [(Int, Int)] = []
        for key in groups.keys.sorted() {
            let g = groups[key]!
            for b in g {
                let candidates = g.filter { set.tokenized[$0].targetId != set.tokenized[b].targetId }
                if !candidates.isEmpty { out.append((b, candidates[rng.int(candidates.count)])) }
            }
        }
        if let limit, limit < out.count {
            rng.shuffle(&out)
            out = Array(out.prefix(limit)).sorted { $0.0 < $1.0 }
        }
        return out
    }

    public static func run(checkpoint: String, options o: InterchangeOptions, log: @escaping (String) -> Void) throws
        -> (result: InterchangeResult, records: [InterchangePairRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let L = k.model.config.numLayers, kinds = o.kinds.map { SiteKind(rawValue: $0)! }
        let ps = pairs(k.probes, positions: o.positions, limit: o.pairs, seed: o.source.seed)
        guard !ps.isEmpty else { throw ProbeError("interchange: no pair of probes shares a relation and pattern with different answers") }
        log("interchange: \(ps.count) pairs, \(kinds.count * L * o.positions.count) interventions each")
        let sites = kinds.flatMap { kind in kind.perLayer ? (0..<L).map { Site(kind, $0) } : [Site(kind)] }
        var moved = [[String: Bool]](repeating: [:], count: ps.count)
        var baseRight = 0, sourceRight = 0
        var basePred = [Int32](repeating: 0, count: ps.count)
        let progress = ProgressLog("interchange", total: ps.count, log: log)
        let per = max(1, o.source.batch)
        for start in stride(from: 0, to: ps.count, by: per) {
            let chunk = Array(ps[start..<min(start + per, ps.count)])
            let base = ProbeBatch(chunk.map { k.probes.tokenized[$0.base] }, padId: k.tokenizer.padId)
            let source = ProbeBatch(chunk.map { k.probes.tokenized[$0.source] }, padId: k.tokenizer.padId)
            let cap = Captures(), civ = Interventions()
            civ.capture(sites, into: cap)
            let s = ProbeScoring.run(k.model, source, civ)
            let b0 = ProbeScoring.run(k.model, base)
            sourceRight += s.rank.filter { $0 == 0 }.count
            baseRight += b0.rank.filter { $0 == 0 }.count
            for (i, t) in b0.top1.enumerated() { basePred[start + i] = t }
            for site in sites {
                for pos in o.positions {
                    let iv = Interventions()
                    let rows = base.items.indices.map { base.row($0, pos.positions(in: base.items[$0])[0]) }
                    let from = source.items.indices.map { source.row($0, pos.positions(in: source.items[$0])[0]) }
                    iv.patch(site, rows: rows, with: copyRows(cap[site]!, from))
                    let r = ProbeScoring.run(k.model, base, iv)
                    for i in chunk.indices { moved[start + i]["\(site):\(pos.rawValue)"] = r.top1[i] == source.items[i].targetId }
                }
            }
            progress.update(start + chunk.count)
        }
        var cells: [InterchangeCell] = []
        for site in sites {
            for pos in o.positions {
                let key = "\(site):\(pos.rawValue)"
                cells.append(InterchangeCell(kind: site.kind.rawValue, layer: site.layer, position: pos.rawValue,
                                             interchangeAccuracy: mean(moved.map { $0[key]! ? 1 : 0 }), pairs: ps.count))
            }
        }
        let records = ps.enumerated().map { i, p in
            InterchangePairRecord(base: k.probes.probes[p.base].prompt, source: k.probes.probes[p.source].prompt,
                                  baseTarget: k.probes.probes[p.base].target, sourceTarget: k.probes.probes[p.source].target,
                                  basePrediction: k.token(basePred[i]), moved: moved[i])
        }
        let r = InterchangeResult(checkpoint: checkpoint, options: o, pairs: ps.count, baseAccuracy: Double(baseRight) / Double(ps.count),
                                  sourceAccuracy: Double(sourceRight) / Double(ps.count), cells: cells, counts: k.probes.counts,
                                  seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
