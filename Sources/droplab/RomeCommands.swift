import ArgumentParser
import Evaluators
import Foundation
import Recipes

/// The flags ROME and MEMIT share.
struct RomeFlags: ParsableArguments {
    @Option(help: "Dataset root (CounterFact in <root>/counterfact).") var dataDir: String?
    @Option(help: "CounterFact split: edit, train or val.") var split = "edit"
    @Flag(help: "Edit cases from ParaRel (a fact's first pattern, a paraphrase, a neighbour with the same object, a new object of the relation) instead of CounterFact.")
    var pararel = false
    @Option(parsing: .upToNextOption, help: "With --pararel: ParaRel relations (default: all).") var relations: [String] = []
    @Option(help: "Edit cases from a user probe file (JSONL, as --pararel makes them from ParaRel).") var probes: String?
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
        o.dataDir = dataDir; o.split = split; o.pararel = pararel; o.relations = relations; o.probes = probes; o.limit = limit; o.seed = seed; o.layer = layer; o.traceCases = traceCases
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
            try Results.writeLines(records, name: "rome-cases", checkpoint: checkpoint, root: flags.results, log: log)
            let path = try Results.write(r, name: "rome", checkpoint: checkpoint, root: flags.results, log: log)
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
            try Results.writeLines(records, name: "memit-cases", checkpoint: checkpoint, root: flags.results, log: log)
            let path = try Results.write(r, name: "memit", checkpoint: checkpoint, root: flags.results, log: log)
            try Results.store(Data(MemitPlot.svg(r).utf8), file: "memit-scaling.svg", checkpoint: checkpoint, root: flags.results, log: log)
            for p in r.points {
                print("memit: \(p.edits) edits: \(describe(p.memit))" + (p.rome.map { "   | sequential rome: \(describe($0))" } ?? ""))
            }
            print(String(format: "memit: layers %@ (%.0fs) -> %@ (+ memit-scaling.svg)", "\(r.layers)", r.seconds, path))
        }
    }
}

extension EvalCommand {
    struct MendCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "mend",
            abstract: "MEND: train an editor of FFN gradient factors on some concepts' facts, edit the others' facts.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        @Option(parsing: .upToNextOption, help: "Edited layers (default: the last quarter, at least one).") var layers: [Int] = []
        @Option(help: "Editor hidden width.") var rank = 64
        @Option(help: "Editor optimizer steps.") var steps = 300
        @Option(help: "Facts per editor step.") var batchFacts = 12
        @Option(help: "Editor learning rate (Adam).") var lr: Float = 5e-5
        @Option(help: "Initial per-layer edit step size.") var editLr: Float = 1e-4
        @Option(help: "Weight c of L_edit in L_loc + c L_edit.") var editWeight: Float = 0.01
        @Option(help: "Unrelated probes per fact (L_loc and localization).") var unrelated = 8
        @Option(help: "Share of concepts whose facts train the editor.") var trainShare = 0.9
        @Option(help: "Seed of the concept split.") var splitSeed: UInt64 = 7
        @Option(help: "Test facts evaluated.") var testFacts = 200
        func run() throws {
            var o = MendOptions()
            o.source = probe.options; o.layers = layers; o.rank = rank; o.steps = steps; o.batchFacts = batchFacts; o.lr = lr
            o.editLr = editLr; o.editWeight = editWeight; o.unrelated = unrelated; o.trainShare = trainShare; o.splitSeed = splitSeed
            o.testFacts = testFacts
            let dir = Results.directory(for: checkpoint, root: probe.results)
            let (r, records) = try Mend.run(checkpoint: checkpoint, options: o, resultsDir: dir, log: log)
            let path = try probe.write(r, records, name: "mend", checkpoint: checkpoint)
            for (name, m) in [("trained", r.trained), ("untrained", r.untrained)] {
                print(String(format: "mend (%@): edit %.3f  paraphrase %.3f  unrelated unchanged %.3f  dP %+.4f", name, m.maskEditSuccess,
                             m.maskParaphraseSuccess, m.maskEditLocalization, m.editProbChange))
            }
            print(String(format: "mend: %d test facts, before: edit %.3f paraphrase %.3f (%.0fs) -> %@ (+ mend-editor.h5)", r.testFacts,
                         r.beforeEditSuccess, r.beforeParaphraseSuccess, r.seconds, path))
        }
    }
}
