// The probe evaluators in recipes: consistency, ig, kn, lens, trace, interchange, mend. They share
// the probe keys (probes, relations, limit, batch; data-dir and seed come from the recipe),
// validation through the options' own `validate`, and the job outputs: result.json plus
// <name>-probes.jsonl (trace also writes trace-<kind>.svg).

import Checkpoint
import Evaluators
import Foundation
import Text
import Training

public protocol ProbeRecipeEvaluator: RecipeEvaluator where Options: ProbeEvaluatorOptions {
    associatedtype Record: Encodable
    static func evaluate(checkpoint: String, options: Options, directory: String, log: @escaping (String) -> Void) throws -> (result: Result, records: [Record])
    static func extraFiles(_ result: Result) -> [(name: String, text: String)]
}

public extension ProbeRecipeEvaluator {
    static var managedKeys: [String: String] { ["dataDir": "the recipe's data-dir", "seed": "the recipe's seeds"] }
    static var aliases: [String: [String]] {
        Dictionary(uniqueKeysWithValues: ["probes", "relations", "limit", "batch"].map { ($0, ["source", $0]) })
    }
    static func extraFiles(_ result: Result) -> [(name: String, text: String)] { [] }

    static func resolve(_ o: inout Options, explicit: Set<String>, context c: ResolveContext) {
        o.source.dataDir = c.dataDir
        o.source.seed = c.seed
        if let d = c.synthetic, !explicit.contains("probes") { o.source.probes = d + "/" + SyntheticFacts.probesFile }
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

public enum ConsistencyRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "consistency"
    public static var defaults: ConsistencyOptions { ConsistencyOptions() }
    public static func evaluate(checkpoint: String, options: ConsistencyOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: ConsistencyResult, records: [ConsistencyProbeRecord]) { try Consistency.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: ConsistencyResult) -> [MetricRow] {
        [MetricRow("consistency.accuracy", "ParaRel accuracy at [MASK] (%)", 100 * r.accuracy, better: .higher)]
            + (r.consistency.map { [MetricRow("consistency.consistency", "ParaRel consistency (%)", 100 * $0, better: .higher)] } ?? [])
            + [MetricRow("consistency.unique", "Distinct predictions per (relation, object)", r.uniquePredictions, better: .lower)]
            + (r.perSplit ?? [:]).keys.sorted().map { s in
                MetricRow("consistency.split.\(s).accuracy", "ParaRel accuracy at [MASK], \(s) probes (%)", 100 * r.perSplit![s]!.accuracy, better: .higher)
            }
    }
}

public enum IGRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "ig"
    public static var defaults: IGOptions { IGOptions() }
    public static func evaluate(checkpoint: String, options: IGOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: IGResult, records: [IGProbeRecord]) { try IntegratedGradients.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: IGResult) -> [MetricRow] {
        (r.completenessError.map { [MetricRow("ig.completeness", "IG completeness error (%)", 100 * $0, better: .lower)] } ?? [])
            + r.layers.map { MetricRow("ig.layer\($0.layer).sum", "IG attribution sum, layer \($0.layer)", $0.meanAttributionSum) }
    }
}

public enum KNRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "kn"
    public static var defaults: KNOptions { KNOptions() }
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
}

public enum LensRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "lens"
    public static var defaults: LensOptions { LensOptions() }
    public static func evaluate(checkpoint: String, options: LensOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: LensResult, records: [LensProbeRecord]) { try LogitLens.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: LensResult) -> [MetricRow] {
        r.layers.flatMap { l in
            [MetricRow("lens.layer\(l.layer).accuracy", "Logit lens accuracy, layer \(l.layer) (%)", 100 * l.accuracy, better: .higher),
             MetricRow("lens.layer\(l.layer).prob", "Logit lens P(target), layer \(l.layer)", l.meanProb, better: .higher)]
        }
    }
}

public enum TraceRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "trace"
    public static var defaults: TraceOptions { TraceOptions() }
    public static func evaluate(checkpoint: String, options: TraceOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: TraceResult, records: [TraceProbeRecord]) { try CausalTrace.run(checkpoint: checkpoint, options: options, log: log) }
    public static func extraFiles(_ r: TraceResult) -> [(name: String, text: String)] {
        CausalTrace.heatmaps(r).map { ("trace-\($0.kind).svg", $0.svg) }
    }
    public static func rows(_ r: TraceResult) -> [MetricRow] {
        var rows = [MetricRow("trace.traced", "Causal trace: probes traced", Double(r.traced))]
        if let te = r.totalEffect { rows.append(MetricRow("trace.total", "Causal trace: total effect of the corruption", te)) }
        for k in r.kinds {
            for cls in ["subject-last", "mask"] {
                guard let c = k.classes.firstIndex(of: cls) else { continue }
                for (l, v) in k.indirectEffect.enumerated() {
                    if let v = v[c] { rows.append(MetricRow("trace.\(k.kind).\(cls).layer\(l)", "Trace \(k.kind) IE at \(cls), layer \(l)", v)) }
                }
            }
        }
        return rows
    }
}

public enum InterchangeRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "interchange"
    public static var defaults: InterchangeOptions { InterchangeOptions() }
    public static func evaluate(checkpoint: String, options: InterchangeOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: InterchangeResult, records: [InterchangePairRecord]) { try Interchange.run(checkpoint: checkpoint, options: options, log: log) }
    public static func rows(_ r: InterchangeResult) -> [MetricRow] {
        r.cells.map { c in
            MetricRow("interchange.\(c.kind).\(c.position).layer\(c.layer)",
                      "Interchange \(c.kind)@\(c.layer) at \(c.position) (%)", 100 * c.interchangeAccuracy)
        }
    }
}

public enum MendRecipeEvaluator: ProbeRecipeEvaluator {
    public static let name = "mend"
    public static var defaults: MendOptions { MendOptions() }
    public static func evaluate(checkpoint: String, options: MendOptions, directory: String, log: @escaping (String) -> Void) throws
        -> (result: MendResult, records: [MendFactRecord]) { try Mend.run(checkpoint: checkpoint, options: options, resultsDir: directory, log: log) }
    public static func rows(_ r: MendResult) -> [MetricRow] {
        [("trained", r.trained), ("untrained", r.untrained)].flatMap { name, m in
            [MetricRow("mend.\(name).edit", "MEND (\(name)): edit success at [MASK] (%)", 100 * m.maskEditSuccess, better: .higher),
             MetricRow("mend.\(name).paraphrase", "MEND (\(name)): paraphrase success (%)", 100 * m.maskParaphraseSuccess, better: .higher),
             MetricRow("mend.\(name).localization", "MEND (\(name)): unrelated predictions unchanged (%)", 100 * m.maskEditLocalization, better: .higher),
             MetricRow("mend.\(name).probchange", "MEND (\(name)): P(target) change, edit input", m.editProbChange, better: .higher)]
        }
    }
}
