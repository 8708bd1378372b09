import ArgumentParser
import Evaluators
import Foundation

/// --concepts N or all.
struct ConceptCount: ExpressibleByArgument {
    var value: Int?
    init?(argument: String) {
        if argument == "all" { value = nil } else if let n = Int(argument) { value = n } else { return nil }
    }
    var defaultValueDescription: String { value.map(String.init) ?? "all" }
}

/// The flags every edit evaluator shares; training defaults are the method's.
struct EditFlags: ParsableArguments {
    @OptionGroup var probe: ProbeFlags
    @Option(help: "Concepts edited, most frequent first: a number or 'all'.") var concepts = ConceptCount(argument: "50")!
    @Option(help: "Edit this concept (an object word; repeatable) instead of the most frequent ones.") var concept: [String] = []
    @Option(help: "Concepts with fewer probes are skipped.") var minProbes = 10
    @Option(help: "Share of each concept's probes held out.") var heldOut = 0.1
    @Option(help: "Seed of the per-concept split (the study: 7).") var splitSeed: UInt64 = 7
    @Option(help: "Training epochs (default: the method's).") var epochs: Int?
    @Option(help: "Adam learning rate (default: the method's).") var lr: Float?
    @Option(help: "Training batch size (default: the method's).") var trainBatch: Int?
    @Option(help: "Weight decay on the edit's tensors.") var weightDecay: Float = 0
    @Option(help: "Global gradient-norm clipping (0: none).") var maxGradNorm: Float = 0
    @Option(help: "Hidden and attention dropout while editing.") var dropout: Float = 0
    @Option(help: "Write the model edited for one concept as a Hugging Face directory.") var saveEdited: String?
    @Option(help: "The concept --save-edited exports (default: the first).") var saveConcept: String?

    func options(_ defaults: EditOptions) -> EditOptions {
        var o = defaults
        o.probes = probe.options; o.concepts = concepts.value; o.concept = concept; o.minProbes = minProbes; o.heldOut = heldOut
        o.splitSeed = splitSeed; o.epochs = epochs ?? o.epochs; o.lr = lr ?? o.lr; o.trainBatch = trainBatch ?? o.trainBatch
        o.weightDecay = weightDecay; o.maxGradNorm = maxGradNorm; o.dropout = dropout
        o.saveEdited = saveEdited; o.saveConcept = saveConcept
        return o
    }

    /// Write NAME.json and NAME-concepts.jsonl and print one line per row.
    func report<O: Codable & Sendable>(_ out: EditRun<O>, name: String, checkpoint: String) throws {
        try Results.writeLines(out.records, name: name + "-concepts", checkpoint: checkpoint, root: probe.results, log: log)
        let path = try Results.write(out.result, name: name, checkpoint: checkpoint, root: probe.results, log: log)
        for r in out.result.rows {
            var line = name + (r.rank.map { " rank \($0)" } ?? "") + ": "
            line += "edit_success \(percent(r.before.editSuccess)) -> \(percent(r.after.editSuccess))  "
            line += "edit_localization \(percent(r.before.editLocalization)) -> \(percent(r.after.editLocalization))  "
            line += "mask \(percent(r.before.maskEditSuccess)) -> \(percent(r.after.maskEditSuccess)) / "
            line += "\(percent(r.before.maskEditLocalization)) -> \(percent(r.after.maskEditLocalization))"
            if let a = r.meanActive, let f = r.keptFraction { line += String(format: "  mean_active %.1f (kept %.2f%%)", a, 100 * f) }
            print(line + String(format: "  (%d concepts, %.0fs)", r.concepts, r.seconds))
        }
        print("\(name): \(out.result.concepts.count) concepts (\(String(format: "%.0f", out.result.seconds))s) -> \(path)"
              + (out.result.savedEdited.map { "; edited model in \($0)" } ?? ""))
    }
}

/// "64,32,16" or "64 32 16".
func parseRanks(_ s: [String]) throws -> [Int] {
    let parts = s.flatMap { $0.split(separator: ",") }.map(String.init)
    guard !parts.isEmpty, parts.allSatisfy({ Int($0) != nil }) else { throw ValidationError("--ranks must be positive integers, got \(s.joined(separator: " "))") }
    return parts.map { Int($0)! }
}

func commaList(_ s: [String]) -> [String] { s.flatMap { $0.split(separator: ",") }.map(String.init) }

extension EvalCommand {
    struct BMask: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bmask",
            abstract: "Binary-mask edits: per concept, learn a mask over the FFN output weights; edit success, localization, mean active weights.",
            discussion: "Defaults as the study: logits start at 1, hard Gumbel-sigmoid (temperature 1) with straight-through, a fresh sample per example, β = 1e-5, Adam lr 0.01, 5 epochs, batch 16.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var edit: EditFlags
        @Option(help: "Sparsity weight β (loss + β/batch · Σ logits).") var beta: Float = 1e-5
        @Option(help: "Gumbel-sigmoid temperature.") var temperature: Float = 1
        @Option(help: "Initial mask logit.") var initialLogit: Float = 1
        @Option(parsing: .upToNextOption, help: "Masked matrices: query, key, value, attention-output, intermediate, output.") var modules = ["output"]
        @Option(parsing: .upToNextOption, help: "Layers (default: all).") var layers: [Int] = []
        func run() throws {
            var o = BMaskOptions(); o.edit = edit.options(o.edit); o.beta = beta; o.temperature = temperature
            o.initialLogit = initialLogit; o.modules = commaList(modules); o.layers = layers
            try edit.report(try BinaryMaskEval.run(checkpoint: checkpoint, options: o, log: log), name: "bmask", checkpoint: checkpoint)
        }
    }

    struct FT: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ft",
            abstract: "Finetuning edits: per concept, train W + ΔW on chosen parameters (default: all); Adam lr 1e-4, 1 epoch, batch 10.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var edit: EditFlags
        @Option(parsing: .upToNextOption, help: "Glob patterns over parameter names (default: all).") var params = ["*"]
        func run() throws {
            var o = FinetuneOptions(); o.edit = edit.options(o.edit); o.params = params
            try edit.report(try FinetuneEval.run(checkpoint: checkpoint, options: o, log: log), name: "ft", checkpoint: checkpoint)
        }
    }

    struct LoRA: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "lora",
            abstract: "LoRA edits with a rank sweep (one row per rank): W + (α/r)·B·A on FFN matrices and attention query/value.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var edit: EditFlags
        @Option(parsing: .upToNextOption, help: "Ranks swept.") var ranks = ["64,32,16,8,4,2,1"]
        @Option(help: "LoRA α (the update is scaled by α/r).") var alpha: Float = 8
        @Option(parsing: .upToNextOption, help: "Adapted matrices: query, key, value, attention-output, intermediate, output.")
        var modules = ["query,value,intermediate,output"]
        @Option(parsing: .upToNextOption, help: "Layers (default: all).") var layers: [Int] = []
        @Option(help: "The rank --save-edited exports (default: the first).") var saveRank: Int?
        func run() throws {
            var o = LoRAOptions(); o.edit = edit.options(o.edit); o.ranks = try parseRanks(ranks); o.alpha = alpha
            o.modules = commaList(modules); o.layers = layers; o.saveRank = saveRank
            try edit.report(try LoRAEval.run(checkpoint: checkpoint, options: o, log: log), name: "lora", checkpoint: checkpoint)
        }
    }

    struct ReFT: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reft",
            abstract: "LoReFT edits with a rank sweep (one row per rank) on block outputs at [CLS]/[SEP]/[MASK].",
            discussion: "Default places: the study's layers 4, 6, 8, 11 of 12 ([CLS], [CLS], [SEP], [SEP]) scaled to the model's depth.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var edit: EditFlags
        @Option(parsing: .upToNextOption, help: "Ranks swept.") var ranks = ["64,32,16,8,4,2,1"]
        @Option(parsing: .upToNextOption, help: "Interventions as layer:position (cls, sep, mask), e.g. 1:cls 3:sep.") var places: [String] = []
        func run() throws {
            var o = ReFTOptions(); o.edit = edit.options(o.edit); o.ranks = try parseRanks(ranks); o.places = commaList(places)
            try edit.report(try ReFTEval.run(checkpoint: checkpoint, options: o, log: log), name: "reft", checkpoint: checkpoint)
        }
    }
}
