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
import Datasets
import Evaluators
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
    /// Per checkpoint, the prompts grouped by their knowledge neurons (nil below 3 prompts).
    public var neuronGroups: [NeuronGroups]? = nil

    /// With two checkpoints: the prompts by how far B moved the target's probability at [MASK]
    /// from A's, |log P_B(target) − log P_A(target)| at the output (the lens's last layer),
    /// largest first (ties: page order). An edit's own prompts move most; empty with one checkpoint.
    public var moved: [(prompt: Int, change: Double)] {
        let changes = prompts.enumerated().compactMap { i, p -> (prompt: Int, change: Double)? in
            guard p.views.count == 2, let a = p.views[0].lens.prob.last, let b = p.views[1].lens.prob.last else { return nil }
            // a probability that underflowed to 0 counts as 1e-30 (a change of at most ~69 nats)
            return (i, log(max(b, 1e-30)) - log(max(a, 1e-30)))
        }
        return changes.sorted { (abs($0.change), -$0.prompt) > (abs($1.change), -$1.prompt) }
    }
}

/// The page's prompts grouped by their knowledge neurons, the way `eval kn` groups a concept's
/// probes (k-means on the neuron sets, k chosen by the silhouette, up to kn's --max-clusters; here
/// the best of 10 seedings per k), but over every prompt of the page: each group with the relations and objects of its prompts, its
/// most frequent neurons (kn's --top-neurons) and where its neurons are, so that a reader sees
/// what a set of neurons serves, and whether one serves several relations.
public struct NeuronGroups: Codable, Equatable, Sendable {
    public struct Group: Codable, Equatable, Sendable {
        public var prompts: [Int]                       // indices into the page's prompts
        public var relations: [String: Int]             // over those prompts
        public var objects: [String: Int]
        public var neurons: [Neuron], uses: [Int]       // the most frequent, and in how many of the group's prompts each is
        public var layers: [Int]                        // the group's distinct knowledge neurons per layer
    }
    public var groups: [Group]                          // the most prompts first
    public var silhouette: Double?                      // nil: one group (the sets could not be split)
    public var distinct: Int                            // knowledge neurons over all prompts
    public var shared: Int                              // of them, knowledge neurons of 2 or more prompts

    /// k-means++ seedings tried per k: a page's prompts mix relations, where one seeding often
    /// ends in a poor split.
    static let restarts = 10

    static func of(_ records: [KNProbeRecord], layers: Int, options o: KNOptions, seed: UInt64) -> NeuronGroups {
        let sets = records.map(\.neurons)
        let (assign, silhouette) = Clustering.best(sets, maxK: o.maxClusters, seed: seed, iterations: o.resolvedKmeansIterations,
                                                   restarts: restarts)
        var counts: [Neuron: Int] = [:]
        for s in sets { for n in Set(s) { counts[n, default: 0] += 1 } }
        let groups = Set(assign).map { g -> Group in
            let members = assign.indices.filter { assign[$0] == g }
            let top = Clustering.frequent(members.map { sets[$0] }, top: o.topNeurons)
            var perLayer = [Int](repeating: 0, count: layers)
            for n in Set(members.flatMap { sets[$0] }) { perLayer[n.layer] += 1 }
            return Group(prompts: members, relations: Dictionary(members.map { (records[$0].relation, 1) }, uniquingKeysWith: +),
                         objects: Dictionary(members.map { (records[$0].target, 1) }, uniquingKeysWith: +),
                         neurons: top.map(\.neuron), uses: top.map(\.sets), layers: perLayer)
        }
        return NeuronGroups(groups: groups.sorted { ($0.prompts.count, $1.prompts[0]) > ($1.prompts.count, $0.prompts[0]) }, silhouette: silhouette,
                            distinct: counts.count, shared: counts.values.filter { $0 >= 2 }.count)
    }
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
        let groups = prompts.count < 3 ? nil : setups.indices.map { c in
            NeuronGroups.of(prompts.map { $0.views[c].neurons }, layers: info[c].layers, options: o.kn, seed: o.source.seed ^ 0x6E67)
        }
        return ExplorePage(checkpoints: info, options: o, prompts: prompts, seconds: Date().timeIntervalSince(began), audit: audit,
                           neuronGroups: groups)
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
            let silenced = DenseEdit(k.model.params, targets: [name])
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
