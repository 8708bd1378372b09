// The concept-edit evaluators in recipes: bmask, ft, lora, reft. Keys are the CLI flag names
// (flattened: `epochs`, `limit`, `ranks` ...); data-dir and seed come from the recipe; recipes
// keep results, not models (no save-edited). Outputs: result.json plus <name>-concepts.jsonl,
// which the report reads back to pair concepts within a seed.

import Checkpoint
import Evaluators
import Foundation
import Text

enum EditKeys {
    static let managed = ["dataDir": "the recipe's data-dir", "seed": "the recipe's seeds",
                          "saveEdited": "recipes keep results, not models", "saveConcept": "recipes keep results, not models",
                          "saveRank": "recipes keep results, not models"]
    /// Flattened key -> path: EditOptions under `edit`, ProbeOptions under `edit.probes`.
    static var aliases: [String: [String]] {
        var a: [String: [String]] = [:]
        for k in ["concepts", "concept", "minProbes", "heldOut", "splitSeed", "epochs", "minSteps", "lr", "trainBatch", "weightDecay",
                  "maxGradNorm", "dropout", "saveEdited", "saveConcept"] { a[k] = ["edit", k] }
        for k in ["dataDir", "probes", "relations", "limit", "seed", "batch", "knownOnly"] { a[k] = ["edit", "probes", k] }
        return a
    }
    static func resolve(_ o: inout EditOptions, _ explicit: Set<String>, _ c: ResolveContext) {
        o.probes.dataDir = c.dataDir; o.probes.seed = c.seed
        if let g = c.generated, !explicit.contains("probes") { o.probes.probes = g.probes }
    }
    static func datasets(_ o: EditOptions) -> [DatasetRef] {
        if let file = o.probes.probes { return [DatasetRef(key: "probes", path: file)] }
        return [DatasetRef(key: nil, path: DataRoot.resolve(o.probes.dataDir) + "/pararel", directory: true)]
    }
    static func write(_ records: [EditConceptRecord], _ name: String, _ context: JobContext) throws {
        try AtomicFile.write(try Results.jsonLines(records), to: context.directory + "/\(name)-concepts.jsonl")
    }
    /// The row id prefix and label of a result row (per rank for lora/reft).
    static func prefix(_ name: String, _ label: String, rank: Int?) -> (id: String, label: String) {
        (EditRow.rowPrefix(name, rank: rank), label + (rank.map { " rank \($0)" } ?? ""))
    }
    /// The after-edit metrics as row values (id suffix, label, value, better).
    static func metrics(_ m: EditMetrics) -> [(String, String, Double, MetricRow.Better?)] {
        [("edit_success", "edit success (%)", 100 * m.editSuccess, .higher),
         ("edit_localization", "edit localization (%)", 100 * m.editLocalization, nil),
         ("mask_edit_success", "edit success at [MASK] (%)", 100 * m.maskEditSuccess, .higher),
         ("mask_edit_localization", "edit localization at [MASK] (%)", 100 * m.maskEditLocalization, nil)]
    }
    /// The change an edit made to the success rows, after − before (points): what variants are
    /// compared on, since the after-level also carries the base models' own difference.
    static func changes(_ before: EditMetrics, _ after: EditMetrics) -> [(String, String, Double)] {
        [("mask_edit_success_change", "change in edit success at [MASK], after − before (points)", 100 * (after.maskEditSuccess - before.maskEditSuccess)),
         ("edit_success_change", "change in edit success, after − before (points)", 100 * (after.editSuccess - before.editSuccess))]
    }
    /// The after-edit means of each row (per rank for lora/reft; success levels shown, not
    /// tested, their changes tested), then the unedited model's success on the same probes (the
    /// same for every rank; shown, not tested).
    static func rows(_ name: String, _ label: String, _ rows: [EditRow]) -> [MetricRow] {
        let after = rows.flatMap { r -> [MetricRow] in
            let (p, l) = prefix(name, label, rank: r.rank)
            var out = changes(r.before, r.after).map { MetricRow("\(p).\($0.0)", "\(l): \($0.1)", $0.2, better: .higher, bounds: -100...100) }
                + metrics(r.after).map {
                    MetricRow("\(p).\($0.0)", "\(l): \($0.1)", $0.2, better: $0.3, descriptive: $0.3 != nil, bounds: MetricRow.percentRange)
                }
            if let t = r.after.trainMaskSuccess {
                out.append(MetricRow.percent("\(p).train_mask_success", "\(l): edit success at [MASK] on its training probes (%)", t, descriptive: true))
            }
            if let a = r.meanActive { out.append(MetricRow("\(p).mean_active", "\(l): mean active weights per matrix", a)) }
            if let f = r.keptFraction { out.append(MetricRow.percent("\(p).kept_fraction", "\(l): weights kept (%)", f)) }
            for (i, m) in (r.keptPerMatrix ?? []).enumerated() {
                out.append(MetricRow.percent("\(p).kept_fraction.\(i)", "\(l): weights kept in \(m.matrix) (%)", m.fraction, descriptive: true, appendix: true))
            }
            return out
        }
        guard let before = rows.first?.before else { return after }
        return after + metrics(before).filter { $0.0.hasSuffix("edit_success") }.map {
            MetricRow("\(name).before.\($0.0)", "\(label): \($0.1.replacingOccurrences(of: " (%)", with: " before the edit (%)"))", $0.2, descriptive: true, bounds: MetricRow.percentRange)
        } + (before.trainMaskSuccess.map {
            [MetricRow.percent("\(name).before.train_mask_success", "\(label): edit success at [MASK] on the training probes before the edit (%)", $0, descriptive: true)]
        } ?? [])
    }
    /// The same per concept, from <name>-concepts.jsonl.
    static func units(_ name: String, _ directory: String) throws -> [String: MetricRow.Units] {
        var pairs: [String: [(String, Double)]] = [:]
        for c in try Results.readLines(EditConceptRecord.self, from: directory + "/\(name)-concepts.jsonl") {
            let p = prefix(name, "", rank: c.rank).id
            for (suffix, _, v, _) in metrics(c.after) { pairs["\(p).\(suffix)", default: []].append((c.concept, v)) }
            for (suffix, _, v) in changes(c.before, c.after) { pairs["\(p).\(suffix)", default: []].append((c.concept, v)) }
            if let a = c.meanActive { pairs["\(p).mean_active", default: []].append((c.concept, a)) }
            if let f = c.keptFraction { pairs["\(p).kept_fraction", default: []].append((c.concept, 100 * f)) }
        }
        return pairs.mapValues { MetricRow.Units(kind: "concept", $0) }
    }
    /// The checks of an edit result (EditResult.validity) on the concept records the job wrote.
    static func validity<O>(_ r: EditResult<O>, _ directory: String) throws -> [ValidityCheck] {
        r.validity(records: try Results.readLines(EditConceptRecord.self, from: directory + "/\(r.method)-concepts.jsonl"))
    }
    /// Rank sweeps: after-edit success against log2(rank).
    static func rankCurves(_ name: String, _ label: String, _ rows: [EditRow]) -> [Figure] {
        let ranked = rows.filter { $0.rank != nil }.sorted { $0.rank! < $1.rank! }
        guard ranked.count > 1 else { return [] }
        return [Figure(id: "\(name)-ranks", title: "\(label): edit success after the edit by rank", xLabel: "log2(rank)",
                       yLabel: "edit success (%)", markers: true,
                       kind: .curve(ranked.map { (log2(Double($0.rank!)), 100 * $0.after.editSuccess) }))]
    }
}

public enum BMaskRecipeEvaluator: RecipeEvaluator {
    public static let name = "bmask"
    public static let abstract = "Binary-mask edits: per concept, learn a mask over weight matrices (hard Gumbel-sigmoid, straight-through); edit success, localization, mean active weights."
    public static let title = "Binary masks"
    public static var defaults: BMaskOptions { BMaskOptions() }
    public static let part = ReportPart.knowledge
    public static var managedKeys: [String: String] { EditKeys.managed }
    public static var aliases: [String: [String]] { EditKeys.aliases }
    public static func resolve(_ o: inout BMaskOptions, explicit: Set<String>, context c: ResolveContext) { EditKeys.resolve(&o.edit, explicit, c) }
    public static func datasets(_ o: BMaskOptions) -> [DatasetRef] { EditKeys.datasets(o.edit) }
    public static func run(checkpoint: String, options: BMaskOptions, context: JobContext) throws -> EditResult<BMaskOptions> {
        let (r, records) = try BinaryMaskEval.run(checkpoint: checkpoint, options: options, log: context.log)
        try EditKeys.write(records, name, context)
        return r
    }
    public static func rows(_ r: EditResult<BMaskOptions>) -> [MetricRow] { EditKeys.rows(name, "Binary mask", r.rows) }
    public static func units(_ r: EditResult<BMaskOptions>, directory: String) throws -> [String: MetricRow.Units] { try EditKeys.units(name, directory) }
    public static func validity(_ r: EditResult<BMaskOptions>, directory: String) throws -> [ValidityCheck] { try EditKeys.validity(r, directory) }
}

public enum FinetuneRecipeEvaluator: RecipeEvaluator {
    public static let name = "ft"
    public static let abstract = "Finetuning edits: per concept, train W + dW on the chosen parameters."
    public static let title = "Finetune edits"
    public static var defaults: FinetuneOptions { FinetuneOptions() }
    public static let part = ReportPart.editing
    public static var managedKeys: [String: String] { EditKeys.managed }
    public static var aliases: [String: [String]] { EditKeys.aliases }
    public static func resolve(_ o: inout FinetuneOptions, explicit: Set<String>, context c: ResolveContext) { EditKeys.resolve(&o.edit, explicit, c) }
    public static func datasets(_ o: FinetuneOptions) -> [DatasetRef] { EditKeys.datasets(o.edit) }
    public static func run(checkpoint: String, options: FinetuneOptions, context: JobContext) throws -> EditResult<FinetuneOptions> {
        let (r, records) = try FinetuneEval.run(checkpoint: checkpoint, options: options, log: context.log)
        try EditKeys.write(records, name, context)
        return r
    }
    public static func rows(_ r: EditResult<FinetuneOptions>) -> [MetricRow] { EditKeys.rows(name, "Finetune", r.rows) }
    public static func units(_ r: EditResult<FinetuneOptions>, directory: String) throws -> [String: MetricRow.Units] { try EditKeys.units(name, directory) }
    public static func validity(_ r: EditResult<FinetuneOptions>, directory: String) throws -> [ValidityCheck] { try EditKeys.validity(r, directory) }
}

public enum LoRARecipeEvaluator: RecipeEvaluator {
    public static let name = "lora"
    public static let abstract = "LoRA edits with a rank sweep (one row per rank): W + (alpha/r) B A on the chosen matrices."
    public static let title = "LoRA edits"
    public static var defaults: LoRAOptions { LoRAOptions() }
    public static let part = ReportPart.editing
    public static var managedKeys: [String: String] { EditKeys.managed }
    public static var aliases: [String: [String]] { EditKeys.aliases }
    public static func resolve(_ o: inout LoRAOptions, explicit: Set<String>, context c: ResolveContext) { EditKeys.resolve(&o.edit, explicit, c) }
    public static func datasets(_ o: LoRAOptions) -> [DatasetRef] { EditKeys.datasets(o.edit) }
    public static func run(checkpoint: String, options: LoRAOptions, context: JobContext) throws -> EditResult<LoRAOptions> {
        let (r, records) = try LoRAEval.run(checkpoint: checkpoint, options: options, log: context.log)
        try EditKeys.write(records, name, context)
        return r
    }
    public static func rows(_ r: EditResult<LoRAOptions>) -> [MetricRow] { EditKeys.rows(name, "LoRA", r.rows) }
    public static func units(_ r: EditResult<LoRAOptions>, directory: String) throws -> [String: MetricRow.Units] { try EditKeys.units(name, directory) }
    public static func validity(_ r: EditResult<LoRAOptions>, directory: String) throws -> [ValidityCheck] { try EditKeys.validity(r, directory) }
    public static func figures(_ r: EditResult<LoRAOptions>) -> [Figure] { EditKeys.rankCurves(name, "LoRA", r.rows) }
}

public enum ReFTRecipeEvaluator: RecipeEvaluator {
    public static let name = "reft"
    public static let abstract = "LoReFT edits with a rank sweep (one row per rank) on block outputs at [CLS]/[SEP]/[MASK] (default places: the study's layers 4, 6, 8, 11 of 12 scaled to the model's depth)."
    public static let title = "LoReFT edits"
    public static var defaults: ReFTOptions { ReFTOptions() }
    public static let part = ReportPart.editing
    public static var managedKeys: [String: String] { EditKeys.managed }
    public static var aliases: [String: [String]] { EditKeys.aliases }
    public static func resolve(_ o: inout ReFTOptions, explicit: Set<String>, context c: ResolveContext) { EditKeys.resolve(&o.edit, explicit, c) }
    public static func datasets(_ o: ReFTOptions) -> [DatasetRef] { EditKeys.datasets(o.edit) }
    public static func run(checkpoint: String, options: ReFTOptions, context: JobContext) throws -> EditResult<ReFTOptions> {
        let (r, records) = try ReFTEval.run(checkpoint: checkpoint, options: options, log: context.log)
        try EditKeys.write(records, name, context)
        return r
    }
    public static func rows(_ r: EditResult<ReFTOptions>) -> [MetricRow] { EditKeys.rows(name, "LoReFT", r.rows) }
    public static func units(_ r: EditResult<ReFTOptions>, directory: String) throws -> [String: MetricRow.Units] { try EditKeys.units(name, directory) }
    public static func validity(_ r: EditResult<ReFTOptions>, directory: String) throws -> [ValidityCheck] { try EditKeys.validity(r, directory) }
    public static func figures(_ r: EditResult<ReFTOptions>) -> [Figure] { EditKeys.rankCurves(name, "LoReFT", r.rows) }
}
