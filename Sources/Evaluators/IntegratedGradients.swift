// `droplab eval ig`: integrated gradients (Sundararajan et al. 2017) of the target's softmax
// probability at [MASK], F, with respect to a site's activations, one layer at a time as in
// Dai et al. 2022 (knowledge neurons, §3): with x the clean activation at the chosen
// positions and a zero baseline,
//     attr = x * mean_k dF/dz (z = alpha_k * x),   alpha_k = (k - 1/2)/m for k = 1..m  (--steps m)
// (the midpoint rule, whose error falls as 1/m^2; Dai et al.'s right Riemann sum alpha_k = k/m
// falls as 1/m: `--alphas` gives any grid, e.g. the drop-dropout study's 5 points
// `--alphas 0 0.25 0.5 0.75 1`).
// z replaces the site at those positions only (a `patch` intervention), and the `gradient`
// intervention there gives dF/dz from the ordinary backward pass; all steps of a probe run as
// one batch.
// Completeness: sum(attr) should equal F(x) - F(0); we report the relative error.

import Autograd
import BERT
import Datasets
import Foundation
import Training
import Interventions

public struct IGOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var site = SiteKind.ffnPre.rawValue    // emb.word, emb, attn.out, ffn.pre, ffn.act, ffn.out, block
    public var layers: [Int] = []                 // default: every layer
    public var position = Position.mask           // positions attributed (mask, subject, all, ...)
    public var steps = 20
    public var alphas: [Double] = []              // overrides steps when given
    public var top = 10                           // units listed per probe and layer
    public var checkSteps: Int? = 50              // completeness check: IG again at this many midpoints (unset: none)
    public init() {}

    public var alphaList: [Double] { alphas.isEmpty ? IGOptions.midpoints(steps) : alphas }
    public static func midpoints(_ m: Int) -> [Double] { (1...max(m, 1)).map { (Double($0) - 0.5) / Double(m) } }

    public func validate() throws {
        try source.validate()
        guard let kind = SiteKind(rawValue: site) else {
            throw OptionError(key: "site", "must be one of \(SiteKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(site)'")
        }
        if kind == .attnHeads || kind == .attnProbs { throw OptionError(key: "site", "\(site) is not supported by ig") }
        if steps < 1 && alphas.isEmpty { throw OptionError(key: "steps", "must be at least 1, got \(steps)") }
        if alphas.contains(where: { !($0 >= 0 && $0 <= 1) }) { throw OptionError(key: "alphas", "must lie in [0, 1]") }
        if top < 0 { throw OptionError(key: "top", "must be >= 0, got \(top)") }
        if let c = checkSteps, c < 1 { throw OptionError(key: "check-steps", "must be at least 1, got \(c)") }
        if layers.contains(where: { $0 < 0 }) { throw OptionError(key: "layers", "must be >= 0") }
    }
}

extension IGOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
        "site": "Site: emb.word, emb, attn.out, ffn.pre, ffn.act, ffn.out or block.",
        "layers": "Layers (empty: all).",
        "position": "Positions attributed: mask, subject, subject-first, subject-last, cls, sep, all.",
        "steps": "Integration points (midpoint rule: alpha = (k - 1/2)/steps, k = 1..steps).",
        "alphas": "Explicit alphas in [0, 1] (override --steps).",
        "top": "Units listed per probe in ig-probes.jsonl.",
        "checkSteps": "Completeness check: the same attributions again at this many midpoints, their aggregate completeness error recorded beside the run's (the midpoint rule's error falls as 1/steps^2, so a large error here means the path is not smooth enough, not too few steps; unset: no check).",
    ]
}

/// One probe's attributions: per layer, [positions x D] values.
public struct ProbeAttribution {
    public var prob: Double                 // F(x)
    public var top1: Int32                  // the clean prediction
    public var positions: [Int]
    public var baseline: [Double] = []      // F(0) per layer
    public var values: [[Float]] = []       // per layer, [positions.count * D]

    public func completenessError(_ l: Int) -> Double? {
        let delta = prob - baseline[l]
        guard abs(delta) > 1e-12 else { return nil }
        return completenessResidual(l) / abs(delta)
    }
    /// |sum of attributions - (F(x) - F(0))| at layer `l`.
    public func completenessResidual(_ l: Int) -> Double { abs(values[l].reduce(0.0) { $0 + Double($1) } - (prob - baseline[l])) }
}

public enum IntegratedGradients {
    /// Attributions for each of `probes` (in the order given) at `kind` for each of `layers`.
    public static func attributions(_ k: KnowledgeSetup, _ probes: [TokenizedProbe], kind: SiteKind, layers: [Int], position: Position,
                                    alphas: [Double], batch: Int, progress: ((Int) -> Void)? = nil) -> [ProbeAttribution] {
        let model = k.model
        let A = alphas.count, R = A + 1                    // replicas per probe: the alphas, then the baseline
        let per = max(1, batch / R)
        var out = [ProbeAttribution?](repeating: nil, count: probes.count)
        let order = Dictionary(uniqueKeysWithValues: probes.enumerated().map { ($1.index, $0) })
        var done = 0
        for pb in ProbeBatch.batches(probes, size: per, padId: k.tokenizer.padId) {
            let T = pb.T
            let cap = Captures(), iv = Interventions()
            let sites = layers.map { Site(kind, $0) }
            iv.capture(sites, into: cap)
            let clean = ProbeScoring.run(model, pb, iv)
            var attrs = pb.items.indices.map { b in
                ProbeAttribution(prob: clean.prob[b], top1: clean.top1[b], positions: position.positions(in: pb.items[b]))
            }
            let replicated = ProbeBatch(pb.items.flatMap { Array(repeating: $0, count: R) }, padId: k.tokenizer.padId)
            for site in sites {
                let x = cap[site]!, D = x.lastDim
                var rows: [Int32] = [], scales: [Float] = [], sources: [Int32] = []
                for (b, a) in pb.items.indices.flatMap({ b in (0..<R).map { (b, $0) } }) {
                    for t in attrs[b].positions {
                        rows.append(Int32((b * R + a) * T + t)); sources.append(Int32(b * T + t))
                        scales.append(a < A ? Float(alphas[a]) : 0)
                    }
                }
                let z = copyRows(x, sources)
                for (i, s) in scales.enumerated() { for d in 0..<D { z.data[i * D + d] *= s } }
                let piv = Interventions()
                piv.patch(site, rows: rows, with: z)
                let dz = piv.gradient(at: site, rows: rows, width: D)
                let s = ProbeScoring.runWithGradient(model, replicated, piv)
                var i = 0
                for b in pb.items.indices {
                    let n = attrs[b].positions.count
                    var acc = [Double](repeating: 0, count: n * D)
                    for a in 0..<A {
                        let p = s.prob[b * R + a], g = dz.grad + i * D      // rows i..<i+n: this replica's positions
                        for j in 0..<n * D { acc[j] += p * Double(g[j]) }
                        i += n
                    }
                    i += n                                                  // the baseline replica
                    let xr = copyRows(x, attrs[b].positions.map { Int32(b * T + $0) })
                    attrs[b].values.append((0..<n * D).map { Float(Double(xr.data[$0]) * acc[$0] / Double(A)) })
                    attrs[b].baseline.append(s.prob[b * R + A])
                }
            }
            for (b, p) in pb.items.enumerated() { out[order[p.index]!] = attrs[b] }
            done += pb.items.count
            progress?(done)
        }
        return out.map { $0! }
    }
}

public struct IGLayerSummary: Codable, Equatable, Sendable {
    public var layer: Int
    public var meanAttributionSum: Double
    public var completenessError: Double?       // mean over probes
}

public struct IGResult: Codable, Sendable {
    public var checkpoint: String
    public var options: IGOptions
    public var probes: Int
    public var alphas: [Double]
    public var completenessError: Double?       // mean over probes and layers of the per-probe ratios
    public var completenessErrorMax: Double?
    /// Sum over probes and layers of |attributions - (F(x) - F(0))| over the sum of |F(x) - F(0)|:
    /// the error of the whole (a mean of ratios is ruled by probes with a tiny F(x) - F(0)).
    public var completenessErrorAggregate: Double? = nil
    public var completenessErrorMedian: Double? = nil
    public var checkSteps: Int? = nil           // the check's midpoints and its aggregate error (nil: no check)
    public var completenessErrorCheck: Double? = nil
    public var layers: [IGLayerSummary]
    public var counts: [String: ProbeCounts]
    public var seconds: Double
}

public struct IGUnit: Codable, Equatable, Sendable {
    public var layer: Int, position: Int, unit: Int
    public var attribution: Double
}

public struct IGProbeRecord: Codable, Sendable {
    public var prompt: String, target: String, prediction: String, relation: String
    public var prob: Double
    public var baseline: [Double]                // F(0) per layer
    public var attributionSum: [Double]          // per layer
    public var completenessError: [Double?]      // per layer
    public var top: [IGUnit]                     // largest attributions over all layers
}

extension IntegratedGradients {
    public static func run(checkpoint: String, options o: IGOptions, log: @escaping (String) -> Void) throws
        -> (result: IGResult, records: [IGProbeRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, layers: ("layers", o.layers), log: log)
        let kind = SiteKind(rawValue: o.site)!
        let layers = !kind.perLayer ? [0] : o.layers.isEmpty ? Array(0..<k.model.config.numLayers) : o.layers
        let alphas = o.alphaList
        log("ig: \(kind.rawValue) at \(o.position.rawValue), layers \(layers), \(alphas.count) points per probe")
        let progress = ProgressLog("ig", total: k.probes.probes.count, log: log)
        let attrs = attributions(k, k.probes.tokenized, kind: kind, layers: layers, position: o.position, alphas: alphas, batch: o.source.batch,
                                 progress: progress.update)
        var records: [IGProbeRecord] = []
        for (p, a) in zip(k.probes.probes, attrs) {
            var units: [IGUnit] = []
            for (li, l) in layers.enumerated() {
                let D = a.values[li].count / max(a.positions.count, 1)
                for (j, v) in a.values[li].enumerated() {
                    units.append(IGUnit(layer: l, position: a.positions[j / D], unit: j % D, attribution: Double(v)))
                }
            }
            units.sort { $0.attribution > $1.attribution }
            records.append(IGProbeRecord(prompt: p.prompt, target: p.target, prediction: k.token(a.top1), relation: p.relation, prob: a.prob,
                                         baseline: a.baseline,
                                         attributionSum: a.values.map { $0.reduce(0.0) { $0 + Double($1) } },
                                         completenessError: layers.indices.map { a.completenessError($0) },
                                         top: Array(units.prefix(o.top))))
        }
        let errors = attrs.flatMap { a in layers.indices.compactMap { a.completenessError($0) } }
        let summaries = layers.enumerated().map { li, l in
            IGLayerSummary(layer: l, meanAttributionSum: mean(records.map { $0.attributionSum[li] }),
                           completenessError: finite(mean(attrs.compactMap { $0.completenessError(li) })))
        }
        var r = IGResult(checkpoint: checkpoint, options: o, probes: attrs.count, alphas: alphas,
                         completenessError: finite(mean(errors)), completenessErrorMax: errors.max(), layers: summaries,
                         counts: k.probes.counts, seconds: Date().timeIntervalSince(began))
        r.completenessErrorAggregate = aggregateError(attrs, layers: layers.count)
        r.completenessErrorMedian = median(errors)
        if let m = o.checkSteps {
            let check = attributions(k, k.probes.tokenized, kind: kind, layers: layers, position: o.position, alphas: IGOptions.midpoints(m),
                                     batch: o.source.batch, progress: ProgressLog("ig: check at \(m) points", total: k.probes.probes.count, log: log).update)
            r.checkSteps = m
            r.completenessErrorCheck = aggregateError(check, layers: layers.count)
        }
        return (r, records)
    }

    /// Sum over probes and layers of |attributions - (F(x) - F(0))| over the sum of |F(x) - F(0)|.
    static func aggregateError(_ attrs: [ProbeAttribution], layers: Int) -> Double? {
        let residual = attrs.reduce(0.0) { t, a in (0..<layers).reduce(t) { $0 + a.completenessResidual($1) } }
        let change = attrs.reduce(0.0) { t, a in (0..<layers).reduce(t) { $0 + abs(a.prob - a.baseline[$1]) } }
        return change > 0 ? residual / change : nil
    }
}
