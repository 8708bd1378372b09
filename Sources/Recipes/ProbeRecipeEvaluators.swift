// The probe evaluators in recipes: consistency, ig, kn, lens, trace, interchange, mend. They share
// the probe keys (probes, relations, limit, batch; data-dir and seed come from the recipe),
// validation through the options' own `validate`, and the job outputs: result.json plus
// <name>-probes.jsonl (trace also writes trace-<kind>.svg). The report reads the records back
// for the rows it pairs by probe, fact or concept within a seed.

import Checkpoint
import Datasets
import Evaluators
import Foundation
import Text
import Training
import Viz

public protocol ProbeRecipeEvaluator: RecipeEvaluator where Options: ProbeEvaluatorOptions {
    associatedtype Record: Codable
    static func evaluate(checkpoint: String, options: Options, directory: String, log: @escaping (String) -> Void) throws -> (result: Result, records: [Record])
    static func extraFiles(_ result: Result) -> [(name: String, text: String)]
}

public extension ProbeRecipeEvaluator {
    static var managedKeys: [String: String] { ["dataDir": "the recipe's data-dir", "seed": "the recipe's seeds"] }
    static var aliases: [String: [String]] {
        Dictionary(uniqueKeysWithValues: ["dataDir", "probes", "relations", "limit", "seed", "batch", "knownOnly"].map { ($0, ["source", $0]) })
    }
    static func extraFiles(_ result: Result) -> [(name: String, text: String)] { [] }

    /// The per-probe records the job wrote.
    static func records(_ directory: String) throws -> [Record] {
        try Results.readLines(Record.self, from: directory + "/\(name)-probes.jsonl")
    }

    static func resolve(_ o: inout Options, explicit: Set<String>, context c: ResolveContext) {
        o.source.dataDir = c.dataDir
        o.source.seed = c.seed
        if let g = c.generated, !explicit.contains("probes") { o.source.probes = g.probes }
    }

    static func datasets(_ o: Options) -> [DatasetRef] {
        if let file = o.source.probes { return [DatasetRef(key: "probes", path: file)] }
        return [DatasetRef(key: nil, path: DataRoot.resolve(o.source.dataDir) + "/pararel", directory: true)]
    }

    static func run(checkpoint: String, options: Options, context: JobContext) throws -> Result {
        let (result, records) = try evaluate(checkpoint: checkpoint, options: options, directory: context.directory, log: context.log)
        try AtomicFile.write(try Results.jsonLines(records), to: context.directory + "/\(name)-probes.jsonl")
        for f in extraFiles(result) {
            try AtomicFile.write(Data(f.text.utf8), to: context.directory + "/" + f.name)
        }
        return result
    }
}

/// Where a fact is stored (integrated gradients, knowledge neurons, logit lens, causal tracing,
/// interchange) can only be asked of a fact the model knows: on the others there is nothing to
/// find, and a mean over them describes guessing. Their results count when measured on probes the
/// model answers right at [MASK] (known-only), at least `minimum` of them: a share measured on
/// fewer than 20 probes has a 95% interval wider than ±22 points (binomial at 50%).
enum KnownFacts {
    static let minimum = 20
    static func check(_ name: String, _ o: ProbeOptions, measured n: Int) -> [ValidityCheck] {
        let known = o.knownOnly == true
        return [ValidityCheck(id: "\(name).known", check: "measured on at least \(minimum) probes the model answers right at [MASK] (known-only)",
                              value: known ? Double(n) : nil, bound: Double(minimum), held: known && n >= minimum,
                              failure: !known ? "not on known facts" : n == 0 ? "no probes" : "too few known facts",
                              gates: ["\(name).*"])]
    }
}

public enum ConsistencyRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "consistency"
    public static let abstract = "Accuracy at [MASK], ParaRel consistency across paraphrases, distinct predictions per (relation, object)."
    public static let title = "ParaRel consistency"
    public static var defaults: ConsistencyOptions { ConsistencyOptions() }
    public static let part = ReportPart.editing
    public static func evaluate(checkpoint: String, options: ConsistencyOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: ConsistencyResult, records: [ConsistencyProbeRecord]) { try Consistency.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: ConsistencyResult) -> [MetricRow] {
        [MetricRow.percent("consistency.accuracy", "ParaRel accuracy at [MASK] (%)", r.accuracy, better: .higher)]
            + (r.consistency.map { [MetricRow.percent("consistency.consistency", "ParaRel consistency (%)", $0, better: .higher)] } ?? [])
            + (r.knownConsistency.map { [MetricRow.percent("consistency.known", "ParaRel consistency over known facts (%)", $0, better: .higher)] } ?? [])
            + (r.knownFacts.map { [MetricRow("consistency.known_facts", "Facts answered right in at least one pattern", Double($0), descriptive: true)] } ?? [])
            + (r.topPredictionShare.map { [MetricRow.percent("consistency.top_share", "Most frequent prediction's share of the probes (%)", $0, descriptive: true)] } ?? [])
            + [MetricRow("consistency.unique", "Distinct predictions per (relation, object)", r.uniquePredictions, better: .lower)]
            + (r.perSplit ?? [:]).keys.sorted().map { s in
                MetricRow.percent("consistency.split.\(s).accuracy", "ParaRel accuracy at [MASK], \(s) probes (%)", r.perSplit![s]!.accuracy, better: .higher)
            }
    }
    /// A model that gives one answer to more than half of all probes (ConsistencyResult.degenerateShare)
    /// agrees with itself across paraphrases because it says the same word everywhere: its
    /// consistency and distinct-prediction counts are withheld (its accuracy stays).
    /// Results before 2026-12-06 (no share recorded) are checked on their probe records.
    public static func validity(_ r: ConsistencyResult, directory: String) throws -> [ValidityCheck] {
        var r = r
        if r.topPredictionShare == nil, Results.recordFile(directory + "/\(name)-probes.jsonl") != nil {
            let counts = Dictionary(grouping: try records(directory), by: \.prediction).mapValues(\.count)
            if let top = counts.max(by: { ($0.value, $1.key) < ($1.value, $0.key) }) {
                r.topPrediction = top.key; r.topPredictionShare = Double(top.value) / Double(counts.values.reduce(0, +))
            }
        }
        // consistency over known facts: over at least KnownFacts.minimum of them
        let known = r.knownFacts.map { n in
            [ValidityCheck(id: "consistency.known_facts", check: "at least \(KnownFacts.minimum) facts answered right in at least one pattern",
                           value: Double(n), bound: Double(KnownFacts.minimum), held: n >= KnownFacts.minimum,
                           failure: n == 0 ? "no known facts" : "too few known facts", gates: ["consistency.known"])]
        } ?? []
        guard let share = r.topPredictionShare else { return known }
        return [ValidityCheck(id: "consistency.degenerate",
                              check: "most frequent prediction (\(r.topPrediction ?? "?")) on at most \(Int(100 * ConsistencyResult.degenerateShare))% of the probes",
                              value: 100 * share, bound: 100 * ConsistencyResult.degenerateShare, held: !r.degenerate,
                              failure: "one answer everywhere", gates: ["consistency.consistency", "consistency.known", "consistency.unique"])] + known
    }
    /// Per concept (the object): the three measures over its probes.
    public static func units(_ r: ConsistencyResult, directory: String) throws -> [String: MetricRow.Units] {
        let byConcept = Dictionary(grouping: try records(directory), by: \.target)
        var accuracy: [(String, Double)] = [], consistency: [(String, Double)] = [], unique: [(String, Double)] = []
        for c in byConcept.keys.sorted() {
            let ps = byConcept[c]!
            // right = the target ranked first (a prediction is a lowercased vocabulary token, the
            // target the probe's cased word: comparing them as strings would find none right)
            let m = Consistency.measures(facts: ps.map(\.fact), groups: ps.map { $0.relation + "\u{1}" + $0.target },
                                         predictions: ps.map(\.prediction), targets: ps.map(\.prediction))
            accuracy.append((c, 100 * Statistics.mean(ps.map { $0.rank == 0 ? 1 : 0 }))); unique.append((c, m.uniquePredictions))
            if m.consistency.isFinite { consistency.append((c, 100 * m.consistency)) }
        }
        return ["consistency.accuracy": .init(kind: "concept", accuracy), "consistency.consistency": .init(kind: "concept", consistency),
                "consistency.unique": .init(kind: "concept", unique)]
    }
}

public enum IGRecipeEvaluator: ProbeRecipeEvaluator {
    /// Completeness: the aggregate error and the median of the per-probe errors; results from
    /// before they were recorded keep their mean of per-probe ratios, labelled as such.
    static func completenessRows(_ r: IGResult) -> [MetricRow] {
        guard let a = r.completenessErrorAggregate else {
            return r.completenessError.map { [MetricRow("ig.completeness", "IG completeness error, mean of per-probe ratios (%)", 100 * $0, better: .lower)] } ?? []
        }
        return [MetricRow("ig.completeness.aggregate", "IG completeness error, sum |error| / sum |F(x) - F(0)| (%)", 100 * a, better: .lower)]
            + (r.completenessErrorMedian.map { [MetricRow("ig.completeness.median", "IG completeness error, median over probes and layers (%)", 100 * $0, better: .lower)] } ?? [])
            + (r.completenessErrorCheck.flatMap { e in r.checkSteps.map { [MetricRow("ig.completeness.check", "IG completeness error at \($0) points (the check), aggregate (%)", 100 * e, better: .lower)] } } ?? [])
    }

    public static let name = "ig"
    public static let abstract = "Integrated gradients of P(target at [MASK]) over a site's units, one layer at a time (midpoint rule; the study's 5 points: --alphas 0 0.25 0.5 0.75 1)."
    public static let title = "Integrated gradients"
    public static var defaults: IGOptions { IGOptions() }
    public static let part = ReportPart.knowledge
    /// Attributions that do not add up to F(x) - F(0) are not yet integrated gradients:
    /// Sundararajan et al. (2017, §5) take steps until they add up to within 5%.
    static let completenessBound = 5.0
    public static func validity(_ r: IGResult, directory: String) throws -> [ValidityCheck] {
        let error = r.completenessErrorAggregate.map { 100 * $0 }
        return KnownFacts.check(name, r.options.source, measured: r.probes)
            + [ValidityCheck(id: "ig.complete", check: "completeness: sum |sum of attributions - (F(x) - F(0))| / sum |F(x) - F(0)| over "
                             + "probes and layers at most \(Int(completenessBound))% (Sundararajan et al. 2017)", value: error, bound: completenessBound,
                             held: (error ?? .infinity) <= completenessBound, failure: error == nil ? "completeness not recorded" : "attributions incomplete",
                             gates: ["ig.layer*"])]
    }
    public static func evaluate(checkpoint: String, options: IGOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: IGResult, records: [IGProbeRecord]) { try IntegratedGradients.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: IGResult) -> [MetricRow] {
        completenessRows(r)
            + r.layers.map { MetricRow("ig.layer\($0.layer).sum", "IG attribution sum, layer \($0.layer)", $0.meanAttributionSum) }
    }
    /// Per probe: its attribution sum at each layer.
    public static func units(_ r: IGResult, directory: String) throws -> [String: MetricRow.Units] {
        let recs = try records(directory)
        var out: [String: MetricRow.Units] = [:]
        for (i, l) in r.layers.enumerated() {
            out["ig.layer\(l.layer).sum"] = .init(kind: "probe", recs.compactMap { p in
                i < p.attributionSum.count ? (probeKey(p.prompt, p.target), p.attributionSum[i]) : nil
            })
        }
        return out
    }
}

public enum KNRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "kn"
    public static let abstract = "Knowledge neurons (Dai et al. 2022) and per-concept clusters with suppress/amplify effects."
    public static let title = "Knowledge neurons"
    public static var defaults: KNOptions { KNOptions() }
    public static let part = ReportPart.knowledge
    public static func validity(_ r: KNResult, directory: String) throws -> [ValidityCheck] { KnownFacts.check(name, r.options.source, measured: r.probes) }
    public static func evaluate(checkpoint: String, options: KNOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: KNResult, records: [KNProbeRecord]) { try KnowledgeNeurons.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: KNResult) -> [MetricRow] {
        var rows = [MetricRow("kn.neurons", "Knowledge neurons per probe", r.neuronsPerProbe),
                    MetricRow("kn.clusters", "KN clusters per concept", r.clustersPerConcept)]
        if let f = r.refinedNeuronsPerFact { rows.append(MetricRow("kn.refined", "Refined knowledge neurons per fact", f)) }
        for (name, e) in [("suppress", r.suppress), ("amplify", r.amplify)] {
            for (group, s) in [("own", e.own), ("other", e.other), ("random", e.random)] where s.probes > 0 {
                rows.append(MetricRow("kn.\(name).\(group)", "KN \(name), \(group) cluster: relative P change (%)", 100 * s.relativeChange))
            }
        }
        return rows
    }
    /// Knowledge neurons per probe; clusters per concept.
    public static func units(_ r: KNResult, directory: String) throws -> [String: MetricRow.Units] {
        ["kn.neurons": .init(kind: "probe", try records(directory).map { (probeKey($0.prompt, $0.target), Double($0.neurons.count)) }),
         "kn.clusters": .init(kind: "concept", r.concepts.map { ($0.concept, Double($0.clusters)) })]
    }
}

public enum LensRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "lens"
    public static let abstract = "Logit lens: the [MASK] state after each layer through the MLM head (target rank, probability, accuracy)."
    public static let title = "Logit lens"
    public static var defaults: LensOptions { LensOptions() }
    public static let part = ReportPart.mechanisms
    public static func validity(_ r: LensResult, directory: String) throws -> [ValidityCheck] { KnownFacts.check(name, r.options.source, measured: r.probes) }
    public static func evaluate(checkpoint: String, options: LensOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: LensResult, records: [LensProbeRecord]) { try LogitLens.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: LensResult) -> [MetricRow] {
        r.layers.flatMap { l in
            [MetricRow.percent("lens.layer\(l.layer).accuracy", "Logit lens accuracy, layer \(l.layer) (%)", l.accuracy, better: .higher),
             MetricRow("lens.layer\(l.layer).prob", "Logit lens P(target), layer \(l.layer)", l.meanProb, better: .higher, bounds: 0...1)]
        }
    }
    /// Per probe: right at [MASK] (rank 0) and P(target), at each layer.
    public static func units(_ r: LensResult, directory: String) throws -> [String: MetricRow.Units] {
        let recs = try records(directory)
        var out: [String: MetricRow.Units] = [:]
        for l in r.layers {
            let at = recs.filter { l.layer < $0.rank.count && l.layer < $0.prob.count }
            out["lens.layer\(l.layer).accuracy"] = .init(kind: "probe", at.map { (probeKey($0.prompt, $0.target), $0.rank[l.layer] == 0 ? 100 : 0) })
            out["lens.layer\(l.layer).prob"] = .init(kind: "probe", at.map { (probeKey($0.prompt, $0.target), $0.prob[l.layer]) })
        }
        return out
    }
    public static func figures(_ r: LensResult) -> [Figure] {
        [Figure(id: "lens-accuracy", title: "Logit lens: accuracy at [MASK] by layer", xLabel: "layer (0: embeddings)",
                yLabel: "accuracy (%)", markers: true, kind: .curve(r.layers.map { (Double($0.layer), 100 * $0.accuracy) })),
         Figure(id: "lens-prob", title: "Logit lens: P(target) at [MASK] by layer", xLabel: "layer (0: embeddings)",
                yLabel: "mean P(target)", markers: true, kind: .curve(r.layers.map { (Double($0.layer), $0.meanProb) }))]
    }
}

public enum TraceRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "trace"
    public static let abstract = "Causal tracing (ROME): corrupt the subject, restore one state at a time; mean indirect effect by layer and position."
    public static let title = "Causal tracing"
    public static var defaults: TraceOptions { TraceOptions() }
    public static let part = ReportPart.mechanisms
    public static func validity(_ r: TraceResult, directory: String) throws -> [ValidityCheck] { KnownFacts.check(name, r.options.source, measured: r.traced) }
    public static func evaluate(checkpoint: String, options: TraceOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: TraceResult, records: [TraceProbeRecord]) { try CausalTrace.run(checkpoint: checkpoint, options: options, log: log) }
    public static func extraFiles(_ r: TraceResult) -> [(name: String, text: String)] {
        CausalTrace.heatmaps(r).map { ("trace-\($0.kind).svg", $0.svg) }
    }
    public static func rows(_ r: TraceResult) -> [MetricRow] {
        var rows = [MetricRow("trace.traced", "Causal trace: probes traced", Double(r.traced), descriptive: true)]
        if let te = r.totalEffect { rows.append(MetricRow("trace.total", "Causal trace: total effect of the corruption", te, bounds: -1...1)) }
        for k in r.kinds {
            let L = k.indirectEffect.count
            for cls in ["subject-last", "mask"] {
                guard let c = k.classes.firstIndex(of: cls) else { continue }
                for (l, v) in k.indirectEffect.enumerated() {
                    guard let v = v[c] else { continue }
                    // fixed by the architecture, whatever the model learned: a state at a position other than
                    // [MASK] restored in the last layer alone reaches no output (no later layer reads it), and the
                    // last block's state at [MASK] restored is the clean output (its effect is the total effect)
                    let restored = CausalTrace.restoredLayers(l, window: r.options.window, layers: L)
                    let structural = cls != "mask" && restored.lowerBound == L - 1 ? " (structurally 0: no later layer reads it)"
                        : cls == "mask" && k.kind == "block" && restored.upperBound == L ? " (structurally the total effect)" : nil
                    rows.append(MetricRow("trace.\(k.kind).\(cls).layer\(l)", "Trace \(k.kind) IE at \(cls), layer \(l)" + (structural ?? ""), v,
                                          descriptive: structural != nil, bounds: -1...1))
                }
            }
        }
        return rows
    }
    public static func figures(_ r: TraceResult) -> [Figure] {
        r.kinds.map { k in
            let g = k.grid
            return Figure(id: "trace-\(k.kind)", title: "Causal trace: \(k.kind), mean indirect effect on P(target)",
                          kind: .heatmap(rows: g.rows, columns: g.columns, values: g.values))
        }
    }
}

public enum InterchangeRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "interchange"
    public static let abstract = "Interchange interventions between probe pairs (same pattern, other subject and answer)."
    public static let title = "Interchange interventions"
    public static var defaults: InterchangeOptions { InterchangeOptions() }
    public static let part = ReportPart.mechanisms
    public static func validity(_ r: InterchangeResult, directory: String) throws -> [ValidityCheck] { KnownFacts.check(name, r.options.source, measured: r.pairs) }
    public static func evaluate(checkpoint: String, options: InterchangeOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: InterchangeResult, records: [InterchangePairRecord]) { try Interchange.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: InterchangeResult) -> [MetricRow] {
        r.cells.map { c in
            MetricRow.percent("interchange.\(c.kind).\(c.position).layer\(c.layer)",
                              "Interchange \(c.kind)@\(c.layer) at \(c.position) (%)", c.interchangeAccuracy)
        }
    }
}

public enum MendRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "mend"
    public static let abstract = "MEND: train an editor of FFN gradient factors on some concepts' facts, edit the others' facts."
    public static let title = "MEND edits"
    public static var defaults: MendOptions { MendOptions() }
    public static let part = ReportPart.editing
    public static func evaluate(checkpoint: String, options: MendOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: MendResult, records: [MendFactRecord]) { try Mend.run(checkpoint: checkpoint, options: options, resultsDir: directory, log: log) }
    public static func rows(_ r: MendResult) -> [MetricRow] {
        [("trained", r.trained), ("untrained", r.untrained)].flatMap { name, m in
            [MetricRow.percent("mend.\(name).edit", "MEND (\(name)): edit success at [MASK] (%)", m.maskEditSuccess, better: .higher),
             MetricRow.percent("mend.\(name).paraphrase", "MEND (\(name)): paraphrase success (%)", m.maskParaphraseSuccess, better: .higher),
             MetricRow.percent("mend.\(name).localization", "MEND (\(name)): unrelated predictions unchanged (%)", m.maskEditLocalization, better: .higher),
             MetricRow("mend.\(name).probchange", "MEND (\(name)): P(target) change, edit input", m.editProbChange, better: .higher, bounds: -1...1)]
        } + [("edit_loss", "edit loss (NLL)", r.editLoss), ("locality", "locality KL", r.locality)].flatMap { id, label, tenths -> [MetricRow] in
            guard let t = tenths, let first = t.first, let last = t.last else { return [] }
            return [MetricRow("mend.train.\(id).first", "MEND training: \(label), first tenth of the steps", first, descriptive: true),
                    MetricRow("mend.train.\(id).last", "MEND training: \(label), last tenth of the steps", last, descriptive: true)]
        }
    }
    /// The editor trained when its edits beat the untrained editor's: the paired difference in
    /// [MASK] success on the test facts' edit inputs (trained − untrained, per fact), its 95%
    /// t-interval above 0. Otherwise the trained editor's numbers are the untrained one's. The
    /// words say which: an editor whose edit loss did not fall (last tenth of the steps against the
    /// first) did not train; one whose loss fell was not shown better on these test facts.
    public static func validity(_ r: MendResult, directory: String) throws -> [ValidityCheck] {
        let recs = try records(directory)
        let d = Statistics.summarize(recs.map { ($0.afterRight ? 100 : 0) - ($0.untrainedRight ? 100 : 0) })
        let low = d.mean - d.halfWidth
        let fell = r.editLoss.flatMap { t in t.first.flatMap { first in t.last.map { $0 < first } } }
        return [ValidityCheck(id: "mend.trained", check: "trained minus untrained editor, edit success at [MASK] on \(recs.count) test facts: "
                              + "the 95% t-interval's lower end above 0 points", value: low.isNaN ? nil : low, bound: 0,
                              held: low > 0,
                              failure: fell == false ? "editor did not train (its edit loss did not fall)"
                                : "trained editor not shown better than the untrained one on \(counted(recs.count, "test fact"))",
                              gates: ["mend.trained.*"])]
    }
    /// Per test fact: the edit input right after the edit (trained and untrained editor), and
    /// the trained editor's P(target) change.
    public static func units(_ r: MendResult, directory: String) throws -> [String: MetricRow.Units] {
        let recs = try records(directory)
        return ["mend.trained.edit": .init(kind: "fact", recs.map { ($0.fact, $0.afterRight ? 100 : 0) }),
                "mend.untrained.edit": .init(kind: "fact", recs.map { ($0.fact, $0.untrainedRight ? 100 : 0) }),
                "mend.trained.probchange": .init(kind: "fact", recs.map { ($0.fact, $0.probAfter - $0.probBefore) })]
    }
}

/// A probe as a unit of the report: its prompt and target.
func probeKey(_ prompt: String, _ target: String) -> String { prompt + " → " + target }
