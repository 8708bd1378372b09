import ArgumentParser
import Evaluators
import Foundation

extension Position: ExpressibleByArgument {}

/// The probe flags every knowledge evaluator shares.
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

    /// Write NAME.json and NAME-probes.jsonl; returns the summary's path.
    func write<R: Encodable, P: Encodable>(_ r: R, _ records: [P], name: String, checkpoint: String) throws -> String {
        try Results.writeLines(records, name: name + "-probes", checkpoint: checkpoint, root: results, log: log)
        return try Results.write(r, name: name, checkpoint: checkpoint, root: results, log: log)
    }
}

/// The causal-trace flags `eval trace` and `explore` share.
struct TraceFlags: ParsableArguments {
    @Option(help: "Trace: noise samples per probe.") var samples = 10
    @Option(help: "Trace: noise standard deviation, in word-embedding standard deviations.") var noise = 3.0
    @Option(parsing: .upToNextOption, help: "Trace: states restored, block, ffn.out, attn.out.") var kinds = ["block", "ffn.out", "attn.out"]
    @Option(help: "Trace: consecutive layers restored together.") var window = 1

    func apply(to o: inout TraceOptions) { o.samples = samples; o.noise = noise; o.kinds = kinds; o.window = window }
}

/// The knowledge-neuron flags `eval kn` and `explore` share.
struct NeuronFlags: ParsableArguments {
    @Option(help: "Neurons: FFN site, ffn.pre (the study) or ffn.act (Dai et al.).") var site = "ffn.pre"
    @Option(help: "Neurons: integrated-gradients steps.") var steps = 20
    @Option(parsing: .upToNextOption, help: "Neurons: explicit alphas in [0, 1] (override --steps).") var alphas: [Double] = []
    @Option(help: "Neurons: keep units above this share of the probe's largest attribution.") var threshold = 0.2

    func apply(to o: inout KNOptions) { o.site = site; o.steps = steps; o.alphas = alphas; o.threshold = threshold }
}

func percent(_ x: Double?) -> String { x.map { String(format: "%.2f%%", 100 * $0) } ?? "n/a" }

extension EvalCommand {
    struct ConsistencyCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "consistency",
            abstract: "Accuracy at [MASK], ParaRel consistency across paraphrases, distinct predictions per (relation, object).")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        func run() throws {
            var o = ConsistencyOptions(); o.source = probe.options
            let (r, records) = try Consistency.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "consistency", checkpoint: checkpoint)
            print("consistency: accuracy \(percent(r.accuracy))  consistency \(percent(r.consistency))  "
                  + String(format: "unique predictions %.2f  ", r.uniquePredictions)
                  + (r.perSplit ?? [:]).keys.sorted().map { "\($0) accuracy \(percent(r.perSplit![$0]!.accuracy))  " }.joined()
                  + String(format: "(%d probes, %d facts, %.0fs) -> %@", r.probes, r.facts, r.seconds, path))
        }
    }

    struct IG: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ig",
            abstract: "Integrated gradients of P(target at [MASK]) over a site's units, one layer at a time.",
            discussion: "--steps m uses the midpoint rule, alpha = (k - 1/2)/m. The drop-dropout study's 5 points: --alphas 0 0.25 0.5 0.75 1; Dai et al.'s right Riemann sum: --alphas 0.05 0.1 ... 1.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        @Option(help: "Site: emb.word, emb, attn.out, ffn.pre, ffn.act, ffn.out or block.") var site = "ffn.pre"
        @Option(parsing: .upToNextOption, help: "Layers (default: all).") var layers: [Int] = []
        @Option(help: "Positions attributed: mask, subject, subject-first, subject-last, cls, sep, all.") var position = Position.mask
        @Option(help: "Integration points (midpoint rule: alpha = (k - 1/2)/steps, k = 1..steps).") var steps = 20
        @Option(parsing: .upToNextOption, help: "Explicit alphas in [0, 1] (override --steps).") var alphas: [Double] = []
        @Option(help: "Units listed per probe in ig-probes.jsonl.") var top = 10
        func run() throws {
            var o = IGOptions(); o.source = probe.options; o.site = site; o.layers = layers; o.position = position
            o.steps = steps; o.alphas = alphas; o.top = top
            let (r, records) = try IntegratedGradients.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "ig", checkpoint: checkpoint)
            print("ig: completeness error mean \(percent(r.completenessError)) max \(percent(r.completenessErrorMax))  "
                  + String(format: "(%d probes, %d points, %.0fs) -> %@", r.probes, r.alphas.count, r.seconds, path))
        }
    }

    struct KN: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "kn",
            abstract: "Knowledge neurons (Dai et al. 2022) and per-concept clusters with suppress/amplify effects.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        @OptionGroup var neurons: NeuronFlags
        @Option(help: "Refinement: keep units shared by this share of a fact's paraphrases.") var share = 0.7
        @Option(help: "Largest k tried when clustering a concept's probes.") var maxClusters = 24
        @Option(help: "Neurons suppressed/amplified per cluster.") var topNeurons = 10
        @Option(help: "Concepts analysed, most frequent first (default: all).") var concepts: Int?
        func run() throws {
            var o = KNOptions(); o.source = probe.options; neurons.apply(to: &o)
            o.share = share; o.maxClusters = maxClusters; o.topNeurons = topNeurons; o.concepts = concepts
            let (r, records) = try KnowledgeNeurons.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "kn", checkpoint: checkpoint)
            print(String(format: "kn: %.2f neurons per probe, %.2f clusters per concept; suppress own %+.3g vs random %+.3g; "
                         + "amplify own %+.3g vs random %+.3g (relative P change)  (%d probes, %.0fs) -> %@",
                         r.neuronsPerProbe, r.clustersPerConcept, r.suppress.own.relativeChange, r.suppress.random.relativeChange,
                         r.amplify.own.relativeChange, r.amplify.random.relativeChange, r.probes, r.seconds, path))
        }
    }

    struct Lens: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "lens",
            abstract: "Logit lens: the [MASK] state after each layer through the MLM head (target rank, probability, accuracy).")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        func run() throws {
            var o = LensOptions(); o.source = probe.options
            let (r, records) = try LogitLens.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "lens", checkpoint: checkpoint)
            for l in r.layers {
                print(String(format: "lens: layer %d  accuracy %.2f%%  mean rank %.1f  mean P %.4g", l.layer, 100 * l.accuracy, l.meanRank, l.meanProb))
            }
            print(String(format: "lens: %d probes (%.0fs) -> %@", r.probes, r.seconds, path))
        }
    }

    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "trace",
            abstract: "Causal tracing (ROME): corrupt the subject, restore one state at a time; mean indirect effect by layer and position.")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        @OptionGroup var trace: TraceFlags
        func run() throws {
            var o = TraceOptions(); o.source = probe.options; trace.apply(to: &o)
            let (r, records) = try CausalTrace.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "trace", checkpoint: checkpoint)
            for (kind, svg) in CausalTrace.heatmaps(r) {
                try Results.store(Data(svg.utf8), file: "trace-\(kind).svg", checkpoint: checkpoint, root: probe.results, log: log)
            }
            print(String(format: "trace: %d of %d probes traced; P clean %.4g, corrupted %.4g (%.0fs) -> %@ (+ trace-<kind>.svg)",
                         r.traced, r.probes, r.cleanProb ?? .nan, r.corruptProb ?? .nan, r.seconds, path))
        }
    }

    struct InterchangeCmd: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "interchange",
            abstract: "Interchange interventions between probe pairs (same pattern, other subject and answer).")
        @Argument(help: "Checkpoint (.h5).") var checkpoint: String
        @OptionGroup var probe: ProbeFlags
        @Option(parsing: .upToNextOption, help: "Site kinds patched.") var kinds = ["block", "ffn.out", "attn.out"]
        @Option(parsing: .upToNextOption, help: "Positions patched: subject-first, subject-last, mask, cls, sep.")
        var positions: [Position] = [.subjectFirst, .subjectLast, .mask]
        @Option(help: "At most this many pairs.") var pairs: Int?
        func run() throws {
            var o = InterchangeOptions(); o.source = probe.options; o.kinds = kinds; o.positions = positions; o.pairs = pairs
            let (r, records) = try Interchange.run(checkpoint: checkpoint, options: o, log: log)
            let path = try probe.write(r, records, name: "interchange", checkpoint: checkpoint)
            let best = r.cells.max { $0.interchangeAccuracy < $1.interchangeAccuracy }
            print(String(format: "interchange: %d pairs; best %@@%d at %@: %.2f%% (%.0fs) -> %@", r.pairs, best?.kind ?? "-", best?.layer ?? 0,
                         best?.position ?? "-", 100 * (best?.interchangeAccuracy ?? 0), r.seconds, path))
        }
    }
}
