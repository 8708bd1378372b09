// What the concept-edit evaluators (bmask, ft, lora, reft) share: the study's protocol
// (Part 4 "editing is easier without dropout", and Part 3's binary-mask table).
//  - Concept = a gold ParaRel object (one word piece); most frequent first, --concepts N|all.
//  - Split, per concept, with --split-seed (the study: 7): --held-out (10%) of its probes held
//    out, the rest train; an unrelated set of as many other-concept probes as held out; ft,
//    lora and reft also train on as many other-concept probes (each keeping its own answer) as
//    the concept has training probes. bmask trains on the concept's probes only.
//  - Input: the probe with [MASK]; labels: the whole filled-in sentence (gold object at
//    [MASK]); loss: cross-entropy over every non-pad token (as the study).
//  - Metrics, before and after the edit: edit_success = token top-1 accuracy over the tokens of
//    the held-out probes but [CLS] and [SEP] (the study counts every non-pad token); edit_localization = the same on the unrelated set;
//    mask_edit_success / mask_edit_localization = at [MASK] only; train_mask_success = at [MASK]
//    on the concept's own training probes (the edit's fit: a validity check, not a finding).
//    Means over concepts, and
//    the per-concept values in NAME-concepts.jsonl.
//  - The evaluated state is the final one (after the last step); nothing is selected on the
//    held-out probes or any validation split. (The study's bmask trainer also saves a "best"
//    state by edit success - localization on the held-out and unrelated probes, but its
//    measurement reads the trainer's final state: dropval toplevel.dispatch_bmask_.)
// Training goes through the one Trainer with a parameter group of the edit's own tensors; the
// base model is frozen (KnowledgeSetup) and never written. Model access: only
// `encode/mlmLogits(interventions:)`.

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Interventions
import Text
import Training

/// Options every edit evaluator has; each method sets its own training defaults.
public struct EditOptions: Codable, Equatable, Sendable {
    public var probes = ProbeOptions()
    public var concepts: Int? = 50            // most frequent first; nil: all
    public var concept: [String] = []         // edit these concepts instead (--concept, repeatable)
    public var minProbes = 10                 // concepts with fewer probes are skipped
    public var heldOut = 0.1
    public var splitSeed: UInt64 = 7
    public var epochs: Int
    public var minSteps: Int? = nil           // at least this many optimizer steps (the probes cycle on past --epochs); unset: 0
    public var lr: Float
    public var trainBatch: Int
    public var weightDecay: Float = 0         // Adam (the study); > 0 decays the edit's tensors
    public var maxGradNorm: Float = 0         // 0: no clipping (the study)
    public var dropout: Float = 0             // hidden and attention dropout while editing
    public var saveEdited: String? = nil      // HF export directory of one edited model
    public var saveConcept: String? = nil     // the concept exported (default: the first)
    public init(epochs: Int, lr: Float, trainBatch: Int) { self.epochs = epochs; self.lr = lr; self.trainBatch = trainBatch }

    public func validate() throws {
        try probes.validate()
        try Check.that((concepts ?? 1) >= 1, "concepts", "must be a positive number or 'all', got \(concepts ?? 0)")
        try Check.that(minProbes >= 2, "min-probes", "must be at least 2 (one to train, one held out), got \(minProbes)")
        try Check.that(heldOut > 0 && heldOut < 1, "held-out", "must be in (0, 1), got \(heldOut)")
        try Check.that(epochs >= 1, "epochs", "must be at least 1, got \(epochs)")
        try Check.that((minSteps ?? 0) >= 0, "min-steps", "must be >= 0, got \(minSteps ?? 0)")
        try Check.that(lr > 0 && lr.isFinite, "lr", "must be positive, got \(lr)")
        try Check.that(trainBatch >= 1, "train-batch", "must be at least 1, got \(trainBatch)")
        try Check.that(weightDecay >= 0, "weight-decay", "must be >= 0, got \(weightDecay)")
        try Check.that(maxGradNorm >= 0, "max-grad-norm", "must be >= 0, got \(maxGradNorm)")
        try Check.that(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1), got \(dropout)")
        if let d = saveEdited, FileManager.default.fileExists(atPath: d + "/model.safetensors") {
            throw OptionError(key: "save-edited", "\(d): already holds a model (remove it first)")
        }
    }
}

extension EditOptions: OptionHelp {
    public static let help: [String: String] = [
        "probes": "The probes (see the probe options).",
        "concepts": "Concepts edited, most frequent first (unset: all).",
        "concept": "Edit these concepts (object words) instead of the most frequent ones.",
        "minProbes": "Concepts with fewer probes are skipped.",
        "heldOut": "Share of each concept's probes held out.",
        "splitSeed": "Seed of the per-concept split.",
        "epochs": "Training epochs.",
        "minSteps": "At least this many optimizer steps: the probes cycle on past --epochs (unset: the epochs alone).",
        "lr": "Adam learning rate.",
        "trainBatch": "Training batch size.",
        "weightDecay": "Weight decay on the edit's tensors.",
        "maxGradNorm": "Global gradient-norm clipping (0: none).",
        "dropout": "Hidden and attention dropout while editing.",
        "saveEdited": "Write the model edited for one concept as a Hugging Face directory, with edited.h5 in it for explore.",
        "saveConcept": "The concept --save-edited exports (unset: the first).",
    ]
}

/// The four accuracies (fractions in [0, 1]), and [MASK] accuracy on the concept's own
/// training probes: whether the edit fit what it was trained on (results before 2026-12-07: nil).
public struct EditMetrics: Codable, Equatable, Sendable {
    public var editSuccess: Double
    public var editLocalization: Double
    public var maskEditSuccess: Double
    public var maskEditLocalization: Double
    public var trainMaskSuccess: Double? = nil
    enum CodingKeys: String, CodingKey {
        case editSuccess = "edit_success", editLocalization = "edit_localization"
        case maskEditSuccess = "mask_edit_success", maskEditLocalization = "mask_edit_localization"
        case trainMaskSuccess = "train_mask_success"
    }
    static func mean(_ ms: [EditMetrics]) -> EditMetrics {
        let train = ms.compactMap(\.trainMaskSuccess)
        return EditMetrics(editSuccess: Evaluators.mean(ms.map(\.editSuccess)), editLocalization: Evaluators.mean(ms.map(\.editLocalization)),
                           maskEditSuccess: Evaluators.mean(ms.map(\.maskEditSuccess)),
                           maskEditLocalization: Evaluators.mean(ms.map(\.maskEditLocalization)),
                           trainMaskSuccess: train.count == ms.count && !ms.isEmpty ? Evaluators.mean(train) : nil)
    }
}

/// One edit of one concept (one line of NAME-concepts.jsonl).
public struct EditConceptRecord: Codable, Sendable {
    public var concept: String
    public var rank: Int?
    public var trainProbes: Int, heldOutProbes: Int, unrelatedProbes: Int, otherTrainProbes: Int
    public var before: EditMetrics
    public var after: EditMetrics
    public var steps: Int
    public var firstLoss: Double?, lastLoss: Double?
    public var seconds: Double
    public var meanActive: Double? = nil              // bmask
    public var keptFraction: Double? = nil            // bmask
    public var keptPerMatrix: [Int]? = nil            // bmask
    public var orthonormalityError: Double? = nil     // reft: max |R Rᵀ − I| after training
    enum CodingKeys: String, CodingKey {
        case concept, rank, trainProbes = "train_probes", heldOutProbes = "held_out_probes", unrelatedProbes = "unrelated_probes"
        case otherTrainProbes = "other_train_probes", before, after, steps, firstLoss = "first_loss", lastLoss = "last_loss", seconds
        case meanActive = "mean_active", keptFraction = "kept_fraction", keptPerMatrix = "kept_per_matrix"
        case orthonormalityError = "orthonormality_error"
    }
}

/// Means over concepts (one row per rank for lora/reft).
public struct EditRow: Codable, Sendable {
    public var rank: Int?
    public var concepts: Int
    public var before: EditMetrics
    public var after: EditMetrics
    public var meanActive: Double? = nil
    public var keptFraction: Double? = nil
    public var keptPerMatrix: [KeptMatrix]? = nil     // bmask: per masked matrix, means over concepts
    public var seconds: Double
    enum CodingKeys: String, CodingKey {
        case rank, concepts, before, after, meanActive = "mean_active", keptFraction = "kept_fraction"
        case keptPerMatrix = "kept_per_matrix", seconds
    }
}

extension EditRow {
    /// The report's row-id prefix of a method's row: "lora.r4", or "ft" without ranks.
    public static func rowPrefix(_ method: String, rank: Int?) -> String { method + (rank.map { ".r\($0)" } ?? "") }
    /// The rows of this edit row a failed check withholds.
    static func gated(_ method: String, rank: Int?) -> [String] {
        ["mask_edit_success_change", "edit_success_change", "edit_success", "edit_localization", "mask_edit_success", "mask_edit_localization",
         "mean_active", "kept_fraction*"]
            .map { rowPrefix(method, rank: rank) + "." + $0 }
    }
}

extension EditResult {
    /// Whether the edits did what the rows say, from the rows and the concept records:
    ///  - `<row>.fit` (ft, lora, reft): on average over the concepts the edit closed at least half
    ///    of the gap to 100% in [MASK] accuracy on the concept's own training probes (what it was
    ///    trained to answer); an edit below that did not learn its training set, so what it does
    ///    to held-out probes is not an edit's effect. Results before 2026-12-07 (no training
    ///    accuracy) are not checked.
    ///  - `bmask.moved`: every concept's mask dropped at least one weight; a mask that keeps every
    ///    weight is the base model, and its "edit" numbers are not a mask's.
    public func validity(records: [EditConceptRecord]) -> [ValidityCheck] {
        if method == "bmask" {
            let kept = records.compactMap(\.keptFraction)
            guard !kept.isEmpty else { return [] }
            let share = Double(kept.filter { $0 < 1 }.count) / Double(kept.count)
            return [ValidityCheck(id: "bmask.moved", check: "share of concepts whose mask dropped at least one weight = 100%", value: 100 * share,
                                  bound: 100, held: share == 1, failure: "mask did not move", gates: EditRow.gated(method, rank: nil))]
        }
        return rows.compactMap { r in
            guard let before = r.before.trainMaskSuccess, let after = r.after.trainMaskSuccess else { return nil }
            let bound = before + (1 - before) / 2
            return ValidityCheck(id: EditRow.rowPrefix(method, rank: r.rank) + ".fit",
                                 check: "[MASK] accuracy on the concepts' own training probes after the edit at least halfway from before ("
                                     + String(format: "%.2f", 100 * before) + "%) to 100%",
                                 value: 100 * after, bound: 100 * bound, held: after >= bound,
                                 failure: "edit did not fit its training probes", gates: EditRow.gated(method, rank: r.rank))
        }
    }
}

/// A masked matrix's weights kept at evaluation, mean over the concepts edited.
public struct KeptMatrix: Codable, Equatable, Sendable {
    public var matrix: String
    public var weights: Int
    public var kept: Double
    public var fraction: Double { kept / Double(max(weights, 1)) }
    enum CodingKeys: String, CodingKey { case matrix, weights, kept, fraction }
    public init(matrix: String, weights: Int, kept: Double) { self.matrix = matrix; self.weights = weights; self.kept = kept }
    public init(from d: Decoder) throws {
        let c = try d.container(keyedBy: CodingKeys.self)
        matrix = try c.decode(String.self, forKey: .matrix); weights = try c.decode(Int.self, forKey: .weights)
        kept = try c.decode(Double.self, forKey: .kept)
    }
    public func encode(to e: Encoder) throws {
        var c = e.container(keyedBy: CodingKeys.self)
        try c.encode(matrix, forKey: .matrix); try c.encode(weights, forKey: .weights); try c.encode(kept, forKey: .kept)
        try c.encode(fraction, forKey: .fraction)
    }
}

public struct EditResult<Options: Codable & Sendable>: Codable, Sendable {
    public var checkpoint: String
    public var method: String
    public var options: Options
    public var evaluatedState: String
    public var trainableParameters: [String: Int]     // elements trained, per rank ("all" without ranks)
    public var rows: [EditRow]
    public var concepts: [String]
    public var skippedConcepts: Int                   // fewer than --min-probes probes
    public var savedEdited: String?
    public var seconds: Double
}

/// One concept's probes, split.
public struct ConceptSplit {
    public var concept: String
    public var train: [TokenizedProbe]
    public var heldOut: [TokenizedProbe]
    public var unrelated: [TokenizedProbe]
    public var otherTrain: [TokenizedProbe]            // other concepts, for ft/lora/reft
}

/// Probes as an edit batch: ids with [MASK], labels = the filled-in sentence (-100 at padding),
/// and the rows of named positions.
public struct EditBatch {
    public let probes: ProbeBatch
    public let labels: [Int32]
    public let rows: [String: [Int32]]
    public var batch: Batch { probes.batch }

    public init(_ items: [TokenizedProbe], padId: Int32) {
        probes = ProbeBatch(items, padId: padId)
        let T = probes.T
        var labels = [Int32](repeating: -100, count: items.count * T)
        var cls: [Int32] = [], sep: [Int32] = [], mask: [Int32] = [], all: [Int32] = []
        for (b, p) in items.enumerated() {
            for (t, id) in p.ids.enumerated() { labels[b * T + t] = t == p.maskPosition ? p.targetId : id; all.append(Int32(b * T + t)) }
            cls.append(Int32(b * T)); sep.append(Int32(b * T + p.ids.count - 1)); mask.append(Int32(b * T + p.maskPosition))
        }
        self.labels = labels
        rows = ["cls": cls, "sep": sep, "mask": mask, "all": all]
    }
    public var tokens: Int { labels.filter { $0 != -100 }.count }
}

/// Training examples in a fresh shuffled order every epoch, `micro` per item, endlessly (the
/// Trainer's step budget ends it).
struct EditTrainData: TrainingData {
    struct Cursor: Codable { var epoch = 0, index = 0 }
    let examples: [TokenizedProbe]
    let micro: Int
    let seed: UInt64
    let padId: Int32
    var cursor = Cursor()
    private var order: [Int] = []

    init(_ examples: [TokenizedProbe], micro: Int, seed: UInt64, padId: Int32) {
        self.examples = examples; self.micro = micro; self.seed = seed; self.padId = padId
        order = Self.order(examples.count, seed: seed, epoch: 0)
    }
    static func order(_ n: Int, seed: UInt64, epoch: Int) -> [Int] {
        var o = Array(0..<n), rng = RNG(seed: seed ^ mix64(UInt64(epoch) &+ 0x6564_6974))
        rng.shuffle(&o)
        return o
    }
    mutating func next() throws -> EditBatch? {
        var items: [TokenizedProbe] = []
        while items.count < micro {
            if cursor.index == order.count {
                cursor.epoch += 1; cursor.index = 0
                order = Self.order(examples.count, seed: seed, epoch: cursor.epoch)
            }
            items.append(examples[order[cursor.index]]); cursor.index += 1
        }
        return EditBatch(items, padId: padId)
    }
    func tokens(in item: EditBatch) -> Int { item.tokens }
}

public enum ConceptEdits {
    /// Concepts with at least `minProbes` probes, most frequent first (ties by name), and how
    /// many were skipped for having fewer.
    public static func concepts(_ set: ProbeSet, _ o: EditOptions) throws -> (chosen: [(String, [Int])], skipped: Int) {
        var by = Dictionary(grouping: set.probes.indices, by: { set.probes[$0].concept }).map { ($0.key, $0.value) }
        by.sort { ($0.1.count, $1.0) > ($1.1.count, $0.0) }
        let eligible = by.filter { $0.1.count >= o.minProbes }
        if !o.concept.isEmpty {
            return (try o.concept.map { name in
                guard let c = by.first(where: { $0.0 == name }) else { throw OptionError(key: "concept", "'\(name)': no probe has this object") }
                guard c.1.count >= o.minProbes else {
                    throw OptionError(key: "concept", "'\(name)': \(c.1.count) probes, fewer than --min-probes \(o.minProbes)")
                }
                return c
            }, 0)
        }
        return (o.concepts.map { Array(eligible.prefix($0)) } ?? eligible, by.count - eligible.count)
    }

    /// The study's split of one concept (seeded by --split-seed and the concept).
    public static func split(_ set: ProbeSet, concept: String, indices: [Int], _ o: EditOptions) -> ConceptSplit {
        var rng = RNG(seed: o.splitSeed ^ StableHash.of(concept))
        var own = indices
        rng.shuffle(&own)
        let held = max(1, min(own.count - 1, Int((Double(own.count) * o.heldOut).rounded())))
        var others = set.probes.indices.filter { set.probes[$0].concept != concept }
        rng.shuffle(&others)
        let unrelated = Array(others.prefix(held))
        let otherTrain = Array(others.dropFirst(held).prefix(own.count - held))
        let t = set.tokenized
        return ConceptSplit(concept: concept, train: own.dropFirst(held).map { t[$0] }, heldOut: own.prefix(held).map { t[$0] },
                            unrelated: unrelated.map { t[$0] }, otherTrain: otherTrain.map { t[$0] })
    }

    /// Token and [MASK] accuracy of `probes` with `edit` installed (nil: the base model).
    public static func accuracy(_ model: BertModel, _ probes: [TokenizedProbe], edit: Edit?, batch: Int, padId: Int32)
        -> (tokens: Double, mask: Double, counted: Int) {
        var right = 0, total = 0, maskRight = 0
        for start in stride(from: 0, to: probes.count, by: batch) {
            let eb = EditBatch(Array(probes[start..<min(start + batch, probes.count)]), padId: padId)
            let iv = edit?.interventions(EditContext(rows: eb.rows))
            let special = Set(eb.rows["cls"]! + eb.rows["sep"]!)     // copied, never counted
            let rows = eb.labels.indices.filter { eb.labels[$0] != -100 && !special.contains(Int32($0)) }
            let tape = Tape(recording: false)
            let logits = model.mlmLogits(tape, model.encode(tape, eb.batch, interventions: iv), rows: rows.map(Int32.init), interventions: iv)
            let V = logits.lastDim
            let maskRows = Set(eb.rows["mask"]!.map(Int.init))
            for (k, r) in rows.enumerated() {
                let row = logits.data + k * V
                var arg = 0
                for v in 1..<V where row[v] > row[arg] { arg = v }
                let ok = Int32(arg) == eb.labels[r]
                total += 1; if ok { right += 1 }
                if maskRows.contains(r), ok { maskRight += 1 }
            }
        }
        return (Double(right) / Double(max(total, 1)), Double(maskRight) / Double(max(probes.count, 1)), total)
    }

    static func metrics(_ model: BertModel, _ s: ConceptSplit, edit: Edit?, batch: Int, padId: Int32) -> EditMetrics {
        let h = accuracy(model, s.heldOut, edit: edit, batch: batch, padId: padId)
        let u = accuracy(model, s.unrelated, edit: edit, batch: batch, padId: padId)
        let t = accuracy(model, s.train, edit: edit, batch: batch, padId: padId)
        return EditMetrics(editSuccess: h.tokens, editLocalization: u.tokens, maskEditSuccess: h.mask, maskEditLocalization: u.mask,
                           trainMaskSuccess: t.mask)
    }

    public struct TrainStats { public var steps: Int; public var firstLoss: Double?; public var lastLoss: Double? }

    /// Train `edit` (its tensors are the parameter group; the model stays frozen) on
    /// `examples` through the Trainer. `micro`: examples per forward pass (the rest of the
    /// batch accumulates); `sampling`: a fresh mask sample per forward pass; `penalty`: an
    /// extra loss term per forward pass.
    public static func train(_ edit: Edit, model: BertModel, vocab: [String], examples: [TokenizedProbe], padId: Int32,
                             _ o: EditOptions, micro: Int, sampling: Bool, seed: UInt64,
                             penalty: ((Tape) -> Tensor)? = nil) throws -> TrainStats {
        let accumulation = max(1, o.trainBatch / micro)
        let steps = max(o.minSteps ?? 0, (examples.count * o.epochs + o.trainBatch - 1) / o.trainBatch)
        var topt = TrainerOptions(steps: steps, schedule: LRSchedule(peak: o.lr, warmupSteps: 0, totalSteps: steps, decay: .constant),
                                  hiddenDropout: o.dropout, attentionDropout: o.dropout, seed: seed)
        topt.accumulation = accumulation
        topt.adamw = AdamWConfig(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay, maxGradNorm: o.maxGradNorm)
        topt.logEvery = 1
        model.params.setTrainable { _ in false }            // the base model is frozen: only the edit's tensors train
        let group = ParameterGroup().adding(edit.params, decays: { _ in true })
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("droplab-edit-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let data = EditTrainData(examples, micro: micro, seed: seed, padId: padId)
        let trainer = Trainer(model: model, vocab: vocab, data: data, options: topt, runDir: dir, parameters: group) { tape, model, item, plan in
            let iv = edit.interventions(EditContext(sample: sampling ? CounterRNG(seed: seed, plan.step) : nil, rows: item.rows))
            let loss = model.mlmLoss(tape, item.batch, labels: item.labels, dropout: plan, interventions: iv)
            return penalty.map { tape.add(loss, $0(tape)) } ?? loss
        }
        trainer.saveCheckpoints = false
        trainer.log = { _ in }
        trainer.afterStep = { _ in edit.afterStep() }
        let s = try trainer.run()
        if s.reason == .interrupted { throw ProbeError("interrupted (SIGINT) while editing; nothing written") }
        let losses = Squad.readLosses(dir + "/metrics.jsonl")
        return TrainStats(steps: s.steps, firstLoss: losses.first?[1], lastLoss: losses.last?[1])
    }

    /// Write the base model with `edit` baked in (every `--save-edited`: concept edits, ROME,
    /// MEMIT) as an HF export directory, with the same model as a droplab checkpoint in it,
    /// `edited.h5`, for `droplab explore base.h5 DIR/edited.h5` (the audit view).
    static func saveEdited(_ edit: Edit, base: BertModel, vocab: [String], to dir: String) throws {
        let m = BertModel(config: base.config, head: base.head)
        m.params.copyValues(from: base.params)
        try edit.bake(into: m.params)
        try HFExport.export(model: m, vocab: vocab, to: dir)
        try Checkpoint.save(m, vocab: vocab, to: dir + "/edited.h5")
    }

    /// The whole protocol for one method: per concept, split, score before, then `edit`
    /// (one or more edits of that concept, e.g. one per rank: train them and return the
    /// records), write nothing. `makeRecords` gets the split and the base metrics.
    static func run<O: Codable & Sendable>(checkpoint: String, method: String, options opts: O, edit o: EditOptions,
                                           ranks: [Int?], log: @escaping (String) -> Void,
                                           perConcept: (KnowledgeSetup, [String], ConceptSplit, EditMetrics, Bool) throws -> [EditConceptRecord])
        throws -> (result: EditResult<O>, records: [EditConceptRecord]) {
        let began = Date()
        try o.validate()
        let k = try KnowledgeSetup.load(checkpoint: checkpoint, probes: o.probes, log: log)
        let vocab = try Checkpoint.load(checkpoint).vocab
        let (chosen, skipped) = try concepts(k.probes, o)
        guard !chosen.isEmpty else { throw ProbeError("no concept has --min-probes \(o.minProbes) probes") }
        if let c = o.saveConcept, !chosen.contains(where: { $0.0 == c }) {
            throw OptionError(key: "save-concept", "'\(c)' is not among the \(chosen.count) concepts edited")
        }
        let exportConcept = o.saveEdited != nil ? (o.saveConcept ?? chosen[0].0) : nil
        log("\(method): \(chosen.count) concept(s) (\(skipped) with fewer than \(o.minProbes) probes skipped)")
        let progress = ProgressLog(method, total: chosen.count, log: log)
        var records: [EditConceptRecord] = []
        for (i, (concept, idx)) in chosen.enumerated() {
            let s = split(k.probes, concept: concept, indices: idx, o)
            let before = metrics(k.model, s, edit: nil, batch: o.probes.batch, padId: k.tokenizer.padId)
            records += try perConcept(k, vocab, s, before, concept == exportConcept)
            progress.update(i + 1)
        }
        var rows: [EditRow] = []
        for rank in ranks {
            let rs = records.filter { $0.rank == rank }
            let active = rs.compactMap(\.meanActive), kept = rs.compactMap(\.keptFraction)
            rows.append(EditRow(rank: rank, concepts: rs.count, before: .mean(rs.map(\.before)), after: .mean(rs.map(\.after)),
                                meanActive: active.isEmpty ? nil : mean(active), keptFraction: kept.isEmpty ? nil : mean(kept),
                                seconds: rs.reduce(0) { $0 + $1.seconds }))
        }
        let result = EditResult(checkpoint: checkpoint, method: method, options: opts,
                                evaluatedState: "final (after the last training step; no selection on held-out or validation probes)",
                                trainableParameters: [:], rows: rows, concepts: chosen.map(\.0), skippedConcepts: skipped,
                                savedEdited: o.saveEdited, seconds: Date().timeIntervalSince(began))
        return (result, records)
    }

    /// Build `edit`, score it, train it, score again: one record.
    static func editOnce(_ k: KnowledgeSetup, vocab: [String], _ s: ConceptSplit, before: EditMetrics, _ o: EditOptions,
                         rank: Int?, edit: Edit, examples: [TokenizedProbe], micro: Int, sampling: Bool,
                         penalty: ((Tape) -> Tensor)? = nil, export: Bool) throws -> EditConceptRecord {
        let t0 = Date()
        let seed = o.probes.seed ^ StableHash.of(s.concept) ^ UInt64(rank ?? 0)
        let stats = try train(edit, model: k.model, vocab: vocab, examples: examples, padId: k.tokenizer.padId, o,
                              micro: micro, sampling: sampling, seed: seed, penalty: penalty)
        let after = metrics(k.model, s, edit: edit, batch: o.probes.batch, padId: k.tokenizer.padId)
        if export, let dir = o.saveEdited { try saveEdited(edit, base: k.model, vocab: vocab, to: dir) }
        return EditConceptRecord(concept: s.concept, rank: rank, trainProbes: s.train.count, heldOutProbes: s.heldOut.count,
                                 unrelatedProbes: s.unrelated.count, otherTrainProbes: examples.count - s.train.count,
                                 before: before, after: after, steps: stats.steps, firstLoss: stats.firstLoss,
                                 lastLoss: stats.lastLoss, seconds: Date().timeIntervalSince(t0))
    }

    /// Names of the given modules of the given layers (all layers when empty).
    public static func matrices(_ config: BertConfig, modules: [String], layers: [Int]) throws -> [String] {
        let module: [String: (Int) -> BertModule] = ["query": BertModule.query, "key": BertModule.key, "value": BertModule.value,
                                                     "attention-output": BertModule.attentionOut, "intermediate": BertModule.ffnIn,
                                                     "output": BertModule.ffnOut]
        for m in modules where module[m] == nil {
            throw OptionError(key: "modules", "unknown module '\(m)' (known: \(module.keys.sorted().joined(separator: ", ")))")
        }
        for l in layers where l < 0 || l >= config.numLayers {
            throw OptionError(key: "layers", "layer \(l) out of range 0..<\(config.numLayers)")
        }
        if modules.isEmpty { throw OptionError(key: "modules", "at least one module is needed") }
        let ls = layers.isEmpty ? Array(0..<config.numLayers) : layers
        return ls.flatMap { l in modules.map { module[$0]!(l).weight } }
    }
}
