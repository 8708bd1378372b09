// `droplab bench`: throughput figures for this machine. Training steps use random token
// batches with the real masking, model and optimizer (data loading is not timed).

import Autograd
import BERT
import CBLAS
import Foundation

public struct BenchResult: Codable, Sendable {
    public var name: String
    public var value: Double
    public var unit: String
    public var detail: [String: Double] = [:]
}

public enum Benchmark {
    /// sgemm GFLOP/s on square n x n matrices (the practical peak).
    public static func sgemm(n: Int = 2048, repeats: Int = 5) -> Double {
        let a = Storage(count: n * n), b = Storage(count: n * n), c = Storage(count: n * n)
        for i in 0..<n * n { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
        var best = Double.infinity
        for _ in 0..<repeats {
            let t = Date()
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a.pointer, Int32(n),
                        b.pointer, Int32(n), 0, c.pointer, Int32(n))
            best = min(best, Date().timeIntervalSince(t))
        }
        return 2 * Double(n * n * n) / best / 1e9
    }

    /// Model FLOPs per trained token (forward + backward = 3x forward matmul FLOPs), counting
    /// the MLM decoder at masked positions only (`maskedFraction`), as droplab computes it.
    public static func trainingFlopsPerToken(_ c: BertConfig, seqLen T: Int, maskedFraction: Double) -> Double {
        let C = Double(c.hiddenSize), F = Double(c.intermediateSize), L = Double(c.numLayers), V = Double(c.vocabSize)
        let perLayer = 2 * (4 * C * C + 2 * C * F) + 2 * 2 * Double(T) * C   // projections + FFN + QK^T and PV
        let head = maskedFraction * 2 * (C * C + C * V)
        return 3 * (L * perLayer + head)
    }

    /// Time `steps` optimizer steps (after `warmup` untimed ones) of MLM training.
    public static func trainingStep(preset: String, vocabSize: Int, seqLen: Int = 128, batch: Int = 32, dropout: Float,
                                    steps: Int = 5, warmup: Int = 2) throws -> (tokensPerSecond: Double, secondsPerStep: Double) {
        var config = try BertConfig(preset: preset, vocabSize: vocabSize)
        config.hiddenDropout = dropout; config.attentionDropout = dropout
        let model = BertModel(config: config)
        model.initialize(seed: 1)
        let opt = AdamW(model.params, config: .init())
        let masker = Masker(maskId: 4, vocabSize: vocabSize, special: [0, 1, 2, 3, 4])
        var rng = RNG(seed: 2)
        let tape = Tape()
        var elapsed = 0.0
        for s in 0..<(warmup + steps) {
            var ids = (0..<batch * seqLen).map { _ in Int32(5 + rng.int(vocabSize - 5)) }
            let labels = masker.apply(&ids, rng: &rng)
            let t = Date()
            model.params.zeroGrads()
            let loss = model.mlmLoss(tape, Batch(ids: ids, batchSize: batch, seqLen: seqLen), labels: labels,
                                     dropout: DropoutPlan(hidden: dropout, attention: dropout, seed: 1, step: UInt64(s)))
            tape.backward(loss)
            opt.update(lr: 1e-4)
            if s >= warmup { elapsed += Date().timeIntervalSince(t) }
        }
        return (Double(steps * batch * seqLen) / elapsed, elapsed / Double(steps))
    }
}
