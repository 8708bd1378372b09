import ArgumentParser
import Checkpoint
import Datasets
import Evaluators
import Foundation
import Training
import Viz

/// explore's probe flags.
struct ProbeFlags: ParsableArguments {
    @Option(help: "Dataset root (ParaRel in <root>/pararel).") var dataDir: String?
    @Option(help: "User probes: JSONL of {\"prompt\": \"... [MASK] ...\", \"target\": ..., \"subject\": ...} (default: ParaRel).")
    var probes: String?
    @Option(parsing: .upToNextOption, help: "ParaRel relations to use, e.g. P17 P19 (default: all).") var relations: [String] = []
    @Option(help: "Facts to sample (all their paraphrases are kept; default: all).") var limit: Int?
    @Option(help: "Seed for sampling facts, pairs and noise.") var seed: UInt64 = 0
    @Option(help: "Sequences per forward pass.") var batch = 64
    @Option(help: "Results root directory.") var results = "results"

    var options: ProbeOptions {
        var o = ProbeOptions()
        o.dataDir = dataDir; o.probes = probes; o.relations = relations; o.limit = limit; o.seed = seed; o.batch = batch
        return o
    }
}

/// explore's causal-trace flags.
struct TraceFlags: ParsableArguments {
    @Option(help: "Trace: noise samples per probe.") var samples = 10
    @Option(help: "Trace: noise standard deviation, in word-embedding standard deviations.") var noise = 3.0
    @Option(parsing: .upToNextOption, help: "Trace: states restored, block, ffn.out, attn.out.") var kinds = ["block", "ffn.out", "attn.out"]
    @Option(help: "Trace: consecutive layers restored together.") var window = 1

    func apply(to o: inout TraceOptions) { o.samples = samples; o.noise = noise; o.kinds = kinds; o.window = window }
}

/// explore's knowledge-neuron flags.
struct NeuronFlags: ParsableArguments {
    @Option(help: "Neurons: FFN site, ffn.pre (the study) or ffn.act (Dai et al.).") var site = "ffn.pre"
    @Option(help: "Neurons: integrated-gradients steps.") var steps = 20
    @Option(parsing: .upToNextOption, help: "Neurons: explicit alphas in [0, 1] (override --steps).") var alphas: [Double] = []
    @Option(help: "Neurons: keep units above this share of the probe's largest attribution.") var threshold = 0.2

    func apply(to o: inout KNOptions) { o.site = site; o.steps = steps; o.alphas = alphas; o.threshold = threshold }
}

struct ExploreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "explore",
        abstract: "One HTML page with every view of a prompt (predictions, logit lens, causal trace, knowledge neurons, attention), for one checkpoint or two side by side.",
        discussion: """
            A prompt: --prompt "paris is the capital of [MASK] ." --target france --subject paris. A set: --probes FILE.jsonl \
            (or ParaRel with --relations) and --select TEXT to keep prompts containing TEXT. The page is one static file \
            (inline SVG, CSS and a little JavaScript) that embeds its numbers as JSON; they are those of eval lens, trace \
            and kn for each probe.
            """)
    @Argument(help: "One checkpoint (.h5), or two to compare (A and B).") var checkpoints: [String]
    @OptionGroup var probe: ProbeFlags
    @Option(help: "A prompt with one [MASK] (instead of --probes or ParaRel).") var prompt: String?
    @Option(help: "With --prompt: the target word (default: the first checkpoint's most probable word at [MASK]).") var target: String?
    @Option(help: "With --prompt: the subject as it occurs in the prompt (the causal trace needs it).") var subject: String?
    @Option(parsing: .upToNextOption, help: "Keep the probes whose prompt contains one of these texts (any case).") var select: [String] = []
    @Option(help: "Prompts shown at most (the first chosen).") var maxPrompts = 10
    @Option(help: "Predictions listed at [MASK], and tokens listed per neuron pushed up and down.") var top = 10
    @Option(help: "Knowledge neurons (largest attribution first) whose promotions are listed: the tokens their value vectors point at, and log P(target) when silenced.") var promoted = 5
    @OptionGroup var trace: TraceFlags
    @OptionGroup var neurons: NeuronFlags
    @Option(help: "The HTML file (default: explore.html, or explore-vs-<B's results name>.html, in A's results directory).")
    var out: String?

    func run() throws {
        var o = ExploreOptions()
        o.source = probe.options; o.prompt = prompt; o.target = target; o.subject = subject; o.select = select
        o.maxPrompts = maxPrompts; o.top = top; o.promoted = promoted; trace.apply(to: &o.trace); neurons.apply(to: &o.kn)
        try o.validate()
        try Check.that((1...2).contains(checkpoints.count), nil, "explore takes one or two checkpoints, got \(checkpoints.count)")
        if let out {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: out, isDirectory: &isDir), isDir.boolValue {
                throw OptionError(key: "out", "\(out): is a directory, not a file")
            }
            try AtomicFile.checkWritableDirectory((out as NSString).deletingLastPathComponent.isEmpty ? "." : (out as NSString).deletingLastPathComponent,
                                                  flag: "--out")
        } else {
            try AtomicFile.checkWritableDirectory(probe.results, flag: "--results")
        }
        let page = try Explorer.run(checkpoints: checkpoints, options: o, log: log)
        let html = Data(try page.html().utf8)
        let path: String
        if let out {
            let dir = (out as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
            if FileManager.default.fileExists(atPath: out) { log("replaced \(out)") }
            try AtomicFile.write(html, to: out)
            path = out
        } else {
            let name = checkpoints.count == 2 ? "explore-vs-\(Results.checkpointName(checkpoints[1])).html" : "explore.html"
            path = try Results.store(html, file: name, checkpoint: checkpoints[0], root: probe.results, log: log)
        }
        print(String(format: "explore: %d prompt(s), %d checkpoint(s), %.0f KB (%.1fs) -> %@", page.prompts.count, checkpoints.count,
                     Double(html.count) / 1024, page.seconds, path))
    }
}

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "predict",
        abstract: "The most probable words at [MASK] of each sentence, from an MLM checkpoint.",
        discussion: "droplab predict ckpt.h5 \"paris is the capital of [MASK] .\" \"she [MASK] the piano .\" --top 5")
    @Argument(help: "The checkpoint (.h5).") var checkpoint: String
    @Argument(help: "Sentences, each with one [MASK].") var sentences: [String]
    @Option(help: "Words listed per sentence.") var top = 5

    func run() throws {
        try Check.range(top, 1...1000, "top")
        try Check.that(!sentences.isEmpty, nil, "give at least one sentence with [MASK]")
        let (model, tok) = try KnowledgeSetup.frozenModel(checkpoint)
        for s in sentences {
            let words = try Explorer.predict(model, tok, prompt: s, top: top)
            print(s)
            print("    " + words.map { String(format: "%@ %.3f", $0.token, $0.prob) }.joined(separator: "  "))
        }
    }
}
