// `droplab explore`: every view of a prompt on one page, for one checkpoint or two side by
// side. Per prompt and checkpoint: the top-k predictions at [MASK]; the logit lens (the
// record `eval lens` writes, and the target's probability and the top token at every layer
// and position); the causal trace (the record `eval trace` writes: P(target) with each block,
// FFN and attention state restored); the knowledge neurons (the record `eval kn` writes,
// without a cluster: clusters belong to a probe set); and the attention weights of the
// [MASK] row per layer and head (site attn.probs); and what the strongest knowledge neurons
// promote (Geva et al. 2022, "Transformer Feed-Forward Layers Build Predictions by Promoting
// Concepts in the Vocabulary Space"): a neuron's value vector (its column of the layer's FFN
// output matrix) read through the word embeddings (the weights of the MLM decoder; BERT's head
// adds a transform before them, so these are the tokens the vector points at, not exact logit
// changes), the tokens it pushes up and down most, and log P(target) at [MASK] when the neuron is
// silenced (its column removed: it writes nothing at any position). The records come from the evaluators' own
// per-probe functions with the same options, so each equals what the evaluator writes for
// that probe when it runs it alone (`--batch 1`; larger batches pad probes together, which
// may change the last bits). The page (ExplorerPage.swift) is drawn from this value and
// embeds it as JSON.

import Autograd
import BERT
import Foundation
import Interventions
import Text
import Training

public struct ExploreOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var prompt: String? = nil            // one prompt instead of a probe file or ParaRel
    public var target: String? = nil            // default: the first checkpoint's most probable word at [MASK]
    public var subject: String? = nil           // without it, no causal trace
    public var select: [String] = []            // keep probes whose prompt contains one of these (any case)
    public var maxPrompts = 10
    public var top = 10                         // predictions listed at [MASK] (and tokens per neuron pushed up and down)
    public var promoted = 5                     // knowledge neurons, largest attribution first, whose promotions are listed
    public var trace = TraceOptions()           // as `eval trace` (samples, noise, kinds, window)
    public var kn = KNOptions()                 // as `eval kn` (site, steps, alphas, threshold)
    public init() {}

    /// These options with `source` as the probe source of `trace` and `kn` too.
    var resolved: ExploreOptions {
        var o = self
        o.trace.source = source; o.kn.source = source
        return o
    }

    public func validate() throws {
        try resolved.trace.validate()
        try resolved.kn.validate()
        try Check.range(maxPrompts, 1...100, "max-prompts")
        try Check.range(top, 1...1000, "top")
        try Check.range(promoted, 0...100, "promoted")
        if let p = prompt {
            for (flag, given) in [("probes", source.probes != nil), ("relations", !source.relations.isEmpty), ("limit", source.limit != nil),
                                  ("select", !select.isEmpty)] where given {
                throw OptionError(key: flag, "chooses probes from a set; it does not go with --prompt")
            }
            if let t = target { try Check.that(!t.isEmpty && !t.contains(" "), "target", "must be one word, got '\(t)'") }
            _ = try Probe.user(prompt: p, target: target ?? "", subject: subject, place: "--prompt")
        } else {
            if target != nil { throw OptionError(key: "target", "goes with --prompt (a probe file names its targets)") }
            if subject != nil { throw OptionError(key: "subject", "goes with --prompt (a probe file names its subjects)") }
        }
    }
}

public struct TokenProb: Codable, Equatable, Sendable {
    public var token: String
    public var prob: Double
}

/// What a knowledge neuron writes: the tokens its value vector points at most and least (score:
/// the word embedding's dot product with the vector), and the change in log P(target) at [MASK]
/// when it is silenced (negative: the neuron supported the target).
public struct NeuronPromotion: Codable, Equatable, Sendable {
    public struct Score: Codable, Equatable, Sendable { public var token: String; public var score: Double }
    public var layer: Int, unit: Int
    public var attribution: Double
    public var up: [Score], down: [Score]
    public var silencedLogProbChange: Double
}

/// The logit lens at every layer (0 = embeddings) and position: the target's probability and
/// rank, and the top token.
public struct LensGrid: Codable, Equatable, Sendable {
    public var prob: [[Double]]                 // [layer][position]
    public var rank: [[Int]]
    public var top1: [[String]]
}

/// One checkpoint's views of one prompt.
public struct ExploreView: Codable, Equatable, Sendable {
    public var top: [TokenProb]                 // most probable tokens at [MASK]
    public var lens: LensProbeRecord            // as `eval lens`
    public var lensGrid: LensGrid
    public var trace: TraceProbeRecord?         // as `eval trace` (nil without a subject)
    public var neurons: KNProbeRecord           // as `eval kn`, without a cluster
    public var attention: [[[Double]]]          // [layer][head][key]: the [MASK] row of attn.probs
    public var promotions: [NeuronPromotion]    // the --promoted neurons of largest attribution
}

public struct ExplorePrompt: Codable, Equatable, Sendable {
    public var prompt: String, target: String, subject: String?, relation: String
    public var tokens: [String]
    public var maskPosition: Int
    public var subjectPositions: [Int]
    public var views: [ExploreView]             // one per checkpoint
}

public struct ExploreCheckpoint: Codable, Equatable, Sendable {
    public var path: String
    public var layers: Int, hidden: Int, heads: Int, ffn: Int
    public var hiddenDropout: Double, attentionDropout: Double
}

public struct ExplorePage: Codable, Equatable, Sendable {
    public var checkpoints: [ExploreCheckpoint]
    public var options: ExploreOptions
    public var prompts: [ExplorePrompt]
    public var seconds: Double
    /// Two checkpoints of one architecture: what differs in their weights.
    public var audit: WeightAudit? = nil
}

public enum Explorer {
    /// The views of the chosen prompts for each checkpoint (one or two, of one vocabulary).
    public static func run(checkpoints: [String], options o: ExploreOptions, log: @escaping (String) -> Void) throws -> ExplorePage {
        let began = Date()
        try o.validate()
        let o = o.resolved
        guard (1...2).contains(checkpoints.count) else {
            throw OptionError(key: nil, "explore takes one or two checkpoints, got \(checkpoints.count)")
        }
        let (model, tok) = try KnowledgeSetup.frozenModel(checkpoints[0])
        let set = try probes(o, model: model, tokenizer: tok)
        let chosen = try choose(set, o, log: log)
        var setups = [KnowledgeSetup(model: model, tokenizer: tok, probes: set)]
        if checkpoints.count == 2 {
            let (model2, tok2) = try KnowledgeSetup.frozenModel(checkpoints[1])
            guard tok2.vocab == tok.vocab else {
                throw ProbeError("\(checkpoints[1]): its vocabulary differs from \(checkpoints[0])'s (explore compares one tokenization)")
            }
            if let long = chosen.first(where: { $0.ids.count > model2.config.maxPositions }) {
                throw ProbeError("\(checkpoints[1]): '\(set.probes[long.index].prompt)' is longer than its \(model2.config.maxPositions) positions")
            }
            setups.append(KnowledgeSetup(model: model2, tokenizer: tok, probes: set))
        }
        let sigmas = setups.map { CausalTrace.sigma($0, o.trace) }
        var prompts: [ExplorePrompt] = []
        for (n, p) in chosen.enumerated() {
            let probe = set.probes[p.index]
            log("explore: [\(n + 1)/\(chosen.count)] \(probe.prompt) -> \(probe.target)")
            prompts.append(ExplorePrompt(prompt: probe.prompt, target: probe.target, subject: probe.subject, relation: probe.relation,
                                         tokens: p.ids.map { tok.token(of: $0) ?? "?" }, maskPosition: p.maskPosition,
                                         subjectPositions: p.subject.map(Array.init) ?? [],
                                         views: zip(setups, sigmas).map { view($0, p, o, sigma: $1) }))
        }
        let info = zip(checkpoints, setups).map { path, k -> ExploreCheckpoint in
            let c = k.model.config
            return ExploreCheckpoint(path: path, layers: c.numLayers, hidden: c.hiddenSize, heads: c.numHeads, ffn: c.intermediateSize,
                                     hiddenDropout: Double(c.hiddenDropout), attentionDropout: Double(c.attentionDropout))
        }
        let audit = setups.count == 2 ? WeightAudit.compare(setups[0].model.params, setups[1].model.params) : nil
        return ExplorePage(checkpoints: info, options: o, prompts: prompts, seconds: Date().timeIntervalSince(began), audit: audit)
    }

    /// The probe set: the one --prompt (its target defaulting to the model's most probable
    /// word at [MASK]), or the probe file / ParaRel as every knowledge evaluator reads it.
    static func probes(_ o: ExploreOptions, model: BertModel, tokenizer tok: WordPieceTokenizer) throws -> ProbeSet {
        guard let prompt = o.prompt else {
            let set = try ProbeSet.load(o.source, tokenizer: tok, maxLength: model.config.maxPositions)
            guard !set.probes.isEmpty else { throw ProbeError("no usable probes (every target is more than one word piece of this vocabulary?)") }
            return set
        }
        var probe = try Probe.user(prompt: prompt, target: o.target ?? "", subject: o.subject, place: "--prompt")
        guard let t = ProbeSet.tokenize(probe, target: tok.maskId, tok: tok, maxLength: model.config.maxPositions) else {
            throw OptionError(key: "prompt", "is longer than the model's \(model.config.maxPositions) positions, or its subject is not whole tokens")
        }
        if o.target == nil {
            let d = ProbeScoring.distributions(model, ProbeBatch([t], padId: tok.padId), nil)
            let words = ranked(d.values).lazy.compactMap { tok.token(of: Int32($0)) }
            probe.target = words.first { !WordPieceTokenizer.specialTokens.contains($0) && tok.encode($0) == [tok.id(of: $0)!] } ?? "?"
        }
        let set = ProbeSet.make([probe], limit: nil, seed: 0, tokenizer: tok, maxLength: model.config.maxPositions)
        guard !set.probes.isEmpty else {
            throw OptionError(key: "target", "'\(probe.target)' is not one word piece of this vocabulary (\(tok.tokenize(probe.target).joined(separator: " ")))")
        }
        return set
    }

    /// The `top` most probable tokens at the [MASK] of `prompt` (`droplab predict`).
    public static func predict(_ model: BertModel, _ tok: WordPieceTokenizer, prompt: String, top: Int) throws -> [TokenProb] {
        let probe = try Probe.user(prompt: prompt, target: "", subject: nil, place: "'\(prompt)'")
        guard let t = ProbeSet.tokenize(probe, target: tok.maskId, tok: tok, maxLength: model.config.maxPositions) else {
            throw ProbeError("'\(prompt)': longer than the model's \(model.config.maxPositions) positions")
        }
        let d = ProbeScoring.distributions(model, ProbeBatch([t], padId: tok.padId), nil).values
        return ranked(d).prefix(top).map { TokenProb(token: tok.token(of: Int32($0)) ?? "?", prob: Double(d[$0])) }
    }

    /// The probes --select keeps (all without it), at most --max-prompts of them.
    static func choose(_ set: ProbeSet, _ o: ExploreOptions, log: (String) -> Void) throws -> [TokenizedProbe] {
        func has(_ p: Probe, _ s: String) -> Bool { p.prompt.range(of: s, options: .caseInsensitive) != nil }
        for s in o.select where !set.probes.contains(where: { has($0, s) }) {
            throw OptionError(key: "select", "'\(s)' is in no probe's prompt")
        }
        let kept = set.tokenized.filter { t in o.select.isEmpty || o.select.contains { has(set.probes[t.index], $0) } }
        if kept.count > o.maxPrompts { log("explore: \(kept.count) probes chosen; showing the first \(o.maxPrompts) (--max-prompts)") }
        return Array(kept.prefix(o.maxPrompts))
    }

    /// Indices of `v` from the largest value down.
    static func ranked(_ v: [Float]) -> [Int] { v.indices.sorted { (v[$0], $1) > (v[$1], $0) } }

    /// One checkpoint's views of probe `p`, each from its evaluator's per-probe function.
    static func view(_ k: KnowledgeSetup, _ p: TokenizedProbe, _ o: ExploreOptions, sigma: Double) -> ExploreView {
        let batch = o.source.batch
        let grid = LogitLens.scores(k, [p], at: .all, batch: batch)[0]
        let attribution = KnowledgeNeurons.attributions(k, [p], options: o.kn)[0]
        let (top, attention) = maskRow(k, p, top: o.top)
        let neurons = KnowledgeNeurons.record(k, p, attribution, threshold: o.kn.threshold)
        return ExploreView(top: top, lens: LogitLens.records(k, [p], batch: batch)[0],
                           lensGrid: LensGrid(prob: grid.map { $0.map(\.prob) }, rank: grid.map { $0.map(\.rank) },
                                              top1: grid.map { $0.map { k.token($0.top1) } }),
                           trace: p.subject == nil ? nil : CausalTrace.record(k, p, options: o.trace, sigma: sigma),
                           neurons: neurons, attention: attention, promotions: promotions(k, p, neurons, count: o.promoted, top: o.top))
    }

    /// What the `count` neurons of largest attribution promote (see the file's header).
    static func promotions(_ k: KnowledgeSetup, _ p: TokenizedProbe, _ r: KNProbeRecord, count: Int, top: Int) -> [NeuronPromotion] {
        let c = k.model.config, C = c.hiddenSize, F = c.intermediateSize, V = c.vocabSize
        let embeddings = k.model.params[BertModule.wordEmbeddings.weight].values
        let batch = ProbeBatch([p], padId: k.tokenizer.padId)
        let base = Double(ProbeScoring.distributions(k.model, batch, nil, log: true).values[Int(p.targetId)])
        return r.neurons.indices.sorted { (-r.attribution[$0], $0) < (-r.attribution[$1], $1) }.prefix(count).map { i in
            let n = r.neurons[i], name = BertModule.ffnOut(n.layer).weight
            let w = k.model.params[name].values
            let value = (0..<C).map { w[$0 * F + n.unit] }                       // column `unit` of W [C, F]
            let scores = (0..<V).map { t in (0..<C).reduce(0.0) { $0 + Double(embeddings[t * C + $1]) * Double(value[$1]) } }
            let order = scores.indices.sorted { (scores[$0], $1) > (scores[$1], $0) }
            func listed(_ ids: ArraySlice<Int>) -> [NeuronPromotion.Score] { ids.map { .init(token: k.token(Int32($0)), score: scores[$0]) } }
            let silenced = DenseEdit(model: k.model, targets: [name])
            silenced.params.setTrainable { _ in false }
            for j in 0..<C { silenced.params[name].data[j * F + n.unit] = -w[j * F + n.unit] }
            let after = Double(ProbeScoring.distributions(k.model, batch, silenced.interventions(), log: true).values[Int(p.targetId)])
            return NeuronPromotion(layer: n.layer, unit: n.unit, attribution: r.attribution[i], up: listed(order.prefix(top)),
                                   down: listed(order.suffix(top).reversed()[...]), silencedLogProbChange: after - base)
        }
    }

    /// The `top` most probable tokens at [MASK] and the [MASK] row of every layer's attention
    /// weights ([layer][head][key]), from one forward pass.
    static func maskRow(_ k: KnowledgeSetup, _ p: TokenizedProbe, top: Int) -> (top: [TokenProb], attention: [[[Double]]]) {
        let c = k.model.config, T = p.ids.count, NH = c.numHeads
        let sites = (0..<c.numLayers).map { Site(.attnProbs, $0) }
        let cap = Captures(), iv = Interventions()
        iv.capture(sites, into: cap)
        let d = ProbeScoring.distributions(k.model, ProbeBatch([p], padId: k.tokenizer.padId), iv).values
        let best = ranked(d).prefix(top).map { TokenProb(token: k.token(Int32($0)), prob: Double(d[$0])) }
        let row = p.maskPosition * NH * T
        let attention = sites.map { s in
            let w = cap[s]!.data
            return (0..<NH).map { h in (0..<T).map { Double(w[row + h * T + $0]) } }
        }
        return (best, attention)
    }
}
