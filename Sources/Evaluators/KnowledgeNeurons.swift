// `droplab eval kn`: knowledge neurons (Dai et al. 2022) and the drop-dropout study's concept
// analysis.
//  1. Integrated gradients of the target probability over FFN units at [MASK], every layer
//     (site ffn.pre as the study; --site ffn.act for Dai et al.'s choice), --steps points.
//  2. A probe's knowledge neurons: units whose attribution exceeds --threshold (0.2) x the
//     probe's largest attribution over all layers. Dai et al.'s refinement keeps, per fact,
//     the units shared by >= --share (0.7) of its paraphrases.
//  3. Per concept (gold object): cluster its probes by their neuron sets (k-means on binary
//     vectors, k = 2..24, the k with the best silhouette, seeded k-means++); a concept whose
//     probes cannot be split (fewer than 3, or all sets equal) is one cluster.
//  4. Per cluster: suppress (x0) or amplify (x3) its --top-neurons (10) most frequent neurons
//     at [MASK] (a `scale` intervention), measured on the cluster's own probes, on the same
//     concept's other clusters, and, as a baseline, as many random units of the same layers
//     on the own probes.

import Autograd
import BERT
import Datasets
import Foundation
import Training
import Interventions
import Text

public struct KNOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var site = SiteKind.ffnPre.rawValue   // ffn.pre (the study) or ffn.act (Dai et al.)
    public var steps = 20
    public var alphas: [Double] = []
    public var threshold = 0.2                    // of the probe's largest attribution
    public var share = 0.7                        // refinement: share of a fact's paraphrases
    public var maxClusters = 24
    public var topNeurons = 10                    // neurons suppressed/amplified per cluster
    public var suppress: Float = 0
    public var amplify: Float = 3
    public var concepts: Int? = nil               // most frequent concepts first (default: all)
    public var kmeansIterations: Int? = nil       // Lloyd iterations per k-means run (unset: 100)
    public var resolvedKmeansIterations: Int { kmeansIterations ?? 100 }
    public init() {}

    public func validate() throws {
        try source.validate()
        guard site == SiteKind.ffnPre.rawValue || site == SiteKind.ffnAct.rawValue else {
            throw OptionError(key: "site", "must be ffn.pre or ffn.act, got '\(site)'")
        }
        var ig = IGOptions(); ig.steps = steps; ig.alphas = alphas
        try ig.validate()
        guard threshold > 0 && threshold <= 1 else { throw OptionError(key: "threshold", "must be in (0, 1], got \(threshold)") }
        guard share > 0 && share <= 1 else { throw OptionError(key: "share", "must be in (0, 1], got \(share)") }
        guard maxClusters >= 2 else { throw OptionError(key: "max-clusters", "must be at least 2, got \(maxClusters)") }
        guard topNeurons >= 1 else { throw OptionError(key: "top-neurons", "must be at least 1, got \(topNeurons)") }
        if let c = concepts, c < 1 { throw OptionError(key: "concepts", "must be at least 1, got \(c)") }
        try Check.that(resolvedKmeansIterations >= 1, "kmeans-iterations", "must be at least 1, got \(resolvedKmeansIterations)")
    }
}

extension KNOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
        "site": "FFN site: ffn.pre (the study) or ffn.act (Dai et al.).",
        "steps": "Integrated-gradients steps.",
        "alphas": "Explicit alphas in [0, 1] (override --steps).",
        "threshold": "Keep units above this share of the probe's largest attribution.",
        "share": "Refinement: keep units shared by this share of a fact's paraphrases.",
        "maxClusters": "Largest k tried when clustering a concept's probes.",
        "topNeurons": "Neurons suppressed/amplified per cluster.",
        "suppress": "Factor a cluster's top neurons are scaled by at [MASK] to suppress them.",
        "amplify": "Factor a cluster's top neurons are scaled by at [MASK] to amplify them.",
        "concepts": "Concepts analysed, most frequent first (unset: all).",
        "kmeansIterations": "Largest number of Lloyd iterations of each k-means run (one k-means++ start per k; unset: 100).",
    ]
}

public struct Neuron: Codable, Hashable, Comparable, Sendable {
    public var layer: Int, unit: Int
    public static func < (a: Neuron, b: Neuron) -> Bool { (a.layer, a.unit) < (b.layer, b.unit) }
}

public struct ScalingEffect: Codable, Equatable, Sendable {
    public var probes = 0
    public var probChange = 0.0            // mean p_after - p_before
    public var relativeChange = 0.0        // mean (p_after - p_before) / p_before
    public var accuracyBefore = 0.0
    public var accuracyAfter = 0.0
}

public struct KNEffects: Codable, Equatable, Sendable {
    public var own = ScalingEffect(), other = ScalingEffect(), random = ScalingEffect()
}

public struct KNConcept: Codable, Equatable, Sendable {
    public var concept: String
    public var probes: Int
    public var clusters: Int
    public var silhouette: Double?
}

public struct KNResult: Codable, Sendable {
    public var checkpoint: String
    public var options: KNOptions
    public var probes: Int
    public var neuronsPerProbe: Double
    public var neuronsPerLayer: [Double]           // mean per probe, by layer
    public var refinedNeuronsPerFact: Double?      // facts with >= 2 paraphrases
    public var clustersPerConcept: Double
    public var suppress: KNEffects
    public var amplify: KNEffects
    public var concepts: [KNConcept]
    public var counts: [String: ProbeCounts]
    public var seconds: Double
}

public struct KNProbeRecord: Codable, Equatable, Sendable {
    public var prompt: String, target: String, prediction: String, relation: String
    public var prob: Double
    public var neurons: [Neuron]
    public var attribution: [Double]           // of each neuron
    public var cluster: Int?                   // within the probe's concept (set by `run`)
}

public enum KnowledgeNeurons {
    /// Units above threshold x the largest attribution (over all layers).
    public static func neurons(_ a: ProbeAttribution, layers: [Int], threshold: Double) -> [Neuron] {
        let mx = a.values.flatMap { $0 }.max() ?? 0
        guard mx > 0 else { return [] }
        var out: [Neuron] = []
        for (li, v) in a.values.enumerated() {
            for (u, x) in v.enumerated() where Double(x) > threshold * Double(mx) { out.append(Neuron(layer: layers[li], unit: u)) }
        }
        return out
    }

    /// Neurons present in at least `share` of the sets.
    public static func refine(_ sets: [[Neuron]], share: Double) -> [Neuron] {
        var count: [Neuron: Int] = [:]
        for s in sets { for n in Set(s) { count[n, default: 0] += 1 } }
        return count.filter { Double($0.value) >= share * Double(sets.count) }.keys.sorted()
    }

    /// IG attributions of `probes` over the FFN units of every layer at [MASK], with kn's settings.
    public static func attributions(_ k: KnowledgeSetup, _ probes: [TokenizedProbe], options o: KNOptions,
                                    progress: ((Int) -> Void)? = nil) -> [ProbeAttribution] {
        var ig = IGOptions(); ig.steps = o.steps; ig.alphas = o.alphas
        return IntegratedGradients.attributions(k, probes, kind: SiteKind(rawValue: o.site)!, layers: Array(0..<k.model.config.numLayers),
                                                position: .mask, alphas: ig.alphaList, batch: o.source.batch, progress: progress)
    }

    /// Probe `p`'s record from its attributions (every layer, at [MASK]): its knowledge neurons
    /// (above `threshold` x the largest attribution) with their attributions; no cluster.
    public static func record(_ k: KnowledgeSetup, _ p: TokenizedProbe, _ a: ProbeAttribution, threshold: Double) -> KNProbeRecord {
        let probe = k.probes.probes[p.index]
        let ns = neurons(a, layers: Array(a.values.indices), threshold: threshold)
        return KNProbeRecord(prompt: probe.prompt, target: probe.target, prediction: k.token(a.top1), relation: probe.relation,
                             prob: a.prob, neurons: ns, attribution: ns.map { Double(a.values[$0.layer][$0.unit]) }, cluster: nil)
    }

    /// Target scores of `probes` at [MASK] with `neurons` of `kind` multiplied by `factor`.
    static func scaled(_ k: KnowledgeSetup, _ probes: [TokenizedProbe], kind: SiteKind, neurons: [Neuron], factor: Float,
                       batch: Int) -> [Int: (prob: Double, right: Bool)] {
        var out: [Int: (Double, Bool)] = [:]
        let D = k.model.config.intermediateSize
        let byLayer = Dictionary(grouping: neurons, by: \.layer)
        for pb in ProbeBatch.batches(probes, size: batch, padId: k.tokenizer.padId) {
            let iv = Interventions()
            for (l, ns) in byLayer {
                iv.scale(Site(kind, l), rows: pb.maskRows, units: Array(repeating: ns.map(\.unit), count: pb.items.count), by: factor, width: D)
            }
            let s = ProbeScoring.run(k.model, pb, iv)
            for (b, p) in pb.items.enumerated() { out[p.index] = (s.prob[b], s.rank[b] == 0) }
        }
        return out
    }

    public static func run(checkpoint: String, options o: KNOptions, log: @escaping (String) -> Void) throws
        -> (result: KNResult, records: [KNProbeRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let kind = SiteKind(rawValue: o.site)!
        let layers = Array(0..<k.model.config.numLayers)
        let progress = ProgressLog("kn: attributions", total: k.probes.probes.count, log: log)
        let probes = k.probes.probes, toks = k.probes.tokenized
        let attrs = attributions(k, toks, options: o, progress: progress.update)
        var records = zip(toks, attrs).map { record(k, $0, $1, threshold: o.threshold) }
        let sets = records.map(\.neurons)

        // Dai et al.'s refinement over each fact's paraphrases
        let byFact = Dictionary(grouping: probes.indices, by: { probes[$0].tuple })
        let refined = byFact.values.filter { $0.count >= 2 }.map { refine($0.map { sets[$0] }, share: o.share).count }

        // concepts, most frequent first
        var byConcept = Dictionary(grouping: probes.indices, by: { probes[$0].concept }).map { ($0.key, $0.value) }
        byConcept.sort { ($0.1.count, $1.0) > ($1.1.count, $0.0) }
        if let c = o.concepts { byConcept = Array(byConcept.prefix(c)) }
        var conceptRows: [KNConcept] = []
        var effects: [String: [String: [(before: Double, after: Double, rightBefore: Bool, rightAfter: Bool)]]] = [:]
        let clean = attrs.map { ($0.prob, $0.top1) }
        var rng = RNG(seed: o.source.seed ^ 0x6B6E)
        let D = k.model.config.intermediateSize
        log("kn: clustering and scaling over \(byConcept.count) concept(s)")
        for (concept, idx) in byConcept {
            let (assign, sil) = Clustering.best(idx.map { sets[$0] }, maxK: o.maxClusters, seed: o.source.seed ^ StableHash.of(concept),
                                            iterations: o.resolvedKmeansIterations)
            let K = (assign.max() ?? 0) + 1
            for (j, i) in idx.enumerated() { records[i].cluster = assign[j] }
            conceptRows.append(KNConcept(concept: concept, probes: idx.count, clusters: K, silhouette: sil))
            for c in 0..<K {
                let own = idx.indices.filter { assign[$0] == c }.map { idx[$0] }
                let other = idx.indices.filter { assign[$0] != c }.map { idx[$0] }
                let top = Clustering.frequent(own.map { sets[$0] }, top: o.topNeurons).map(\.neuron)
                guard !top.isEmpty else { continue }
                let random = top.map { Neuron(layer: $0.layer, unit: rng.int(D)) }
                for (name, factor) in [("suppress", o.suppress), ("amplify", o.amplify)] {
                    for (group, members, ns) in [("own", own, top), ("other", other, top), ("random", own, random)] where !members.isEmpty {
                        let after = scaled(k, members.map { toks[$0] }, kind: kind, neurons: ns, factor: factor, batch: o.source.batch)
                        for i in members {
                            effects[name, default: [:]][group, default: []].append(
                                (clean[i].0, after[i]!.prob, clean[i].1 == toks[i].targetId, after[i]!.right))
                        }
                    }
                }
            }
        }
        func effect(_ name: String, _ group: String) -> ScalingEffect {
            let e = effects[name]?[group] ?? []
            guard !e.isEmpty else { return ScalingEffect() }
            return ScalingEffect(probes: e.count, probChange: mean(e.map { $0.after - $0.before }),
                                 relativeChange: mean(e.map { ($0.after - $0.before) / max($0.before, 1e-30) }),
                                 accuracyBefore: mean(e.map { $0.rightBefore ? 1 : 0 }), accuracyAfter: mean(e.map { $0.rightAfter ? 1 : 0 }))
        }
        func summary(_ name: String) -> KNEffects { KNEffects(own: effect(name, "own"), other: effect(name, "other"), random: effect(name, "random")) }
        let r = KNResult(checkpoint: checkpoint, options: o, probes: probes.count, neuronsPerProbe: mean(sets.map { Double($0.count) }),
                         neuronsPerLayer: layers.map { l in mean(sets.map { s in Double(s.filter { $0.layer == l }.count) }) },
                         refinedNeuronsPerFact: finite(mean(refined.map(Double.init))),
                         clustersPerConcept: mean(conceptRows.map { Double($0.clusters) }),
                         suppress: summary("suppress"), amplify: summary("amplify"), concepts: conceptRows,
                         counts: k.probes.counts, seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}

/// k-means over binary vectors (sets of neurons) with the number of clusters chosen by the
/// silhouette (Rousseeuw 1987), Euclidean distance.
public enum Clustering {
    /// Assignments and the silhouette of the best k in 2...maxK (k < n); one cluster (nil
    /// silhouette) when the sets cannot be split. `restarts`: k-means++ seedings tried per k (the
    /// best silhouette wins), as one seeding can end in a poor local optimum; `eval kn` keeps the
    /// one it has always used, so that its recorded results stay comparable.
    public static func best(_ sets: [[Neuron]], maxK: Int, seed: UInt64, iterations: Int, restarts: Int = 1) -> (assign: [Int], silhouette: Double?) {
        let n = sets.count
        let dims = Dictionary(uniqueKeysWithValues: Set(sets.flatMap { $0 }).sorted().enumerated().map { ($1, $0) })
        let pts = sets.map { s in Set(s).map { dims[$0]! }.sorted() }
        let dist = (0..<n).map { i in (0..<n).map { j in
            Double(pts[i].count + pts[j].count - 2 * Set(pts[i]).intersection(pts[j]).count).squareRoot() } }
        guard n >= 3, Set(pts).count >= 2 else { return ([Int](repeating: 0, count: n), nil) }
        var bestAssign = [Int](repeating: 0, count: n), bestScore = -Double.infinity
        for k in 2...min(maxK, n - 1) {
            for r in 0..<UInt64(max(restarts, 1)) {
                let a = kmeans(pts, dims: dims.count, k: k, seed: seed &+ UInt64(k) &+ (r << 32), iterations: iterations)
                guard Set(a).count >= 2 else { continue }
                let s = silhouette(dist, a)
                if s > bestScore { bestScore = s; bestAssign = a }
            }
        }
        return bestScore.isFinite ? (bestAssign, bestScore) : ([Int](repeating: 0, count: n), nil)
    }

    /// The `top` neurons in most of `sets`, with the number of sets holding each, most first
    /// (ties: lower layer and unit first): a cluster's neurons.
    public static func frequent(_ sets: [[Neuron]], top: Int) -> [(neuron: Neuron, sets: Int)] {
        var freq: [Neuron: Int] = [:]
        for s in sets { for n in Set(s) { freq[n, default: 0] += 1 } }
        return freq.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(top).map { ($0.key, $0.value) }
    }

    /// Lloyd's k-means with k-means++ seeding on sparse binary points; labels renumbered 0..<K.
    static func kmeans(_ pts: [[Int]], dims: Int, k: Int, seed: UInt64, iterations: Int) -> [Int] {
        var rng = RNG(seed: seed)
        func d2(_ p: [Int], _ c: [Double], _ cn: Double) -> Double {
            var dot = 0.0
            for i in p { dot += c[i] }
            return Double(p.count) - 2 * dot + cn
        }
        func dense(_ p: [Int]) -> [Double] { var c = [Double](repeating: 0, count: dims); for i in p { c[i] = 1 }; return c }
        var centers = [dense(pts[rng.int(pts.count)])]
        while centers.count < k {
            let w = pts.map { p in centers.map { d2(p, $0, $0.reduce(0) { $0 + $1 * $1 }) }.min()! }
            let total = w.reduce(0, +)
            guard total > 0 else { break }
            var r = Double(rng.uniform()) * total, pick = 0
            for (i, x) in w.enumerated() { r -= x; if r <= 0 { pick = i; break } }
            centers.append(dense(pts[pick]))
        }
        var assign = [Int](repeating: 0, count: pts.count)
        for _ in 0..<iterations {
            let norms = centers.map { $0.reduce(0) { $0 + $1 * $1 } }
            let next = pts.map { p in centers.indices.min { d2(p, centers[$0], norms[$0]) < d2(p, centers[$1], norms[$1]) }! }
            if next == assign && centers.count > 0 { assign = next; break }
            assign = next
            for c in centers.indices {
                let members = pts.indices.filter { assign[$0] == c }
                guard !members.isEmpty else { continue }
                var m = [Double](repeating: 0, count: dims)
                for i in members { for d in pts[i] { m[d] += 1 } }
                centers[c] = m.map { $0 / Double(members.count) }
            }
        }
        let order = Array(Set(assign)).sorted()
        return assign.map { order.firstIndex(of: $0)! }
    }

    /// Mean silhouette over points; a point alone in its cluster scores 0.
    static func silhouette(_ dist: [[Double]], _ a: [Int]) -> Double {
        let n = a.count, K = (a.max() ?? 0) + 1
        var total = 0.0
        for i in 0..<n {
            var sum = [Double](repeating: 0, count: K), cnt = [Int](repeating: 0, count: K)
            for j in 0..<n where j != i { sum[a[j]] += dist[i][j]; cnt[a[j]] += 1 }
            guard cnt[a[i]] > 0 else { continue }
            let own = sum[a[i]] / Double(cnt[a[i]])
            let other = (0..<K).filter { $0 != a[i] && cnt[$0] > 0 }.map { sum[$0] / Double(cnt[$0]) }.min() ?? 0
            let m = max(own, other)
            total += m > 0 ? (other - own) / m : 0
        }
        return total / Double(n)
    }
}
