import ArgumentParser
import Evaluators
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Evaluate a checkpoint; results go to results/<checkpoint-name>/<eval>.json.",
        subcommands: [MLM.self, BLiMP.self])

    struct MLM: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "mlm",
            abstract: "Held-out masked-LM loss, perplexity and accuracy (fixed masking seed).")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @Option(parsing: .upToNextOption, help: "Corpus files or directories (default: <data root>/wiki_en).") var corpus: [String] = []
        @Option(help: "Dataset root.") var dataDir: String?
        @Option(help: "Sequence length.") var seqLen = 128
        @Option(help: "Validation sequences to score.") var sequences = 1024
        @Option(help: "Masking seed.") var maskSeed: UInt64 = 12345
        @Option(help: "Share of documents held out (must match pretraining's --val-fraction).") var valFraction = 0.005
        @Option(help: "Results root directory.") var results = "results"
        func run() throws {
            var o = MLMEvalOptions()
            o.corpus = corpus; o.dataDir = dataDir; o.seqLen = seqLen; o.sequences = sequences; o.maskSeed = maskSeed; o.valFraction = valFraction
            let r = try MLMEval.run(checkpoint: checkpoint, options: o, log: log)
            let path = try Results.write(r, name: "mlm", checkpoint: checkpoint, root: results)
            print(String(format: "mlm: loss %.4f  perplexity %.2f  accuracy %.4f  (%d masked tokens)  -> %@",
                         r.metrics.loss, r.metrics.perplexity, r.metrics.accuracy, r.metrics.maskedTokens, path))
        }
    }

    struct BLiMP: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "blimp",
            abstract: "BLiMP minimal pairs by pseudo-log-likelihood: accuracy overall, per paradigm and per phenomenon.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @Option(help: "Dataset root (BLiMP in <root>/blimp/data).") var dataDir: String?
        @Option(help: "Pairs per paradigm (default: all 1000).") var limit: Int?
        @Option(help: "Masked copies per forward pass.") var batch = 64
        @Option(help: "Results root directory.") var results = "results"
        func run() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            var o = BlimpOptions()
            o.dataDir = dataDir; o.limit = limit; o.batch = batch
            let r = try Blimp.run(checkpoint: checkpoint, options: o, log: log)
            let path = try Results.write(r, name: "blimp", checkpoint: checkpoint, root: results)
            print(String(format: "blimp: accuracy %.4f over %d pairs (%.0fs) -> %@", r.overall.accuracy, r.overall.total, r.seconds, path))
        }
    }
}
