// The four concept-edit evaluators (protocol in ConceptEdits.swift; the edits themselves in
// Interventions/Edits.swift). Defaults reproduce the drop-dropout study:
//   bmask  one mask logit per weight of every layer's FFN output matrix (output.dense.weight;
//          biases unmasked), logits start at 1; training: hard Gumbel-sigmoid sample at
//          temperature 1 with the straight-through estimator, a fresh sample per example (each
//          example is its own forward pass, the batch accumulates); evaluation keeps a weight
//          iff its logit > 0. Loss = MLM loss + (β / batch)·Σ logits, β = 1e-5 (the study also
//          ran 1e-4); Adam lr 0.01, 5 epochs and at least 300 steps (ours: see studyEdit),
//          batch 16; concept probes only. Reports the study's mean_active (mean over the masked
//          matrices of the weights kept), the kept fraction, and per matrix the weights kept.
//   ft     W + ΔW on the chosen parameters (default: all), Adam lr 1e-4, 1 epoch, batch 10.
//   lora   W + (α/r)·B·A on every FFN matrix and attention query/value (B = 0 at init), α = 8,
//          Adam lr 5e-4 (the study gives none; ReFT's), 1 epoch, batch 10; --ranks sweep.
//   reft   LoReFT on `block` outputs: the study's layers 4, 6, 8, 11 of 12 ([CLS] for the first
//          two, the final [SEP] for the last two) scaled to the model's depth (layer·L/12,
//          rounded down), a last-layer [CLS]/[SEP] place moved to [MASK] (ours: see
//          defaultPlaces), R's rows kept orthonormal by a Gram-Schmidt retraction after every
//          step; Adam lr 5e-4, 1 epoch, batch 10; --ranks sweep.
// ft, lora and reft train on the concept's training probes plus as many other-concept probes.

import Autograd
import BERT
import Foundation
import Training
import Interventions
import Text

public struct BMaskOptions: CommandOptions, Equatable, Sendable {
    public var edit = BMaskOptions.studyEdit
    public var beta: Float = 1e-5
    public var temperature: Float = 1
    public var initialLogit: Float = 1
    public var modules = ["output"]
    public var layers: [Int] = []
    public init() {}
    public func validate() throws {
        try edit.validate()
        if !(beta >= 0 && beta.isFinite) { throw OptionError(key: "beta", "must be >= 0, got \(beta)") }
        if !(temperature > 0 && temperature.isFinite) { throw OptionError(key: "temperature", "must be positive, got \(temperature)") }
        if !initialLogit.isFinite { throw OptionError(key: "initial-logit", "must be finite") }
    }
}

extension BMaskOptions {
    /// The study's 5 epochs of Adam at lr 0.01, batch 16 (dropval's final defaults; 32 epochs until
    /// its commit f403e42, 2024-08-08, "less epochs"), and at least 300 steps (ours). A logit
    /// whose only gradient is the sparsity term moves by about lr a step under Adam (a constant
    /// gradient g gives m/√v = g/|g|), so a weight the concept does not need falls from the initial
    /// logit 1 below 0 (dropped) after 1/lr = 100 steps at the earliest, later when the task's
    /// gradient noise enters v. A concept with 30 training probes gets 10 steps from 5 epochs:
    /// without the minimum, whether anything is dropped depends on the concept's probe count.
    static var studyEdit: EditOptions { var e = EditOptions(epochs: 5, lr: 0.01, trainBatch: 16); e.minSteps = 300; return e }
}

extension BMaskOptions: OptionHelp {
    public static let help: [String: String] = [
        "edit": "The concept-edit settings (see the edit options).",
        "beta": "Sparsity weight beta (loss + beta/batch * sum of logits).",
        "temperature": "Gumbel-sigmoid temperature.",
        "initialLogit": "Initial mask logit.",
        "modules": "Masked matrices: query, key, value, attention-output, intermediate, output.",
        "layers": "Layers (empty: all).",
    ]
}

public struct FinetuneOptions: CommandOptions, Equatable, Sendable {
    public var edit = EditOptions(epochs: 1, lr: 1e-4, trainBatch: 10)
    public var params = ["*"]                 // glob patterns over Hugging Face parameter names
    public init() {}
    public func validate() throws {
        try edit.validate()
        if params.isEmpty { throw OptionError(key: "params", "at least one pattern is needed") }
    }
}

extension FinetuneOptions: OptionHelp {
    public static let help: [String: String] = [
        "edit": "The concept-edit settings (see the edit options).",
        "params": "Glob patterns over Hugging Face parameter names: the parameters trained.",
    ]
}

public struct LoRAOptions: CommandOptions, Equatable, Sendable {
    public var edit = EditOptions(epochs: 1, lr: 5e-4, trainBatch: 10)
    public var ranks = [64, 32, 16, 8, 4, 2, 1]
    public var alpha: Float = 8
    public var modules = ["query", "value", "intermediate", "output"]
    public var layers: [Int] = []
    public var saveRank: Int? = nil           // the rank --save-edited exports (default: the first)
    public init() {}
    public func validate() throws {
        try edit.validate()
        try validateRanks(ranks, saveRank: saveRank)
        if !(alpha > 0 && alpha.isFinite) { throw OptionError(key: "alpha", "must be positive, got \(alpha)") }
    }
}

extension LoRAOptions: OptionHelp {
    public static let help: [String: String] = [
        "edit": "The concept-edit settings (see the edit options).",
        "ranks": "Ranks swept (one result row per rank).",
        "alpha": "LoRA alpha (the update is scaled by alpha/r).",
        "modules": "Adapted matrices: query, key, value, attention-output, intermediate, output.",
        "layers": "Layers (empty: all).",
        "saveRank": "The rank --save-edited exports (unset: the first).",
    ]
}

public struct ReFTOptions: CommandOptions, Equatable, Sendable {
    public var edit = EditOptions(epochs: 1, lr: 5e-4, trainBatch: 10)
    public var ranks = [64, 32, 16, 8, 4, 2, 1]
    public var places: [String] = []          // "layer:position"; empty: the study's layout (ReFTEval.defaultPlaces)
    public var lastLayerPosition: String? = "mask"   // the default layout's last-layer [CLS]/[SEP] places move here; unset: they stay (the study's)
    public init() {}
    public func validate() throws {
        try edit.validate()
        try validateRanks(ranks, saveRank: nil)
        if edit.saveEdited != nil {
            throw OptionError(key: "save-edited", "reft edits activations (LoReFT), which no BertForMaskedLM weights can express")
        }
        _ = try ReFTEval.parsePlaces(places)
        if let p = lastLayerPosition, !ReFTEval.positions.contains(p) {
            throw OptionError(key: "last-layer-position", "'\(p)' is not one of \(ReFTEval.positions.joined(separator: ", "))")
        }
    }
}

extension ReFTOptions: OptionHelp {
    public static let help: [String: String] = [
        "edit": "The concept-edit settings (see the edit options).",
        "ranks": "Ranks swept (one result row per rank).",
        "places": "Interventions as layer:position: layer an index or a fraction of the depth (0.5), position cls, sep, mask or all, e.g. 1:cls 0.75:mask (empty: the study's layout scaled to the model's depth).",
        "lastLayerPosition": "Where the default layout's last-layer [CLS]/[SEP] places move (ours: mask, since nothing after the last layer carries them to the [MASK] prediction; unset: they stay, the study's layout).",
    ]
}

func validateRanks(_ ranks: [Int], saveRank: Int?) throws {
    if ranks.isEmpty || ranks.contains(where: { $0 < 1 }) { throw OptionError(key: "ranks", "must be positive integers, got \(ranks)") }
    if Set(ranks).count != ranks.count { throw OptionError(key: "ranks", "must not repeat a rank, got \(ranks)") }
    if let r = saveRank, !ranks.contains(r) { throw OptionError(key: "save-rank", "\(r) is not one of --ranks \(ranks)") }
}

public typealias EditRun<O: Codable & Sendable> = (result: EditResult<O>, records: [EditConceptRecord])

public enum BinaryMaskEval {
    public static func run(checkpoint: String, options o: BMaskOptions, log: @escaping (String) -> Void) throws -> EditRun<BMaskOptions> {
        try o.validate()
        var size = 0, matrices: [(name: String, weights: Int)] = []
        var out = try ConceptEdits.run(checkpoint: checkpoint, method: "bmask", options: o, edit: o.edit, ranks: [nil], log: log) {
            k, vocab, s, before, export in
            let targets = try ConceptEdits.matrices(k.model.config, modules: o.modules, layers: o.layers)
            let edit = BinaryMaskEdit(k.model.params, targets: targets, initialLogit: o.initialLogit, temperature: o.temperature)
            size = edit.params.totalCount
            matrices = targets.map { ($0, edit.params[$0].count) }
            let coef = o.beta / Float(o.edit.trainBatch)
            let penalty: (Tape) -> Tensor = { tape in
                tape.scale(targets.dropFirst().reduce(tape.sum(edit.params[targets[0]])) { tape.add($0, tape.sum(edit.params[$1])) }, coef)
            }
            var r = try ConceptEdits.editOnce(k, vocab: vocab, s, before: before, o.edit, rank: nil, edit: edit, examples: s.train,
                                              micro: 1, sampling: true, penalty: penalty, export: export)
            r.meanActive = edit.meanActive; r.keptFraction = edit.keptFraction; r.keptPerMatrix = edit.kept
            return [r]
        }
        out.result.trainableParameters = ["all": size]
        let kept = out.records.compactMap(\.keptPerMatrix)
        out.result.rows[0].keptPerMatrix = matrices.enumerated().map { i, m in
            KeptMatrix(matrix: m.name, weights: m.weights, kept: mean(kept.map { Double($0[i]) }))
        }
        return out
    }
}

public enum FinetuneEval {
    public static func run(checkpoint: String, options o: FinetuneOptions, log: @escaping (String) -> Void) throws -> EditRun<FinetuneOptions> {
        try o.validate()
        var size = 0
        var out = try ConceptEdits.run(checkpoint: checkpoint, method: "ft", options: o, edit: o.edit, ranks: [nil], log: log) {
            k, vocab, s, before, export in
            let names = k.model.params.entries.map(\.name)
            for p in o.params where !names.contains(where: { glob(p, $0) }) {
                throw OptionError(key: "params", "no parameter matches '\(p)' (names as in the checkpoint, e.g. bert.encoder.layer.0.output.dense.weight)")
            }
            let edit = DenseEdit(k.model.params, targets: names.filter { n in o.params.contains { glob($0, n) } })
            size = edit.params.totalCount
            return [try ConceptEdits.editOnce(k, vocab: vocab, s, before: before, o.edit, rank: nil, edit: edit,
                                              examples: s.train + s.otherTrain, micro: o.edit.trainBatch, sampling: false, export: export)]
        }
        out.result.trainableParameters = ["all": size]
        return out
    }

    static func glob(_ pattern: String, _ name: String) -> Bool { fnmatch(pattern, name, 0) == 0 }
}

public enum LoRAEval {
    public static func run(checkpoint: String, options o: LoRAOptions, log: @escaping (String) -> Void) throws -> EditRun<LoRAOptions> {
        try o.validate()
        var sizes: [String: Int] = [:]
        let saveRank = o.saveRank ?? o.ranks[0]
        var out = try ConceptEdits.run(checkpoint: checkpoint, method: "lora", options: o, edit: o.edit, ranks: o.ranks, log: log) {
            k, vocab, s, before, export in
            let targets = try ConceptEdits.matrices(k.model.config, modules: o.modules, layers: o.layers)
            let smallest = targets.map { k.model.params[$0].shape.min()! }.min()!
            if let r = o.ranks.first(where: { $0 > smallest }) { throw OptionError(key: "ranks", "rank \(r) exceeds the smallest target dimension \(smallest)") }
            return try o.ranks.map { rank in
                let edit = LoRAEdit(k.model.params, targets: targets, rank: rank, alpha: o.alpha,
                                    seed: o.edit.probes.seed ^ StableHash.of(s.concept) ^ UInt64(rank))
                sizes[String(rank)] = edit.params.totalCount
                return try ConceptEdits.editOnce(k, vocab: vocab, s, before: before, o.edit, rank: rank, edit: edit,
                                                 examples: s.train + s.otherTrain, micro: o.edit.trainBatch, sampling: false,
                                                 export: export && rank == saveRank)
            }
        }
        out.result.trainableParameters = sizes
        return out
    }
}

public enum ReFTEval {
    /// The study's layout (layers 4, 6, 8, 11 of 12; [CLS], [CLS], [SEP], [SEP]) scaled to L layers.
    public static func studyPlaces(layers L: Int) -> [LoReFTEdit.Place] {
        var out: [LoReFTEdit.Place] = []
        for (l, pos) in [(4, "cls"), (6, "cls"), (8, "sep"), (11, "sep")] {
            let p = LoReFTEdit.Place(layer: min(L - 1, l * L / 12), position: pos)
            if !out.contains(p) { out.append(p) }
        }
        return out
    }

    /// The default: the study's layout, except that a [CLS] or [SEP] place in the last layer moves
    /// to `lastLayer` (ours: [MASK]). The MLM head reads [MASK]'s own last-layer state, so a
    /// last-layer place elsewhere cannot change the [MASK] prediction: in 2 layers the study's
    /// layout is 0:cls, 1:cls, 1:sep, of which only 0:cls reaches [MASK] (through layer 1's
    /// attention); in 12 layers its 11:sep does not either.
    public static func defaultPlaces(layers L: Int, lastLayer: String?) -> [LoReFTEdit.Place] {
        var out: [LoReFTEdit.Place] = []
        for var p in studyPlaces(layers: L) {
            if let to = lastLayer, p.layer == L - 1, p.position == "cls" || p.position == "sep" { p.position = to }
            if !out.contains(p) { out.append(p) }
        }
        return out
    }

    static let positions = ["cls", "sep", "mask", "all"]

    /// `layer:position` specs for an L-layer model (a fractional layer f is floor(f·L), at most L − 1).
    static func parsePlaces(_ specs: [String], layers L: Int = .max) throws -> [LoReFTEdit.Place] {
        try specs.map { spec in
            let parts = spec.split(separator: ":").map(String.init)
            let bad = OptionError(key: "places", "'\(spec)' is not layer:position (layer an index or a fraction in [0, 1], position \(positions.joined(separator: ", ")))")
            guard parts.count == 2, positions.contains(parts[1]) else { throw bad }
            if let l = Int(parts[0]), l >= 0 {
                guard l < L else { throw OptionError(key: "places", "layer \(l) out of range 0..<\(L)") }
                return LoReFTEdit.Place(layer: l, position: parts[1])
            }
            guard parts[0].contains("."), let f = Double(parts[0]), f >= 0, f <= 1 else { throw bad }
            return LoReFTEdit.Place(layer: L == .max ? 0 : min(L - 1, Int(f * Double(L))), position: parts[1])
        }
    }

    public static func run(checkpoint: String, options o: ReFTOptions, log: @escaping (String) -> Void) throws -> EditRun<ReFTOptions> {
        try o.validate()
        var sizes: [String: Int] = [:], resolved: [String] = []
        var out = try ConceptEdits.run(checkpoint: checkpoint, method: "reft", options: o, edit: o.edit, ranks: o.ranks, log: log) {
            k, vocab, s, before, _ in
            let c = k.model.config
            let places = o.places.isEmpty ? defaultPlaces(layers: c.numLayers, lastLayer: o.lastLayerPosition)
                                          : try parsePlaces(o.places, layers: c.numLayers)
            resolved = places.map { "\($0.layer):\($0.position)" }
            if let r = o.ranks.first(where: { $0 > c.hiddenSize }) { throw OptionError(key: "ranks", "rank \(r) exceeds the hidden size \(c.hiddenSize)") }
            return try o.ranks.map { rank in
                let edit = LoReFTEdit(hiddenSize: c.hiddenSize, places: places, rank: rank,
                                      seed: o.edit.probes.seed ^ StableHash.of(s.concept) ^ UInt64(rank))
                sizes[String(rank)] = edit.params.totalCount
                var r = try ConceptEdits.editOnce(k, vocab: vocab, s, before: before, o.edit, rank: rank, edit: edit,
                                                  examples: s.train + s.otherTrain, micro: o.edit.trainBatch, sampling: false, export: false)
                r.orthonormalityError = edit.orthonormalityError
                return r
            }
        }
        out.result.trainableParameters = sizes
        out.result.options.places = resolved              // the result records the places used
        return out
    }
}
