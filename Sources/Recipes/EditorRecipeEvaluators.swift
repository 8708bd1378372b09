// ROME and MEMIT in recipes: data-dir, seed and the covariance cache come from the recipe and
// the runner; result.json plus <name>-cases.jsonl (memit also memit-scaling.svg) in the job.

import Checkpoint
import Evaluators
import Foundation
import Text
import Training
import Viz

enum EditorKeys {
    static let managed = ["dataDir": "the recipe's data-dir or [synthetic] directory", "seed": "the recipe's seeds", "cacheDir": "the runner's cache",
                          "saveEdited": "recipes keep results, not models"]
    /// With [synthetic]: its CounterFact cases (its directory is the data root) and its corpus.
    /// With [facts], which has no CounterFact: cases from its probes (the facts the model was
    /// told, not CounterFact's, which it never saw) and its corpus, unless the recipe says otherwise.
    static func resolve(_ o: inout RomeOptions, _ explicit: Set<String>, _ c: ResolveContext) {
        let synthetic = c.generated.flatMap { $0.hasCounterFact ? $0 : nil }
        o.dataDir = synthetic?.out ?? c.dataDir; o.seed = c.seed; o.cacheDir = ""
        if let g = c.generated, !explicit.contains("corpus") { o.corpus = [g.corpus] }
        if let g = c.generated, !g.hasCounterFact, !explicit.contains("probes"), !explicit.contains("pararel") { o.probes = g.probes }
    }
    static func datasets(_ o: RomeOptions) -> [DatasetRef] {
        let cases = o.probes.map { DatasetRef(key: "probes", path: $0) }
            ?? (o.pararel ? DatasetRef(key: "pararel", path: DataRoot.resolve(o.dataDir) + "/pararel", directory: true)
                : DatasetRef(key: "split", path: DataRoot.resolve(o.dataDir) + "/counterfact/counterfact-\(o.split).json"))
        return [cases] + o.corpus.map { DatasetRef(key: "corpus", path: $0) }
    }
    static func write<R: Encodable>(_ records: [R], _ name: String, _ context: JobContext) throws {
        try AtomicFile.write(try Results.jsonLines(records), to: context.directory + "/\(name)-cases.jsonl")
    }
    static func records(_ name: String, _ directory: String) throws -> [RomeCaseRecord] {
        try Results.readLines(RomeCaseRecord.self, from: directory + "/\(name)-cases.jsonl")
    }
    /// ROME's edits changed what the model predicts: per case, P(new) - P(true) on its prompt after
    /// the edit minus before (points), the 95% t-interval's lower end above 0. An update of zero,
    /// or values that never left the old object, leave it at 0.
    static func edited(_ id: String, _ label: String, _ records: [RomeCaseRecord], gates: [String]) -> ValidityCheck {
        func margin(_ p: [String: Double]) -> Double { 100 * ((p["prompt_p_new"] ?? .nan) - (p["prompt_p_true"] ?? .nan)) }
        let d = Statistics.summarize(records.map { margin($0.after) - margin($0.before) })
        let low = d.mean - d.halfWidth
        return ValidityCheck(id: id, check: "\(label), P(new) - P(true) on the edited prompt, after minus before, on \(records.count) cases: "
                             + "the 95% t-interval's lower end above 0 points", value: low.isNaN ? nil : low, bound: 0, held: low > 0,
                             failure: "edits changed nothing", gates: gates)
    }
    static let metrics = ["efficacy", "paraphrase", "neighbourhood", "score"]
    static func rows(_ prefix: String, _ label: String, _ m: CounterFactMetrics) -> [MetricRow] {
        [MetricRow.percent("\(prefix).efficacy", "\(label): efficacy (%)", m.efficacy, better: .higher),
         MetricRow.percent("\(prefix).paraphrase", "\(label): paraphrase (%)", m.paraphrase, better: .higher),
         MetricRow.percent("\(prefix).neighbourhood", "\(label): neighbourhood (%)", m.neighbourhood, better: .higher),
         MetricRow.percent("\(prefix).score", "\(label): score (%)", m.score, better: .higher)]
    }
}

public enum RomeRecipeEvaluator: RecipeEvaluator {
    public static let name = "rome"
    public static let abstract = "ROME rank-one edits of CounterFact facts, one at a time (each from the unedited model)."
    public static let title = "ROME"
    public static var defaults: RomeOptions { RomeOptions() }
    public static let part = ReportPart.mechanisms
    public static var managedKeys: [String: String] { EditorKeys.managed }
    public static func resolve(_ o: inout RomeOptions, explicit: Set<String>, context c: ResolveContext) { EditorKeys.resolve(&o, explicit, c) }
    public static func datasets(_ o: RomeOptions) -> [DatasetRef] { EditorKeys.datasets(o) }
    public static func run(checkpoint: String, options: RomeOptions, context: JobContext) throws -> RomeResult {
        var o = options
        o.cacheDir = context.cacheDir
        let (r, records) = try Rome.run(checkpoint: checkpoint, options: o, log: context.log)
        try EditorKeys.write(records, name, context)
        return r
    }
    public static func validity(_ r: RomeResult, directory: String) throws -> [ValidityCheck] {
        [EditorKeys.edited("rome.edited", "ROME", try EditorKeys.records(name, directory), gates: EditorKeys.metrics.map { "rome.\($0)" })]
    }
    public static func rows(_ r: RomeResult) -> [MetricRow] {
        EditorKeys.rows("rome", "ROME", r.after) + [MetricRow("rome.layer", "ROME: edited layer", Double(r.layer), descriptive: true)]
    }
}

public enum MemitRecipeEvaluator: RecipeEvaluator {
    public static let name = "memit"
    public static let abstract = "MEMIT: many CounterFact edits at once over a range of layers; scaling curve against sequential ROME."
    public static let title = "MEMIT"
    public static var defaults: MemitOptions { MemitOptions() }
    public static let part = ReportPart.mechanisms
    public static var managedKeys: [String: String] { EditorKeys.managed }
    public static var aliases: [String: [String]] {
        Dictionary(uniqueKeysWithValues: Mirror(reflecting: RomeOptions()).children.compactMap(\.label).map { ($0, ["edit", $0]) })
    }
    public static func resolve(_ o: inout MemitOptions, explicit: Set<String>, context c: ResolveContext) { EditorKeys.resolve(&o.edit, explicit, c) }
    public static func datasets(_ o: MemitOptions) -> [DatasetRef] { EditorKeys.datasets(o.edit) }
    public static func run(checkpoint: String, options: MemitOptions, context: JobContext) throws -> MemitResult {
        var o = options
        o.edit.cacheDir = context.cacheDir
        let (r, records) = try Rome.runMemit(checkpoint: checkpoint, options: o, log: context.log)
        try EditorKeys.write(records, name, context)
        try AtomicFile.write(Data(MemitPlot.svg(r).utf8), to: context.directory + "/memit-scaling.svg")
        return r
    }
    /// MEMIT's k edits at once flip more edited prompts to the new object than the unedited
    /// model gave it on the same k cases (results from before a point recorded them read them off
    /// the sequential ROME records, or the largest set's); the sequential ROME edits as ROME's
    /// check, on their cases.
    public static func validity(_ r: MemitResult, directory: String) throws -> [ValidityCheck] {
        let records = try EditorKeys.records(name, directory), largest = r.points.map(\.edits).max()
        let memit = r.points.map { p in
            let before = p.before.map(\.efficacy)
                ?? (records.count >= p.edits ? Statistics.mean(records.prefix(p.edits).map { $0.before["prompt_p_new"]! > $0.before["prompt_p_true"]! ? 1.0 : 0.0 })
                    : p.edits == largest ? r.before.efficacy : nil)
            return ValidityCheck(id: "memit.\(p.edits).edited", check: "MEMIT, \(p.edits) edits at once: efficacy above the unedited model's on the same cases",
                                 value: 100 * p.memit.efficacy, bound: before.map { 100 * $0 }, held: before.map { p.memit.efficacy > $0 } ?? false,
                                 failure: before == nil ? "before not recorded" : before == 1 ? "new objects preferred before the edit" : "edits changed nothing",
                                 gates: EditorKeys.metrics.map { "memit.\(p.edits).\($0)" })
        }
        return memit + (r.options.sequential && !records.isEmpty
                        ? [EditorKeys.edited("memit.rome.edited", "sequential ROME", records, gates: ["memit.rome.*"])] : [])
    }
    public static func rows(_ r: MemitResult) -> [MetricRow] {
        r.points.flatMap { p in
            EditorKeys.rows("memit.\(p.edits)", "MEMIT, \(p.edits) edits", p.memit)
                + (p.rome.map { EditorKeys.rows("memit.rome.\(p.edits)", "ROME sequential, \(p.edits) edits", $0) } ?? [])
        }
    }
    /// CounterFact score against the number of edits: MEMIT at once, ROME one after another.
    public static func figures(_ r: MemitResult) -> [Figure] {
        let rome = r.points.compactMap { p in p.rome.map { (log10(Double(p.edits)), 100 * $0.score) } }
        return [Figure(id: "memit-score", title: "MEMIT: CounterFact score by number of edits (at once)", xLabel: "log10(number of edits)",
                       yLabel: "score (%)", markers: true, kind: .curve(r.points.map { (log10(Double($0.edits)), 100 * $0.memit.score) }))]
            + (rome.isEmpty ? [] : [Figure(id: "rome-sequential-score", title: "ROME: CounterFact score by number of sequential edits",
                                           xLabel: "log10(number of edits)", yLabel: "score (%)", markers: true, kind: .curve(rome))])
    }
}
