// `droplab eval trace`: causal tracing (Meng et al. 2022, ROME §2.1) adapted to a masked LM.
// For each probe the clean model gets right: corrupt the subject tokens' word embeddings
// (site emb.word) with Gaussian noise of --noise (3) x the standard deviation of the word-
// embedding matrix, --samples draws (seeded); then restore one state at a time to its clean
// value: a (layer, position) of `block`, `ffn.out` or `attn.out` (--window W restores W
// consecutive layers around it, as ROME does for MLP/attention). The indirect effect of a
// state is P(target | corrupted, state restored) - P(target | corrupted), averaged over the
// samples; we report its mean over probes by layer and position class. All restorations of a
// probe run batched, as `noise` + `patch` interventions.

import Autograd
import BERT
import Datasets
import Foundation
import Training
import Interventions

public struct TraceOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var samples = 10
    public var noise = 3.0                 // x the word-embedding standard deviation
    public var kinds = ["block", "ffn.out", "attn.out"]
    public var window = 1                  // layers restored together (centred)
    public init() {}

    public func validate() throws {
        try source.validate()
        guard samples >= 1 else { throw OptionError(key: "samples", "must be at least 1, got \(samples)") }
        guard noise > 0 && noise.isFinite else { throw OptionError(key: "noise", "must be positive, got \(noise)") }
        guard window >= 1 else { throw OptionError(key: "window", "must be at least 1, got \(window)") }
        guard !kinds.isEmpty else { throw OptionError(key: "kinds", "must name at least one of block, ffn.out, attn.out") }
        for k in kinds where !["block", "ffn.out", "attn.out"].contains(k) {
            throw OptionError(key: "kinds", "'\(k)' is not one of block, ffn.out, attn.out")
        }
    }
}

extension TraceOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
        "samples": "Noise samples per probe.",
        "noise": "Noise standard deviation, in word-embedding standard deviations.",
        "kinds": "States restored: block, ffn.out, attn.out.",
        "window": "Consecutive layers restored together.",
    ]
}

/// Where a position sits relative to the subject.
public enum TraceClass: String, CaseIterable, Codable, Sendable {
    case beforeSubject = "before-subject", subjectFirst = "subject-first", subjectMiddle = "subject-middle"
    case subjectLast = "subject-last", afterSubject = "after-subject", mask

    /// The classes of position t of `p` (a one-token subject is both first and last).
    public static func of(_ t: Int, in p: TokenizedProbe) -> [TraceClass] {
        guard let s = p.subject else { return [] }
        if t == p.maskPosition { return [.mask] }
        if t < s.lowerBound { return [.beforeSubject] }
        if t >= s.upperBound { return [.afterSubject] }
        var c: [TraceClass] = []
        if t == s.lowerBound { c.append(.subjectFirst) }
        if t == s.upperBound - 1 { c.append(.subjectLast) }
        if c.isEmpty { c.append(.subjectMiddle) }
        return c
    }
}

public struct TraceKindResult: Codable, Equatable, Sendable {
    public var kind: String
    public var classes: [String]
    public var indirectEffect: [[Double?]]     // [layer][class]: mean over probes

    /// The heatmap's layout: position classes (rows) x layers (columns).
    public var grid: (rows: [String], columns: [String], values: [[Double?]]) {
        (classes, indirectEffect.indices.map { "layer \($0)" }, classes.indices.map { c in indirectEffect.map { $0[c] } })
    }
}

public struct TraceResult: Codable, Sendable {
    public var checkpoint: String
    public var options: TraceOptions
    public var probes: Int                     // probes read
    public var traced: Int                     // right on the clean model, with a subject
    public var sigma: Double                   // noise standard deviation used
    public var cleanProb: Double?
    public var corruptProb: Double?
    public var totalEffect: Double?            // mean P(clean) - P(corrupted)
    public var kinds: [TraceKindResult]
    public var counts: [String: ProbeCounts]
    public var seconds: Double
}

public struct TraceProbeRecord: Codable, Equatable, Sendable {
    public var prompt: String, target: String, subject: String?, relation: String
    public var tokens: [String]
    public var cleanProb: Double, corruptProb: Double
    public var restored: [String: [[Double]]]  // kind -> [layer][position]: P with that state restored
}

public enum CausalTrace {
    /// Seeded Gaussian noise for the subject rows: `samples` arrays of [subject tokens x C].
    public static func noise(_ p: TokenizedProbe, hidden C: Int, sigma: Float, samples: Int, seed: UInt64) -> [[Float]] {
        var rng = RNG(seed: seed)
        return (0..<samples).map { _ in (0..<p.subject!.count * C).map { _ in sigma * rng.normal() } }
    }

    /// P(target) on the clean run, and with each (kind, layer, position) restored, averaged over
    /// the noise samples (each [subject tokens x C], added to the subject's word embeddings).
    /// The layers restored together for layer `l`: a window of `window` centred on it, cut at the model's `layers`.
    public static func restoredLayers(_ l: Int, window: Int, layers: Int) -> Range<Int> {
        let lo = max(0, l - (window - 1) / 2)
        return lo..<min(layers, lo + window)
    }

    public static func trace(_ k: KnowledgeSetup, _ p: TokenizedProbe, kinds: [SiteKind], noise: [[Float]], window: Int,
                             batch: Int) -> (clean: Double, corrupt: Double, restored: [SiteKind: [[Double]]]) {
        let model = k.model, L = model.config.numLayers, T = p.ids.count, C = model.config.hiddenSize
        let subject = p.subject!.map(Int32.init)
        // clean states
        let cap = Captures(), civ = Interventions()
        civ.capture(kinds.flatMap { kind in (0..<L).map { Site(kind, $0) } }, into: cap)
        let clean = ProbeScoring.run(model, ProbeBatch([p], padId: k.tokenizer.padId), civ).prob[0]
        let samples = noise.count
        // runs: (sample, restore?) with restore = (kind, layer, position)
        var runs: [(s: Int, r: (SiteKind, Int, Int)?)] = []
        for s in 0..<samples {
            runs.append((s, nil))
            for kind in kinds { for l in 0..<L { for t in 0..<T { runs.append((s, (kind, l, t))) } } }
        }
        var probs = [Double](repeating: 0, count: runs.count)
        for start in stride(from: 0, to: runs.count, by: batch) {
            let chunk = Array(runs[start..<min(start + batch, runs.count)])
            let pb = ProbeBatch(Array(repeating: p, count: chunk.count), padId: k.tokenizer.padId)
            let iv = Interventions()
            var noiseRows: [Int32] = [], noiseValues: [Float] = []
            var patches: [Site: (rows: [Int32], sources: [Int32])] = [:]
            for (b, run) in chunk.enumerated() {
                noiseRows += subject.map { pb.row(b, Int($0)) }
                noiseValues += noise[run.s]
                guard let (kind, l, t) = run.r else { continue }
                for l2 in restoredLayers(l, window: window, layers: L) {
                    patches[Site(kind, l2), default: ([], [])].rows.append(pb.row(b, t))
                    patches[Site(kind, l2)]!.sources.append(Int32(t))
                }
            }
            iv.addNoise(Site(.embWord), rows: noiseRows, noise: Tensor(noiseValues, shape: [noiseRows.count, C]))
            for (site, pr) in patches { iv.patch(site, rows: pr.rows, with: copyRows(cap[site]!, pr.sources)) }
            let s = ProbeScoring.run(model, pb, iv)
            for b in chunk.indices { probs[start + b] = s.prob[b] }
        }
        var corrupt = 0.0
        var restored = Dictionary(uniqueKeysWithValues: kinds.map { ($0, [[Double]](repeating: [Double](repeating: 0, count: T), count: L)) })
        for (i, run) in runs.enumerated() {
            if let (kind, l, t) = run.r { restored[kind]![l][t] += probs[i] / Double(samples) } else { corrupt += probs[i] / Double(samples) }
        }
        return (clean, corrupt, restored)
    }

    /// The trace record of probe `p` (which has a subject): seeded noise of `sigma` per entry
    /// (the seed and the probe's index choose it), every kind restored.
    public static func record(_ k: KnowledgeSetup, _ p: TokenizedProbe, options o: TraceOptions, sigma: Double) -> TraceProbeRecord {
        let draws = noise(p, hidden: k.model.config.hiddenSize, sigma: Float(sigma), samples: o.samples,
                          seed: o.source.seed ^ UInt64(p.index) &* 0x9E37_79B9)
        let (clean, corrupt, restored) = trace(k, p, kinds: o.kinds.map { SiteKind(rawValue: $0)! }, noise: draws, window: o.window,
                                               batch: o.source.batch)
        let probe = k.probes.probes[p.index]
        return TraceProbeRecord(prompt: probe.prompt, target: probe.target, subject: probe.subject, relation: probe.relation,
                                tokens: p.ids.map(k.token), cleanProb: clean, corruptProb: corrupt,
                                restored: Dictionary(uniqueKeysWithValues: restored.map { ($0.key.rawValue, $0.value) }))
    }

    /// The noise standard deviation of `--noise`: that many word-embedding standard deviations.
    public static func sigma(_ k: KnowledgeSetup, _ o: TraceOptions) -> Double { o.noise * embeddingStd(k.model) }

    /// Standard deviation of all entries of the word-embedding matrix.
    static func embeddingStd(_ model: BertModel) -> Double {
        let w = model.params[BertModule.wordEmbeddings.weight]
        var s = 0.0, s2 = 0.0
        for i in 0..<w.count { let x = Double(w.data[i]); s += x; s2 += x * x }
        let m = s / Double(w.count)
        return (s2 / Double(w.count) - m * m).squareRoot()
    }

    public static func run(checkpoint: String, options o: TraceOptions, log: @escaping (String) -> Void) throws
        -> (result: TraceResult, records: [TraceProbeRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, log: log)
        let kinds = o.kinds.map { SiteKind(rawValue: $0)! }
        let L = k.model.config.numLayers
        let sigma = Self.sigma(k, o)
        // the probes the clean model gets right
        var right = Set<Int>()
        for pb in ProbeBatch.batches(k.probes.tokenized.filter { $0.subject != nil }, size: o.source.batch, padId: k.tokenizer.padId) {
            let s = ProbeScoring.run(k.model, pb)
            for (b, p) in pb.items.enumerated() where s.rank[b] == 0 { right.insert(p.index) }
        }
        let eligible = k.probes.tokenized.filter { right.contains($0.index) }
        log("trace: \(eligible.count) of \(k.probes.probes.count) probes are right on the clean model and have a subject; "
            + "noise sd \(String(format: "%.4g", sigma)), \(o.samples) samples")
        let progress = ProgressLog("trace", total: eligible.count, log: log)
        var records: [TraceProbeRecord] = []
        var effects: [SiteKind: [[[Double]]]] = [:]     // kind -> [layer][class] -> per-probe IE
        for kind in kinds { effects[kind] = Array(repeating: Array(repeating: [], count: TraceClass.allCases.count), count: L) }
        for (n, p) in eligible.enumerated() {
            let record = Self.record(k, p, options: o, sigma: sigma)
            for kind in kinds {
                let restored = record.restored[kind.rawValue]!
                for l in 0..<L {
                    var byClass = [[Double]](repeating: [], count: TraceClass.allCases.count)
                    for t in p.ids.indices {
                        for c in TraceClass.of(t, in: p) { byClass[TraceClass.allCases.firstIndex(of: c)!].append(restored[l][t] - record.corruptProb) }
                    }
                    for (ci, v) in byClass.enumerated() where !v.isEmpty { effects[kind]![l][ci].append(mean(v)) }
                }
            }
            records.append(record)
            progress.update(n + 1)
        }
        let kindResults = kinds.map { kind in
            TraceKindResult(kind: kind.rawValue, classes: TraceClass.allCases.map(\.rawValue),
                            indirectEffect: effects[kind]!.map { $0.map { finite(mean($0)) } })
        }
        let r = TraceResult(checkpoint: checkpoint, options: o, probes: k.probes.probes.count, traced: records.count, sigma: sigma,
                            cleanProb: finite(mean(records.map(\.cleanProb))), corruptProb: finite(mean(records.map(\.corruptProb))),
                            totalEffect: finite(mean(records.map { $0.cleanProb - $0.corruptProb })), kinds: kindResults,
                            counts: k.probes.counts, seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
