import ArgumentParser
import Evaluators
import Foundation
import Recipes

/// The flags ROME and MEMIT share.
struct RomeFlags: ParsableArguments {
    @Option(help: "Dataset root (CounterFact in <root>/counterfact).") var dataDir: String?
    @Option(help: "CounterFact split: edit, train or val.") var split = "edit"
    @Option(help: "Seed for the prefixes.") var seed: UInt64 = 0
    @Option(help: "Edited FFN layer (default: the causal trace's ffn.out peak at the last subject token).") var layer: Int?
    @Option(help: "Cases traced to choose the layer.") var traceCases = 50
    @Option(parsing: .upToNextOption, help: "Text for the key covariance and the prefixes (default: <root>/wiki_en).") var corpus: [String] = []
    @Option(help: "Corpus sequences for the key covariance.") var covSamples = 1000
    @Option(help: "Tokens per covariance sequence.") var covSeqLen = 64
    @Option(help: "Random corpus prefixes per prompt.") var prefixes = 5
    @Option(help: "Words per prefix.") var prefixWords = 5
    @Option(help: "Adam steps of the value optimisation.") var steps = 20
    @Option(help: "Its learning rate.") var lr: Float = 0.5
    @Option(help: "Weight of the KL term on '<subject> is a [MASK] .'.") var klFactor: Float = 0.0625
    @Option(help: "Weight of |delta|^2 / |h|^2.") var weightDecay: Float = 0.5
    @Option(help: "|delta| is clamped to this x |h|.") var clampNorm: Float = 4
    @Option(help: "Cache directory (key covariances).") var cacheDir = "checkpoints/cache"
    @Option(help: "Sequences per forward pass.") var batch = 64
    @Option(help: "Write the edited model as a Hugging Face directory.") var saveEdited: String?
    @Option(help: "Results root directory.") var results = "results"

    func options(limit: Int?) -> RomeOptions {
        var o = RomeOptions()
        o.dataDir = dataDir; o.split = split; o.limit = limit; o.seed = seed; o.layer = layer; o.traceCases = traceCases
        o.corpus = corpus; o.covSamples = covSamples; o.covSeqLen = covSeqLen; o.prefixes = prefixes; o.prefixWords = prefixWords
        o.steps = steps; o.lr = lr; o.klFactor = klFactor; o.weightDecay = weightDecay; o.clampNorm = clampNorm
        o.cacheDir = cacheDir; o.batch = batch; o.saveEdited = saveEdited
        return o
    }
}

func describe(_ m: CounterFactMetrics) -> String {
    String(format: "efficacy %.3f  paraphrase %.3f  neighbourhood %.3f  score %.3f", m.efficacy, m.paraphrase, m.neighbourhood, m.score)
}

extension EvalCommand {
    struct RomeCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rome",
            abstract: "ROME rank-one edits of CounterFact facts, one at a time (each from the unedited model).")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var flags: RomeFlags
        @Option(help: "Edit cases (the first usable ones).") var limit = 100
        func run() throws {
            let (r, records) = try Rome.run(checkpoint: checkpoint, options: flags.options(limit: limit), log: log)
            try Results.writeLines(records, name: "rome-cases", checkpoint: checkpoint, root: flags.results)
            let path = try Results.write(r, name: "rome", checkpoint: checkpoint, root: flags.results)
            print("rome: layer \(r.layer), \(r.cases) cases; before: \(describe(r.before))")
            print("rome: after:  \(describe(r.after))" + String(format: "  (|dW| %.3g, %.0fs) -> %@", r.updateNorm, r.seconds, path))
        }
    }

    struct MemitCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "memit",
            abstract: "MEMIT: many CounterFact edits at once over a range of layers; scaling curve against sequential ROME.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var flags: RomeFlags
        @Option(parsing: .upToNextOption, help: "Edited layers (default: the ROME layer and the one below).") var layers: [Int] = []
        @Option(help: "Covariance weight (default: MEMIT's 15000 scaled to the FFN width).") var lambda: Double?
        @Option(parsing: .upToNextOption, help: "Numbers of simultaneous edits.") var counts = [1, 10, 100, 1000]
        @Flag(help: "Skip the sequential ROME comparison.") var noSequential = false
        func run() throws {
            var o = MemitOptions()
            o.edit = flags.options(limit: nil); o.layers = layers; o.lambda = lambda; o.counts = counts; o.sequential = !noSequential
            let (r, records) = try Rome.runMemit(checkpoint: checkpoint, options: o, log: log)
            try Results.writeLines(records, name: "memit-cases", checkpoint: checkpoint, root: flags.results)
            let path = try Results.write(r, name: "memit", checkpoint: checkpoint, root: flags.results)
            let svg = MemitPlot.svg(r)
            try svg.write(toFile: (path as NSString).deletingLastPathComponent + "/memit-scaling.svg", atomically: true, encoding: .utf8)
            for p in r.points {
                print("memit: \(p.edits) edits: \(describe(p.memit))" + (p.rome.map { "   | sequential rome: \(describe($0))" } ?? ""))
            }
            print(String(format: "memit: layers %@ (%.0fs) -> %@ (+ memit-scaling.svg)", "\(r.layers)", r.seconds, path))
        }
    }
}
