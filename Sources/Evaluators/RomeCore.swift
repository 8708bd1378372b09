// What ROME (Rome.swift) and MEMIT (Memit.swift) share: edit cases and their probes, the
// CounterFact metrics, keys at the subject, the key covariance C = E[k k^T] (cached), the SPD
// solver, the value optimisation (v* = v + delta), the known-cases filter and the traced layer.
// The algorithm is described where it is used, in Rome.swift's header.

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Interventions
import Text
import Training

public struct CounterFactMetrics: Codable, Equatable, Sendable {
    public var efficacy = 0.0, paraphrase = 0.0, neighbourhood = 0.0, score = 0.0
    public var efficacyMagnitude = 0.0, paraphraseMagnitude = 0.0, neighbourhoodMagnitude = 0.0
}

/// A case's probes, tokenized.
struct PreparedCase {
    let source: EditCase
    let trueId: Int32, newId: Int32
    let rewrite: [TokenizedProbe]     // the prompt, alone and after each prefix (target = new)
    let essence: TokenizedProbe       // "<subject> is a [MASK] ."
    let checks: [TokenizedProbe]      // prompt, paraphrase, neighbourhood
}

extension Rome {
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
}
