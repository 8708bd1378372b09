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

public struct CounterFactMetrics: Codable, Equatable, Sendable {
    public var efficacy = 0.0, paraphrase = 0.0, neighbourhood = 0.0, score = 0.0
    public var efficacyMagnitude = 0.0, paraphraseMagnitude = 0.0, neighbourhoodMagnitude = 0.0
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

/// A case's probes, tokenized.
struct PreparedCase {
    let source: EditCase
    let trueId: Int32, newId: Int32
    let rewrite: [TokenizedProbe]     // the prompt, alone and after each prefix (target = new)
    let essence: TokenizedProbe       // "<subject> is a [MASK] ."
    let checks: [TokenizedProbe]      // prompt, paraphrase, neighbourhood
}

public enum Rome {
    // MARK: data

    /// Corpus sequences ([CLS] ... [SEP], covSeqLen tokens) and prefix snippets, read in file order.
    static func corpusSample(_ o: RomeOptions, tok: WordPieceTokenizer) throws -> (sequences: [[Int32]], snippets: [String]) {
        var po = PretrainOptions()
        po.dataDir = o.dataDir; po.corpus = o.corpus
        let files = try Pretrain.corpusFiles(po)
        struct Enough: Error {}
        var sequences: [[Int32]] = [], snippets: [String] = [], stream: [Int32] = []
        let body = o.covSeqLen - 2
        do {
            try Corpus.forEachDocument(files[0]) { doc in
                if snippets.count < o.resolvedPrefixPool {
                    let words = doc.split(whereSeparator: { $0 == " " || $0 == "\n" }).prefix(o.prefixWords)
                    if words.count == o.prefixWords { snippets.append(words.joined(separator: " ")) }
                }
                tok.encode(doc, into: &stream)
                var at = 0
                while stream.count - at >= body, sequences.count < o.covSamples {
                    sequences.append([tok.clsId] + stream[at..<at + body] + [tok.sepId])
                    at += body
                }
                stream.removeFirst(at)
                if sequences.count >= o.covSamples && snippets.count >= o.resolvedPrefixPool { throw Enough() }
            }
        } catch is Enough {}
        guard !sequences.isEmpty else { throw ProbeError("\(files[0]): too little text for one \(o.covSeqLen)-token sequence") }
        return (sequences, snippets)
    }

    static func prepare(_ cases: [EditCase], snippets: [String], o: RomeOptions, tok: WordPieceTokenizer, maxLength: Int) -> [PreparedCase] {
        var rng = RNG(seed: o.seed ^ 0x726F_6D65)
        return cases.compactMap { c in
            let t = tok.encode(c.trueTarget)[0], n = tok.encode(c.newTarget)[0]
            func probe(_ prompt: String, _ subject: String?, _ y: Int32) -> TokenizedProbe? {
                ProbeSet.tokenize(Probe(prompt: prompt, target: "", subject: subject, relation: "counterfact", pattern: 0, tuple: "\(c.id)"),
                                  target: y, tok: tok, maxLength: maxLength)
            }
            let prefixes = snippets.isEmpty ? [] : (0..<o.prefixes).map { _ in snippets[rng.int(snippets.count)] + ". " }
            let rewrite = ([""] + prefixes).compactMap { probe($0 + c.prompt, c.subject, n) }
            guard rewrite.count == o.prefixes + 1 || (snippets.isEmpty && rewrite.count == 1),
                  let essence = probe("\(c.subject) is a [MASK] .", c.subject, n),
                  let p = probe(c.prompt, c.subject, t), let para = probe(c.paraphrase, nil, t), let neigh = probe(c.neighbourhood, nil, t)
            else { return nil }
            return PreparedCase(source: c, trueId: t, newId: n, rewrite: rewrite, essence: essence, checks: [p, para, neigh])
        }
    }

    // MARK: metrics

    /// (p_new, p_true) on prompt, paraphrase and neighbourhood of every case, under `edit`.
    static func checkProbabilities(_ model: BertModel, _ cases: [PreparedCase], _ edit: DenseEdit?, batch: Int, pad: Int32) -> [[Double]] {
        let items = cases.flatMap(\.checks)
        let ids = cases.flatMap { c in Array(repeating: [c.newId, c.trueId], count: 3) }
        var out: [[Double]] = []
        for start in stride(from: 0, to: items.count, by: batch) {
            let end = min(start + batch, items.count)
            let pb = ProbeBatch(Array(items[start..<end]), padId: pad)
            out += ProbeScoring.probabilities(model, pb, edit?.interventions(), of: Array(ids[start..<end]))
        }
        return stride(from: 0, to: out.count, by: 3).map { (i: Int) -> [Double] in Array(out[i..<i + 3].joined()) }   // [new, true] x 3
    }

    static func metrics(_ p: [[Double]]) -> CounterFactMetrics {
        guard !p.isEmpty else { return CounterFactMetrics() }
        var m = CounterFactMetrics()
        m.efficacy = mean(p.map { $0[0] > $0[1] ? 1 : 0 })
        m.paraphrase = mean(p.map { $0[2] > $0[3] ? 1 : 0 })
        m.neighbourhood = mean(p.map { $0[5] > $0[4] ? 1 : 0 })
        m.efficacyMagnitude = mean(p.map { $0[0] - $0[1] })
        m.paraphraseMagnitude = mean(p.map { $0[2] - $0[3] })
        m.neighbourhoodMagnitude = mean(p.map { $0[5] - $0[4] })
        let rates = [m.efficacy, m.paraphrase, m.neighbourhood]
        m.score = rates.contains(0) ? 0 : 3 / rates.reduce(0) { $0 + 1 / $1 }
        return m
    }

    static func named(_ p: [Double]) -> [String: Double] {
        ["prompt_p_new": p[0], "prompt_p_true": p[1], "paraphrase_p_new": p[2], "paraphrase_p_true": p[3],
         "neighbourhood_p_new": p[4], "neighbourhood_p_true": p[5]]
    }

    // MARK: keys, values, covariance

    static func weightName(_ l: Int) -> String { BertModule.ffnOut(l).weight }

    /// Mean over a case's rewrite prompts of `kind` at the last subject token, under `edit`.
    static func meanAtSubject(_ model: BertModel, _ c: PreparedCase, _ site: Site, _ edit: DenseEdit?, pad: Int32) -> [Float] {
        let pb = ProbeBatch(c.rewrite, padId: pad)
        let iv = edit?.interventions() ?? Interventions(), cap = Captures()
        iv.capture([site], into: cap)
        let tape = Tape(recording: false)
        _ = model.encode(tape, pb.batch, interventions: iv)
        let rows = pb.items.indices.map { pb.row($0, Position.subjectLast.positions(in: pb.items[$0])[0]) }
        let x = copyRows(cap[site]!, rows), D = x.lastDim
        return (0..<D).map { d in rows.indices.reduce(0) { $0 + x.data[$1 * D + d] } / Float(rows.count) }
    }

    /// E[k k^T] of ffn.act at each layer over the corpus sequences, [F*F] in Float64, cached.
    public static func covariance(_ model: BertModel, layers: [Int], sequences: [[Int32]], cacheKey: String, cacheDir: String,
                                  batch: Int, pad: Int32, log: (String) -> Void) throws -> [Int: [Double]] {
        let F = model.config.intermediateSize
        var out: [Int: [Double]] = [:], missing: [Int] = []
        func path(_ l: Int) -> String {
            var h = StableHash(); h.add("rome-cov-v1"); h.add(cacheKey); h.add(String(l)); h.add(String(sequences.count))
            return cacheDir + "/rome-cov-\(h.hex).f64"
        }
        for l in layers {
            if let d = FileManager.default.contents(atPath: path(l)), d.count == F * F * 8 {
                out[l] = d.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
            } else { missing.append(l) }
        }
        guard !missing.isEmpty else { return out }
        log("rome: covariance of the FFN keys at layer(s) \(missing) over \(sequences.count) corpus sequences (once; cached in \(cacheDir))")
        var acc = Dictionary(uniqueKeysWithValues: missing.map { ($0, [Double](repeating: 0, count: F * F)) })
        var count = 0
        let per = max(1, batch / 4)
        for start in stride(from: 0, to: sequences.count, by: per) {
            let chunk = sequences[start..<min(start + per, sequences.count)]
            let T = chunk.map(\.count).max()!
            var ids = [Int32](repeating: pad, count: chunk.count * T), mask = [Int32](repeating: 0, count: chunk.count * T)
            var rows: [Int32] = []
            for (b, s) in chunk.enumerated() { for (t, id) in s.enumerated() { ids[b * T + t] = id; mask[b * T + t] = 1; rows.append(Int32(b * T + t)) } }
            let iv = Interventions(), cap = Captures()
            iv.capture(missing.map { Site(.ffnAct, $0) }, into: cap)
            let tape = Tape(recording: false)
            _ = model.encode(tape, Batch(ids: ids, attentionMask: mask, batchSize: chunk.count, seqLen: T), interventions: iv)
            for l in missing {
                let k = tape.gatherRows(cap[Site(.ffnAct, l)]!, rows)
                let g = tape.matmul(k, k, transposeA: true)            // [F, F] sum over rows
                acc[l]!.withUnsafeMutableBufferPointer { a in for i in 0..<F * F { a[i] += Double(g.data[i]) } }
            }
            count += rows.count
        }
        try FileManager.default.createDirectory(atPath: cacheDir, withIntermediateDirectories: true)
        for l in missing {
            let c = acc[l]!.map { $0 / Double(count) }
            out[l] = c
            try c.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: URL(fileURLWithPath: path(l)), options: .atomic)
        }
        return out
    }

    /// Solve (A) X = B for symmetric positive definite A [n, n] (Cholesky, Float64); B [n, m].
    public static func solveSPD(_ a: [Double], n: Int, _ b: [Double], m: Int) throws -> [Double] {
        var L = a
        for j in 0..<n {
            var d = L[j * n + j]
            for k in 0..<j { d -= L[j * n + k] * L[j * n + k] }
            guard d > 0 else { throw ProbeError("rome: the key covariance is not positive definite (too few --cov-samples?)") }
            let djj = d.squareRoot()
            L[j * n + j] = djj
            for i in (j + 1)..<n {
                var s = L[i * n + j]
                for k in 0..<j { s -= L[i * n + k] * L[j * n + k] }
                L[i * n + j] = s / djj
            }
        }
        var x = b
        for c in 0..<m {
            for i in 0..<n {                         // L y = b
                var s = x[i * m + c]
                for k in 0..<i { s -= L[i * n + k] * x[k * m + c] }
                x[i * m + c] = s / L[i * n + i]
            }
            for i in stride(from: n - 1, through: 0, by: -1) {   // L^T x = y
                var s = x[i * m + c]
                for k in (i + 1)..<n { s -= L[k * n + i] * x[k * m + c] }
                x[i * m + c] = s / L[i * n + i]
            }
        }
        return x
    }

    /// The same input every step (the value optimisation's prompts).
    struct FixedBatch: TrainingData {
        struct Cursor: Codable { var steps = 0 }
        var cursor = Cursor()
        let item: ProbeBatch, steps: Int
        mutating func next() throws -> ProbeBatch? {
            guard cursor.steps < steps else { return nil }
            cursor.steps += 1
            return item
        }
        func tokens(in item: ProbeBatch) -> Int { item.batch.ids.count }
    }

    /// The value optimisation: for each case, the delta at ffn.out@layer (last subject token)
    /// making [MASK] predict its new object (NLL over the prompt and its prefixed copies), with
    /// the KL term on "<subject> is a [MASK] ." and weight decay; the delta is clamped to
    /// `clampNorm` times the residual's norm. The cases of one call are optimised together in one
    /// batch, each with its own delta row: the loss is the mean of the cases' losses, each delta
    /// gets only its own case's gradient (scaled by 1/cases, which Adam undoes; nothing is
    /// clipped), so together gives the deltas of each alone (tested). Returns each case's delta,
    /// its value (ffn.out before the edit) and its loss at the last step.
    static func optimiseValues(_ model: BertModel, vocab: [String], _ cases: [PreparedCase], layer: Int, base: DenseEdit?,
                               o: RomeOptions, pad: Int32) throws -> [(delta: [Float], value: [Float], loss: Double)] {
        let C = model.config.hiddenSize, n = cases.count
        let objective = ValueObjective(model, cases, layer: layer, base: base, o: o, pad: pad)
        let delta = Parameters([("delta", [n, C])])
        let group = ParameterGroup().adding(delta, decays: { _ in false })
        let d = delta["delta"]
        var topt = TrainerOptions(steps: o.steps, schedule: LRSchedule(peak: o.lr, warmupSteps: 0, totalSteps: o.steps, decay: .constant),
                                  hiddenDropout: 0, attentionDropout: 0, seed: o.seed)
        topt.adamw = AdamWConfig(eps: 1e-8, weightDecay: 0, maxGradNorm: 0)
        topt.logEvery = o.steps
        let runDir = NSTemporaryDirectory() + "droplab-rome-\(getpid())-\(cases[0].source.id)"
        defer { try? FileManager.default.removeItem(atPath: runDir) }
        var losses = [Double](repeating: .nan, count: n)
        var stopped = [Bool](repeating: false, count: n), start: [Float] = []
        let trainer = Trainer(model: model, vocab: vocab, data: FixedBatch(item: objective.batch, steps: o.steps), options: topt, runDir: runDir,
                              parameters: group, loss: { tape, model, _, _ in
            start = d.values
            let (mean, each) = objective.loss(tape, d)
            losses = each.map { Double($0.data[0]) }
            return mean
        })
        trainer.saveCheckpoints = false
        trainer.log = { _ in }
        trainer.afterStep = { _ in
            for i in 0..<n {
                // below --stop-loss a case keeps the delta its loss was measured at (ROME's break)
                if let l = o.stopLoss, stopped[i] || losses[i] < Double(l) {
                    stopped[i] = true
                    for j in 0..<C { d.data[i * C + j] = start[i * C + j] }
                    continue
                }
                let norm = (0..<C).reduce(Float(0)) { $0 + d.data[i * C + $1] * d.data[i * C + $1] }.squareRoot()
                let cap = o.clampNorm * objective.hNorms[i]
                if norm > cap { for j in 0..<C { d.data[i * C + j] *= cap / norm } }
            }
        }
        _ = try trainer.run()
        return (0..<n).map { (Array(d.values[(($0) * C)..<(($0 + 1) * C)]), objective.values[$0], losses[$0]) }
    }

    /// The value optimisation's objective for a batch of cases: every case's rewrite prompts
    /// and essence prompt in one batch, each case's delta row [n, C] added at ffn.out@layer (last
    /// subject token). `loss` returns the mean over cases and each case's loss (NLL of the new
    /// object + klFactor x KL from the essence distribution before the edit + weightDecay x
    /// |delta| / |h|^2; see --objective for the older form).
    struct ValueObjective {
        let model: BertModel, cases: [PreparedCase], site: Site, base: DenseEdit?, o: RomeOptions
        let values: [[Float]]                 // ffn.out at the subject before the edit, per case
        let hNorms: [Float]                   // |block output| at the subject, per case (the clamp's scale)
        let batch: ProbeBatch
        let owner: [Int32], rewriteRows: [[Int32]], essenceRows: [Int32], rows: [Int32]
        let essenceBefore: [Float]            // [n, V]: probabilities, or with ROME's objective log-probabilities
        let rome: Bool                        // ROME's objective (--objective rome)

        init(_ model: BertModel, _ cases: [PreparedCase], layer: Int, base: DenseEdit?, o: RomeOptions, pad: Int32) {
            let n = cases.count
            self.model = model; self.cases = cases; self.base = base; self.o = o
            site = Site(.ffnOut, layer)
            values = cases.map { meanAtSubject(model, $0, Site(.ffnOut, layer), base, pad: pad) }
            hNorms = cases.map { c in
                max(meanAtSubject(model, c, Site(.block, layer), base, pad: pad).reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-6)
            }
            // items: every case's rewrite prompts, then every case's essence prompt
            let pb = ProbeBatch(cases.flatMap(\.rewrite) + cases.map(\.essence), padId: pad)
            var owner: [Int32] = [], rewriteRows: [[Int32]] = Array(repeating: [], count: n)
            for (i, c) in cases.enumerated() {
                for _ in c.rewrite { rewriteRows[i].append(Int32(owner.count)); owner.append(Int32(i)) }
            }
            essenceRows = (0..<n).map { Int32(owner.count + $0) }
            owner += (0..<n).map(Int32.init)
            self.owner = owner; self.rewriteRows = rewriteRows; batch = pb
            rome = o.objective == "rome"
            essenceBefore = ProbeScoring.distributions(model, ProbeBatch(cases.map(\.essence), padId: pad), base?.interventions(), log: rome).values
            rows = pb.items.indices.map { pb.row($0, Position.subjectLast.positions(in: pb.items[$0])[0]) }
        }

        func loss(_ tape: Tape, _ d: Tensor) -> (mean: Tensor, each: [Tensor]) {
            let V = model.config.vocabSize, n = cases.count
            let iv = base?.interventions() ?? Interventions()
            iv.add(site) { x, tape in tape.replaceRows(x, rows, with: tape.add(tape.gatherRows(x, rows), tape.gatherRows(d, owner))) }
            let logits = model.mlmLogits(tape, model.encode(tape, batch.batch, interventions: iv), rows: batch.maskRows)
            let each = (0..<n).map { i in
                let nll = tape.crossEntropy(tape.gatherRows(logits, rewriteRows[i]),
                                            targets: [Int32](repeating: cases[i].newId, count: rewriteRows[i].count))
                let essence = tape.gatherRows(logits, [essenceRows[i]])
                let before = Tensor(Array(essenceBefore[(i * V)..<((i + 1) * V)]), shape: [1, V])
                let kl = rome ? tape.klDivergence(essence, from: before) : tape.crossEntropy(essence, distributions: before)
                let di = tape.gatherRows(d, [Int32(i)])
                let penalty = rome ? tape.norm(di) : tape.sum(tape.mul(di, di))
                let l2 = tape.scale(penalty, o.weightDecay / (hNorms[i] * hNorms[i]))
                return tape.add(tape.add(nll, tape.scale(kl, o.klFactor)), l2)
            }
            return (tape.scale(each.dropFirst().reduce(each[0]) { tape.add($0, $1) }, 1 / Float(n)), each)
        }
    }

    /// `optimiseValues` over all `cases` (from the unedited model), in groups of about `batch`
    /// prompts.
    static func optimiseValues(_ model: BertModel, vocab: [String], _ cases: [PreparedCase], layer: Int, o: RomeOptions, pad: Int32,
                               progress: ProgressLog) throws -> [(delta: [Float], value: [Float], loss: Double)] {
        let perGroup = max(1, o.batch / ((cases.first?.rewrite.count ?? 1) + 1))
        var out: [(delta: [Float], value: [Float], loss: Double)] = []
        for g in stride(from: 0, to: cases.count, by: perGroup) {
            out += try optimiseValues(model, vocab: vocab, Array(cases[g..<min(g + perGroup, cases.count)]), layer: layer, base: nil, o: o, pad: pad)
            progress.update(out.count)
        }
        return out
    }

    /// The ROME update for one case: dW = delta u^T / (u^T k), u = C^-1 k (rank one).
    static func rankOneUpdate(delta: [Float], key: [Float], covariance: [Double]) throws -> [Float] {
        let F = key.count, Cn = delta.count
        let u = try solveSPD(covariance, n: F, key.map(Double.init), m: 1)
        let denom = zip(u, key).reduce(0.0) { $0 + $1.0 * Double($1.1) }
        var dw = [Float](repeating: 0, count: Cn * F)
        for i in 0..<Cn { for j in 0..<F { dw[i * F + j] = Float(Double(delta[i]) * u[j] / denom) } }
        return dw
    }

    static func add(_ dw: [Float], to edit: DenseEdit, layer: Int) {
        let t = edit.params[weightName(layer)]
        for i in 0..<t.count { t.data[i] += dw[i] }
    }

    static func frobenius(_ x: [Float]) -> Double { x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

    // MARK: shared setup

    struct Setup {
        let model: BertModel, tok: WordPieceTokenizer
        let read: Int, dropped: Int
        let cases: [PreparedCase]
        let sequences: [[Int32]]
        let covKey: String
    }

    static func setup(checkpoint: String, _ o: RomeOptions, layers: [Int] = [], log: (String) -> Void) throws -> Setup {
        let (model, tok) = try KnowledgeSetup.frozenModel(checkpoint)
        try KnowledgeSetup.checkLayers(o.layer.map { [$0] } ?? [], flag: "layer", model.config)
        try KnowledgeSetup.checkLayers(layers, flag: "layers", model.config)
        let last = model.config.numLayers - 1
        if last > 0, let flag = o.layer == last ? "layer" : layers.contains(last) ? "layers" : nil {
            throw OptionError(key: flag, "\(last) is the last layer: its FFN output at the subject reaches [MASK] through no later attention, so it cannot be edited there")
        }
        let loaded: EditCases, source: String, known = o.knownOnly == true
        if o.pararel || o.probes != nil {
            let raw = try o.probes.map(ProbeSet.readJSONL) ?? ProbeSet.readParaRel(dataDir: o.dataDir, relations: o.relations)
            loaded = EditCases.fromProbes(raw, seed: o.seed, tokenizer: tok, limit: known ? nil : o.limit)
            source = o.probes ?? "pararel"
        } else {
            loaded = try EditCases.load(dataDir: o.dataDir, split: o.split, tokenizer: tok, limit: known ? nil : o.limit)
            source = "counterfact (\(o.split))"
        }
        let (sequences, snippets) = try corpusSample(o, tok: tok)
        var cases = prepare(loaded.cases, snippets: snippets, o: o, tok: tok, maxLength: model.config.maxPositions)
        log("\(source): \(loaded.read) cases read, \(loaded.droppedMultiPiece) dropped (an object is not one word piece), "
            + (o.pararel || o.probes != nil ? "\(loaded.droppedUnpaired) without a paraphrase, a neighbour or another object, " : "")
            + "\(cases.count) usable")
        if known {
            let all = cases.count
            cases = Array(knownCases(model, cases, batch: o.batch, pad: tok.padId).prefix(o.limit ?? Int.max))
            log("rome: --known-only: \(cases.count) cases used (of those whose prompt the model answers with the true object, among \(all))")
        }
        guard !cases.isEmpty else {
            throw ProbeError("\(source): " + (known ? "the model answers none of the usable edit cases with its true object (--known-only)"
                                                   : "no usable edit case for this vocabulary"))
        }
        let ckHash = SHA256.hex(try Data(contentsOf: URL(fileURLWithPath: checkpoint)))
        return Setup(model: model, tok: tok, read: loaded.read, dropped: loaded.droppedMultiPiece, cases: cases, sequences: sequences,
                     covKey: ckHash + "|" + (o.corpus.isEmpty ? "default:\(o.dataDir ?? "")" : o.corpus.joined(separator: ",")) + "|\(o.covSeqLen)")
    }

    /// The cases whose prompt the unedited model answers with the true object (top-1 at [MASK]).
    static func knownCases(_ model: BertModel, _ cases: [PreparedCase], batch: Int, pad: Int32) -> [PreparedCase] {
        var out: [PreparedCase] = []
        for start in stride(from: 0, to: cases.count, by: batch) {
            let chunk = Array(cases[start..<min(start + batch, cases.count)])
            let d = ProbeScoring.distributions(model, ProbeBatch(chunk.map { $0.checks[0] }, padId: pad), nil)
            let V = d.lastDim, values = d.values
            for (i, c) in chunk.enumerated() {
                let row = (i * V)..<((i + 1) * V)
                if row.max(by: { values[$0] < values[$1] }).map({ $0 - i * V }) == Int(c.trueId) { out.append(c) }
            }
        }
        return out
    }

    /// The layer where restoring ffn.out at the last subject token matters most (mean indirect
    /// effect over up to `traceCases` cases, target = the true object), and the per-layer curve.
    static func tracedLayer(_ s: Setup, _ o: RomeOptions) -> (layer: Int, curve: [Double]) {
        let L = s.model.config.numLayers
        let k = KnowledgeSetup(model: s.model, tokenizer: s.tok, probes: ProbeSet(probes: [], tokenized: [], counts: [:]))
        let sigma = Float(o.resolvedTraceNoise * CausalTrace.embeddingStd(s.model))
        var sum = [Double](repeating: 0, count: L)
        let cases = s.cases.prefix(o.traceCases)
        for c in cases {
            let p = c.checks[0]
            let noise = CausalTrace.noise(p, hidden: s.model.config.hiddenSize, sigma: sigma, samples: o.resolvedTraceSamples, seed: o.seed ^ UInt64(c.source.id))
            let (_, corrupt, restored) = CausalTrace.trace(k, p, kinds: [.ffnOut], noise: noise, window: o.resolvedTraceWindow, batch: o.batch)
            let t = p.subject!.upperBound - 1
            for l in 0..<L { sum[l] += restored[.ffnOut]![l][t] - corrupt }
        }
        let curve = sum.map { $0 / Double(cases.count) }
        return (peak(curve), curve)
    }

    /// The layer of the trace's largest effect, the last layer excepted: its FFN output at the
    /// subject reaches [MASK] through no later attention, so its effect is 0 and an edit there
    /// changes nothing (when no other layer's effect is positive, it would win the argmax).
    static func peak(_ curve: [Double]) -> Int {
        let editable = curve.count > 1 ? curve.dropLast() : curve[...]
        return editable.indices.max { editable[$0] < editable[$1] } ?? 0
    }


    // MARK: ROME

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
