// The concept-edit evaluators in recipes: bmask, ft, lora, reft. Keys are the CLI flag names
// (flattened: `epochs`, `limit`, `ranks` ...); data-dir and seed come from the recipe; recipes
// keep results, not models (no save-edited). Outputs: result.json plus <name>-concepts.jsonl.

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
        for k in ["concepts", "concept", "minProbes", "heldOut", "splitSeed", "epochs", "lr", "trainBatch", "weightDecay",
                  "maxGradNorm", "dropout", "saveEdited", "saveConcept"] { a[k] = ["edit", k] }
        for k in ["dataDir", "probes", "relations", "limit", "seed", "batch"] { a[k] = ["edit", "probes", k] }
        return a
    }
    static func resolve(_ o: inout EditOptions, _ explicit: Set<String>, _ c: ResolveContext) {
        o.probes.dataDir = c.dataDir; o.probes.seed = c.seed
        if let d = c.synthetic, !explicit.contains("probes") { o.probes.probes = d + "/" + SyntheticFacts.probesFile }
    }
    static func datasets(_ o: EditOptions) -> [DatasetRef] {
        if let file = o.probes.probes { return [DatasetRef(key: "probes", path: file)] }
        return [DatasetRef(key: nil, path: DataRoot.resolve(o.probes.dataDir) + "/pararel", directory: true)]
    }
    static func write(_ records: [EditConceptRecord], _ name: String, _ context: JobContext) throws {
        try AtomicFile.write(try Results.jsonLines(records), to: context.directory + "/\(name)-concepts.jsonl")
    }
    /// The after-edit means of each row (per rank for lora/reft).
    static func rows(_ name: String, _ label: String, _ rows: [EditRow]) -> [MetricRow] {
        rows.flatMap { r -> [MetricRow] in
            let p = name + (r.rank.map { ".r\($0)" } ?? ""), l = label + (r.rank.map { " rank \($0)" } ?? "")
            var out = [MetricRow("\(p).edit_success", "\(l): edit success (%)", 100 * r.after.editSuccess, better: .higher),
                       MetricRow("\(p).edit_localization", "\(l): edit localization (%)", 100 * r.after.editLocalization),
                       MetricRow("\(p).mask_edit_success", "\(l): edit success at [MASK] (%)", 100 * r.after.maskEditSuccess, better: .higher),
                       MetricRow("\(p).mask_edit_localization", "\(l): edit localization at [MASK] (%)", 100 * r.after.maskEditLocalization)]
            if let a = r.meanActive { out.append(MetricRow("\(p).mean_active", "\(l): mean active weights per matrix", a)) }
            return out
        }
    }
}

public enum BMaskRecipeEvaluator: RecipeEvaluator {
    public static let name = "bmask"
    public static var defaults: BMaskOptions { BMaskOptions() }
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
}

public enum FinetuneRecipeEvaluator: RecipeEvaluator {
    public static let name = "ft"
    public static var defaults: FinetuneOptions { FinetuneOptions() }
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
}

public enum LoRARecipeEvaluator: RecipeEvaluator {
    public static let name = "lora"
    public static var defaults: LoRAOptions { LoRAOptions() }
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
}

public enum ReFTRecipeEvaluator: RecipeEvaluator {
    public static let name = "reft"
    public static var defaults: ReFTOptions { ReFTOptions() }
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
}
