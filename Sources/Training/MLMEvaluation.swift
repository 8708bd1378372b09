// Held-out masked-LM metrics: token-weighted mean loss, perplexity and accuracy over
// fixed, pre-masked batches (no dropout).

import Autograd
import BERT
import Foundation
import Text

public struct MLMMetrics: Codable, Sendable {
    public var loss: Double
    public var perplexity: Double
    public var accuracy: Double
    public var maskedTokens: Int
    public var sequences: Int
}

public enum MLMEvaluation {
    public static func evaluate(_ model: BertModel, _ examples: [MLMExample]) -> MLMMetrics {
        var total = 0.0, correct = 0, n = 0, seqs = 0
        for ex in examples {
            let tape = Tape(recording: false)
            let hidden = model.encode(tape, ex.batch)
            var rows: [Int32] = [], targets: [Int32] = []
            for (i, l) in ex.labels.enumerated() where l != -100 { rows.append(Int32(i)); targets.append(l) }
            seqs += ex.batch.batchSize
            guard !rows.isEmpty else { continue }
            let logits = model.mlmLogits(tape, hidden, rows: rows)
            let V = logits.lastDim
            for r in 0..<rows.count {
                let row = logits.data + r * V
                var mx = row[0], arg = 0
                for v in 1..<V where row[v] > mx { mx = row[v]; arg = v }
                var s = 0.0
                for v in 0..<V { s += exp(Double(row[v] - mx)) }
                total += Double(mx) + log(s) - Double(row[Int(targets[r])])
                if arg == Int(targets[r]) { correct += 1 }
            }
            n += rows.count
        }
        let loss = n > 0 ? total / Double(n) : .nan
        return MLMMetrics(loss: loss, perplexity: exp(loss), accuracy: n > 0 ? Double(correct) / Double(n) : .nan,
                          maskedTokens: n, sequences: seqs)
    }

    /// Fixed validation batches from a token file: the first `sequences` packed sequences,
    /// masked with `seed` (the same masks every time).
    public static func batches(from file: TokenFile, packer: SequencePacker, masker: Masker, sequences: Int,
                               batchSize: Int, seed: UInt64) -> [MLMExample] {
        let n = min(sequences, packer.count(file))
        var rng = RNG(seed: seed)
        var out: [MLMExample] = []
        var k = 0
        while k < n {
            let b = min(batchSize, n - k), T = packer.seqLen
            var ids = [Int32](repeating: 0, count: b * T)
            for j in 0..<b { packer.sequence(file, k + j, into: &ids, at: j * T) }
            let labels = masker.apply(&ids, rng: &rng)
            out.append(MLMExample(batch: Batch(ids: ids, batchSize: b, seqLen: T), labels: labels))
            k += b
        }
        return out
    }
}
