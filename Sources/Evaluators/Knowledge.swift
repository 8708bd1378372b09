// What every knowledge evaluator shares: a loaded checkpoint with its probes, and the scoring
// of a probe batch at [MASK] (target probability, rank, top-1) with any interventions, with
// or without the gradient of the targets' log-probabilities. All model access goes through
// `BertModel.encode(interventions:)` and the MLM head.

import Autograd
import BERT
import Checkpoint
import Datasets
import Foundation
import Interventions
import Text
import Training

public struct KnowledgeSetup {
    public let model: BertModel
    public let tokenizer: WordPieceTokenizer
    public let probes: ProbeSet

    package init(model: BertModel, tokenizer: WordPieceTokenizer, probes: ProbeSet) {
        self.model = model; self.tokenizer = tokenizer; self.probes = probes
    }

    /// Load an MLM checkpoint (all parameters frozen: evaluators differentiate activations
    /// only) and its probes; logs how many probes each relation keeps.
    /// `layers`: layers a flag names, checked against the checkpoint before any data is read.
    public static func load(checkpoint: String, probes o: ProbeOptions, layers: (flag: String, values: [Int])? = nil,
                            log: (String) -> Void) throws -> KnowledgeSetup {
        try o.validate()
        let (model, tok) = try frozenModel(checkpoint)
        if let (flag, values) = layers { try checkLayers(values, flag: flag, model.config) }
        let set = try ProbeSet.load(o, tokenizer: tok, maxLength: model.config.maxPositions)
        let c = set.counts.values
        log("probes: \(set.probes.count) from \(c.reduce(0) { $0 + $1.keptFacts }) facts in \(set.counts.count) relation(s); "
            + "\(c.reduce(0) { $0 + $1.droppedMultiPiece }) facts dropped (object not one word piece), "
            + "\(c.reduce(0) { $0 + $1.droppedOther }) unusable")
        guard !set.probes.isEmpty else { throw ProbeError("no usable probes (every target is more than one word piece of this vocabulary?)") }
        guard o.knownOnly == true else { return KnowledgeSetup(model: model, tokenizer: tok, probes: set) }
        let known = knownProbes(model, set, batch: o.batch, padId: tok.padId)
        log("probes: --known-only keeps the \(known.probes.count) of \(set.probes.count) the model answers right at [MASK]")
        guard !known.probes.isEmpty else { throw ProbeError("--known-only: the model answers none of the \(set.probes.count) probes right at [MASK]") }
        return KnowledgeSetup(model: model, tokenizer: tok, probes: known)
    }

    /// The probes whose target is the model's top-1 at [MASK], with their number per relation in the counts.
    static func knownProbes(_ model: BertModel, _ set: ProbeSet, batch: Int, padId: Int32) -> ProbeSet {
        var right: [Int] = []
        for pb in ProbeBatch.batches(set.tokenized, size: batch, padId: padId) {
            let s = ProbeScoring.run(model, pb)
            for (b, p) in pb.items.enumerated() where s.rank[b] == 0 { right.append(p.index) }
        }
        var known = set.keeping(right.sorted())
        for r in known.counts.keys { known.counts[r]!.knownProbes = known.probes.filter { $0.relation == r }.count }
        return known
    }

    /// Every layer a flag names exists in the model.
    static func checkLayers(_ layers: [Int], flag: String, _ config: BertConfig) throws {
        if let bad = layers.first(where: { $0 >= config.numLayers }) {
            throw OptionError(key: flag, "\(bad) does not exist (the model has layers 0...\(config.numLayers - 1))")
        }
    }

    /// An MLM checkpoint with every parameter frozen, and its tokenizer.
    public static func frozenModel(_ checkpoint: String) throws -> (BertModel, WordPieceTokenizer) {
        let ck = try Checkpoint.load(checkpoint)
        guard ck.model.head == .mlm else { throw CheckpointError(checkpoint, "has a \(ck.model.head.rawValue) head, not an MLM head") }
        ck.model.params.setTrainable { _ in false }
        return (ck.model, try WordPieceTokenizer(vocab: ck.vocab))
    }

    public func token(_ id: Int32) -> String { tokenizer.token(of: id) ?? "?" }
}

/// Scores of one target per row: probability, rank (0 = top-1) and the top-1 token.
public struct RowScores {
    public var prob: [Double] = []
    public var rank: [Int] = []
    public var top1: [Int32] = []
    public var correct: [Bool] { rank.map { $0 == 0 } }
}

public enum ProbeScoring {
    /// Scores of `targets` at `rows` of the hidden states [B*T, C], through the MLM head.
    public static func scores(_ model: BertModel, _ tape: Tape, hidden: Tensor, rows: [Int32], targets: [Int32]) -> RowScores {
        let logits = model.mlmLogits(tape, hidden, rows: rows)
        return scores(logits: logits, targets: targets)
    }

    static func scores(logits: Tensor, targets: [Int32]) -> RowScores {
        let V = logits.lastDim
        var s = RowScores()
        for (r, y) in targets.enumerated() {
            let row = logits.data + r * V
            var mx = row[0], arg = 0
            for v in 1..<V where row[v] > mx { mx = row[v]; arg = v }
            var sum = 0.0, above = 0
            let ty = row[Int(y)]
            for v in 0..<V {
                sum += exp(Double(row[v] - mx))
                if row[v] > ty { above += 1 }
            }
            s.prob.append(exp(Double(ty - mx)) / sum); s.rank.append(above); s.top1.append(Int32(arg))
        }
        return s
    }

    /// Softmax at each probe's [MASK], [B, V] (a constant tensor); with `log`, its logarithm.
    public static func distributions(_ model: BertModel, _ pb: ProbeBatch, _ iv: Interventions?, log logProbabilities: Bool = false) -> Tensor {
        let tape = Tape(recording: false)
        let logits = model.mlmLogits(tape, model.encode(tape, pb.batch, interventions: iv), rows: pb.maskRows)
        let V = logits.lastDim
        var out = [Float](repeating: 0, count: logits.count)
        for b in 0..<logits.rows {
            let row = logits.data + b * V
            var mx = row[0]
            for v in 1..<V where row[v] > mx { mx = row[v] }
            var sum = 0.0
            for v in 0..<V { sum += exp(Double(row[v] - mx)) }
            for v in 0..<V { out[b * V + v] = Float(logProbabilities ? Double(row[v] - mx) - log(sum) : exp(Double(row[v] - mx)) / sum) }
        }
        return Tensor(out, shape: logits.shape)
    }

    /// Probabilities at each probe's [MASK] of the given ids (ids[b] for probe b).
    public static func probabilities(_ model: BertModel, _ pb: ProbeBatch, _ iv: Interventions?, of ids: [[Int32]]) -> [[Double]] {
        let d = distributions(model, pb, iv), V = d.lastDim
        return ids.enumerated().map { b, ys in ys.map { Double(d.data[b * V + Int($0)]) } }
    }

    /// Forward the batch with `interventions`; scores of each probe's target at its [MASK].
    public static func run(_ model: BertModel, _ pb: ProbeBatch, _ iv: Interventions? = nil) -> RowScores {
        let tape = Tape(recording: false)
        return scores(model, tape, hidden: model.encode(tape, pb.batch, interventions: iv), rows: pb.maskRows, targets: pb.targets)
    }

    /// As `run`, then backward of sum_b log p_b(target): leaves used by the interventions
    /// receive d(sum log p)/d(leaf) (multiply row b by prob[b] for d p_b).
    public static func runWithGradient(_ model: BertModel, _ pb: ProbeBatch, _ iv: Interventions) -> RowScores {
        let tape = Tape()
        let logits = model.mlmLogits(tape, model.encode(tape, pb.batch, interventions: iv), rows: pb.maskRows)
        let s = scores(logits: logits, targets: pb.targets)
        let loss = tape.crossEntropy(logits, targets: pb.targets)      // mean of -log p
        if loss.requiresGrad { tape.backward(loss, seed: -Float(pb.items.count)) }
        return s
    }
}

/// nil for nan/inf (JSON has no nan).
func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }

/// Mean of a list (nan when empty).
package func mean(_ v: [Double]) -> Double { v.isEmpty ? .nan : v.reduce(0, +) / Double(v.count) }

/// The median (the mean of the middle two for an even count); nil when empty.
func median(_ v: [Double]) -> Double? {
    guard !v.isEmpty else { return nil }
    let s = v.sorted(), n = s.count
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}

/// A progress line every 10 s (and at the end).
final class ProgressLog {
    let label: String, total: Int, log: (String) -> Void
    var last = Date.distantPast
    let start = Date()
    init(_ label: String, total: Int, log: @escaping (String) -> Void) { self.label = label; self.total = total; self.log = log }
    func update(_ done: Int) {
        guard Date().timeIntervalSince(last) > 10 || done == total else { return }
        last = Date()
        let el = Date().timeIntervalSince(start)
        let eta = done > 0 ? el * Double(total - done) / Double(done) : 0
        log(String(format: "%@: %d/%d (%.0f%%), %.0fs elapsed, ~%.0fs left", label, done, total, 100 * Double(done) / Double(max(total, 1)), el, eta))
    }
}
