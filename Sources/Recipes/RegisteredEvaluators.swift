// The evaluators recipes know: thin adapters from the registry protocol to the evaluators'
// library entry points (MLMEval.run, Blimp.run, Squad.finetuneAndEvaluate).

import Checkpoint
import Evaluators
import Foundation
import Text
import Training

/// `[evaluators.mlm]`: held-out MLM loss/perplexity/accuracy on the pretraining corpus's
/// validation split (the same split as pretraining; more sequences than its running check).
public enum MLMRecipeEvaluator: RecipeEvaluator {
    public static let name = "mlm"
    public static let abstract = "Held-out masked-LM loss, perplexity and accuracy (fixed masking seed)."
    public static let title = "Held-out masked LM (eval mlm)"
    public static var defaults: MLMEvalOptions { MLMEvalOptions() }
    public static let part = ReportPart.language
    public static let managedKeys = [
        "corpus": "the pretraining corpus", "dataDir": "the recipe's data-dir",
        "valFraction": "the pretraining's val-fraction", "cacheDir": "the runner's cache",
    ]

    public static func resolve(_ o: inout MLMEvalOptions, explicit: Set<String>, context c: ResolveContext) {
        o.corpus = c.pretrain.corpus
        o.dataDir = c.dataDir
        o.valFraction = c.pretrain.valFraction
        o.cacheDir = ""                       // the runner's cache, set at run time (not part of the hash)
        if !explicit.contains("seqLen") { o.seqLen = c.pretrain.seqLen }
    }

    public static func datasets(_ o: MLMEvalOptions) -> [DatasetRef] { [] }   // the pretraining corpus, checked there

    public static func run(checkpoint: String, options: MLMEvalOptions, context: JobContext) throws -> MLMEvalResult {
        var o = options
        o.cacheDir = context.cacheDir
        return try MLMEval.run(checkpoint: checkpoint, options: o, log: context.log)
    }

    public static func rows(_ r: MLMEvalResult) -> [MetricRow] {
        [MetricRow("mlm.loss", "eval mlm: validation MLM loss", r.metrics.loss, better: .lower),
         MetricRow("mlm.perplexity", "eval mlm: perplexity", r.metrics.perplexity, better: .lower),
         MetricRow.percent("mlm.accuracy", "eval mlm: masked-token accuracy (%)", r.metrics.accuracy, better: .higher)]
    }
}

/// `[evaluators.blimp]`: BLiMP minimal pairs by pseudo-log-likelihood.
public enum BlimpRecipeEvaluator: RecipeEvaluator {
    public static let name = "blimp"
    public static let abstract = "BLiMP minimal pairs by pseudo-log-likelihood: accuracy overall, per paradigm and per phenomenon."
    public static let title = "BLiMP"
    public static var defaults: BlimpOptions { BlimpOptions() }
    public static let part = ReportPart.language
    public static let managedKeys = ["dataDir": "the recipe's data-dir"]

    public static func resolve(_ o: inout BlimpOptions, explicit: Set<String>, context c: ResolveContext) {
        o.dataDir = c.dataDir
    }

    public static func datasets(_ o: BlimpOptions) -> [DatasetRef] {
        [DatasetRef(key: nil, path: DataRoot.resolve(o.dataDir) + "/blimp/data", directory: true, suffix: ".jsonl")]
    }

    public static func run(checkpoint: String, options: BlimpOptions, context: JobContext) throws -> BlimpResult {
        try Blimp.run(checkpoint: checkpoint, options: options, log: context.log)
    }

    /// Overall accuracy; per field and per paradigm in the appendix. Fields are merged by their
    /// one spelling (results written before Blimp.field kept "syntax/semantics" apart).
    public static func rows(_ r: BlimpResult) -> [MetricRow] {
        var fields: [String: Accuracy] = [:]
        for (f, a) in r.perField {
            fields[Blimp.field(f), default: .init()].correct += a.correct
            fields[Blimp.field(f)]!.total += a.total
        }
        return [MetricRow.percent("blimp.accuracy", "BLiMP accuracy (%)", r.overall.accuracy, better: .higher)]
            + fields.keys.sorted().map { f in
                MetricRow.percent("blimp.field.\(f)", "BLiMP field \(f) (%)", fields[f]!.accuracy, better: .higher, appendix: true)
            }
            + r.perParadigm.keys.sorted().map { p in
                MetricRow.percent("blimp.paradigm.\(p)", "BLiMP paradigm \(p) (%)", r.perParadigm[p]!.accuracy, better: .higher, appendix: true)
            }
    }
}

/// `[evaluators.squad]`: finetune on SQuAD with a fresh QA head (seeded by the job's seed),
/// official EM/F1 on dev. The finetuned weights are not kept; predictions are.
public enum SquadRecipeEvaluator: RecipeEvaluator {
    public static let name = "squad"
    public static let abstract = "Finetune on SQuAD v1.1/v2.0 (fresh QA head) and score the dev set with the official EM/F1."
    public static let title = "SQuAD"
    public static var defaults: SquadOptions { SquadOptions() }
    public static let part = ReportPart.language
    public static let managedKeys = [
        "dataDir": "the recipe's data-dir", "seed": "the recipe's seeds",
        "save": "finetuned weights are not kept by recipes",
    ]
    public static let aliases = ["maxSeqLen": ["features", "maxSeqLen"], "docStride": ["features", "docStride"],
                                 "maxQueryLen": ["features", "maxQueryLen"]]

    public static func resolve(_ o: inout SquadOptions, explicit: Set<String>, context c: ResolveContext) {
        o.dataDir = c.dataDir
        o.seed = c.seed
    }

    public static func datasets(_ o: SquadOptions) -> [DatasetRef] {
        let dir = DataRoot.resolve(o.dataDir) + "/squad"
        let v1 = o.version != "2.0"
        var out = [DatasetRef(key: o.dev == nil ? nil : "dev", path: o.dev ?? dir + (v1 ? "/dev-v1.1.json" : "/dev-v2.0.json"))]
        if o.epochs > 0 {
            let train = o.train ?? (v1 || !FileManager.default.fileExists(atPath: dir + "/train-v2.0.json")
                                    ? dir + "/train-v1.1.json" : dir + "/train-v2.0.json")
            out.insert(DatasetRef(key: o.train == nil ? nil : "train", path: train), at: 0)
        }
        return out
    }

    public static func run(checkpoint: String, options: SquadOptions, context: JobContext) throws -> SquadResult {
        let fm = FileManager.default
        let runDir = context.directory + "/finetune"
        try? fm.removeItem(atPath: runDir)
        defer { if !options.save { try? fm.removeItem(atPath: runDir) } }
        var out = try Squad.finetuneAndEvaluate(checkpoint: checkpoint, options: options, runDir: runDir, log: context.log)
        if options.save, out.result.finetune != nil {
            out.result.savedCheckpoint = "finetune/last.h5"          // in the job directory
            context.log("the finetuned checkpoint is kept in the job directory: finetune/last.h5")
        }
        try AtomicFile.write(Canonical.json(out.predictions, pretty: true), to: context.directory + "/predictions.json")
        if let odds = out.nullOdds {
            try AtomicFile.write(Canonical.json(odds, pretty: true), to: context.directory + "/null-odds.json")
        }
        return out.result
    }

    public static func rows(_ r: SquadResult) -> [MetricRow] {
        let v = "SQuAD v\(r.version)"
        var rows = [MetricRow("squad.exact", "\(v) EM", r.metrics.exact, better: .higher, bounds: MetricRow.percentRange),
                    MetricRow("squad.f1", "\(v) F1", r.metrics.f1, better: .higher, bounds: MetricRow.percentRange)]
        if let e = r.metrics.hasAnsExact, let f = r.metrics.hasAnsF1 {
            rows += [MetricRow("squad.hasans.exact", "\(v) HasAns EM", e, better: .higher, bounds: MetricRow.percentRange),
                     MetricRow("squad.hasans.f1", "\(v) HasAns F1", f, better: .higher, bounds: MetricRow.percentRange)]
        }
        if let e = r.metrics.noAnsExact { rows.append(MetricRow("squad.noans.exact", "\(v) NoAns EM", e, better: .higher, bounds: MetricRow.percentRange)) }
        return rows
    }
}
