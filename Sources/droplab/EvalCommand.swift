import ArgumentParser
import Autograd
import Evaluators
import Checkpoint
import Foundation
import Training

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval",
        abstract: "Evaluate a checkpoint; results go to results/<run>-<path hash>/<eval>.json.",
        subcommands: [MLM.self, BLiMP.self, SQuAD.self, ConsistencyCmd.self, IG.self, KN.self, Lens.self,
                       Trace.self, InterchangeCmd.self, RomeCmd.self, MemitCmd.self, MendCmd.self, BMask.self, FT.self, LoRA.self, ReFT.self,
                       AcquisitionCmd.self])

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
        @Option(help: "Cache directory for token shards.") var cacheDir = "checkpoints/cache"
        @Option(help: "Results root directory.") var results = "results"
        func run() throws {
            var o = MLMEvalOptions()
            o.corpus = corpus; o.dataDir = dataDir; o.seqLen = seqLen; o.sequences = sequences; o.maskSeed = maskSeed; o.valFraction = valFraction; o.cacheDir = cacheDir
            try Check.nonEmpty(cacheDir, "cache-dir")
            try AtomicFile.checkWritableDirectory(results, flag: "--results")
            let r = try MLMEval.run(checkpoint: checkpoint, options: o, log: log)
            let path = try Results.write(r, name: "mlm", checkpoint: checkpoint, root: results, log: log)
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
            var o = BlimpOptions()
            o.dataDir = dataDir; o.limit = limit; o.batch = batch
            try AtomicFile.checkWritableDirectory(results, flag: "--results")
            let r = try Blimp.run(checkpoint: checkpoint, options: o, log: log)
            let path = try Results.write(r, name: "blimp", checkpoint: checkpoint, root: results, log: log)
            print(String(format: "blimp: accuracy %.4f over %d pairs (%.0fs) -> %@", r.overall.accuracy, r.overall.total, r.seconds, path))
        }
    }

    struct SQuAD: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "squad",
            abstract: "Finetune on SQuAD v1.1/v2.0 (fresh QA head) and score the dev set with the official EM/F1.",
            discussion: """
                Defaults: <data root>/squad/train-v1.1.json and dev-v1.1.json (dev-v2.0.json with --version 2.0; there is no \
                v2.0 train set, so v2.0 finetunes on train-v1.1.json unless --train is given). Writes squad.json, \
                squad-predictions.json (and squad-null-odds.json for v2.0) to the results directory; --save also keeps \
                the finetuned checkpoint in its squad-run/last.h5.
                """)
        @Argument(help: "Pretrained checkpoint (.h5).") var checkpoint: String
        @Option(help: "Dataset root (SQuAD in <root>/squad).") var dataDir: String?
        @Option(help: "Training file (SQuAD JSON).") var train: String?
        @Option(help: "Evaluation file (SQuAD JSON).") var dev: String?
        @Option(help: "SQuAD version: 1.1 or 2.0.") var version = "1.1"
        @Option(help: "Passes over the training features (0: evaluate the checkpoint as is).") var epochs = 2
        @Option(help: "Peak learning rate.") var lr: Float = 3e-5
        @Option(help: "Training batch size (features per optimizer step).") var batch = 32
        @Option(help: "Evaluation batch size.") var evalBatch = 32
        @Option(help: "Warmup: fraction of steps (< 1) or steps (>= 1); then linear decay to 0.") var warmup: Float = 0.1
        @Option(help: "AdamW weight decay.") var weightDecay: Float = 0.01
        @Option(help: "Hidden and attention dropout while finetuning.") var finetuneDropout: Float = 0.1
        @Option(help: "Use only the first N training questions.") var maxTrainExamples: Int?
        @Option(help: "Evaluate only the first N dev questions.") var maxDevExamples: Int?
        @Option(help: "Seed for the QA head, data order and dropout.") var seed: UInt64 = 0
        @Flag(help: "Keep the finetuned checkpoint in the results directory (squad-run/).") var save = false
        @Option(help: "Tokens per window.") var maxSeqLen = 384
        @Option(help: "Tokens between the starts of consecutive context windows.") var docStride = 128
        @Option(help: "Question tokens kept.") var maxQueryLen = 64
        @Option(help: "Longest answer in tokens.") var maxAnswerLen = 30
        @Option(help: "Start and end candidates per window.") var nBest = 20
        @Option(help: "v2.0: predict no answer when null score - best span score exceeds this.") var nullThreshold = 0.0
        @Flag(help: "v2.0: also report the best threshold and its EM/F1 (official best_exact/best_f1).") var bestThreshold = false
        @Option(help: "Log a training metrics line every N steps.") var logEvery = 10
        @Option(help: "Finetuning's matrix products: fp32 or bf16 (as pretrain --precision; evaluation stays fp32).") var precision = Precision.fp32
        @Option(help: "Results root directory.") var results = "results"
        func run() throws {
            var o = SquadOptions()
            o.precision = precision == .fp32 ? nil : precision
            o.dataDir = dataDir; o.train = train; o.dev = dev; o.version = version; o.epochs = epochs; o.lr = lr
            o.batch = batch; o.evalBatch = evalBatch; o.warmup = warmup; o.weightDecay = weightDecay
            o.finetuneDropout = finetuneDropout; o.maxTrainExamples = maxTrainExamples; o.maxDevExamples = maxDevExamples
            o.seed = seed; o.save = save; o.features.maxSeqLen = maxSeqLen; o.features.docStride = docStride
            o.features.maxQueryLen = maxQueryLen; o.maxAnswerLen = maxAnswerLen; o.nBest = nBest
            o.nullThreshold = nullThreshold; o.bestThreshold = bestThreshold; o.logEvery = logEvery
            try AtomicFile.checkWritableDirectory(results, flag: "--results")
            let (r, path) = try Squad.run(checkpoint: checkpoint, options: o, resultsRoot: results, log: log)
            var line = String(format: "squad v%@: EM %.2f  F1 %.2f  (%d questions", r.version, r.metrics.exact, r.metrics.f1, r.metrics.total)
            if let e = r.metrics.hasAnsExact, let f = r.metrics.hasAnsF1 { line += String(format: "; HasAns EM %.2f F1 %.2f", e, f) }
            if let e = r.metrics.noAnsExact { line += String(format: "; NoAns EM %.2f", e) }
            if let b = r.metrics.bestF1, let t = r.metrics.bestF1Threshold { line += String(format: "; best F1 %.2f at threshold %.3f", b, t) }
            print(line + String(format: ", %.0fs) -> %@", r.seconds["total"] ?? 0, path))
        }
    }
}
