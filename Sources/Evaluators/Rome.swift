// `droplab eval rome`: a closed-form fact editor on CounterFact cases (or, with --pararel /
// --probes, cases made from probes: EditCases.fromProbes), adapted to a masked LM (the object is
// predicted at [MASK]). MEMIT (Memit.swift) shares its cases, value optimisation and key
// covariances.
//
// ROME (Meng et al. 2022, §3): the edited matrix is layer l's FFN `output.dense` W [C, F], seen
// as a key-value memory: keys are its inputs (site ffn.act), values its outputs (ffn.out).
//  - l: --layer, or the layer where restoring `ffn.out` at the last subject token has the
//    largest mean indirect effect in a causal trace of the cases (CausalTrace.trace).
//  - k*: the key at the last subject token, averaged over the prompt alone and the prompt
//    after --prefixes random corpus snippets of --prefix-words words.
//  - C = E[k k^T] over FFN inputs of --cov-samples corpus sequences (cached per checkpoint,
//    layer and corpus in --cache-dir).
//  - v* = v + delta: delta is added to ffn.out at the last subject token of every prompt and
//    optimised (--steps 20 of Adam at --lr 0.5, through the shared Trainer) to minimise
//    -log P(new object at [MASK]) + --kl-factor x KL(P_delta || P) on the essence prompt
//    "<subject> is a [MASK] ." + --weight-decay x |delta| / |h|^2 (--objective rome: ROME's code,
//    compute_v, where the penalty is the norm, not its square; unset: droplab's objective before
//    2026-12-07, |delta|^2 / |h|^2 and the cross-entropy to P, i.e. KL(P || P_delta) + H(P)),
//    with |delta| clamped to --clamp-norm x |h|; a case stops once its loss is below --stop-loss
//    (0.05, ROME's break; ROME also skips the last step's update, we make all --steps). Where
//    ROME scales the penalty and the clamp by |v| (the MLP output), we scale them by |h|, the
//    layer's output at the subject: in a post-LN BERT the FFN output joins a LayerNormed
//    residual about 8x its norm, and |v|-relative limits allow no effective edit (on the test
//    model that knows its facts: efficacy 0/13 with |v|, measured with the older objective).
//  - the rank-one update W += delta u^T / (u^T k*), u = C^-1 k*, inserts (k*, v*).
// Edits are weight views (DenseEdit: W + dW): the checkpoint and the model in memory are
// never written; removing the edit gives the original logits bit for bit.
// CounterFact metrics (ROME §3.3), before and after: efficacy P(new) > P(true) on the prompt,
// paraphrase the same on the paraphrase, neighbourhood P(true) > P(new) on another subject
// with the same true object, score = their harmonic mean, and the magnitudes mean
// P(new) - P(true) (neighbourhood: P(true) - P(new)).

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Interventions
import Text
import Training

public struct RomeOptions: CommandOptions, Equatable, Sendable {
    public var dataDir: String? = nil
    public var probes: String? = nil          // edit cases from user probes (JSONL) instead of CounterFact
    public var pararel = false                // edit cases from ParaRel instead of CounterFact
    public var relations: [String] = []       // with pararel: these relations (default: all)
    public var split = "edit"                 // counterfact-{edit,train,val}.json
    public var limit: Int? = 100              // edit cases (the first N usable ones)
    public var knownOnly: Bool? = nil         // only cases whose prompt the model answers with the true object (unset: all)
    public var seed: UInt64 = 0
    public var layer: Int? = nil              // default: the causal trace's ffn.out peak
    public var traceCases = 50
    // The layer trace's noise: samples per case and standard deviation in word-embedding standard
    // deviations. Unset: 3 and 3 (ROME's own trace; `eval trace` defaults to 10 samples). Optional
    // so that recipes' job identities made before they were options stay the same.
    public var traceSamples: Int? = nil
    public var traceNoise: Double? = nil
    public var traceWindow: Int? = nil        // consecutive layers restored together (unset: 1)
    public static let layerTraceDefaults = (samples: 3, noise: 3.0, window: 1)
    public var resolvedTraceSamples: Int { traceSamples ?? Self.layerTraceDefaults.samples }
    public var resolvedTraceNoise: Double { traceNoise ?? Self.layerTraceDefaults.noise }
    public var resolvedTraceWindow: Int { traceWindow ?? Self.layerTraceDefaults.window }
    public var prefixPool: Int? = nil         // documents whose openings the prefixes are drawn from (unset: 1000)
    public var resolvedPrefixPool: Int { prefixPool ?? 1000 }
    public var corpus: [String] = []          // covariance and prefix text (default: <root>/wiki_en, first file)
    public var covSamples = 1000              // sequences of cov-seq-len tokens
    public var covSeqLen = 64
    public var prefixes = 5
    public var prefixWords = 5
    public var steps = 20
    public var lr: Float = 0.5
    public var klFactor: Float = 0.0625
    public var weightDecay: Float = 0.5
    public var objective: String? = "rome"   // ROME's value objective (compute_v); unset: droplab's before 2026-12-07
    public var stopLoss: Float? = 0.05        // a case's optimisation stops once its loss is below this (ROME's, MEMIT's); unset: never
    public var clampNorm: Float = 4
    public var cacheDir = "checkpoints/cache"
    public var batch = 64
    public var saveEdited: String? = nil      // HF export of the model after all edits (memit) / the first edit (rome)
    public init() {}

    public func validate() throws {
        try Check.that(EditCases.splits.contains(split), "split", "must be one of \(EditCases.splits.joined(separator: ", ")), got '\(split)'")
        try Check.that((limit ?? 1) >= 1, "limit", "must be at least 1, got \(limit ?? 0)")
        try Check.that(!(pararel && probes != nil), "pararel", "goes with either --pararel or --probes, not both")
        try Check.that(relations.isEmpty || pararel, "relations", "chooses ParaRel relations: it goes with --pararel")
        try Check.that((layer ?? 0) >= 0, "layer", "must be >= 0, got \(layer ?? 0)")
        try Check.that(traceCases >= 1, "trace-cases", "must be at least 1, got \(traceCases)")
        try Check.that(resolvedTraceSamples >= 1, "trace-samples", "must be at least 1, got \(resolvedTraceSamples)")
        try Check.that(resolvedTraceNoise.isFinite && resolvedTraceNoise > 0, "trace-noise", "must be positive, got \(resolvedTraceNoise)")
        try Check.that(resolvedTraceWindow >= 1, "trace-window", "must be at least 1, got \(resolvedTraceWindow)")
        try Check.that(resolvedPrefixPool >= 1, "prefix-pool", "must be at least 1, got \(resolvedPrefixPool)")
        try Check.that(covSamples >= 1, "cov-samples", "must be at least 1, got \(covSamples)")
        try Check.that(covSeqLen >= 8 && covSeqLen <= 512, "cov-seq-len", "must be in 8...512, got \(covSeqLen)")
        try Check.that(prefixes >= 0, "prefixes", "must be >= 0, got \(prefixes)")
        try Check.that(prefixWords >= 1, "prefix-words", "must be at least 1, got \(prefixWords)")
        try Check.that(steps >= 1, "steps", "must be at least 1, got \(steps)")
        try Check.that(lr > 0 && lr.isFinite, "lr", "must be positive, got \(lr)")
        try Check.that(klFactor >= 0, "kl-factor", "must be >= 0, got \(klFactor)")
        try Check.that(weightDecay >= 0, "weight-decay", "must be >= 0, got \(weightDecay)")
        if let b = objective { try Check.that(b == "rome", "objective", "must be rome or unset, got \(b)") }
        if let l = stopLoss { try Check.that(l > 0 && l.isFinite, "stop-loss", "must be positive, got \(l)") }
        try Check.that(clampNorm > 0, "clamp-norm", "must be positive, got \(clampNorm)")
        try Check.that(batch >= 1, "batch", "must be at least 1, got \(batch)")
        if let d = saveEdited, FileManager.default.fileExists(atPath: d + "/model.safetensors") {
            throw OptionError(key: "save-edited", "\(d): already holds a model (remove it first)")
        }
    }
}

extension RomeOptions: OptionHelp {
    public static let help: [String: String] = [
        "dataDir": "Dataset root (CounterFact in <root>/counterfact).",
        "probes": "Edit cases from a user probe file (JSONL, as --pararel makes them from ParaRel) instead of CounterFact.",
        "pararel": "Edit cases from ParaRel (a fact's first pattern, a paraphrase, a neighbour with the same object, a new object of the relation) instead of CounterFact.",
        "relations": "With --pararel: ParaRel relations (empty: all).",
        "split": "CounterFact split: edit, train or val.",
        "limit": "Edit cases, the first usable ones (unset: all; memit: its largest count).",
        "knownOnly": "Edit only facts the model knows: cases whose prompt it answers with the true object at [MASK] (the limit counts those; unset: every usable case).",
        "seed": "Seed for the prefixes, the layer trace's noise and the new objects of ParaRel or probe cases.",
        "layer": "Edited FFN layer (unset: the causal trace's ffn.out peak at the last subject token).",
        "traceCases": "Cases traced to choose the layer.",
        "traceSamples": "Noise samples per case of the layer trace (unset: 3, ROME's).",
        "traceNoise": "Noise standard deviation of the layer trace, in word-embedding standard deviations (unset: 3).",
        "traceWindow": "Consecutive layers the layer trace restores together (unset: 1).",
        "prefixPool": "Corpus documents whose first prefix-words words make the pool prefixes are drawn from (unset: 1000).",
        "corpus": "Text for the key covariance and the prefixes, from the first file (empty: <root>/wiki_en).",
        "covSamples": "Corpus sequences for the key covariance.",
        "covSeqLen": "Tokens per covariance sequence.",
        "prefixes": "Random corpus prefixes per prompt.",
        "prefixWords": "Words per prefix.",
        "steps": "Adam steps of the value optimisation.",
        "lr": "Learning rate of the value optimisation.",
        "klFactor": "Weight of the KL term on '<subject> is a [MASK] .'.",
        "weightDecay": "Weight of the penalty |delta| / |h|^2 (objective unset: |delta|^2 / |h|^2).",
        "objective": "rome: ROME's value objective (compute_v): NLL + kl-factor x KL(P_delta || P) + weight-decay x |delta| / |h|^2; unset: droplab's before 2026-12-07, the cross-entropy to P for the KL term and |delta|^2 for the penalty (15 times ROME's on a typical edit here).",
        "stopLoss": "A case's value optimisation stops once its loss is below this (ROME's and MEMIT's 0.05); unset: it runs every step.",
        "clampNorm": "|delta| is clamped to this x |h|.",
        "cacheDir": "Cache directory (key covariances; in recipes: the runner's cache).",
        "batch": "Sequences per forward pass.",
        "saveEdited": "Write the edited model as a Hugging Face directory, with edited.h5 in it for explore (rome: after the first edit; memit: after all edits).",
    ]
}

public struct RomeCaseRecord: Codable, Sendable {
    public var id: Int, subject: String, prompt: String, trueTarget: String, newTarget: String
    public var layer: Int
    public var before: [String: Double]       // p_new/p_true on prompt, paraphrase, neighbourhood
    public var after: [String: Double]
    public var updateNorm: Double
    public var deltaNorm: Double, valueNorm: Double
    public var finalLoss: Double?
}

public struct RomeResult: Codable, Sendable {
    public var checkpoint: String
    public var options: RomeOptions
    public var casesRead: Int
    public var casesDroppedMultiPiece: Int
    public var cases: Int
    public var layer: Int
    public var layerTrace: [Double]?          // mean indirect effect of ffn.out at the last subject token, by layer
    public var layerTraceSamples: Int?        // the trace's resolved noise samples, standard deviation and window (nil: no
    public var layerTraceNoise: Double?       // trace, or a result written before they were recorded)
    public var layerTraceWindow: Int?
    public var before: CounterFactMetrics
    public var after: CounterFactMetrics
    public var updateNorm: Double             // mean Frobenius norm of dW
    public var seconds: Double
}

public enum Rome {
    public static func run(checkpoint: String, options o: RomeOptions, log: @escaping (String) -> Void) throws
        -> (result: RomeResult, records: [RomeCaseRecord]) {
        let began = Date()
        try o.validate()
        let s = try setup(checkpoint: checkpoint, o, log: log)
        let pad = s.tok.padId
        var curve: [Double]? = nil, layer = o.layer ?? 0
        if o.layer == nil {
            let t = tracedLayer(s, o)
            layer = t.layer; curve = t.curve
            log("rome: causal trace of ffn.out at the last subject token, by layer: \(t.curve.map { String(format: "%.4g", $0) }); layer \(layer)")
        }
        let cov = try covariance(s.model, layers: [layer], sequences: s.sequences, cacheKey: s.covKey, cacheDir: o.cacheDir,
                                 batch: o.batch, pad: pad, log: log)[layer]!
        let before = checkProbabilities(s.model, s.cases, nil, batch: o.batch, pad: pad)
        var after: [[Double]] = [], records: [RomeCaseRecord] = []
        let solved = try optimiseValues(s.model, vocab: s.tok.vocab, s.cases, layer: layer, o: o, pad: pad,
                                        progress: ProgressLog("rome: values", total: s.cases.count, log: log))
        let progress = ProgressLog("rome: edits", total: s.cases.count, log: log)
        for (i, c) in s.cases.enumerated() {
            let (delta, value, loss) = solved[i]
            let key = meanAtSubject(s.model, c, Site(.ffnAct, layer), nil, pad: pad)
            let dw = try rankOneUpdate(delta: delta, key: key, covariance: cov)
            let edit = DenseEdit(s.model.params, targets: [weightName(layer)])
            edit.params.setTrainable { _ in false }
            add(dw, to: edit, layer: layer)
            let p = checkProbabilities(s.model, [c], edit, batch: o.batch, pad: pad)[0]
            after.append(p)
            if i == 0, let dir = o.saveEdited { try ConceptEdits.saveEdited(edit, base: s.model, vocab: s.tok.vocab, to: dir) }
            records.append(RomeCaseRecord(id: c.source.id, subject: c.source.subject, prompt: c.source.prompt, trueTarget: c.source.trueTarget,
                                          newTarget: c.source.newTarget, layer: layer, before: named(before[i]), after: named(p),
                                          updateNorm: frobenius(dw), deltaNorm: frobenius(delta), valueNorm: frobenius(value), finalLoss: loss))
            progress.update(i + 1)
        }
        let r = RomeResult(checkpoint: checkpoint, options: o, casesRead: s.read, casesDroppedMultiPiece: s.dropped, cases: s.cases.count,
                           layer: layer, layerTrace: curve, layerTraceSamples: curve.map { _ in o.resolvedTraceSamples },
                           layerTraceNoise: curve.map { _ in o.resolvedTraceNoise }, layerTraceWindow: curve.map { _ in o.resolvedTraceWindow },
                           before: metrics(before), after: metrics(after),
                           updateNorm: mean(records.map(\.updateNorm)), seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
