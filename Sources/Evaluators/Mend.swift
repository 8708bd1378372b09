// `droplab eval mend`: MEND (Mitchell et al. 2022), learned editors over the rank-one factors
// of FFN weight gradients, on ParaRel facts.
//  - Edited matrices: `intermediate.dense` and `output.dense` of --layers (default: the study's
//    "last 3 of 12" scaled to depth, at least one). For one edit input (a probe with [MASK],
//    label the gold object at [MASK]) the gradient of the NLL w.r.t. W [O, I] is
//    sum_t delta_t u_t^T: u = the matrix's input (site ffn.in / ffn.act), delta = the gradient
//    at its output (ffn.pre / ffn.out, the `gradient` intervention).
//  - Editor: z_t = [u_t; delta_t] normalised by running statistics (per layer and matrix),
//    times a per-layer scale plus shift, then two residual low-rank blocks
//    h + B gelu(A h + b) (one network per matrix shape, shared across layers; B starts at 0,
//    so an untrained editor is a normalised gradient step), split back into (u~, delta~):
//    dW = lr_l sum_t delta~_t u~_t^T over the rows t whose input and gradient are nonzero (MEND;
//    in the last layer only [MASK]'s), with a learned step size lr_l per layer and matrix trained
//    at its own Adam rate --lr-lr (MEND's lr_lr, 1e-4); the edited weight is W - dW (a weight
//    view: the model is never written).
//  - Training (through the shared Trainer, Adam --lr 5e-5, --batch-facts 12 facts a step):
//    L = L_loc + --edit-weight (0.1, MEND's c_edit; the study's 0.01 multiplies a sum over every
//    token of 10 paraphrases, ours one token) x L_edit, L_edit = NLL of the gold object on a
//    paraphrase of the edit input, L_loc = KL(original || edited) at [MASK] of --unrelated
//    probes of other facts (a proper KL on log-probabilities; the study's code passes
//    probabilities where log-probabilities belong).
//  - Split by concept (the gold object): --train-share (0.9; the study used 0.95) of the
//    concepts train the editor, the facts of the others are edited at test time only.
//  - Metrics on the test facts, at [MASK] (the object is one token): the edit input right
//    after the edit (mask_edit_success), its paraphrases (mask_paraphrase_success), unrelated
//    probes whose prediction is unchanged (mask_edit_localization), and the change of the gold
//    object's probability; for the trained editor and, as a baseline, the untrained one.
// The result records L_edit and L_loc (a true KL) per tenth of the steps and the learned step
// sizes, so that an editor that did not train is seen. The editor is written to
// mend-editor.h5 in the job directory (HDF5, its tensors and the normalisation statistics).

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Interventions
import Text
import Training

public struct MendOptions: ProbeEvaluatorOptions, Equatable {
    public var source = ProbeOptions()
    public var layers: [Int] = []             // default: the last max(1, round(L/4)) layers
    public var rank = 64                      // editor hidden width
    public var steps = 300                    // editor optimizer steps
    public var batchFacts = 12
    public var lr: Float = 5e-5
    public var editLr: Float = 1e-4           // initial per-layer edit step size
    public var lrLr: Float? = 1e-4            // Adam learning rate of the edit step sizes (MEND's lr_lr); unset: --lr
    public var editWeight: Float = 0.1        // MEND's c_edit
    public var rows: String? = "nonzero"      // the rows an edit is built from: "nonzero" (MEND); unset: every row, averaged (before 2026-12-07)
    public var unrelated = 8                  // unrelated probes per fact for L_loc
    public var trainShare = 0.9
    public var splitSeed: UInt64 = 7
    public var testFacts: Int? = 200          // test facts evaluated (default: 200)
    public init() {}

    public func validate() throws {
        try source.validate()
        try Check.that(layers.allSatisfy { $0 >= 0 }, "layers", "must be >= 0")
        try Check.that(rank >= 1, "rank", "must be at least 1, got \(rank)")
        try Check.that(steps >= 0, "steps", "must be >= 0, got \(steps)")
        try Check.that(batchFacts >= 1, "batch-facts", "must be at least 1, got \(batchFacts)")
        try Check.that(lr > 0 && lr.isFinite, "lr", "must be positive, got \(lr)")
        try Check.that(editLr > 0 && editLr.isFinite, "edit-lr", "must be positive, got \(editLr)")
        if let l = lrLr { try Check.that(l > 0 && l.isFinite, "lr-lr", "must be positive, got \(l)") }
        if let r = rows { try Check.that(r == "nonzero", "rows", "must be 'nonzero' or unset, got '\(r)'") }
        try Check.that(editWeight >= 0, "edit-weight", "must be >= 0, got \(editWeight)")
        try Check.that(unrelated >= 1, "unrelated", "must be at least 1, got \(unrelated)")
        try Check.that(trainShare > 0 && trainShare < 1, "train-share", "must be in (0, 1), got \(trainShare)")
        try Check.that((testFacts ?? 1) >= 1, "test-facts", "must be at least 1")
    }
}

extension MendOptions: OptionHelp {
    public static let help: [String: String] = [
        "source": "The probes (see the probe options).",
        "layers": "Edited layers (empty: the last quarter, at least one).",
        "rank": "Editor hidden width.",
        "steps": "Editor optimizer steps.",
        "batchFacts": "Facts per editor step.",
        "lr": "Editor learning rate (Adam).",
        "editLr": "Initial per-layer edit step size.",
        "lrLr": "Adam learning rate of the per-layer edit step sizes (MEND's lr_lr; unset: --lr).",
        "editWeight": "Weight c of L_edit in L_loc + c L_edit (MEND's c_edit).",
        "rows": "Rows of u and delta an edit is built from: nonzero (MEND: rows with a nonzero input and gradient, summed); unset: every row, averaged.",
        "unrelated": "Unrelated probes per fact (L_loc and localization).",
        "trainShare": "Share of concepts whose facts train the editor.",
        "splitSeed": "Seed of the concept split.",
        "testFacts": "Test facts evaluated (unset: all).",
    ]
}

public struct MendMetrics: Codable, Equatable, Sendable {
    public var maskEditSuccess = 0.0
    public var maskParaphraseSuccess = 0.0
    public var maskEditLocalization = 0.0      // unrelated predictions unchanged
    public var editProbChange = 0.0            // mean P(gold) after - before, edit input
    public var paraphraseProbChange = 0.0
    enum CodingKeys: String, CodingKey {
        case maskEditSuccess = "mask_edit_success", maskParaphraseSuccess = "mask_paraphrase_success"
        case maskEditLocalization = "mask_edit_localization", editProbChange = "edit_prob_change"
        case paraphraseProbChange = "paraphrase_prob_change"
    }
}

public struct MendResult: Codable, Sendable {
    public var checkpoint: String
    public var options: MendOptions
    public var layers: [Int]
    public var trainConcepts: Int, testConcepts: Int
    public var trainFacts: Int, testFacts: Int
    public var beforeEditSuccess: Double       // the test facts' edit inputs, unedited
    public var beforeParaphraseSuccess: Double
    public var trained: MendMetrics
    public var untrained: MendMetrics
    public var firstLoss: Double?, lastLoss: Double?
    public var editLoss: [Double]? = nil       // L_edit (NLL) per tenth of the training steps, mean over its steps
    public var locality: [Double]? = nil       // L_loc (KL) the same way
    public var stepSizes: [String: Double]? = nil   // the learned edit step size per layer and matrix, after training
    public var editor: String                  // the editor's HDF5 file, in the job directory (before 2026-12-07: a path)
    public var seconds: Double
}

public struct MendFactRecord: Codable, Sendable {
    public var fact: String, relation: String, target: String, prompt: String
    public var beforeRight: Bool, afterRight: Bool, untrainedRight: Bool
    public var paraphrases: Int, paraphrasesRightBefore: Int, paraphrasesRightAfter: Int
    public var probBefore: Double, probAfter: Double
}

/// The editor networks, per-layer scales/shifts/step sizes and the normalisation statistics.
public final class MendEditor {
    public struct Target: Hashable { public var layer: Int; public var output: Bool }   // output: output.dense, else intermediate.dense
    public let params: Parameters
    public let targets: [Target]
    /// The stored `.lr` entries are the step sizes divided by this (lr_lr / lr): Adam moves a
    /// parameter by about its learning rate a step, so a step size moves by about lr_lr.
    let lrScale: Float
    let nonzeroRows: Bool                       // MEND's rows (else every row, averaged)
    let C: Int, F: Int
    var count: [Target: Double] = [:], mean: [Target: [Double]] = [:], m2: [Target: [Double]] = [:]

    static func shape(_ output: Bool) -> String { output ? "out" : "in" }
    public static func weightName(_ t: Target) -> String {
        (t.output ? BertModule.ffnOut(t.layer) : BertModule.ffnIn(t.layer)).weight
    }
    func dims(_ output: Bool) -> (I: Int, O: Int) { output ? (F, C) : (C, F) }

    public init(config: BertConfig, layers: [Int], rank: Int, editLr: Float, lrScale: Float = 1, nonzeroRows: Bool = true, seed: UInt64) {
        C = config.hiddenSize; F = config.intermediateSize; self.lrScale = lrScale; self.nonzeroRows = nonzeroRows
        targets = layers.flatMap { [Target(layer: $0, output: false), Target(layer: $0, output: true)] }
        var specs: [(name: String, shape: [Int])] = []
        for output in [false, true] {
            let D = C + F, s = Self.shape(output)
            specs += [("mend.\(s).A1", [rank, D]), ("mend.\(s).b1", [rank]), ("mend.\(s).B1", [D, rank]),
                      ("mend.\(s).A2", [rank, D]), ("mend.\(s).b2", [rank]), ("mend.\(s).B2", [D, rank])]
        }
        for t in targets {
            let k = "mend.\(t.layer).\(Self.shape(t.output))"
            specs += [(k + ".scale", [C + F]), (k + ".shift", [C + F]), (k + ".lr", [1])]
        }
        params = Parameters(specs)
        var rng = RNG(seed: seed)
        for e in params.entries {
            let t = params[e.name]
            if e.name.hasSuffix("A1") || e.name.hasSuffix("A2") {
                let bound = (6 / Float(e.shape[0] + e.shape[1])).squareRoot()
                for i in 0..<t.count { t.data[i] = bound * (2 * rng.uniform() - 1) }
            } else if e.name.hasSuffix(".scale") {
                t.buffer.update(repeating: 1)
            } else if e.name.hasSuffix(".lr") {
                t.data[0] = editLr / lrScale
            }
        }
        for t in targets { count[t] = 0; mean[t] = Array(repeating: 0, count: C + F); m2[t] = Array(repeating: 0, count: C + F) }
    }

    /// Welford update of the statistics of z = [u; delta] with rows [T * D].
    func observe(_ t: Target, _ z: [Float], rows T: Int) {
        let D = C + F
        for r in 0..<T {
            count[t]! += 1
            let n = count[t]!
            for d in 0..<D {
                let x = Double(z[r * D + d]), dm = x - mean[t]![d]
                mean[t]![d] += dm / n
                m2[t]![d] += dm * (x - mean[t]![d])
            }
        }
    }

    /// The edit step size of a target.
    public func stepSize(_ t: Target) -> Double { Double(params["mend.\(t.layer).\(Self.shape(t.output)).lr"].data[0] * lrScale) }

    /// dW for one target from its factors u [T, I] and delta [T, O] (constants; with `nonzeroRows`
    /// the rows with a nonzero gradient only, summed as MEND, else every row, averaged), on `tape`.
    func delta(_ t: Target, u: [Float], delta: [Float], rows T: Int, tape: Tape) -> Tensor {
        let (I, O) = dims(t.output), D = I + O
        var z = [Float](repeating: 0, count: T * D)
        for r in 0..<T {
            for i in 0..<I { z[r * D + i] = u[r * I + i] }
            for o in 0..<O { z[r * D + I + o] = delta[r * O + o] }
        }
        let n = max(count[t]!, 1)
        for r in 0..<T {
            for d in 0..<D {
                let sd = count[t]! > 1 ? (m2[t]![d] / (n - 1)).squareRoot() : 1
                z[r * D + d] = Float((Double(z[r * D + d]) - mean[t]![d]) / max(sd, 1e-8))
            }
        }
        let k = "mend.\(t.layer).\(Self.shape(t.output))", s = "mend.\(Self.shape(t.output))"
        var h = tape.addBias(tape.scaleColumns(Tensor(z, shape: [T, D]), params[k + ".scale"]), params[k + ".shift"])
        for b in ["1", "2"] {
            h = tape.add(h, tape.linear(tape.gelu(tape.linear(h, params["\(s).A\(b)"], params["\(s).b\(b)"])), params["\(s).B\(b)"], nil))
        }
        let ut = tape.sliceColumns(h, 0..<I), dt = tape.sliceColumns(h, I..<D)
        let dw = tape.scale(tape.matmul(dt, ut, transposeA: true), lrScale / Float(nonzeroRows ? 1 : T))   // [O, I]
        return tape.scaleColumns(dw.reshaped([O * I, 1]), params[k + ".lr"]).reshaped([O, I])
    }

    /// The edit of one probe: the gradient factors from a forward/backward of the frozen model
    /// (on its own tape), then dW per target on `tape`; installs W - dW as weight views.
    func edit(_ model: BertModel, _ p: TokenizedProbe, pad: Int32, tape: Tape, observe update: Bool) -> Interventions {
        let pb = ProbeBatch([p], padId: pad), T = p.ids.count
        let g = Tape(), cap = Captures(), iv = Interventions()
        var leaves: [Target: Tensor] = [:]
        for t in targets {
            iv.capture([Site(t.output ? .ffnAct : .ffnIn, t.layer)], into: cap)
            let outSite = Site(t.output ? .ffnOut : .ffnPre, t.layer), width = t.output ? C : F
            leaves[t] = iv.gradient(at: outSite, rows: (0..<Int32(T)).map { $0 }, width: width)
        }
        let logits = model.mlmLogits(g, model.encode(g, pb.batch, interventions: iv), rows: pb.maskRows)
        g.backward(g.crossEntropy(logits, targets: [p.targetId]))
        let edited = Interventions()
        for t in targets {
            let uAll = cap[Site(t.output ? .ffnAct : .ffnIn, t.layer)]!.values, dAll = leaves[t]!.gradValues
            // rows whose gradient or input is zero carry no edit (in the last layer every row but
            // [MASK]'s): left out of the statistics and the edit, as MEND's nonzero mask
            let (I, O) = dims(t.output)
            let rows = !nonzeroRows ? Array(0..<T)
                : (0..<T).filter { r in (0..<O).contains { dAll[r * O + $0] != 0 } && (0..<I).contains { uAll[r * I + $0] != 0 } }
            guard !rows.isEmpty else { continue }
            let u = rows.flatMap { uAll[($0 * I)..<(($0 + 1) * I)] }, d = rows.flatMap { dAll[($0 * O)..<(($0 + 1) * O)] }
            if update {
                var z = [Float](repeating: 0, count: rows.count * (I + O))
                for r in rows.indices { for i in 0..<I { z[r * (I + O) + i] = u[r * I + i] }; for o in 0..<O { z[r * (I + O) + I + o] = d[r * O + o] } }
                observe(t, z, rows: rows.count)
            }
            let dw = delta(t, u: u, delta: d, rows: rows.count, tape: tape)
            edited.view(Self.weightName(t)) { w, tape in tape.denseWeight(w, delta: tape.scale(dw, -1)) }
        }
        return edited
    }

    /// The editor as HDF5: every tensor under its name, statistics under stats/.
    func save(to path: String) throws {
        let tmp = AtomicFile.temporaryPath(for: path)
        let f = try HDF5File.create(tmp)
        for e in params.entries {
            let v = Array(UnsafeBufferPointer(params[e.name].buffer)).map { e.name.hasSuffix(".lr") ? $0 * lrScale : $0 }   // the step sizes themselves
            try v.withUnsafeBufferPointer { try f.write(e.name, floats: $0, shape: e.shape) }
        }
        for t in targets {
            let k = "stats/\(t.layer).\(Self.shape(t.output))"
            try f.write(k + ".mean", doubles: mean[t]!, shape: [C + F])
            try f.write(k + ".m2", doubles: m2[t]!, shape: [C + F])
            try f.write(k + ".count", doubles: [count[t]!], shape: [1])
        }
        try f.finish()
        try AtomicFile.commit(tmp, to: path)
    }
}

public enum Mend {
    public static let editorFile = "mend-editor.h5"

    /// Entropy of each row of `p` [rows, V] (probabilities), summed over rows then averaged, as
    /// the cross-entropy the locality term is computed with.
    static func entropy(_ p: Tensor, rows n: Int) -> Double {
        let V = p.lastDim
        var h = 0.0
        for r in 0..<n { for v in 0..<V { let x = Double(p.data[r * V + v]); if x > 0 { h -= x * log(x) } } }
        return h / Double(n)
    }

    /// Means over each tenth of `xs` (fewer parts when shorter).
    static func tenths(_ xs: [Double]) -> [Double] {
        let parts = min(10, xs.count)
        return (0..<parts).map { k in mean(Array(xs[(k * xs.count / parts)..<((k + 1) * xs.count / parts)])) }
    }

    struct FactBatches: TrainingData {
        struct Cursor: Codable { var next = 0 }
        var cursor = Cursor()
        let batches: [[Int]]
        mutating func next() throws -> [Int]? {
            guard cursor.next < batches.count else { return nil }
            defer { cursor.next += 1 }
            return batches[cursor.next]
        }
        func tokens(in item: [Int]) -> Int { item.count }
    }

    public static func run(checkpoint: String, options o: MendOptions, resultsDir: String, log: @escaping (String) -> Void) throws
        -> (result: MendResult, records: [MendFactRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.source, layers: ("layers", o.layers), log: log)
        let model = k.model, L = model.config.numLayers, pad = k.tokenizer.padId
        let layers = o.layers.isEmpty ? Array((L - max(1, Int((Double(L) / 4).rounded())))..<L) : o.layers.sorted()
        let probes = k.probes.probes, toks = k.probes.tokenized
        // facts with a paraphrase, split by concept
        let byFact = Dictionary(grouping: probes.indices, by: { probes[$0].tuple }).filter { $0.value.count >= 2 }
        var concepts = Array(Set(byFact.values.map { probes[$0[0]].concept })).sorted()
        var rng = RNG(seed: o.splitSeed)
        rng.shuffle(&concepts)
        let nTrain = min(max(1, Int((Double(concepts.count) * o.trainShare).rounded())), concepts.count - 1)
        guard nTrain >= 1 && concepts.count >= 2 else { throw ProbeError("mend: needs facts of at least two concepts with two paraphrases each") }
        let trainConcepts = Set(concepts.prefix(nTrain))
        let factIds = byFact.keys.sorted()
        let trainFacts = factIds.filter { trainConcepts.contains(probes[byFact[$0]![0]].concept) }
        var testFacts = factIds.filter { !trainConcepts.contains(probes[byFact[$0]![0]].concept) }
        if let n = o.testFacts, testFacts.count > n { rng.shuffle(&testFacts); testFacts = Array(testFacts.prefix(n)).sorted() }
        log("mend: layers \(layers); \(trainFacts.count) training facts (\(nTrain) concepts), \(testFacts.count) test facts "
            + "(\(concepts.count - nTrain) concepts)")

        let lrScale = (o.lrLr ?? o.lr) / o.lr
        func makeEditor() -> MendEditor {
            MendEditor(config: model.config, layers: layers, rank: o.rank, editLr: o.editLr, lrScale: lrScale, nonzeroRows: o.rows != nil, seed: o.source.seed)
        }
        let editor = makeEditor(), untrained = makeEditor()

        // training: each step a batch of facts; edit input = one paraphrase, L_edit on another
        var srng = RNG(seed: o.source.seed ^ 0x6D65_6E64)
        let stepsPerEpoch = max(1, trainFacts.count / o.batchFacts)
        var batches: [[Int]] = []
        var order = Array(trainFacts.indices)
        while batches.count < o.steps {
            srng.shuffle(&order)
            for s in 0..<stepsPerEpoch where batches.count < o.steps { batches.append(Array(order[s * o.batchFacts..<min((s + 1) * o.batchFacts, order.count)])) }
        }
        var firstLoss: Double? = nil, lastLoss: Double? = nil, editLoss: [Double]? = nil, locality: [Double]? = nil
        if o.steps > 0 {
            var topt = TrainerOptions(steps: o.steps, schedule: LRSchedule(peak: o.lr, warmupSteps: 0, totalSteps: o.steps, decay: .constant),
                                      hiddenDropout: 0, attentionDropout: 0, seed: o.source.seed)
            topt.adamw = AdamWConfig(weightDecay: 0, maxGradNorm: 0)
            topt.logEvery = max(1, o.steps / 10)
            let runDir = resultsDir + "/mend-run"
            try? FileManager.default.removeItem(atPath: runDir)
            defer { try? FileManager.default.removeItem(atPath: runDir) }
            let group = ParameterGroup().adding(editor.params, decays: { _ in false })
            var step = 0
            var editCurve: [Double] = [], locCurve: [Double] = []
            let trainer = Trainer(model: model, vocab: k.tokenizer.vocab, data: FactBatches(batches: batches), options: topt, runDir: runDir,
                                  parameters: group, loss: { tape, model, item, _ in
                var total: Tensor? = nil
                var stepEdit = 0.0, stepLoc = 0.0
                defer { editCurve.append(stepEdit); locCurve.append(stepLoc) }
                for fi in item {
                    var r = RNG(seed: o.source.seed ^ UInt64(step) &* 0x9E37 ^ UInt64(fi))
                    let members = byFact[trainFacts[fi]]!
                    let a = members[r.int(members.count)]
                    var b = members[r.int(members.count)]
                    if b == a { b = members[(members.firstIndex(of: a)! + 1) % members.count] }
                    let unrelated = (0..<o.unrelated).map { _ in toks[r.int(toks.count)] }.filter { probes[$0.index].tuple != trainFacts[fi] }
                    let pb = ProbeBatch([toks[b]] + unrelated, padId: pad)
                    let before = ProbeScoring.distributions(model, ProbeBatch(unrelated, padId: pad), nil)
                    let iv = editor.edit(model, toks[a], pad: pad, tape: tape, observe: true)
                    let logits = model.mlmLogits(tape, model.encode(tape, pb.batch, interventions: iv), rows: pb.maskRows)
                    let ledit = tape.crossEntropy(tape.gatherRows(logits, [0]), targets: [toks[b].targetId])
                    // cross-entropy against `before` is KL(before || after) + H(before); H is a constant
                    let lloc = tape.crossEntropy(tape.gatherRows(logits, (1...unrelated.count).map(Int32.init)), distributions: before)
                    let l = tape.add(lloc, tape.scale(ledit, o.editWeight))
                    stepEdit += Double(ledit.scalar) / Double(item.count)
                    stepLoc += (Double(lloc.scalar) - Self.entropy(before, rows: unrelated.count)) / Double(item.count)
                    total = total.map { tape.add($0, l) } ?? l
                }
                step += 1
                return tape.scale(total!, 1 / Float(item.count))
            })
            trainer.saveCheckpoints = false
            trainer.log = log
            var losses: [Double] = []
            let summary = try trainer.run()
            if let text = try? String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8) {
                for line in text.split(separator: "\n") {
                    if let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let l = o["train_loss"] as? Double { losses.append(l) }
                }
            }
            firstLoss = losses.first; lastLoss = losses.last ?? summary.lastMetrics["train_loss"]
            editLoss = Self.tenths(editCurve); locality = Self.tenths(locCurve)
        }
        try FileManager.default.createDirectory(atPath: resultsDir, withIntermediateDirectories: true)
        try editor.save(to: resultsDir + "/" + Self.editorFile)
        untrained.count = editor.count; untrained.mean = editor.mean; untrained.m2 = editor.m2   // same normalisation

        // evaluation on the test facts: edit input = the fact's first paraphrase
        var records: [MendFactRecord] = []
        var unchanged: [String: [Double]] = ["trained": [], "untrained": []]
        var changes: [String: (edit: [Double], para: [Double], right: [Double], paraRight: [Double])] = [:]
        for (name, ed) in [("trained", editor), ("untrained", untrained)] {
            var e = (edit: [Double](), para: [Double](), right: [Double](), paraRight: [Double]())
            for (n, f) in testFacts.enumerated() {
                let members = byFact[f]!
                var r = RNG(seed: o.source.seed ^ 0x7465_7374 ^ UInt64(n))
                let unrelated = (0..<o.unrelated).map { _ in toks[r.int(toks.count)] }.filter { probes[$0.index].tuple != f }
                let pb = ProbeBatch(members.map { toks[$0] } + unrelated, padId: pad)
                let tape = Tape(recording: false)
                let iv = ed.edit(model, toks[members[0]], pad: pad, tape: tape, observe: false)
                let before = ProbeScoring.run(model, pb), after = ProbeScoring.run(model, pb, iv)
                let m = members.count
                e.edit.append(after.prob[0] - before.prob[0]); e.right.append(after.rank[0] == 0 ? 1 : 0)
                for i in 1..<m { e.para.append(after.prob[i] - before.prob[i]); e.paraRight.append(after.rank[i] == 0 ? 1 : 0) }
                for i in m..<pb.items.count { unchanged[name]!.append(after.top1[i] == before.top1[i] ? 1 : 0) }
                if name == "trained" {
                    let p = probes[members[0]]
                    records.append(MendFactRecord(fact: f, relation: p.relation, target: p.target, prompt: p.prompt,
                                                  beforeRight: before.rank[0] == 0, afterRight: after.rank[0] == 0, untrainedRight: false,
                                                  paraphrases: m - 1, paraphrasesRightBefore: (1..<m).filter { before.rank[$0] == 0 }.count,
                                                  paraphrasesRightAfter: (1..<m).filter { after.rank[$0] == 0 }.count,
                                                  probBefore: before.prob[0], probAfter: after.prob[0]))
                } else {
                    records[n].untrainedRight = after.rank[0] == 0
                }
            }
            changes[name] = e
        }
        func metrics(_ name: String) -> MendMetrics {
            let e = changes[name]!
            return MendMetrics(maskEditSuccess: mean(e.right), maskParaphraseSuccess: mean(e.paraRight),
                               maskEditLocalization: mean(unchanged[name]!), editProbChange: mean(e.edit), paraphraseProbChange: mean(e.para))
        }
        let r = MendResult(checkpoint: checkpoint, options: o, layers: layers, trainConcepts: nTrain, testConcepts: concepts.count - nTrain,
                           trainFacts: trainFacts.count, testFacts: testFacts.count,
                           beforeEditSuccess: mean(records.map { $0.beforeRight ? 1 : 0 }),
                           beforeParaphraseSuccess: Double(records.reduce(0) { $0 + $1.paraphrasesRightBefore }) / Double(max(1, records.reduce(0) { $0 + $1.paraphrases })),
                           trained: metrics("trained"), untrained: metrics("untrained"), firstLoss: firstLoss, lastLoss: lastLoss,
                           editLoss: editLoss, locality: locality,
                           stepSizes: Dictionary(uniqueKeysWithValues: editor.targets.map { t in
                               ("\(t.layer).\(t.output ? "output" : "intermediate")", editor.stepSize(t)) }),
                           editor: Self.editorFile, seconds: Date().timeIntervalSince(began))
        return (r, records)
    }
}
